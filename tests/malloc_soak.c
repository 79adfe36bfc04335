/* soak: 16 threads of random malloc-family traffic on the drop-in: a short run in CI, a long one by `make soak`.
 *
 * Each worker owns a table of blocks and, at random: malloc, calloc (zero checked), realloc (the kept bytes
 * checked), free, memalign / posix_memalign / aligned_alloc (alignment checked), malloc_usable_size (>= the
 * request), and hands blocks to other workers through their queues (mutex-protected rings): the receiver checks
 * the contents and frees the block (a cross-thread free) or keeps it (and later reallocs or frees it). Every block
 * holds a pattern from its seed; it is verified before each free, before and after each realloc, and on arrival.
 * Workers end after a random number of operations and are replaced by new threads that inherit their tables
 * (blocks whose owner thread exited: the front's abandoned pages). One worker calls os_heap_check() every few
 * thousand operations. Sizes: mostly the front's classes, some core blocks, a few across the mmap threshold.
 *
 * The paths that run by time or by event, not by request, are driven too, because that is where the crash of
 * session 49 hid (a sweep of the abandoned pages that ran the idle decay, which swept the same lists inside it;
 * only a second's idleness followed by a thread's first request made it happen):
 *  - idle phases: every few seconds the workers pause for 1.2 s, longer than the pool's and the core's decay
 *    periods, and the first requests after it run the decays among live threads, abandoned pages and emptied
 *    pages (workers end during the pause too, and their successors start after it); two new threads make their
 *    first requests before the workers wake;
 *  - bursts: a worker now and then frees its whole table at once (pages and segments empty together); one in
 *    three ending workers leaves 512 KiB of blocks of one size, which the main thread frees as the next idle
 *    phase begins (whole abandoned pages emptied by remote frees);
 *  - malloc_trim(0) from the main thread every few seconds and from a worker now and then, beside the others;
 *  - fork: the main thread forks while the workers run; the child allocates, checks and frees blocks of every
 *    kind, in itself and in two new threads, and exits; a child that fails, crashes or hangs (20 s) is an error;
 *  - os_stats and os_heap_dump (to /dev/null) beside the workers.
 *
 * Usage: malloc_soak [seconds] (default 20: CI's run; `make soak` runs 600). The profile is the drop-in's
 * (OSMEM_PROFILE). Prints progress each minute, a summary of operations and errors, and PASS soak / FAIL soak:
 * ...; exit status 1 on any error. */

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

#define THREADS 16
#define SLOTS   256
#define QUEUE   1024

struct blk {
	unsigned char *p;
	size_t n;
	uint64_t seed;
};

struct queue {
	pthread_mutex_t lock;
	struct blk items[QUEUE];
	unsigned head, count;
};

struct worker {
	pthread_t th;
	struct blk table[SLOTS];
	uint64_t rng;
	unsigned id;
	long life;          /* operations left before this thread ends (its successor inherits the table) */
	_Atomic int done;   /* set by the thread as it ends */
};

enum { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_FREE, OP_ALIGNED, OP_USABLE, OP_SEND, OP_RECV_FREE, OP_RECV_KEEP,
       OP_CHECK, OP_BURST, OP_TRIM, OP_IDLE, OP_FORK, OP_STATS, OP_KINDS };
static const char *const op_name[OP_KINDS] = { "malloc", "calloc", "realloc", "free", "aligned", "usable", "sent",
					       "cross_thread_free", "adopted", "heap_check", "burst", "trim",
					       "idle_phase", "fork", "stats" };

static struct worker workers[THREADS];
static struct queue queues[THREADS];
static _Atomic long ops[OP_KINDS];
static _Atomic long errors, threads_started;
static _Atomic int stop;
static _Atomic int idle; /* set by main for an idle phase: the workers sleep until it clears */

/* Blocks a worker leaves behind as it ends, all of one size (the pages they fill become abandoned, every slot in
 * use); the main thread frees them all at the start of the next idle phase, so that a newcomer's sweep finds
 * whole pages emptied by remote frees a second earlier. */
#define ORPHANS 8192
static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk orphans[ORPHANS];
static unsigned n_orphans;
static _Atomic uint64_t gen;

