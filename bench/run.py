#!/usr/bin/env python3
"""bench/run.py: ranks osmem against glibc, jemalloc, mimalloc and tcmalloc on allocator workloads and real
programs, all run unchanged under each allocator by LD_PRELOAD.

    python3 bench/run.py [--build DIR] [--runs N] [--quick] [--only NAME,...] [--label TEXT] [--out FILE.md]
    python3 bench/run.py --render FILE.json [--out FILE.md]      (the report again, from saved samples)

Every run is interleaved: for run in 1..N, for each workload, for each allocator (the allocators' order
rotating from run to run), so that a slow minute on a shared machine hits every allocator rather than one.
Each measurement is a fresh process: its wall time (start to exit, as a user waits for it) and its peak
resident set: VmHWM as each process of the tree exits (bench/peak/peak.c, preloaded after the allocator; the
largest process counts), ru_maxrss through GNU time where a process left no such figure. ru_maxrss alone moves
in steps of 128 KiB on this kernel (peak.c says why), 3-8% of the small workloads' figures; it is kept in the
samples and its geometric means are reported beside the exact ones. The report takes medians (5 runs by
default), ratios to glibc and to the best peer (the best of glibc, jemalloc, mimalloc and tcmalloc), and
geometric means over the workloads; it writes FILE.md (default bench/results/latest.md), FILE.svg (the chart)
and FILE.json (every sample, for --render).

Correctness first: every workload prints a checksum that depends only on its seeds, and it must be the same
under every allocator and in every run; a run that fails, times out or disagrees is reported as such (and the
exit status is 1), never as a time. The C workloads (bench/workloads/*.c) are built against plain libc by
`make bench-build`; the peers are Debian's packages (bench/setup.sh installs them when run as root).
Standard library only."""
import argparse
import datetime
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WL_SRC = os.path.join(HERE, "workloads")
PY = "/usr/bin/python3"               # Debian's: the same interpreter under every allocator
LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = [("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
         ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
         ("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4")]
COLORS = {"glibc": "#7f7f7f", "osmem": "#d62728", "jemalloc": "#1f77b4", "mimalloc": "#2ca02c",
          "tcmalloc": "#ff7f0e"}


# ---------------------------------------------------------------------------------------------- running

class Sample:
    """One process's measurement: wall seconds, peak RSS (KiB), the checksum, the workload's own figures."""

    def __init__(self, secs=None, rss_kb=None, checksum=None, metrics=None, error=None, maxrss_kb=None):
        self.secs, self.rss_kb, self.checksum = secs, rss_kb, checksum
        self.metrics, self.error = metrics or {}, error
        self.maxrss_kb = maxrss_kb          # ru_maxrss (GNU time), beside rss_kb (peak.c); None in older runs

    def to_json(self):
        return {"secs": self.secs, "rss_kb": self.rss_kb, "checksum": self.checksum, "metrics": self.metrics,
                "error": self.error, "maxrss_kb": self.maxrss_kb}


class Proc:
    """A finished process: exit code, output, wall seconds, and the peak RSS of it and its waited-for children
    (rss_kb: peak.c's, else ru_maxrss; maxrss_kb: ru_maxrss)."""

    def __init__(self, rc, out, err, secs, rss, timed_out):
        self.rc, self.out, self.err, self.secs, self.timed_out = rc, out, err, secs, timed_out
        self.rss_kb, self.maxrss_kb = rss

    def problem(self):
        if self.timed_out:
            return "timed out after %.0f s" % self.secs
        if self.rc != 0:
            tail = self.err.decode(errors="replace").strip().splitlines()[-3:]
            return "exit %s%s" % (self.rc, (": " + " | ".join(tail)) if tail else "")
        return None


TIME = "/usr/bin/time"      # GNU time (Debian package `time`, bench/setup.sh installs it)
PEAK_LIB = None             # bench/peak/peak.c built (main sets it): preloaded into every measured process


def wrapped(rss_path, argv, env):
    """argv and env under GNU time, for a peak RSS that is the program's alone. ru_maxrss counts the resident
    set a process had before its exec too, and a child forked from this Python starts with Python's ~20 MiB:
    every small workload would read 20 MiB. GNU time is a small process that forks the program and reports its
    child's ru_maxrss. time itself runs without the preload (a preloaded allocator would set the floor of
    that figure, differently for each); env(1) puts LD_PRELOAD back for the program and its children, with
    PEAK_LIB after the allocator: each process appends its VmHWM to rss_path + ".peak" as it exits."""
    env = dict(env)
    pre = env.pop("LD_PRELOAD", None)
    if PEAK_LIB:
        pre = (pre + " " + PEAK_LIB) if pre else PEAK_LIB
        env["OSMEM_BENCH_PEAK"] = rss_path + ".peak"
    return [TIME, "-f", "%M", "-o", rss_path] + (["/usr/bin/env", "LD_PRELOAD=" + pre] if pre else []) + list(argv), env


MAXRSS_SLACK_KB = 1024      # how far ru_maxrss may read above the exact peak (its per-CPU counters, env's image)


def read_rss(path):
    """(peak KiB, ru_maxrss KiB) of the process tree run by wrapped(path, ...): the peak is the largest VmHWM
    that peak.c wrote, ru_maxrss (GNU time's) where no process of the tree wrote one, or where ru_maxrss is more
    than MAXRSS_SLACK_KB above it (then the tree's largest process ended without its destructors: a signal,
    _exit). Removes the .peak file."""
    try:
        lines = open(path).read().split()
        maxrss = int(lines[-1]) if lines else None
    except (OSError, ValueError):
        maxrss = None
    peaks = []
    try:
        with open(path + ".peak") as f:
            for line in f:
                fs = line.split()
                if len(fs) == 2 and fs[1].isdigit():
                    peaks.append(int(fs[1]))
        os.unlink(path + ".peak")
    except OSError:
        pass
    if not peaks or (maxrss is not None and maxrss > max(peaks) + MAXRSS_SLACK_KB):
        return maxrss, maxrss
    return max(peaks), maxrss


def spawn(argv, env, timeout, stdin_path=None, cwd=None):
    """Runs argv to its end in a session of its own (under GNU time, for its peak RSS) and measures the wall
    time around it. A run past its timeout is killed, with its whole session (the process group we created
    for it)."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    fd, rss_path = tempfile.mkstemp(prefix="rss-")
    os.close(fd)
    fin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    timed_out = []
    t0 = time.perf_counter()
    argv, env = wrapped(rss_path, argv, env)
    p = subprocess.Popen(argv, stdin=fin, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True)
    RUNNING.add(p.pid)

    def expire():
        timed_out.append(True)
        kill_group(p.pid)
    timer = threading.Timer(timeout, expire)
    timer.start()
    p.wait()
    secs = time.perf_counter() - t0
    timer.cancel()
    RUNNING.discard(p.pid)
    if stdin_path:
        fin.close()
    out.seek(0)
    err.seek(0)
    r = Proc(p.returncode, out.read(), err.read(), secs, read_rss(rss_path), bool(timed_out))
    out.close()
    err.close()
    os.unlink(rss_path)
    return r


RUNNING = set()             # the sessions started and not yet waited for: killed if this script is stopped


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def scan_cell(argv, allocs, env, fresh, run, label, timeout=300):
    """One cell of a scan (bench/apis.py, bench/patterns.py): argv under each allocator in turn (in reverse order on
    odd runs), each preloaded from a fresh copy of its library. Returns ({allocator: metrics}, [(allocator,
    problem)]): a run that failed or printed no `secs`, and a checksum that differs from glibc's (the allocator
    that gave it is at fault)."""
    got, sums, problems = {}, {}, []
    for name, lib in (allocs if run % 2 == 0 else allocs[::-1]):
        e = dict(env)
        copy = fresh_copy(lib, fresh) if lib else None
        if copy:
            e["LD_PRELOAD"] = copy
        r = spawn(argv, e, timeout)
        if copy:
            os.unlink(copy)
        checksum, metrics = parse_protocol(r.out)
        if r.rc != 0 or "secs" not in metrics:
            problems.append((name, "%s, %s: exit %s %s" % (label, name, r.rc,
                                                         r.err.decode(errors="replace").strip()[-300:])))
            continue
        sums[name] = checksum
        got[name] = metrics
    for name, c in sums.items():
        if "glibc" in sums and c != sums["glibc"]:
            problems.append((name, "%s: %s's checksum %s, glibc's %s" % (label, name, c, sums["glibc"])))
    return got, problems


def write_scan(out, lines, problems, tool, summary):
    """Writes a scan's report and says what it found; returns the exit status: 1 when osmem had a problem."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    ours = [p for who, p in problems if who == "osmem"]
    print("wrote %s: %s, %d problem(s), %d of them osmem's" % (out, summary, len(problems), len(ours)))
    for p in ours:
        print("%s: %s" % (tool, p))
    return 1 if ours else 0


