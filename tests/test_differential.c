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
 * Usage: test_differential [seed]. Prints one PASS/FAIL line per phase; exits 1 on the first failure. */
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
static const char *phase;
static long op_no;
static size_t page;

static uint64_t rng(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

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

/* A crash (the core's own best-fit mismatch trap is SIGILL, a bad-pointer report is SIGABRT) still gets its FAIL line,
 * written with write(2); the previous action is then restored, so the fault repeats under it (or under a
 * sanitizer's handler) as if this one were not there. */
static struct sigaction old_actions[NSIG];

static void crash_handler(int sig)
{
	char buf[160], num[24], *p = buf;
	const char *parts[] = { "FAIL ", phase ? phase : "startup", ": killed by signal ", NULL };
	for (int i = 0; parts[i]; i++)
		for (const char *c = parts[i]; *c; c++)
			*p++ = *c;
	int k = 0;
	for (unsigned v = (unsigned)sig; k == 0 || v; v /= 10)
		num[k++] = (char)('0' + v % 10);
	while (k)
		*p++ = num[--k];
	for (const char *c = " at op "; *c; c++)
		*p++ = *c;
	for (unsigned long v = (unsigned long)op_no; k == 0 || v; v /= 10)
		num[k++] = (char)('0' + v % 10);
	while (k)
		*p++ = num[--k];
	*p++ = '\n';
	ssize_t w = write(STDOUT_FILENO, buf, (size_t)(p - buf));
	(void)w;
	sigaction(sig, &old_actions[sig], NULL);
	if (sig == SIGABRT)
		raise(sig);
}

static void catch_crashes(void)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = crash_handler;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, &old_actions[sigs[i]]);
}

// ------------------------------------------------------------------
// Patterns: byte i of a block is byte (i & 7) of word(seed, i >> 3), so any range can be filled or checked alone
// ------------------------------------------------------------------

static inline uint64_t pat_word(uint64_t seed, size_t w)
{
	return seed ^ ((uint64_t)w * 0xD6E8FEB86659FD93ULL);
}

static inline unsigned char pat_byte(uint64_t seed, size_t i)
{
	return (unsigned char)(pat_word(seed, i >> 3) >> (8 * (i & 7)));
}

static void fill(unsigned char *p, uint64_t seed, size_t from, size_t to)
{
	size_t i = from;
	for (; i < to && (i & 7); i++)
		p[i] = pat_byte(seed, i);
	for (; i + 8 <= to; i += 8) {
		uint64_t w = pat_word(seed, i >> 3);
		memcpy(p + i, &w, 8);
	}
	for (; i < to; i++)
		p[i] = pat_byte(seed, i);
}

/* Returns the first offset in [from, to) that does not hold the pattern, or `to`. */
static size_t check(const unsigned char *p, uint64_t seed, size_t from, size_t to)
{
	size_t i = from;
	for (; i < to && (i & 7); i++)
		if (p[i] != pat_byte(seed, i))
			return i;
	for (; i + 8 <= to; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w != pat_word(seed, i >> 3))
			break;
	}
	for (; i < to; i++)
		if (p[i] != pat_byte(seed, i))
			return i;
	return to;
}

static void verify(int s, size_t upto, const char *when)
{
	struct slot *b = &table[s];
	size_t bad = check(b->p, b->seed, 0, upto);
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
// What the header must say (SPEC.md Part 1)
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
	}
	b->p = p;
	b->n = n;
	b->seed = new_seed(s);
	fill(b->p, b->seed, 0, n);
}

static void do_free(int s)
{
	struct slot *b = &table[s];
	verify(s, b->n, "before os_free");
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
	void *q = os_realloc(b->p, n);
	if (!q)
		fail("os_realloc(%p, %zu -> %zu) returned NULL (errno %d)", old, b->n, n, errno);
	check_header(q, n, MMAP_THRESH, "os_realloc");
	b->p = q;
	size_t keep = n < b->n ? n : b->n;
	size_t bad = check(b->p, b->seed, 0, keep);
	if (bad != keep)
		fail("os_realloc(%p, %zu -> %zu) = %p: preserved byte %zu is 0x%02x, was 0x%02x", old, b->n, n, q, bad,
		     b->p[bad], pat_byte(b->seed, bad));
	if (n > b->n)
		fill(b->p, b->seed, b->n, n);
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
	for (op_no = 0; op_no < ops; op_no++) {
		random_op();
		if ((op_no + 1) % check_every == 0) {
			heap_check();
			if ((op_no + 1) % CHECK_EVERY == 0)
				check_overlap();
		}
	}
	heap_check();
	check_overlap();
	printf("PASS %s\n", name);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	uint64_t seed = 20240601;
	if (argc > 1)
		seed = strtoull(argv[1], NULL, 0);
	rng_state = seed;
	page = (size_t)sysconf(_SC_PAGESIZE);
	fprintf(stderr, "test_differential: seed %llu\n", (unsigned long long)seed);
	catch_crashes();

	osm_set_bestfit_mode(BESTFIT_VERIFY);
	run_phase("bestfit_verify_1M_ops", PHASE1_OPS, CHECK_EVERY);
	run_phase("heap_check_every_op_100k_ops", PHASE2_OPS, 1);

	/* free everything: the heap must still check out */
	phase = "free_all";
	for (int s = 0; s < SLOTS; s++)
		if (table[s].p)
			do_free(s);
	os_malloc(16); /* a last request runs the coalescing pass over everything just freed */
	heap_check();
	printf("PASS free_all\n");
	return 0;
}
