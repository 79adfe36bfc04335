/* malloc_realloc: what the default profile's realloc costs when a program grows a buffer a few bytes at a time,
 * and where a block shrunk to a small size ends up. Each case runs in a child process of its own (a fresh heap and
 * mmap threshold).
 *
 *   growing_buffer_does_not_call_per_byte/heap     a block of 40,000 bytes grown 9 bytes a call to 120,000 (below
 *                                                  the mmap threshold): before, each call absorbed the free block
 *                                                  after it and split the rest off again (5,001 splits for 8,888
 *                                                  calls); the block now takes an eighth more each time it grows
 *                                                  (heap.c, realloc_slack), so a few dozen splits in all.
 *   growing_buffer_does_not_call_per_byte/mapped   a mapped block of 200,000 bytes grown the same way to 1 MiB:
 *                                                  before, one mremap a call (94,286); now one per eighth.
 *   growing_buffer_keeps_its_bytes                 both growths keep every byte written before (checked at the
 *                                                  end), and a shrink by more than an eighth still gives the rest
 *                                                  back (the heap's bytes in use fall).
 *   shrink_to_slot_leaves_the_heap                 realloc of a medium block (10,000 bytes), a heap block above the
 *                                                  medium sizes (50,000) and a mapped one (300,000) to 100 bytes:
 *                                                  each becomes a front slot with its first 100 bytes, and the core
 *                                                  holds none of the three any more (before: it split each and kept
 *                                                  the 100 bytes among its own blocks, where every later realloc
 *                                                  took its lock and a best-fit search).
 *   last_block_growth_sized_by_the_block           a heap of 60 MB and a last block of at most 256 KiB grown by 100
 *                                                  bytes: the break grows by 256 KiB (or the block's eighth), not
 *                                                  by an eighth of the heap (7.5 MB), as it did while two threads'
 *                                                  buffers took the free top in turns: each growth that reached the
 *                                                  break added an eighth of the heap, which grew to 8-98 MB for 4.5
 *                                                  MB of buffers (heap.c, realloc_grow_size).
 *   shrink_to_slot_reports_a_freed_block           realloc(freed medium block, 100) still aborts with `osmem:
 *                                                  realloc(): double free 0x<ptr>`.
 *   medium_shrink_to_more_than_half_stays_whole    realloc of a medium block (40,000 bytes) to 24,000 and back to
 *                                                  40,000: the same pointer, no split, no lock (the core's split
 *                                                  gave the rest back, and the growth after it moved and copied:
 *                                                  random reallocs of 64 buffers of 2-64 KiB took 0.40 s, glibc
 *                                                  0.12; mimalloc keeps a block down to half its size too).
 *   medium_growth_takes_free_neighbour             a medium block shrunk to 8,000 bytes (the core splits it; the
 *                                                  rest is free) and grown to 30,000: the same pointer, the free
 *                                                  rest taken back in place (docs/CLASSIC.md's rule 8), where the
 *                                                  medium cache's way moved it and copied it.
 *   buffers_grown_in_turn_move_geometrically      eight buffers grown 100 bytes a call in turn, from 0 to 625,000
 *                                                  bytes (gawk appending to four strings): past the mmap threshold
 *                                                  each growth moved, every call, into the hole another buffer's
 *                                                  move had left, exactly its size (16,919 moves for gawk's four
 *                                                  strings, 1.5 s for 64 buffers where glibc takes 0.08); a move
 *                                                  now takes realloc's slack too, so a buffer moves once an eighth.
 *   mapped_buffers_grown_in_turn_keep_without_lock four mapped buffers grown 16 bytes a call in turn, from 200,000
 *                                                  to 400,000 bytes (gawk appending to four strings): a call that
 *                                                  leaves the block as it is no longer takes the core's lock and
 *                                                  mapping set (each was one of the core's in-place reallocs: 50,000
 *                                                  for 50,000 calls, gawk at 1.8x glibc's time); every byte kept.
 *   mapped_keep_forgets_freed_block                a mapped block kept by realloc twice, then freed: realloc of it
 *                                                  still aborts with `double free` (the thread's entry of kept
 *                                                  mapped blocks goes stale at any mapped block's free).
 *   mapped_keep_checks_header                      the same with the block's header size overwritten before the
 *                                                  third realloc: `corrupted header`, not a keep.
 *   slot_moves_keep_bytes                          every slot size reallocated to every other and to medium, heap
 *                                                  and mapped sizes: its bytes come along, errno stays, nothing is
 *                                                  left allocated (a slot's move takes malloc's and free's fast
 *                                                  paths).
 * The default profile's (the classic profile keeps docs/CLASSIC.md's exact cases: tests/test_spec.py).
 * Prints `PASS realloc/<case>` or `FAIL realloc/<case>: why`. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void (*volatile v_free)(void *) = free;

static char why[256];

/* Grows a block from `from` to `to` bytes, `step` bytes a call, writing its last byte each time (a byte that
 * depends on its offset), and checks every byte at the end. Returns the block, or NULL with `why` set. */
