#!/usr/bin/env python3
"""The classic allocator under Valgrind's memcheck: no invalid read or write, no use of uninitialised bytes, in
osmem or in the tests that drive it.

  - valgrind_test_differential: build/tests/test_differential with a tenth of its operations (its second
    argument divides every phase's count), every phase passing;
  - valgrind_spec_<scenario>: each scenario of tests/test_spec.py run by build/tests/spec_prog. Valgrind emulates
    the break its own way, so the system calls are not compared here (test_spec.py does that); what counts is
    memcheck's error count and an exit status of 0 (or the abort a death scenario expects). Two differences from
    test_spec.py, said here and printed when the test runs: spec_prog's check of freed bytes (OSMEM_SPEC_GHOSTS)
    stays off, because it compares freed bytes the program never wrote, which memcheck calls uninitialised (the
    break's fresh pages are undefined to it, zero to the kernel); and the scenarios that lower RLIMIT_DATA
    (`L` statements) do not run, because Valgrind does not apply the client's limit to its mappings: the
    requests they expect to fail succeed, and their scripts then read blocks that moved away.
All under `valgrind --error-exitcode=1`, with tests/valgrind.supp (one documented read: osm_user_block checking the
header of a pointer that lies inside a block, whose bytes the program never wrote); about a minute on two busy cores. Plain build only (the sanitizer
builds do not run the scripts, tests/run_tests.py --core-only). Valgrind missing is a failure, not a skip:
tests/setup.sh installs it."""
import argparse, os, shutil, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
DIVISOR = 10


def valgrind(cmd, env=None, timeout=600):
    with tempfile.NamedTemporaryFile(prefix="osmem-vg-", suffix=".log", delete=False) as f:
        log = f.name
    try:
        full = ["valgrind", "-q", "--error-exitcode=1", "--suppressions=" + os.path.join(HERE, "valgrind.supp"),
                "--log-file=" + log] + cmd
        try:
            p = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=timeout,
                               text=True, errors="replace")
            rc, out = p.returncode, p.stdout
        except subprocess.TimeoutExpired:
            rc, out = "timeout", ""
        vg = open(log, errors="replace").read()
    finally:
        os.unlink(log)
    return rc, out, vg


def first_error(vg):
    lines = [l for l in vg.splitlines() if l.strip() and not l.startswith("==") or "Invalid" in l or
             "uninitialised" in l or "Conditional jump" in l]
    return (lines[0] if lines else vg.strip().splitlines()[0] if vg.strip() else "").strip()


def run_differential(build):
    prog = os.path.join(build, "tests", "test_differential")
    if not os.path.exists(prog):
        return False, f"{prog} is not built"
    rc, out, vg = valgrind([prog, "20240601", str(DIVISOR)])
    fails = [l for l in out.splitlines() if l.startswith("FAIL ")]
    passes = [l for l in out.splitlines() if l.startswith("PASS ")]
    if rc == 0 and not fails and passes and not vg.strip():
        return True, f"{len(passes)} phases, 1/{DIVISOR} of the operations, no memcheck error"
    why = fails[0] if fails else (f"memcheck: {first_error(vg)}" if vg.strip() else f"exit status {rc}")
    return False, why


def run_scenario(prog, sc):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "MALLOC_", "GLIBC_TUNABLES"))}
    rc, out, vg = valgrind([prog, sc["script"]], env=env, timeout=120)
    if vg.strip():
        return False, "memcheck: " + first_error(vg)
    if rc == "timeout":
        return False, "timed out"
    # a death scenario ends in osmem's report and SIGABRT; every other one exits 0
    if sc["death"] and rc in (-6, 134):
        return True, ""
    if rc != 0:
        return False, f"exit status {rc}" + (" (a death scenario: want SIGABRT)" if sc["death"] else "")
    return True, ""


def limits_data(script):
    return any(st.strip().split(" ")[0] == "L" for st in script.split(";"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        print("FAIL valgrind_installed: valgrind is not installed (tests/setup.sh installs it)")
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0

    def report(name, ok, why):
        nonlocal passed, failed
        print(f"PASS {name}" + (f": {why}" if ok and why else "") if ok else f"FAIL {name}: {why}", flush=True)
        passed += ok
        failed += not ok

    import test_spec  # the scenarios, as test_spec.py runs them
    prog = os.path.join(a.build, "tests", "spec_prog")
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        diff = ex.submit(run_differential, a.build)
        if not os.path.exists(prog):
            report("valgrind_spec_prog_built", False, f"{prog} is not built")
        else:
            runnable = [sc for sc in test_spec.SCENARIOS if not limits_data(sc["script"])]
            left = [sc["name"] for sc in test_spec.SCENARIOS if limits_data(sc["script"])]
            print(f"note: {len(left)} scenarios lower RLIMIT_DATA, which Valgrind does not apply to the client's "
                  f"mappings; not run here (test_spec.py runs them): {', '.join(left)}")
            print("note: spec_prog's check of freed bytes is off under Valgrind (test_spec.py runs it)")
            results = ex.map(lambda sc: (sc["name"], run_scenario(prog, sc)), runnable)
            for name, (ok, why) in results:
                report("valgrind_spec_" + name, ok, why)
        report("valgrind_test_differential", *diff.result())
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
