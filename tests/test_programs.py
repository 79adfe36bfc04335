#!/usr/bin/env python3
"""Real programs on osmem: each runs unchanged on glibc and under tools/osmem-run (and, for the cheaper ones,
under tools/osmem-run --classic too), and the outputs (stdout and exit status) must be identical.

    python3 tests/test_programs.py --build build [--only NAME] [--keep]

Programs: python3 (a 4-thread churn script and CPython's own regression tests), sqlite3, gcc (cc1, as and ld
run under osmem too: LD_PRELOAD goes to the children), git, perl, lua5.4, sort and gzip on a 50 MB file, and a
redis-server of our own on a free loopback port (redis-benchmark plus a 20k-key round trip), node (V8's
buffers across the mmap threshold, zlib, Maps, worker threads handing buffers to the main thread), and a program on
Boehm's libgc, whose roots (every library's writable segments, scanned at each collection) must stay near glibc's,
a PostgreSQL server (tests/programs/workload_pg.sql, then pgbench's four backends, forked by the postmaster; its
programs run as the postgres user when we are root) and the JVM (javac, then tests/programs/Churn.java).

Missing Debian packages (tests/programs/packages.txt) are installed first when we are root. Prints
'PASS prog/NAME' or 'FAIL prog/NAME: why' per check and ends with 'N passed, N failed'; exits 1 on a failure.
Standard library only."""
import argparse
import difflib
import glob
import hashlib
import os
import random
import resource
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROGS = os.path.join(HERE, "programs")
PY = "/usr/bin/python3"          # Debian's, never a pyenv build that may be first on PATH
LAUNCHER = os.path.join(ROOT, "tools", "osmem-run")

# CPython regression tests: all pass on glibc here and take ~15 s together with -j2 on an idle machine. Only
# modules without timing assertions: test_threading is left out, since its lock_tests (BarrierTests: 5 threads
# must meet within 2 s; assertTimeout: a 0.5 s wait must end within 5 s) fail on a busy 2-core machine whatever
# the allocator. Threads still run here in test_threading_local, test_gc (trashcan threads) and test_hashlib.
REGRTESTS = ["test_dict", "test_list", "test_unicode", "test_threading_local", "test_set", "test_bytes",
             "test_re", "test_json", "test_collections", "test_gc", "test_array", "test_memoryview",
             "test_struct", "test_deque", "test_sort", "test_zlib", "test_bz2", "test_hashlib", "test_tracemalloc",
             "test_ctypes", "test_mmap"]
REGRTEST_TIMEOUT = 600           # seconds per module (regrtest --timeout): ~40x the slowest module's idle time
REGRTEST_WALL = 800              # seconds for one whole run (test_programs.py itself has 900 in run_tests.py)
REGRTEST_RETRIES = 2             # reruns of the modules that failed on glibc (the baseline only, one at a time)

results = []                     # (name, ok)
timings = []                     # (name, {side: seconds})


# ---------------------------------------------------------------------------------------------- helpers

class Res:
    def __init__(self, argv, rc, out, err, secs, timed_out):
        self.argv, self.rc, self.out, self.err, self.secs, self.timed_out = argv, rc, out, err, secs, timed_out

    def status(self):
        if self.timed_out:
            return "timed out after %.0fs" % self.secs
        if self.rc is not None and self.rc < 0:
            try:
                return "killed by %s" % signal.Signals(-self.rc).name
            except ValueError:
                return "killed by signal %d" % -self.rc
        return "exit %s" % self.rc

    def cmdline(self):
        """A shell line that reproduces the run: directory, extra environment, command, standard input."""
        env = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(self.extra_env.items()))
        return "%s%s%s%s" % ("cd %s && " % shlex.quote(self.cwd) if self.cwd else "", env + " " if env else "",
                             shlex.join(self.argv), " < " + shlex.quote(self.stdin_file) if self.stdin_file else "")


class Runner:
    def __init__(self, lib, no_preload):
        self.lib, self.no_preload = lib, no_preload
        env = dict(os.environ)
        for k in ("LD_PRELOAD", "OSMEM_PROFILE", "OSMEM_STATS", "OSMEM_TRACE", "OSMEM_TRACE_PID",
                  "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONMALLOC", "PYTHONHASHSEED", "MALLOC_CHECK_",
                  "MALLOC_PERTURB_", "GLIBC_TUNABLES"):
            env.pop(k, None)
        env["LC_ALL"] = "C.UTF-8"
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"     # Debian's programs, not pyenv shims
        self.env = env

    def argv(self, side, cmd):
        if side == "glibc" or self.no_preload:
            return list(cmd)
        pre = [LAUNCHER] + (["--classic"] if side == "classic" else []) + ["--lib", self.lib, "--"]
        return pre + list(cmd)

    def run(self, side, cmd, timeout, cwd=None, env=None, stdin_file=None):
        argv = self.argv(side, cmd)
        stdin = open(stdin_file, "rb").read() if stdin_file else None
        e = dict(self.env)
        e.update(env or {})
        t0, ru0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.Popen(argv, cwd=cwd, env=e, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        timed_out = False
        try:
            out, err = p.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(p.pid, signal.SIGKILL)       # the session we started for it: the program and its children
            except ProcessLookupError:
                pass
            out, err = p.communicate()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = Res(argv, p.returncode, out, err, time.time() - t0, timed_out)
        r.extra_env, r.cwd, r.stdin_file = dict(env or {}), cwd, stdin_file
        r.cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
        return r


def report(name, ok, why=""):
    results.append((name, ok))
    if ok:
        print("PASS prog/%s" % name, flush=True)
    else:
        print("FAIL prog/%s: %s" % (name, why.rstrip()), flush=True)


def tail(b, n=12):
    lines = b.decode(errors="replace").splitlines()
    return "\n".join("      " + l[:300] for l in lines[-n:])


def short_diff(a, b, n=20):
    d = list(difflib.unified_diff(a.decode(errors="replace").splitlines(), b.decode(errors="replace").splitlines(),
                                  "glibc", "osmem", lineterm="", n=1))
    more = "\n      ... (%d more diff lines)" % (len(d) - n) if len(d) > n else ""
    return "\n".join("      " + l[:300] for l in d[:n]) + more


def osmem_lines(b):
    return [l for l in b.decode(errors="replace").splitlines() if re.match(r"\s*osmem: ", l)]


def describe(r, what="osmem"):
    return "\n    %s command: %s\n    %s: %s\n    stderr (last lines):\n%s" % (
        what, r.cmdline(), what, r.status(), tail(r.err) or "      (empty)")


def compare(name, base, other):
    """Same exit status and same stdout; no osmem diagnostics on stderr."""
    if base.timed_out or base.rc < 0:
        return report(name, False, "the glibc baseline itself failed (%s)%s" % (base.status(), describe(base, "glibc")))
    problems = []
    if other.timed_out or other.rc != base.rc:
        problems.append("exit status: glibc %s, osmem %s" % (base.status(), other.status()))
    bo, oo = base.out, other.out
    if bo != oo:
        problems.append("stdout differs:\n" + short_diff(bo, oo))
    diag = osmem_lines(other.err)
    if diag and not osmem_lines(base.err):
        problems.append("osmem diagnostics on stderr: " + " | ".join(diag[:3]))
    if problems:
        return report(name, False, "; ".join(problems) + describe(other))
    report(name, True)


def sides(classic):
    return ["glibc", "osmem"] + (["classic"] if classic else [])


def run_compare(R, name, cmd, timeout, classic=False, **kw):
    """Runs cmd on every side (glibc first) and compares each osmem side with glibc, which must exit 0."""
    res = {s: R.run(s, cmd, timeout, **kw) for s in sides(classic)}
    timings.append((name, {s: (r.secs, r.cpu) for s, r in res.items()}))
    base = res["glibc"]
    if base.rc != 0 or base.timed_out:
        for s in sides(classic)[1:]:
            report(name + ("-classic" if s == "classic" else ""), False,
                   "the glibc baseline failed (%s), nothing to compare with%s" % (base.status(), describe(base, "glibc")))
        return res
    for s in sides(classic)[1:]:
        compare(name + ("-classic" if s == "classic" else ""), base, res[s])
    return res


# ---------------------------------------------------------------------------------------------- setup

def required_packages():
    with open(os.path.join(PROGS, "packages.txt")) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def missing_packages():
    need = []
    for pkg in required_packages():
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=30)
        if "install ok installed" not in r.stdout:
            need.append(pkg)
    return need


