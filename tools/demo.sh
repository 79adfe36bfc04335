#!/bin/sh
# The main job: a real program (sqlite3) on osmem, with its statistics, its decision trace and a heap map.
set -e
cd "$(dirname "$0")/.."
out=build/main-job
mkdir -p "$out"
need=""
command -v sqlite3 >/dev/null 2>&1 || need="$need sqlite3"
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || need="$need python3-matplotlib"
if [ -n "$need" ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "demo: installing$need"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
	else
		echo "demo: please install$need" >&2
		exit 1
	fi
fi
echo "== sqlite3 on osmem: tools/osmem-run --stats --trace $out/sqlite3.trace -- sqlite3 :memory: < examples/demo.sql"
tools/osmem-run --stats --trace "$out/sqlite3.trace" -- sqlite3 :memory: < examples/demo.sql
echo "== the heap map: tools/osmem-heapmap $out/sqlite3.trace"
tools/osmem-heapmap "$out/sqlite3.trace" -o "$out/heapmap.html" --png "$out/heapmap.png"
echo "demo: open $out/heapmap.html (heap over time, zoom and hover) or $out/heapmap.png (the final heap)"
echo "demo: the classic allocator step by step: make demo-classic"
