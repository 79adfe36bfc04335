/* apis: one entry point of the malloc family, churned at one range of sizes, in T threads: the scan that
 * bench/apis.py runs over every entry point, size range and thread count, to find the pathological cells a
 * ranked suite of a few workloads does not visit (session 42 found two: aligned_alloc of 64 KiB..4 MiB mapped every
 * block afresh, 15 times glibc's time, and threaded medium reallocs queued on the core's lock, 3 times).
 *
 * Each thread owns LIVE slots; an operation picks one at random, frees what it holds (or, for `realloc`,
 * reallocates it to the new size) and allocates a new block of a size drawn log-uniformly from [LO, HI], writes
 * its tag in its first 8 bytes, one byte in each 4 KiB page and its last byte (its pages really are used), and
 * checks them all before the block is freed or reallocated (realloc: the bytes the smaller size keeps).
 *
 * With THREADS written Nr (remote), the N threads share one table of N x LIVE slots instead: an operation swaps its
 * new block into a random slot (an atomic exchange) and frees (or, for realloc, first takes and reallocates) what
 * was there, most often a block another thread allocated: every entry point's remote free. Each block then keeps
 * its size in bytes 8..15, for whoever frees it (sizes from 24 bytes).
 *
 * Usage: apis SCALE KIND LO HI THREADS
 *   KIND: malloc, calloc (also checks the zeros it writes over), aligned64 (aligned_alloc(64, n rounded up)),
 *         aligned4096, posix_memalign64, memalign256, valloc, realloc
 * Checksum: the sum of the tags checked; the same under every allocator.
 * metric secs S: the time of the churn alone. */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common.h"

#define LIVE     64
#define BASE_OPS 400000.0 /* pages written are what cost: the op count is scaled by the range (ops_for) */

static const char *kind;
static size_t lo, hi;
static long ops;
static int nthreads;

static void *get(size_t n)
{
	void *p = NULL;
	if (!strcmp(kind, "malloc") || !strcmp(kind, "realloc"))
		return xmalloc(n);
	else if (!strcmp(kind, "calloc"))
		p = calloc(1, n);
	else if (!strcmp(kind, "aligned64"))
		p = aligned_alloc(64, (n + 63) & ~(size_t)63);
	else if (!strcmp(kind, "aligned4096"))
		p = aligned_alloc(4096, (n + 4095) & ~(size_t)4095);
	else if (!strcmp(kind, "posix_memalign64")) {
		if (posix_memalign(&p, 64, n))
			p = NULL;
	} else if (!strcmp(kind, "memalign256"))
		p = memalign(256, n);
	else if (!strcmp(kind, "valloc"))
		p = valloc(n);
	else {
		fprintf(stderr, "FAIL unknown kind %s\n", kind);
		exit(2);
	}
	if (!p) {
		fprintf(stderr, "FAIL %s(%zu) returned NULL\n", kind, n);
		exit(1);
	}
	return p;
}

static size_t alignment(void)
{
	return !strcmp(kind, "aligned64") || !strcmp(kind, "posix_memalign64") ? 64 : !strcmp(kind, "memalign256") ? 256
	       : !strcmp(kind, "aligned4096") || !strcmp(kind, "valloc") ? 4096 : 16;
}

/* the tag in bytes 0..7 (n >= 8), page_byte at every page start after the first and at the last byte */
static void fill(char *p, size_t n, uint64_t tag)
{
	memcpy(p, &tag, 8);
	fill_pages(p, 8, n, tag);
}

struct worker {
	int index;
	uint64_t sum;
};

/* Remote mode (THREADS ending in r): the shared table. */
static int remote;
static char *_Atomic *shared;

/* A new block of n bytes, checked as the entry point promises (alignment, calloc's zeros). */
static char *fresh(size_t n)
{
	char *p = get(n);
	size_t a = alignment();
	if ((uintptr_t)p & (a - 1))
		fail("misaligned block", p, a, (uintptr_t)p & (a - 1));
	if (!strcmp(kind, "calloc"))
		for (size_t j = 0; j < n; j += 4096)
			if (p[j] || p[n - 1])
				fail("calloc's block not zeroed", p + j, 0, (unsigned char)p[j]);
	return p;
}

/* The bytes realloc kept of a block that held `size` bytes under tag `old`: its first 8, the page bytes below
 * `keep`, and its last byte when the block grew. */
static void check_kept(const char *q, uint64_t old, size_t size, size_t keep)
{
	uint64_t got;
	memcpy(&got, q, 8);
	if (got != old)
		fail("realloc lost the tag", q, old, got);
	for (size_t j = 4096; j < keep; j += 4096)
		if (q[j] != page_byte(old, j))
			fail("realloc lost a page byte", q + j, (unsigned char)page_byte(old, j), (unsigned char)q[j]);
	if (keep == size && keep > 8 && q[keep - 1] != page_byte(old, keep - 1))
		fail("realloc lost the last byte", q + keep - 1, (unsigned char)page_byte(old, keep - 1),
		     (unsigned char)q[keep - 1]);
}

