#!/usr/bin/env python3
"""test_environment: what osmem takes from the environment, and when it must not.

secure/: a program that runs with privileges its user does not have reads no OSMEM_ variable.

Hazard: OSMEM_TRACE and OSMEM_STATS name files that osmem creates and appends to, and OSMEM_FAIL fails the
allocations it names. In a setuid, setgid or file-capability program (the kernel's AT_SECURE) the caller's
environment is not to be trusted: until session 63 a setgid program linked with osmem, run with OSMEM_STATS=PATH,
wrote a file of the caller's choosing, owned by the program's group (with a setuid-root program: by root), and
OSMEM_FAIL made its allocations fail where the caller chose. glibc ignores its malloc tunables there and jemalloc
its MALLOC_CONF (secure_getenv). Now osmem ignores every OSMEM_ variable there and says so once on standard error.

Each library is checked with a program linked statically against its archive (libosmem-malloc.a: malloc;
libosmem.a: os_malloc), made setgid to a group the caller is not running as, so that AT_SECURE is 1 however the
test runs (root: any other group; another user: one of its supplementary groups). The same binary without the
setgid bit is the control: there the variables must take effect, so a test that could not tell is a failure.

env/: the environment osmem reads is the program's as it is now. A program that cleared its environment
(clearenv) had osmem read the one it started with (the stack's); a static one had its arguments read as the
environment (session 63's review of the untrusted-input surface).

Prints `PASS <name>` or `FAIL <name>: <why>`, then 'N passed, N failed'."""
import argparse
import grp
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
results = []


def check(name, ok, why=""):
    results.append(ok)
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    return ok


# one program for each library (its archive, and the calls that reach it): the same line printed, one parser
SECURE_PROG = r"""#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include "osmem.h"
int main(void)
{
	void *small = ALLOC(100), *large = ALLOC(1 << 20);
	printf("secure=%lu small=%d large=%d\n", getauxval(AT_SECURE), small != NULL, large != NULL);
	FREE(small);
	FREE(large);
	return 0;
}
"""
PROGRAMS = {
    "dropin": ("#define ALLOC malloc\n#define FREE free\n" + SECURE_PROG, "libosmem-malloc.a"),
    "classic": ("#define ALLOC os_malloc\n#define FREE os_free\n" + SECURE_PROG, "libosmem.a"),
}

MESSAGE = "osmem: the program runs with privileges (setuid, setgid or capabilities): OSMEM_ settings are ignored"


def other_group():
    """A group the caller can give a file and is not running as (root: any; others: a supplementary one)."""
    mine = os.getgid()
    if os.geteuid() == 0:
        for name in ("nogroup", "nobody", "daemon", "bin"):
            try:
                g = grp.getgrnam(name).gr_gid
                if g != mine:
                    return g
            except KeyError:
                pass
        return 1 if mine != 1 else 2
    return next((g for g in os.getgroups() if g != mine), None)