def setup():
    try:
        need = missing_packages()
    except (OSError, subprocess.SubprocessError) as e:
        return "cannot query dpkg: %s" % e
    if not need:
        return None
    if os.geteuid() != 0:
        return "missing Debian packages %s (run as root to install them)" % " ".join(need)
    print("setup: installing %s" % " ".join(need), flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    try:
        subprocess.run(["apt-get"] + lock + ["update", "-qq"], env=env, timeout=600, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get"] + lock + ["install", "-y", "-qq"] + need, env=env, timeout=1200, check=True,
                       stdout=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return "apt-get failed: %s" % e
    still = missing_packages()
    return "still missing after apt-get: %s" % " ".join(still) if still else None


# ---------------------------------------------------------------------------------------------- checks

def check_preload(R, lib):
    """The launcher really preloads the library (for every side's programs below to mean anything)."""
    if R.no_preload:
        return report("preload", False, "--no-preload: the osmem side ran on glibc")
    problems = []
    for side in ("osmem", "classic"):
        r = R.run(side, ["sh", "-c", 'cat /proc/self/maps; echo "profile=$OSMEM_PROFILE"'], 30)
        maps = r.out.decode(errors="replace")
        if r.rc != 0 or os.path.realpath(lib) not in maps:
            problems.append("%s: %s not mapped in a child (%s)%s" % (side, lib, r.status(), describe(r)))
        want = "profile=classic" if side == "classic" else "profile="
        if (want + "\n") not in maps:
            problems.append("%s: expected %s in the environment" % (side, want))
    r = R.run("osmem", ["/bin/true"], 30)
    if osmem_lines(r.err) or r.rc != 0:
        problems.append("/bin/true under osmem: %s%s" % (r.status(), describe(r)))
    # --stats: a summary on standard error at exit, naming the classic profile under --classic
    for side, opts in (("osmem", ["--stats"]), ("classic", ["--classic", "--stats"])):
        argv = [LAUNCHER] + opts + ["--lib", lib, "--", "/bin/true"]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=R.env, timeout=30)
        st = osmem_lines(p.stderr)
        if p.returncode != 0 or not st or (side == "classic") != ("classic" in " ".join(st)):
            problems.append("%s: %s printed no statistics%s (exit %s):\n%s" % (
                side, shlex.join(argv), " naming the classic profile" if side == "classic" else "",
                p.returncode, tail(p.stderr, 4)))
    report("preload", not problems, "; ".join(problems))


def check_python_churn(R, work):
    script = os.path.join(PROGS, "churn.py")
    run_compare(R, "python3-churn", [PY, script], 240, classic=True, cwd=work)
    # every object through malloc (no pymalloc arenas): far more, far smaller allocations
    run_compare(R, "python3-churn-rawmalloc", [PY, script], 240, classic=True, cwd=work,
                env={"PYTHONMALLOC": "malloc"})


def regrtest_cmd(modules, jobs=2):
    # -W: the output of a failing module (its tracebacks) is printed; a passing run prints the same as without.
    return [PY, "-m", "test", "-j%d" % jobs, "-W", "--timeout", str(REGRTEST_TIMEOUT)] + list(modules)


PROGRESS = re.compile(r"^\d+:\d\d:\d\d(?: load avg: [\d.]+)? \[\s*\d+/\d+(?:/\d+)?\] (test_\w+) (.*)$", re.M)


def regrtest_results(out):
    """{module: (status, its output block)} from a regrtest run. The status is the progress line's verdict without
    its duration ('passed', 'skipped', 'failed (1 failure)', 'failed (env changed)', 'crashed (Exit code -11)',
    'timed out'...); the block, the lines regrtest printed after it (with -W: the failing module's output)."""
    text = out.decode(errors="replace")
    found = list(PROGRESS.finditer(text))
    res = {}
    for i, m in enumerate(found):
        status = re.sub(r"\s*\((?:[\d.]+ (?:ms|sec)|\d+ (?:min|hour)[^)]*)\)", "", m.group(2)).strip()
        status = re.sub(r"\s*-- running: .*$", "", status)
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        block = text[m.end():end]
        block = block.split("\n== Tests result")[0]
        res[m.group(1)] = (status, block)
    return res


def regrtest_ok(status):
    return status in ("passed", "skipped", "resource denied")


def regrtest_why(res, modules, r):
    """One line naming what failed in the run r: each module's verdict, the failing test cases and their errors."""
    parts = []
    for mod in modules:
        status, block = res.get(mod, ("no result%s" % (" (the run %s)" % r.status() if r.timed_out or r.rc < 0 else ""), ""))
        key = [l.strip() for l in block.splitlines()
               if re.match(r"(FAIL|ERROR): |[A-Za-z_][\w.]*(Error|Exception|Warning)\b|Fatal Python error|Warning -- ", l)]
        parts.append("%s %s%s" % (mod, status, ": " + " / ".join(k[:200] for k in key[:6]) if key else ""))
    return "; ".join(parts)


def regrtest_tails(res, modules, r, n=15):
    """The output of each failing module (its last n lines), else the run's own output tail."""
    out = []
    for mod in modules:
        block = res.get(mod, ("", ""))[1].strip("\n")
        if block.strip():
            out.append("    %s output (last lines):\n%s" % (mod, "\n".join("      " + l[:300] for l in block.splitlines()[-n:])))
    if not out:
        out.append("    output (last lines):\n%s\n    stderr (last lines):\n%s" % (tail(r.out, n), tail(r.err, n)))
    return "\n".join(out)


def check_python_regrtest(R, work):
    """REGRTESTS on glibc, then once on osmem; every module's verdict must be the same. A module that fails on
    glibc is rerun there alone (REGRTEST_RETRIES times): a baseline that passes only on retry is a busy machine, not
    a broken one. The osmem run is never retried."""
    name = "python3-regrtest"
    base = R.run("glibc", regrtest_cmd(REGRTESTS), REGRTEST_WALL, cwd=work)
    bres = regrtest_results(base.out)
    expect = {m: bres.get(m, ("no result", ""))[0] for m in REGRTESTS}
    bad = [m for m in REGRTESTS if not regrtest_ok(expect[m])]
    first_why = regrtest_why(bres, bad, base) if bad else ""
    last, lres = base, bres
    for attempt in range(1, REGRTEST_RETRIES + 1):
        if not bad:
            break
        last = R.run("glibc", regrtest_cmd(bad, jobs=1), REGRTEST_WALL, cwd=work)
        lres = regrtest_results(last.out)
        for m in bad:
            if m in lres:
                expect[m] = lres[m][0]
        print("  info: prog/%s: glibc baseline retry %d of %s: %s" % (
            name, attempt, " ".join(bad), ", ".join("%s %s" % (m, expect[m]) for m in bad)), flush=True)
        bad = [m for m in bad if not regrtest_ok(expect[m])]
    osm = R.run("osmem", regrtest_cmd(REGRTESTS), REGRTEST_WALL, cwd=work)
    timings.append((name, {"glibc": (base.secs, base.cpu), "osmem": (osm.secs, osm.cpu)}))
    if bad:
        return report(name, False, "the glibc baseline does not pass (glibc %s; %d retr%s of the failing modules "
                      "alone): %s; first run: %s\n%s%s" % (
                          last.status(), REGRTEST_RETRIES, "y" if REGRTEST_RETRIES == 1 else "ies",
                          regrtest_why(lres, bad, last), first_why, regrtest_tails(lres, bad, last),
                          describe(last, "glibc")))
    if first_why:
        print("  info: prog/%s: the glibc baseline passed only on retry (a busy machine): %s" % (name, first_why),
              flush=True)
    ores = regrtest_results(osm.out)
    differ = [m for m in REGRTESTS if ores.get(m, ("no result", ""))[0] != expect[m]]
    problems = []
    if differ:
        problems.append("modules whose verdict differs from glibc's: %s (glibc: %s)" % (
            regrtest_why(ores, differ, osm), ", ".join("%s %s" % (m, expect[m]) for m in differ)))
    if osm.timed_out or osm.rc != 0:
        problems.append("osmem run %s (glibc passes)" % osm.status())
    diag = osmem_lines(osm.err) + osmem_lines(osm.out)
    if diag:
        problems.append("osmem diagnostics: " + " | ".join(d.strip() for d in diag[:3]))
    if problems:
        return report(name, False, "; ".join(problems) + "\n" + regrtest_tails(ores, differ, osm) + describe(osm))
    report(name, True)


def check_sqlite(R, work):
    res = run_compare(R, "sqlite3", ["sqlite3", ":memory:"], 240, classic=True, cwd=work,
                      stdin_file=os.path.join(PROGS, "workload.sql"))
    if not res["glibc"].out.rstrip().endswith(b"ok") or res["glibc"].out.count(b"\n") < 30:
        report("sqlite3-baseline", False, "unexpected glibc output:\n" + tail(res["glibc"].out))


def check_perl_lua(R, work):
    run_compare(R, "perl", ["perl", os.path.join(PROGS, "workload.pl")], 120, classic=True, cwd=work)
    run_compare(R, "lua5.4", ["lua5.4", os.path.join(PROGS, "workload.lua")], 120, classic=True, cwd=work)


LIBGC_C = r"""
#include <stdio.h>
#include <stdlib.h>
/* libgc's own API, declared here: Debian's libgc1 has no headers without libgc-dev */
void GC_init(void);
void GC_gcollect(void);
void *GC_malloc(size_t);
void GC_dump(void);
int main(void)
{
	GC_init();
	char *keep = malloc(100); /* osmem's heap and front exist, as in any program */
	for (int i = 0; i < 200; i++) {
		for (int j = 0; j < 1000; j++)
			GC_malloc(64);
		GC_gcollect();
	}
	fflush(stdout);
	GC_dump(); /* its first lines: GC_root_size= N, the bytes of roots scanned at each collection */
	free(keep);
	return 0;
}
"""


def check_libgc(R, work):
    """Hazard: a conservative collector (Boehm's libgc: guile, w3m, inkscape) scans every writable segment of every
    loaded library for roots at each collection. The drop-in's .lbss held 30 MB of tables (the index's first slot
    chunk, the front's segment map): a program on libgc had 31 MB of roots under osmem where glibc's has 0.3 MB,
    and each collection scanned them (65 times glibc's time for a loop of small collections, twice guile's GC heap;
    a soak of real programs in session 55). Now the roots under osmem may exceed glibc's by less than 2 MiB."""
    lib = "/usr/lib/x86_64-linux-gnu/libgc.so.1"
    if not os.path.exists(lib):
        return report("libgc-roots", False, "%s is missing (tests/programs/packages.txt: libgc1)" % lib)
    src, exe = os.path.join(work, "gc.c"), os.path.join(work, "gc")
    with open(src, "w") as f:
        f.write(LIBGC_C)
    cc = subprocess.run(["gcc", "-O1", src, "-o", exe, lib], capture_output=True, text=True)
    if cc.returncode != 0:
        return report("libgc-roots", False, "the test program does not build: " + cc.stderr[-300:])
    roots = {}
    for side in ("glibc", "osmem"):
        r = R.run(side, [exe], 120, cwd=work)
        m = re.search(rb"GC_root_size= *(\d+)", r.out + r.err)
        if r.rc != 0 or not m:
            return report("libgc-roots", False, "%s: %s, no GC_root_size line%s" % (side, r.status(),
                                                                                  describe(r, side)))
        roots[side] = int(m.group(1))
    ok = roots["osmem"] < roots["glibc"] + (2 << 20)
    report("libgc-roots", ok, "libgc scans %d KiB of roots at each collection under osmem, %d KiB under glibc "
           "(want less than 2 MiB more: the library's writable segments are roots)"
           % (roots["osmem"] >> 10, roots["glibc"] >> 10))


def brk_refused(log):
    """The first brk(2) of an strace log that the kernel refused (it returned the old break), or None."""
    try:
        with open(log, errors="replace") as f:
            for line in f:
                m = re.search(r"brk\((0x[0-9a-f]+)\)\s+= (0x[0-9a-f]+)", line)
                if m and int(m.group(1), 16) != int(m.group(2), 16):
                    return line.strip()
    except OSError:
        return None
    return None


def check_node(R, work):
    cmd = ["node", os.path.join(PROGS, "workload.js")]
    res = run_compare(R, "node", cmd, 240, cwd=work)
    base = res["glibc"]
    lines = base.out.decode(errors="replace").splitlines()
    if len(lines) != 5 or not lines[0].startswith("buffers ") or not all(l.startswith("worker ") for l in lines[2:]):
        report("node-baseline", False, "unexpected glibc output:\n" + tail(base.out))
    if base.rc != 0 or base.timed_out:
        return
    # The classic profile under strace's record of brk(2). V8 maps its pages at random addresses of the whole
    # address space, and now and then (6 runs in about 170, session 40) one lands right above node's break (node is not
    # position-independent: its break starts below 1 GiB). The kernel then refuses to move the break, and the
    # classic profile returns NULL as docs/CLASSIC.md says ("When a system call fails"): node throws std::bad_alloc
    # and aborts. That is the address space's draw, not a defect, so such a run is tried again (at most twice more);
    # an abort without a refused brk is reported at once.
    log = os.path.join(work, "node-classic.brk")
    for attempt in range(3):
        c = R.run("classic", ["strace", "-f", "-qq", "-e", "trace=brk", "-o", log] + cmd, 240, cwd=work)
        refused = brk_refused(log) if c.rc != 0 and b"bad_alloc" in c.err else None
        if not refused:
            break
        print("note prog/node-classic: run %d: the kernel refused the break (%s); node aborted on std::bad_alloc, "
              "as the classic profile's rules have it; running again" % (attempt + 1, refused), flush=True)
    for name, t in timings:
        if name == "node":
            t["classic"] = (c.secs, c.cpu)
    if refused:
        return report("node-classic", False, "in 3 runs in a row the kernel refused to move the break (the last: %s) "
                      "and node aborted on std::bad_alloc: a mapping sat right above the break each time (a single run "
                      "meets this about once in 30)%s" % (refused, describe(c)))
    compare("node-classic", base, c)


def check_gcc(R, work):
    sys.path.insert(0, PROGS)
    sys.dont_write_bytecode = True           # no __pycache__ in the source tree
    import cprog
    d = os.path.join(work, "cprog")          # one directory for both sides: identical paths, identical binaries
    os.makedirs(d)
    srcs = cprog.write_sources(d)
    wrap = os.path.join(work, "gcc-wrap.sh")
    with open(wrap, "w") as f:                # gcc -wrapper: records whether each tool gcc runs has osmem mapped
        f.write('#!/bin/sh\nif grep -q libosmem-malloc /proc/$$/maps; then m=osmem; else m=glibc; fi\n'
                'echo "${1##*/} $m" >> "$GCC_WRAP_LOG"\nexec "$@"\n')
    os.chmod(wrap, 0o755)
    res, outs = {}, {}
    for side in ("glibc", "osmem"):
        log = os.path.join(work, "gcc-wrap-%s.log" % side)
        for f in os.listdir(d):
            if not f.endswith((".c", ".h")):
                os.unlink(os.path.join(d, f))
        cc = R.run(side, ["gcc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-wrapper", wrap, "-o", "prog"] + srcs,
                   300, cwd=d, env={"GCC_WRAP_LOG": log})
        run = R.run(side, ["./prog"], 60, cwd=d) if cc.rc == 0 else None
        binsum = hashlib.md5(open(os.path.join(d, "prog"), "rb").read()).hexdigest() if cc.rc == 0 else None
        tools = open(log).read().split("\n") if os.path.exists(log) else []
        res[side] = (cc, run, binsum, [t for t in tools if t])
        outs[side] = (cc.secs + (run.secs if run else 0), cc.cpu + (run.cpu if run else 0))
    timings.append(("gcc", outs))
    (bcc, brun, bsum, _), (occ, orun, osum, otools) = res["glibc"], res["osmem"]
    if bcc.rc != 0 or brun is None or brun.rc != 0:
        return report("gcc", False, "the glibc baseline failed%s" % describe(brun if bcc.rc == 0 else bcc, "glibc"))
    problems = []
    if occ.rc != 0:
        problems.append("gcc under osmem: %s%s" % (occ.status(), describe(occ)))
    else:
        if orun.rc != brun.rc or orun.out != brun.out:
            problems.append("program output (%s vs %s):\n%s%s" % (brun.status(), orun.status(),
                                                                   short_diff(brun.out, orun.out), describe(orun)))
        if osum != bsum:
            problems.append("the binary differs: glibc-built md5 %s, osmem-built md5 %s" % (bsum, osum))
        if occ.err != bcc.err:
            problems.append("gcc diagnostics differ:\n" + short_diff(bcc.err, occ.err))
    names = {t.split()[0] for t in otools}
    not_osmem = [t for t in otools if not t.endswith(" osmem")]
    if not R.no_preload and occ.rc == 0 and (not_osmem or not {"cc1", "as", "collect2"} <= names):
        problems.append("gcc's tools did not all run under osmem: %s" % ", ".join(otools))
    if any(osmem_lines(x.err) for x in (occ, orun) if x):
        problems.append("osmem diagnostics: " + " | ".join(osmem_lines(occ.err) + (osmem_lines(orun.err) if orun else [])))
    report("gcc", not problems, "; ".join(problems))


def check_git(R, work):
    script = os.path.join(PROGS, "git_workload.sh")
    res = {}
    for side in ("glibc", "osmem"):
        d = os.path.join(work, "git-" + side)
        os.makedirs(d)
        res[side] = R.run(side, ["sh", script, d], 240, cwd=work)
    timings.append(("git", {s: (r.secs, r.cpu) for s, r in res.items()}))
    if res["glibc"].rc != 0:
        return report("git", False, "the glibc baseline failed%s" % describe(res["glibc"], "glibc"))
    compare("git", res["glibc"], res["osmem"])


def make_big_file(path, size=50 * 1024 * 1024):
    """~50 MB of lines from a fixed seed: words repeat (ties for sort), numbers and hex vary."""
    rng = random.Random(4242)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(3, 12)))
             for _ in range(5000)]
    h = hashlib.md5()
    n = 0
    with open(path, "wb") as f:
        while n < size:
            chunk = "".join("%s %d %08x %s\n" % (rng.choice(words), rng.randrange(1000000), rng.getrandbits(32),
                                                 rng.choice(words)) for _ in range(20000)).encode()
            f.write(chunk)
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest()


