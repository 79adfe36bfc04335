/* malloc_fork: fork while other threads allocate (the drop-in's contract in README.md: fork-safe, the child can
 * allocate).
 *
 * Four threads malloc / calloc / realloc / free in loops (small blocks and blocks past the 128 KiB mmap
 * threshold) for the whole run. Meanwhile:
 *   fork_from_main     the main thread forks FORKS_MAIN times;
 *   fork_from_thread   a fifth thread forks FORKS_THREAD times (the main thread is busy allocating too);
 *   child_spawns_thread the children start a thread of their own that allocates while the child's main thread
 *                      does, and fork a grandchild that allocates.
 * Every child verifies and frees the blocks its parent's forking thread held at the fork (its copies), allocates
 * small and large blocks (one past the 128 KiB threshold and a mapped calloc at least; every tenth child, and all
 * children of the thread variants, the full set with a realloc walk across the threshold both ways), writes and
 * verifies them, frees them, runs os_heap_check() (which must be 0) and _exit(0)s; any other exit status names
 * what went wrong. Blocks over 8 KiB carry their pattern in the first and last 4 KiB only: page faults cost a lot
 * on small VMs and the test is about locks and heap state, not bandwidth. Up to WINDOW children run at once, so
 * later forks also overlap earlier children. A child that deadlocks is killed by its own alarm() (SIGALRM) and
 * the parent also gives up on it after CHILD_TIMEOUT seconds (SIGKILL); a parent that hangs is stopped by a
 * global alarm. Any child that crashes, hangs or exits non-zero is a failure, and the parent's heap must pass
 * os_heap_check() after each variant.
 * FORKS_MAIN, FORKS_THREAD and FORKS_NESTED can be overridden with -D.
 * Prints `PASS fork/<name>` or `FAIL fork/<name>: why`; exits non-zero on failure. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "osmem.h"

#define WORKERS       4
#ifndef FORKS_MAIN
#define FORKS_MAIN    500
#endif
#ifndef FORKS_THREAD
#define FORKS_THREAD  100
#endif
#ifndef FORKS_NESTED
#define FORKS_NESTED  25
#endif
#define CHILD_ALARM   20 /* seconds: a child stuck longer dies of SIGALRM (generous: loaded CI machines) */
#define CHILD_TIMEOUT 25 /* seconds: the parent kills a child it waited on this long */
#define GLOBAL_ALARM  240 /* seconds: the whole program */
#define WSLOTS        64

/* Exit statuses of a child: what failed. */
enum {
	CX_OK = 0,
	CX_NOMEM = 10,     /* an allocation returned NULL */
	CX_PATTERN = 11,   /* a block lost its contents */
	CX_CALLOC = 12,    /* calloc memory was not zero */
	CX_CHECK = 13,     /* os_heap_check() != 0 */
	CX_THREAD = 14,    /* pthread_create / the child's thread failed */
	CX_GRANDCHILD = 15,/* the grandchild failed */
	CX_FORK = 16,      /* fork failed in the child */
	CX_INHERITED = 17, /* a block inherited from the parent was changed */
};

static const char *cx_name(int code)
{
	switch (code) {
	case CX_NOMEM: return "an allocation returned NULL";
	case CX_PATTERN: return "a block lost its contents";
	case CX_CALLOC: return "calloc memory was not zero";
	case CX_CHECK: return "os_heap_check() failed";
	case CX_THREAD: return "its thread failed";
	case CX_GRANDCHILD: return "its grandchild failed";
	case CX_FORK: return "fork failed in the child";
	case CX_INHERITED: return "a block inherited from the parent was corrupt";
	default: return "unknown exit status";
	}
}

static atomic_int stop_workers;
static atomic_long worker_ops;
static atomic_int in_alloc; /* busy threads inside malloc/calloc/realloc/free right now (approximately) */

/* The busy threads pause WORKER_PAUSE_US every WORKER_BURST operations, so that on a machine with few CPUs the
 * forking thread still gets to run (forks overlap the bursts: see the "# ... inside the allocator" line). */
