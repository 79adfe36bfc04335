#!/usr/bin/env python3
"""Runs bench/fastpath on glibc, osmem (default, classic, and with tracing compiled out) and, where installed,
jemalloc, mimalloc and tcmalloc, in one run; prints the median ns per op of N runs and the ratio to glibc.

The machines are shared and noisy: runs alternate between allocators so that a slow minute hits all of them."""
import argparse, os, statistics, subprocess, sys

LIBS = {
    "jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "mimalloc": "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2",
    "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    b = os.path.abspath(a.build)
    prog = os.path.join(b, "bench", "fastpath")
    configs = [("glibc", {}),
               ("osmem", {"LD_PRELOAD": f"{b}/libosmem-malloc.so"}),
               ("osmem-notrace", {"LD_PRELOAD": f"{b}/libosmem-malloc-notrace.so"}),
               ("osmem-classic", {"LD_PRELOAD": f"{b}/libosmem-malloc.so", "OSMEM_PROFILE": "classic"})]
    for name, path in LIBS.items():
        if os.path.exists(path):
            configs.append((name, {"LD_PRELOAD": path}))
        else:
            print(f"({name} not installed: apt-get install {os.path.basename(path)} to compare)")
    samples = {name: {} for name, _ in configs}
    for _ in range(a.runs):
        for name, env in configs:
            out = subprocess.run([prog], env=dict(os.environ, **env), capture_output=True, text=True,
                                 timeout=300).stdout
            for line in out.splitlines():
                k, v = line.split()
                samples[name].setdefault(k, []).append(float(v))
    tests = list(samples["glibc"])
    print(f"fastpath: median ns per op over {a.runs} runs (ratio to glibc; lower is faster)")
    print(f"{'allocator':<15}" + "".join(f"{t:>20}" for t in tests))
    for name, _ in configs:
        row = f"{name:<15}"
        for t in tests:
            m, g = statistics.median(samples[name][t]), statistics.median(samples["glibc"][t])
            row += f"{m:>11.1f} ({m / g:4.2f}x)"
        print(row)
    tr = [statistics.median(samples["osmem"][t]) / statistics.median(samples["osmem-notrace"][t]) for t in tests]
    print("tracing compiled in but off, against compiled out: " + ", ".join(f"{t} {r:.3f}x" for t, r in zip(tests, tr)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