def clean_env(**extra):
    """The test's environment without osmem's settings or a preload, and with `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSMEM_") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


def run(exe, tmp, extra):
    r = subprocess.run([exe], capture_output=True, text=True, timeout=60, env=clean_env(**extra), cwd=tmp)
    fields = dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
    return r, fields


DLOPEN = r"""#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
/* a setgid program that keeps a value its caller gave in its environment, then loads the classic library */
int main(int argc, char **argv)
{
	if (argc > 2)
		setenv("LC_NAME", argv[2], 1);
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h)
		return 3;
	void *(*os_malloc)(size_t) = (void *(*)(size_t))dlsym(h, "os_malloc");
	void *small = os_malloc(100), *large = os_malloc(1 << 20);
	printf("secure=%lu small=%d large=%d\n", getauxval(AT_SECURE), small != NULL, large != NULL);
	return 0;
}
"""


def build_prog(tmp, name, source, args):
    src, exe = os.path.join(tmp, name + ".c"), os.path.join(tmp, name)
    open(src, "w").write(source)
    b = subprocess.run(["cc", "-O2", "-std=c11", "-fno-builtin", "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "include"),
                        src, "-o", exe] + args, capture_output=True, text=True)
    return exe if check(f"{name}/program_builds", b.returncode == 0, b.stderr[-500:]) else None


def secure_dlopen(build, tmp, gid):
    """The classic library loaded with dlopen by a setgid program that set a variable first: its constructor is
    handed the environment of that moment, in the heap, and the walk past its end read the program's data as the
    auxiliary vector; a value "\x17" (AT_SECURE, then 0) passed for an unprivileged program."""
    os.makedirs(os.path.join(tmp, "secure"), exist_ok=True)
    exe = build_prog(tmp, "secure/dlopen", DLOPEN, ["-ldl"])
    if not exe:
        return
    os.chown(exe, -1, gid)
    os.chmod(exe, 0o2755)
    stats = os.path.join(tmp, "dlopen.stats")
    for value in ("plain", "\x17"):
        env = clean_env(OSMEM_STATS=stats, OSMEM_FAIL="mmap:1+,brk:1+")
        r = subprocess.run([exe, os.path.join(build, "libosmem.so"), value], capture_output=True, text=True,
                           timeout=60, env=env, cwd=tmp)
        name = "plain" if value == "plain" else "x17"
        check(f"secure/dlopen/setgid_program_with_{name}_variable_ignores_settings",
              r.returncode == 0 and "secure=1 small=1 large=1" in r.stdout and not os.path.exists(stats),
              f"exit {r.returncode}, {r.stdout.strip()!r} (want secure=1 small=1 large=1), stats file "
              f"{'made' if os.path.exists(stats) else 'not made'}: {r.stderr[-300:]!r}")
        if os.path.exists(stats):
            os.unlink(stats)


CLEARED = r"""#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include "osmem.h"
/* empties its environment (as a sanitising tool does), then allocates; its arguments are data */
int main(int argc, char **argv)
{
	(void)argv;
	clearenv();
	void *p = USE_OS ? os_malloc(100) : malloc(100);
	printf("argc=%d p=%d\n", argc, p != NULL);
	if (USE_OS)
		os_free(p);
	else
		free(p);
	return 0;
}
"""


def env_cleared(build, tmp):
    """A program that cleared its environment has no OSMEM_ settings: the drop-in read the environment it started
    with (from the stack) after clearenv; a static program of the classic library read its arguments as one."""
    os.makedirs(os.path.join(tmp, "env"), exist_ok=True)
    base = clean_env()
    trace = os.path.join(tmp, "cleared.trace")
    exe = build_prog(tmp, "env/cleared_dropin", "#define USE_OS 0\n" + CLEARED,
                     [os.path.join(build, "libosmem-malloc.a"), "-lpthread"])
    if exe:
        r = subprocess.run([exe], capture_output=True, text=True, timeout=60, cwd=tmp,
                           env=dict(base, OSMEM_TRACE=trace))
        check("env/cleared_environment_not_traced", r.returncode == 0 and not os.path.exists(trace),
              f"exit {r.returncode}: OSMEM_TRACE, cleared before the first malloc, still made {trace}")
        if os.path.exists(trace):
            os.unlink(trace)
    static = build_prog(tmp, "env/cleared_static", "#define USE_OS 1\n" + CLEARED,
                        ["-static", os.path.join(build, "libosmem.a"), "-lpthread"])
    if static:
        r = subprocess.run([static, "OSMEM_TRACE=" + trace, "x"], capture_output=True, text=True, timeout=60, cwd=tmp,
                           env={})
        check("env/static_program_arguments_not_read_as_environment",
              r.returncode == 0 and "p=1" in r.stdout and not os.path.exists(trace),
              f"exit {r.returncode}, {r.stdout.strip()!r}: an argument OSMEM_TRACE=... "
              f"{'made' if os.path.exists(trace) else 'did not make'} {trace}; {r.stderr[-300:]!r}")


OWN_LOG = r"""#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
/* writes its own log line on standard error, forks a child that allocates and writes one too */
int main(void)
{
	char *p = malloc(100);
	free(p);
	fprintf(stderr, "program's own line\n");
	pid_t c = fork();
	if (c == 0) {
		p = malloc(200);
		free(p);
		fprintf(stderr, "child's own line\n");
		exit(0);
	}
	waitpid(c, NULL, 0);
	p = malloc(300);
	free(p);
	return 0;
}
"""


def trace_into_own_log(build, tmp):
    """OSMEM_TRACE naming the program's own standard error, redirected into a log file: the log was locked,
    truncated and written from its start (its earlier lines and the program's own gone), and a forked child made
    /dev/stderr.PID. Now the trace goes through a copy of the descriptor: appended, nothing lost, no PATH.PID."""
    os.makedirs(os.path.join(tmp, "env"), exist_ok=True)
    exe = build_prog(tmp, "env/own_log", OWN_LOG, [os.path.join(build, "libosmem-malloc.a"), "-lpthread"])
    if not exe:
        return
    base = clean_env()
    for path in ("/dev/stderr", "/proc/self/fd/2"):
        log = os.path.join(tmp, "app.log")
        with open(log, "w") as f:
            f.write("yesterday's line 1\nyesterday's line 2\n")
        before = set(os.listdir(os.path.dirname(path)))
        with open(log, "a") as f:
            r = subprocess.run([exe], stdout=subprocess.DEVNULL, stderr=f, timeout=60, cwd=tmp,
                               env=dict(base, OSMEM_TRACE=path))
        text = open(log).read()
        made = sorted(set(os.listdir(os.path.dirname(path))) - before) if path.startswith("/dev/") else []
        for m in made:  # a test that failed must not leave files in /dev
            try:
                os.unlink(os.path.join(os.path.dirname(path), m))
            except OSError:
                pass
        lines = ["yesterday's line 1", "yesterday's line 2", "program's own line", "child's own line"]
        lost = [l for l in lines if l not in text]
        check(f"env/trace_into_programs_own_log_keeps_it ({path})",
              r.returncode == 0 and not lost and text.count("osmem-trace 1") == 2 and not made,
              f"exit {r.returncode}; lines lost {lost}; trace headers {text.count('osmem-trace 1')} (want 2: the "
              f"program and its child); files made beside {path}: {made}")


WAITER = r"""#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* says its pid, waits for a line on standard input, then allocates (no allocation before: the trace opens later) */
int main(void)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (write(1, buf, (size_t)n) != n || read(0, buf, 1) != 1)
		return 2;
	void *p = malloc(100);
	free(p);
	return 0;
}
"""


def trace_pid_file_not_through_a_link(build, tmp):
    """A process that is not the trace's owner writes PATH.PID, a name osmem makes up; a symbolic link planted at
    that name (in a shared directory, for a pid to come) made the trace truncate and overwrite the file it points
    to. Now PATH.PID is never opened through a link, and the loss of that process's trace is said."""
    os.makedirs(os.path.join(tmp, "env"), exist_ok=True)
    exe = build_prog(tmp, "env/waiter", WAITER, [os.path.join(build, "libosmem-malloc.a"), "-lpthread"])
    if not exe:
        return
    shared, victim = os.path.join(tmp, "shared"), os.path.join(tmp, "victim.txt")
    os.makedirs(shared, exist_ok=True)
    with open(victim, "w") as f:
        f.write("precious data\n")
    base = clean_env()
    # the owner named is pid 1, so this process writes PATH.PID
    p = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=tmp, env=dict(base, OSMEM_TRACE=os.path.join(shared, "t.trace"), OSMEM_TRACE_PID="1"))
    pid = p.stdout.readline().strip()
    os.symlink(victim, os.path.join(shared, f"t.trace.{pid}"))
    out, err = p.communicate("go\n", timeout=60)
    kept = open(victim).read() == "precious data\n"
    check("env/trace_pid_file_not_through_a_link", p.returncode == 0 and kept and "is a symbolic link" in err,
          f"exit {p.returncode}; the file the link at t.trace.{pid} points to was "
          f"{'kept' if kept else 'overwritten'}; stderr {err[-300:]!r} (want the loss said)")
    # a FIFO planted there: the open waited for a reader inside the program's malloc, for good
    p = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=tmp, env=dict(base, OSMEM_TRACE=os.path.join(shared, "t.trace"), OSMEM_TRACE_PID="1"))
    pid = p.stdout.readline().strip()
    os.mkfifo(os.path.join(shared, f"t.trace.{pid}"))
    try:
        out, err = p.communicate("go\n", timeout=20)
        ok, why = p.returncode == 0 and "this process is not traced" in err, f"exit {p.returncode}: {err[-300:]!r}"
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        ok, why = False, f"the program waited 20 s in its malloc for a reader of the FIFO at t.trace.{pid}"
    check("env/trace_pid_file_not_a_planted_fifo", ok, why)


