#!/usr/bin/env python3
"""The worked examples of docs/CLASSIC.md, run: each example's system calls and headers under strace must be
what the document shows (docs/examples/run_examples.py does the work and prints PASS/FAIL lines)."""
import os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
p = subprocess.run([sys.executable, os.path.join(HERE, "..", "docs", "examples", "run_examples.py")] + args,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
print(p.stdout, end="")
sys.exit(p.returncode)