def check_sort_gzip(R, work):
    big = os.path.join(work, "big.txt")
    digest = make_big_file(big)
    tmp = os.path.join(work, "sorttmp")
    os.makedirs(tmp)
    # the whole file in memory (default buffer), then a small buffer: temporary files and a multi-way merge
    run_compare(R, "sort", ["sh", "-c", "LC_ALL=C sort big.txt | md5sum; "
                            "LC_ALL=C sort -S 8M -T sorttmp --parallel=2 -t ' ' -k2,2n -k1,1 -k3 big.txt | md5sum"],
                300, classic=True, cwd=work)
    res = run_compare(R, "gzip", ["sh", "-c", "gzip -c -n big.txt > big.gz && md5sum < big.gz && "
                                  "gunzip -c big.gz | md5sum && rm -f big.gz"], 300, cwd=work)
    got = res["glibc"].out.split(b"\n")[1:2]
    if not got or not got[0].startswith(digest.encode()):
        report("gzip-roundtrip", False, "gunzip -c of gzip -c is not the file: md5 %s, file %s" % (got, digest))
    os.unlink(big)


# -------------------------------------------------------------------------------- redis (a RESP client)

class Redis:
    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.s.close()

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.s.recv(1 << 20)
            if not data:
                raise ConnectionError("connection closed by redis-server")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            data = self.s.recv(max(1 << 20, n + 2 - len(self.buf)))
            if not data:
                raise ConnectionError("connection closed by redis-server")
            self.buf += data
        v, self.buf = self.buf[:n], self.buf[n + 2:]
        return v

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            return RuntimeError(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError("bad RESP line %r" % line[:80])

    def pipeline(self, cmds, batch=500):
        replies = []
        for i in range(0, len(cmds), batch):
            part = cmds[i:i + batch]
            self.s.sendall(b"".join(self.encode(*c) for c in part))
            replies.extend(self.reply() for _ in part)
        return replies

    def call(self, *args):
        return self.pipeline([args])[0]


def redis_value(i):
    """Distinct, checkable values: small mostly, some of 100-300 KB (the large-block path)."""
    n = 200_000 + i * 7 % 100_000 if i % 1000 == 7 else 1 + (i * 7919) % 3000
    seed = hashlib.sha256(b"v%d" % i).digest()
    return (seed * (n // 32 + 1))[:n - len(b"%d:" % i)] + b"%d:" % i if n > len(b"%d:" % i) else b"%d" % i


def redis_roundtrip(port):
    """Writes 20k keys, reads every one back and checks it, churns (append, delete, lists, hashes), checks again.
    Returns a deterministic summary (compared across sides) or raises with what went wrong."""
    c = Redis(port)
    lines = []
    try:
        n = 20000
        vals = {i: redis_value(i) for i in range(n)}
        r = c.pipeline([("SET", "key:%d" % i, vals[i]) for i in range(n)])
        bad = [i for i, x in enumerate(r) if x != b"OK"]
        if bad:
            raise AssertionError("SET key:%d answered %r (%d bad)" % (bad[0], r[bad[0]], len(bad)))
        lines.append("dbsize %s" % c.call("DBSIZE"))
        got = c.pipeline([("GET", "key:%d" % i) for i in range(n)])
        bad = [i for i in range(n) if got[i] != vals[i]]
        if bad:
            i = bad[0]
            raise AssertionError("GET key:%d returned %d bytes %r..., expected %d bytes %r... (%d keys wrong)" % (
                i, len(got[i] or b""), (got[i] or b"")[:40], len(vals[i]), vals[i][:40], len(bad)))
        # churn: append to a third, delete a quarter, lists and hashes
        c.pipeline([("APPEND", "key:%d" % i, b"+tail%d" % i) for i in range(0, n, 3)])
        c.pipeline([("DEL", "key:%d" % i) for i in range(1, n, 4)])
        c.pipeline([("RPUSH", "list:%d" % (i % 50), b"item%d" % i) for i in range(n)])
        c.pipeline([("HSET", "hash:%d" % (i % 100), "f%d" % i, vals[i][:100]) for i in range(n)])
        c.pipeline([("LPOP", "list:%d" % (i % 50)) for i in range(0, n, 2)])
        got = c.pipeline([("GET", "key:%d" % i) for i in range(n)])
        for i in range(n):
            want = None if i % 4 == 1 else vals[i] + (b"+tail%d" % i if i % 3 == 0 else b"")
            if got[i] != want:
                raise AssertionError("after churn GET key:%d returned %r..., expected %r..." % (
                    i, (got[i] or b"")[:40], (want or b"")[:40]))
        lens = c.pipeline([("LLEN", "list:%d" % k) for k in range(50)])
        hl = c.pipeline([("HLEN", "hash:%d" % k) for k in range(100)])
        hv = c.call("HGET", "hash:42", "f4242")
        if hv != vals[4242][:100]:
            raise AssertionError("HGET hash:42 f4242 returned %r" % (hv or b"")[:40])
        lines.append("after churn dbsize %s lists %s hashes %s" % (c.call("DBSIZE"), sum(lens), sum(hl)))
        lines.append("digest %s" % hashlib.sha256(b"".join(g or b"-" for g in got)).hexdigest())
        c.call("FLUSHALL")
        lines.append("flushed dbsize %s" % c.call("DBSIZE"))
    finally:
        c.close()
    return "\n".join(lines) + "\n"


def wait_or_kill(srv, secs, why, problems):
    """Waits secs for a server that was asked to stop; past that, notes why and kills its session."""
    try:
        srv.wait(timeout=secs)
    except subprocess.TimeoutExpired:
        problems.append(why)
        os.killpg(srv.pid, signal.SIGKILL)
        srv.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_wait_up(port, srv):
    """Until the server at PORT answers PING; raises when it exits or has not answered in 20 s."""
    deadline = time.time() + 20
    while True:
        try:
            c = Redis(port, timeout=2)
            pong = c.call("PING")
            c.close()
            if pong == b"PONG":
                return
        except OSError:
            pass
        if srv.poll() is not None or time.time() > deadline:
            raise RuntimeError("redis-server did not come up (%s)" % (
                "exit %s" % srv.returncode if srv.poll() is not None else "no PONG in 20 s"))
        time.sleep(0.1)


def redis_stop(port, srv, logf, argv, problems):
    """Always stops the server: SHUTDOWN NOSAVE, then a kill of that one process if it does not exit. Adds to
    PROBLEMS a bad exit and any osmem line of its log, and with any problem the log's last lines."""
    try:
        c = Redis(port, timeout=5)
        c.s.sendall(Redis.encode("SHUTDOWN", "NOSAVE"))
        try:
            c.reply()
        except (OSError, ConnectionError, ValueError):
            pass                    # the server closes the connection: the expected answer
        c.close()
    except OSError:
        pass
    wait_or_kill(srv, 15, "redis-server did not exit after SHUTDOWN NOSAVE", problems)
    if srv.returncode not in (0, None) and not problems:
        problems.append("redis-server exited with %s" % srv.returncode)
    logf.seek(0)
    log = logf.read()
    logf.close()
    diag = osmem_lines(log)
    if diag:
        problems.append("osmem diagnostics in the server's output: " + " | ".join(diag[:3]))
    if problems:
        problems.append("server: %s (exit %s)\n    server log (last lines):\n%s" % (
            shlex.join(argv), srv.returncode, tail(log, 10)))


def redis_side(R, side, work):
    """One redis-server under SIDE: benchmark, round trip, shutdown. Returns (summary, problems, secs)."""
    port = free_port()
    d = os.path.join(work, "redis-" + side)
    os.makedirs(d)
    argv = R.argv(side, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--dir", d, "--logfile", "", "--daemonize", "no",
                         "--protected-mode", "yes"])
    logf = open(os.path.join(d, "server.log"), "w+b")
    t0, ru0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    srv = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=R.env,
                           start_new_session=True)
    problems, summary = [], ""
    try:
        redis_wait_up(port, srv)
        b = R.run(side, ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q", "-n", "20000",
                         "-t", "set,get,lpush,lpop,incr"], 120)
        text = b.out.decode(errors="replace").replace("\r", "\n")
        finals = [l.strip() for l in text.split("\n") if "requests per second" in l]
        kinds = sorted(l.split(":")[0] for l in finals)
        if b.rc != 0 or kinds != ["GET", "INCR", "LPOP", "LPUSH", "SET"] or re.search(r"error|ERR", text + b.err.decode(errors="replace")):
            problems.append("redis-benchmark: %s, finished %s%s\n    its output:\n%s" % (
                b.status(), kinds, describe(b, side), tail(b.out.replace(b"\r", b"\n"), 6)))
        try:
            summary = redis_roundtrip(port)
        except Exception as e:          # noqa: BLE001 - any failure of the round trip is the finding
            problems.append("round trip: %s: %s" % (type(e).__name__, e))
    except Exception as e:              # noqa: BLE001
        problems.append(str(e))
    finally:
        redis_stop(port, srv, logf, argv, problems)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return summary, problems, (time.time() - t0, ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)