CHDIR = r"""#include <stdlib.h>
#include <unistd.h>
/* a daemon's first act: it changes directory before its first allocation */
int main(void)
{
	if (chdir("sub") != 0)
		return 2;
	char *p = malloc(100);
	free(p);
	return 0;
}
"""


def relative_trace_from_start_directory(build, tmp):
    """A relative OSMEM_TRACE is taken from the directory the process starts in (README), as OSMEM_STATS is: a
    program that changed directory before its first allocation had its trace made there instead."""
    os.makedirs(os.path.join(tmp, "env"), exist_ok=True)
    os.makedirs(os.path.join(tmp, "sub"), exist_ok=True)
    exe = build_prog(tmp, "env/chdir_first", CHDIR, [os.path.join(build, "libosmem-malloc.a"), "-lpthread"])
    if not exe:
        return
    base = clean_env()
    r = subprocess.run([exe], capture_output=True, text=True, timeout=60, cwd=tmp,
                       env=dict(base, OSMEM_TRACE="rel.trace", OSMEM_STATS="rel.stats"))
    where = {name: [d for d in (".", "sub") if os.path.exists(os.path.join(tmp, d, name))]
             for name in ("rel.trace", "rel.stats")}
    check("env/relative_trace_path_from_start_directory",
          r.returncode == 0 and where == {"rel.trace": ["."], "rel.stats": ["."]},
          f"exit {r.returncode}; made in (start directory '.', or 'sub'): {where}; {r.stderr[-300:]!r}")


