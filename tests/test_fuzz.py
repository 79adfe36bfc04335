#!/usr/bin/env python3
"""The libFuzzer harnesses of fuzz/ (fuzz/README.md), as a test: builds them (`make fuzz-build`, clang), replays
every input kept in fuzz/crashes/<harness>/ (each once: a finding, once fixed, stays fixed), then runs each
harness for OSMEM_FUZZ_SECONDS seconds (default 15; 30 until session 49, when CI neared its 15 minutes) or
OSMEM_FUZZ_RUNS inputs (default 3000), whichever comes first, two at a time, with a fixed seed (OSMEM_FUZZ_SEED,
default 1) from a fresh working corpus: every machine
tries the same inputs in the same order and none goes further than the runs verified here, so a CI failure is a
bug, not luck of the draw. `make fuzz` runs them longer, with random seeds. Prints per harness
'PASS fuzz_<name>: execs=.. cov=.. ft=.. corpus=..' or 'FAIL ...: why', and 'N passed, N failed'.

The harnesses live in BUILD-fuzz (build -> build-fuzz); the short runs' working corpora, artifacts and logs in
BUILD-fuzz/check, apart from those of `make fuzz` (a failing harness names its artifact there). Plain build only:
tests/run_tests.py runs no script but test_spec and test_observe in the sanitizer builds. clang or libFuzzer
missing is a failure, not a skip: tests/setup.sh installs them."""
import argparse, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "fuzz"))
import run as fuzz_run  # fuzz/run.py


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("OSMEM_FUZZ_SECONDS", "15")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("OSMEM_FUZZ_SEED", "1")))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("OSMEM_FUZZ_RUNS", "3000")),
                    help="at most this many inputs per harness (0: as many as the time allows)")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    build = a.build.rstrip("/")
    fdir = os.path.abspath(build + "-fuzz")
    passed = failed = 0

    def report(ok, line):
        nonlocal passed, failed
        print(line, flush=True)
        passed += ok
        failed += not ok

    make = os.environ.get("MAKE", "make")
    p = subprocess.run(["nice", make, "-C", ROOT, "-j2", f"BUILD={build}", f"FUZZ_BUILD={fdir}", "fuzz-build"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    if p.returncode != 0:
        report(False, "FAIL fuzz_build: make fuzz-build failed (clang and libclang-rt-14-dev: tests/setup.sh)\n" +
               "\n".join("    " + l for l in p.stdout.splitlines()[-15:]))
        print(f"{passed} passed, {failed} failed")
        return 1

    # secret_not_traced: osmem's objects carry no comparison tracing. With it, libFuzzer learned the freed mark
    # (slot ^ secret) from free's compare and wrote it into its own data: the parent of fuzz_corrupt then freed a
    # buffer holding it at word 1 and osmem reported a double free (seed 1, about 2,800 runs).
    traced = []
    for sub in ("obj", "obj-malloc"):
        d = os.path.join(fdir, sub)
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            syms = subprocess.run(["nm", "-u", os.path.join(d, f)], stdout=subprocess.PIPE, text=True).stdout
            if "__sanitizer_cov_trace_cmp" in syms or "__sanitizer_cov_trace_const_cmp" in syms:
                traced.append(f"{sub}/{f}")
    report(not traced and os.path.isdir(os.path.join(fdir, "obj-malloc")),
           "PASS fuzz_secret_not_traced" if not traced else
           "FAIL fuzz_secret_not_traced: comparison tracing in " + ", ".join(traced[:6]) +
           " (libFuzzer learns the free-list secrets from it: FUZZ_LIBFLAGS needs -fno-sanitize-coverage=trace-cmp)")

    # the findings kept as inputs: each must now run clean
    crashes = os.path.join(ROOT, "fuzz", "crashes")
    env = dict(os.environ)
    for var in ("OSMEM_PROFILE", "OSMEM_TRACE", "OSMEM_FRONT", "FUZZ_REEXECED", "FUZZ_KNOWN", "FUZZ_SILENT_FATAL"):
        env.pop(var, None)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    for harness in sorted(os.listdir(crashes)) if os.path.isdir(crashes) else []:
        hdir = os.path.join(crashes, harness)
        if not os.path.isdir(hdir):
            continue
        for f in sorted(os.listdir(hdir)):
            name = f"fuzz_replay_{harness}_{f.split('-')[0]}"
            # an input kept for a silent result (fuzz_corrupt: a model failure after a corruption osmem did not
            # report) is named silent_*: it replays with such results fatal, so that it fails until fixed
            fenv = dict(env, FUZZ_SILENT_FATAL="1") if f.startswith("silent_") else env
            try:
                r = subprocess.run([os.path.join(fdir, harness), os.path.join(hdir, f)], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace", env=fenv, timeout=300)
                out, rc = r.stdout, r.returncode
            except subprocess.TimeoutExpired:
                out, rc = "", "timeout"
            if rc == 0:
                report(True, f"PASS {name}")
            else:
                lines = out.splitlines()
                why = f"exit status {rc}"
                for pat in ("FINDING", "runtime error", "ERROR: Address", "CRASH:", "MODEL:", "FUZZ FAIL"):
                    hit = [i for i, l in enumerate(lines) if pat in l and not l.startswith(("#", '"'))]
                    if hit:
                        i = hit[0]
                        why = lines[i].strip() + (" " + lines[i + 1].strip() if pat == "FINDING" and
                                                  i + 1 < len(lines) else "")
                        break
                where = next((l.strip() for l in out.splitlines() if l.strip().startswith("#0 ")), "")
                report(False, f"FAIL {name}: fuzz/crashes/{harness}/{f} still fails: {why}"
                              + (f" [{where}]" if where and where not in why else ""))

    # The short runs work in BUILD-fuzz/check, not in BUILD-fuzz's own corpus/ and logs/, which `make fuzz` and
    # fuzz/run.py keep between runs: a `make check` during a long fuzz run deleted that run's working corpora, and
    # the fuzzers stopped ("No such file or directory: build-fuzz/corpus/fuzz_ops; exiting", session 71).
    # protect_long_fuzz_run: a marker in BUILD-fuzz/corpus/ (no harness reads that directory itself) must survive
    # the short runs, and their logs must be in BUILD-fuzz/check/logs, written now. (Not the mtimes of the logs in
    # BUILD-fuzz/logs: a long run going on writes them itself.)
    names = fuzz_run.HARNESSES
    import shutil, time
    marker = os.path.join(fdir, "corpus", ".protect_long_fuzz_run")
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    open(marker, "w").close()
    root = os.path.join(fdir, "check")
    shutil.rmtree(os.path.join(root, "corpus"), ignore_errors=True)  # fresh: the same start everywhere
    started = time.time() - 1
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        for ok, line in ex.map(lambda n: fuzz_run.run_one(fdir, n, a.seconds, a.seed, a.runs, root), names):
            report(ok, line)
    logs = [os.path.join(root, "logs", n + ".log") for n in names]
    stale = [l for l in logs if not os.path.exists(l) or os.stat(l).st_mtime < started]
    kept = os.path.exists(marker)
    report(kept and not stale, "PASS fuzz/protect_long_fuzz_run" if kept and not stale else
           "FAIL fuzz/protect_long_fuzz_run: the short runs " +
           ("deleted %s, the working corpora of `make fuzz`" % os.path.dirname(marker) if not kept else
            "wrote no log in %s (%s): they wrote where a longer run keeps its own" % (
                os.path.join(root, "logs"), ", ".join(os.path.basename(l) for l in stale))))
    if kept:
        os.unlink(marker)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