static size_t size_of(const char *p)
{
	size_t n;
	memcpy(&n, p + 8, 8);
	return n;
}

/* a block's tag, page bytes and (remote mode) its size in bytes 8..15 */
static void fill_sized(char *p, size_t n, uint64_t tag)
{
	fill(p, n, tag);
	memcpy(p + 8, &n, 8);
}

static void *run_remote(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = 0x7e3 + (uint64_t)w->index * 0x9e3779b97f4a7c15ull, seq = 0;
	int is_realloc = !strcmp(kind, "realloc");
	size_t slots = (size_t)LIVE * (size_t)nthreads;
	for (long k = 0; k < ops; k++) {
		size_t i = (size_t)(rnd(&rng) % slots);
		size_t n = rnd_log(&rng, lo, hi);
		n = n < 24 ? 24 : n;
		uint64_t tag = mix64(((uint64_t)w->index << 40) | seq++);
		char *q;
		char *old = is_realloc ? atomic_exchange(&shared[i], NULL) : NULL;
		if (old) {
			size_t size = size_of(old);
			w->sum += check_pages(old, size);
			uint64_t t;
			memcpy(&t, old, 8);
			q = realloc(old, n);
			if (!q) {
				fprintf(stderr, "FAIL realloc(%zu) returned NULL\n", n);
				exit(1);
			}
			check_kept(q, t, size, size < n ? size : n);
		} else {
			q = fresh(n);
		}
		fill_sized(q, n, tag);
		char *prev = atomic_exchange(&shared[i], q);
		if (prev) {
			w->sum += check_pages(prev, size_of(prev));
			free(prev);
		}
	}
	return NULL;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	char *slot[LIVE] = { 0 };
	size_t size[LIVE] = { 0 };
	uint64_t rng = 0x51ed + (uint64_t)w->index * 0x9e3779b97f4a7c15ull, seq = 0;
	int is_realloc = !strcmp(kind, "realloc");
	for (long k = 0; k < ops; k++) {
		int i = (int)(rnd(&rng) % LIVE);
		size_t n = rnd_log(&rng, lo, hi);
		uint64_t tag = mix64(((uint64_t)w->index << 40) | seq++);
		if (slot[i] && is_realloc) {
			w->sum += check_pages(slot[i], size[i]);
			uint64_t old;
			memcpy(&old, slot[i], 8);
			char *q = realloc(slot[i], n);
			if (!q) {
				fprintf(stderr, "FAIL realloc(%zu) returned NULL\n", n);
				exit(1);
			}
			check_kept(q, old, size[i], size[i] < n ? size[i] : n);
			slot[i] = q;
		} else {
			if (slot[i]) {
				w->sum += check_pages(slot[i], size[i]);
				free(slot[i]);
			}
			slot[i] = fresh(n);
		}
		size[i] = n;
		fill(slot[i], n, tag);
	}
	for (int i = 0; i < LIVE; i++)
		if (slot[i]) {
			w->sum += check_pages(slot[i], size[i]);
			free(slot[i]);
		}
	return NULL;
}

/* Operations per thread: about the same bytes touched for every range, so that a cell of large blocks takes about
 * as long as one of small ones (a page write per 4 KiB is what the large ones cost). */
static long ops_for(double scale)
{
	double mean = (double)(hi - lo) / (__builtin_log((double)hi + 1) - __builtin_log((double)lo)); /* log-uniform */
	double per = mean < 4096 ? 1 : mean / 4096;
	double n = BASE_OPS * scale / per / nthreads;
	return n < 16 ? 16 : (long)n;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: apis SCALE KIND LO HI THREADS\n");
		return 2;
	}
	double scale = scale_arg(argc, argv);
	kind = argv[2];
	lo = strtoul(argv[3], NULL, 0);
	hi = strtoul(argv[4], NULL, 0);
	nthreads = atoi(argv[5]);
	remote = strchr(argv[5], 'r') != NULL;
	if (lo < 16 || hi < lo || nthreads < 1 || nthreads > 64) {
		fprintf(stderr, "FAIL bad arguments\n");
		return 2;
	}
	ops = ops_for(scale);
	if (remote && !(shared = calloc((size_t)LIVE * (size_t)nthreads, sizeof *shared))) {
		fprintf(stderr, "FAIL the shared table\n");
		return 1;
	}
	struct worker w[64];
	pthread_t t[64];
	double t0 = now_s();
	for (int i = 0; i < nthreads; i++) {
		w[i].index = i;
		w[i].sum = 0;
		if (pthread_create(&t[i], NULL, remote ? run_remote : run, &w[i])) {
			fprintf(stderr, "FAIL pthread_create\n");
			return 1;
		}
	}
	uint64_t sum = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		sum += w[i].sum;
	}
	for (size_t i = 0; remote && i < (size_t)LIVE * (size_t)nthreads; i++)
		if (shared[i]) {
			sum += check_pages(shared[i], size_of(shared[i]));
			free(shared[i]);
		}
	double secs = now_s() - t0;
	print_checksum(sum);
	printf("metric secs %.4f\n", secs);
	return 0;
}