def check_redis(R, work):
    out = {}
    for side in ("glibc", "osmem"):
        out[side] = redis_side(R, side, work)
    timings.append(("redis", {s: v[2] for s, v in out.items()}))
    if out["glibc"][1]:
        return report("redis", False, "the glibc baseline failed: " + "; ".join(out["glibc"][1]))
    problems = list(out["osmem"][1])
    if not problems and out["osmem"][0] != out["glibc"][0]:
        problems.append("round-trip summary differs:\n" + short_diff(out["glibc"][0].encode(), out["osmem"][0].encode()))
    report("redis", not problems, "; ".join(problems))


def vm_rss_kib(pid):
    """The resident set of process PID in KiB (its /proc status), or None once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def check_redis_idle(R, work):
    """OSMEM_BACKGROUND=1 (docs/DEFAULT.md, "An idle process"): a redis-server filled with 150,000 keys of 16-600
    bytes, flushed, then idle: its resident set must fall back near where it started, which without the thread
    it never does (the passes ran on the program's calls: session 71's 64 MiB after FLUSHALL). The server must
    run the thread (a task named osmem-bg) and keep every key until the flush."""
    if R.no_preload:
        return report("redis-idle", True, "skipped with --no-preload")
    port = free_port()
    d = os.path.join(work, "redis-idle")
    os.makedirs(d)
    argv = R.argv("osmem", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", d, "--logfile", "", "--daemonize", "no",
                            "--protected-mode", "yes"])
    env = dict(R.env)
    env["OSMEM_BACKGROUND"] = "1"
    logf = open(os.path.join(d, "server.log"), "w+b")
    srv = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                           start_new_session=True)
    problems, seen = [], ""
    try:
        redis_wait_up(port, srv)
        names = []
        for t in glob.glob("/proc/%d/task/*/comm" % srv.pid):
            try:
                names.append(open(t).read().strip())
            except OSError:
                pass
        if "osmem-bg" not in names:
            problems.append("no osmem-bg thread in the server (its threads: %s)" % ", ".join(sorted(names)))
        base = vm_rss_kib(srv.pid)
        c = Redis(port, timeout=30)
        rnd = random.Random(1)
        n = 150000
        for lo in range(0, n, 10000):
            r = c.pipeline([("SET", "k%d" % i, b"x" * rnd.randint(16, 600)) for i in range(lo, min(n, lo + 10000))])
            if any(x != b"OK" for x in r):
                raise AssertionError("a SET did not answer OK")
        size = c.call("DBSIZE")
        if size != n:
            problems.append("DBSIZE %r after %d SETs" % (size, n))
        full = vm_rss_kib(srv.pid)
        c.call("FLUSHALL")
        c.close()
        time.sleep(0.2)
        flushed = vm_rss_kib(srv.pid)
        # back within 35% of what the keys took above the start: 2 s here (without the thread, 45% of it stays)
        want = base + 0.35 * (full - base)
        t0, last = time.time(), flushed
        while time.time() - t0 < 20 and last is not None and last > want:
            time.sleep(0.25)
            last = vm_rss_kib(srv.pid)
        seen = "VmRSS at start %d KiB, full %d, right after FLUSHALL %d, after %.1f s idle %s (wanted <= %d)" % (
            base, full, flushed, time.time() - t0, last, want)
        if last is None or last > want:
            problems.append("the idle server kept its memory: " + seen)
    except Exception as e:              # noqa: BLE001
        problems.append("%s: %s" % (type(e).__name__, e))
    finally:
        redis_stop(port, srv, logf, argv, problems)
    if not problems:
        print("  redis-idle: " + seen)
    report("redis-idle", not problems, "; ".join(problems))


# ---------------------------------------------------------------------------------------------- PostgreSQL

PG_CONSISTENT = ("SELECT 'pgbench', (SELECT count(*) FROM pgbench_history), "
                 "(SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history) "
                 "AND (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(delta) FROM pgbench_history) "
                 "AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(delta) FROM pgbench_history), "
                 "(SELECT count(*) FROM pgbench_accounts)")
PG_CLIENTS, PG_TXNS = 4, 250            # pgbench: 4 connections (4 backends forked at once), 250 transactions each


def pg_bindir():
    """Debian's PostgreSQL server programs, the newest major version installed, or None."""
    found = []
    for exe in glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        v = exe.split("/")[4]
        if v.isdigit():
            found.append((int(v), os.path.dirname(exe)))
    return max(found)[1] if found else None