#ifndef WORKER_BURST
#define WORKER_BURST    32
#endif
#ifndef WORKER_PAUSE_US
#define WORKER_PAUSE_US 100
#endif

// ------------------------------------------------------------------
// Patterns
// ------------------------------------------------------------------

static inline unsigned char pat(size_t i, unsigned tag)
{
	return (unsigned char)((i * 131 + (i >> 9)) ^ tag);
}

static void fill(unsigned char *p, size_t from, size_t to, unsigned tag)
{
	for (size_t i = from; i < to; i++)
		p[i] = pat(i, tag);
}

static bool verify(const unsigned char *p, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(i, tag))
			return false;
	return true;
}

static bool verify_range(const unsigned char *p, size_t from, size_t to, unsigned tag)
{
	for (size_t i = from; i < to; i++)
		if (p[i] != pat(i, tag))
			return false;
	return true;
}

/* Big blocks carry the pattern only in their first and last 4 KiB: page faults are what a fork test must not be
 * made of (500 children each touching megabytes take minutes on a slow VM). Blocks up to 8 KiB are full. */
#define EDGE ((size_t)4096)

static void set_edges(unsigned char *p, size_t n, unsigned tag)
{
	if (n <= 2 * EDGE) {
		fill(p, 0, n, tag);
		return;
	}
	fill(p, 0, EDGE, tag);
	fill(p, n - EDGE, n, tag);
}

static bool check_edges(const unsigned char *p, size_t n, unsigned tag)
{
	if (n <= 2 * EDGE)
		return verify_range(p, 0, n, tag);
	return verify_range(p, 0, EDGE, tag) && verify_range(p, n - EDGE, n, tag);
}

