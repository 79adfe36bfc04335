#!/usr/bin/env python3
"""Byte-exact specification tests for osmem's classic API (docs/CLASSIC.md).

Every scenario runs build/tests/spec_prog (tests/spec_prog.c) in a fresh process under

    strace -qq -e signal=none -e trace=brk,mmap,munmap,write -o LOG spec_prog 'script'

and turns the trace into a normalised event list, which must equal the scenario's expected text exactly:

    @ <statement>          the program is about to run a statement
    brk +N                 the break moved by N bytes (brk -N: it shrank; brk +0: a brk that did not move it)
    brk fail +N            a brk that asked for N more bytes and was refused
    brk NULL               a brk(NULL) query after the first statement (the spec never calls for one)
    mmap N                 mmap(NULL, N, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) that succeeded;
                           the k-th successful mmap after the first statement is called Mk
    mmap N -> ENOMEM       the same mmap, refused
    munmap Mk N            munmap of mapping Mk's start, N bytes
    = ... / blk ... / end ... / check ... / zero ... / pat ...   the program's own output, with addresses
                           rewritten as H+0x.. (H: the heap start, the old break returned by the first brk that
                           grows the break after the first statement) or Mk+0x.. (inside mapping Mk)
    stderr: <line>         a line the process wrote to standard error (death tests)
    exit N / killed by SIGxxx   how the process ended (`exit 0` is implied for scenarios that are not death tests)

Everything in the trace before the first `write(1, "@ ...")` is the dynamic loader and libc starting up and is
ignored, except that a break moved before it is reported (docs/CLASSIC.md: nothing touches the break before the
first use).

Every expected value below was computed by hand from docs/CLASSIC.md; the comment above each scenario shows the
arithmetic. Never regenerate them by running the library.

Usage: python3 tests/test_spec.py [--build DIR] [--only NAME[,NAME]] [--list] [-v]
"""
import argparse
import difflib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap

SCENARIOS = []


def scenario(name, script, expected, death=False):
    """death: the process must be killed by SIGABRT; the expected text then lists the stderr line(s) and
    `killed by SIGABRT` itself. In expected lines, {x} / {x+N} / {x-N} stand for the raw value of variable x (as
    the program printed it) plus N, in "0x%x" form. An expected line starting with '~' is a regular expression
    (after that substitution) that the actual line must match in full."""
    assert not any(s["name"] == name for s in SCENARIOS), name
    SCENARIOS.append({"name": name, "script": script, "expected": textwrap.dedent(expected).strip("\n"),
                      "death": death})


# ======================================================================================================
# Scenarios. Notation in the comments: s = ALIGN(n) = (n + 7) & ~7; a heap block at offset X has its payload at
# X + 0x20 and ends at X + 32 + size; the first heap use is sbrk(131072): one free block H+0x0 of 131040.
# ======================================================================================================

# ---- Preallocation, worked example: s = ALIGN(1986) = 1992; block at H+0x0, payload H+0x20;
# remainder at 32 + 1992 = 2024 = 0x7e8 of 131040 - 1992 - 32 = 129016; 0x7e8 + 32 + 129016 = 131072 = 0x20000.
scenario("prealloc_first_malloc", "a=m 1986; d; k", """
    @ a=m 1986
    brk +131072
    = H+0x20 size=1992 status=1
    @ d
    blk H+0x0 1992 1
    blk H+0x7e8 129016 0
    end H+0x20000
    @ k
    check 0
""")

# ---- No split when 8 bytes would remain: 131032 + 32 = 131064 < 131072 -> heap; 131040 - 131032 = 8 < 40.
scenario("no_split_8_bytes_left", "a=m 131032; d; k", """
    @ a=m 131032
    brk +131072
    = H+0x20 size=131040 status=1
    @ d
    blk H+0x0 131040 1
    end H+0x20000
    @ k
    check 0
""")

# ---- mmap threshold, both sides, and a mapped malloc does not preallocate:
# 131033 -> s = 131040, +32 = 131072 >= 131072 -> mmap 131072; 131072 -> s = 131072, mmap 131104;
# free unmaps size + 32; 131025 -> s = 131032, +32 = 131064 < 131072 -> heap (first brk only now), 8 left: no split.
scenario("mmap_threshold", "b=m 131033; c=m 131072; k; f b; f c; a=m 131025; d; k", """
    @ b=m 131033
    mmap 131072
    = M1+0x20 size=131040 status=2
    @ c=m 131072
    mmap 131104
    = M2+0x20 size=131072 status=2
    @ k
    check 0
    @ f b
    munmap M1 131072
    @ f c
    munmap M2 131104
    @ a=m 131025
    brk +131072
    = H+0x20 size=131040 status=1
    @ d
    blk H+0x0 131040 1
    end H+0x20000
    @ k
    check 0
""")

# ---- Zero-size requests return NULL with no system call (errno untouched); os_free(NULL) does nothing.
# calloc(0, SIZE_MAX): 0 elements, no overflow, still a zero-size request.
scenario("zero_size_requests", "a=m 0; b=c 0 5; c=c 5 0; e=r - 0; g=c 0 18446744073709551615; f -; k", """
    @ a=m 0
    = NULL errno=0
    @ b=c 0 5
    = NULL errno=0
    @ c=c 5 0
    = NULL errno=0
    @ e=r - 0
    = NULL errno=0
    @ g=c 0 18446744073709551615
    = NULL errno=0
    @ f -
    @ k
    check 0
""")

# ---- calloc threshold is the page size (4096):
# c(4080,1): 4080 + 32 = 4112 >= 4096 -> mmap 4112 (M1).  c(1,4000): 4032 < 4096 -> heap: prealloc, block H+0x0,
# ends 32 + 4000 = 4032 = 0xfc0.  c(1,4064): 4096 >= 4096 -> mmap 4096 (M2).  c(1,4056): 4088 -> heap at 0xfc0
# (payload 0xfe0), ends 4032 + 4088 = 8120 = 0x1fb8.  m(4080): malloc threshold is 128 KiB -> heap at 0x1fb8
# (payload 0x1fd8), ends 8120 + 4112 = 12232 = 0x2fc8; remainder 131072 - 12232 - 32 = 118808.
# c(1020,4) = 4080 bytes -> mmap 4112 (M3).
scenario("calloc_threshold", "a=c 4080 1; b=c 1 4000; c=c 1 4064; e=c 1 4056; g=m 4080; h=c 1020 4; "
         "z a 4080; z b 4000; z c 4064; z e 4056; z h 4080; d; k", """
    @ a=c 4080 1
    mmap 4112
    = M1+0x20 size=4080 status=2
    @ b=c 1 4000
    brk +131072
    = H+0x20 size=4000 status=1
    @ c=c 1 4064
    mmap 4096
    = M2+0x20 size=4064 status=2
    @ e=c 1 4056
    = H+0xfe0 size=4056 status=1
    @ g=m 4080
    = H+0x1fd8 size=4080 status=1
    @ h=c 1020 4
    mmap 4112
    = M3+0x20 size=4080 status=2
    @ z a 4080
    zero ok
    @ z b 4000
    zero ok
    @ z c 4064
    zero ok
    @ z e 4056
    zero ok
    @ z h 4080
    zero ok
    @ d
    blk H+0x0 4000 1
    blk H+0xfc0 4056 1
    blk H+0x1fb8 4080 1
    blk H+0x2fc8 118808 0
    end H+0x20000
    @ k
    check 0
""")

