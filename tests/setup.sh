#!/bin/sh
# Installs what the tests need on a fresh Debian machine (as root); does nothing when all is there.
set -e
need=""
for tool in strace:strace python3:python3 make:make cc:gcc; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need="$need ${tool#*:}"
done
# the sanitizer runtimes come with gcc on Debian; check they link
if command -v cc >/dev/null 2>&1 && ! echo 'int main(void){return 0;}' | cc -x c -fsanitize=address,undefined -o /dev/null - 2>/dev/null; then
	need="$need libasan8 libubsan1"
fi
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "tests/setup.sh: please install:$need (run as root to install them automatically)" >&2
	exit 1
fi
echo "tests/setup.sh: installing$need"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
