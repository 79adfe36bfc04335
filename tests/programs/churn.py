#!/usr/bin/python3
"""Allocation churn for tests/test_programs.py: 4 threads build and drop dicts, strings, bytearrays and lists
of every size class (a few bytes up to a few MiB, so both small heap blocks and mmap-sized blocks), compress
with zlib/bz2 (which allocate through malloc with the GIL released, so the threads really run at once), and
each thread folds what it saw into a SHA-256. The printed digests depend only on the seeds, never on timing or
addresses: the same output on every allocator.

Usage: churn.py [ROUNDS]   (ROUNDS per thread, default 150)"""
import bz2
import hashlib
import random
import sys
import threading
import zlib

THREADS = 4


def work(tid, rounds, out):
    rng = random.Random(1000 + tid)
    h = hashlib.sha256()
    keep = []              # objects that live across rounds, dropped at random: interleaved lifetimes
    d = {}
    for r in range(rounds):
        # dicts: grow, shrink, rebuild (dict resizes realloc their tables)
        for i in range(rng.randrange(50, 400)):
            k = "k%d_%d" % (rng.randrange(5000), i)
            d[k] = (k * rng.randrange(1, 6), i)
        for k in list(d)[: len(d) // 2]:
            del d[k]
        if len(d) > 20000:
            d = {k: v for k, v in d.items() if zlib.crc32(k.encode()) % 3}     # not hash(): randomised per run
            d = dict(sorted(d.items())[:5000])

        # strings: concatenation, join, split, replace, encode
        parts = ["%x" % rng.getrandbits(rng.randrange(8, 400)) for _ in range(rng.randrange(10, 120))]
        s = "-".join(parts)
        s2 = s.replace("a", "AA").upper() + s[::-1]
        u = s2 + "\u00e9\u4e2d\U0001f600" * rng.randrange(1, 50)        # non-ASCII: other string kinds
        h.update(u.encode("utf-8"))
        h.update(str(len(s2.split("-"))).encode())

        # bytearrays: append, extend, slice-assign, sizes up to a few MiB (mmap territory)
        ba = bytearray()
        for _ in range(rng.randrange(5, 40)):
            ba += rng.randbytes(rng.randrange(1, 2048))
        if r % 25 == 0:
            big = bytearray(rng.randrange(200_000, 3_000_000))
            big[::4097] = b"\x5a" * len(big[::4097])
            big.extend(ba)
            h.update(hashlib.sha256(big).digest())                    # sha256 of >2 KiB releases the GIL
            del big[1000:len(big) // 2]
            h.update(bytes(big[-64:]))
        ba[10:20] = b"x" * rng.randrange(0, 100)
        h.update(ba)

        # lists: append/pop/insert/sort, lists of lists
        lst = [rng.randrange(1 << 30) for _ in range(rng.randrange(100, 3000))]
        lst.sort()
        for _ in range(rng.randrange(10, 200)):
            lst.insert(rng.randrange(len(lst) + 1), rng.randrange(100))
            if lst:
                lst.pop(rng.randrange(len(lst)))
        nested = [lst[i:i + 17] for i in range(0, len(lst), 17)]
        h.update(repr(sum(map(len, nested))).encode() + repr(lst[:50]).encode())

        # compression: zlib and bz2 malloc their state outside the GIL
        blob = (s.encode() + bytes(ba)) * rng.randrange(1, 8)
        if r % 3 == 0:
            c = zlib.compress(blob, rng.randrange(1, 10))
            assert zlib.decompress(c) == blob
            h.update(c)
        if r % 20 == 0:
            c = bz2.compress(blob)
            assert bz2.decompress(c) == blob
            h.update(len(c).to_bytes(4, "little"))

        # long-lived objects with random lifetimes
        keep.append((s2, ba, lst, {i: str(i) * 3 for i in range(rng.randrange(1, 300))}))
        while len(keep) > 60 or (keep and rng.random() < 0.3):
            del keep[rng.randrange(len(keep))]

    h.update(repr(sorted(len(x[0]) for x in keep)).encode())
    h.update(repr(sorted(d.items())[:100] if len(d) < 5000 else len(d)).encode())
    out[tid] = h.hexdigest()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    out = [None] * THREADS
    ts = [threading.Thread(target=work, args=(t, rounds, out)) for t in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for t in range(THREADS):
        print("thread %d %s" % (t, out[t]))
    print("all", hashlib.sha256("".join(out).encode()).hexdigest())


if __name__ == "__main__":
    main()