def parse_protocol(out):
    """The workloads' protocol (bench/workloads/common.h): `checksum HEX` and `metric NAME VALUE` lines."""
    checksum, metrics = None, {}
    for line in out.decode(errors="replace").splitlines():
        f = line.split()
        if len(f) == 2 and f[0] == "checksum":
            checksum = f[1]
        elif len(f) == 3 and f[0] == "metric":
            metrics[f[1]] = float(f[2])
    return checksum, metrics


# ---------------------------------------------------------------------------------------------- workloads

class Workload:
    """name; what it models (for the report); run(ctx, env) -> Sample. kind: "micro" (ours), "program", or
    "scaling" (reported only in the scaling section, outside the geometric means and the main tables)."""
    kind = "micro"
    needs = ()                              # programs it runs from PATH (bench/setup.sh installs them)

    def __init__(self, name, what):
        self.name, self.what = name, what

    def prepare(self, ctx):
        pass

    def missing(self):
        """Why this workload cannot run here (a program it needs is not on PATH), or None."""
        gone = [p for p in self.needs if not shutil.which(p)]
        return ("%s not installed (bench/setup.sh installs it when run as root)" % ", ".join(gone)) if gone else None


class CBench(Workload):
    """A program of bench/workloads/, argv: SCALE [ARGS...]. Full runs use scale 1, --quick runs `quick`."""

    def __init__(self, name, prog, args, quick, what, timeout=300, kind=None):
        super().__init__(name, what)
        self.prog, self.args, self.quick, self.timeout = prog, args, quick, timeout
        if kind:
            self.kind = kind

    def run(self, ctx, env):
        exe = os.path.join(ctx.build, "bench", "wl", self.prog)
        scale = self.quick if ctx.quick else 1.0
        r = spawn([exe, "%g" % scale] + [str(a) for a in self.args], env, self.timeout)
        checksum, metrics = parse_protocol(r.out)
        problem = r.problem() or (None if checksum else "no checksum in its output")
        return Sample(r.secs, r.rss_kb, checksum, metrics, problem, r.maxrss_kb)


class Sqlite(Workload):
    kind = "program"
    needs = ("sqlite3",)

    def prepare(self, ctx):
        rows = 20000 if ctx.quick else 150000
        self.script = os.path.join(ctx.work, "sqlite.sql")
        with open(self.script, "w") as f, open(os.path.join(WL_SRC, "sqlite.sql")) as src:
            f.write("CREATE TEMP TABLE param(n); INSERT INTO param VALUES(%d);\n" % rows)
            f.write(src.read())

    def run(self, ctx, env):
        r = spawn(["sqlite3", ":memory:"], env, 300, stdin_path=self.script, cwd=ctx.work)
        ok = r.out.rstrip().endswith(b"\nok")
        problem = r.problem() or (None if ok else "integrity_check did not answer ok")
        return Sample(r.secs, r.rss_kb, hashlib.md5(r.out).hexdigest()[:16], {}, problem, r.maxrss_kb)


class Python(Workload):
    kind = "program"

    def __init__(self, name, what, pymalloc):
        super().__init__(name, what)
        self.pymalloc = pymalloc

    def run(self, ctx, env):
        e = dict(env)
        if not self.pymalloc:
            e["PYTHONMALLOC"] = "malloc"        # every object from malloc, not from pymalloc's arenas
        rounds = 20 if ctx.quick else 150
        r = spawn([PY, os.path.join(ROOT, "tests", "programs", "churn.py"), str(rounds)], e, 300, cwd=ctx.work)
        ok = b"\nall " in r.out
        return Sample(r.secs, r.rss_kb, hashlib.md5(r.out).hexdigest()[:16], {},
                      r.problem() or (None if ok else "no digest in its output"), r.maxrss_kb)


class Gcc(Workload):
    kind = "program"
    needs = ("gcc",)

    def prepare(self, ctx):
        sys.path.insert(0, os.path.join(ROOT, "tests", "programs"))
        sys.dont_write_bytecode = True
        import cprog
        self.dir = os.path.join(ctx.work, "cprog")    # one directory for every allocator: identical binaries
        os.makedirs(self.dir, exist_ok=True)
        self.srcs = cprog.write_sources(self.dir)
        if ctx.quick:                                 # fewer generated functions: cc1 has less to do
            with open(os.path.join(self.dir, "generated.c"), "w") as f:
                f.write(cprog.generated_c(40))

    def run(self, ctx, env):
        binary = os.path.join(self.dir, "prog")
        if os.path.exists(binary):
            os.unlink(binary)
        r = spawn(["gcc", "-O2", "-g", "-Wall", "-o", "prog"] + self.srcs, env, 300, cwd=self.dir)
        if r.problem():
            return Sample(r.secs, r.rss_kb, None, {}, "gcc: " + r.problem(), r.maxrss_kb)
        # the program itself runs on glibc, untimed: its output and the binary are the checksum
        p = subprocess.run([binary], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctx.base_env, timeout=60)
        with open(binary, "rb") as f:
            h = hashlib.md5(f.read() + p.stdout).hexdigest()[:16]
        problem = None if p.returncode == 0 else "the built program exited %d" % p.returncode
        return Sample(r.secs, r.rss_kb, h, {}, problem, r.maxrss_kb)


