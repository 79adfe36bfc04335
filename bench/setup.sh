#!/bin/sh
# The allocators make bench compares with (Debian packages), and GNU time (the peak RSS of each run),
# installed when run as root.
need=""
[ -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ] || need="$need libjemalloc2"
[ -e /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 ] || need="$need libmimalloc2.0"
[ -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ] || need="$need libtcmalloc-minimal4"
[ -x /usr/bin/time ] || need="$need time"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null || true
else
	echo "bench: for the comparison, install:$need" >&2
fi
exit 0