static unsigned char *grow(size_t from, size_t to, size_t step, size_t *calls)
{
	unsigned char *p = v_malloc(from);
	if (!p) {
		snprintf(why, sizeof why, "malloc(%zu) returned NULL", from);
		return NULL;
	}
	for (size_t i = 0; i < from; i++)
		p[i] = (unsigned char)(i * 7);
	*calls = 0;
	for (size_t n = from + step; n <= to; n += step) {
		unsigned char *q = v_realloc(p, n);
		if (!q) {
			snprintf(why, sizeof why, "realloc(%zu) returned NULL", n);
			return NULL;
		}
		p = q;
		for (size_t i = n - step; i < n; i++)
			p[i] = (unsigned char)(i * 7);
		++*calls;
	}
	size_t end = from + *calls * step;
	for (size_t i = 0; i < end; i++)
		if (p[i] != (unsigned char)(i * 7)) {
			snprintf(why, sizeof why, "byte %zu of the grown block is 0x%02x, 0x%02x was written there", i, p[i],
				 (unsigned char)(i * 7));
			return NULL;
		}
	return p;
}

static int heap_case(void)
{
	struct os_stats a, b;
	size_t calls;
	v_free(v_malloc(200000)); /* a free block to grow into: the heap's top after the first growth */
	os_stats(&a);
	unsigned char *p = grow(40000, 120000, 9, &calls);
	if (!p)
		return printf("FAIL realloc/growing_buffer_does_not_call_per_byte/heap: %s\n", why), 1;
	os_stats(&b);
	size_t splits = b.splits - a.splits, moves = b.moved_reallocs - a.moved_reallocs;
	v_free(p);
	if (b.mapped_count != a.mapped_count)
		return printf("FAIL realloc/growing_buffer_does_not_call_per_byte/heap: the block was mapped (test setup: "
			      "the threshold is 128 KiB)\n"), 1;
	if (splits > 100 || moves > 20) {
		printf("FAIL realloc/growing_buffer_does_not_call_per_byte/heap: %zu reallocs of 9 bytes more made %zu "
		       "splits and %zu moves (at most 100 and 20: a growth takes an eighth more than asked)\n",
		       calls, splits, moves);
		return 1;
	}
	printf("PASS realloc/growing_buffer_does_not_call_per_byte/heap\n");
	return 0;
}

