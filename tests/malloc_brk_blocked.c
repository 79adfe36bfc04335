/* malloc_brk_blocked: the break cannot grow because another mapping sits right above it (a JIT, a library, a
 * program's own MAP_FIXED). The default profile must keep serving every request from mappings, as glibc does;
 * before, 90% of malloc(64) calls returned NULL. Requests of every kind: small, medium (the core's heap sizes),
 * calloc, realloc growth; contents checked, all freed, then allocated again.
 * Prints `PASS brk_blocked/<case>` or `FAIL brk_blocked/<case>: why`. */

#include <errno.h>
#include <stdbool.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"
#include "test_util.h"

#define N 20000

static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void (*volatile v_free)(void *) = free;
static unsigned char *blocks[N];
static size_t sizes[N];

static int fail(const char *what, size_t i, size_t n)
{
	printf("FAIL brk_blocked/every_request_served: %s (request %zu of %zu bytes, errno %d)\n", what, i, n, errno);
	return 1;
}

/* Hazard: with the break walled in, each block the heap could not hold got a mapping of its own: an mmap for a
 * 3 KiB block (a page at least, faulted in afresh), an munmap at its free, and no medium cache for it, so a
 * program of medium blocks made a system call or two per request (50,000 mmap calls for this loop). The heap now
 * goes on in a mapped break (src/heap.c, vbrk_grow): a reservation it grows into as into the break, so the loop
 * takes a handful of calls; and its free top still goes back (malloc_trim) with os_stats' heap bytes counting the
 * heap's segments, not the distance between them. */
static int medium_blocks_share_mappings(void)
{
	enum { M = 50000 };
	static unsigned char *p[M];
	struct os_stats s0, s1, s2;
	os_stats(&s0);
	for (size_t i = 0; i < M; i++) {
		size_t n = 2100 + (i * 7919) % 28000;
		if (!(p[i] = v_malloc(n)))
			return fail("NULL (medium loop)", i, n);
		memset(p[i], (int)(i & 0xff), n);
		if (i % 3 == 2) { /* some die young, as in a program */
			v_free(p[i - 1]);
			p[i - 1] = NULL;
		}
	}
	os_stats(&s1);
	size_t maps = s1.mmap_calls - s0.mmap_calls;
	for (size_t i = 0; i < M; i++)
		if (p[i] && p[i][0] != (unsigned char)(i & 0xff))
			return fail("contents changed (medium loop)", i, 0);
	for (size_t i = 0; i < M; i++)
		v_free(p[i]);
	malloc_trim(0);
	os_stats(&s2);
	int ok = 1;
	if (maps > 64) {
		printf("FAIL brk_blocked/medium_blocks_share_mappings: %zu mallocs of 2-30 KiB with the break walled in made "
		       "%zu mmap calls (want at most 64: the heap should go on in one mapped break, not a mapping per "
		       "block)\n", (size_t)M, maps);
		ok = 0;
	}
	if (s1.heap_size > ((size_t)4 << 30) || s2.heap_size >= s1.heap_size) {
		printf("FAIL brk_blocked/medium_blocks_share_mappings: os_stats heap bytes %zu with the blocks live, %zu "
		       "after they were freed and malloc_trim (want under 4 GiB, the segments' bytes, and smaller after "
		       "the trim)\n", s1.heap_size, s2.heap_size);
		ok = 0;
	}
	if (os_heap_check() != 0) {
		printf("FAIL brk_blocked/medium_blocks_share_mappings: os_heap_check failed\n");
		ok = 0;
	}
	if (ok)
		printf("PASS brk_blocked/medium_blocks_share_mappings\n");
	return ok ? 0 : 1;
}

/* Hazard: once the heap goes on in a mapped break, its range runs from the break to that mapping, and the
 * program's other mappings (and osmem's own mapped blocks) lie between: an address there is not the heap's and
 * may not be readable. The heap keeps a table of its segments (src/heap.c, in_segments) for both of its tests:
 * osm_in_heap, which decides whether a pointer given to free is a heap block (the fault-injection tests, which
 * wall the break in at its second call, aborted with "realloc(): invalid pointer" on mapped blocks without it),
 * and hdr_in_heap, which decides whether a header's link may be followed. A PROT_NONE page is mapped in the gap:
 * a free of an address in it is an invalid pointer, and a heap block whose `next` the program pointed into it is
 * a corrupted header; either read of the page would be a SIGSEGV inside osmem. */
static char *gap_hole;

static void free_in_gap(void)
{
	tu_say_addr(gap_hole + 64);
	v_free(gap_hole + 64);
}

