#!/usr/bin/env python3
"""test_protect_signal_heap: a signal handler that allocates, in the middle of a thread's first medium request.

Hazard (session 53's review): a thread's first medium request begins its use of the medium bins on the empty heap,
which is not counted in (internal.h, mc_enter), and makes the thread's heap further in (medium.c, cache_heap). A
signal handler that allocates between the two makes the heap itself; the request then used the bins uncounted, and
its end counted out of the new heap anyway: the count (mc_busy) went from 0 to 255. From then on the thread's
count read 255 while it was idle, so no pass ever gave its idle cache back, and 0 while it used its bins, so a pass
could give them back under it (a false "write after free" abort of a valid program, or a block both handed out and
free in the core).

gdb stops the thread inside the request at the function named below (the use begun, no heap yet) and delivers
SIGUSR1, whose handler calls malloc(64). tests/gdb/signal_first_medium.c then checks that the thread's idle cache
is given back; gdb prints the count where the thread is inside no use: it must be 0.

- protect_signal/handler_makes_heap_within_first_medium_malloc: the first request is malloc(3000), stopped in
  osm_front_medium_refill (its miss);
- protect_signal/handler_makes_heap_within_first_medium_free: the first is the free of a 3000-byte block of the main
  thread, stopped in osm_front_medium_free_slow.

Needs gdb (tests/setup.sh installs it). Prints PASS/FAIL lines; exits 1 when something failed."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "tests", "gdb", "signal_first_medium.c")

GDB_SCRIPT = """set pagination off
set confirm off
set startup-with-shell off
handle SIGUSR1 nostop noprint pass
set breakpoint pending on
break before_first_request
run
tbreak {stop}
continue
printf "osmem-test: stopped with no heap: %d\\n", osm_front_tl_heap == &osm_front_empty_heap
break after_first_request
signal SIGUSR1
printf "osmem-test: mc_busy=%d\\n", osm_front_tl_heap->mc_busy
delete
continue
"""

CASES = [("handler_makes_heap_within_first_medium_malloc", "malloc", "osm_front_medium_refill"),
         ("handler_makes_heap_within_first_medium_free", "free", "osm_front_medium_free_slow")]


results = []


def check(name, ok, why):
    results.append(bool(ok))
    print(f"PASS protect_signal/{name}" if ok else f"FAIL protect_signal/{name}: {why}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    build = os.path.abspath(ap.parse_args().build)
    gdb = shutil.which("gdb")
    if not gdb:
        for name, _, _ in CASES:
            check(name, False, "gdb is not installed (tests/setup.sh installs it)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "signal_first_medium")
        r = subprocess.run(["cc", "-O2", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror",
                            "-I" + os.path.join(ROOT, "include"), SRC, "-o", exe, "-L" + build, "-losmem-malloc",
                            "-Wl,-rpath," + build, "-lpthread"], capture_output=True, text=True)
        if r.returncode:
            for name, _, _ in CASES:
                check(name, False, "cannot build tests/gdb/signal_first_medium.c: " + r.stderr.strip()[-400:])
            return 1
        for name, mode, stop in CASES:
            script = os.path.join(tmp, mode + ".gdb")
            with open(script, "w") as f:
                f.write(GDB_SCRIPT.format(stop=stop))
            env = dict(os.environ)
            env.pop("LD_PRELOAD", None)
            try:
                p = subprocess.run([gdb, "-q", "-batch", "-nx", "-x", script, "--args", exe, mode], env=env,
                                   capture_output=True, text=True, timeout=180)
                out = p.stdout + p.stderr
            except subprocess.TimeoutExpired as e:
                out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
                check(name, False, "gdb did not finish in 180 s; its output: " + out.strip()[-600:])
                continue
            stopped = re.search(r"osmem-test: stopped with no heap: (\d+)", out)
            busy = re.search(r"osmem-test: mc_busy=(\d+)", out)
            verdict = re.search(r"^(given back.*|NOT given back.*)$", out, re.M)
            exited_ok = "exited normally" in out
            if not stopped or stopped.group(1) != "1":
                check(name, False, f"gdb did not stop the thread in {stop} before it had a heap (its output: "
                      + out.strip()[-600:] + ")")
            elif not busy or busy.group(1) != "0":
                check(name, False, "after the request, with the thread inside no use of its bins, its count of "
                      f"uses is {busy.group(1) if busy else '(not printed)'} (want 0); "
                      + (verdict.group(1) if verdict else "the program said nothing"))
            elif not verdict or not verdict.group(1).startswith("given back") or not exited_ok:
                check(name, False, (verdict.group(1) if verdict else "the program did not finish: "
                                    + out.strip()[-600:]))
            else:
                check(name, True, "")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