def resp(*args):
    return b"".join([b"*%d\r\n" % len(args)] + [b"$%d\r\n%s\r\n" % (len(a), a) for a in
                                                  (x.encode() if isinstance(x, str) else x for x in args)])


def redis_call(port, *args, timeout=2.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(resp(*args))
        return s.recv(65536)


class Redis(Workload):
    """redis-server under the allocator, redis-benchmark (on glibc, with bench/peak/peak.c alone) as the load: the
    time is the benchmark's, the peak RSS the server's."""
    kind = "program"
    needs = ("redis-server", "redis-benchmark")
    TESTS = ["set", "get", "incr", "lpush", "lpop", "sadd", "hset", "spop"]

    def run(self, ctx, env):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        d = tempfile.mkdtemp(prefix="redis-", dir=ctx.work)
        fd, rss_path = tempfile.mkstemp(prefix="rss-", dir=ctx.work)
        os.close(fd)
        argv, e = wrapped(rss_path, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", d, "--logfile", "", "--daemonize", "no",
                                     "--protected-mode", "yes"], env)
        srv = subprocess.Popen(argv, env=e, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
        RUNNING.add(srv.pid)
        problem, secs, checksum = None, None, None
        try:
            deadline = time.time() + 20
            while True:
                try:
                    if redis_call(port, "PING").startswith(b"+PONG"):
                        break
                except OSError:
                    pass
                if srv.poll() is not None or time.time() > deadline:
                    raise RuntimeError("redis-server did not come up")
                time.sleep(0.05)
            n = 10000 if ctx.quick else 100000
            b = spawn(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q", "-n", str(n), "-P", "16",
                       "-c", "20", "-d", "128", "-r", "200000", "-t", ",".join(self.TESTS)], ctx.base_env, 300)
            secs = b.secs
            text = b.out.decode(errors="replace").replace("\r", "\n")
            done = sorted({l.split(":")[0].strip() for l in text.splitlines() if "requests per second" in l})
            if b.problem():
                problem = "redis-benchmark: " + b.problem()
            elif done != sorted(t.upper() for t in self.TESTS) or "ERR" in text:
                problem = "redis-benchmark finished only %s" % done
            checksum = hashlib.md5(" ".join(done).encode() + redis_call(port, "PING")).hexdigest()[:16]
        except (OSError, RuntimeError) as e:
            problem = str(e)
        finally:
            try:
                redis_call(port, "SHUTDOWN", "NOSAVE")
            except OSError:
                pass                       # the server closes the connection as it exits: the expected answer
            timer = threading.Timer(20, kill_group, [srv.pid])
            timer.start()
            srv.wait()
            timer.cancel()
            RUNNING.discard(srv.pid)
            shutil.rmtree(d, ignore_errors=True)
        if not problem and srv.returncode != 0:
            problem = "redis-server exited %d" % srv.returncode
        peak, maxrss = read_rss(rss_path)
        return Sample(secs, peak, checksum, {}, problem, maxrss)


WORKLOADS = [
    CBench("larson-1", "larson", [1], 0.1, "server churn (Larson): 1 thread, slots replaced by 16..1000 B objects, "
           "1 in 8 freed by the next thread (here itself, through its mailbox); 12M ops in all"),
    CBench("larson-2", "larson", [2], 0.1, "the same with 2 threads, each handing 1 in 8 to the other"),
    CBench("larson-4", "larson", [4], 0.1, "the same with 4 threads (on 2 cores)"),
    CBench("larson-8", "larson", [8], 0.1, "the same with 8 threads"),
    # Larson's own form (the thread replaced, its successor inheriting the table): the scaling target,
    # T=2 against T=1, on the form of the benchmark where scaling is the allocator's (see SCALING below)
    CBench("larson-r1", "larson", [1, "r"], 0.1, "Larson's own form: no hand-offs; every 100k operations a "
           "thread starts a successor that takes over its 1000 slots (and frees its objects) and exits; runs 0.5 s, as "
           "Larson's runs for a time",
           kind="scaling"),
    CBench("larson-r2", "larson", [2, "r"], 0.1, "the same with 2 tables and their 2 lines of threads",
           kind="scaling"),
    CBench("prodcon", "prodcon", [2], 0.1, "2 producers malloc 16..1024 B, 2 consumers free (every free remote), "
           "through bounded rings; 24M objects; each pair's producer and consumer pinned to different CPUs"),
    CBench("falseshare", "falseshare", [2], 0.1, "8 B objects allocated by the main thread, then by each of 2 "
           "workers, written 2000 times each round: neighbouring objects of two threads share a cache line"),
    CBench("mixed-realloc", "mixed", [], 0.15, "8 B..512 KiB objects (80% under 1 KiB), 1 in 16 a buffer grown by "
           "realloc to 1 MiB across the 128 KiB mmap threshold; every page written"),
    CBench("large", "large", [], 0.15, "64 KiB..4 MiB blocks, 64 live, replaced at random, every page written"),
    CBench("pairs", "pairs", [], 0.1, "one thread: malloc(16..256) then free at once, and 8 in flight; 40M "
           "pairs"),
    CBench("threads-8", "threads", [8], 0.1, "8 threads on 2 cores, each its own 1024 slots of 16 B..32 KiB "
           "(density 1/size), no sharing (glibc's bench-malloc-thread)"),
    CBench("frag", "frag", [], 0.1, "1 GiB of 16 B..16 KiB objects, 90% freed at random, then 500 MiB of "
           "1..64 KiB: peak RSS and the RSS after the frees against the live bytes"),
    Sqlite("sqlite3", "sqlite3 :memory: < bench/workloads/sqlite.sql: 150k orders, 15k customers, indexes, "
           "joins, sorts, updates, deletes, VACUUM"),
    Python("python3", "python3 tests/programs/churn.py 150: 4 threads of dicts, strings, lists, zlib/bz2 "
           "(pymalloc serves the small objects)", pymalloc=True),
    Python("python3-malloc", "the same with PYTHONMALLOC=malloc: every object from malloc", pymalloc=False),
    Gcc("gcc", "gcc -O2 -g of tests/programs/cprog.py's 5-file program (cc1, as, collect2, ld all preloaded)"),
    Redis("redis", "redis-server under the allocator; redis-benchmark on glibc: 100k requests each of "
          "set,get,incr,lpush,lpop,sadd,hset,spop, 20 clients, pipeline 16, 128 B values, 200k keys "
          "(Debian's redis-server links libjemalloc: in the glibc column the server runs on jemalloc)"),
]