/* After realloc(old -> n): what the old block held, within the kept prefix, is still there. */
static bool check_kept(const unsigned char *q, size_t old, size_t n, unsigned tag)
{
	size_t keep = old < n ? old : n;
	if (old <= 2 * EDGE)
		return verify_range(q, 0, keep, tag);
	if (!verify_range(q, 0, keep < EDGE ? keep : EDGE, tag))
		return false;
	return old - EDGE >= keep || verify_range(q, old - EDGE, keep, tag);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

// ------------------------------------------------------------------
// The busy threads of the parent
// ------------------------------------------------------------------

struct wslot {
	unsigned char *p;
	size_t n;
	unsigned tag;
};

static size_t busy_size(uint64_t *s)
{
	uint64_t k = rnd(s) % 100;
	if (k < 85)
		return 1 + rnd(s) % 512;
	if (k < 98)
		return 513 + rnd(s) % 16384;
	return 100000 + rnd(s) % 300000; /* around and past the mmap threshold */
}

static void *busy(void *arg)
{
	uint64_t s = (uint64_t)(uintptr_t)arg * 0x1234567ull + 99;
	struct wslot t[WSLOTS] = { { NULL, 0, 0 } };
	long ops = 0;
	bool bad = false;
	while (!atomic_load_explicit(&stop_workers, memory_order_relaxed)) {
		struct wslot *w = &t[rnd(&s) % WSLOTS];
		uint64_t r = rnd(&s) % 10;
		if (!w->p) {
			w->n = busy_size(&s);
			w->tag = (unsigned)rnd(&s);
			atomic_fetch_add_explicit(&in_alloc, 1, memory_order_relaxed);
			w->p = r < 2 ? calloc(1, w->n) : malloc(w->n);
			atomic_fetch_sub_explicit(&in_alloc, 1, memory_order_relaxed);
			if (!w->p) {
				bad = true;
				break;
			}
			fill(w->p, 0, w->n < 256 ? w->n : 256, w->tag);
		} else if (r < 5) {
			if (!verify(w->p, w->n < 256 ? w->n : 256, w->tag))
				bad = true;
			atomic_fetch_add_explicit(&in_alloc, 1, memory_order_relaxed);
			free(w->p);
			atomic_fetch_sub_explicit(&in_alloc, 1, memory_order_relaxed);
			w->p = NULL;
		} else {
			size_t n = busy_size(&s);
			atomic_fetch_add_explicit(&in_alloc, 1, memory_order_relaxed);
			unsigned char *q = realloc(w->p, n);
			atomic_fetch_sub_explicit(&in_alloc, 1, memory_order_relaxed);
			if (!q) {
				bad = true;
				break;
			}
			size_t keep = w->n < n ? w->n : n;
			if (!verify(q, keep < 256 ? keep : 256, w->tag))
				bad = true;
			w->p = q;
			w->n = n;
			fill(w->p, 0, w->n < 256 ? w->n : 256, w->tag);
		}
		if (bad)
			break;
		if (++ops % WORKER_BURST == 0) {
			atomic_fetch_add_explicit(&worker_ops, WORKER_BURST, memory_order_relaxed);
			if (WORKER_PAUSE_US) {
				struct timespec ts = { 0, WORKER_PAUSE_US * 1000L };
				nanosleep(&ts, NULL);
			}
		}
	}
	for (int i = 0; i < WSLOTS; i++)
		free(t[i].p);
	return bad ? (void *)1 : NULL;
}

// ------------------------------------------------------------------
// What a child does
// ------------------------------------------------------------------

/* Blocks the forking thread holds at the fork: the child verifies and frees them (its copy of the heap). */
struct held {
	unsigned char *p[6];
	size_t n[6];
};

static void hold(struct held *h, unsigned tag)
{
	static const size_t ns[6] = { 24, 600, 5000, 70000, 200000, 1 << 20 };
	for (int i = 0; i < 6; i++) {
		h->n[i] = ns[i];
		h->p[i] = malloc(ns[i]);
		if (h->p[i])
			set_edges(h->p[i], ns[i], tag + (unsigned)i);
	}
}

static void unhold(struct held *h)
{
	for (int i = 0; i < 6; i++)
		free(h->p[i]);
}

/* Allocation work of a child (or of its thread / grandchild): 0 or a CX_ code. The light version (most of the
 * 500 children of fork_from_main) has fewer blocks and no realloc walk, but still one block past the mmap
 * threshold and a mapped calloc. */
static int child_alloc_work(unsigned seed, bool light)
{
	static const size_t ns[] = { 1, 16, 100, 1000, 200000, 4000, 4096, 20000, 131024, 131072, 1 << 20 };
	enum { N = sizeof ns / sizeof ns[0] };
	unsigned char *p[N] = { NULL };
	int count = light ? 5 : N;
	for (int i = 0; i < count; i++) {
		p[i] = malloc(ns[i]);
		if (!p[i])
			return CX_NOMEM;
		set_edges(p[i], ns[i], seed + (unsigned)i);
	}
	unsigned char *c = calloc(300, 1000); /* 300000: mapped */
	unsigned char *c2 = calloc(100, 10);
	if (!c || !c2)
		return CX_NOMEM;
	for (size_t i = 0; i < 300000; i += (i < EDGE || i >= 300000 - EDGE) ? 1 : 4096)
		if (c[i])
			return CX_CALLOC;
	set_edges(c, 300000, seed);
	for (size_t i = 0; i < 1000; i++)
		if (c2[i])
			return CX_CALLOC;
	set_edges(c2, 1000, seed);
	unsigned char *r = NULL;
	if (light)
		goto check;
	/* realloc across the threshold, both ways */
	r = malloc(100);
	if (!r)
		return CX_NOMEM;
	fill(r, 0, 100, seed);
	static const size_t steps[] = { 5000, 150000, 1 << 20, 120000, 300, 400000, 64 };
	size_t old = 100;
	for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
		unsigned char *q = realloc(r, steps[k]);
		if (!q)
			return CX_NOMEM;
		if (!check_kept(q, old, steps[k], seed))
			return CX_PATTERN;
		set_edges(q, steps[k], seed);
		r = q;
		old = steps[k];
	}
check:
	for (int i = 0; i < count; i++)
		if (!check_edges(p[i], ns[i], seed + (unsigned)i))
			return CX_PATTERN;
	if (!check_edges(c, 300000, seed) || !check_edges(c2, 1000, seed))
		return CX_PATTERN;
	for (int i = 0; i < count; i += 2)
		free(p[i]);
	for (int i = 1; i < count; i += 2)
		free(p[i]);
	free(c);
	free(c2);
	free(r);
	return 0;
}