def trace_pid_not_understood_said(build, tmp):
    """OSMEM_TRACE_PID names the trace's owner (osmem-run sets it). Trailing text (1x named pid 1), a value past a
    long (it wrapped) or none at all were taken in silence; now they are said once and ignored: the first process
    to write the trace owns it."""
    exe = os.path.join(tmp, "env", "chdir_first")  # any program of one process that allocates
    if not os.path.exists(exe):
        return
    base = clean_env()
    for value in ("1x", "garbage", str(2 ** 64 + os.getpid())):
        trace = os.path.join(tmp, "pid.trace")
        r = subprocess.run([exe], capture_output=True, text=True, timeout=60, cwd=tmp,
                           env=dict(base, OSMEM_TRACE=trace, OSMEM_TRACE_PID=value))
        said = r.stderr.count(f"OSMEM_TRACE_PID={value} is not understood")
        made = os.path.exists(trace)
        check(f"env/trace_pid_not_understood_said ({value[:12]})", r.returncode == 0 and said == 1 and made,
              f"exit {r.returncode}, said {said} times (want 1), {trace} {'made' if made else 'not made'} (the "
              f"process owns the trace when no owner is understood): {r.stderr[-300:]!r}")
        for f in os.listdir(tmp):
            if f.startswith("pid.trace"):
                os.unlink(os.path.join(tmp, f))


def stream_setting_not_understood_said(build, tmp):
    """OSMEM_STREAM (realloc's big copies: streaming stores or memcpy) takes 0, 1, or nothing (the processor
    decides). Anything else is said once, at the heap's start, in any program: not only in one that moves a block
    of 256 KiB, where it would have been taken in silence. An empty value is as unset: nothing said."""
    exe = os.path.join(tmp, "env", "chdir_first")
    if not os.path.exists(exe):
        return
    base = clean_env()
    for value, want in (("yes", 1), ("2", 1), ("", 0), ("0", 0), ("1", 0)):
        r = subprocess.run([exe], capture_output=True, text=True, timeout=60, cwd=tmp,
                           env=dict(base, OSMEM_STREAM=value))
        said = r.stderr.count(f"OSMEM_STREAM={value} is not 0 or 1")
        check(f"env/stream_setting_not_understood_said ({value or 'empty'})", r.returncode == 0 and said == want,
              f"exit {r.returncode}, said {said} times (want {want}): {r.stderr[-300:]!r}")


