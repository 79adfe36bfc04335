#!/usr/bin/env python3
"""Hazards of the drop-in that need a separate build, a second library or the environment (the rest are the
tests/malloc_protect_*.c and tests/test_protect_*.c programs):

- protect_fork/preload: tests/malloc_protect_fork.c built without osmem and run with LD_PRELOAD: fork handlers
  registered before and after osmem's allocate, and fork returns;
- protect_stats/late_destructor_frees: a library initialised before osmem (so finalised after it) frees N blocks
  in its destructor; OSMEM_STATS's `frees` must count them (N = 0 and N = 1000, the difference is 1000);
- protect_trace/fork_keeps_parent_trace: OSMEM_TRACE=PATH set directly (no osmem-run, no OSMEM_TRACE_PID): a
  forked child writes PATH.PID and the parent's PATH keeps everything it recorded before and after the fork;
- protect_trace/exec_child_keeps_parent_trace: the same when the child runs another program, which starts its own
  trace (PATH is held by the parent: the new program writes PATH.PID);
- protect_profile/unknown_named: OSMEM_PROFILE=garbage is named on standard error, once;
- protect_front/unknown_named, protect_hugepage/unknown_named: so are OSMEM_FRONT and OSMEM_HUGEPAGE values that
  are not settings, and the settings (and an empty value) are quiet.

Usage: test_protect.py --build DIR [--lib PATH] (--lib: the libosmem-malloc.so to test, default DIR's).
Prints PASS/FAIL lines and 'N passed, N failed'; exits 1 when something failed."""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
results = []


def check(name, ok, why=""):
    results.append(bool(ok))
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}", flush=True)
    return ok


def cc(out, sources, *flags):
    r = subprocess.run(["cc", "-O2", "-fno-builtin", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
                        "-I" + os.path.join(ROOT, "include"), *sources, "-o", out, *flags],
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"cc {' '.join(sources)}: {r.stderr}")
    return out


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSMEM_") and k != "LD_PRELOAD"}
    env.update(extra)
    return env


LATE_LIB = r"""
#include <stdlib.h>
static void *blocks[4096];
static int n;
/* initialised before osmem's constructor when the program needs this library and osmem is preloaded:
 * finalised after osmem's destructor */
__attribute__((constructor)) static void late_init(void)
{
	const char *v = getenv("LATE_N");
	n = v ? atoi(v) : 0;
	for (int i = 0; i < n; i++)
		blocks[i] = malloc(32 + i % 64);
}
__attribute__((destructor)) static void late_fini(void)
{
	for (int i = 0; i < n; i++)
		free(blocks[i]);
}
int late_count(void) { return n; }
"""

LATE_PROG = r"""
#include <stdio.h>
#include <stdlib.h>
int late_count(void);
int main(void)
{
	void *p = malloc(100);
	free(p);
	return late_count() < 0;
}
"""