static void *child_thread(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	int rc = 0;
	for (int k = 0; k < 4 && !rc; k++)
		rc = child_alloc_work(seed + (unsigned)k * 17, false);
	return (void *)(intptr_t)rc;
}

/* In the child: everything, then _exit with 0 or the first CX_ code. */
static _Noreturn void child_main(struct held *h, unsigned tag, bool spawn, bool light)
{
	signal(SIGALRM, SIG_DFL); /* not the parent's handler: a child that hangs just dies of SIGALRM */
	alarm(CHILD_ALARM);
	int rc = 0;
	/* the forking thread's blocks came along: intact, and freeable here */
	for (int i = 0; i < 6 && !rc; i++)
		if (h->p[i] && !check_edges(h->p[i], h->n[i], tag + (unsigned)i))
			rc = CX_INHERITED;
	if (!rc)
		unhold(h);
	if (!rc)
		rc = child_alloc_work(tag, light);
	if (!rc && spawn) {
		/* a thread of the child's own, allocating while the child's main thread does */
		pthread_t t;
		if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(tag + 1000)) != 0) {
			rc = CX_THREAD;
		} else {
			int mine = 0;
			for (int k = 0; k < 4 && !mine; k++)
				mine = child_alloc_work(tag + 2000 + (unsigned)k, false);
			void *res;
			pthread_join(t, &res);
			rc = mine ? mine : (res ? CX_THREAD : 0);
		}
		/* and a grandchild, forked from this (multithreaded-before) process */
		if (!rc) {
			pid_t g = fork();
			if (g < 0) {
				rc = CX_FORK;
			} else if (g == 0) {
				alarm(CHILD_ALARM);
				int grc = child_alloc_work(tag + 3000, false);
				if (!grc && os_heap_check() != 0)
					grc = CX_CHECK;
				_exit(grc);
			} else {
				int st;
				while (waitpid(g, &st, 0) < 0 && errno == EINTR)
					;
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
					rc = CX_GRANDCHILD;
			}
		}
	}
	if (!rc && os_heap_check() != 0)
		rc = CX_CHECK;
	_exit(rc);
}

// ------------------------------------------------------------------
// Forking and waiting
// ------------------------------------------------------------------

