/* test_threads: concurrent os_* traffic, with blocks freed by threads other than the one that allocated them.
 *
 * THREADS threads each run up to OPS_PER_THREAD random os_malloc / os_calloc / os_realloc / os_free operations
 * (sizes 1 B..256 KiB, mostly small) over a table of their own, and hand some of their live blocks to the next
 * thread through a small mutex-protected queue; the receiver verifies them and later frees or reallocs them. Every
 * block carries a pattern (from its owner, slot and a generation counter) that is verified before each free and
 * after each realloc (the preserved prefix); os_calloc memory must read zero. Each thread stops after
 * OPS_PER_THREAD ops or TIME_LIMIT_S seconds, whichever comes first. At the end the main thread frees what is left
 * and os_heap_check() must return 0.
 * All sharing between threads goes through the queue's mutex, so the test is ThreadSanitizer-clean by itself:
 * any report under -fsanitize=thread is about the library.
 * Usage: test_threads [seed]. Prints `PASS cross_thread_free` or `FAIL cross_thread_free: <reason>`. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"
#include "test_util.h"

#define THREADS         4
#define OPS_PER_THREAD  200000L
#define TIME_LIMIT_S    5.0
#define SLOTS           256
#define QUEUE_CAP       32
#define MMAP_THRESH     ((size_t)128 * 1024)
#define ALIGN8(n)       (((n) + 7) & ~(size_t)7)
#define NAME            "cross_thread_free"

struct blk {
	unsigned char *p;
	size_t n;
	uint64_t seed;
};

/* The hand-off queue into one thread: a ring guarded by its mutex. */
struct queue {
	pthread_mutex_t lock;
	struct blk items[QUEUE_CAP];
	int head, count;
};

struct worker {
	int id;
	pthread_t tid;
	uint64_t rng;
	struct blk table[SLOTS];
	uint64_t gen;
	long ops, handed, adopted, foreign_freed;
	char error[400]; /* first failure; the thread stops there */
};

static struct queue queues[THREADS];
static struct worker workers[THREADS];
static double t_start; /* written before the threads start, read-only after */
static size_t page;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng(struct worker *w) { return tu_rng(&w->rng); }
static uint64_t below(struct worker *w, uint64_t n) { return rng(w) % n; }

/* Records the first failure of a worker; returns false so callers can `return fail(...)`. */
static bool fail(struct worker *w, const char *what, const struct blk *b)
{
	if (!w->error[0])
		snprintf(w->error, sizeof w->error, "thread %d op %ld: %s (block %p, %zu B)", w->id, w->ops, what,
			 b ? (void *)b->p : NULL, b ? b->n : 0);
	return false;
}

static bool verify(struct worker *w, const struct blk *b, size_t upto, const char *when)
{
	size_t bad = pat_check(b->p, b->seed, 0, upto);
	if (bad == upto)
		return true;
	char msg[200];
	snprintf(msg, sizeof msg, "%s: byte %zu is 0x%02x, pattern says 0x%02x", when, bad, b->p[bad],
		 pat_byte(b->seed, bad));
	return fail(w, msg, b);
}

static bool header_ok(struct worker *w, const struct blk *b, size_t threshold, const char *api)
{
	const struct block_meta *m = (const struct block_meta *)(b->p - META_SIZE);
	size_t s = ALIGN8(b->n);
	bool ok = ((uintptr_t)b->p & 7) == 0 &&
		  (s + META_SIZE >= threshold ? m->status == STATUS_MAPPED && m->size == s
					      : m->status == STATUS_ALLOC && m->size >= s && m->size - s < 40);
	if (ok)
		return true;
	char msg[200];
	snprintf(msg, sizeof msg, "%s: header status %d size %zu does not match the request", api, m->status,
		 m->size);
	return fail(w, msg, b);
}

// ------------------------------------------------------------------
// The hand-off queues
// ------------------------------------------------------------------

