/* test_differential: random os_* traffic with every best-fit decision computed twice.
 *
 * With BESTFIT_VERIFY the core answers each request both from its size-ordered index and from the reference walk
 * (find_best_block) and aborts if they ever differ. Around that, this test drives a million random operations
 * (os_malloc, os_calloc, os_realloc, os_free; sizes across the calloc threshold of one page and the mmap threshold
 * of 128 KiB) over a table of at most SLOTS live blocks, and checks what a user can see:
 *   - each block holds the pattern written into it (derived from its slot and a generation counter) until it is
 *     freed; os_realloc keeps min(old, new) bytes; os_calloc memory reads zero;
 *   - the header (block_meta.h ABI) says ALLOC or MAPPED as the thresholds decide, and its size is the aligned
 *     request (mapped) or at most 39 bytes more (heap: a block is split when 40 or more would remain);
 *   - live blocks never overlap; os_realloc of a heap block just freed returns NULL;
 *   - os_heap_check() == 0 every CHECK_EVERY ops (phase 1) or after every op (phase 2) and at the end.
 * Usage: test_differential [seed [divisor]]: divisor divides every phase's operation count (valgrind runs it with
 * fewer). Prints one PASS/FAIL line per phase; exits 1 on the first failure. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block_meta.h"
#include "internal.h"
#include "osmem.h"
#include "test_util.h"

#define SLOTS        500
#define PHASE1_OPS   1000000L
#define PHASE2_OPS   100000L
#define CHECK_EVERY  1000L
#define MMAP_THRESH  ((size_t)128 * 1024)
#define ALIGN8(n)    (((n) + 7) & ~(size_t)7)

struct slot {
	unsigned char *p;
	size_t n;       /* bytes requested, all of them patterned */
	uint64_t seed;  /* pattern seed: slot id and generation */
};

static struct slot table[SLOTS];
static uint64_t gen;
static uint64_t rng_state;
static const char *phase = "startup";
static long op_no;
static size_t page;

static uint64_t rng(void) { return tu_rng(&rng_state); }
static uint64_t below(uint64_t n) { return rng() % n; }

static _Noreturn void fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	printf("FAIL %s: op %ld: %s\n", phase, op_no, msg);
	fflush(stdout);
	exit(1);
}

static void verify(int s, size_t upto, const char *when)
{
	struct slot *b = &table[s];
	size_t bad = pat_check(b->p, b->seed, 0, upto);
	if (bad != upto)
		fail("slot %d (%p, %zu B) %s: byte %zu is 0x%02x, pattern says 0x%02x", s, (void *)b->p, b->n, when,
		     bad, b->p[bad], pat_byte(b->seed, bad));
}

static uint64_t new_seed(int s)
{
	gen++;
	return ((uint64_t)s << 48) ^ (gen * 0x9E3779B97F4A7C15ULL) ^ 0x5bd1e995u;
}

// ------------------------------------------------------------------
// What the header must say (docs/CLASSIC.md)
// ------------------------------------------------------------------

static void check_header(const void *p, size_t n, size_t threshold, const char *api)
{
	if ((uintptr_t)p & 7)
		fail("%s(%zu) returned %p: not 8-byte aligned", api, n, p);
	const struct block_meta *m = (const struct block_meta *)((const char *)p - META_SIZE);
	size_t s = ALIGN8(n);
	bool mapped = s + META_SIZE >= threshold;
	if (mapped) {
		if (m->status != STATUS_MAPPED || m->size != s)
			fail("%s(%zu) = %p: header status %d size %zu, want MAPPED size %zu", api, n, p, m->status,
			     m->size, s);
	} else {
		if (m->status != STATUS_ALLOC || m->size < s || m->size - s >= 40)
			fail("%s(%zu) = %p: header status %d size %zu, want ALLOC size in [%zu, %zu]", api, n, p,
			     m->status, m->size, s, s + 39);
	}
}

// ------------------------------------------------------------------
// Sizes: mostly small, some around and beyond both thresholds
// ------------------------------------------------------------------