static int mapped_case(void)
{
	struct os_stats a, b;
	size_t calls;
	os_stats(&a);
	unsigned char *p = grow(200000, 1 << 20, 9, &calls);
	if (!p)
		return printf("FAIL realloc/growing_buffer_does_not_call_per_byte/mapped: %s\n", why), 1;
	os_stats(&b);
	size_t remaps = b.mremap_calls - a.mremap_calls, maps = b.mmap_calls - a.mmap_calls;
	v_free(p);
	if (remaps > 64 || maps > 4) {
		printf("FAIL realloc/growing_buffer_does_not_call_per_byte/mapped: %zu reallocs of 9 bytes more made %zu "
		       "mremap and %zu mmap calls (at most 64 and 4: one remap per eighth of growth)\n",
		       calls, remaps, maps);
		return 1;
	}
	printf("PASS realloc/growing_buffer_does_not_call_per_byte/mapped\n");
	return 0;
}

static int bytes_case(void)
{
	size_t calls;
	unsigned char *p = grow(40000, 90000, 13, &calls);
	if (!p)
		return printf("FAIL realloc/growing_buffer_keeps_its_bytes: heap: %s\n", why), 1;
	struct os_stats a, b;
	os_stats(&a);
	unsigned char *q = v_realloc(p, 45000); /* half: a real shrink gives the rest back */
	os_stats(&b);
	if (q != p)
		return printf("FAIL realloc/growing_buffer_keeps_its_bytes: a shrink to half moved the block\n"), 1;
	size_t core_a = a.bytes_in_use - a.front_in_use, core_b = b.bytes_in_use - b.front_in_use;
	if (core_b + 40000 > core_a) {
		printf("FAIL realloc/growing_buffer_keeps_its_bytes: a shrink from %zu to 45,000 bytes left %zu bytes in "
		       "use in the heap, %zu before (at least 40,000 should have gone back)\n", 40000 + calls * 13,
		       core_b, core_a);
		return 1;
	}
	for (size_t i = 0; i < 45000; i++)
		if (q[i] != (unsigned char)(i * 7))
			return printf("FAIL realloc/growing_buffer_keeps_its_bytes: byte %zu changed at the shrink\n", i), 1;
	v_free(q);
	unsigned char *m = grow(150000, 400000, 13, &calls);
	if (!m)
		return printf("FAIL realloc/growing_buffer_keeps_its_bytes: mapped: %s\n", why), 1;
	v_free(m);
	printf("PASS realloc/growing_buffer_keeps_its_bytes\n");
	return 0;
}

/* the two medium cases (see the head of this file): each byte of the block checked after each realloc */
static int medium_bytes_ok(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 11))
			return 0;
	return 1;
}

static int medium_half_case(void)
{
	unsigned char *p = v_malloc(40000);
	for (size_t i = 0; i < 40000; i++)
		p[i] = (unsigned char)(i * 11);
	struct os_stats a, b;
	os_stats(&a);
	unsigned char *q = v_realloc(p, 24000);
	unsigned char *r = q ? v_realloc(q, 40000) : NULL;
	os_stats(&b);
	int ok = q == p && r == p && b.splits == a.splits && medium_bytes_ok(p, 24000) && os_heap_check() == 0;
	if (!ok) {
		printf("FAIL realloc/medium_shrink_to_more_than_half_stays_whole: realloc(40,000-byte block, 24,000) gave "
		       "%p, back to 40,000 %p (the block was %p), with %zu splits (want the same pointer both times, no "
		       "split, its first 24,000 bytes kept)\n", (void *)q, (void *)r, (void *)p, b.splits - a.splits);
		return 1;
	}
	v_free(r);
	printf("PASS realloc/medium_shrink_to_more_than_half_stays_whole\n");
	return 0;
}

