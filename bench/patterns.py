#!/usr/bin/env python3
"""bench/patterns.py: a program's life over time (big buffers that grow, calloc in a loop, phases, idle periods,
threads coming and going), one pattern at a time under glibc, osmem, jemalloc, mimalloc and tcmalloc: time and
peak RSS, to find what neither the ranked suite (bench/run.py) nor the entry-point scan (bench/apis.py) runs.

Session 43 found the mapping cache holding up to five times glibc's memory on three of these (vecgrow,
growmalloc, callocbig). This runs bench/workloads/patterns.c for each pattern, the allocators interleaved, and
writes bench/results/patterns.md: each allocator's median time and peak RSS (VmHWM as the pattern ends), their
ratios to glibc's, the patterns' own resident-set figures (after a free, after an idle second), and a mark where
osmem takes more than SLOW times glibc's time or peak.

Usage: python3 bench/patterns.py [--build build] [--runs 3] [--only NAME,...] [--quick] [--out FILE]
(`make bench-patterns`: about 4 minutes at 3 runs.)"""
import argparse, os, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402  (bench/run.py: allocators, fresh copies, the spawn, the protocol)

SLOW = 1.5   # a pattern is marked where osmem's median time or peak is above this times glibc's


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", help="patterns (comma-separated; `patterns 1 list` names them)")
    ap.add_argument("--quick", action="store_true", help="a fifth of the work, 1 run: a smoke run")
    ap.add_argument("--out", help="the report (default bench/results/patterns.md; --quick: "
                    "BUILD/bench/patterns-quick.md)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    prog = os.path.join(build, "bench", "wl", "patterns")
    if not os.path.exists(prog):
        print("bench/patterns.py: %s is not built (make bench-build)" % prog)
        return 2
    names_all = subprocess.run([prog, "1", "list"], capture_output=True, text=True).stdout.split()
    pats = a.only.split(",") if a.only else names_all
    runs = 1 if a.quick else a.runs
    scale = 0.2 if a.quick else 1.0
    out = a.out or (os.path.join(build, "bench", "patterns-quick.md") if a.quick
                    else os.path.join(R.HERE, "results", "patterns.md"))
    allocs = R.allocators(build)
    env = R.base_env()
    fresh = os.path.join(build, "bench", "fresh")
    res = {}        # (pattern, allocator) -> list of metrics dicts
    problems = []
    start = time.time()
    for n in range(runs):
        for pat in pats:
            got, probs = R.scan_cell([prog, "%g" % scale, pat], allocs, env, fresh, n, pat)
            problems += probs
            for name, metrics in got.items():
                res.setdefault((pat, name), []).append(metrics)
        print("patterns: run %d of %d done (%.0f s)" % (n + 1, runs, time.time() - start), flush=True)
    names = [n for n, _ in allocs]
    others = [n for n in names if n != "glibc"]

    def med(pat, name, key):
        v = [m[key] for m in res.get((pat, name), []) if key in m]
        return statistics.median(v) if v else None

    L = ["# A program's life over time: osmem against glibc, jemalloc, mimalloc and tcmalloc", "",
         "%s; %d run(s) per cell, interleaved, median shown; `python3 bench/patterns.py%s` "
         "(bench/workloads/patterns.c, whose comments say what each pattern does). Time: the pattern's own "
         "(idle waits excluded); peak: VmHWM as it ends. Ratios to glibc's (below 1: faster or smaller); "
         "**bold**: the best; a pattern is marked ⚠ where osmem takes more than %.1f times glibc's time or peak."
         % (time.strftime("%Y-%m-%d %H:%M"), runs, " --quick" if a.quick else "", SLOW), ""]
    if problems:
        L += ["## Problems", ""] + ["- " + p for _, p in problems] + [""]
    L += ["| pattern | glibc (s) | " + " | ".join(others) + " | glibc peak (MiB) | " +
          " | ".join(others) + " | |",
          "| --- | ---: | " + " | ".join("---:" for _ in others) + " | ---: | " +
          " | ".join("---:" for _ in others) + " | --- |"]
    marked = 0
    extra = []
    for pat in pats:
        g_t, g_m = med(pat, "glibc", "secs"), med(pat, "glibc", "hwm_kb")
        if g_t is None or med(pat, "osmem", "secs") is None:
            continue
        ts = {n: med(pat, n, "secs") for n in names}
        ms = {n: med(pat, n, "hwm_kb") for n in names}
        bt = min(v for v in ts.values() if v is not None)
        bm = min(v for v in ms.values() if v is not None)

        def cell(v, base, best):
            if v is None:
                return ""
            s = "%.2f" % (v / base)
            return "**%s**" % s if v == best else s
        bad = ts["osmem"] > SLOW * g_t or ms["osmem"] > SLOW * g_m
        marked += bad
        gt = "**%.3f**" % g_t if g_t == bt else "%.3f" % g_t
        gm = "**%.1f**" % (g_m / 1024) if g_m == bm else "%.1f" % (g_m / 1024)
        L.append("| %s | %s | %s | %s | %s | %s |" % (pat, gt, " | ".join(cell(ts[n], g_t, bt) for n in others),
                                                     gm, " | ".join(cell(ms[n], g_m, bm) for n in others),
                                                     "⚠" if bad else ""))
        keys = sorted({k for n in names for m in res.get((pat, n), []) for k in m if k.startswith("rss_")})
        for k in keys:
            extra.append("| %s | %s | %s |" % (pat, k[4:-3].replace("_", " "), " | ".join(
                "%.1f" % (med(pat, n, k) / 1024) if med(pat, n, k) is not None else "" for n in names)))
    L[2:2] = ["**%d of %d patterns marked.**" % (marked, len(pats)), ""]
    if extra:
        L += ["", "## Resident set at the patterns' own moments (MiB, median)", "",
              "| pattern | moment | " + " | ".join(names) + " |",
              "| --- | --- | " + " | ".join("---:" for _ in names) + " |"] + extra
    return R.write_scan(out, L, problems, "patterns", "%d of %d patterns marked" % (marked, len(pats)))

if __name__ == "__main__":
    sys.exit(main())
