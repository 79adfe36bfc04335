#!/bin/sh
# The whole test suite: plain build, AddressSanitizer+UBSan build, ThreadSanitizer build.
# Ends with one line: "check: N passed, N failed".
make=${MAKE:-make}
out=$(mktemp)
fails=$(mktemp)
passed=0
failed=0
jobs=$(nproc 2>/dev/null || echo 2)
for target in test test-asan test-tsan; do
	echo "== make $target"
	t0=$(date +%s)
	# -j: the builds take a minute less on 2 CPUs (the tests themselves run run_tests.py's --jobs at a time)
	$make --no-print-directory -j"$jobs" "$target" >"$out" 2>&1
	cat "$out"
	echo "== make $target: $(($(date +%s) - t0)) s"
	# A failure's lines again at the end, next to the summary: CI may keep only the output's last lines.
	# Each FAIL line with up to 8 lines of its explanation.
	awk -v t="$target" '/^  [^ ]+: FAIL/ { n = 9 } /^  [^ ]+: PASS/ { n = 0 }
		n > 0 { print t ": " substr($0, 1, 400); n-- }' "$out" >>"$fails"
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	if [ -z "$summary" ]; then
		echo "$target: built or ran nothing (counted as one failure)"
		{ echo "$target: built or ran nothing; its last lines:"; tail -n 8 "$out"; } >>"$fails"
		summary="0 passed, 1 failed"
	fi
	passed=$((passed + $(echo "$summary" | awk '{print $1}')))
	failed=$((failed + $(echo "$summary" | awk '{print $3}')))
done
if [ -s "$fails" ]; then
	echo "== what failed (each failure's explanation is above, after its FAIL line)"
	cat "$fails"
fi
rm -f "$out" "$fails"
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
