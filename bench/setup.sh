#!/bin/sh
# The allocators make bench compares with (Debian packages), GNU time (the peak RSS of each run) and the real
# programs it times (sqlite3, gcc, redis-server with redis-benchmark), installed when run as root. A fresh
# machine that ran make bench before make check had no redis: its five columns failed (session 24).
need=""
[ -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ] || need="$need libjemalloc2"
[ -e /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 ] || need="$need libmimalloc2.0"
[ -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ] || need="$need libtcmalloc-minimal4"
[ -x /usr/bin/time ] || need="$need time"
command -v sqlite3 >/dev/null 2>&1 || need="$need sqlite3"
command -v gcc >/dev/null 2>&1 || need="$need gcc"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
command -v redis-benchmark >/dev/null 2>&1 || need="$need redis-tools"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null || true
else
	echo "bench: for the comparison, install:$need" >&2
fi
exit 0