static int medium_neighbour_case(void)
{
	unsigned char *p = v_malloc(40000), *guard = v_malloc(40000);
	for (size_t i = 0; i < 40000; i++)
		p[i] = (unsigned char)(i * 11);
	unsigned char *q = v_realloc(p, 8000); /* below half: the core splits it, the rest free after it */
	struct os_stats a, b;
	os_stats(&a);
	unsigned char *r = q ? v_realloc(q, 30000) : NULL;
	os_stats(&b);
	int ok = q == p && r == p && medium_bytes_ok(r, 8000) && os_heap_check() == 0;
	if (!ok) {
		printf("FAIL realloc/medium_growth_takes_free_neighbour: a 40,000-byte block %p shrunk to 8,000 (%p) and "
		       "grown to 30,000 gave %p, %zu in-place reallocs (want the same pointer: the free rest after it "
		       "taken back, no copy)\n", (void *)p, (void *)q, (void *)r, b.inplace_reallocs - a.inplace_reallocs);
		return 1;
	}
	v_free(r);
	v_free(guard);
	printf("PASS realloc/medium_growth_takes_free_neighbour\n");
	return 0;
}

static int shrink_case(void)
{
	static const size_t sizes[] = { 10000, 50000, 300000 };
	for (size_t k = 0; k < 3; k++) {
		struct os_stats a, b;
		os_stats(&a);
		unsigned char *p = v_malloc(sizes[k]);
		if (!p)
			return printf("FAIL realloc/shrink_to_slot_leaves_the_heap: malloc(%zu) returned NULL\n", sizes[k]), 1;
		for (size_t i = 0; i < sizes[k]; i++)
			p[i] = (unsigned char)(i * 3 + k);
		unsigned char *q = v_realloc(p, 100);
		os_stats(&b);
		if (!q)
			return printf("FAIL realloc/shrink_to_slot_leaves_the_heap: realloc(%zu -> 100) returned NULL\n",
				      sizes[k]), 1;
		for (size_t i = 0; i < 100; i++)
			if (q[i] != (unsigned char)(i * 3 + k))
				return printf("FAIL realloc/shrink_to_slot_leaves_the_heap: byte %zu lost in the shrink from "
					      "%zu to 100\n", i, sizes[k]), 1;
		size_t core_a = a.bytes_in_use - a.front_in_use, core_b = b.bytes_in_use - b.front_in_use;
		if (b.front_in_use < a.front_in_use + 100 || core_b > core_a) {
			printf("FAIL realloc/shrink_to_slot_leaves_the_heap: after realloc(%zu -> 100) the core holds %zu "
			       "bytes in use (%zu before the malloc) and the front %zu (%zu): the 100 bytes belong in a "
			       "slot\n", sizes[k], core_b, core_a, b.front_in_use, a.front_in_use);
			return 1;
		}
		v_free(q);
	}
	printf("PASS realloc/shrink_to_slot_leaves_the_heap\n");
	return 0;
}

static int last_block_case(void)
{
	enum { N = 600, SZ = 100000 }; /* a heap of 60 MB: an eighth of it is 7.5 MB */
	static char *keep[N];
	mallopt(M_MMAP_THRESHOLD, 4 << 20); /* the last block (up to 256 KiB and more) stays on the heap */
	for (int i = 0; i < N; i++) {
		keep[i] = v_malloc(SZ);
		if (!keep[i])
			return printf("FAIL realloc/last_block_growth_sized_by_the_block: malloc(%d) returned NULL\n", SZ), 1;
		memset(keep[i], 1, 64);
	}
	malloc_trim(256 << 10); /* at most 256 KiB of free top stay */
	size_t top = tu_free_top_size();
	char *b = top >= 40000 + 32 ? v_malloc(top - 32) : NULL;
	if (!b || tu_free_top_size() != 0)
		return printf("FAIL realloc/last_block_growth_sized_by_the_block: could not place a block at the very top "
			      "(test setup; free top %zu)\n", top), 1;
	struct os_stats a, c;
	os_stats(&a);
	b = v_realloc(b, top - 32 + 100);
	os_stats(&c);
	size_t grown = c.heap_size - a.heap_size;
	if (!b || grown == 0 || grown > (1 << 20)) {
		printf("FAIL realloc/last_block_growth_sized_by_the_block: the last block (%zu bytes) grew by 100 bytes and "
		       "the heap by %zu bytes (%s; at most 1 MiB: its own eighth or 256 KiB, not an eighth of the %zu "
		       "bytes of heap)\n", top - 32, grown, b ? "in place" : "realloc returned NULL", a.heap_size);
		return 1;
	}
	for (int i = 0; i < N; i++)
		v_free(keep[i]);
	v_free(b);
	printf("PASS realloc/last_block_growth_sized_by_the_block\n");
	return 0;
}