def stats_fifo_without_reader(build, tmp):
    """OSMEM_STATS naming a FIFO that nobody reads: its open, in the library's constructor, waited for a reader
    before main, for good. Now the program runs, and the missing statistics are said."""
    exe = os.path.join(tmp, "env", "chdir_first")
    if not os.path.exists(exe):
        return
    fifo = os.path.join(tmp, "stats.fifo")
    os.mkfifo(fifo)
    base = clean_env()
    try:
        r = subprocess.run([exe], capture_output=True, text=True, timeout=20, cwd=tmp,
                           env=dict(base, OSMEM_STATS=fifo))
        ok, why = r.returncode == 0 and "a FIFO with no reader" in r.stderr, f"exit {r.returncode}: {r.stderr[-300:]!r}"
    except subprocess.TimeoutExpired:
        ok, why = False, "the program did not end in 20 s: it waits for a reader of the FIFO"
    check("env/stats_fifo_without_reader_said", ok, why)
    # a socket fails its open the same way (ENXIO): it is named as a socket, not as a FIFO
    import socket
    a, b = socket.socketpair()
    try:
        r = subprocess.run([exe], stdout=subprocess.DEVNULL, stderr=a.fileno(), timeout=20, cwd=tmp,
                           env=dict(base, OSMEM_STATS="/dev/stderr"))
        a.close()
        said = b.recv(65536).decode(errors="replace")
    finally:
        b.close()
    check("env/stats_socket_named_as_a_socket", r.returncode == 0 and "a socket" in said and "FIFO" not in said,
          f"exit {r.returncode}, standard error (a socket) said {said[-300:]!r}")


EXEC_QUIET = r"""#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
/* writes a line, runs a helper whose output goes to /dev/null (exec), writes another; argv[1]: the helper */
int main(int argc, char **argv)
{
	char *p = malloc(100);
	free(p);
	fprintf(stderr, "parent line 1\n");
	pid_t c = fork();
	if (c == 0) {
		int n = open("/dev/null", O_WRONLY);
		dup2(n, 1);
		dup2(n, 2);
		execl(argv[argc - 1], argv[argc - 1], "helper", (char *)NULL);
		_exit(127);
	}
	waitpid(c, NULL, 0);
	fprintf(stderr, "parent line 2\n");
	p = malloc(300);
	free(p);
	return 0;
}
"""


def trace_into_own_log_kept_from_other_processes(build, tmp):
    """The trace path is the program's own log, by name: the program writes through a copy of its descriptor and
    holds the file's lock with it, so a process exec'd with its output elsewhere (a quiet helper) writes PATH.PID.
    Without the lock that process took the path, truncated the log and wrote its trace over the program's lines."""
    exe = build_prog(tmp, "env/exec_quiet", EXEC_QUIET, [os.path.join(build, "libosmem-malloc.a"), "-lpthread"])
    helper = os.path.join(tmp, "env", "own_log")  # any program that allocates, forks, writes to stderr
    if not exe or not os.path.exists(helper):
        return
    log = os.path.join(tmp, "named.log")
    with open(log, "w") as f:
        f.write("yesterday's line 1\n")
    base = clean_env()
    with open(log, "a") as f:
        r = subprocess.run([exe, helper], stdout=subprocess.DEVNULL, stderr=f, timeout=60, cwd=tmp,
                           env=dict(base, OSMEM_TRACE=log))
    text = open(log).read()
    pids = [n for n in os.listdir(tmp) if n.startswith("named.log.")]
    lost = [l for l in ("yesterday's line 1", "parent line 1", "parent line 2") if l not in text]
    check("env/trace_into_own_log_kept_from_other_processes",
          r.returncode == 0 and not lost and "osmem-trace 1" in text and pids,
          f"exit {r.returncode}; lines lost from the log {lost}; trace header in it: {'osmem-trace 1' in text}; "
          f"PATH.PID files of the other processes {pids} (want the helper's)")