static void error(const char *fmt, ...)
{
	long e = atomic_fetch_add(&errors, 1);
	if (e >= 20)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "soak error: %s\n", msg);
}

static uint64_t rnd(struct worker *w) { return tu_rng(&w->rng); }
static uint64_t below(struct worker *w, uint64_t n) { return rnd(w) % n; }

static size_t rand_size(struct worker *w)
{
	uint64_t r = below(w, 1000);
	if (r < 800)
		return 1 + below(w, 256);
	if (r < 930)
		return 257 + below(w, 1792); /* the front's larger classes */
	if (r < 990)
		return 2049 + below(w, 94 * 1024); /* the medium caches (to 64 KiB), then the core's heap */
	return 120 * 1024 + below(w, 136 * 1024); /* across the mmap threshold */
}

static uint64_t new_seed(struct worker *w)
{
	return (atomic_fetch_add(&gen, 1) + 1) * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)w->id << 56);
}

static void check(const struct blk *b, const char *when, unsigned id)
{
	size_t bad = pat_check(b->p, b->seed, 0, b->n);
	if (bad != b->n)
		error("worker %u: block %p (%zu B) %s: byte %zu is 0x%02x, pattern says 0x%02x", id, (void *)b->p, b->n,
		      when, bad, b->p[bad], pat_byte(b->seed, bad));
}

static void fresh(struct worker *w, struct blk *b, void *p, size_t n, size_t align, const char *api)
{
	if (!p) {
		error("worker %u: %s(%zu) returned NULL (errno %d)", w->id, api, n, errno);
		b->p = NULL;
		return;
	}
	if ((uintptr_t)p & (align - 1))
		error("worker %u: %s(%zu) = %p is not %zu-byte aligned", w->id, api, n, p, align);
	size_t u = malloc_usable_size(p);
	if (u < n)
		error("worker %u: %s(%zu) = %p: malloc_usable_size %zu", w->id, api, n, p, u);
	b->p = p;
	b->n = n;
	b->seed = new_seed(w);
	pat_fill(b->p, b->seed, 0, n);
}

static void do_free(struct worker *w, struct blk *b)
{
	check(b, "before free", w->id);
	free(b->p);
	b->p = NULL;
	atomic_fetch_add_explicit(&ops[OP_FREE], 1, memory_order_relaxed);
}

static void do_alloc(struct worker *w, struct blk *b)
{
	size_t n = rand_size(w);
	uint64_t k = below(w, 100);
	if (k < 60) {
		fresh(w, b, malloc(n), n, 16, "malloc");
		atomic_fetch_add_explicit(&ops[OP_MALLOC], 1, memory_order_relaxed);
	} else if (k < 85) {
		unsigned char *p = calloc(1 + n / 16, 16);
		size_t cn = (1 + n / 16) * 16;
		for (size_t i = 0; p && i < cn; i++)
			if (p[i]) {
				error("worker %u: calloc(%zu) = %p: byte %zu is 0x%02x", w->id, cn, (void *)p, i, p[i]);
				break;
			}
		fresh(w, b, p, cn, 16, "calloc");
		atomic_fetch_add_explicit(&ops[OP_CALLOC], 1, memory_order_relaxed);
	} else {
		size_t a = (size_t)16 << below(w, 9); /* 16 .. 4096 */
		void *p = NULL;
		if (k < 90) {
			p = memalign(a, n);
		} else if (k < 95) {
			if (posix_memalign(&p, a, n))
				p = NULL;
		} else {
			p = aligned_alloc(a, n);
		}
		fresh(w, b, p, n, a, "memalign");
		atomic_fetch_add_explicit(&ops[OP_ALIGNED], 1, memory_order_relaxed);
	}
}