static int freed_case(void)
{
	char *keep = v_malloc(10000); /* the freed block is not the heap's top */
	char *p = v_malloc(10000);
	char *after = v_malloc(10000);
	v_free(p);
	(void)keep;
	(void)after;
	char out[512];
	char *argv[] = { "/proc/self/exe", "realloc-freed", NULL };
	int status = tu_spawn(argv, NULL, 1, out, sizeof out);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT || !strstr(out, "osmem: realloc(): double free 0x")) {
		printf("FAIL realloc/shrink_to_slot_reports_a_freed_block: realloc(freed, 100) gave status 0x%x and "
		       "\"%.200s\" (expected SIGABRT and `osmem: realloc(): double free 0x...`)\n", status, out);
		return 1;
	}
	printf("PASS realloc/shrink_to_slot_reports_a_freed_block\n");
	return 0;
}

/* The child of freed_case: realloc of a medium block it has freed. */
static int realloc_freed(void)
{
	char *keep = v_malloc(10000), *p = v_malloc(10000), *after = v_malloc(10000);
	v_free(p);
	v_realloc(p, 100);
	printf("realloc(freed, 100) returned (%p %p)\n", (void *)keep, (void *)after);
	return 0;
}

/* Four mapped buffers grown in turn, 16 bytes a call: the core's in-place reallocs count the calls that took its
 * lock, which a keep of a mapped block decided without it does not (override.c, mapped_keeps). */
static int mapped_in_turn_case(void)
{
	enum { BUFS = 4, FROM = 200000, TO = 400000, STEP = 16 };
	unsigned char *b[BUFS];
	for (int k = 0; k < BUFS; k++) {
		b[k] = v_malloc(FROM);
		if (!b[k])
			return printf("FAIL realloc/mapped_buffers_grown_in_turn_keep_without_lock: malloc(%d) returned "
				      "NULL\n", FROM), 1;
		b[k][FROM - 1] = (unsigned char)k;
	}
	struct os_stats a, c;
	os_stats(&a);
	size_t calls = 0;
	for (size_t n = FROM + STEP; n <= TO; n += STEP)
		for (int k = 0; k < BUFS; k++) {
			unsigned char *q = v_realloc(b[k], n);
			if (!q)
				return printf("FAIL realloc/mapped_buffers_grown_in_turn_keep_without_lock: realloc(%zu) "
					      "returned NULL\n", n), 1;
			b[k] = q;
			b[k][n - 1] = (unsigned char)(n * 3 + (size_t)k);
			calls++;
		}
	os_stats(&c);
	size_t locked = c.inplace_reallocs - a.inplace_reallocs;
	for (int k = 0; k < BUFS; k++) {
		for (size_t n = FROM + STEP; n <= TO; n += STEP)
			if (b[k][n - 1] != (unsigned char)(n * 3 + (size_t)k))
				return printf("FAIL realloc/mapped_buffers_grown_in_turn_keep_without_lock: buffer %d lost "
					      "its byte %zu\n", k, n - 1), 1;
		v_free(b[k]);
	}
	if (c.mapped_count - a.mapped_count != 0 || locked > calls / 20)
		return printf("FAIL realloc/mapped_buffers_grown_in_turn_keep_without_lock: %zu of %zu calls that left a "
			      "mapped block as it was took the core's lock (in-place reallocs; want at most %zu: one "
			      "per remap, not one per call); mapped blocks %zu -> %zu\n", locked, calls, calls / 20,
			      a.mapped_count, c.mapped_count), 1;
	printf("PASS realloc/mapped_buffers_grown_in_turn_keep_without_lock (%zu calls, %zu under the lock)\n", calls,
	       locked);
	return 0;
}