# ---- calloc zeroes a reused dirty block:
# a: H+0x0 (104), ends 0x88; b: H+0x88 (payload 0xa8), ends 0x110; remainder 131072 - 272 - 32 = 130768.
# a dirtied and freed; c(25,4) = 100 -> s = 104: best fit is a (104) exactly -> H+0x20, no split.
# b dirtied and freed: b + remainder coalesce to 104 + 32 + 130768 = 130904 at 0x88; c(3,8) = 24 -> split:
# payload 0xa8, remainder at 0x88 + 32 + 24 = 0xc0 of 130904 - 24 - 32 = 130848.
scenario("calloc_zeroes_dirty_block", "a=m 100; b=m 100; w a 104 255; f a; c=c 25 4; z c 100; "
         "w b 104 170; f b; e=c 3 8; z e 24; d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ w a 104 255
    @ f a
    @ c=c 25 4
    = H+0x20 size=104 status=1
    @ z c 100
    zero ok
    @ w b 104 170
    @ f b
    @ e=c 3 8
    = H+0xa8 size=24 status=1
    @ z e 24
    zero ok
    @ d
    blk H+0x0 104 1
    blk H+0x88 24 1
    blk H+0xc0 130848 0
    end H+0x20000
    @ k
    check 0
""")

# ---- Best fit (smallest adequate, lowest address among equals), freed in reverse address order:
# a 200 @0x0 (ends 0xe8) | p 8 @0xe8 (0x110) | b 104 @0x110 (0x198) | q 8 @0x198 (0x1c0) | c 152 @0x1c0 (0x278) |
# t 8 @0x278 (0x2a0) | e 104 @0x2a0 (0x328) | u 8 @0x328 (0x350) | free 131072 - 848 - 32 = 130192 @0x350.
# free e, c, b, a.  m96: candidates 200,104(b),152,104(e) -> 104, lowest address b; 104-96 = 8: no split.
# m100 (104): e.  m120: c 152, 152-120 = 32 < 40: no split.  m160: a 200, 200-160 = 40: split, remainder at
# 0x20 + 160 = 0xc0 of 8.  m1 (8): the 8-byte block at 0xc0 (payload 0xe0).
scenario("best_fit", "a=m 200; p=m 8; b=m 100; q=m 8; c=m 150; t=m 8; e=m 100; u=m 8; f e; f c; f b; f a; "
         "g=m 96; h=m 100; i=m 120; j=m 160; l=m 1; d; k", """
    @ a=m 200
    brk +131072
    = H+0x20 size=200 status=1
    @ p=m 8
    = H+0x108 size=8 status=1
    @ b=m 100
    = H+0x130 size=104 status=1
    @ q=m 8
    = H+0x1b8 size=8 status=1
    @ c=m 150
    = H+0x1e0 size=152 status=1
    @ t=m 8
    = H+0x298 size=8 status=1
    @ e=m 100
    = H+0x2c0 size=104 status=1
    @ u=m 8
    = H+0x348 size=8 status=1
    @ f e
    @ f c
    @ f b
    @ f a
    @ g=m 96
    = H+0x130 size=104 status=1
    @ h=m 100
    = H+0x2c0 size=104 status=1
    @ i=m 120
    = H+0x1e0 size=152 status=1
    @ j=m 160
    = H+0x20 size=160 status=1
    @ l=m 1
    = H+0xe0 size=8 status=1
    @ d
    blk H+0x0 160 1
    blk H+0xc0 8 1
    blk H+0xe8 8 1
    blk H+0x110 104 1
    blk H+0x198 8 1
    blk H+0x1c0 152 1
    blk H+0x278 8 1
    blk H+0x2a0 104 1
    blk H+0x328 8 1
    blk H+0x350 130192 0
    end H+0x20000
    @ k
    check 0
""")

# ---- Split boundary: a 112 @0x0 (ends 0x90) | b 8 @0x90 (0xb8) | c 112 @0xb8 (0x148) | e 8 @0x148 (0x170) |
# free 131072 - 368 - 32 = 130672 @0x170.  free a, c.  m72: a (112, lower than c), 112 - 72 = 40 >= 40: split,
# remainder at 0x20 + 72 = 0x68 of 8.  m80: c (112), 112 - 80 = 32 < 40: no split, keeps 112.
scenario("split_40_yes_32_no", "a=m 112; b=m 8; c=m 112; e=m 8; f a; f c; g=m 72; h=m 80; d; k", """
    @ a=m 112
    brk +131072
    = H+0x20 size=112 status=1
    @ b=m 8
    = H+0xb0 size=8 status=1
    @ c=m 112
    = H+0xd8 size=112 status=1
    @ e=m 8
    = H+0x168 size=8 status=1
    @ f a
    @ f c
    @ g=m 72
    = H+0x20 size=72 status=1
    @ h=m 80
    = H+0xd8 size=112 status=1
    @ d
    blk H+0x0 72 1
    blk H+0x68 8 0
    blk H+0x90 8 1
    blk H+0xb8 112 1
    blk H+0x148 8 1
    blk H+0x170 130672 0
    end H+0x20000
    @ k
    check 0
""")

# ---- Coalescing happens at the next heap allocation, not at free:
# a @0x0, b @0x88, c @0x110 (104 each), free 131072 - 408 - 32 = 130632 @0x198.  After f a, f b: two free blocks.
# m8: a + b = 104 + 32 + 104 = 240 (best fit vs 130632), split: payload 0x20, remainder @0x28 of 240 - 8 - 32 = 200.
# f c; m16: 200 @0x28 + c + the tail = 200 + 32 + 104 + 32 + 130632 = 131000, split: payload 0x48,
# remainder @0x28 + 32 + 16 = 0x58 of 131000 - 16 - 32 = 130952.
scenario("coalesce_at_next_alloc", "a=m 100; b=m 100; c=m 100; f a; f b; d; e=m 8; d; f c; g=m 16; d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ c=m 100
    = H+0x130 size=104 status=1
    @ f a
    @ f b
    @ d
    blk H+0x0 104 0
    blk H+0x88 104 0
    blk H+0x110 104 1
    blk H+0x198 130632 0
    end H+0x20000
    @ e=m 8
    = H+0x20 size=8 status=1
    @ d
    blk H+0x0 8 1
    blk H+0x28 200 0
    blk H+0x110 104 1
    blk H+0x198 130632 0
    end H+0x20000
    @ f c
    @ g=m 16
    = H+0x48 size=16 status=1
    @ d
    blk H+0x0 8 1
    blk H+0x28 16 1
    blk H+0x58 130952 0
    end H+0x20000
    @ k
    check 0
""")

