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
a mapping to the heap), malloc(0), the last block grown with the break. Under `ltrace -e @libosmem.so` (every
call the library makes through its PLT) the calls must be exactly:

- classic_ltrace/only_textbook_calls: no function but sbrk, mmap, munmap, memset and memcpy;
- classic_ltrace/calls_in_order: the expected sequence, with their sizes (each munmap the address its mmap
  returned).

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
#include "osmem.h"
int main(void)
{
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
	return 0;
}
"""

# (function, the sizes that identify it): sbrk's increment, mmap's and munmap's length, memset's and memcpy's count
EXPECTED = [("sbrk", 131072), ("mmap", 131104), ("mmap", 4112), ("memset", 4000), ("memcpy", 1992),
            ("munmap", 131104), ("munmap", 4112), ("mmap", 200032), ("memcpy", 4000), ("memcpy", 104),
            ("munmap", 200032), ("mmap", 300000), ("munmap", 300000), ("sbrk", 68992)]
TEXTBOOK = {"sbrk", "mmap", "munmap", "memset", "memcpy"}
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
            if name == "sbrk":
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

    names = ["only_textbook_calls", "calls_in_order"]
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
              "libosmem.so called " + ", ".join(other) + " (want sbrk, mmap, munmap, memset and memcpy only)")
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
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