static size_t rand_size(void)
{
	uint64_t r = below(1000);
	if (r < 850)
		return 1 + below(4096);
	if (r < 890) /* around the calloc threshold: ALIGN(n) + 32 == 4096 at n = 4057..4064 */
		return page - META_SIZE - 48 + below(96);
	if (r < 960)
		return 4097 + below(28 * 1024);
	if (r < 975) /* around the mmap threshold: ALIGN(n) + 32 == 131072 at n = 131033..131040 */
		return MMAP_THRESH - META_SIZE - 48 + below(96);
	return 1 + below(200 * 1024);
}

// ------------------------------------------------------------------
// Ghosts: freed bytes stay as they were (docs/CLASSIC.md)
// ------------------------------------------------------------------

/* The bytes of a freed heap block keep the program's pattern until an allocation hands them out again: osmem
 * writes only headers. Every freed block becomes a ghost: [p, p + n) with its pattern. When a call returns a
 * block, the ghost bytes inside it are verified (except those the call itself defines: calloc's zeros, realloc's
 * copy) and forgotten, and so are the 32 bytes before it and after it, where a header may have been written
 * (the block's own, a split remainder's). All ghosts are verified every GHOST_EVERY ops. Ghosts are kept sorted by
 * address and never overlap. */
struct ghost {
	unsigned char *p;
	size_t from, to;  /* the live part: bytes [p + from, p + to) */
	uint64_t seed;
};

static struct ghost *ghosts;
static size_t n_ghosts, cap_ghosts;
static long ghost_every = 10000;
static bool saw_unslotted; /* the fallback phase must really run without slots */