static void do_realloc(struct worker *w, struct blk *b)
{
	size_t n = below(w, 3) ? rand_size(w) : b->n + 1 + below(w, 64);
	check(b, "before realloc", w->id);
	void *q = realloc(b->p, n);
	atomic_fetch_add_explicit(&ops[OP_REALLOC], 1, memory_order_relaxed);
	if (!q) {
		error("worker %u: realloc(%p, %zu) returned NULL", w->id, (void *)b->p, n);
		return; /* the old block stays */
	}
	size_t keep = n < b->n ? n : b->n;
	size_t bad = pat_check(q, b->seed, 0, keep);
	if (bad != keep)
		error("worker %u: realloc(%p, %zu -> %zu) = %p: kept byte %zu changed", w->id, (void *)b->p, b->n, n, q,
		      bad);
	if (malloc_usable_size(q) < n)
		error("worker %u: realloc(..., %zu) = %p: usable %zu", w->id, n, q, malloc_usable_size(q));
	b->p = q;
	if (n > b->n)
		pat_fill(b->p, b->seed, b->n, n);
	b->n = n;
}

/* Hands b to another worker's queue; false when that queue is full. */
static bool do_send(struct worker *w, struct blk *b)
{
	unsigned to = (unsigned)below(w, THREADS);
	if (to == w->id)
		to = (to + 1) % THREADS;
	struct queue *q = &queues[to];
	pthread_mutex_lock(&q->lock);
	bool ok = q->count < QUEUE;
	if (ok) {
		q->items[(q->head + q->count) % QUEUE] = *b;
		q->count++;
	}
	pthread_mutex_unlock(&q->lock);
	if (ok) {
		b->p = NULL;
		atomic_fetch_add_explicit(&ops[OP_SEND], 1, memory_order_relaxed);
	}
	return ok;
}

/* Takes what other workers sent: checks each block, then frees it here or keeps it in an empty slot. */
static void do_receive(struct worker *w)
{
	struct blk got[64];
	unsigned n = 0;
	struct queue *q = &queues[w->id];
	pthread_mutex_lock(&q->lock);
	while (q->count && n < 64) {
		got[n++] = q->items[q->head];
		q->head = (q->head + 1) % QUEUE;
		q->count--;
	}
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < n; i++) {
		check(&got[i], "on arrival from another thread", w->id);
		struct blk *slot = &w->table[below(w, SLOTS)];
		if (!slot->p && below(w, 2)) {
			*slot = got[i];
			atomic_fetch_add_explicit(&ops[OP_RECV_KEEP], 1, memory_order_relaxed);
		} else {
			free(got[i].p);
			atomic_fetch_add_explicit(&ops[OP_RECV_FREE], 1, memory_order_relaxed);
		}
	}
}

static void *work(void *arg)
{
	struct worker *w = arg;
	for (long i = 0; w->life > 0 && !atomic_load_explicit(&stop, memory_order_relaxed); i++, w->life--) {
		while (atomic_load_explicit(&idle, memory_order_relaxed) && !atomic_load(&stop))
			usleep(20 * 1000);
		struct blk *b = &w->table[below(w, SLOTS)];
		if (i % 32 == 0)
			do_receive(w);
		if (below(w, 100000) == 0) { /* a burst: the whole table freed at once */
			for (int s = 0; s < SLOTS; s++)
				if (w->table[s].p)
					do_free(w, &w->table[s]);
			atomic_fetch_add_explicit(&ops[OP_BURST], 1, memory_order_relaxed);
			continue;
		}
		if (below(w, 200000) == 0) {
			malloc_trim(0);
			atomic_fetch_add_explicit(&ops[OP_TRIM], 1, memory_order_relaxed);
		}
		if (w->id == 0 && i % 5000 == 4999) {
			if (os_heap_check() != 0)
				error("os_heap_check() failed (details above)");
			atomic_fetch_add_explicit(&ops[OP_CHECK], 1, memory_order_relaxed);
		}
		if (!b->p) {
			do_alloc(w, b);
			continue;
		}
		uint64_t k = below(w, 100);
		if (k < 40)
			do_free(w, b);
		else if (k < 65)
			do_realloc(w, b);
		else if (k < 85) {
			if (!do_send(w, b))
				do_free(w, b);
		} else {
			if (malloc_usable_size(b->p) < b->n)
				error("worker %u: malloc_usable_size(%p) = %zu < %zu", w->id, (void *)b->p,
				      malloc_usable_size(b->p), b->n);
			atomic_fetch_add_explicit(&ops[OP_USABLE], 1, memory_order_relaxed);
		}
	}
	if (!atomic_load(&stop) && below(w, 3) == 0) { /* leave 512 KiB of one size to the main thread */
		size_t sz = 16 + 16 * below(w, 128);
		pthread_mutex_lock(&orphan_lock);
		for (size_t left = 512 * 1024; left >= sz && n_orphans < ORPHANS; left -= sz) {
			struct blk *b = &orphans[n_orphans];
			fresh(w, b, malloc(sz), sz, 16, "malloc");
			if (b->p)
				n_orphans++;
		}
		pthread_mutex_unlock(&orphan_lock);
	}
	atomic_store(&w->done, 1);
	return NULL;
}

