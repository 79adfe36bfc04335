#!/usr/bin/env python3
"""bench/apis.py: every entry point of the malloc family, at every range of sizes, in one thread and in four
(each its own blocks, or sharing them), under glibc, osmem, jemalloc, mimalloc and tcmalloc: a scan for the cells where osmem is far behind.

The ranked suite (bench/run.py) times a few workloads, each one or two entry points at the sizes it uses; a
request path that none of them takes can be ten times slower than glibc's and nothing shows it. Session 42 found
three that way: aligned_alloc of 64 KiB..4 MiB mapped every block afresh (15x glibc's time), a thread calling only
valloc took the core's lock at every call (18x), and medium reallocs in four threads queued on that lock (3x). This runs bench/workloads/apis.c for each cell (an entry point, a
size range, one thread, four, or four sharing their blocks so that most frees are remote), the allocators
interleaved, and writes bench/results/apis.md: the median time of
each, its ratio to glibc's, and a mark where osmem takes more than SLOW times glibc's or the fastest peer's.

Usage: python3 bench/apis.py [--build build] [--runs 3] [--only KIND,...] [--quick] [--out FILE]
(`make bench-apis`: about 5 minutes at 3 runs.)"""
import argparse, os, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402  (bench/run.py: allocators, fresh copies, the spawn under GNU time, the protocol)

KINDS = ["malloc", "calloc", "realloc", "aligned64", "posix_memalign64", "memalign256", "aligned4096", "valloc"]
RANGES = [("16 B-1 KiB", 16, 1024), ("1-64 KiB", 1024, 65536), ("64 KiB-4 MiB", 65536, 4 << 20),
          ("4-64 MiB", 4 << 20, 64 << 20)]
THREADS = ["1", "4", "4r"]   # 4r: four threads sharing one table, most frees remote (bench/workloads/apis.c)
SLOW = 1.5   # a cell is marked when osmem's median is above this times glibc's, or this times the fastest peer's
SCALE = {"4-64 MiB": 0.25}   # the largest blocks: fewer operations (a cell stays under a second or so)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", help="entry points (comma-separated) of " + ", ".join(KINDS))
    ap.add_argument("--quick", action="store_true", help="a tenth of the operations, 1 run: a smoke run")
    ap.add_argument("--out", help="the report (default bench/results/apis.md; --quick: BUILD/bench/apis-quick.md)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    prog = os.path.join(build, "bench", "wl", "apis")
    if not os.path.exists(prog):
        print("bench/apis.py: %s is not built (make bench-build)" % prog)
        return 2
    kinds = a.only.split(",") if a.only else KINDS
    runs = 1 if a.quick else a.runs
    out = a.out or (os.path.join(build, "bench", "apis-quick.md") if a.quick
                    else os.path.join(R.HERE, "results", "apis.md"))
    allocs = R.allocators(build)
    env = R.base_env()
    fresh = os.path.join(build, "bench", "fresh")
    cells = [(k, r, t) for k in kinds for r in RANGES for t in THREADS]
    times = {}      # (kind, range name, threads) -> {allocator: [secs]}
    problems = []
    start = time.time()
    for n in range(runs):
        for kind, (rname, lo, hi), t in cells:
            scale = SCALE.get(rname, 1.0) * (0.1 if a.quick else 1.0)
            got, probs = R.scan_cell([prog, "%g" % scale, kind, str(lo), str(hi), t], allocs, env, fresh, n,
                                     "%s %s %s threads" % (kind, rname, t))
            problems += probs
            for name, metrics in got.items():
                times.setdefault((kind, rname, t), {}).setdefault(name, []).append(metrics["secs"])
        print("apis: run %d of %d done (%.0f s)" % (n + 1, runs, time.time() - start), flush=True)
    names = [n for n, _ in allocs]
    peers = [n for n in names if n not in ("osmem", "glibc")]
    L = ["# Every entry point, every size range: osmem against glibc, jemalloc, mimalloc and tcmalloc", "",
         "%s; %d run(s) per cell, interleaved, median shown; `python3 bench/apis.py%s` (bench/workloads/apis.c). "
         "Each cell: 64 blocks a thread, each operation frees a random one (realloc: reallocates it) and "
         "allocates one of a size drawn log-uniformly from the range, writing a byte in each of its 4 KiB pages; "
         "threads `4r`: the four threads share their 256 slots, so that most frees are of another thread's block. "
         "Ratios to glibc's time (below 1: faster); **bold**: the fastest; a cell is marked ⚠ where osmem takes "
         "more than %.1f times glibc's time or the fastest peer's." % (time.strftime("%Y-%m-%d %H:%M"), runs,
                                                                     " --quick" if a.quick else "", SLOW), ""]
    if problems:
        L += ["## Problems", "",
              "A peer's failure is reported and its cell left empty; osmem's fails the scan. (Debian's mimalloc "
              "2.0.9 returns blocks aligned to 128 for memalign(256, n) of small n, the `FAIL misaligned block` "
              "lines below when they appear: microsoft/mimalloc issue 700, fixed after 2.0.9.)", ""]
        L += ["- " + p for _, p in problems] + [""]
    L += ["| entry point | sizes | threads | glibc (s) | " + " | ".join(n for n in names if n != "glibc") +
          " | osmem / fastest peer | |",
          "| --- | --- | ---: | ---: | " + " | ".join("---:" for n in names if n != "glibc") + " | ---: | --- |"]
    marked = slower = 0
    worst = []
    for kind, (rname, lo, hi), t in cells:
        med = {n: statistics.median(v) for n, v in times.get((kind, rname, t), {}).items()}
        if "glibc" not in med or "osmem" not in med:
            continue
        best = min(med.values())
        g = med["glibc"]
        row = []
        for n in names:
            if n != "glibc":
                s = "%.2f" % (med[n] / g) if n in med else ""
                row.append("**%s**" % s if n in med and med[n] == best else s)
        pbest = min((med[n] for n in peers if n in med), default=None)
        vs_peer = med["osmem"] / pbest if pbest else None
        bad = med["osmem"] > SLOW * g or (vs_peer is not None and vs_peer > SLOW)
        marked += bad
        slower += med["osmem"] > g
        worst.append((med["osmem"] / g, kind, rname, t))
        gs = "**%.3f**" % g if g == best else "%.3f" % g
        L.append("| %s | %s | %s | %s | %s | %s | %s |" % (kind, rname, t, gs, " | ".join(row),
                                                         "%.2f" % vs_peer if vs_peer else "", "⚠" if bad else ""))
    worst.sort(reverse=True)
    L[2:2] = ["**%d of %d cells marked; osmem slower than glibc in %d (by medians).** Its three worst against "
              "glibc: %s." % (marked, len(cells), slower, "; ".join("%s %s %s threads %.2fx" % (k, r, t, x)
                                                                     for x, k, r, t in worst[:3])), ""]
    return R.write_scan(out, L, problems, "apis", "%d of %d cells marked" % (marked, len(cells)))

if __name__ == "__main__":
    sys.exit(main())
