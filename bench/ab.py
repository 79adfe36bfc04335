#!/usr/bin/env python3
"""Paired A/B of two builds of the drop-in (or any two preloadable allocators) on one command: is B faster?

    python3 bench/ab.py [--pairs N] LIB_A LIB_B -- PROG ARGS...
    python3 bench/ab.py /tmp/old/libosmem-malloc.so build/libosmem-malloc.so -- build/bench/wl/pairs 1
    python3 bench/ab.py --env-b OSMEM_BACKGROUND=1 build/libosmem-malloc.so build/libosmem-malloc.so -- ...

The same library twice with --env-a/--env-b (NAME=VALUE, repeatable) compares two settings.

Runs A and B one after the other N times (the order flipped every pair: A first in the even ones), each run from
a fresh copy of its library (bench/run.py, fresh_copy: where a library's pages land in the page cache once made the
same bytes 3.4x slower), after checking that each library really is preloaded, and prints the medians, the median
of the pairs' ratios B/A, how many pairs B won, and Wilcoxon's signed-rank p (exact, two-sided) of the ratios.

Why paired: on this machine the same build's time moves by 5-10% from one batch of runs to the next (the host's
load), more than most changes are worth. Session 27 measured one change three ways: medians of two interleaved
11-run batches said 10% faster, then level; 40 alternating pairs said 7.7% faster (34 of 40) on one workload and
7.4% slower (24 of 30) on another. Judge a change by pairs, on every workload it touches."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402  (fresh_copy, signed_rank_p)


def timed(lib, cmd, work, extra=()):
    env = dict(os.environ)
    env.update(kv.split("=", 1) for kv in extra)
    env["LD_PRELOAD"] = R.fresh_copy(lib, work)
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit("ab: %s under %s exited %d: %s" % (" ".join(cmd), lib, p.returncode,
                                                     p.stderr.decode(errors="replace").strip()[-300:]))
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=30, help="pairs of runs (default 30, at least 5 for a p)")
    ap.add_argument("--build", default=os.path.join(R.ROOT, "build"),
                    help="where the fresh copies go (default build/; not /tmp, which may be noexec)")
    ap.add_argument("--env-a", action="append", default=[], metavar="NAME=VALUE", help="set for A's runs only")
    ap.add_argument("--env-b", action="append", default=[], metavar="NAME=VALUE", help="set for B's runs only")
    ap.add_argument("lib_a")
    ap.add_argument("lib_b")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command after --")
    if a.pairs < 1:
        ap.error("--pairs must be at least 1")
    for lib in (a.lib_a, a.lib_b):
        if not os.path.isfile(lib):
            ap.error("no such library: %s" % lib)
    for kv in a.env_a + a.env_b:
        if "=" not in kv or kv.startswith("="):
            ap.error("not NAME=VALUE: %s" % kv)
    os.makedirs(a.build, exist_ok=True)
    work = tempfile.mkdtemp(prefix="ab-", dir=a.build)
    ta, tb = [], []
    try:
        bad = R.check_preloads([("A", a.lib_a), ("B", a.lib_b)], dict(os.environ), work)
        if bad:  # ld.so only warns about a library it cannot preload: the runs would time glibc against glibc
            sys.exit("ab: " + "; ".join(bad))
        for i in range(a.pairs):
            if i % 2:
                tb.append(timed(a.lib_b, cmd, work, a.env_b))
                ta.append(timed(a.lib_a, cmd, work, a.env_a))
            else:
                ta.append(timed(a.lib_a, cmd, work, a.env_a))
                tb.append(timed(a.lib_b, cmd, work, a.env_b))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = [b / x for x, b in zip(ta, tb)]
    p = R.signed_rank_p(ratios)
    print("A %.4f s  B %.4f s (medians)  B/A %.3f (median of %d pairs)  B faster in %d  p %s" % (
        statistics.median(ta), statistics.median(tb), statistics.median(ratios), len(ratios),
        sum(r < 1 for r in ratios), "%.3g" % p if p is not None else "-"))


if __name__ == "__main__":
    main()
