#!/usr/bin/env python3
"""Runs every osmem test in BUILD and ends with one line: 'N passed, N failed'.

Each test program prints 'PASS name' / 'FAIL name: why' lines; a program that crashes, times out or prints
no result counts as a failure. The spec tests (test_spec.py) follow the same protocol."""
import argparse, concurrent.futures, os, re, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, timeout):
    t0 = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, text=True)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"
    return out, rc, time.time() - t0


# The programs that take longest (seconds on a 2-CPU machine charging 10 us a page fault): started first.
LONG = ["test_programs", "test_fuzz", "test_bench_report", "test_glibc", "malloc_faults", "test_heapmap",
        "malloc_soak", "test_differential", "test_valgrind", "test_strict", "test_hardened", "malloc_mapcache",
        "malloc_growth", "test_faults", "malloc_front_protect_fork_front", "test_protect_fork_signal",
        "malloc_background"]
DETAIL = 40  # lines of a failure's explanation shown after its FAIL line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", help="run only these test programs (names separated by commas)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("OSMEM_TEST_JOBS", "0")) or os.cpu_count() or 1,
                    help="test programs run at once (default: the CPUs, or OSMEM_TEST_JOBS); results print in order")
    ap.add_argument("--core-only", action="store_true",
                    help="only the tests of the os_* API (sanitizer builds: ASan owns malloc there)")
    a = ap.parse_args()

    # test_*: the classic API and the core; malloc_* and the scripts below them: the drop-in malloc
    progs = []
    scripts = sorted(f for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py"))
    scripts.sort(key=lambda f: f != "test_spec.py")
    for f in scripts:
        name = f[:-3]
        if a.core_only and name not in ("test_spec", "test_observe"):
            continue
        if not a.only or name in a.only.split(","):
            progs.append((name, [sys.executable, os.path.join(HERE, f), "--build", a.build]))
    tdir = os.path.join(a.build, "tests")
    for name in sorted(os.listdir(tdir)):
        if name.startswith(("test_", "malloc_")) and os.access(os.path.join(tdir, name), os.X_OK):
            if a.core_only and not name.startswith("test_"):
                continue
            if not a.only or name in a.only.split(","):
                progs.append((name, [os.path.join(tdir, name)]))

    # The programs run a.jobs at a time, the longest first (a 2-CPU CI machine spent 590 s on them one by one);
    # each program's lines print whole, in the list's order. A test must hold on a busy machine anyway.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs))
    futures = {}  # by place in progs: test_faults is both a script and a program
    for i in sorted(range(len(progs)), key=lambda i: LONG.index(progs[i][0]) if progs[i][0] in LONG else len(LONG)):
        futures[i] = pool.submit(run, progs[i][1], a.timeout)
    passed = failed = 0
    for i, (name, cmd) in enumerate(progs):
        out, rc, secs = futures[i].result()
        p = len(re.findall(r"^PASS ", out, re.M))
        f = len(re.findall(r"^FAIL ", out, re.M))
        # A failure's explanation may go on over several lines (a program's stderr, a diff): those lines are kept,
        # up to DETAIL of them, until the next result line. Before session 40 only the FAIL line itself was shown,
        # and a check log said "osmem killed by SIGABRT; stdout differs:" with nothing after it.
        detail = 0
        for line in out.splitlines():
            if line.startswith(("PASS ", "FAIL ")) or "heap check failed" in line:
                print(f"  {name}: {line}")
                detail = DETAIL if line.startswith("FAIL ") else 0
            elif detail and not re.match(r"\s*\d+ passed, \d+ failed", line):
                print(f"      {line}")
                detail -= 1
        if rc != 0 and f == 0:
            f = 1
            print(f"  {name}: FAIL exit status {rc}\n" + "\n".join("    " + l for l in out.splitlines()[-20:]))
        if p + f == 0:
            f = 1
            print(f"  {name}: FAIL printed no result")
        print(f"{name}: {p} passed, {f} failed ({secs:.1f}s)", flush=True)
        passed += p
        failed += f
    pool.shutdown()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