struct fork_result {
	int forks, ok, overlapped;
	char error[300]; /* the first failure */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A child's end: a failure described in why (empty on success). */
static void judge_child(pid_t pid, int st, char *why, size_t cap)
{
	why[0] = 0;
	if (WIFSIGNALED(st))
		snprintf(why, cap, "child %d died of signal %d%s", (int)pid, WTERMSIG(st),
			 WTERMSIG(st) == SIGALRM ? " (SIGALRM: it hung, deadlock in the allocator?)" : "");
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		snprintf(why, cap, "child %d exited with %d: %s", (int)pid, WEXITSTATUS(st), cx_name(WEXITSTATUS(st)));
}

/* Children in flight: up to WINDOW at a time, so that the next forks happen while earlier children still run
 * (and on a slow machine the run does not wait on each child in turn). */
#define WINDOW 4

struct flight {
	pid_t pid; /* 0: slot free */
	int index;
	unsigned tag;
	double started;
	struct held h;
};

/* Reaps what has ended (or overstayed CHILD_TIMEOUT: killed); returns how many slots it freed. */
static int reap(struct flight *f, struct fork_result *res)
{
	int freed = 0;
	for (int s = 0; s < WINDOW; s++) {
		if (!f[s].pid)
			continue;
		int st;
		char why[200];
		pid_t r = waitpid(f[s].pid, &st, WNOHANG);
		if (r == 0) {
			if (now() - f[s].started < CHILD_TIMEOUT)
				continue;
			kill(f[s].pid, SIGKILL);
			while (waitpid(f[s].pid, &st, 0) < 0 && errno == EINTR)
				;
			snprintf(why, sizeof why, "child %d still running after %d s (deadlock?): killed", (int)f[s].pid,
				 CHILD_TIMEOUT);
		} else if (r < 0) {
			if (errno == EINTR)
				continue;
			snprintf(why, sizeof why, "waitpid: %s", strerror(errno));
		} else {
			judge_child(f[s].pid, st, why, sizeof why);
		}
		/* the parent's copies are its own: still intact after the child freed its copies */
		for (int k = 0; k < 6 && !why[0]; k++)
			if (!check_edges(f[s].h.p[k], f[s].h.n[k], f[s].tag + (unsigned)k))
				snprintf(why, sizeof why, "the parent's block %d changed across the fork", k);
		unhold(&f[s].h);
		if (why[0]) {
			if (!res->error[0])
				snprintf(res->error, sizeof res->error, "fork #%d: %s", f[s].index, why);
		} else {
			res->ok++;
		}
		f[s].pid = 0;
		freed++;
	}
	return freed;
}

/* Forks `count` children from the calling thread, WINDOW in flight at most; stops forking at the first failure. */
static void fork_loop(int count, bool spawn, bool light, unsigned base, struct fork_result *res)
{
	struct flight f[WINDOW];
	memset(f, 0, sizeof f);
	int i = 0, in_flight = 0;
	while ((i < count && !res->error[0]) || in_flight) {
		int slot = -1;
		for (int s = 0; s < WINDOW && slot < 0; s++)
			if (!f[s].pid)
				slot = s;
		if (slot >= 0 && i < count && !res->error[0]) {
			struct flight *fl = &f[slot];
			fl->index = i;
			fl->tag = base + (unsigned)i * 7;
			hold(&fl->h, fl->tag);
			for (int k = 0; k < 6; k++)
				if (!fl->h.p[k] && !res->error[0])
					snprintf(res->error, sizeof res->error, "malloc in the parent returned NULL");
			if (res->error[0]) {
				unhold(&fl->h);
				continue;
			}
			if (atomic_load_explicit(&in_alloc, memory_order_relaxed))
				res->overlapped++;
			pid_t pid = fork();
			if (pid < 0) {
				snprintf(res->error, sizeof res->error, "fork #%d: %s", i, strerror(errno));
				unhold(&fl->h);
				continue;
			}
			if (pid == 0)
				child_main(&fl->h, fl->tag, spawn, light && i % 10 != 0);
			fl->pid = pid;
			fl->started = now();
			res->forks++;
			in_flight++;
			i++;
		}
		int freed = reap(f, res);
		in_flight -= freed;
		if (!freed && (slot < 0 || i >= count || res->error[0])) {
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
		}
	}
}

struct forker_arg {
	int count;
	bool spawn, light;
	unsigned base;
	struct fork_result res;
};

static void *forker(void *arg)
{
	struct forker_arg *a = arg;
	fork_loop(a->count, a->spawn, a->light, a->base, &a->res);
	return NULL;
}

static int n_fail;

static void report(const char *name, const struct fork_result *r, int want)
{
	if (r->error[0] || r->ok != want) {
		printf("FAIL fork/%s: %s (%d of %d children fine)\n", name, r->error[0] ? r->error : "too few children",
		       r->ok, want);
		n_fail++;
	} else {
		printf("PASS fork/%s\n", name);
	}
	fflush(stdout);
}

static void on_global_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "FAIL fork/timeout: the parent did not finish in time (deadlock?)\n";
	if (write(1, msg, sizeof msg - 1) < 0)
		_exit(3);
	_exit(2);
}