static size_t ghost_find(const unsigned char *a) /* the first ghost whose end is above a */
{
	size_t lo = 0, hi = n_ghosts;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ghosts[mid].p + ghosts[mid].to <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void ghost_insert_at(size_t i, struct ghost g)
{
	if (n_ghosts == cap_ghosts) {
		cap_ghosts = cap_ghosts ? 2 * cap_ghosts : 1024;
		ghosts = realloc(ghosts, cap_ghosts * sizeof *ghosts); /* glibc's: this test links libosmem.a */
		if (!ghosts)
			fail("out of memory for ghosts");
	}
	memmove(&ghosts[i + 1], &ghosts[i], (n_ghosts - i) * sizeof *ghosts);
	ghosts[i] = g;
	n_ghosts++;
}

static void ghost_verify(const struct ghost *g, size_t from, size_t to, const char *when)
{
	size_t bad = pat_check(g->p, g->seed, from, to);
	if (bad != to)
		fail("freed bytes changed %s: byte %zu of the block freed at %p is 0x%02x, the program left 0x%02x", when,
		     bad, (void *)g->p, g->p[bad], pat_byte(g->seed, bad));
}

static void ghost_add(const unsigned char *p, size_t n, uint64_t seed)
{
	struct ghost g = { (unsigned char *)p, 0, n, seed };
	size_t i = ghost_find(p);
	if (i < n_ghosts && ghosts[i].p + ghosts[i].from < p + n)
		fail("a block freed at %p (%zu B) overlaps bytes still free from the block freed at %p: osmem handed "
		     "out memory without the test seeing it", (void *)p, n, (void *)ghosts[i].p);
	ghost_insert_at(i, g);
}

/* Forgets the ghost bytes in [a, b); those in [va, vb) are verified first. */
static void ghost_forget(const unsigned char *a, const unsigned char *b, const unsigned char *va,
			 const unsigned char *vb, const char *when)
{
	size_t i = ghost_find(a);
	while (i < n_ghosts && ghosts[i].p + ghosts[i].from < b) {
		struct ghost *g = &ghosts[i];
		size_t lo = a > g->p + g->from ? (size_t)(a - g->p) : g->from;
		size_t hi = b < g->p + g->to ? (size_t)(b - g->p) : g->to;
		if (va) {
			size_t vlo = va > g->p + lo ? (size_t)(va - g->p) : lo;
			size_t vhi = vb < g->p + hi ? (size_t)(vb - g->p) : hi;
			if (vlo < vhi)
				ghost_verify(g, vlo, vhi, when);
		}
		struct ghost tail = *g;
		tail.from = hi;
		g->to = lo;
		bool keep_head = g->from < g->to, keep_tail = tail.from < tail.to;
		if (!keep_head) {
			memmove(g, g + 1, (n_ghosts - i - 1) * sizeof *g);
			n_ghosts--;
		} else {
			i++;
		}
		if (keep_tail) {
			ghost_insert_at(i, tail);
			i++;
		}
	}
}

/* A call returned q: its payload is handed out. [keep_from, keep_to) of it was defined by the call. */
static void ghost_reused(const unsigned char *q, size_t def_from, size_t def_to, const char *api)
{
	const struct block_meta *m = (const struct block_meta *)(q - META_SIZE);
	if (m->status != STATUS_ALLOC)
		return;
	/* verify [q, q + size) outside the defined part, then forget it and the headers on either side */
	ghost_forget(q, q + def_from, q, q + def_from, api);
	ghost_forget(q + def_to, q + m->size, q + def_to, q + m->size, api);
	ghost_forget(q - META_SIZE, q + m->size + META_SIZE, NULL, NULL, api);
}

static void ghost_check_all(void)
{
	for (size_t i = 0; i < n_ghosts; i++)
		ghost_verify(&ghosts[i], ghosts[i].from, ghosts[i].to, "while the block was free");
}

/* The block at slot s is about to be freed: its bytes become a ghost (heap blocks only: a mapping goes away). */
static void ghost_of_slot(int s)
{
	const struct slot *b = &table[s];
	const struct block_meta *m = (const struct block_meta *)(b->p - META_SIZE);
	if (m->status == STATUS_ALLOC)
		ghost_add(b->p, b->n, b->seed);
}

// ------------------------------------------------------------------
// Operations
// ------------------------------------------------------------------

static void do_alloc(int s)
{
	struct slot *b = &table[s];
	size_t n = rand_size();
	uint64_t k = below(100);
	void *p;
	if (k < 45) {
		p = os_malloc(n);
		if (!p)
			fail("os_malloc(%zu) returned NULL (errno %d)", n, errno);
		check_header(p, n, MMAP_THRESH, "os_malloc");
		ghost_reused(p, 0, 0, "os_malloc");
	} else if (k < 80) {
		/* split n into nmemb * size in a few ways */
		size_t nmemb = n, size = 1;
		if (k < 55)
			nmemb = 1, size = n;
		else if (n % 8 == 0 && k < 70)
			nmemb = n / 8, size = 8;
		p = os_calloc(nmemb, size);
		if (!p)
			fail("os_calloc(%zu, %zu) returned NULL (errno %d)", nmemb, size, errno);
		check_header(p, n, page, "os_calloc");
		ghost_reused(p, 0, ((const struct block_meta *)((const char *)p - META_SIZE))->size, "os_calloc");
		const unsigned char *c = p;
		size_t i = 0;
		for (uint64_t w; i + 8 <= n; i += 8) {
			memcpy(&w, c + i, 8);
			if (w)
				break;
		}
		for (; i < n; i++)
			if (c[i])
				fail("os_calloc(%zu, %zu) = %p: byte %zu is 0x%02x, not zero", nmemb, size, p, i, c[i]);
	} else {
		p = os_realloc(NULL, n);
		if (!p)
			fail("os_realloc(NULL, %zu) returned NULL (errno %d)", n, errno);
		check_header(p, n, MMAP_THRESH, "os_realloc(NULL)");
		ghost_reused(p, 0, 0, "os_realloc(NULL)");
	}
	b->p = p;
	b->n = n;
	b->seed = new_seed(s);
	pat_fill(b->p, b->seed, 0, n);
}

static void do_free(int s)
{
	struct slot *b = &table[s];
	verify(s, b->n, "before os_free");
	ghost_of_slot(s);
	os_free(b->p);
	b->p = NULL;
}

/* Frees a heap block, then reallocs the now-free block: rule 3 says NULL and no change. */
static void do_free_then_realloc(int s)
{
	struct slot *b = &table[s];
	const struct block_meta *m = (const struct block_meta *)(b->p - META_SIZE);
	if (m->status != STATUS_ALLOC) {
		do_free(s);
		return;
	}
	verify(s, b->n, "before os_free");
	ghost_of_slot(s);
	os_free(b->p);
	size_t size_before = m->size;
	void *q = os_realloc(b->p, 1 + below(4096));
	if (q)
		fail("os_realloc(%p) of a block just freed returned %p, want NULL", (void *)b->p, q);
	if (m->status != STATUS_FREE || m->size != size_before)
		fail("os_realloc(%p) of a free block changed its header (status %d, size %zu -> %zu)", (void *)b->p,
		     m->status, size_before, m->size);
	b->p = NULL;
}

static void do_realloc(int s, bool to_zero)
{
	struct slot *b = &table[s];
	if (to_zero) {
		verify(s, b->n, "before os_realloc(p, 0)");
		ghost_of_slot(s);
		void *q = os_realloc(b->p, 0);
		if (q)
			fail("os_realloc(%p, 0) returned %p, want NULL", (void *)b->p, q);
		b->p = NULL;
		return;
	}
	size_t n;
	uint64_t k = below(100);
	if (k < 30) /* small steps: the in-place rules (shrink, split, grow at the end, absorb) */
		n = b->n > 64 && below(2) ? b->n - 1 - below(b->n < 512 ? b->n - 1 : 512) : b->n + 1 + below(512);
	else
		n = rand_size();
	verify(s, b->n, "before os_realloc");
	void *old = b->p;
	const struct block_meta *om = (const struct block_meta *)(b->p - META_SIZE);
	bool old_heap = om->status == STATUS_ALLOC;
	size_t old_size = om->size;
	void *q = os_realloc(b->p, n);
	if (!q)
		fail("os_realloc(%p, %zu -> %zu) returned NULL (errno %d)", old, b->n, n, errno);
	check_header(q, n, MMAP_THRESH, "os_realloc");
	/* osmem copies min(old size, new aligned size) bytes: the old block's slack past b->n comes along */
	size_t kept = old_size < ALIGN8(n) ? old_size : ALIGN8(n);
	if (q != old && old_heap) {
		/* moved: the old block is free now, with the program's bytes in it. Rule 8 may have grown it by free
		 * neighbours before it moved (its header says by how much), and osmem copied that much. */
		if (om->size > old_size)
			kept = om->size < ALIGN8(n) ? om->size : ALIGN8(n);
		ghost_add(old, b->n, b->seed);
		ghost_reused(q, 0, kept, "os_realloc (moved)");
	} else if (q == old && old_heap) {
		/* in place: what it absorbed was free (verified), what it split off is free again */
		ghost_reused(q, 0, kept, "os_realloc (in place)");
		const struct block_meta *nm = (const struct block_meta *)((const unsigned char *)q - META_SIZE);
		if (nm->size < b->n) /* shrunk: the bytes past the new end are a free block's now */
			ghost_add(q, b->n, b->seed), ghost_forget(q, (const unsigned char *)q + nm->size + META_SIZE,
								  NULL, NULL, "os_realloc (shrink)");
	} else {
		ghost_reused(q, 0, kept, "os_realloc (from a mapping)");
	}
	b->p = q;
	size_t keep = n < b->n ? n : b->n;
	size_t bad = pat_check(b->p, b->seed, 0, keep);
	if (bad != keep)
		fail("os_realloc(%p, %zu -> %zu) = %p: preserved byte %zu is 0x%02x, was 0x%02x", old, b->n, n, q, bad,
		     b->p[bad], pat_byte(b->seed, bad));
	if (n > b->n)
		pat_fill(b->p, b->seed, b->n, n);
	b->n = n;
}

static void random_op(void)
{
	int s = (int)below(SLOTS);
	if (!table[s].p) {
		do_alloc(s);
		return;
	}
	uint64_t k = below(100);
	if (k < 35)
		do_free(s);
	else if (k < 40)
		do_free_then_realloc(s);
	else if (k < 45)
		do_realloc(s, true);
	else
		do_realloc(s, false);
}

// ------------------------------------------------------------------
// Whole-table checks
// ------------------------------------------------------------------

static int cmp_range(const void *a, const void *b)
{
	const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
	return (x->p > y->p) - (x->p < y->p);
}

/* Live payloads (with their headers) must not overlap. */
static void check_overlap(void)
{
	static const struct slot *live[SLOTS];
	size_t k = 0;
	for (int s = 0; s < SLOTS; s++)
		if (table[s].p)
			live[k++] = &table[s];
	qsort(live, k, sizeof live[0], cmp_range);
	for (size_t i = 1; i < k; i++) {
		const struct block_meta *m = (const struct block_meta *)(live[i - 1]->p - META_SIZE);
		if (live[i - 1]->p + m->size + META_SIZE > live[i]->p)
			fail("live blocks overlap: %p (%zu B) and %p", (void *)live[i - 1]->p, m->size,
			     (void *)live[i]->p);
	}
}

static void heap_check(void)
{
	if (os_heap_check() != 0)
		fail("os_heap_check() failed (details on stderr)");
}

static void run_phase(const char *name, long ops, long check_every)
{
	phase = name;
	tu_test_name = name;
	for (op_no = 0; op_no < ops; op_no++) {
		random_op();
		if (osm_heap.unslotted)
			saw_unslotted = true;
		if ((op_no + 1) % ghost_every == 0)
			ghost_check_all();
		if ((op_no + 1) % check_every == 0) {
			heap_check();
			if ((op_no + 1) % CHECK_EVERY == 0)
				check_overlap();
		}
	}
	heap_check();
	check_overlap();
	ghost_check_all();
	printf("PASS %s\n", name);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	uint64_t seed = 20240601;
	long divisor = 1;
	if (argc > 1)
		seed = strtoull(argv[1], NULL, 0);
	if (argc > 2 && (divisor = strtol(argv[2], NULL, 0)) < 1)
		divisor = 1;
	rng_state = seed;
	page = (size_t)sysconf(_SC_PAGESIZE);
	fprintf(stderr, "test_differential: seed %llu\n", (unsigned long long)seed);
	tu_op_counter = &op_no;
	tu_catch_crashes();

	osm_set_bestfit_mode(BESTFIT_VERIFY);
	run_phase("bestfit_verify_1M_ops", PHASE1_OPS / divisor, CHECK_EVERY);
	run_phase("heap_check_every_op_100k_ops", PHASE2_OPS / divisor, 1);

	/* The classic side storage full: free blocks without a slot, and the seed's walks over them. The same
	 * decisions (BESTFIT_VERIFY still checks the walk against the index while the index holds everything) and
	 * the same freed bytes. */
	osm_set_slot_limit(64);
	ghost_every = 1000;
	saw_unslotted = false;
	run_phase("slot_storage_full_fallback_100k_ops", PHASE2_OPS / divisor, 100);
	if (!saw_unslotted)
		printf("FAIL slot_storage_full_fallback_reached: no free block was ever without a slot\n");
	else
		printf("PASS slot_storage_full_fallback_reached\n");
	osm_set_slot_limit(0);

	/* free everything: the heap must still check out */
	phase = "free_all";
	tu_test_name = phase;
	for (int s = 0; s < SLOTS; s++)
		if (table[s].p)
			do_free(s);
	os_malloc(16); /* a last request runs the coalescing pass over everything just freed */
	heap_check();
	printf("PASS free_all\n");
	return 0;
}
