#!/usr/bin/env python3
"""frag_floor: the lowest RSS that any allocator which does not move objects can show after frag's frees.

bench/workloads/frag.c allocates 1 GiB of objects (70% of 16..512 bytes, 30% of 513 bytes..16 KiB, log-uniform in
each band), then frees 90% of them at random. A 4 KiB page must stay resident while any live byte sits on it, and
which objects survive is not known when they are placed. This script draws the same distribution (its own random
numbers, not frag.c's sequence), lays the objects out in a few ways that an allocator could choose, and counts the
pages that still hold a live byte, as if every free page were handed back at once (no allocator does that: each one
would be a page fault when phase 3 asks for memory again).

    python3 bench/frag_floor.py [SEED]

Result (seed 1): packed in allocation order 2.90x the live bytes; small and large objects in separate regions
2.33x; small packed, larger ones page-aligned 2.32x. glibc, osmem and the peers measure 10-11x (bench/results),
because none of them hands back free pages inside the heap at free time. So "RSS after the frees within 1.25x of
the live bytes" cannot be met by a non-moving allocator on this workload: the floor is about 2.3x.
"""
import math
import random
import sys

PAGE = 4096


def draw(rng):
    objs, total = [], 0
    while total < (1 << 30):
        if rng.random() < 0.7:
            lo, hi = 16, 512
        else:
            lo, hi = 513, 16 << 10
        n = int(math.exp(math.log(lo) + (math.log(hi + 1) - math.log(lo)) * rng.random()))
        n = min(max(n, lo), hi)
        objs.append(n)
        total += n
    return objs


def resident(layout):
    pages = set()
    for addr, size, alive in layout:
        if alive:
            pages.update(range(addr // PAGE, (addr + size - 1) // PAGE + 1))
    return len(pages) * PAGE


def layout(objs, alive, apart, page_aligned):
    """(address, size, alive) of each object: objects of at most `apart` bytes packed in one region, the others
    in another (apart=None: all in one), those above `page_aligned` bytes each starting on a page of its own."""
    r16 = lambda n: (n + 15) & ~15
    out, top = [], {False: 0, True: 1 << 40}
    for n, s in zip(objs, alive):
        region = apart is not None and n > apart
        own_pages = page_aligned is not None and n > page_aligned
        out.append((top[region], n if own_pages else r16(n), s))
        top[region] += (n + PAGE - 1) & ~(PAGE - 1) if own_pages else r16(n)
    return out


def main():
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    objs = draw(rng)
    alive = [rng.random() < 0.1 for _ in objs]
    live = sum(n for n, a in zip(objs, alive) if a)
    print("objects %d, live after the frees %.0f MiB" % (len(objs), live / 2**20))
    for name, apart, aligned in (("packed in allocation order", None, None),
                                 ("small (<= 512 B) and larger apart", 512, None),
                                 ("small packed, above 2 KiB page-aligned", 2048, 2048)):
        print("%-40s RSS / live = %.2f" % (name, resident(layout(objs, alive, apart, aligned)) / live))


if __name__ == "__main__":
    main()