static bool queue_push(struct queue *q, const struct blk *b)
{
	bool ok = false;
	pthread_mutex_lock(&q->lock);
	if (q->count < QUEUE_CAP) {
		q->items[(q->head + q->count) % QUEUE_CAP] = *b;
		q->count++;
		ok = true;
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

static bool queue_pop(struct queue *q, struct blk *out)
{
	bool ok = false;
	pthread_mutex_lock(&q->lock);
	if (q->count > 0) {
		*out = q->items[q->head];
		q->head = (q->head + 1) % QUEUE_CAP;
		q->count--;
		ok = true;
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

// ------------------------------------------------------------------
// One worker
// ------------------------------------------------------------------

static size_t rand_size(struct worker *w)
{
	uint64_t r = below(w, 100);
	if (r < 88)
		return 1 + below(w, 1024);
	if (r < 98)
		return 1 + below(w, 16 * 1024);
	return 1 + below(w, 256 * 1024);
}

static bool do_alloc(struct worker *w, struct blk *b)
{
	size_t n = rand_size(w);
	uint64_t k = below(w, 100);
	b->n = n;
	if (k < 50) {
		b->p = os_malloc(n);
		if (!b->p)
			return fail(w, "os_malloc returned NULL", b);
		if (!header_ok(w, b, MMAP_THRESH, "os_malloc"))
			return false;
	} else if (k < 80) {
		b->p = os_calloc(1, n);
		if (!b->p)
			return fail(w, "os_calloc returned NULL", b);
		if (!header_ok(w, b, page, "os_calloc"))
			return false;
		for (size_t i = 0; i < n; i++)
			if (b->p[i])
				return fail(w, "os_calloc memory is not zero", b);
	} else {
		b->p = os_realloc(NULL, n);
		if (!b->p)
			return fail(w, "os_realloc(NULL) returned NULL", b);
		if (!header_ok(w, b, MMAP_THRESH, "os_realloc(NULL)"))
			return false;
	}
	w->gen++;
	b->seed = ((uint64_t)w->id << 56) ^ (w->gen * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)(b - w->table);
	pat_fill(b->p, b->seed, 0, n);
	return true;
}

static bool do_free(struct worker *w, struct blk *b)
{
	if (!verify(w, b, b->n, "before os_free"))
		return false;
	os_free(b->p);
	b->p = NULL;
	return true;
}

static bool do_realloc(struct worker *w, struct blk *b)
{
	if (!verify(w, b, b->n, "before os_realloc"))
		return false;
	size_t n = below(w, 4) == 0 ? b->n + 1 + below(w, 256) : rand_size(w);
	unsigned char *q = os_realloc(b->p, n);
	if (!q)
		return fail(w, "os_realloc returned NULL", b);
	struct blk nb = { q, n, b->seed };
	if (!header_ok(w, &nb, MMAP_THRESH, "os_realloc"))
		return false;
	size_t keep = n < b->n ? n : b->n;
	if (!verify(w, &nb, keep, "after os_realloc (preserved prefix)"))
		return false;
	if (n > b->n)
		pat_fill(q, b->seed, b->n, n);
	*b = nb;
	return true;
}

/* Takes one block from this thread's queue into a free slot (or frees it at once when the table is full). */
static bool adopt(struct worker *w)
{
	struct blk in;
	if (!queue_pop(&queues[w->id], &in))
		return true;
	if (!verify(w, &in, in.n, "received from another thread"))
		return false;
	w->adopted++;
	int s = (int)below(w, SLOTS);
	if (w->table[s].p) {
		w->foreign_freed++;
		return do_free(w, &in);
	}
	w->table[s] = in;
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct queue *next = &queues[(w->id + 1) % THREADS];
	for (w->ops = 0; w->ops < OPS_PER_THREAD; w->ops++) {
		if ((w->ops & 1023) == 0 && now_s() - t_start > TIME_LIMIT_S)
			break;
		if (below(w, 8) == 0 && !adopt(w))
			return NULL;
		struct blk *b = &w->table[below(w, SLOTS)];
		bool ok;
		if (!b->p) {
			ok = do_alloc(w, b);
		} else {
			uint64_t k = below(w, 100);
			if (k < 35) {
				ok = do_free(w, b);
			} else if (k < 45) {
				ok = verify(w, b, b->n, "before os_realloc(p, 0)");
				if (ok && os_realloc(b->p, 0) != NULL)
					ok = fail(w, "os_realloc(p, 0) did not return NULL", b);
				b->p = NULL;
			} else if (k < 85) {
				ok = do_realloc(w, b);
			} else {
				/* hand it to the next thread; it stays ours if that queue is full */
				ok = verify(w, b, b->n, "before hand-off");
				if (ok && queue_push(next, b)) {
					b->p = NULL;
					w->handed++;
				}
			}
		}
		if (!ok)
			return NULL;
	}
	for (int s = 0; s < SLOTS; s++)
		if (w->table[s].p && !do_free(w, &w->table[s]))
			return NULL;
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t seed = 20240602;
	if (argc > 1)
		seed = strtoull(argv[1], NULL, 0);
	page = (size_t)sysconf(_SC_PAGESIZE);
	tu_test_name = NAME;
	tu_catch_crashes();

	for (int i = 0; i < THREADS; i++) {
		pthread_mutex_init(&queues[i].lock, NULL);
		workers[i].id = i;
		workers[i].rng = seed * 0x100000001B3ULL + (uint64_t)i;
	}
	t_start = now_s();
	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]) != 0) {
			printf("FAIL " NAME ": pthread_create failed\n");
			return 1;
		}
	for (int i = 0; i < THREADS; i++)
		pthread_join(workers[i].tid, NULL);
	double elapsed = now_s() - t_start;

	const char *error = NULL;
	long ops = 0, handed = 0, adopted = 0;
	for (int i = 0; i < THREADS; i++) {
		if (workers[i].error[0] && !error)
			error = workers[i].error;
		ops += workers[i].ops;
		handed += workers[i].handed;
		adopted += workers[i].adopted;
	}
	/* What is still queued was allocated by one thread and is freed here, by a third one. */
	struct worker *main_w = &workers[0];
	for (int i = 0; i < THREADS && !error; i++) {
		struct blk b;
		while (!error && queue_pop(&queues[i], &b))
			if (!do_free(main_w, &b))
				error = main_w->error;
	}
	if (!error && os_heap_check() != 0)
		error = "os_heap_check() failed at the end (details on stderr)";
	if (!error && adopted == 0)
		error = "no block crossed threads: the test did not test anything";

	fprintf(stderr, "test_threads: seed %llu, %d threads, %ld ops in %.2f s, %ld blocks handed over, %ld adopted\n",
		(unsigned long long)seed, THREADS, ops, elapsed, handed, adopted);
	if (error) {
		printf("FAIL " NAME ": %s\n", error);
		return 1;
	}
	printf("PASS " NAME "\n");
	return 0;
}