static void start_workers(pthread_t *w)
{
	atomic_store(&stop_workers, 0);
	for (int i = 0; i < WORKERS; i++)
		if (pthread_create(&w[i], NULL, busy, (void *)(uintptr_t)(i + 1)) != 0) {
			printf("FAIL fork/setup: pthread_create\n");
			exit(1);
		}
	/* let them get going */
	long start = atomic_load(&worker_ops);
	double until = now() + 2.0;
	while (atomic_load(&worker_ops) < start + 256 && now() < until) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

static void stop_workers_and_check(pthread_t *w, const char *name)
{
	atomic_store(&stop_workers, 1);
	bool bad = false;
	for (int i = 0; i < WORKERS; i++) {
		void *res;
		pthread_join(w[i], &res);
		if (res)
			bad = true;
	}
	if (bad) {
		printf("FAIL fork/%s_workers: a busy thread of the parent saw a NULL or a corrupt block\n", name);
		n_fail++;
	}
	if (os_heap_check() != 0) {
		printf("FAIL fork/%s_parent_heap: os_heap_check() failed in the parent\n", name);
		n_fail++;
	}
}

int main(void)
{
	signal(SIGALRM, on_global_alarm);
	alarm(GLOBAL_ALARM);
	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_t w[WORKERS];

	/* 1: the main thread forks while four threads allocate */
	start_workers(w);
	struct fork_result r1 = { 0, 0, 0, "" };
	double t = now();
	fork_loop(FORKS_MAIN, false, true, 1, &r1);
	report("fork_from_main", &r1, FORKS_MAIN);
	stop_workers_and_check(w, "fork_from_main");
	printf("# fork_from_main: %d forks in %.1f s; %d of them with a busy thread inside the allocator\n", r1.forks,
	       now() - t, r1.overlapped);

	/* 2: a thread forks while the four others and the main thread allocate */
	start_workers(w);
	t = now();
	struct forker_arg fa = { FORKS_THREAD, false, true, 50000, { 0, 0, 0, "" } };
	pthread_t ft;
	if (pthread_create(&ft, NULL, forker, &fa) != 0) {
		printf("FAIL fork/fork_from_thread: pthread_create\n");
		return 1;
	}
	/* the main thread allocates too, until the forker is done (joined below) */
	int main_rc = 0;
	for (int k = 0; k < 30 && !main_rc; k++)
		main_rc = child_alloc_work(777 + (unsigned)k, false);
	pthread_join(ft, NULL);
	if (main_rc && !fa.res.error[0])
		snprintf(fa.res.error, sizeof fa.res.error, "the main thread's allocations failed: %s", cx_name(main_rc));
	report("fork_from_thread", &fa.res, FORKS_THREAD);
	printf("# fork_from_thread: %d forks in %.1f s; %d of them with a busy thread inside the allocator\n",
	       fa.res.forks, now() - t, fa.res.overlapped);
	stop_workers_and_check(w, "fork_from_thread");

	/* 3: children that start a thread of their own and fork a grandchild */
	start_workers(w);
	t = now();
	struct forker_arg fb = { FORKS_NESTED, true, false, 90000, { 0, 0, 0, "" } };
	if (pthread_create(&ft, NULL, forker, &fb) != 0) {
		printf("FAIL fork/child_spawns_thread: pthread_create\n");
		return 1;
	}
	pthread_join(ft, NULL);
	report("child_spawns_thread", &fb.res, FORKS_NESTED);
	printf("# child_spawns_thread: %d forks (each with a thread and a grandchild) in %.1f s\n", fb.res.forks,
	       now() - t);
	stop_workers_and_check(w, "child_spawns_thread");

	int rc = os_heap_check();
	if (rc != 0) {
		printf("FAIL fork/parent_heap_intact: os_heap_check() = %d\n", rc);
		n_fail++;
	} else {
		printf("PASS fork/parent_heap_intact\n");
	}
	return n_fail ? 1 : 0;
}