def secure_programs(build, tmp, gid):
    """Each library's program run plain (the control) and setgid (AT_SECURE)."""
    for lib, (source, archive) in PROGRAMS.items():
        src, exe = os.path.join(tmp, lib + ".c"), os.path.join(tmp, lib)
        open(src, "w").write(source)
        b = subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "include"), src,
                            "-o", exe, os.path.join(build, archive), "-lpthread"], capture_output=True, text=True)
        if not check(f"secure/{lib}/program_builds", b.returncode == 0, b.stderr[-500:]):
            continue
        stats, trace = os.path.join(tmp, lib + ".stats"), os.path.join(tmp, lib + ".trace")
        files = {"OSMEM_STATS": stats, "OSMEM_TRACE": trace}
        fail = {"OSMEM_FAIL": "mmap:1+,brk:1+"}

        # the control: the same binary, no privileges: the files are written and the faults injected
        r, f = run(exe, tmp, files)
        made = [k for k, p in files.items() if os.path.exists(p)]
        check(f"secure/{lib}/unprivileged_program_takes_settings",
              r.returncode == 0 and f.get("secure") == "0" and len(made) == 2,
              f"exit {r.returncode}, {r.stdout.strip()!r}, files made by {made} (want both): {r.stderr[-300:]!r}")
        r, f = run(exe, tmp, fail)
        check(f"secure/{lib}/unprivileged_program_takes_faults", f.get("small") == "0" and f.get("large") == "0",
              f"with {fail}: {r.stdout.strip()!r} (want both allocations to fail): {r.stderr[-300:]!r}")
        for p in files.values():
            if os.path.exists(p):
                os.unlink(p)

        # setgid to a group the caller is not running as: AT_SECURE
        os.chown(exe, -1, gid)
        os.chmod(exe, 0o2755)
        r, f = run(exe, tmp, dict(files, **fail))
        if not check(f"secure/{lib}/setgid_program_is_secure", f.get("secure") == "1",
                     f"the setgid copy (group {gid}) ran with {r.stdout.strip()!r}: the file system may be "
                     f"mounted nosuid ({tmp}); {r.stderr[-300:]!r}"):
            continue
        made = [k for k, p in files.items() if os.path.exists(p)]
        check(f"secure/{lib}/privileged_program_writes_no_file", not made,
              f"{made} named files that the setgid program created: {[files[k] for k in made]}")
        check(f"secure/{lib}/privileged_program_takes_no_fault", f.get("small") == "1" and f.get("large") == "1",
              f"with {fail}: {r.stdout.strip()!r} (want both allocations served)")
        said = r.stderr.count(MESSAGE)
        check(f"secure/{lib}/privileged_program_says_settings_ignored_once", r.returncode == 0 and said == 1,
              f"exit {r.returncode}, said {said} times (want 1): {r.stderr[-300:]!r}")
        # no OSMEM_ variable set: nothing to say
        r, f = run(exe, tmp, {})
        check(f"secure/{lib}/privileged_program_silent_without_settings",
              r.returncode == 0 and f.get("small") == "1" and "osmem:" not in r.stderr,
              f"exit {r.returncode}, {r.stdout.strip()!r}: {r.stderr[-300:]!r}")


def osmem_run_background(build, tmp):
    """`osmem-run --background` runs the program with osmem's background thread (OSMEM_BACKGROUND=1): a task named
    osmem-bg in it; without the option, none (docs/DEFAULT.md, "An idle process")."""
    prog = ("import os\n"
            "print(' '.join(sorted(open('/proc/self/task/%s/comm' % t).read().strip() for t in os.listdir('/proc/self/task'))))")
    tool = os.path.join(ROOT, "tools", "osmem-run")
    lib = os.path.join(build, "libosmem-malloc.so")
    seen = {}
    for opt in ("--background", None):
        argv = [tool] + ([opt] if opt else []) + ["--lib", lib, "--", sys.executable, "-c", prog]
        p = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=60)
        seen[opt] = (p.returncode, p.stdout.split(), p.stderr.strip()[-300:])
    ok = (seen["--background"][0] == 0 and "osmem-bg" in seen["--background"][1] and seen[None][0] == 0
          and "osmem-bg" not in seen[None][1])
    check("env/osmem_run_background_starts_the_thread", ok,
          "tasks with --background: %s; without: %s" % (seen["--background"], seen[None]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    gid = other_group()
    # in the build directory, not /tmp: /tmp may be mounted nosuid, which would leave AT_SECURE 0
    tmp = tempfile.mkdtemp(prefix="secure.", dir=build)
    try:
        if gid is None:
            # not root and no supplementary group: no setgid program can be made here (CI runs as root)
            print("note: secure/: not root and no supplementary group, so no program with AT_SECURE can be made "
                  "here; the env/ checks run")
        else:
            secure_programs(build, tmp, gid)
            secure_dlopen(build, tmp, gid)
        env_cleared(build, tmp)
        trace_into_own_log(build, tmp)
        trace_into_own_log_kept_from_other_processes(build, tmp)
        trace_pid_file_not_through_a_link(build, tmp)
        relative_trace_from_start_directory(build, tmp)
        trace_pid_not_understood_said(build, tmp)
        stream_setting_not_understood_said(build, tmp)
        stats_fifo_without_reader(build, tmp)
        osmem_run_background(build, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