# The scaling section: (title, T=1 workload, T=2 workload). The hand-off form is also run on the yardstick
# allocator (bench/null/noop.c), which shows how far that form can scale on the machine whatever the allocator.
SCALING = [("larson, hand-off form (the suite's)", "larson-1", "larson-2"),
           ("larson, Larson's own form", "larson-r1", "larson-r2")]
NOOP_WORKLOADS = ("larson-1", "larson-2")


# ---------------------------------------------------------------------------------------------- setup

def base_env():
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith(("OSMEM_", "MALLOC_", "GLIBC_TUNABLES", "PYTHON",
                                                      "MIMALLOC_", "JE_MALLOC", "MALLOC_CONF", "TCMALLOC_"))}
    env["LC_ALL"] = "C.UTF-8"
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    return env


def allocators(build):
    """(name, library to preload or None) for glibc, osmem and each installed peer."""
    out = [("glibc", None), ("osmem", os.path.join(build, "libosmem-malloc.so"))]
    for name, lib, pkg in PEERS:
        path = os.path.join(LIBDIR, lib)
        if os.path.exists(path):
            out.append((name, path))
        else:
            print("bench: %s is not installed (apt-get install %s): left out" % (name, pkg), file=sys.stderr)
    return out


def fresh_copy(lib, work):
    # `work` is under the build directory (bench/fresh), not /tmp: a noexec /tmp would refuse every preload
    """The library copied to a new file for one run. On this machine where a library's pages land in the page cache
    can decide its speed: one build of osmem ran pairs at 26 ns a pair from its own file and at 7.6 ns from a
    byte-identical copy, until the page cache was dropped (session 21). A copy per run puts each allocator's code
    on fresh pages every time, so one unlucky placement is one run of the median, not all of them."""
    os.makedirs(work, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=os.path.basename(lib) + ".", suffix=".so", dir=work)
    os.close(fd)
    shutil.copyfile(lib, path)
    return path


def check_preloads(allocs, env, fresh):
    """Each preloaded library really is mapped in the programs we run (else we would time glibc five times)."""
    bad = []
    for name, lib in allocs:
        if not lib:
            continue
        copy = fresh_copy(lib, fresh)  # what the runs preload: a copy in the build tree (fresh_copy)
        r = subprocess.run(["cat", "/proc/self/maps"], env=dict(env, LD_PRELOAD=copy), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        os.unlink(copy)
        if os.path.realpath(copy) not in r.stdout.decode(errors="replace"):
            bad.append("%s: %s is not mapped under LD_PRELOAD (%s)" % (name, copy, r.stderr.decode().strip()))
    return bad


def describe_machine(allocs, build):
    def sh(cmd):
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=10,
                                  cwd=ROOT).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"glibc": sh(["getconf", "GNU_LIBC_VERSION"]).replace("glibc ", "")}
    for name, lib, pkg in PEERS:
        if any(n == name for n, _ in allocs):
            versions[name] = sh(["dpkg-query", "-W", "-f=${Version}", pkg])
    versions["osmem"] = sh(["git", "describe", "--always", "--dirty"]) + " (" + sh(
        ["git", "rev-parse", "--abbrev-ref", "HEAD"]) + ")"
    # what a page fault costs here (bench/fault_cost.c): the fact behind src/huge.c and docs/TRADEOFFS.md
    fc = dict(kv.split("=", 1) for kv in sh([os.path.join(build, "bench", "fault_cost")]).split()[1:] if "=" in kv)
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": os.uname().release, "versions": versions,
            "thp": sh(["cat", "/sys/kernel/mm/transparent_hugepage/enabled"]),
            "fault_small_us": fc.get("small_us", "?"), "fault_huge_us": fc.get("huge_us", "?"),
            "fault_huge_first_us": fc.get("huge_first_us", "?"), "populate_us": fc.get("populate_us", "?"),
            "populated_write_us": fc.get("populated_write_us", "?")}


# ---------------------------------------------------------------------------------------------- report

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def summarize(data):
    """Medians per (workload, allocator), failures, checksum agreement."""
    names = data["allocators"]
    summary = {}
    for w in data["workloads"]:
        row = {}
        sums = set()
        for a in names:
            ss = [Sample(**s) for s in data["samples"][w][a]]
            errs = [s.error for s in ss if s.error]
            good = [s for s in ss if not s.error]
            sums.update(s.checksum for s in good)
            metrics = {}
            for s in good:
                for k, v in s.metrics.items():
                    metrics.setdefault(k, []).append(v)
            mx = [s.maxrss_kb for s in good]
            row[a] = {"secs": median([s.secs for s in good]), "rss_kb": median([s.rss_kb for s in good]),
                      "maxrss_kb": median(mx) if mx and None not in mx else None,
                      "runs": len(good), "errors": errs,
                      "spread": (max(s.secs for s in good) - min(s.secs for s in good)) / median(
                          [s.secs for s in good]) if len(good) > 1 else 0.0,
                      "metrics": {k: statistics.median(v) for k, v in metrics.items()}}
        summary[w] = {"alloc": row, "checksums": sorted(sums)}
    return summary


def ranked(data):
    """The workloads of the main tables and the geometric means: all but the scaling section's own."""
    kinds = data.get("kinds") or {w.name: w.kind for w in WORKLOADS}
    return [w for w in data["workloads"] if kinds.get(w) != "scaling"]


def ratio(x, base):
    return x / base if x is not None and base else None


def paired_ratios(data, w, a, base="glibc"):
    """osmem's time over glibc's, run by run: each run times every allocator back to back (bench's loop), so the
    pairs share the host's state of the moment, which the medians of two columns do not."""
    xs, bs = data["samples"][w][a], data["samples"][w][base]
    return [x["secs"] / b["secs"] for x, b in zip(xs, bs)
            if not x["error"] and not b["error"] and x["secs"] and b["secs"]]


def signed_rank_p(rs):
    """Two-sided p of Wilcoxon's signed-rank test that the log ratios are centred on 0, exact (None with fewer than
    5 pairs: their smallest p, 0.0625, can never pass)."""
    return signed_rank_p_diffs([math.log(r) for r in rs])