/* The children of the two cases below: a mapped block kept by realloc twice (the second keep needs no lock),
 * then freed, or its header's size word overwritten, then reallocated once more. */
static int mapped_keep_child(int corrupt)
{
	unsigned char *p = v_malloc(300000);
	p = v_realloc(p, 300016);
	p = v_realloc(p, 300032);
	p = v_realloc(p, 300048);
	if (corrupt)
		((size_t *)p)[-4] ^= 4096; /* struct block_meta's size, the header's first word */
	else
		v_free(p);
	p = v_realloc(p, 300064);
	printf("realloc returned %p\n", (void *)p);
	return 0;
}

static int mapped_keep_death(const char *name, const char *arg, const char *want)
{
	char out[512];
	char *argv[] = { "/proc/self/exe", (char *)arg, NULL };
	int status = tu_spawn(argv, NULL, 1, out, sizeof out);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT || !strstr(out, want)) {
		printf("FAIL realloc/%s: status 0x%x and \"%.200s\" (expected SIGABRT and `%s...`)\n", name, status, out,
		       want);
		return 1;
	}
	printf("PASS realloc/%s\n", name);
	return 0;
}
static int mapped_freed_case(void)
{
	return mapped_keep_death("mapped_keep_forgets_freed_block", "mapped-keep-freed", "osmem: realloc(): double free 0x");
}
static int mapped_corrupt_case(void)
{
	return mapped_keep_death("mapped_keep_checks_header", "mapped-keep-corrupt",
				 "osmem: realloc(): corrupted header 0x");
}

/* Every slot size moved by realloc to every other slot size and to a medium, a heap and a mapped size: the bytes
 * that fit come along, errno stays as it was, and nothing is left behind (realloc's move of a slot by the fast
 * paths, override.c's slot_move). */
static int slot_move_case(void)
{
	static const size_t to[] = { 16, 32, 48, 64, 100, 128, 200, 256, 500, 512, 1000, 1024, 1040, 1500, 2048,
				     4096, 30000, 70000, 300000 };
	size_t n_to = sizeof to / sizeof to[0], moves = 0;
	struct os_stats a, c;
	os_stats(&a);
	for (size_t u = 16; u <= 2048; u += u < 128 ? 16 : u < 1024 ? 64 : 128) {
		for (size_t k = 0; k < n_to; k++) {
			unsigned char *p = v_malloc(u);
			if (!p)
				return printf("FAIL realloc/slot_moves_keep_bytes: malloc(%zu) returned NULL\n", u), 1;
			for (size_t i = 0; i < u; i++)
				p[i] = (unsigned char)(i * 7 + u);
			errno = EDOM;
			unsigned char *q = v_realloc(p, to[k]);
			int e = errno;
			size_t keep = u < to[k] ? u : to[k], bad = SIZE_MAX;
			for (size_t i = 0; q && i < keep && bad == SIZE_MAX; i++)
				if (q[i] != (unsigned char)(i * 7 + u))
					bad = i;
			if (!q || bad != SIZE_MAX || e != EDOM || malloc_usable_size(q) < to[k])
				return printf("FAIL realloc/slot_moves_keep_bytes: realloc(malloc(%zu), %zu): %s, "
					      "byte %zu lost, errno %d (want a block of at least %zu bytes with the "
					      "first %zu, errno EDOM as before)\n", u, to[k], q ? "a block" : "NULL",
					      bad == SIZE_MAX ? 0 : bad, e, to[k], keep), 1;
			moves += q != p;
			v_free(q);
		}
	}
	os_stats(&c);
	if (c.front_in_use != a.front_in_use || c.bytes_in_use != a.bytes_in_use || os_heap_check() != 0 ||
	    moves == 0)
		return printf("FAIL realloc/slot_moves_keep_bytes: after every move was freed, front bytes in use "
			      "%zu -> %zu, bytes in use %zu -> %zu, os_heap_check %s, %zu moves (want both unchanged, "
			      "a whole heap, moves)\n", a.front_in_use, c.front_in_use, a.bytes_in_use, c.bytes_in_use,
			      os_heap_check() ? "failed" : "ok", moves), 1;
	printf("PASS realloc/slot_moves_keep_bytes\n");
	return 0;
}

