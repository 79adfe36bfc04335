#!/usr/bin/env python3
"""test_classic_ltrace: the library calls libosmem.so makes, as a teaching checker's ltrace sees them.

Hazard: checkers of the classic allocator run the student's program under ltrace and compare every call they see
with a reference: the os_* calls, and the library's own calls into libc (sbrk, mmap, munmap, and the memset and
memcpy of calloc and realloc). libosmem.so made others on the way, invisible to strace but not to ltrace: a
libc syscall() for its thread id, sysconf for the page size, getauxval twice, strlen and a strncmp per
environment variable (its settings), __errno_location around each munmap, an sbrk(0) before each growth of the last
block, and a memset of 0 bytes for a fresh mapping's calloc. Now it makes the textbook's calls and no other.

One program walks the classic paths (docs/CLASSIC.md): the preallocation, a mapped malloc and its free, a mapped
calloc (no memset: the kernel's pages are zero) and a heap one, realloc's moves (heap to heap, heap to a mapping,
a mapping to the heap), malloc(0), the last block grown with the break, realloc of NULL. Under
`ltrace -e @libosmem.so` (every call the library makes through its PLT) the calls must be exactly:

- classic_ltrace/only_textbook_calls: no function but sbrk, mmap, munmap, memset and memcpy (and os_malloc, which
  realloc's case 1 calls through the PLT as the textbook's does);
- classic_ltrace/calls_in_order: the expected sequence, with their sizes (each munmap the address its mmap
  returned).

The same program under `strace -f` (which `ltrace -S` agrees with), between two getppid calls of its own around the
os_* calls:

- classic_ltrace/only_textbook_system_calls: no system call but brk, mmap and munmap. The library read its thread
  id for its lock with one gettid per process, at the first call that allocated (until session 57: a review found
  it, where a checker compares every call). A process of one thread now needs none (src/lock.c, SOLO_MARK).

The page size and the header cookie's random bytes are read from the auxiliary vector where the kernel put it,
after the environment array the program started with, not with sysconf and getauxval. The review of that change
found two ways the first walk misread it (a constant cookie): a static program, whose __libc_stack_end is 8 bytes
off argc, and a program that unset a variable of its initial environment (glibc shifts that array down in place).
A program linked with libosmem.a compares osmem's reading with getauxval's:

- classic_ltrace/auxv_read_in_static_program: linked -static, with 0 to 3 environment variables;
- classic_ltrace/auxv_read_after_unsetenv: dynamic, after unsetenv of two of its three inherited variables.

Needs ltrace (tests/setup.sh installs it). Prints PASS/FAIL lines; exits 1 when something failed."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROG = r"""
#include <string.h>
#include <unistd.h>
#include "osmem.h"
int main(void)
{
	(void)getppid();                     /* strace's marker: the library's system calls follow */
	char *a = os_malloc(1986);           /* sbrk(131072) */
	memset(a, 1, 1986);
	char *b = os_malloc(131072);         /* mmap of 131104 */
	char *c = os_calloc(4080, 1);        /* mmap of 4112, no memset */
	char *d = os_calloc(1, 4000);        /* a heap block: memset of 4000 */
	a = os_realloc(a, 5000);             /* case 9: memcpy of 1992 */
	os_free(b);                          /* munmap of 131104 */
	os_free(c);                          /* munmap of 4112 */
	char *e = os_realloc(d, 200000);     /* case 5: mmap of 200032, memcpy of 4000 */
	e = os_realloc(e, 100);              /* case 4: memcpy of 104, munmap of 200032 */
	(void)os_malloc(0);                  /* nothing */
	char *f = os_malloc(300000 - 32);    /* mmap of 300000 */
	os_free(f);                          /* munmap of 300000 */
	os_free(e);
	os_free(a);
	char *x = os_malloc(100000), *y = os_malloc(100000); /* the last block grows: sbrk(68992) */
	os_free(x);
	os_free(y);
	os_free(os_realloc(NULL, 100));      /* case 1: os_malloc(100), through the library's own PLT */
	(void)getppid();                     /* strace's marker: they ended */
	return 0;
}
"""

AUXV_PROG = r"""
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
uint32_t osm_os_random32(void); /* hidden in libosmem.so, linkable from libosmem.a */
size_t osm_os_page_size(void);
int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		unsetenv(argv[i]);
	uint32_t want;
	memcpy(&want, (char *)getauxval(AT_RANDOM) + 8, sizeof want);
	uint32_t got = osm_os_random32();
	size_t page = osm_os_page_size();
	printf("%s random %08x want %08x page %zu want %lu\n", got == want && page == getauxval(AT_PAGESZ) ? "ok" : "bad",
	       got, want, page, getauxval(AT_PAGESZ));
	return 0;
}
"""


def auxv_checks(tmp, build, check):
    """The auxiliary vector read by the classic library, against getauxval, in a static program and after unsetenv."""
    src = os.path.join(tmp, "auxv.c")
    with open(src, "w") as f:
        f.write(AUXV_PROG)
    outs = {}
    for kind, flags in (("static", ["-static"]), ("dynamic", [])):
        exe = os.path.join(tmp, "auxv_" + kind)
        r = subprocess.run(["cc", "-O2", "-std=c11", *flags, src, "-o", exe, os.path.join(build, "libosmem.a")],
                           capture_output=True, text=True)
        outs[kind] = exe if r.returncode == 0 else None
        if r.returncode:
            check("auxv_read_in_" + kind + "_program" if kind == "static" else "auxv_read_after_unsetenv", False,
                  f"cannot build the {kind} program: " + r.stderr.strip()[-300:])
    if outs["static"]:
        bad = []
        for n in range(4):
            env = {f"V{i}": "x" for i in range(n)}
            out = subprocess.run([outs["static"]], env=env, capture_output=True, text=True).stdout.strip()
            if not out.startswith("ok"):
                bad.append(f"{n} variables: {out}")
        check("auxv_read_in_static_program", not bad, "osmem's reading differs from getauxval's: " + "; ".join(bad))
    if outs["dynamic"]:
        env = {"OSMEM_TEST_A": "1", "OSMEM_TEST_B": "2", "OSMEM_TEST_C": "3"}
        out = subprocess.run([outs["dynamic"], "OSMEM_TEST_A", "OSMEM_TEST_B"], env=env, capture_output=True,
                             text=True).stdout.strip()
        check("auxv_read_after_unsetenv", out.startswith("ok"),
              "after unsetenv of 2 of 3 variables, osmem's reading differs from getauxval's: " + out)


# (function, the sizes that identify it): sbrk's increment, mmap's and munmap's length, memset's and memcpy's count
EXPECTED = [("sbrk", 131072), ("mmap", 131104), ("mmap", 4112), ("memset", 4000), ("memcpy", 1992),
            ("munmap", 131104), ("munmap", 4112), ("mmap", 200032), ("memcpy", 4000), ("memcpy", 104),
            ("munmap", 200032), ("mmap", 300000), ("munmap", 300000), ("sbrk", 68992), ("os_malloc", 100)]
# realloc's case 1 calls os_malloc, an exported function, so through the PLT, as a textbook libosmem.so does
TEXTBOOK = {"sbrk", "mmap", "munmap", "memset", "memcpy", "os_malloc"}
LINE = re.compile(r"^libosmem\.so->(\w+)\((.*)\)\s+= (\S+)\s*$")


def parse(out):
    """[(name, size, args, result)] of the library's calls; size as EXPECTED names it."""
    calls = []
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name, args, ret = m.groups()
        parts = [p.strip() for p in args.split(",")]
        try:
            if name in ("sbrk", "os_malloc"):
                size = int(parts[0], 0)
            elif name in ("mmap", "munmap"):
                size = int(parts[1], 0)
            elif name in ("memset", "memcpy"):
                size = int(parts[-1], 0)  # memcpy's source may be a quoted string: its count is the last
            else:
                size = None
        except (ValueError, IndexError):
            size = None
        calls.append((name, size, parts, ret))
    return calls