# ---- A mapped allocation is not a heap allocation: it does not coalesce the heap.
# a @0x0, b @0x88 (104 each), free 131072 - 272 - 32 = 130768 @0x110; m200000 -> mmap 200032.
scenario("mapped_malloc_no_coalesce", "a=m 100; b=m 100; f a; f b; c=m 200000; d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ f a
    @ f b
    @ c=m 200000
    mmap 200032
    = M1+0x20 size=200000 status=2
    @ d
    blk H+0x0 104 0
    blk H+0x88 104 0
    blk H+0x110 130768 0
    end H+0x20000
    @ k
    check 0
""")

# ---- Growing a free last block by the difference:
# m131000: 131040 - 131000 = 40: split, free 8 @32 + 131000 = 0x1ffd8.  m2000: no fit, last is free:
# brk +(2000 - 8) = 1992, payload 0x1fff8, ends 0x1ffd8 + 32 + 2000 = 133064 = 0x207c8.
# f c; m3000: no fit (2000), last free -> brk +1000; ends 0x1ffd8 + 32 + 3000 = 134064 = 0x20bb0.
scenario("grow_free_last_block", "a=m 131000; c=m 2000; d; f c; e=m 3000; d; k", """
    @ a=m 131000
    brk +131072
    = H+0x20 size=131000 status=1
    @ c=m 2000
    brk +1992
    = H+0x1fff8 size=2000 status=1
    @ d
    blk H+0x0 131000 1
    blk H+0x1ffd8 2000 1
    end H+0x207c8
    @ f c
    @ e=m 3000
    brk +1000
    = H+0x1fff8 size=3000 status=1
    @ d
    blk H+0x0 131000 1
    blk H+0x1ffd8 3000 1
    end H+0x20bb0
    @ k
    check 0
""")

# ---- Coalesce, then grow the free last block: a takes the whole preallocation (131040); b, c appended
# (brk +136 each, @0x20000 and @0x20088).  f b, f c; m1000: b + c = 104 + 32 + 104 = 240 (last, free), no fit:
# brk +(1000 - 240) = 760; ends 0x20000 + 32 + 1000 = 0x20408.
scenario("grow_free_last_after_coalesce", "a=m 131032; b=m 100; c=m 100; f b; f c; e=m 1000; d; k", """
    @ a=m 131032
    brk +131072
    = H+0x20 size=131040 status=1
    @ b=m 100
    brk +136
    = H+0x20020 size=104 status=1
    @ c=m 100
    brk +136
    = H+0x200a8 size=104 status=1
    @ f b
    @ f c
    @ e=m 1000
    brk +760
    = H+0x20020 size=1000 status=1
    @ d
    blk H+0x0 131040 1
    blk H+0x20000 1000 1
    end H+0x20408
    @ k
    check 0
""")

# ---- Appending: last block allocated -> brk +(s + 32): 104 + 32 = 136 @0x20000; 5000 + 32 = 5032 @0x20088;
# ends 0x20088 + 32 + 5000 = 136240 = 0x21430.
scenario("append_block", "a=m 131032; b=m 100; c=m 5000; d; k", """
    @ a=m 131032
    brk +131072
    = H+0x20 size=131040 status=1
    @ b=m 100
    brk +136
    = H+0x20020 size=104 status=1
    @ c=m 5000
    brk +5032
    = H+0x200a8 size=5000 status=1
    @ d
    blk H+0x0 131040 1
    blk H+0x20000 104 1
    blk H+0x20088 5000 1
    end H+0x21430
    @ k
    check 0
""")

# ---- Frees never move the break (not even of the last block), and only change the status.
scenario("free_never_moves_break", "a=m 131032; b=m 100; f b; f a; d; k", """
    @ a=m 131032
    brk +131072
    = H+0x20 size=131040 status=1
    @ b=m 100
    brk +136
    = H+0x20020 size=104 status=1
    @ f b
    @ f a
    @ d
    blk H+0x0 131040 0
    blk H+0x20000 104 0
    end H+0x20088
    @ k
    check 0
""")

# ---- realloc 1: realloc(NULL, n) is malloc(n): 104 on the heap (preallocation); 200000 -> mmap 200032.
scenario("realloc1_null_is_malloc", "a=r - 100; b=r - 200000; d; k", """
    @ a=r - 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=r - 200000
    mmap 200032
    = M1+0x20 size=200000 status=2
    @ d
    blk H+0x0 104 1
    blk H+0x88 130904 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 2: n == 0 frees and returns NULL; a mapped block is unmapped (200000 + 32).
# Heap: a 104 @0x0 becomes free; remainder 131040 - 104 - 32 = 130904 @0x88.
scenario("realloc2_zero_frees", "a=m 100; b=m 200000; c=r a 0; e=r b 0; d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 200000
    mmap 200032
    = M1+0x20 size=200000 status=2
    @ c=r a 0
    = NULL errno=0
    @ e=r b 0
    munmap M1 200032
    = NULL errno=0
    @ d
    blk H+0x0 104 0
    blk H+0x88 130904 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 3: a free block -> NULL, no system call, nothing changes (not even a coalescing), whatever the
# size (also >= the mmap threshold).  a 104 @0x0, b 56 @0x88 (ends 0x88 + 32 + 56 = 0xe0), free
# 131072 - 224 - 32 = 130816 @0xe0.
scenario("realloc3_free_block", "a=m 100; b=m 50; f a; c=r a 500; e=r a 200000; f b; g=r b 100000; d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 50
    = H+0xa8 size=56 status=1
    @ f a
    @ c=r a 500
    = NULL errno=0
    @ e=r a 200000
    = NULL errno=0
    @ f b
    @ g=r b 100000
    = NULL errno=0
    @ d
    blk H+0x0 104 0
    blk H+0x88 56 0
    blk H+0xe0 130816 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 4: a mapped block: new block first (by malloc rules), copy, then munmap the old, also when
# shrinking and at the same size.  200000 -> 100: heap (prealloc brk) then munmap M1 200032.
# 150000 (M2, 150032) -> 300000: mmap 300032 (M3), munmap M2.  300000 -> 300000: mmap (M4), munmap M3.
# 300000 -> 140000: mmap 140032 (M5), munmap M4 300032.
scenario("realloc4_mapped_block", "a=m 200000; w a 200000 7; b=r a 100; v b 100 7; c=m 150000; w c 150000 9; "
         "e=r c 300000; v e 150000 9; g=r e 300000; v g 150000 9; h=r g 140000; v h 140000 9; d; k", """
    @ a=m 200000
    mmap 200032
    = M1+0x20 size=200000 status=2
    @ w a 200000 7
    @ b=r a 100
    brk +131072
    munmap M1 200032
    = H+0x20 size=104 status=1
    @ v b 100 7
    pat ok
    @ c=m 150000
    mmap 150032
    = M2+0x20 size=150000 status=2
    @ w c 150000 9
    @ e=r c 300000
    mmap 300032
    munmap M2 150032
    = M3+0x20 size=300000 status=2
    @ v e 150000 9
    pat ok
    @ g=r e 300000
    mmap 300032
    munmap M3 300032
    = M4+0x20 size=300000 status=2
    @ v g 150000 9
    pat ok
    @ h=r g 140000
    mmap 140032
    munmap M4 300032
    = M5+0x20 size=140000 status=2
    @ v h 140000 9
    pat ok
    @ d
    blk H+0x0 104 1
    blk H+0x88 130904 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 5: heap block to ALIGN(n) + 32 >= 131072: 131033 -> 131040 + 32 = 131072 -> mmap 131072, copy,
# old marked free (no coalescing).  Other side: c 200 @0x0 (free 131040 - 232 = 130808 @0xe8) -> 131032:
# 131064 < 131072 stays on the heap: absorbs the free 130808: 200 + 32 + 130808 = 131040, 8 left: no split.
scenario("realloc5_heap_to_mapped", "a=m 100; w a 104 3; b=r a 131033; v b 104 3; d; c=m 200; e=r c 131032; d; k",
         """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ w a 104 3
    @ b=r a 131033
    mmap 131072
    = M1+0x20 size=131040 status=2
    @ v b 104 3
    pat ok
    @ d
    blk H+0x0 104 0
    blk H+0x88 130904 0
    end H+0x20000
    @ c=m 200
    = H+0x20 size=200 status=1
    @ e=r c 131032
    = H+0x20 size=131040 status=1
    @ d
    blk H+0x0 131040 1
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 5 comes before 6: the whole preallocation (131040) is big enough for 131033, but
# ALIGN(131033) + 32 = 131040 + 32 = 131072 >= 131072: mmap 131072, copy, the old block is marked free.
scenario("realloc5_before_6", "a=m 131032; w a 131032 6; b=r a 131033; v b 131032 6; d; k", """
    @ a=m 131032
    brk +131072
    = H+0x20 size=131040 status=1
    @ w a 131032 6
    @ b=r a 131033
    mmap 131072
    = M1+0x20 size=131040 status=2
    @ v b 131032 6
    pat ok
    @ d
    blk H+0x0 131040 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 6: big enough -> in place; split when size - s >= 40.
# a 200 @0x0, free 130808 @0xe8.  -> 100 (104): 200 - 104 = 96 >= 40: split, free 200 - 104 - 32 = 64 @0x88
# (not merged with the free block after it: no heap allocation ran).  -> 80: 104 - 80 = 24 < 40: unchanged.
scenario("realloc6_shrink_in_place", "a=m 200; w a 200 5; b=r a 100; v b 100 5; d; c=r b 80; d; k", """
    @ a=m 200
    brk +131072
    = H+0x20 size=200 status=1
    @ w a 200 5
    @ b=r a 100
    = H+0x20 size=104 status=1
    @ v b 100 5
    pat ok
    @ d
    blk H+0x0 104 1
    blk H+0x88 64 0
    blk H+0xe8 130808 0
    end H+0x20000
    @ c=r b 80
    = H+0x20 size=104 status=1
    @ d
    blk H+0x0 104 1
    blk H+0x88 64 0
    blk H+0xe8 130808 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 6 before 7: the last block (131040, the whole heap) shrinks in place and splits:
# 131040 - 104 = 130936 >= 40 -> free 131040 - 104 - 32 = 130904 @0x88; no brk.  Same size again: unchanged.
scenario("realloc6_last_block_shrinks", "a=m 131032; w a 131032 4; b=r a 100; v b 100 4; c=r b 104; d; k", """
    @ a=m 131032
    brk +131072
    = H+0x20 size=131040 status=1
    @ w a 131032 4
    @ b=r a 100
    = H+0x20 size=104 status=1
    @ v b 100 4
    pat ok
    @ c=r b 104
    = H+0x20 size=104 status=1
    @ d
    blk H+0x0 104 1
    blk H+0x88 130904 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 7: the last block grows by the difference in place, even though free blocks before it could hold
# it, and never absorbs the previous block.  a 131040 @0x0, b 104 @0x20000, c 104 @0x20088 (brk +136 each);
# free a, b; c -> 1000: brk +(1000 - 104) = 896; ends 0x20088 + 32 + 1000 = 0x20490.
scenario("realloc7_grow_last_block", "a=m 131032; b=m 100; c=m 100; f b; f a; w c 104 4; e=r c 1000; v e 104 4; "
         "d; k", """
    @ a=m 131032
    brk +131072
    = H+0x20 size=131040 status=1
    @ b=m 100
    brk +136
    = H+0x20020 size=104 status=1
    @ c=m 100
    brk +136
    = H+0x200a8 size=104 status=1
    @ f b
    @ f a
    @ w c 104 4
    @ e=r c 1000
    brk +896
    = H+0x200a8 size=1000 status=1
    @ v e 104 4
    pat ok
    @ d
    blk H+0x0 131040 0
    blk H+0x20000 104 0
    blk H+0x20088 1000 1
    end H+0x20490
    @ k
    check 0
""")

# ---- realloc 8, absorbing the first free block suffices: a @0x0, b @0x88, c @0x110, e @0x198 (104 each),
# free 131072 - 544 - 32 = 130496 @0x220.  free b, c.  a -> 200: a + b = 104 + 32 + 104 = 240 >= 200,
# 240 - 200 = 40: split, free 8 @0x20 + 200 = 0xe8; c stays a separate free block.
scenario("realloc8_absorb_one", "a=m 100; b=m 100; c=m 100; e=m 100; f b; f c; w a 104 6; g=r a 200; v g 104 6; "
         "d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ c=m 100
    = H+0x130 size=104 status=1
    @ e=m 100
    = H+0x1b8 size=104 status=1
    @ f b
    @ f c
    @ w a 104 6
    @ g=r a 200
    = H+0x20 size=200 status=1
    @ v g 104 6
    pat ok
    @ d
    blk H+0x0 200 1
    blk H+0xe8 8 0
    blk H+0x110 104 0
    blk H+0x198 104 1
    blk H+0x220 130496 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 8, absorbing two: same heap; a -> 300 (304): a + b = 240 < 304; + c = 376 >= 304;
# 376 - 304 = 72: split, free 376 - 304 - 32 = 40 @0x20 + 304 = 0x150.
scenario("realloc8_absorb_two", "a=m 100; b=m 100; c=m 100; e=m 100; f b; f c; w a 104 6; g=r a 300; v g 104 6; "
         "d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ c=m 100
    = H+0x130 size=104 status=1
    @ e=m 100
    = H+0x1b8 size=104 status=1
    @ f b
    @ f c
    @ w a 104 6
    @ g=r a 300
    = H+0x20 size=304 status=1
    @ v g 104 6
    pat ok
    @ d
    blk H+0x0 304 1
    blk H+0x150 40 0
    blk H+0x198 104 1
    blk H+0x220 130496 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 8 not enough, then 9: a @0x0, b @0x88, c @0x110 (104 each), free 130632 @0x198.  free b.
# a -> 500 (504): a + b = 240 < 504, c is allocated: stop, 240 stays absorbed.  malloc(504): best fit the
# 130632 @0x198 (payload 0x1b8), split: free @0x198 + 32 + 504 = 0x3b0 of 130632 - 504 - 32 = 130096; copy;
# free the old block, now 240.
scenario("realloc8_absorb_not_enough", "a=m 100; b=m 100; c=m 100; f b; w a 104 9; e=r a 500; v e 104 9; d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ c=m 100
    = H+0x130 size=104 status=1
    @ f b
    @ w a 104 9
    @ e=r a 500
    = H+0x1b8 size=504 status=1
    @ v e 104 9
    pat ok
    @ d
    blk H+0x0 240 0
    blk H+0x110 104 1
    blk H+0x198 504 1
    blk H+0x3b0 130096 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 9, move: a @0x0, b @0x88 (104 each), free 130768 @0x110.  a -> 1000: nothing to absorb (b is
# allocated); malloc(1000): the free block @0x110 (payload 0x130), split: free @0x110 + 32 + 1000 = 0x518 of
# 130768 - 1000 - 32 = 129736; copy; a freed.
scenario("realloc9_move", "a=m 100; b=m 100; w a 104 8; c=r a 1000; v c 104 8; d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ w a 104 8
    @ c=r a 1000
    = H+0x130 size=1000 status=1
    @ v c 104 8
    pat ok
    @ d
    blk H+0x0 104 0
    blk H+0x88 104 1
    blk H+0x110 1000 1
    blk H+0x518 129736 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 9: a block that became last only by absorbing is not grown with the break.
# a 131040 @0x0; b @0x20000, c @0x20088 (brk +136 each); free c.  b -> 1000: b + c = 240 < 1000, b is now last
# but only by absorbing: move.  malloc(1000): no free block, last (b) allocated: brk +1032 @0x20110 (payload
# 0x20130); ends 0x20110 + 32 + 1000 = 0x20518; b (240) freed.
# A course checker's view of a moving realloc: the old block is free, and its bytes are still what the program
# wrote (docs/CLASSIC.md: freed bytes stay as they were), also after the next allocation coalesced it and split it
# (e at H+0x20 takes 8 bytes; the remainder's header takes a+8..a+40; the rest is untouched).
scenario("freed_bytes_kept_after_realloc_move", "a=m 100; b=m 100; w a 104 8; c=r a 1000; v a 104 8; v c 104 8; "
         "e=m 8; v a+40 64 8; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ w a 104 8
    @ c=r a 1000
    = H+0x130 size=1000 status=1
    @ v a 104 8
    pat ok
    @ v c 104 8
    pat ok
    @ e=m 8
    = H+0x20 size=8 status=1
    @ v a+40 64 8
    pat ok
    @ k
    check 0
""")

# A program's use after free in the classic profile: 64 bytes written over a freed 64-byte block, then the next
# malloc. osmem keeps nothing in a free block's payload, so it is not misled: same decisions, no crash.
scenario("use_after_free_write_not_followed", "a=m 64; b=m 64; f a; w a 64 255; c=m 64; v c 64 255; d; k", """
    @ a=m 64
    brk +131072
    = H+0x20 size=64 status=1
    @ b=m 64
    = H+0x80 size=64 status=1
    @ f a
    @ w a 64 255
    @ c=m 64
    = H+0x20 size=64 status=1
    @ v c 64 255
    pat ok
    @ d
    blk H+0x0 64 1
    blk H+0x60 64 1
    blk H+0xc0 130848 0
    end H+0x20000
    @ k
    check 0
""")

# A freed block's `next` overwritten by the program (a use after free into the header): the next allocation
# checks the block before it follows the link, and the report names the classic call, not malloc.
scenario("corrupted_free_header_named_os_malloc", "a=m 100; b=m 100; f a; w a-8 8 1; c=m 100", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ f a
    @ w a-8 8 1
    @ c=m 100
    stderr: osmem: os_malloc(): corrupted header {a}
    killed by SIGABRT
""", death=True)

# A freed block's slot tag (the 4 bytes after `status`) overwritten with 0xffffffff, the value that means "no slot"
# (fuzz_corrupt, session 39): the check took it for a block the side storage could not hold, so the block's real
# slot stayed in the index for a block handed out, the count of slotless blocks wrapped below zero, and a later
# full coalescing walk followed a header an overflow had rewritten (SIGSEGV inside osmem). Slotless blocks exist
# only while the side storage is full, so the tag is a corrupted header whenever none does.
scenario("forged_noslot_tag_reported", "a=m 100; b=m 100; f a; w a-20 4 255; c=m 100", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ f a
    @ w a-20 4 255
    @ c=m 100
    stderr: osmem: os_malloc(): corrupted header {a}
    killed by SIGABRT
""", death=True)

scenario("realloc9_absorbed_last_not_grown", "a=m 131032; b=m 100; c=m 100; f c; w b 104 5; e=r b 1000; "
         "v e 104 5; d; k", """
    @ a=m 131032
    brk +131072
    = H+0x20 size=131040 status=1
    @ b=m 100
    brk +136
    = H+0x20020 size=104 status=1
    @ c=m 100
    brk +136
    = H+0x200a8 size=104 status=1
    @ f c
    @ w b 104 5
    @ e=r b 1000
    brk +1032
    = H+0x20130 size=1000 status=1
    @ v e 104 5
    pat ok
    @ d
    blk H+0x0 131040 1
    blk H+0x20000 240 0
    blk H+0x20110 1000 1
    end H+0x20518
    @ k
    check 0
""")

# ---- realloc 9 into a run that coalesces below the block: p @0x0, q @0x88, a @0x110, b @0x198 (104 each), free
# 130496 @0x220.  free p, q (two blocks until a heap allocation).  a -> 200 (208): b is allocated, nothing to
# absorb: move.  malloc(200) coalesces first: p + q = 104 + 32 + 104 = 240 @0x0; best fit of 240 and 130496: 240;
# 240 - 200 = 40: split (exactly the least that holds a header and 8 bytes), free @0x0 + 32 + 200 = 0xe8 of 8;
# copy a's 104 bytes; a freed (its neighbours are allocated: nothing merges until the next heap allocation).
scenario("realloc9_move_into_coalesced_run_below", "p=m 100; q=m 100; a=m 100; b=m 100; f p; f q; w a 104 8; "
         "c=r a 200; v c 104 8; v a 104 8; d; k", """
    @ p=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ q=m 100
    = H+0xa8 size=104 status=1
    @ a=m 100
    = H+0x130 size=104 status=1
    @ b=m 100
    = H+0x1b8 size=104 status=1
    @ f p
    @ f q
    @ w a 104 8
    @ c=r a 200
    = H+0x20 size=200 status=1
    @ v c 104 8
    pat ok
    @ v a 104 8
    pat ok
    @ d
    blk H+0x0 200 1
    blk H+0xe8 8 0
    blk H+0x110 104 0
    blk H+0x198 104 1
    blk H+0x220 130496 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 4 with a heap already there, into a run that coalesces: p @0x0, q @0x88, b @0x110 (104 each), free
# 130632 @0x198; free p, q.  a = 200000 is mapped (200032).  a -> 150 (152 + 32 < 131072): the heap serves it
# first (coalesce p + q = 240 @0x0; best fit 240; 240 - 152 = 88 >= 40: split, free @0x0 + 32 + 152 = 0xb8 of
# 240 - 152 - 32 = 56), 152 bytes copied, then the mapping goes.
scenario("realloc4_mapped_into_coalesced_run", "p=m 100; q=m 100; b=m 100; f p; f q; a=m 200000; w a 200000 7; "
         "c=r a 150; v c 152 7; d; k", """
    @ p=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ q=m 100
    = H+0xa8 size=104 status=1
    @ b=m 100
    = H+0x130 size=104 status=1
    @ f p
    @ f q
    @ a=m 200000
    mmap 200032
    = M1+0x20 size=200000 status=2
    @ w a 200000 7
    @ c=r a 150
    munmap M1 200032
    = H+0x20 size=152 status=1
    @ v c 152 7
    pat ok
    @ d
    blk H+0x0 152 1
    blk H+0xb8 56 0
    blk H+0x110 104 1
    blk H+0x198 130632 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc 8 absorbing without a split: a @0x0, b @0x88, c @0x110 (104 each), free 130632 @0x198; free b.
# a -> 210 (216): a + b = 104 + 32 + 104 = 240 >= 216; 240 - 216 = 24 < 40: no split, a keeps 240.
scenario("realloc8_absorb_without_split", "a=m 100; b=m 100; c=m 100; f b; w a 104 5; g=r a 210; v g 104 5; d; k",
         """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ c=m 100
    = H+0x130 size=104 status=1
    @ f b
    @ w a 104 5
    @ g=r a 210
    = H+0x20 size=240 status=1
    @ v g 104 5
    pat ok
    @ d
    blk H+0x0 240 1
    blk H+0x110 104 1
    blk H+0x198 130632 0
    end H+0x20000
    @ k
    check 0
""")

# ---- os_free changes its own block's status and no other header: a @0x0, b @0x88, c @0x110 (104 each), free
# 130632 @0x198.  The headers of a, b, c before and after free(b): b's status 1 -> 0, its size and links as they
# were; a's and c's untouched (osmem's spare bytes 12..15 are not shown: docs/CLASSIC.md, section 1).
scenario("free_writes_only_its_own_header", "a=m 100; b=m 100; c=m 100; h a; h b; h c; f b; h a; h b; h c; d; k",
         """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ c=m 100
    = H+0x130 size=104 status=1
    @ h a
    hdr H+0x0 size=104 status=1 prev=- next=H+0x88
    @ h b
    hdr H+0x88 size=104 status=1 prev=H+0x0 next=H+0x110
    @ h c
    hdr H+0x110 size=104 status=1 prev=H+0x88 next=H+0x198
    @ f b
    @ h a
    hdr H+0x0 size=104 status=1 prev=- next=H+0x88
    @ h b
    hdr H+0x88 size=104 status=0 prev=H+0x0 next=H+0x110
    @ h c
    hdr H+0x110 size=104 status=1 prev=H+0x88 next=H+0x198
    @ d
    blk H+0x0 104 1
    blk H+0x88 104 0
    blk H+0x110 104 1
    blk H+0x198 130632 0
    end H+0x20000
    @ k
    check 0
""")

# ---- What a coalesced run of three leaves in the headers it absorbed (docs/CLASSIC.md, section 5): a @0x0,
# b @0x88, c @0x110, e @0x198, g @0x220 (104 each), free 130360 @0x2a8.  free b, c, e; t = malloc(8) merges the run
# into b one neighbour at a time: b + c (b.next = e, e.prev = b), then + e: 376 @0x88 (b.next = g, g.prev = b).
# c's old header is as free(c) left it (prev b, next e); e's has prev = b, written by the first merge.  Best fit
# of 376 and 130360: 376; 376 - 8 = 368 >= 40: split, free @0x88 + 32 + 8 = 0xb0 of 376 - 8 - 32 = 336.
scenario("coalesce_run_leaves_absorbed_headers", "a=m 100; b=m 100; c=m 100; e=m 100; g=m 100; f b; f c; f e; "
         "t=m 8; h c; h e; d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ c=m 100
    = H+0x130 size=104 status=1
    @ e=m 100
    = H+0x1b8 size=104 status=1
    @ g=m 100
    = H+0x240 size=104 status=1
    @ f b
    @ f c
    @ f e
    @ t=m 8
    = H+0xa8 size=8 status=1
    @ h c
    hdr H+0x110 size=104 status=0 prev=H+0x88 next=H+0x198
    @ h e
    hdr H+0x198 size=104 status=0 prev=H+0x88 next=H+0x220
    @ d
    blk H+0x0 104 1
    blk H+0x88 8 1
    blk H+0xb0 336 0
    blk H+0x220 104 1
    blk H+0x2a8 130360 0
    end H+0x20000
    @ k
    check 0
""")

# ---- calloc overflow: 2^62 * 4 = 2^64, 2^32 * 2^32 = 2^64, SIZE_MAX * 2: NULL, ENOMEM, no system call; the
# heap is then still untouched: c(2,2) = 4 -> s = 8 triggers the preallocation.
scenario("calloc_overflow", "a=c 4611686018427387904 4; b=c 4 4611686018427387904; c=c 18446744073709551615 2; "
         "e=c 4294967296 4294967296; k; g=c 2 2; k", """
    @ a=c 4611686018427387904 4
    = NULL errno=ENOMEM
    @ b=c 4 4611686018427387904
    = NULL errno=ENOMEM
    @ c=c 18446744073709551615 2
    = NULL errno=ENOMEM
    @ e=c 4294967296 4294967296
    = NULL errno=ENOMEM
    @ k
    check 0
    @ g=c 2 2
    brk +131072
    = H+0x20 size=8 status=1
    @ k
    check 0
""")

# ---- Sizes whose ALIGN(n) + 32 wraps (SIZE_MAX, SIZE_MAX - 7, SIZE_MAX - 32): NULL, ENOMEM, no system call;
# a realloc to such a size fails the same way and leaves the block as it was.
scenario("malloc_huge_enomem", "a=m 18446744073709551615; b=m 18446744073709551608; c=m 18446744073709551583; "
         "e=r - 18446744073709551615; g=m 100; w g 104 1; h=r g 18446744073709551615; v g 104 1; d; k", """
    @ a=m 18446744073709551615
    = NULL errno=ENOMEM
    @ b=m 18446744073709551608
    = NULL errno=ENOMEM
    @ c=m 18446744073709551583
    = NULL errno=ENOMEM
    @ e=r - 18446744073709551615
    = NULL errno=ENOMEM
    @ g=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ w g 104 1
    @ h=r g 18446744073709551615
    = NULL errno=ENOMEM
    @ v g 104 1
    pat ok
    @ d
    blk H+0x0 104 1
    blk H+0x88 130904 0
    end H+0x20000
    @ k
    check 0
""")

# ---- RLIMIT_DATA. Note: the kernel lets mmap through when the soft limit is exactly 0 (a workaround for
# Valgrind in may_expand_vm), so these scenarios use `L 1`, which refuses both brk growth and new mappings.
# The preallocation fails: NULL ENOMEM, nothing changed; after U the same request preallocates normally.
scenario("rlimit_prealloc_fails", "L 1; a=m 100; k; U; b=m 100; d; k", """
    @ L 1
    @ a=m 100
    brk fail +131072
    = NULL errno=ENOMEM
    @ k
    check 0
    @ U
    @ b=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ d
    blk H+0x0 104 1
    blk H+0x88 130904 0
    end H+0x20000
    @ k
    check 0
""")

# ---- Appending fails (brk +136 refused): heap unchanged and consistent; after U it succeeds.
scenario("rlimit_append_fails", "a=m 131032; L 1; b=m 100; d; k; U; c=m 100; d; k", """
    @ a=m 131032
    brk +131072
    = H+0x20 size=131040 status=1
    @ L 1
    @ b=m 100
    brk fail +136
    = NULL errno=ENOMEM
    @ d
    blk H+0x0 131040 1
    end H+0x20000
    @ k
    check 0
    @ U
    @ c=m 100
    brk +136
    = H+0x20020 size=104 status=1
    @ d
    blk H+0x0 131040 1
    blk H+0x20000 104 1
    end H+0x20088
    @ k
    check 0
""")

# ---- Growing the free last block fails (brk +1992 refused, see grow_free_last_block): the 8-byte free block
# stays as it was; after U the same request grows it.
scenario("rlimit_grow_last_fails", "a=m 131000; L 1; b=m 2000; d; k; U; c=m 2000; d; k", """
    @ a=m 131000
    brk +131072
    = H+0x20 size=131000 status=1
    @ L 1
    @ b=m 2000
    brk fail +1992
    = NULL errno=ENOMEM
    @ d
    blk H+0x0 131000 1
    blk H+0x1ffd8 8 0
    end H+0x20000
    @ k
    check 0
    @ U
    @ c=m 2000
    brk +1992
    = H+0x1fff8 size=2000 status=1
    @ d
    blk H+0x0 131000 1
    blk H+0x1ffd8 2000 1
    end H+0x207c8
    @ k
    check 0
""")

# ---- mmap refused (malloc 200000 -> 200032; calloc(1, 5000) -> 5032 >= 4096): NULL ENOMEM; after U it maps.
scenario("rlimit_mmap_fails", "a=m 100; L 1; b=m 200000; c=c 1 5000; k; U; e=m 200000; d; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ L 1
    @ b=m 200000
    mmap 200032 -> ENOMEM
    = NULL errno=ENOMEM
    @ c=c 1 5000
    mmap 5032 -> ENOMEM
    = NULL errno=ENOMEM
    @ k
    check 0
    @ U
    @ e=m 200000
    mmap 200032
    = M1+0x20 size=200000 status=2
    @ d
    blk H+0x0 104 1
    blk H+0x88 130904 0
    end H+0x20000
    @ k
    check 0
""")

# ---- realloc whose new mapping is refused (case 5: heap 104 -> 200000, mmap 200032; case 4: mapped 150000 ->
# 300000, mmap 300032): NULL ENOMEM, the old block untouched (contents, status; no munmap).
scenario("rlimit_realloc_map_fails", "a=m 100; w a 104 2; b=m 150000; w b 150000 3; L 1; c=r a 200000; "
         "e=r b 300000; v a 104 2; v b 150000 3; k; U; d; f b; k", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ w a 104 2
    @ b=m 150000
    mmap 150032
    = M1+0x20 size=150000 status=2
    @ w b 150000 3
    @ L 1
    @ c=r a 200000
    mmap 200032 -> ENOMEM
    = NULL errno=ENOMEM
    @ e=r b 300000
    mmap 300032 -> ENOMEM
    = NULL errno=ENOMEM
    @ v a 104 2
    pat ok
    @ v b 150000 3
    pat ok
    @ k
    check 0
    @ U
    @ d
    blk H+0x0 104 1
    blk H+0x88 130904 0
    end H+0x20000
    @ f b
    munmap M1 150032
    @ k
    check 0
""")

# ---- Bad pointers: reported with write(2) before anything changes (no system call after the statement), then
# abort. The pointer printed is the one passed in.
scenario("double_free_heap", "a=m 100; f a; f a", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ f a
    @ f a
    stderr: osmem: os_free(): double free {a}
    killed by SIGABRT
""", death=True)

# A mapped block is unmapped by its first free; the second free must be caught without reading the
# unmapped header (a fault would be a crash, not a report), and named for what it is: a double free.
scenario("double_free_mapped", "a=m 200000; f a; f a", """
    @ a=m 200000
    mmap 200032
    = M1+0x20 size=200000 status=2
    @ f a
    munmap M1 200032
    @ f a
    stderr: osmem: os_free(): double free {a}
    killed by SIGABRT
""", death=True)

# a moved by realloc case 9 (a @0x0, b @0x88, new block in the free block @0x110: payload 0x130), so a is free.
scenario("double_free_after_realloc_move", "a=m 100; b=m 100; c=r a 1000; f a", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ c=r a 1000
    = H+0x130 size=1000 status=1
    @ f a
    stderr: osmem: os_free(): double free {a}
    killed by SIGABRT
""", death=True)

# b's header was merged away by the coalescing at `c=m 8` (a + b = 240, split at 0x28): freeing b again is a
# double free of a pointer that is no longer a block; either report is acceptable, but it must be caught.
scenario("double_free_after_coalesce", "a=m 100; b=m 100; f a; f b; c=m 8; f b", r"""
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ b=m 100
    = H+0xa8 size=104 status=1
    @ f a
    @ f b
    @ c=m 8
    = H+0x20 size=8 status=1
    @ f b
    ~stderr: osmem: os_free\(\): (double free|invalid pointer) {b}
    killed by SIGABRT
""", death=True)

scenario("invalid_free_middle_of_block", "a=m 200; F a+64", """
    @ a=m 200
    brk +131072
    = H+0x20 size=200 status=1
    @ F a+64
    stderr: osmem: os_free(): invalid pointer {a+64}
    killed by SIGABRT
""", death=True)

scenario("invalid_free_misaligned", "a=m 100; F a+4", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ F a+4
    stderr: osmem: os_free(): invalid pointer {a+4}
    killed by SIGABRT
""", death=True)

scenario("invalid_free_middle_of_mapping", "a=m 200000; F a+4096", """
    @ a=m 200000
    mmap 200032
    = M1+0x20 size=200000 status=2
    @ F a+4096
    stderr: osmem: os_free(): invalid pointer {a+4096}
    killed by SIGABRT
""", death=True)

# A pointer whose header would lie at address 0 (free((void *)32)) was reported as a double free: the ring of
# recently unmapped headers starts as zeros, and 0 matched (session 58's review). Never allocated: invalid.
scenario("invalid_free_never_allocated_low_address", "a=m 100; F 0x20", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ F 0x20
    stderr: osmem: os_free(): invalid pointer 0x20
    killed by SIGABRT
""", death=True)

scenario("invalid_free_stack", "a=m 100; s=s; F s", """
    @ a=m 100
    brk +131072
    = H+0x20 size=104 status=1
    @ s=s
    = ? stack
    @ F s
    stderr: osmem: os_free(): invalid pointer {s}
    killed by SIGABRT
""", death=True)

scenario("invalid_free_stack_no_heap", "s=s; F s", """
    @ s=s
    = ? stack
    @ F s
    stderr: osmem: os_free(): invalid pointer {s}
    killed by SIGABRT
""", death=True)

scenario("invalid_realloc_middle_of_block", "a=m 200; b=r a+64 10", """
    @ a=m 200
    brk +131072
    = H+0x20 size=200 status=1
    @ b=r a+64 10
    stderr: osmem: os_realloc(): invalid pointer {a+64}
    killed by SIGABRT
""", death=True)


# ======================================================================================================
# The harness
# ======================================================================================================

CALL_RE = re.compile(r"^(\w+)\((.*)\)\s+=\s+(.*)$")
HEX_RE = re.compile(r"0x[0-9a-fA-F]+")
SIGNAMES = {-s.value: s.name for s in signal.Signals}


class Trace:
    """Normalises one strace log (plus the program's stdout and stderr) into the event list."""

    def __init__(self):
        self.events = []
        self.brk = None          # the current break, as the kernel last reported it
        self.heap = None         # H
        self.maps = []           # [start, length, live]
        self.vars = {}           # raw variable values, for death-test messages
        self.last_assign = None  # the variable of the last "@ X=..." statement

    def sym(self, v):
        for i in range(len(self.maps) - 1, -1, -1):  # live mappings first, the newest first
            start, length, live = self.maps[i]
            if live and start <= v < start + length:
                return "M%d+0x%x" % (i + 1, v - start)
        for i in range(len(self.maps) - 1, -1, -1):
            start, length, _ = self.maps[i]
            if start <= v < start + length:
                return "M%d+0x%x" % (i + 1, v - start)
        if self.heap is not None and abs(v - self.heap) < (1 << 32):
            return ("H+0x%x" % (v - self.heap)) if v >= self.heap else ("H-0x%x" % (self.heap - v))
        return "?"

    def output_line(self, text):
        if text.startswith("@ "):
            m = re.match(r"@ ([a-z])=", text)
            self.last_assign = m.group(1) if m else None
            self.events.append(text)
            return
        if text.startswith("= ") and self.last_assign:
            m = re.match(r"= (0x[0-9a-f]+)", text)
            if m:
                self.vars[self.last_assign] = int(m.group(1), 16)
        self.events.append(HEX_RE.sub(lambda m: self.sym(int(m.group(0), 16)), text))


# Set when spec_prog is built with AddressSanitizer (make test-asan): its run-time maps shadow memory.
SANITIZED = False


def normalise(log_text, stdout_lines):
    t = Trace()
    started = False
    out_idx = 0
    for line in log_text.splitlines():
        if line.startswith(("+++", "---")) or not line.strip():
            continue
        m = CALL_RE.match(line)
        if not m:
            if started:
                t.events.append("UNPARSED " + line)
            continue
        call, args, ret = m.groups()
        if call == "write":
            fd, rest = args.split(",", 1)
            if fd.strip() != "1":
                continue  # the library's reports on fd 2 are taken from the stderr pipe
            if not started:
                if not rest.strip().startswith('"@ '):
                    out_idx += 1
                    continue
                started = True
            text = stdout_lines[out_idx] if out_idx < len(stdout_lines) else "MISSING OUTPUT LINE"
            out_idx += 1
            t.output_line(text)
        elif call == "brk":
            r = int(ret, 16)
            if not started:
                if t.brk is not None and r != t.brk:
                    t.events.append("PRE-MARKER break moved by %+d" % (r - t.brk))
                t.brk = r
                continue
            if args.strip() == "NULL":
                t.events.append("brk NULL")
                t.brk = r
                continue
            req = int(args, 16)
            if t.brk is None:
                t.events.append("brk ? (no initial break seen)")
                t.brk = r
                continue
            if r == req:
                d = req - t.brk
                if d > 0 and t.heap is None:
                    t.heap = t.brk
                t.events.append("brk %s%d" % ("+" if d >= 0 else "-", abs(d)))
                t.brk = r
            else:
                d = req - t.brk
                t.events.append("brk fail %s%d" % ("+" if d >= 0 else "-", abs(d)))
                t.brk = r
        elif call == "mmap":
            if not started:
                continue
            parts = [p.strip() for p in args.split(",")]
            if SANITIZED and len(parts) == 6 and "MAP_FIXED" in parts[3] and "MAP_NORESERVE" in parts[3]:
                continue  # AddressSanitizer's shadow memory (its globals unregistered at exit): osmem never maps FIXED
            ok = (len(parts) == 6 and parts[0] == "NULL" and parts[2] == "PROT_READ|PROT_WRITE"
                  and parts[3] == "MAP_PRIVATE|MAP_ANONYMOUS" and parts[4] == "-1" and parts[5] == "0")
            length = int(parts[1], 0) if len(parts) > 1 else -1
            if ret.startswith("-1"):
                ev = "mmap %d -> %s" % (length, ret.split()[1])
            else:
                t.maps.append([int(ret, 16), length, True])
                ev = "mmap %d" % length
            if not ok:
                ev += " BAD ARGUMENTS (%s)" % args
            t.events.append(ev)
        elif call == "munmap":
            if not started:
                continue
            a, length = [p.strip() for p in args.split(",")]
            addr = int(a, 16)
            k = next((i for i in range(len(t.maps) - 1, -1, -1) if t.maps[i][0] == addr and t.maps[i][2]), None)
            if k is None:
                ev = "munmap BAD %s %s (not the start of a live mapping)" % (t.sym(addr), length)
            else:
                t.maps[k][2] = False
                ev = "munmap M%d %s" % (k + 1, length)
            if ret.strip() != "0":
                ev += " -> " + ret
            t.events.append(ev)
        elif started:
            t.events.append("UNEXPECTED " + line)
    if not started:
        t.events.append("NO MARKER: the program never wrote its first statement")
    return t


def substitute(line, vars_):
    def rep(m):
        name, sign, num = m.group(1), m.group(2), m.group(3)
        if name not in vars_:
            return "{%s: unknown}" % m.group(0)
        v = vars_[name]
        if sign:
            v = v + int(num, 0) if sign == "+" else v - int(num, 0)
        return "0x%x" % v
    return re.sub(r"\{([a-z])(?:([+-])(\w+))?\}", rep, line)


def find_program(build):
    rel = os.path.join(build, "tests", "spec_prog")
    if os.path.isabs(rel):
        return rel
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for base in (os.getcwd(), here):
        p = os.path.join(base, rel)
        if os.path.exists(p):
            return p
    return os.path.join(here, rel)


def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_scenario(prog, sc, verbose):
    with tempfile.TemporaryDirectory(prefix="osmem-spec-") as tmp:
        log = os.path.join(tmp, "strace.log")
        cmd = ["strace", "-qq", "-e", "signal=none", "-e", "trace=brk,mmap,munmap,write", "-o", log,
               prog, sc["script"]]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "MALLOC_", "GLIBC_TUNABLES"))}
        env["OSMEM_SPEC_GHOSTS"] = "1"  # freed bytes must stay as they were: spec_prog checks after each statement
        # Sanitizer builds (make test-asan): LeakSanitizer cannot run under ptrace and maps memory at exit.
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""), "detect_leaks=0"]))
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=60, preexec_fn=no_core, env=env)
        except subprocess.TimeoutExpired:
            return False, "timeout", []
        stdout = p.stdout.decode("utf-8", "replace")
        stderr = p.stderr.decode("utf-8", "replace")
        try:
            with open(log, encoding="utf-8", errors="replace") as f:
                log_text = f.read()
        except OSError:
            log_text = ""
    t = normalise(log_text, stdout.split("\n"))
    actual = list(t.events)
    for line in stderr.splitlines():
        if line.startswith("strace: "):
            continue
        actual.append("stderr: " + line)
    rc = p.returncode
    if rc < 0:
        actual.append("killed by " + SIGNAMES.get(rc, "signal %d" % -rc))
    elif rc > 128 and (rc - 128) in [s.value for s in signal.Signals]:
        actual.append("killed by " + signal.Signals(rc - 128).name)
    else:
        actual.append("exit %d" % rc)

    expected = [substitute(l, t.vars) for l in sc["expected"].split("\n")]
    if not sc["death"]:
        expected.append("exit 0")
    # '~' lines are regular expressions: where one matches the actual line in the same place, show them equal.
    shown_expected = []
    for i, e in enumerate(expected):
        if e.startswith("~"):
            pat = e[1:]
            if i < len(actual) and re.fullmatch(pat, actual[i]):
                shown_expected.append(actual[i])
            else:
                shown_expected.append(e)
        else:
            shown_expected.append(e)
    ok = shown_expected == actual
    diff = ""
    if not ok:
        diff = "\n".join(difflib.unified_diff(shown_expected, actual, "expected", "actual", lineterm=""))
    if verbose:
        diff = (diff + "\n" if diff else "") + "\n".join("    " + a for a in actual)
    return ok, diff, actual


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build", help="build directory (default: build)")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every scenario's actual events")
    args = ap.parse_args()

    if args.list:
        for sc in SCENARIOS:
            print("%-36s %s" % (sc["name"], sc["script"]))
        return 0
    if not shutil.which("strace"):
        print("strace not found")
        print("0 passed, %d failed" % len(SCENARIOS))
        return 1
    prog = find_program(args.build)
    global SANITIZED
    try:
        with open(prog, "rb") as f:
            SANITIZED = b"__asan_init" in f.read()
    except OSError:
        pass
    if not os.path.exists(prog):
        print("program not found: %s (run `make %s/tests/spec_prog`)" % (prog, args.build))
        print("0 passed, %d failed" % len(SCENARIOS))
        return 1

    only = set(filter(None, args.only.split(",")))
    unknown = only - {sc["name"] for sc in SCENARIOS}
    if unknown:
        print("unknown scenario(s): " + ", ".join(sorted(unknown)))
        return 2
    passed = failed = 0
    for sc in SCENARIOS:
        if only and sc["name"] not in only:
            continue
        ok, diff, _ = run_scenario(prog, sc, args.verbose)
        print("%s %s" % ("PASS" if ok else "FAIL", sc["name"]))
        if not ok:
            print("    script: " + sc["script"])
        if diff:
            print(textwrap.indent(diff, "    "))
        sys.stdout.flush()
        if ok:
            passed += 1
        else:
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