TRACE_PROG = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	free(malloc(11111));                         /* the parent, before the fork */
	pid_t pid = fork();
	if (pid == 0 && argc > 1) {                  /* the child runs a program: OSMEM_TRACE is inherited */
		execl(argv[1], argv[1], (char *)NULL);
		_exit(127);
	}
	if (pid == 0) {
		for (int i = 0; i < 3000; i++)           /* more than a buffer of the child's own */
			free(malloc(54321));
		exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	free(malloc(22222));                         /* the parent, after the child ended */
	printf("%d\n", (int)pid);
	return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
"""

EXEC_PROG = r"""
#include <stdlib.h>
int main(void) { for (int i = 0; i < 3000; i++) free(malloc(33333)); return 0; }
"""

SMALL_PROG = r"""
#include <stdlib.h>
int main(void) { for (int i = 0; i < 10; i++) free(malloc(100 * i)); return 0; }
"""


def frees_printed(text):
    m = re.findall(r"^osmem:\s+frees\s+(\d+)$", text, re.M)
    return int(m[-1]) if len(m) == 1 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--lib")
    a = ap.parse_args()
    lib = os.path.abspath(a.lib or os.path.join(a.build, "libosmem-malloc.so"))
    with tempfile.TemporaryDirectory() as tmp:
        # 1. fork handlers with the library preloaded
        prog = cc(os.path.join(tmp, "protect_fork"), [os.path.join(ROOT, "tests", "malloc_protect_fork.c")],
                  "-DPRELOADED", "-lpthread", "-ldl")
        try:
            r = subprocess.run([prog], env=clean_env(LD_PRELOAD=lib), capture_output=True, text=True,
                               timeout=120)
            out = r.stdout + r.stderr
            check("protect_fork/preload", r.returncode == 0 and "PASS protect_fork/preload" in out,
                  f"exit {r.returncode}: {out.strip()[-300:]}")
        except subprocess.TimeoutExpired:
            check("protect_fork/preload", False, "the program hung past its own alarm")

        # 2. statistics count the frees of a library finalised after osmem
        late = cc(os.path.join(tmp, "liblate.so"), [write(tmp, "late.c", LATE_LIB)], "-shared", "-fPIC")
        prog = cc(os.path.join(tmp, "late_prog"), [write(tmp, "late_prog.c", LATE_PROG)], "-L" + tmp, "-llate",
                  "-Wl,-rpath," + tmp)
        got = {}
        for n in (0, 1000):
            stats = os.path.join(tmp, f"stats{n}")
            r = subprocess.run([prog], env=clean_env(LD_PRELOAD=lib, OSMEM_STATS=stats, LATE_N=str(n)),
                               capture_output=True, text=True, timeout=60)
            got[n] = frees_printed(open(stats).read()) if os.path.exists(stats) else None
        ok = None not in got.values() and got[1000] - got[0] == 1000
        check("protect_stats/late_destructor_frees", ok,
              f"`frees` printed {got[0]} with no late frees and {got[1000]} with 1000 (the destructor's frees "
              f"are not counted)" if None not in got.values() else f"no single `frees` line: {got}")

        # 3. a forked child does not truncate the parent's trace (3a), nor does a child that runs another
        # program, which starts a trace of its own (3b): the parent's trace keeps its two mallocs and none of the
        # child's 3000, and the child's are whole in PATH.PID
        def trace_split(argv, name, child_size, who):
            path = os.path.join(tmp, name)
            r = subprocess.run(argv, env=clean_env(LD_PRELOAD=lib, OSMEM_TRACE=path), capture_output=True,
                               text=True, timeout=60)
            parent_text = open(path).read() if os.path.exists(path) else ""
            child_path = f"{path}.{r.stdout.strip()}"
            child_text = open(child_path).read() if os.path.exists(child_path) else ""
            problems = []
            if r.returncode:
                problems.append(f"the program failed ({r.returncode})")
            if not parent_text.startswith("osmem-trace 1 "):
                problems.append("the parent's trace does not start with its header")
            for size in (11111, 22222):
                if f"\nmalloc {size} " not in parent_text:
                    problems.append(f"the parent's trace lost its malloc({size})")
            if f"malloc {child_size}" in parent_text:
                problems.append(f"the {who} wrote into the parent's trace")
            if not child_text.startswith("osmem-trace 1 ") or child_text.count(f"\nmalloc {child_size} ") != 3000:
                problems.append(f"{child_path} is not the {who}'s whole trace")
            return problems

        prog = cc(os.path.join(tmp, "trace_prog"), [write(tmp, "trace_prog.c", TRACE_PROG)])
        problems = trace_split([prog], "t.trace", 54321, "child")
        check("protect_trace/fork_keeps_parent_trace", not problems, "; ".join(problems))
        other = cc(os.path.join(tmp, "exec_prog"), [write(tmp, "exec_prog.c", EXEC_PROG)])
        problems = trace_split([prog, other], "e.trace", 33333, "exec'd child")
        check("protect_trace/exec_child_keeps_parent_trace", not problems, "; ".join(problems))

        # 4. an unknown profile is named, once
        prog = cc(os.path.join(tmp, "small"), [write(tmp, "small.c", SMALL_PROG)])
        r = subprocess.run([prog], env=clean_env(LD_PRELOAD=lib, OSMEM_PROFILE="garbage"), capture_output=True,
                           text=True, timeout=60)
        want = "osmem: OSMEM_PROFILE=garbage is not a profile (classic or default); using default\n"
        check("protect_profile/unknown_named", r.returncode == 0 and r.stderr == want,
              f"standard error was {r.stderr!r}, not {want!r}")
        r = subprocess.run([prog], env=clean_env(LD_PRELOAD=lib, OSMEM_PROFILE="default"), capture_output=True,
                           text=True, timeout=60)
        check("protect_profile/default_is_quiet", r.returncode == 0 and r.stderr == "",
              f"standard error was {r.stderr!r}")

        # 5. so are OSMEM_FRONT and OSMEM_HUGEPAGE values that are not settings (off, no, false, 00, 2 ran the
        # default in silence); the settings themselves, and an empty value (unset), say nothing
        for var, allowed, bad_values in (("OSMEM_FRONT", "0 or 1", ("off", "no", "false", "00")),
                                         ("OSMEM_HUGEPAGE", "0, 1 or dense", ("off", "no", "2"))):
            tag = var[len("OSMEM_"):].lower()
            wrong = []
            for v in bad_values:
                r = subprocess.run([prog], env=clean_env(LD_PRELOAD=lib, **{var: v}), capture_output=True, text=True,
                                   timeout=60)
                want = f"osmem: {var}={v} is not a setting ({allowed}); using default\n"
                if r.returncode != 0 or r.stderr != want:
                    wrong.append(f"{var}={v}: exit {r.returncode}, standard error {r.stderr!r}, not {want!r}")
            check(f"protect_{tag}/unknown_named", not wrong, "; ".join(wrong))
            wrong = []
            for v in allowed.replace(" or", ",").split(", ") + [""]:
                r = subprocess.run([prog], env=clean_env(LD_PRELOAD=lib, **{var: v}), capture_output=True, text=True,
                                   timeout=60)
                if r.returncode != 0 or r.stderr != "":
                    wrong.append(f"{var}={v}: exit {r.returncode}, standard error {r.stderr!r}")
            check(f"protect_{tag}/settings_are_quiet", not wrong, "; ".join(wrong))

    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


if __name__ == "__main__":
    sys.exit(main())