def signed_rank_p_diffs(diffs):
    """The same test on differences (zeros dropped). Ties share the mean of their ranks; ranks are doubled so that
    they stay integers, and the null distribution of the positive ranks' sum (every sign pattern equally likely)
    is counted by a subset-sum table rather than by enumerating the 2^n patterns."""
    d = [x for x in diffs if x != 0]
    n = len(d)
    if n < 5:
        return None
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks2 = [0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            ranks2[order[k]] = i + j + 2  # twice the mean rank of positions i..j (ranks from 1)
        i = j + 1
    total2 = sum(ranks2)
    ways = [1] + [0] * total2  # ways[s]: sign patterns whose positive ranks sum to s (doubled)
    for r in ranks2:
        for s in range(total2 - r, -1, -1):
            ways[s + r] += ways[s]
    dev = abs(2 * sum(r for r, x in zip(ranks2, d) if x > 0) - total2)
    return sum(w for s, w in enumerate(ways) if abs(2 * s - total2) >= dev) / 2 ** n


def paired_verdict(rs, alpha=0.05):
    p = signed_rank_p(rs)
    m = statistics.median(rs) if rs else None
    if p is None or m is None:
        return m, p, "too few runs"
    if p >= alpha:
        return m, p, "level"
    return m, p, "faster" if m < 1 else "slower"


def best_peer(cells, key, names):
    peers = [(cells[a][key], a) for a in names if a != "osmem" and cells[a][key] is not None]
    return min(peers) if peers else (None, None)


def fmt_secs(s):
    return "%.3f" % s if s < 1 else "%.2f" % s


def fmt_mib(kb):
    return "%.1f" % (kb / 1024) if kb < 100 * 1024 else "%.0f" % (kb / 1024)


def render_md(data, summary, svg_name):
    names = data["allocators"]
    meta = data["meta"]
    L = []
    L.append("# osmem against glibc, jemalloc, mimalloc and tcmalloc")
    L.append("")
    if data.get("label"):
        L.append("**%s**" % data["label"])
        L.append("")
    v = meta["versions"]
    L.append("%s; %s, %s per cell (interleaved), median shown; %s. Machine: %s, %s cores, Linux %s, "
             "transparent huge pages `%s`; a page fault costs %s us per 4 KiB page, %s us per 4 KiB in 2 MiB "
             "pages (%s the first time)%s (`build/bench/fault_cost`, best of 3). Load average %s at the start, %s at the end; the whole "
             "run took %.0f s." % (data["date"], "quick mode (reduced sizes)" if data["quick"] else "full sizes",
                          "1 run" if data["runs"] == 1 else "%d runs" % data["runs"],
                          ", ".join("%s %s" % (a, v.get(a, "")) for a in names), meta["cpu"],
                          meta["cores"], meta["kernel"], meta["thp"], meta.get("fault_small_us", "?"),
                          meta.get("fault_huge_us", "?"), meta.get("fault_huge_first_us", "?"),
                          "; `madvise(MADV_POPULATE_WRITE)` of one page %s us, and %s us at its first write after" % (
                              meta["populate_us"], meta["populated_write_us"]) if "populate_us" in meta else "",
                          data["load_start"], data["load_end"], data["elapsed"]))
    L.append("")
    L.append("Time is the wall time of the whole process (for redis: of redis-benchmark, the server being the one "
             "preloaded); peak RSS is the process's maximum resident set, VmHWM read as it exits "
             "(`bench/peak/peak.c`; gcc: its largest process; redis: the server), which counts every page, where "
             "ru_maxrss moves in steps of 128 KiB on this kernel (its geometric means are in the summary). Ratios "
             "are to glibc (below 1: faster or smaller); **bold** is the best of the five. *osmem / best peer* "
             "divides osmem's figure by the best of the other four. Each preloaded library is a fresh copy of "
             "itself in every run (`fresh_copy`: where a library's pages land in the page cache once made the same "
             "bytes 3.4x slower).")
    L.append("")
    L.append("![time and peak RSS, ratio to glibc](%s)" % svg_name)
    L.append("")

    # failures and checksums
    problems = []
    for w in data["workloads"]:
        s = summary[w]
        if len(s["checksums"]) > 1:
            problems.append("- **%s**: checksums differ across allocators/runs: %s" % (
                w, ", ".join("%s %s" % (a, sorted({x["checksum"] for x in data["samples"][w][a] if not x["error"]}))
                             for a in names)))
        for a in names:
            for e in sorted(set(s["alloc"][a]["errors"])):
                problems.append("- **%s on %s** failed: %s" % (w, a, e))
    L.append("## Correctness")
    L.append("")
    if problems:
        L.extend(problems)
    else:
        L.append("Every workload completed on every allocator in every run, with the same checksum everywhere "
                 "(%d workloads x %d allocators x %d runs)." % (len(data["workloads"]), len(names), data["runs"]))
    L.append("")

    # summary: geomeans
    def geo(key, a, ws=None):
        return geomean([ratio(summary[w]["alloc"][a][key], summary[w]["alloc"]["glibc"][key])
                        for w in (ranked(data) if ws is None else ws)])

    def geo_best(key, ws=None):
        rs = []
        for w in (ranked(data) if ws is None else ws):
            cells = summary[w]["alloc"]
            b, _ = best_peer(cells, key, names)
            rs.append(ratio(cells["osmem"][key], b))
        return geomean(rs)
    kinds = data.get("kinds") or {w.name: w.kind for w in WORKLOADS}
    micro = [w for w in data["workloads"] if kinds.get(w) == "micro"]
    progs = [w for w in data["workloads"] if kinds.get(w) == "program"]
    L.append("## Summary (geometric means over the %d workloads)" % len(ranked(data)))
    L.append("")
    L.append("| allocator | time / glibc | time, %d micro | time, %d programs | peak RSS / glibc | rank by time "
             "| rank by RSS |" % (len(micro), len(progs)))
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    gt = {a: geo("secs", a) for a in names}
    gr = {a: geo("rss_kb", a) for a in names}
    rank_t = {a: i + 1 for i, a in enumerate(sorted(names, key=lambda a: gt[a] or 1e9))}
    rank_r = {a: i + 1 for i, a in enumerate(sorted(names, key=lambda a: gr[a] or 1e9))}
    for a in sorted(names, key=lambda a: gt[a] or 1e9):
        L.append("| %s | %.2f | %s | %s | %.2f | %d | %d |" % (
            a if a != "osmem" else "**osmem**", gt[a] or 0, opt(geo("secs", a, micro)), opt(geo("secs", a, progs)),
            gr[a] or 0, rank_t[a], rank_r[a]))
    L.append("")
    L.append("osmem / best peer, workload by workload (the best of the other four there, glibc included), geometric "
             "mean: time **%.2fx** (micro %s, programs %s), peak RSS **%.2fx**." % (
        geo_best("secs") or 0, opt(geo_best("secs", micro)), opt(geo_best("secs", progs)), geo_best("rss_kb") or 0))
    L.append("")
    # The issue's own comparison ("at most 1.0x the best of jemalloc, mimalloc, tcmalloc") read as allocators
    # against allocators: osmem's geometric mean over the fastest (smallest) peer's. The line above is stricter:
    # it picks the best of four, glibc included, workload by workload, an allocator no one can preload.
    gm = {a: geo("maxrss_kb", a) for a in names}
    if all(gm.values()):
        L.append("Peak RSS by ru_maxrss alone (GNU time; per-CPU counters read in 128 KiB steps), geometric means "
                 "over glibc's: " + ", ".join("%s %.2f" % (a, gm[a]) for a in names if a != "glibc") + ".")
        L.append("")
    peers = [a for a in names if a not in ("osmem", "glibc")]
    if peers and gt.get("osmem") and gr.get("osmem"):
        ft = min(peers, key=lambda a: gt[a] or 1e9)
        fr = min(peers, key=lambda a: gr[a] or 1e9)
        L.append("osmem against the best peer allocator, each by its geometric mean: time **%.2fx** of %s's (the "
                 "fastest of %s), peak RSS **%.2fx** of %s's (the smallest)." % (
                     gt["osmem"] / gt[ft], ft, ", ".join(peers), gr["osmem"] / gr[fr], fr))
        L.append("")

    def table(title, key, fmt, unit):
        L.append("## %s" % title)
        L.append("")
        L.append("| workload | " + " | ".join(names) + " | osmem / best peer | osmem rank |")
        L.append("| --- | " + " | ".join("---:" for _ in names) + " | ---: | ---: |")
        for w in ranked(data):
            cells = summary[w]["alloc"]
            base = cells["glibc"][key]
            vals = [cells[a][key] for a in names if cells[a][key] is not None]
            best = min(vals) if vals else None
            row = []
            for a in names:
                x = cells[a][key]
                if x is None:
                    row.append("fail")
                    continue
                t = fmt(x)
                if a != "glibc" and base:
                    t += " (%.2f)" % (x / base)
                row.append("**%s**" % t if x == best else t)
            b, who = best_peer(cells, key, names)
            o = cells["osmem"][key]
            bp = "%.2fx (%s)" % (o / b, who) if o is not None and b else "-"
            rank = 1 + sum(1 for a in names if a != "osmem" and cells[a][key] is not None and o is not None
                           and cells[a][key] < o) if o is not None else "-"
            L.append("| %s | %s | %s | %s |" % (w, " | ".join(row), bp, rank))
        L.append("| **geomean / glibc** | " + " | ".join(
            "1" if a == "glibc" else "%.2f" % (geo(key, a) or 0) for a in names) + " | %.2fx | |" % (
            geo_best(key) or 0))
        L.append("")
        L.append("(%s; in brackets the ratio to glibc)" % unit)
        L.append("")
    table("Time", "secs", fmt_secs, "seconds, median")

    # run by run against glibc: the pairs share the host's moment, which two columns' medians do not
    ratios = {w: paired_ratios(data, w, "osmem") for w in ranked(data)}
    verdicts = {w: paired_verdict(ratios[w]) for w in ranked(data)}
    count = {v: sum(1 for w in verdicts if verdicts[w][2] == v) for v in ("faster", "level", "slower")}
    L.append("## Time, run by run against glibc")
    L.append("")
    L.append("Each run times the five allocators one after the other, so osmem's and glibc's times of one run "
             "share the host's load of that moment. The median of osmem's per-run ratios, and Wilcoxon's "
             "signed-rank test of them (two-sided, exact): *slower* or *faster* where p < 0.05, *level* where the "
             "runs do not tell osmem from glibc. **%d faster, %d level, %d slower.**" % (
                 count["faster"], count["level"], count["slower"]))
    L.append("")
    L.append("| workload | median of the run ratios | runs osmem slower | p | osmem against glibc |")
    L.append("| --- | ---: | ---: | ---: | --- |")
    for w in ranked(data):
        rs = ratios[w]
        m, p, v = verdicts[w]
        L.append("| %s | %s | %d of %d | %s | %s |" % (
            w, "%.3f" % m if m is not None else "-", sum(1 for r in rs if r > 1), len(rs),
            "%.3f" % p if p is not None else "-", "**%s**" % v if v == "slower" else v))
    L.append("")

    # the same against the fastest of the other four there (by its median): the one-thread pairs target is "at most
    # 1.0x the fastest peer", and a few runs that meet the host's busy moments move one column's median by 20%
    # (session 38: osmem's pairs 8.1-11.8 ns in one run, 10.5 by the median, 8.8 against 8.7 run alternately)
    peer = {}
    for w in ranked(data):
        _, b = best_peer(summary[w]["alloc"], "secs", names)
        if b:
            peer[w] = (b, paired_verdict(paired_ratios(data, w, "osmem", base=b)))
    pcount = {v: sum(1 for w in peer if peer[w][1][2] == v) for v in ("faster", "level", "slower")}
    L.append("## Time, run by run against the fastest other allocator")
    L.append("")
    L.append("The same pairing against whichever of the other four has the best median time on the workload (glibc "
             "included): a verdict on *at most 1.0x the fastest peer* that the host's busy moments do not decide. "
             "**%d faster, %d level, %d slower.**" % (pcount["faster"], pcount["level"], pcount["slower"]))
    L.append("")
    L.append("| workload | fastest other | median of the run ratios | p | osmem against it |")
    L.append("| --- | --- | ---: | ---: | --- |")
    for w in ranked(data):
        if w not in peer:
            continue
        b, (m, p, v) = peer[w]
        L.append("| %s | %s | %s | %s | %s |" % (
            w, b, "%.3f" % m if m is not None else "-", "%.3f" % p if p is not None else "-",
            "**%s**" % v if v == "slower" else v))
    L.append("")
    table("Peak RSS", "rss_kb", fmt_mib, "MiB, median of the peak: VmHWM as the process exits")

    # the workloads' own figures
    L.append("## The workloads' own figures (medians)")
    L.append("")
    L.append("| workload | figure | " + " | ".join(names) + " |")
    L.append("| --- | --- | " + " | ".join("---:" for _ in names) + " |")
    for w in data["workloads"]:
        cells = summary[w]["alloc"]
        keys = []
        for a in names:
            keys += [k for k in cells[a]["metrics"] if k not in keys]
        derived = []
        if "rss_freed_kb" in keys:
            derived = [("RSS after frees / live", "rss_freed_kb", "live_freed_kb"),
                       ("RSS at end / live", "rss_end_kb", "live_end_kb")]
        for k in keys:
            vals = [cells[a]["metrics"].get(k) for a in names]
            if k.endswith("_kb"):
                txt = ["%.0f" % (v / 1024) if v is not None else "-" for v in vals]
                name = k[:-3] + " (MiB)"
            elif v_is_rate(k):
                txt = ["%.2fM" % (v / 1e6) if v is not None else "-" for v in vals]
                name = k.replace("_per_s", "/s")
            else:
                txt = ["%.1f" % v if v is not None else "-" for v in vals]
                name = k
            L.append("| %s | %s | %s |" % (w, name.replace("_", " "), " | ".join(txt)))
        for title, num, den in derived:
            vals = []
            for a in names:
                m = cells[a]["metrics"]
                vals.append("%.2f" % (m[num] / m[den]) if m.get(num) and m.get(den) else "-")
            L.append("| %s | **%s** | %s |" % (w, title, " | ".join(vals)))
    L.append("")

    scaling_section(data, names, L)

    L.append("## Noise")
    L.append("")
    L.append("Spread of the time over the runs, (max - min) / median, median over the workloads: " + ", ".join(
        "%s %.0f%%" % (a, 100 * (statistics.median([summary[w]["alloc"][a]["spread"] for w in ranked(data)])
                                 if ranked(data) else 0)) for a in names) + ".")
    L.append("")
    L.append("## Workloads")
    L.append("")
    for w in data["workloads"]:
        L.append("- **%s**: %s" % (w, data["what"][w]))
    L.append("")
    L.append("Reproduce: `make bench` (this file), `python3 bench/run.py --runs N --only NAME,...`, "
             "`python3 bench/run.py --quick` (a smoke run of a minute or two).")
    L.append("")
    return "\n".join(L)


def ops_of(samples):
    return [x["metrics"].get("ops_per_s") if not x["error"] else None for x in samples]


def scaling_section(data, names, L):
    """Throughput at 2 threads over 1, per allocator and form of larson: the ratio of the medians, and the median
    of the run-by-run ratios (a run times T=1 and T=2 minutes apart, the same allocator)."""
    forms = [(t, w1, w2) for t, w1, w2 in SCALING if w1 in data["samples"] and w2 in data["samples"]]
    if not forms:
        return
    L.append("## Scaling: larson at 2 threads against 1")
    L.append("")
    L.append("Throughput (ops/s, median) at T=1 and T=2 and their ratio; the target is T=2 at 1.8x T=1 or more. "
             "*run by run*: the median of each run's T=2 over the same run's T=1. In the hand-off form one "
             "thread reads the lines another wrote while both run (1 object in 8), which no allocator can make "
             "cheaper: the *no-op* row is `bench/null/noop.c` (per-thread lists, no owner, no lock, nothing "
             "given back), the least an allocator can do. In Larson's own form threads hand over their table "
             "only when they end (each replaced after 100k operations), and the run lasts a fixed time (0.5 s), "
             "as in Larson and Krishnan's benchmark.")
    L.append("")
    L.append("| form | allocator | T=1 | T=2 | T=2 / T=1 | run by run |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: |")
    ref = data.get("reference") or {}
    for title, w1, w2 in forms:
        rows = [(a, data["samples"][w1][a], data["samples"][w2][a]) for a in names]
        if w1 in ref and w2 in ref:
            rows.append(("no-op", ref[w1], ref[w2]))
        for a, s1, s2 in rows:
            o1, o2 = ops_of(s1), ops_of(s2)
            m1, m2 = median(o1), median(o2)
            per_run = [y / x for x, y in zip(o1, o2) if x and y]
            L.append("| %s | %s | %s | %s | %s | %s |" % (
                title, "**osmem**" if a == "osmem" else ("*no-op*" if a == "no-op" else a),
                "%.2fM" % (m1 / 1e6) if m1 else "-", "%.2fM" % (m2 / 1e6) if m2 else "-",
                "%.2fx" % (m2 / m1) if m1 and m2 else "-",
                "%.2fx" % statistics.median(per_run) if per_run else "-"))
    L.append("")


def opt(x):
    return "%.2f" % x if x else "-"


def v_is_rate(k):
    return k.endswith("_per_s")


def render_svg(data, summary):
    """Two panels, time and peak RSS, each a bar per allocator and workload: the ratio to glibc on a log scale,
    bars growing from the glibc line (left: faster or smaller; right: slower or larger)."""
    names = [a for a in data["allocators"] if a != "glibc"]
    rows = list(ranked(data)) + ["geomean"]

    def r(w, a, key):
        if w == "geomean":
            return geomean([ratio(summary[x]["alloc"][a][key], summary[x]["alloc"]["glibc"][key])
                            for x in ranked(data)])
        return ratio(summary[w]["alloc"][a][key], summary[w]["alloc"]["glibc"][key])
    bar, gap = 7, 10
    row_h = len(names) * bar + gap
    label_w, panel_w, pad = 120, 360, 40
    top = 92
    width = label_w + 2 * panel_w + 3 * pad
    height = top + len(rows) * row_h + 40
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="18" font-size="14" font-weight="bold">osmem and peers, ratio to glibc (glibc = the '
           'line at 1; log scale; left of it is better)</text>',
           '<text x="10" y="56" fill="#555">%s</text>' % esc(data.get("label") or "")]
    x = 10
    for a in names:
        out.append('<rect x="%d" y="28" width="12" height="10" fill="%s"/><text x="%d" y="37">%s</text>' % (
            x, COLORS.get(a, "#000"), x + 16, a))
        x += 90
    for p, (key, title) in enumerate((("secs", "time"), ("rss_kb", "peak RSS"))):
        x0 = label_w + pad + p * (panel_w + pad)
        vals = [r(w, a, key) for w in rows for a in names]
        vals = [v for v in vals if v]
        lo = math.floor(math.log2(min(vals + [0.5])))
        hi = math.ceil(math.log2(max(vals + [2.0])))
        lo, hi = max(lo, -6), min(hi, 8)

        def X(v):
            lv = min(max(math.log2(v), lo), hi)
            return x0 + (lv - lo) / (hi - lo) * panel_w
        out.append('<text x="%d" y="%d" font-size="12" font-weight="bold">%s / glibc</text>' % (x0, top - 12, title))
        for e in range(lo, hi + 1):
            gx = X(2.0 ** e)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>' % (
                gx, top - 4, gx, top + len(rows) * row_h, "#000" if e == 0 else "#ddd"))
            out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>' % (
                gx, top + len(rows) * row_h + 14, ("%g" % 2.0 ** e) if e >= 0 else "1/%d" % 2 ** -e))
        for i, w in enumerate(rows):
            y = top + i * row_h
            if p == 0:
                out.append('<text x="%d" y="%d" text-anchor="end"%s>%s</text>' % (
                    label_w + pad - 6, y + row_h // 2 + 1, ' font-weight="bold"' if w == "geomean" else "", esc(w)))
            for j, a in enumerate(names):
                v = r(w, a, key)
                by = y + j * bar
                if v is None:
                    out.append('<text x="%.1f" y="%d" font-size="8" fill="%s">fail</text>' % (X(1) + 2, by + bar,
                                                                                               COLORS.get(a)))
                    continue
                x1, x2 = sorted((X(1.0), X(v)))
                out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s %s: %.2fx glibc'
                           '</title></rect>' % (x1, by, max(x2 - x1, 1), bar - 1, COLORS.get(a, "#000"), esc(w), a,
                                                title, v))
                if a == "osmem":
                    out.append('<text x="%.1f" y="%d" font-size="8" fill="%s"%s>%.2f</text>' % (
                        X(v) + (3 if v >= 1 else -3), by + bar - 1, COLORS["osmem"],
                        "" if v >= 1 else ' text-anchor="end"', v))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_outputs(data, out_md):
    summary = summarize(data)
    base = out_md[:-3] if out_md.endswith(".md") else out_md
    os.makedirs(os.path.dirname(os.path.abspath(out_md)), exist_ok=True)
    with open(base + ".json", "w") as f:
        json.dump(data, f, indent=1)
    with open(base + ".svg", "w") as f:
        f.write(render_svg(data, summary))
    with open(out_md, "w") as f:
        f.write(render_md(data, summary, os.path.basename(base) + ".svg"))
    return summary


# ---------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="the build directory (libosmem-malloc.so, bench/wl/)")
    ap.add_argument("--runs", type=int, help="runs per cell (default 5; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="reduced sizes, 1 run: a smoke run of a minute or two")
    ap.add_argument("--only", action="append", help="workloads whose name contains one of these (comma-separated)")
    ap.add_argument("--label", help="a line for the report's head (e.g. 'Preliminary: shared machine')")
    ap.add_argument("--out", help="the report (default bench/results/latest.md; --quick: BUILD/bench/quick.md)")
    ap.add_argument("--render", metavar="JSON", help="rewrite the report from saved samples, running nothing")
    ap.add_argument("--no-setup", action="store_true", help="do not try to install the peers")
    a = ap.parse_args()

    if a.render:
        with open(a.render) as f:
            data = json.load(f)
        out = a.out or (a.render[:-5] + ".md" if a.render.endswith(".json") else a.render + ".md")
        write_outputs(data, out)
        print("wrote %s" % out)
        return 0

    build = os.path.abspath(a.build)
    runs = a.runs or (1 if a.quick else 5)
    out_md = a.out or (os.path.join(build, "bench", "quick.md") if a.quick
                       else os.path.join(HERE, "results", "latest.md"))
    only = [x for o in (a.only or []) for x in o.split(",") if x]
    workloads = [w for w in WORKLOADS if not only or any(o in w.name for o in only)]
    if not workloads:
        print("bench: no workload matches %s (have: %s)" % (only, ", ".join(w.name for w in WORKLOADS)))
        return 2
    if not a.no_setup:
        subprocess.run(["sh", os.path.join(HERE, "setup.sh")], timeout=1200)
    global PEAK_LIB
    PEAK_LIB = os.path.join(build, "bench", "libpeak.so")
    missing = [p for p in [os.path.join(build, "libosmem-malloc.so"), PEAK_LIB] +
               [os.path.join(build, "bench", "wl", w.prog) for w in workloads if isinstance(w, CBench)]
               if not os.path.exists(p)]
    if missing:
        print("bench: missing %s: run `make bench-build` first" % ", ".join(missing), file=sys.stderr)
        return 2
    env = base_env()
    allocs = allocators(build)
    bad = check_preloads(allocs, env, os.path.join(build, "bench", "fresh"))
    if bad:
        print("bench: " + "; ".join(bad), file=sys.stderr)
        return 1

    # stopped by SIGTERM or SIGINT (also when started in the background, where SIGINT is ignored): the
    # finally below kills the run in progress and removes the scratch directory
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    work = tempfile.mkdtemp(prefix="osmem-bench-")
    fresh = os.path.join(build, "bench", "fresh")  # the libraries' per-run copies (fresh_copy)
    ctx = argparse.Namespace(build=build, quick=a.quick, work=work, base_env=env)
    samples = {w.name: {n: [] for n, _ in allocs} for w in workloads}
    noop = os.path.join(build, "bench", "libnoop.so")
    reference = {}                          # workload -> the yardstick's samples (not an allocator of the table)
    t_start = time.time()
    load_start = "%.2f" % os.getloadavg()[0]
    print("bench: %d workloads x %d allocators x %d runs%s" % (len(workloads), len(allocs), runs,
                                                              " (quick)" if a.quick else ""), flush=True)
    try:
        for w in workloads:
            w.prepare(ctx)
        failed = set()                      # (workload, allocator) that failed once: not run again
        for run in range(runs):
            k = run % len(allocs)
            order = allocs[k:] + allocs[:k]
            for w in workloads:
                for name, lib in order:
                    if (w.name, name) in failed:
                        continue
                    why = w.missing()
                    copy = fresh_copy(lib, fresh) if lib and not why else None
                    e = dict(env, LD_PRELOAD=copy) if lib else env
                    s = Sample(error=why) if why else w.run(ctx, e)
                    if copy:
                        os.unlink(copy)
                    samples[w.name][name].append(s.to_json())
                    if s.error:
                        failed.add((w.name, name))
                    print("  run %d/%d  %-15s %-9s %8s s %8s MiB  %s" % (
                        run + 1, runs, w.name, name, "%.3f" % s.secs if s.secs is not None else "-",
                        fmt_mib(s.rss_kb) if s.rss_kb else "-",
                        ("FAIL " + s.error) if s.error else s.checksum), flush=True)
                if w.name in NOOP_WORKLOADS and os.path.exists(noop):
                    copy = fresh_copy(noop, fresh)
                    s = w.run(ctx, dict(env, LD_PRELOAD=copy))
                    os.unlink(copy)
                    reference.setdefault(w.name, []).append(s.to_json())
                    print("  run %d/%d  %-15s %-9s %8s s  (yardstick)  %s" % (
                        run + 1, runs, w.name, "no-op", "%.3f" % s.secs if s.secs is not None else "-",
                        ("FAIL " + s.error) if s.error else s.checksum), flush=True)
    finally:
        for pid in list(RUNNING):
            kill_group(pid)
        shutil.rmtree(work, ignore_errors=True)
    data = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "quick": a.quick, "runs": runs,
            "label": a.label, "allocators": [n for n, _ in allocs], "workloads": [w.name for w in workloads],
            "what": {w.name: w.what for w in workloads}, "kinds": {w.name: w.kind for w in workloads},
            "meta": describe_machine(allocs, build),
            "load_start": load_start, "load_end": "%.2f" % os.getloadavg()[0], "elapsed": time.time() - t_start,
            "samples": samples, "reference": reference}
    summary = write_outputs(data, out_md)
    bad = 0
    for w in data["workloads"]:
        if len(summary[w]["checksums"]) > 1:
            print("FAIL %s: checksums differ: %s" % (w, summary[w]["checksums"]))
            bad += 1
        for n in data["allocators"]:
            for e in sorted(set(summary[w]["alloc"][n]["errors"])):
                print("FAIL %s on %s: %s" % (w, n, e))
                bad += 1
    print("bench: wrote %s (%.0f s)%s" % (out_md, time.time() - t_start, "; %d failures" % bad if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
