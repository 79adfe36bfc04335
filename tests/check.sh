#!/bin/sh
# The whole test suite: plain build, AddressSanitizer+UBSan build, ThreadSanitizer build.
# Ends with one line: "check: N passed, N failed".
make=${MAKE:-make}
out=$(mktemp)
passed=0
failed=0
for target in test test-asan test-tsan; do
	echo "== make $target"
	$make --no-print-directory "$target" >"$out" 2>&1
	cat "$out"
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	if [ -z "$summary" ]; then
		echo "$target: built or ran nothing (counted as one failure)"
		summary="0 passed, 1 failed"
	fi
	passed=$((passed + $(echo "$summary" | awk '{print $1}')))
	failed=$((failed + $(echo "$summary" | awk '{print $3}')))
done
rm -f "$out"
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
