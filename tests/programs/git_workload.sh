#!/bin/sh
# git workload for tests/test_programs.py: `sh git_workload.sh DIR` builds a repository in DIR/repo over 20
# commits (files added, rewritten, renamed, deleted), then repacks, verifies and reports. Names, e-mails and
# dates are fixed, so every hash is the same on every run and every allocator.
set -eu
dir=$1
export HOME="$dir" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null TZ=UTC LC_ALL=C
export GIT_AUTHOR_NAME="Ada Osmem" GIT_AUTHOR_EMAIL="ada@example.invalid"
export GIT_COMMITTER_NAME="Bob Osmem" GIT_COMMITTER_EMAIL="bob@example.invalid"
cd "$dir"
git init -q -b main repo
cd repo
git config pack.threads 2
git config core.autocrlf false
git config gc.auto 0
mkdir -p src docs data
c=1
while [ $c -le 20 ]; do
	export GIT_AUTHOR_DATE="@$((1700000000 + c * 3600)) +0000" GIT_COMMITTER_DATE="@$((1700000000 + c * 3600 + 60)) +0000"
	# rewrite a changing subset of 60 files, each a few hundred lines depending on (file, commit)
	awk -v c="$c" 'BEGIN {
		for (f = 0; f < 60; f++) {
			if ((f * 7 + c) % 5 != 0 && c > 1) continue
			d = (f % 3 == 0) ? "src" : (f % 3 == 1) ? "docs" : "data"
			file = sprintf("%s/f%02d.txt", d, f)
			x = f * 1000 + c
			n = 50 + (f * 13 + c * 7) % 300
			for (i = 0; i < n; i++) {
				x = (x * 1103515 + 12345) % 2147483648
				printf "line %d of %d in commit %d: %08x %s\n", i, f, c, x, substr("abcdefghijklmnopqrstuvwxyz", 1 + x % 26) > file
			}
			close(file)
		}
	}'
	if [ $((c % 6)) -eq 0 ]; then
		git mv -f "src/f$(printf %02d $((c * 3 % 60 / 3 * 3)))".txt "src/moved$c.txt" 2>/dev/null || true
		git rm -q -f --ignore-unmatch "data/f$(printf %02d $((c % 60)))".txt
	fi
	git add -A
	git commit -q -m "commit $c: $(git diff --cached --numstat | wc -l) files"
	if [ $((c % 10)) -eq 0 ]; then git tag -a "v$((c / 10))" -m "release $((c / 10))"; fi
	c=$((c + 1))
done
echo "== log"
git log --format='%H %s'
echo "== tree"
git rev-parse 'HEAD^{tree}' v1 v2 'v2^{commit}'
echo "== diffstat"
git diff --stat HEAD~8 HEAD | tail -n 3
echo "== log -p"
git log -p --stat | md5sum
echo "== blame"
git blame -s docs/f01.txt | md5sum
echo "== grep"
git grep -c 'commit 20' HEAD -- docs | head -n 5
echo "== repack"
git repack -a -d -f -q --depth=20 --window=20
git count-objects -v | grep -E '^(count|in-pack|packs):'
git fsck --strict --no-progress 2>&1
echo "== archive"
git archive --format=tar HEAD | md5sum
git describe --tags
