/* malloc_stress: 8 threads of random malloc / calloc / realloc / free traffic on the one heap, with blocks freed by
 * threads other than the one that allocated them.
 *
 * Sizes run from 8 B to 1 MiB, skewed small (most under 256 B, a few past the 128 KiB mmap threshold). Each thread
 * keeps a table of live blocks; each block carries a pattern derived from a per-block seed, verified in full
 * before every free and over the kept prefix after every realloc (calloc memory must also read zero first). Threads
 * pass blocks to each other through one shared exchange guarded by a mutex: the receiver verifies a block it takes
 * and then frees it, reallocs it or keeps it. Each thread stops after OPS ops or TIME_LIMIT seconds. At the end the
 * main thread verifies and frees what is left (in the tables and the exchange), and os_heap_check() must be 0;
 * threads also run os_heap_check() now and then while the others allocate, and (the malloc family) two of them
 * malloc_trim(0).
 *
 * Alignment: 16 bytes for the malloc family; 8 with -DUSE_OS_API (docs/CLASSIC.md's granule, which is what
 * libosmem.a gives; the drop-in's os_* give 16, which satisfies it).
 * Built normally it uses the malloc family (libosmem-malloc.so: malloc is osmem's), including the aligned
 * functions. With -DUSE_OS_API it uses os_malloc / os_calloc / os_realloc / os_free only: that variant is meant
 * for ThreadSanitizer builds, where malloc belongs to TSan. Only the allocator is shared between threads without
 * the mutex; everything else goes through it (or is per thread, read by main after join), so any TSan report is
 * about the library.
 * Usage: malloc_stress [seed]. Prints `PASS stress/...` or `FAIL stress/...: why`. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "osmem.h"

#ifdef USE_OS_API
#define A_MALLOC(n)     os_malloc(n)
#define A_CALLOC(m, n)  os_calloc(m, n)
#define A_REALLOC(p, n) os_realloc(p, n)
#define A_FREE(p)       os_free(p)
#define API_NAME        "os_api"
/* docs/CLASSIC.md: payloads are multiples of 8 in the classic API (libosmem.so/.a); the drop-in's are 16 */
#define MIN_ALIGN       8
#else
#include <malloc.h>
#define A_MALLOC(n)     malloc(n)
#define A_CALLOC(m, n)  calloc(m, n)
#define A_REALLOC(p, n) realloc(p, n)
#define A_FREE(p)       free(p)
#define API_NAME        "malloc"
#define MIN_ALIGN       16
/* malloc_trim now and then from two of the threads: it rebuilds the caller's page free lists around the 4 KiB it
 * gives back while other threads free into those pages, and every other thread trims its own pages later
 * (front.c, page_trim, heap_trim_late) */
#define TRIM_EVERY  15000L
#endif

#define THREADS     8
#define SLOTS       384
#define XCAP        64
#define OPS         3000000L
#define TIME_LIMIT  4.0
#define CHECK_EVERY 2000L

struct blk {
	unsigned char *p;
	size_t n;
	uint64_t seed;
};

/* The exchange: any thread puts a block in, any thread takes one out. */
static pthread_mutex_t x_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk x_items[XCAP];
static int x_count;

static atomic_int stop_all; /* set by the first thread that fails */

struct worker {
	int id;
	pthread_t tid;
	uint64_t rng;
	uint64_t next_seed;
	struct blk t[SLOTS];
	long ops, allocs, frees, reallocs, given, taken, foreign_frees, checks, mapped;
	char error[512];
};

static struct worker workers[THREADS];
static double t0;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* 8 B .. 1 MiB, skewed small. */
static size_t rand_size(uint64_t *s)
{
	uint64_t r = rnd(s), k = r % 1000;
	r >>= 10;
	if (k < 750)
		return 8 + r % 249;          /* 8 .. 256 */
	if (k < 940)
		return 257 + r % 3840;       /* .. 4 KiB */
	if (k < 985)
		return 4097 + r % 61440;     /* .. 64 KiB */
	if (k < 996)
		return 65537 + r % 196608;   /* .. 256 KiB: across the mmap threshold */
	return 262145 + r % 786432;          /* .. 1 MiB */
}