static void free_orphans(void)
{
	pthread_mutex_lock(&orphan_lock);
	for (unsigned i = 0; i < n_orphans; i++) {
		check(&orphans[i], "left by a thread that ended", 100);
		free(orphans[i].p);
	}
	n_orphans = 0;
	pthread_mutex_unlock(&orphan_lock);
}

static void start(struct worker *w)
{
	w->life = 20000 + (long)below(w, 400000);
	atomic_store(&w->done, 0);
	atomic_fetch_add(&threads_started, 1);
	if (pthread_create(&w->th, NULL, work, w) != 0) {
		error("pthread_create failed");
		exit(1);
	}
}

/* A thread born at the end of an idle phase: its first request of each class finds no page of its own and looks
 * at the abandoned pages, while a second has passed since the last decay (session 49's crash, in the general
 * case: front/stranded/sweep_survives_decay_inside_it is the exact one). */
static void *newcomer(void *arg)
{
	(void)arg;
	void *p[40];
	int n = 0;
	for (size_t sz = 16; sz <= 2048 && n < 40; sz += sz < 128 ? 16 : sz / 4)
		if ((p[n] = malloc(sz)) != NULL)
			memset(p[n++], 0x5a, sz);
		else
			error("newcomer: malloc(%zu) returned NULL", sz);
	while (n)
		free(p[--n]);
	return NULL;
}

/* A fork's child's work: only the forking thread exists there, and the workers' tables are copies taken in the
 * middle of their changes, so the child leaves them alone and allocates, checks and frees blocks of its own. */
static void child_rounds(uint64_t seed)
{
	struct worker w = { .rng = seed, .id = 99 };
	static _Thread_local struct blk t[128];
	for (int r = 0; r < 6000; r++) {
		struct blk *b = &t[below(&w, 128)];
		if (!b->p)
			do_alloc(&w, b);
		else if (below(&w, 3))
			do_free(&w, b);
		else
			do_realloc(&w, b);
	}
	for (int i = 0; i < 128; i++)
		if (t[i].p)
			do_free(&w, &t[i]);
}

static void *child_thread(void *arg)
{
	child_rounds((uint64_t)(uintptr_t)arg);
	return NULL;
}

/* Forks while the workers run; the child works in itself and in two new threads. The child must exit 0 within
 * 20 s: a child that hangs is most likely stuck on a lock some worker held at the fork. */
static void fork_round(unsigned k)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		error("fork failed (errno %d)", errno);
		return;
	}
	if (pid == 0) {
		long e0 = atomic_load(&errors);
		child_rounds(0xf0f0 + k);
		pthread_t th[2];
		for (uintptr_t i = 0; i < 2; i++)
			if (pthread_create(&th[i], NULL, child_thread, (void *)(0xc0de + 2 * k + i)) != 0) {
				error("fork %u: pthread_create failed in the child", k);
				_exit(1);
			}
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		_exit(atomic_load(&errors) > e0 ? 1 : 0);
	}
	int st = 0;
	for (int waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0) {
			error("fork %u: waitpid failed (errno %d)", k, errno);
			return;
		}
		if (waited >= 20000) {
			error("fork %u: the child (pid %d) still runs after 20 s: deadlocked in the allocator? killed", k,
			      (int)pid);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return;
		}
		usleep(10 * 1000);
	}
	if (WIFSIGNALED(st))
		error("fork %u: the child died of signal %d", k, WTERMSIG(st));
	else if (WEXITSTATUS(st) != 0)
		error("fork %u: the child exited %d (its errors above)", k, WEXITSTATUS(st));
	atomic_fetch_add(&ops[OP_FORK], 1);
}

