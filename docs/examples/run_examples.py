#!/usr/bin/env python3
"""Runs the worked examples of docs/CLASSIC.md and checks them against what the document shows.

Each example of classic_examples.c runs in a fresh process under

    strace -e signal=none -e trace=brk,mmap,munmap build/classic_examples NAME

with the program's output and strace's in one stream (in the order they happened). Addresses are rewritten as
offsets: H+0x.. from the heap start (the break before osmem's first sbrk, which the program prints first) and
Mk+0x.. inside the k-th mapping. The result must equal docs/examples/expected/NAME.txt, which holds the numbers
worked out by hand in CLASSIC.md; they are never regenerated from a run. Each expected file must also appear in
CLASSIC.md as a code block, word for word, so the document shows what was checked.

Usage: python3 docs/examples/run_examples.py [--build DIR] [--show] [NAME...]
  --show   print each example's rewritten output instead of comparing it
Prints `PASS name` / `FAIL name: why` (with a diff) per example; exit status 1 when any fails.
"""
import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NAMES = ["fresh_1986", "nosplit_131032", "mmap_131072", "calloc_threshold", "split_coalesce",
         "realloc7_grow_last", "realloc8_absorb", "realloc9_move", "realloc_free_zero", "double_free"]


def build(build_dir):
    lib = os.path.join(build_dir, "libosmem.so")
    if not os.path.exists(lib):
        sys.exit("run_examples: %s is missing: build the repository first (nice make -j2)" % lib)
    prog = os.path.join(build_dir, "classic_examples")
    src = os.path.join(HERE, "classic_examples.c")
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-I" + os.path.join(ROOT, "include"),
                    src, "-o", prog, "-L" + build_dir, "-losmem",
                    "-Wl,-rpath," + os.path.abspath(build_dir)], check=True)
    return prog


def rewrite(text):
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("H = ")), None)
    if start is None:
        return "(the program printed no heap start)\n" + text
    H = int(lines[start].split()[2], 16)
    maps = []  # (start, length) of each mapping in the order mmap returned them

    def name(m):
        v = int(m.group(0), 16)
        if H <= v < H + (1 << 30):
            return "H+0x%x" % (v - H)
        for k, (s, n) in enumerate(maps):
            if s <= v <= s + n:
                return "M%d+0x%x" % (k + 1, v - s) if v != s else "M%d" % (k + 1)
        return "0x?"

    out = []
    for line in lines[start + 1:]:
        if line.startswith("+++ exited with 0"):
            continue
        m = re.match(r"mmap\(NULL, (\d+),.*= (0x[0-9a-f]+)$", line)
        if m:
            maps.append((int(m.group(2), 16), int(m.group(1))))
        line = re.sub(r"\)\s+= ", ") = ", line)  # strace pads the result to a column
        out.append(re.sub(r"0x[0-9a-f]{9,}", name, line))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--show", action="store_true")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    if not shutil.which("strace"):
        sys.exit("run_examples: strace is missing (apt-get install strace)")
    prog = build(args.build)
    failed = 0
    with open(os.path.join(ROOT, "docs", "CLASSIC.md"), encoding="utf-8") as f:
        doc = f.read()
    for n in args.names or NAMES:
        p = subprocess.run(["strace", "-e", "signal=none", "-e", "trace=brk,mmap,munmap", prog, n],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        actual = rewrite(p.stdout.decode("utf-8", "replace"))
        if p.returncode in (-6, 128 + 6):  # strace dies the way its tracee did, without a "+++ killed" line
            actual += "(killed by SIGABRT)\n"
        elif p.returncode:
            actual += "(exit status %d)\n" % p.returncode
        if args.show:
            print("######## %s\n%s" % (n, actual), end="")
            continue
        with open(os.path.join(HERE, "expected", n + ".txt"), encoding="utf-8") as f:
            expected = f.read()
        if "```\n" + expected + "```\n" not in doc:
            failed += 1
            print("FAIL %s: docs/CLASSIC.md does not show docs/examples/expected/%s.txt as a code block" % (n, n))
        elif actual == expected:
            print("PASS %s" % n)
        else:
            failed += 1
            print("FAIL %s: the run differs from docs/examples/expected/%s.txt" % (n, n))
            sys.stdout.writelines(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                                       "expected", "actual"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
