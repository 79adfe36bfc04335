#!/bin/bash
# redis_idle.sh: what a redis-server keeps resident while it idles after FLUSHALL (docs/TRADEOFFS.md, sessions 71-72).
#
#   bench/redis_idle.sh LABEL [NAME=VALUE ...]     e.g.  bench/redis_idle.sh osmem-bg \
#                                                         LD_PRELOAD=build/libosmem-malloc.so OSMEM_BACKGROUND=1
#
# Starts Debian's redis-server (port 6391, no persistence) with the given environment, stores 300,000 keys of
# 16-600 bytes through `redis-cli --pipe`, flushes them, and prints the server's VmRSS (KiB) when full, right after
# the flush, and 1, 2, 3, 5, 10 and 15 s later, the server making no call meanwhile. Needs redis-server,
# redis-cli and python3.
set -e
label=$1
shift
port=${REDIS_IDLE_PORT:-6391}
work=$(mktemp -d)
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
python3 - "$work/fill.txt" <<'PY'
import random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    for i in range(300000):
        k, v = "k%d" % i, "x" * random.randint(16, 600)
        f.write("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
PY
env "$@" redis-server --port "$port" --save '' --appendonly no --daemonize no >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/{print $2}' "/proc/$pid/status"; }
redis-cli -p "$port" --pipe <"$work/fill.txt" >/dev/null
out="$label full=$(rss)"
redis-cli -p "$port" flushall >/dev/null
sleep 0.2
out="$out flushed=$(rss)"
prev=0
for t in 1 2 3 5 10 15; do
	sleep $((t - prev))
	prev=$t
	out="$out ${t}s=$(rss)"
done
echo "$out"
