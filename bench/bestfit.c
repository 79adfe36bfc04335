/* bestfit: the cost of one best-fit decision as the number of free holes grows, index against reference walk.
 *
 * For each N a child process builds a heap of N free holes (sizes 16..2048 from a fixed-seed PRNG) kept apart by
 * small allocated blocks so that they cannot coalesce. It then keeps N/8 of them in use through a table of
 * slots and times ops: an op frees a random slot's block (which goes back to being a hole: the next malloc's
 * coalescing pass merges it with what its split left over) and mallocs a random size (16..1536) into that slot,
 * which best fit serves from the holes. So about 7N/8 holes stay free at every moment, their sizes do not drift,
 * and the break never moves (requests stop at 1536 and a quarter of the holes are larger: never exhausted).
 * Why not simply malloc and free at once: best fit would then always pick the same hole for a given size (the
 * lowest-addressed one of the ~250 size classes), and a splay tree would serve those ~250 hot nodes from near its
 * root whatever N is. Keeping N/8 blocks out spreads the requests over ~N/8 different holes.
 * One op = one os_free + one os_malloc. Every measurement runs in a fresh child (the heap cannot be reset); the
 * figure is the median of the runs. The heap and the slots are built with the index (with the walk that would be
 * quadratic); the mode is switched just before the warm-up and the timed loop. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "osmem.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define HOLE_MIN     16
#define HOLE_MAX     2048
#define REQ_MAX      1536     /* requests: 16..REQ_MAX; about N/4 holes are larger, N/8 are ever in use */
#define IN_USE_DIV   8        /* N / IN_USE_DIV blocks are kept allocated (the slots) */
#define CHUNK        131032   /* the largest heap request: ALIGN(131032) + 32 < 128 KiB */
#define KEEPER       8        /* the separators: as small as a block can be, so the 1M heap stays near 1.1 GB */
#define WARMUP       1000L    /* untimed ops after the build, for at most WARMUP_LIMIT_S */
#define WARMUP_LIMIT_S 0.1
#define INDEX_OPS    1000000L
#define WALK_BUDGET  2e8      /* walk ops = max(WALK_MIN_OPS, WALK_BUDGET / N): the walk costs O(N) per op */
#define WALK_MIN_OPS 200L
#define LOOP_LIMIT_S 1.0      /* a timed loop also stops here: one walk over 2M blocks takes a good part of a second */
#define HEAP_CHECK_MAX_N 100000L /* the child checks the heap at the end; at 1M that check alone takes seconds */
#define MAX_RUNS     5
#define MIN_RUNS     3
#define RUN_BUDGET_S 15.0     /* per N and mode: fewer runs (not fewer than MIN_RUNS) when one run is slow */

struct result {
	double ns_per_op;
	long ops;       /* timed ops actually run */
	double build_s; /* building the heap of holes and the slots */
	long brk_moved; /* bytes the break moved during the timed loop: 0 when every request was served by a hole */
	int ok;
};

static uint64_t rng_state;