static void free_block_linked_into_gap(void)
{
	char *p = v_malloc(20000); /* a core block of the mapped break (the medium caches stay off in a heap with gaps) */
	tu_say_addr(p);
	((struct block_meta *)(void *)(p - META_SIZE))->next = (struct block_meta *)(void *)(gap_hole + 64);
	v_free(p);
}

static int gap_pointer_reported(void)
{
	void *big = v_malloc((size_t)8 << 20); /* a mapped block, as likely as not inside the heap's range now */
	if (!big)
		return fail("NULL (8 MiB)", 0, (size_t)8 << 20);
	memset(big, 7, (size_t)8 << 20);
	big = v_realloc(big, (size_t)9 << 20);
	if (!big)
		return fail("realloc NULL (9 MiB)", 0, (size_t)9 << 20);
	v_free(big);
	/* a page between the break (walled in) and a heap block of the mapped break: inside the heap's range, not in
	 * a segment of it */
	enum { TRIES = 64 };
	char *held[TRIES], *blk = NULL, *hole = MAP_FAILED;
	uintptr_t lo = (uintptr_t)sbrk(0);
	int n_held = 0;
	while (n_held < TRIES && !blk) { /* the first block above the break (the segment below it may hold some) */
		char *q = v_malloc(20000);
		if (!q)
			return fail("NULL (20000)", (size_t)n_held, 20000);
		held[n_held++] = q;
		if ((uintptr_t)q > lo)
			blk = q;
	}
	uintptr_t hi = (uintptr_t)blk;
	for (int k = 2; hole == MAP_FAILED && k < 64 && hi > lo; k++) {
		uintptr_t at = (lo + (hi - lo) / k) & ~(uintptr_t)4095;
		hole = mmap((void *)at, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (hole != MAP_FAILED && hole != (char *)at) { /* a kernel that took the flag for a hint */
			munmap(hole, 4096);
			hole = MAP_FAILED;
		}
	}
	for (int k = 0; k < n_held; k++)
		v_free(held[k]);
	if (hole == MAP_FAILED || (uintptr_t)hole >= hi) {
		printf("FAIL brk_blocked/gap_pointer_reported: no page could be mapped between the break %p and the heap "
		       "block %p of the mapped break (is the heap going on there?)\n", (void *)lo, (void *)blk);
		return 1;
	}
	gap_hole = hole;
	bool ok = tu_death_case("brk_blocked", "", "gap_pointer_reported", free_in_gap, "free", "invalid pointer");
	ok &= tu_death_case("brk_blocked", "", "gap_link_reported", free_block_linked_into_gap, "free",
			    "corrupted header");
	munmap(hole, 4096);
	return ok ? 0 : 1;
}

/* Hazard: the break walled in and address space scarce (RLIMIT_AS just above what the process maps): the mapped
 * break's reservation cannot be made, and it was tried again at every request that reached the core, up to eleven
 * failing mmap calls each (64 GiB halved down to 64 MiB) before the block got its mapping. One attempt now
 * (then once a second: vbrk_off_until): 100 requests of 5000 bytes made 1,201 mmap calls before, and now one
 * reservation's attempts and a mapping each. In a child, before the parent's heap exists. */
/* A child's setup: the break walled in by a page mapped right above it, and RLIMIT_AS's soft limit (and the hard
 * one, when `hard`) 24 MiB above what the process maps; the limits before, in *saved. Exits 4 or 5 on failure. */
static void wall_and_cap(struct rlimit *saved, bool hard)
{
	uintptr_t b = ((uintptr_t)sbrk(0) + 4095) & ~(uintptr_t)4095;
	if (mmap((void *)b, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED)
		_exit(4);
	if (getrlimit(RLIMIT_AS, saved) != 0)
		_exit(5);
	struct rlimit rl = *saved;
	rl.rlim_cur = tu_vm_bytes() + ((size_t)24 << 20);
	if (hard)
		rl.rlim_max = rl.rlim_cur;
	if (setrlimit(RLIMIT_AS, &rl) != 0)
		_exit(5);
}

/* p[from..to) made blocks of 5000 bytes, written: the mmap calls they took (exits 6 on a NULL). */
static size_t mmaps_for_5000(char **p, int from, int to)
{
	struct os_stats s0, s1;
	os_stats(&s0);
	for (int i = from; i < to; i++)
		if (!(p[i] = v_malloc(5000)))
			_exit(6);
		else
			memset(p[i], i, 5000);
	os_stats(&s1);
	return s1.mmap_calls - s0.mmap_calls;
}

static void scarce_address_space(void)
{
	struct rlimit saved;
	wall_and_cap(&saved, true);
	static char *p[100];
	size_t calls = mmaps_for_5000(p, 0, 100);
	for (int i = 0; i < 100; i++)
		v_free(p[i]);
	if (calls > 250) {
		fprintf(stderr, "100 requests of 5000 bytes made %zu mmap calls (want at most 250: one failed reservation "
			"of the mapped break, then a mapping each)\n", calls);
		_exit(7);
	}
}

/* Hazard (session 57's review of the large blocks): a reservation of the mapped break refused once (address space
 * scarce for a while) was never tried again, so every heap request of the process got a mapping of its own from
 * then on, however much address space came back: 1,000 requests of 5000 bytes after the limit was lifted made
 * 1,000 mmap calls. It is tried again a second later (src/heap.c, VBRK_RETRY_NS). In a child, before the parent's
 * heap exists: the break walled in, RLIMIT_AS's soft limit 24 MiB above what is mapped, 100 requests, the limit
 * lifted, a second's wait, then 1,000 requests. */
static void reservation_tried_again(void)
{
	struct rlimit saved;
	wall_and_cap(&saved, false);
	static char *p[1100];
	(void)mmaps_for_5000(p, 0, 100); /* each mapped on its own: the reservation was refused */
	if (setrlimit(RLIMIT_AS, &saved) != 0)
		_exit(5);
	usleep(1100 * 1000);
	size_t calls = mmaps_for_5000(p, 100, 1100);
	for (int i = 0; i < 1100; i++)
		v_free(p[i]);
	if (calls > 100) {
		fprintf(stderr, "1,000 requests of 5000 bytes, a second after the address space came back, made %zu mmap "
			"calls (want at most 100: the mapped break's reservation tried again, then grown)\n", calls);
		_exit(7);
	}
}

/* Hazard (session 61's review of transient failures): the break walled in while RLIMIT_AS was lowered, so the
 * mapped break's reservation was cut to 64 MiB. Once that was used up, a new reservation landed below the heap
 * (mappings are placed top-down), was given back, and every heap block took a mapping of its own for good: 907
 * mmap calls for 1,500 blocks of 100 KB, long after the limit was lifted. The reservation now goes on where it
 * ends (it is placed in the gap above the heap, where nothing comes to sit). Here: the limit 100 MiB above what is
 * mapped for 10 requests, lifted, then 1,000 blocks of 100 KB (100 MB, past the 64 MiB): a few mmap calls. */
static void used_up_reservation(void)
{
	struct rlimit saved;
	uintptr_t b = ((uintptr_t)sbrk(0) + 4095) & ~(uintptr_t)4095;
	if (mmap((void *)b, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED)
		_exit(4);
	if (getrlimit(RLIMIT_AS, &saved) != 0)
		_exit(5);
	struct rlimit rl = saved;
	rl.rlim_cur = tu_vm_bytes() + ((size_t)100 << 20);
	if (setrlimit(RLIMIT_AS, &rl) != 0)
		_exit(5);
	static char *p[1000];
	for (int i = 0; i < 10; i++)
		if (!(p[i] = v_malloc(100000)))
			_exit(6);
	if (setrlimit(RLIMIT_AS, &saved) != 0)
		_exit(5);
	struct os_stats s0, s1;
	os_stats(&s0);
	for (int i = 10; i < 1000; i++)
		if (!(p[i] = v_malloc(100000)))
			_exit(6);
		else
			memset(p[i], i, 100000);
	os_stats(&s1);
	for (int i = 0; i < 1000; i++)
		v_free(p[i]);
	size_t calls = s1.mmap_calls - s0.mmap_calls;
	if (calls > 30) {
		fprintf(stderr, "990 blocks of 100 KB after a reservation cut to 64 MiB made %zu mmap calls (want at most "
			"30: the mapped break goes on where it ends, not a mapping a block)\n", calls);
		_exit(7);
	}
}

/* Hazard (the same review, of this session's first change): RLIMIT_DATA, which counts what is committed and not
 * what is reserved, refused the commit of a fresh reservation of the mapped break; the reservation stayed and
 * stood for the break, though the heap went on growing by brk, so no trim or growth in place ever matched the
 * break again: 54 MB kept after malloc_trim(0). Now a refused commit gives a fresh reservation back. Here:
 * RLIMIT_DATA 64 KiB above what is used, 64 requests of 100 KB refused, the limit lifted, 50 MB of blocks come and
 * go, malloc_trim(0): the heap must shrink back below 1 MiB. */
static void refused_commit(void)
{
	struct rlimit saved;
	void *warm = v_malloc(100);
	v_free(warm);
	if (getrlimit(RLIMIT_DATA, &saved) != 0)
		_exit(5);
	struct os_stats s;
	os_stats(&s);
	char buf[4096] = "";
	tu_read_file("/proc/self/status", buf, sizeof buf);
	char *d = strstr(buf, "VmData:");
	if (!d)
		_exit(5);
	struct rlimit rl = saved;
	rl.rlim_cur = (strtoul(d + 7, NULL, 10) + 64) * 1024;
	if (setrlimit(RLIMIT_DATA, &rl) != 0)
		_exit(5);
	static char *p[500];
	for (int i = 0; i < 64; i++)
		p[i] = v_malloc(100000);
	for (int i = 0; i < 64; i++)
		v_free(p[i]);
	if (setrlimit(RLIMIT_DATA, &saved) != 0)
		_exit(5);
	for (int r = 0; r < 3; r++) {
		for (int i = 0; i < 500; i++)
			if (!(p[i] = v_malloc(100000)))
				_exit(6);
			else
				memset(p[i], 1, 100000);
		for (int i = 499; i >= 0; i--)
			v_free(p[i]);
	}
	malloc_trim(0);
	os_stats(&s);
	if (s.heap_size > ((size_t)1 << 20)) {
		fprintf(stderr, "after a commit refused under RLIMIT_DATA, 50 MB of blocks freed and malloc_trim(0) left a "
			"heap of %zu bytes (want under 1 MiB: the break no longer matched the heap's end)\n", s.heap_size);
		_exit(7);
	}
}

int main(void)
{
	if (!tu_death_case("brk_blocked", "", "scarce_address_space_tried_once", scarce_address_space, NULL, NULL))
		return 1;
	if (!tu_death_case("brk_blocked", "", "reservation_tried_again_after_refusal", reservation_tried_again, NULL,
			   NULL))
		return 1;
	if (!tu_death_case("brk_blocked", "", "used_up_reservation_goes_on", used_up_reservation, NULL, NULL))
		return 1;
	if (!tu_death_case("brk_blocked", "", "refused_commit_gives_reservation_back", refused_commit, NULL, NULL))
		return 1;
	/* a heap block from the break first (the heap then has a segment below the wall, and one above it once it goes
	 * on in a mapped break: gap_pointer_reported), then the break as it is now and a page mapped right above it */
	unsigned char *below = v_malloc(100000);
	if (!below)
		return fail("NULL (the block below the wall)", 0, 100000);
	memset(below, 0x5a, 100000);
	uintptr_t brk_now = (uintptr_t)sbrk(0), page = (uintptr_t)sysconf(_SC_PAGESIZE);
	void *wall = mmap((void *)((brk_now + page - 1) & ~(page - 1)), page, PROT_READ,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (wall == MAP_FAILED) {
		printf("FAIL brk_blocked/setup: cannot map above the break: %s\n", strerror(errno));
		return 1;
	}
	if (sbrk(4096) != (void *)-1) {
		printf("FAIL brk_blocked/setup: the break still grows past the wall\n");
		return 1;
	}
	for (size_t round = 0; round < 2; round++) {
		for (size_t i = 0; i < N; i++) {
			size_t n = i % 3 == 0 ? 64 : i % 3 == 1 ? 100 + (i * 37) % 8000 : 16 + (i * 101) % 60000;
			unsigned char *p = i % 5 == 0 ? v_calloc(1, n) : v_malloc(n);
			if (!p)
				return fail("NULL", i, n);
			if (i % 5 == 0)
				for (size_t k = 0; k < n; k++)
					if (p[k])
						return fail("calloc memory not zero", i, n);
			memset(p, (int)(i & 0xff), n);
			blocks[i] = p;
			sizes[i] = n;
		}
		for (size_t i = 0; i < N; i += 7) { /* realloc growth keeps the contents */
			unsigned char *q = v_realloc(blocks[i], sizes[i] * 2 + 1000);
			if (!q)
				return fail("realloc NULL", i, sizes[i] * 2 + 1000);
			for (size_t k = 0; k < sizes[i]; k++)
				if (q[k] != (unsigned char)(i & 0xff))
					return fail("realloc lost contents", i, sizes[i]);
			blocks[i] = q;
			memset(q, (int)(i & 0xff), sizes[i] = sizes[i] * 2 + 1000);
		}
		for (size_t i = 0; i < N; i++) {
			for (size_t k = 0; k < sizes[i]; k += 61)
				if (blocks[i][k] != (unsigned char)(i & 0xff))
					return fail("contents changed", i, sizes[i]);
			v_free(blocks[i]);
		}
	}
	if (os_heap_check() != 0)
		return fail("os_heap_check failed", 0, 0);
	printf("PASS brk_blocked/every_request_served\n");
	int rc = medium_blocks_share_mappings();
	rc |= gap_pointer_reported();
	for (size_t k = 0; k < 100000; k++)
		if (below[k] != 0x5a)
			return fail("the block below the wall changed", k, 100000);
	v_free(below);
	return rc;
}