def pg_side(R, side, work, bindir):
    """One cluster under SIDE: initdb, a postmaster, the SQL workload and pgbench through it, a fast shutdown.
    As root the server's programs run as the postgres user (the server refuses root), with LD_PRELOAD kept by
    runuser; the library is copied where that user can read it. Returns (output, problems, (secs, cpu))."""
    d = os.path.join(work, "pg-" + side)
    os.makedirs(d)
    root = os.geteuid() == 0
    lib = R.lib
    if root:
        import pwd
        pw = pwd.getpwnam("postgres")
        os.chmod(work, 0o711)
        os.chown(d, pw.pw_uid, pw.pw_gid)
        lib = os.path.join(d, "libosmem-malloc.so")
        shutil.copy(R.lib, lib)
        os.chmod(lib, 0o755)

    def server_argv(cmd):
        as_pg = ["runuser", "-u", "postgres", "--"] if root else []
        if side == "glibc" or R.no_preload:
            return as_pg + cmd
        strict = ["env", "OSMEM_CHECK=strict"] if side == "strict" else []
        return [LAUNCHER] + (["--classic"] if side == "classic" else []) + ["--lib", lib, "--"] + strict + as_pg + cmd

    def client(cmd, timeout):
        """psql or pgbench under the side (strict: the default profile with OSMEM_CHECK=strict)"""
        if side == "strict":
            return R.run("osmem", cmd, timeout, cwd=d, env={"OSMEM_CHECK": "strict"})
        return R.run(side, cmd, timeout, cwd=d)

    t0, ru0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    data, port, problems, out = os.path.join(d, "data"), free_port(), [], b""
    conn = ["-h", d, "-p", str(port), "-U", "postgres"]
    init = subprocess.run(server_argv([os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
                                       "--locale=C", "-E", "UTF8", "--no-sync"]),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=R.env, timeout=300)
    if init.returncode != 0:
        problems.append("initdb exited %d:\n%s" % (init.returncode, tail(init.stdout)))
        return out, problems, (time.time() - t0, 0)
    if osmem_lines(init.stdout):
        problems.append("osmem diagnostics from initdb: " + " | ".join(osmem_lines(init.stdout)[:3]))
    logf = open(os.path.join(d, "server.log"), "w+b")
    srv = subprocess.Popen(server_argv([os.path.join(bindir, "postgres"), "-D", data, "-p", str(port), "-k", d,
                                        "-c", "listen_addresses=", "-c", "fsync=off", "-c", "shared_buffers=32MB"]),
                           stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=R.env,
                           start_new_session=True)
    pm = None
    try:
        deadline = time.time() + 60
        while True:
            ready = subprocess.run([os.path.join(bindir, "pg_isready"), "-q"] + conn, env=R.env, timeout=30)
            if ready.returncode == 0:
                break
            if srv.poll() is not None or time.time() > deadline:
                raise RuntimeError("the server did not come up (%s)" % (
                    "exit %s" % srv.returncode if srv.poll() is not None else "not ready in 60 s"))
            time.sleep(0.2)
        pm = int(open(os.path.join(data, "postmaster.pid")).readline())
        maps = open("/proc/%d/maps" % pm).read()
        if (side != "glibc" and not R.no_preload) != ("libosmem-malloc" in maps):
            problems.append("the postmaster (pid %d) %s libosmem-malloc.so mapped" % (
                pm, "has" if side == "glibc" else "does not have"))
        if side == "strict" and b"OSMEM_CHECK=strict" not in open("/proc/%d/environ" % pm, "rb").read().split(b"\0"):
            problems.append("the postmaster (pid %d) runs without OSMEM_CHECK=strict in its environment" % pm)
        sql = client([os.path.join(bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                      "-f", os.path.join(PROGS, "workload_pg.sql")] + conn + ["postgres"], 300)
        if sql.rc != 0 or sql.out.count(b"\n") < 15:
            problems.append("psql workload_pg.sql: %s%s\n    its output:\n%s" % (sql.status(), describe(sql, side),
                                                                                 tail(sql.out, 6)))
        out += sql.out
        pb = os.path.join(bindir, "pgbench")
        bi = client([pb, "-i", "-q", "-s", "2"] + conn + ["postgres"], 300)
        bt = client([pb, "-n", "-c", str(PG_CLIENTS), "-j", "2", "-t", str(PG_TXNS)] + conn + ["postgres"],
                    300) if bi.rc == 0 else bi
        chk = client([os.path.join(bindir, "psql"), "-X", "-A", "-t", "-c", PG_CONSISTENT] + conn + ["postgres"],
                     120) if bt.rc == 0 else bt
        if bt.rc != 0 or chk.rc != 0:
            problems.append("pgbench: %s%s" % (chk.status(), describe(chk, side)))
        out += chk.out
        for what, r in (("psql workload_pg.sql", sql), ("pgbench -i", bi), ("pgbench", bt), ("psql", chk)):
            if osmem_lines(r.err):
                problems.append("osmem diagnostics from %s: %s" % (what, " | ".join(osmem_lines(r.err)[:3])))
    except Exception as e:              # noqa: BLE001 - any failure here is the finding
        problems.append("%s: %s" % (type(e).__name__, e))
    finally:
        # a fast shutdown (SIGINT to the postmaster: every backend ends, a shutdown checkpoint); then a kill
        try:
            if pm:
                os.kill(pm, signal.SIGINT)
            else:
                os.killpg(srv.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        wait_or_kill(srv, 60, "the server did not stop within 60 s of a fast shutdown", problems)
        if srv.returncode != 0 and not problems:
            problems.append("the server exited %s" % srv.returncode)
        logf.seek(0)
        log = logf.read()
        logf.close()
        bad = [l for l in log.decode(errors="replace").splitlines()
               if re.search(r"osmem: |terminated by signal|PANIC|server process .* exited with exit code", l)]
        if bad:
            problems.append("the server's log: " + " | ".join(bad[:3]))
        if problems:
            problems.append("server: %s (exit %s)\n    server log (last lines):\n%s" % (
                shlex.join(srv.args), srv.returncode, tail(log, 10)))
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, problems, (time.time() - t0, ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)


def check_postgres(R, work):
    """A PostgreSQL server on each side: the postmaster forks a backend for every connection (pgbench's four at
    once, from one thread), and each backend's palloc takes its memory from malloc in blocks of 8 KiB to several
    MiB and gives whole contexts back at the end of each query. Also under OSMEM_CHECK=strict (docs/STRICT.md):
    canaries, guard pages and the quarantine in every process, forked ones included, must report nothing."""
    bindir = pg_bindir()
    if not bindir:
        return report("postgres", False, "no /usr/lib/postgresql/*/bin/postgres (tests/programs/packages.txt: "
                      "postgresql)")
    pg_sides = sides(True) + ["strict"]     # strict: OSMEM_CHECK=strict, every block checked across the forks
    res = {side: pg_side(R, side, work, bindir) for side in pg_sides}
    timings.append(("postgres", {s: v[2] for s, v in res.items()}))
    base, bprob, _ = res["glibc"]
    want = "pgbench|%d|t|200000" % (PG_CLIENTS * PG_TXNS)
    if not bprob and want not in base.decode(errors="replace"):
        bprob = ["the consistency line is not %r:\n%s" % (want, tail(base, 3))]
    for side in pg_sides[1:]:
        name = "postgres" + ("" if side == "osmem" else "-" + side)
        if bprob:
            report(name, False, "the glibc baseline failed: " + "; ".join(bprob))
            continue
        out, problems, _ = res[side]
        if not problems and out != base:
            problems = ["the results differ:\n" + short_diff(base, out)]
        report(name, not problems, "; ".join(problems))


# ---------------------------------------------------------------------------------------------- Java

def check_java(R, work):
    """OpenJDK's JVM: javac (a large Java program: the JIT compilers and the class loader allocate natively from
    several threads) compiles tests/programs/Churn.java, and the program's threads malloc direct ByteBuffers of
    1 KiB-1 MiB, which the JVM's cleaner thread frees after each collection (a 96 MiB cap forces them), and
    zlib's streams. The JVM also takes SIGSEGV on purpose: its safepoint polls read a page it protects to stop
    the threads for a collection. Also under OSMEM_CHECK=strict, whose statistics must show no cache hit (the
    front bypassed: the setting reached the JVM)."""
    d = os.path.join(work, "java")
    os.makedirs(d)
    res = {}
    java_sides = sides(True) + ["strict"]   # strict: the default profile with OSMEM_CHECK=strict
    for side in java_sides:
        cls = os.path.join(d, side)
        os.makedirs(cls)
        run_side, env = ("osmem", {"OSMEM_CHECK": "strict"}) if side == "strict" else (side, None)
        stats = os.path.join(d, "stats-" + side)
        c = R.run(run_side, ["javac", "-d", cls, os.path.join(PROGS, "Churn.java")], 300, cwd=d, env=env)
        r = R.run(run_side, ["java", "-Xmx256m", "-XX:MaxDirectMemorySize=96m", "-cp", cls, "Churn"], 300,
                  cwd=d, env=dict(env or {}, OSMEM_STATS=stats)) if c.rc == 0 else c
        r.secs, r.cpu = r.secs + (c.secs if r is not c else 0), r.cpu + (c.cpu if r is not c else 0)
        if c.rc != 0:
            r.out = b"javac failed: " + c.err[-400:]
        res[side] = r
    timings.append(("java", {s: (r.secs, r.cpu) for s, r in res.items()}))
    base = res["glibc"]
    if base.rc != 0 or b"tasks 48 total " not in base.out:
        for side in java_sides[1:]:
            report("java" + ("" if side == "osmem" else "-" + side), False,
                   "the glibc baseline failed (%s):\n%s%s" % (base.status(), tail(base.out, 4),
                                                              describe(base, "glibc")))
        return
    for side in java_sides[1:]:
        name = "java" + ("" if side == "osmem" else "-" + side)
        # strict mode serves every request in the core: its statistics count no cache hit (the default's do)
        path = os.path.join(d, "stats-" + side)
        st = open(path).read() if os.path.exists(path) else ""
        if side in ("osmem", "strict") and not R.no_preload and (
                "statistics" not in st or ("cache hits" in st) != (side == "osmem")):
            report(name, False, "java's statistics (OSMEM_STATS) %s: strict mode was %s" % (
                "missing" if "statistics" not in st else "with%s cache hits" % ("out" if side == "osmem" else ""),
                "expected" if side == "strict" else "not expected"))
            continue
        compare(name, base, res[side])


CHECKS = [("preload", None), ("python3-churn", check_python_churn), ("python3-regrtest", check_python_regrtest),
          ("sqlite3", check_sqlite), ("gcc", check_gcc), ("git", check_git), ("perl-lua", check_perl_lua),
          ("sort-gzip", check_sort_gzip), ("redis", check_redis), ("redis-idle", check_redis_idle),
          ("node", check_node), ("libgc", check_libgc),
          ("postgres", check_postgres), ("java", check_java)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build", help="the build directory holding libosmem-malloc.so")
    ap.add_argument("--only", action="append", help="run only the checks whose name contains this (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--no-preload", action="store_true", help=argparse.SUPPRESS)   # developing the test itself
    a = ap.parse_args()

    t_start = time.time()
    lib = os.path.abspath(os.path.join(a.build, "libosmem-malloc.so"))
    err = setup()
    if err:
        report("setup", False, err)
    elif not os.path.exists(PY):
        report("setup", False, "%s is missing" % PY)
    R = Runner(lib, a.no_preload)
    if not a.no_preload and not (os.access(LAUNCHER, os.X_OK) and os.path.exists(lib)):
        report("setup", False, "need %s and %s (build them first)" % (LAUNCHER, lib))
    elif not err:
        work = tempfile.mkdtemp(prefix="tp-")
        try:
            for name, fn in CHECKS:
                if a.only and not any(o in name for o in a.only):
                    continue
                try:
                    check_preload(R, lib) if fn is None else fn(R, work)
                except Exception as e:              # noqa: BLE001 - a broken check is a failed check
                    report(name, False, "the check itself raised %s: %s" % (type(e).__name__, e))
        finally:
            if a.keep:
                print("kept %s" % work)
            else:
                shutil.rmtree(work, ignore_errors=True)

    for name, t in timings:            # wall seconds, and CPU seconds (user+sys of the program and its children)
        base = t.get("glibc", (0, 0))[1]
        print("  time %-26s %s" % (name, "  ".join(
            "%s %.1fs cpu %.1fs%s" % (s, w, c, " (x%.2f)" % (c / base) if s != "glibc" and base else "")
            for s, (w, c) in t.items())))
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print("  total %.0fs" % (time.time() - t_start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