def runs(calls):
    """The calls as text, a repeated one once with its count (a strncmp per environment variable)."""
    text = []
    for name, size in calls:
        one = f"{name}({size})" if size is not None else name
        if text and text[-1][0] == one:
            text[-1][1] += 1
        else:
            text.append([one, 1])
    return " ".join(t if n == 1 else f"{t} x{n}" for t, n in text)


def system_calls(tmp, exe, env):
    """(ok, why): the system calls between the program's two getppid markers are brk, mmap and munmap alone."""
    strace = shutil.which("strace")
    if not strace:
        return False, "strace is not installed (tests/setup.sh installs it)"
    log = os.path.join(tmp, "strace.log")
    try:
        p = subprocess.run([strace, "-f", "-o", log, exe], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, "the program did not finish under strace in 120 s"
    names = [m.group(1) for m in (re.match(r"(?:\d+\s+)?(\w+)\(", l) for l in open(log)) if m]
    marks = [i for i, n in enumerate(names) if n == "getppid"]
    if p.returncode or len(marks) != 2:
        return False, "the program exited %d with %d getppid markers under strace: %s" % (
            p.returncode, len(marks), (p.stdout + p.stderr).strip()[-300:])
    inside = names[marks[0] + 1:marks[1]]
    other = sorted(set(inside) - {"brk", "mmap", "munmap"})
    if other:
        return False, "between the markers libosmem.so made %s (want brk, mmap and munmap only): %s" % (
            ", ".join(other), " ".join(inside))
    if not {"brk", "mmap", "munmap"} <= set(inside):
        return False, "the markers hold no brk, mmap and munmap (%s): the program did not run its calls?" % (
            " ".join(inside))
    return True, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    fails = 0

    def check(name, ok, why):
        nonlocal fails
        fails += not ok
        print(f"PASS classic_ltrace/{name}" if ok else f"FAIL classic_ltrace/{name}: {why}", flush=True)

    names = ["only_textbook_calls", "calls_in_order", "only_textbook_system_calls"]
    with tempfile.TemporaryDirectory() as tmp:
        auxv_checks(tmp, build, check)
    ltrace = shutil.which("ltrace")
    if not ltrace:
        for n in names:
            check(n, False, "ltrace is not installed (tests/setup.sh installs it)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "prog.c"), os.path.join(tmp, "prog")
        with open(src, "w") as f:
            f.write(PROG)
        r = subprocess.run(["cc", "-O0", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I" + os.path.join(ROOT, "include"),
                            src, "-o", exe, "-L" + build, "-losmem", "-Wl,-rpath," + build],
                           capture_output=True, text=True)
        if r.returncode:
            for n in names:
                check(n, False, "cannot build the program: " + r.stderr.strip()[-400:])
            return 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSMEM_") and k != "LD_PRELOAD"}
        try:
            p = subprocess.run([ltrace, "-e", "@libosmem.so", exe], env=env, capture_output=True, text=True,
                               timeout=120)
        except subprocess.TimeoutExpired:
            for n in names:
                check(n, False, "ltrace did not finish in 120 s")
            return 1
        out = p.stdout + p.stderr
        calls = parse(out)
        if "exited (status 0)" not in out or not calls:
            for n in names:
                check(n, False, "the program did not run to its end under ltrace: " + out.strip()[-600:])
            return 1
        other = sorted({c[0] for c in calls} - TEXTBOOK)
        check("only_textbook_calls", not other,
              "libosmem.so called " + ", ".join(other)
              + " (want sbrk, mmap, munmap, memset, memcpy and os_malloc only)")
        got = [(c[0], c[1]) for c in calls]
        mapped, bad_unmap = {}, []
        for name, size, parts, ret in calls:
            if name == "mmap":
                mapped[int(ret, 0)] = size
            elif name == "munmap":
                addr = int(parts[0], 0)
                if mapped.pop(addr, None) != size:
                    bad_unmap.append(f"munmap({parts[0]}, {size}) of no mapping of that length")
        check("calls_in_order", got == EXPECTED and not bad_unmap,
              "the library's calls were " + runs(got) + "; want " + runs(EXPECTED)
              + ("; " + "; ".join(bad_unmap) if bad_unmap else ""))
        check("only_textbook_system_calls", *system_calls(tmp, exe, env))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