static long total_ops(void)
{
	long t = 0;
	for (int i = 0; i < OP_KINDS; i++)
		t += atomic_load(&ops[i]);
	return t;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 20;
	const char *profile = getenv("OSMEM_PROFILE");
	printf("soak: %d threads for %.0f s, profile %s\n", THREADS, seconds, profile && *profile ? profile : "default");
	fflush(stdout);
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_mutex_init(&queues[i].lock, NULL);
		workers[i].id = i;
		workers[i].rng = 0x50a4 + i * 7919ULL + (uint64_t)time(NULL);
		start(&workers[i]);
	}
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	double t0 = now(), next_report = t0 + 60;
	for (unsigned tick = 1; now() - t0 < seconds; tick++) {
		usleep(200 * 1000);
		/* the paths that run by time or event (the head comment): each every few seconds, at different ticks */
		if (tick % 15 == 7) {
			malloc_trim(0);
			atomic_fetch_add(&ops[OP_TRIM], 1);
		}
		if (tick % 25 == 12)
			fork_round(tick);
		if (tick % 5 == 3) {
			struct os_stats st;
			os_stats(&st);
			if (os_heap_dump(devnull, tick % 2 ? OS_DUMP_TEXT : OS_DUMP_JSON) != 0)
				error("os_heap_dump failed beside the workers");
			atomic_fetch_add(&ops[OP_STATS], 1);
		}
		if (tick % 35 == 20) { /* an idle phase, longer than the decays' second */
			atomic_store(&idle, 1);
			free_orphans();
			usleep(1200 * 1000);
			pthread_t th[2];
			for (int i = 0; i < 2; i++)
				if (pthread_create(&th[i], NULL, newcomer, NULL) != 0)
					error("pthread_create failed (a newcomer)");
			for (int i = 0; i < 2; i++)
				pthread_join(th[i], NULL);
			atomic_store(&idle, 0);
			atomic_fetch_add(&ops[OP_IDLE], 1);
		}
		for (unsigned i = 0; i < THREADS; i++) {
			struct worker *w = &workers[i];
			if (atomic_load(&w->done) && !atomic_load(&stop)) { /* ended: a new thread takes its table */
				pthread_join(w->th, NULL);
				start(w);
			}
		}
		if (now() >= next_report) {
			printf("soak: %.0f s, %ld operations, %ld threads started, %ld errors\n", now() - t0, total_ops(),
			       atomic_load(&threads_started), atomic_load(&errors));
			fflush(stdout);
			next_report += 60;
		}
	}
	atomic_store(&stop, 1);
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(workers[i].th, NULL);
	/* everything left: the orphans, the tables, then the queues */
	free_orphans();
	for (unsigned i = 0; i < THREADS; i++) {
		for (int s = 0; s < SLOTS; s++)
			if (workers[i].table[s].p) {
				check(&workers[i].table[s], "at the end", i);
				free(workers[i].table[s].p);
			}
		for (unsigned k = 0; k < queues[i].count; k++) {
			struct blk *b = &queues[i].items[(queues[i].head + k) % QUEUE];
			check(b, "in a queue at the end", i);
			free(b->p);
		}
	}
	if (os_heap_check() != 0)
		error("os_heap_check() failed at the end");
	if (atomic_load(&ops[OP_FORK]) == 0 || atomic_load(&ops[OP_IDLE]) == 0)
		printf("soak: note: %.0f s ran no fork or no idle phase (each comes every 5-7 s)\n", seconds);
	double secs = now() - t0;
	printf("soak: %ld operations in %.0f s (%.0f/s), %ld threads started;", total_ops(), secs, total_ops() / secs,
	       atomic_load(&threads_started));
	for (int i = 0; i < OP_KINDS; i++)
		printf(" %s %ld", op_name[i], atomic_load(&ops[i]));
	printf("\nsoak: %ld errors\n", atomic_load(&errors));
	if (atomic_load(&errors))
		printf("FAIL soak: %ld errors (the first ones above, on stderr)\n", atomic_load(&errors));
	else
		printf("PASS soak\n");
	return atomic_load(&errors) ? 1 : 0;
}