// ------------------------------------------------------------------
// Patterns: 8-byte words from the seed and the word's index
// ------------------------------------------------------------------

static inline uint64_t word(uint64_t seed, size_t i)
{
	uint64_t z = seed ^ (i * 0xD1B54A32D192ED03ull);
	z ^= z >> 29;
	return z * 0x9E3779B97F4A7C15ull;
}

static void fill(unsigned char *p, size_t from, size_t to, uint64_t seed)
{
	size_t i = from;
	for (; i < to && (i & 7); i++)
		p[i] = (unsigned char)(word(seed, i >> 3) >> ((i & 7) * 8));
	for (; i + 8 <= to; i += 8) {
		uint64_t w = word(seed, i >> 3);
		memcpy(p + i, &w, 8);
	}
	for (; i < to; i++)
		p[i] = (unsigned char)(word(seed, i >> 3) >> ((i & 7) * 8));
}

/* Index of the first byte of [0, n) off the pattern, or n. */
static size_t check(const unsigned char *p, size_t n, uint64_t seed)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w, e = word(seed, i >> 3);
		memcpy(&w, p + i, 8);
		if (w != e)
			break;
	}
	for (; i < n; i++)
		if (p[i] != (unsigned char)(word(seed, i >> 3) >> ((i & 7) * 8)))
			return i;
	return n;
}

