#!/bin/sh
# Installs every Debian package the tests need, in one apt-get call; does nothing when all are there.
# The list: the build (gcc, make), pkg-config and git (tests/test_install.py: a clean clone, its make install,
# pkg-config), strace (the outside witness of system calls), Debian's python3 and matplotlib (osmem-heapmap),
# chromium (the heap map page test), glibc-source (glibc's malloc tests), valgrind (tests/test_valgrind.py),
# clang and libFuzzer's runtime (fuzz/, tests/test_fuzz.py), GNU time (tests/test_bench_report.py runs bench/run.py's
# measurement), gdb (tests/test_protect_signal_heap.py delivers a signal at a chosen instruction), ltrace (the
# classic library's calls as teaching checkers see them, tests/test_classic_ltrace.py) and the real programs of
# tests/programs/packages.txt.
here=$(cd "$(dirname "$0")" && pwd)
want="gcc make libc6-dev pkg-config git strace python3 python3-matplotlib chromium glibc-source valgrind clang libclang-rt-14-dev time gdb ltrace $(cat "$here/programs/packages.txt")"
need=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "tests/setup.sh: please install:$need (or run as root to install them automatically)" >&2
	exit 1
fi
echo "tests/setup.sh: installing$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq $need >/dev/null