static inline uint64_t rng(void)
{
	/* xorshift64*: a few cycles, negligible against the op being timed */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static inline size_t hole_size(void) { return HOLE_MIN + (size_t)(rng() % (HOLE_MAX - HOLE_MIN + 1)); }
static inline size_t request_size(void) { return HOLE_MIN + (size_t)(rng() % (REQ_MAX - HOLE_MIN + 1)); }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void *take(void)
{
	void *p = os_malloc(request_size());
	if (!p)
		abort();
	*(volatile char *)p = 1; /* touch it, as a user would */
	return p;
}

static inline void one_op(void **slots, long nslots)
{
	long j = (long)(rng() % (uint64_t)nslots);
	os_free(slots[j]);
	slots[j] = take();
}

/* In the child: build the heap of n holes and the slots, then time up to `ops` ops in `mode`. */
static struct result measure(long n, enum bestfit_mode mode, long ops)
{
	struct result r = { 0, 0, 0, 0, 0 };
	rng_state = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;

	/* The pointer arrays live in a mapping, not in glibc's heap, so nothing but osmem moves the break. */
	long nslots = n / IN_USE_DIV > 0 ? n / IN_USE_DIV : 1;
	size_t arr_len = (size_t)(n + nslots) * sizeof(void *);
	void **holes = mmap(NULL, arr_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (holes == MAP_FAILED)
		return r;
	void **slots = holes + n;

	osm_set_bestfit_mode(BESTFIT_INDEX);
	double tb = now_s();

	/* Appending 2N blocks one by one would be 2N brk calls (the classic profile never grows the break by more than
	 * a request), which takes seconds at 1M. So the break is moved first in CHUNK steps, the chunks are freed
	 * (they coalesce into one free block) and the 2N blocks are then split off the front of it. */
	uint64_t saved = rng_state;
	size_t need = 0;
	for (long i = 0; i < n; i++)
		need += (hole_size() + 7) / 8 * 8 + META_SIZE + KEEPER + META_SIZE;
	rng_state = saved;
	long chunks = 0;
	for (size_t got = 0; got < need; got += CHUNK + META_SIZE)
		if (!(holes[chunks++] = os_malloc(CHUNK)))
			return r;
	/* Fault the heap's pages in with one call instead of one page fault per page (seconds at 1M on a VM). */
	uintptr_t lo = ((uintptr_t)holes[0] + 4095) & ~(uintptr_t)4095, hi = (uintptr_t)sbrk(0) & ~(uintptr_t)4095;
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE); /* Linux 5.14; older: faulted in as used */
	for (long i = 0; i < chunks; i++)
		os_free(holes[i]);

	for (long i = 0; i < n; i++) {
		holes[i] = os_malloc(hole_size());
		void *keeper = os_malloc(KEEPER);
		if (!holes[i] || !keeper)
			return r;
	}
	for (long i = 0; i < n; i++)
		os_free(holes[i]);
	for (long i = 0; i < nslots; i++)
		slots[i] = take();
	r.build_s = now_s() - tb;

	osm_set_bestfit_mode(mode);
	double warm_end = now_s() + WARMUP_LIMIT_S;
	for (long i = 0; i < WARMUP && now_s() < warm_end; i++)
		one_op(slots, nslots);

	/* The clock is read every 64 ops (every op for the walk, where one op is long): the loop ends at the op
	 * count or at LOOP_LIMIT_S, whichever comes first. */
	long mask = mode == BESTFIT_INDEX ? 63 : 0, done = 0;
	char *brk0 = sbrk(0);
	double t0 = now_s(), deadline = t0 + LOOP_LIMIT_S;
	while (done < ops) {
		one_op(slots, nslots);
		done++;
		if ((done & mask) == 0 && now_s() > deadline)
			break;
	}
	double t1 = now_s();
	char *brk1 = sbrk(0);

	r.ops = done;
	r.ns_per_op = (t1 - t0) * 1e9 / (double)done;
	r.brk_moved = (long)(brk1 - brk0);
	r.ok = n > HEAP_CHECK_MAX_N || os_heap_check() == 0;
	return r;
}

/* One measurement in a fresh child; returns 0 and fills *out, or -1 when the child failed. */
static int run_child(long n, enum bestfit_mode mode, long ops, struct result *out)
{
	int fd[2];
	if (pipe(fd) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fd[0]);
		struct result r = measure(n, mode, ops);
		ssize_t w = write(fd[1], &r, sizeof r);
		_exit(w == (ssize_t)sizeof r ? 0 : 1);
	}
	close(fd[1]);
	struct result r;
	ssize_t got = read(fd[0], &r, sizeof r);
	close(fd[0]);
	int status;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (got != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !r.ok) {
		fprintf(stderr, "bestfit: child for N=%ld mode=%d failed (status 0x%x, ok=%d)\n", n, (int)mode,
			status, got == (ssize_t)sizeof r ? r.ok : -1);
		return -1;
	}
	if (getenv("BESTFIT_VERBOSE"))
		fprintf(stderr, "  N=%ld %s: build %.2f s, %ld ops, %.1f ns/op\n", n,
			mode == BESTFIT_INDEX ? "index" : "walk", r.build_s, r.ops, r.ns_per_op);
	if (r.brk_moved != 0)
		fprintf(stderr, "bestfit: N=%ld mode=%d: the break moved by %ld bytes in the timed loop\n", n,
			(int)mode, r.brk_moved);
	*out = r;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median ns/op over up to MAX_RUNS children; *runs_out gets the number of runs and *ops_out the fewest timed
 * ops of a run. Returns NAN on failure. */
static double median_of_runs(long n, enum bestfit_mode mode, long ops, int *runs_out, long *ops_out)
{
	double v[MAX_RUNS];
	int runs = MAX_RUNS;
	*ops_out = ops;
	for (int i = 0; i < runs; i++) {
		struct result r;
		double t0 = now_s();
		if (run_child(n, mode, ops, &r) != 0)
			return NAN;
		double dt = now_s() - t0;
		v[i] = r.ns_per_op;
		if (r.ops < *ops_out)
			*ops_out = r.ops;
		if (i == 0 && dt * MAX_RUNS > RUN_BUDGET_S) {
			int fit = (int)(RUN_BUDGET_S / dt);
			runs = fit < MIN_RUNS ? MIN_RUNS : fit;
		}
	}
	qsort(v, (size_t)runs, sizeof v[0], cmp_double);
	*runs_out = runs;
	return runs % 2 ? v[runs / 2] : (v[runs / 2 - 1] + v[runs / 2]) / 2;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	static const long sizes[] = { 1000, 10000, 100000, 1000000 };
	double t_start = now_s();
	int failed = 0;

	printf("best fit over N free holes (%d..%d B), N/%d of them in use at any time; "
	       "op = os_free + os_malloc(%d..%d); median of runs\n",
	       HOLE_MIN, HOLE_MAX, IN_USE_DIV, HOLE_MIN, REQ_MAX);
	printf("%9s %13s %13s %11s %16s   %s\n", "N", "index ns/op", "walk ns/op", "walk/index",
	       "index/log2(N)", "timed ops x runs (index; walk)");
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		long n = sizes[k];
		long walk_ops = (long)(WALK_BUDGET / (double)n);
		if (walk_ops < WALK_MIN_OPS)
			walk_ops = WALK_MIN_OPS;
		int runs_i = 0, runs_w = 0;
		long ops_i = 0, ops_w = 0;
		double idx = median_of_runs(n, BESTFIT_INDEX, INDEX_OPS, &runs_i, &ops_i);
		double walk = median_of_runs(n, BESTFIT_WALK, walk_ops, &runs_w, &ops_w);
		if (isnan(idx) || isnan(walk))
			failed = 1;
		printf("%9ld %13.1f %13.1f %11.1f %16.2f   %ld x %d; %ld x %d\n", n, idx, walk, walk / idx,
		       idx / log2((double)n), ops_i, runs_i, ops_w, runs_w);
	}
	printf("total %.1f s\n", now_s() - t_start);
	return failed;
}
