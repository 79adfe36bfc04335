#!/usr/bin/env python3
"""Writes the small seed corpora of fuzz/corpus/<harness>/ (committed; rerun only to change them).

Each seed is a few hundred random bytes from a fixed generator: libFuzzer reads them as operations, and random
bytes already reach every operation kind; the fuzzer mutates from there."""
import os, random

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESSES = {"fuzz_ops": 4, "fuzz_ops_malloc": 4, "fuzz_ops_malloc_classic": 4, "fuzz_bestfit": 4,
             "fuzz_corrupt": 4, "fuzz_corrupt_classic": 4}

for name, count in HARNESSES.items():
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    rng = random.Random(name)
    for i in range(count):
        size = (64, 256, 1024, 3000)[i]
        with open(os.path.join(d, f"seed{i}"), "wb") as f:
            f.write(bytes(rng.randrange(256) for _ in range(size)))