static int in_turn_case(void)
{
	enum { K = 8, STEP = 100, END = 625000 };
	static unsigned char *b[K];
	struct os_stats a, z;
	os_stats(&a);
	size_t calls = 0;
	for (size_t n = STEP; n <= END; n += STEP)
		for (int k = 0; k < K; k++) {
			unsigned char *q = v_realloc(b[k], n);
			if (!q)
				return printf("FAIL realloc/buffers_grown_in_turn_move_geometrically: realloc to %zu bytes "
					      "failed\n", n), 1;
			q[n - STEP] = (unsigned char)(k + 1);
			q[n - 1] = (unsigned char)(k + 1);
			b[k] = q;
			calls++;
		}
	os_stats(&z);
	size_t moves = z.moved_reallocs - a.moved_reallocs, bad = 0;
	for (int k = 0; k < K; k++) {
		for (size_t n = STEP; n <= END; n += STEP)
			bad += b[k][n - STEP] != k + 1 || b[k][n - 1] != k + 1;
		v_free(b[k]);
	}
	/* from 0 to 625,000 bytes in eighths: about 40 moves a buffer past the first few KiB (the medium and front
	 * sizes move by their own classes); one a call was 48,000 */
	if (moves > (size_t)K * 120 || bad) {
		printf("FAIL realloc/buffers_grown_in_turn_move_geometrically: %zu reallocs of %d buffers in turn made %zu "
		       "moves (at most %d: a move takes an eighth more than asked), %zu bytes lost\n", calls, K, moves,
		       K * 120, bad);
		return 1;
	}
	printf("PASS realloc/buffers_grown_in_turn_move_geometrically\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "realloc-freed") == 0)
		return realloc_freed();
	if (argc > 1 && strcmp(argv[1], "mapped-keep-freed") == 0)
		return mapped_keep_child(0);
	if (argc > 1 && strcmp(argv[1], "mapped-keep-corrupt") == 0)
		return mapped_keep_child(1);
	int fails = 0;
	fails += tu_in_child("realloc", "growing_buffer_does_not_call_per_byte/heap", heap_case);
	fails += tu_in_child("realloc", "growing_buffer_does_not_call_per_byte/mapped", mapped_case);
	fails += tu_in_child("realloc", "growing_buffer_keeps_its_bytes", bytes_case);
	fails += tu_in_child("realloc", "shrink_to_slot_leaves_the_heap", shrink_case);
	fails += tu_in_child("realloc", "last_block_growth_sized_by_the_block", last_block_case);
	fails += tu_in_child("realloc", "shrink_to_slot_reports_a_freed_block", freed_case);
	fails += tu_in_child("realloc", "medium_shrink_to_more_than_half_stays_whole", medium_half_case);
	fails += tu_in_child("realloc", "medium_growth_takes_free_neighbour", medium_neighbour_case);
	fails += tu_in_child("realloc", "buffers_grown_in_turn_move_geometrically", in_turn_case);
	fails += tu_in_child("realloc", "mapped_buffers_grown_in_turn_keep_without_lock", mapped_in_turn_case);
	fails += tu_in_child("realloc", "mapped_keep_forgets_freed_block", mapped_freed_case);
	fails += tu_in_child("realloc", "mapped_keep_checks_header", mapped_corrupt_case);
	fails += tu_in_child("realloc", "slot_moves_keep_bytes", slot_move_case);
	return fails != 0;
}