static bool failw(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool failw(struct worker *w, const char *fmt, ...)
{
	if (!w->error[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->error, sizeof w->error, fmt, ap);
		va_end(ap);
	}
	atomic_store(&stop_all, 1);
	return false;
}

static bool verify_blk(struct worker *w, const struct blk *b, const char *when)
{
	size_t bad = check(b->p, b->n, b->seed);
	if (bad != b->n)
		return failw(w, "thread %d: block %p of %zu bytes (seed %llx) corrupt at byte %zu %s", w->id,
			     (void *)b->p, b->n, (unsigned long long)b->seed, bad, when);
	return true;
}

// ------------------------------------------------------------------
// The operations
// ------------------------------------------------------------------

static bool op_alloc(struct worker *w, struct blk *b)
{
	size_t n = rand_size(&w->rng);
	uint64_t kind = rnd(&w->rng) % 16;
	unsigned char *p;
	const char *fn = "malloc";
	if (kind < 3) {
		fn = "calloc";
		size_t m = 1 + rnd(&w->rng) % 4;
		n = (n + m - 1) / m * m;
		p = A_CALLOC(m, n / m);
		if (p) {
			for (size_t i = 0; i < n; i++)
				if (p[i])
					return failw(w, "thread %d: calloc(%zu, %zu) = %p: byte %zu is 0x%02x", w->id, m,
						     n / m, (void *)p, i, p[i]);
		}
	}
#ifndef USE_OS_API
	else if (kind == 3) {
		fn = "posix_memalign";
		size_t a = (size_t)1 << (3 + rnd(&w->rng) % 10); /* 8 .. 4096 */
		void *q = NULL;
		int rc = posix_memalign(&q, a, n);
		p = rc ? NULL : q;
		if (p && ((uintptr_t)p & (a - 1)))
			return failw(w, "thread %d: posix_memalign(%zu, %zu) = %p is misaligned", w->id, a, n,
				     (void *)p);
	} else if (kind == 4) {
		fn = "aligned_alloc";
		size_t a = (size_t)1 << (4 + rnd(&w->rng) % 9); /* 16 .. 4096 */
		p = aligned_alloc(a, n);
		if (p && ((uintptr_t)p & (a - 1)))
			return failw(w, "thread %d: aligned_alloc(%zu, %zu) = %p is misaligned", w->id, a, n,
				     (void *)p);
	}
#endif
	else {
		p = A_MALLOC(n);
	}
	if (!p)
		return failw(w, "thread %d: %s(%zu) returned NULL (errno %d)", w->id, fn, n, errno);
	if ((uintptr_t)p & (MIN_ALIGN - 1))
		return failw(w, "thread %d: %s(%zu) = %p is not %d-aligned", w->id, fn, n, (void *)p, MIN_ALIGN);
#ifndef USE_OS_API
	if (malloc_usable_size(p) < n)
		return failw(w, "thread %d: malloc_usable_size(%s(%zu)) = %zu", w->id, fn, n, malloc_usable_size(p));
#endif
	b->p = p;
	b->n = n;
	b->seed = w->next_seed++;
	fill(p, 0, n, b->seed);
	w->allocs++;
	if (n >= 128 * 1024)
		w->mapped++;
	return true;
}

static bool op_free(struct worker *w, struct blk *b)
{
	if (!verify_blk(w, b, "before free"))
		return false;
	A_FREE(b->p);
	b->p = NULL;
	w->frees++;
	return true;
}

static bool op_realloc(struct worker *w, struct blk *b)
{
	if (!verify_blk(w, b, "before realloc"))
		return false;
	size_t n;
	uint64_t r = rnd(&w->rng) % 8;
	if (r < 3)
		n = b->n + 1 + rnd(&w->rng) % (b->n + 64); /* grow by up to 2x */
	else if (r < 6)
		n = 8 + rnd(&w->rng) % b->n;               /* shrink */
	else
		n = rand_size(&w->rng);                    /* anything */
	if (n > 1024 * 1024)
		n = 1024 * 1024;
	unsigned char *q = A_REALLOC(b->p, n);
	if (!q)
		return failw(w, "thread %d: realloc(%p, %zu -> %zu) returned NULL (errno %d)", w->id, (void *)b->p,
			     b->n, n, errno);
	if ((uintptr_t)q & (MIN_ALIGN - 1))
		return failw(w, "thread %d: realloc(%zu -> %zu) = %p is not %d-aligned", w->id, b->n, n, (void *)q,
			     MIN_ALIGN);
	size_t keep = b->n < n ? b->n : n;
	size_t bad = check(q, keep, b->seed);
	if (bad != keep)
		return failw(w, "thread %d: realloc(%p -> %p, %zu -> %zu) lost byte %zu of %zu kept", w->id,
			     (void *)b->p, (void *)q, b->n, n, bad, keep);
	fill(q, keep, n, b->seed);
	b->p = q;
	b->n = n;
	w->reallocs++;
	return true;
}

/* Puts the block into the exchange (false: it is full, the block stays). */
static bool give(struct blk *b)
{
	bool ok = false;
	pthread_mutex_lock(&x_lock);
	if (x_count < XCAP) {
		x_items[x_count++] = *b;
		ok = true;
	}
	pthread_mutex_unlock(&x_lock);
	return ok;
}

/* Takes a random block from the exchange (false: empty). */
static bool take(struct worker *w, struct blk *out)
{
	bool ok = false;
	uint64_t r = rnd(&w->rng);
	pthread_mutex_lock(&x_lock);
	if (x_count) {
		int i = (int)(r % (uint64_t)x_count);
		*out = x_items[i];
		x_items[i] = x_items[--x_count];
		ok = true;
	}
	pthread_mutex_unlock(&x_lock);
	return ok;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (long op = 0; op < OPS; op++) {
		if ((op & 255) == 0 && (atomic_load(&stop_all) || now() - t0 > TIME_LIMIT))
			break;
		w->ops++;
		struct blk *b = &w->t[rnd(&w->rng) % SLOTS];
		uint64_t r = rnd(&w->rng) % 100;
		bool ok = true;
		if (!b->p) {
			if (r < 15) {
				struct blk got;
				if (take(w, &got)) {
					/* someone else's block: verify, then keep it, realloc it or free it */
					w->taken++;
					if (!verify_blk(w, &got, "taken from the exchange"))
						break;
					*b = got;
					uint64_t k = rnd(&w->rng) % 3;
					if (k == 0) {
						ok = op_free(w, b);
						w->foreign_frees++;
					} else if (k == 1) {
						ok = op_realloc(w, b);
					}
					if (!ok)
						break;
					continue;
				}
			}
			ok = op_alloc(w, b);
		} else if (r < 45) {
			ok = op_free(w, b);
		} else if (r < 70) {
			ok = op_realloc(w, b);
		} else if (r < 85) {
			if (!verify_blk(w, b, "before giving it away"))
				break;
			if (give(b)) {
				b->p = NULL;
				w->given++;
			}
		} else {
			ok = verify_blk(w, b, "on a re-check");
		}
		if (!ok)
			break;
#ifdef TRIM_EVERY
		if (w->id < 2 && op % TRIM_EVERY == TRIM_EVERY / 2)
			malloc_trim(0);
#endif
		if (op % CHECK_EVERY == CHECK_EVERY - 1) {
			w->checks++;
			if (os_heap_check() != 0) {
				failw(w, "thread %d: os_heap_check() failed during the run (op %ld)", w->id, op);
				break;
			}
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	printf("# malloc_stress (%s): seed %llu, %d threads\n", API_NAME, (unsigned long long)seed, THREADS);
	fflush(stdout);
	struct os_stats base;
	os_stats(&base);
	t0 = now();
	for (int i = 0; i < THREADS; i++) {
		struct worker *w = &workers[i];
		w->id = i;
		w->rng = seed * 0x100000001B3ull + (uint64_t)i * 0x9E3779B97F4A7C15ull;
		w->next_seed = ((uint64_t)i << 56) | 1;
	}
	for (int i = 0; i < THREADS; i++) {
		int rc = pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
		if (rc) {
			printf("FAIL stress/%s_threads: pthread_create: %s\n", API_NAME, strerror(rc));
			return 1;
		}
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(workers[i].tid, NULL);
	double secs = now() - t0;

	int failed = 0;
	long ops = 0, allocs = 0, frees = 0, reallocs = 0, given = 0, taken = 0, foreign = 0, checks = 0, mapped = 0;
	for (int i = 0; i < THREADS; i++) {
		struct worker *w = &workers[i];
		ops += w->ops, allocs += w->allocs, frees += w->frees, reallocs += w->reallocs;
		given += w->given, taken += w->taken, foreign += w->foreign_frees, checks += w->checks;
		mapped += w->mapped;
		if (w->error[0]) {
			printf("FAIL stress/%s_threads: %s (seed %llu)\n", API_NAME, w->error, (unsigned long long)seed);
			failed = 1;
		}
	}
	printf("# %.1f s: %ld ops, %ld allocs (%ld mapped-size), %ld frees, %ld reallocs, %ld handed over, %ld taken, "
	       "%ld freed by another thread, %ld heap checks during the run\n",
	       secs, ops, allocs, mapped, frees, reallocs, given, taken, foreign, checks);
	if (!failed)
		printf("PASS stress/%s_threads\n", API_NAME);
	if (!failed && (taken == 0 || foreign == 0)) {
		printf("FAIL stress/%s_cross_thread: no block changed threads (%ld taken, %ld foreign frees)\n", API_NAME,
		       taken, foreign);
		failed = 1;
	}

	/* main frees what is left: every table, then the exchange */
	struct worker *m = &workers[0];
	m->error[0] = 0;
	bool ok = true;
	for (int i = 0; i < THREADS && ok; i++)
		for (int s = 0; s < SLOTS && ok; s++)
			if (workers[i].t[s].p)
				ok = op_free(m, &workers[i].t[s]);
	struct blk b;
	while (ok && take(m, &b))
		ok = op_free(m, &b);
	if (!ok) {
		printf("FAIL stress/%s_leftovers: %s\n", API_NAME, m->error);
		failed = 1;
	}
	int rc = os_heap_check();
	struct os_stats st;
	os_stats(&st);
	if (rc != 0) {
		printf("FAIL stress/%s_heap_check: os_heap_check() = %d at the end\n", API_NAME, rc);
		failed = 1;
	} else if (ok) {
		printf("PASS stress/%s_heap_check\n", API_NAME);
	}
	/* every mapped-size block was freed: the mappings are back to what they were before the threads */
	if (st.mapped_count != base.mapped_count) {
		printf("FAIL stress/%s_accounting: %zu mappings after freeing everything, %zu before the run\n", API_NAME,
		       st.mapped_count, base.mapped_count);
		failed = 1;
	}
	return failed;
}
