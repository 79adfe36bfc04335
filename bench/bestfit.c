/* bestfit: the cost of one best-fit decision as the number of free holes grows, index against reference walk.
 *
 * For each N a child process builds a heap of N free holes (sizes 16..2048 from a fixed-seed PRNG) kept apart by
 * small allocated blocks so that they cannot coalesce, then times pairs of os_malloc(random size) + os_free: the
 * malloc takes the best-fitting hole (splitting it), the free gives it back, and the next malloc's coalescing pass
 * restores the hole, so the number and the sizes of the holes stay constant and the break never moves.
 * One op = one os_malloc + one os_free. Every measurement runs in a fresh child (the heap cannot be reset); the
 * figure is the median of the runs. The heap is always built with the index (building it with the walk would be
 * quadratic); the mode is switched just before the timed loop. */
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

#define HOLE_MIN     16
#define HOLE_MAX     2048
#define KEEPER       8        /* the separators: as small as a block can be, so the 1M heap stays near 1.1 GB */
#define WARMUP       1000L    /* untimed ops; the first one coalesces the N pending frees into the index */
#define INDEX_OPS    1000000L
#define WALK_BUDGET  2e8      /* walk ops = max(WALK_MIN_OPS, WALK_BUDGET / N): the walk costs O(N) per op */
#define WALK_MIN_OPS 200L
#define MAX_RUNS     5
#define MIN_RUNS     3
#define RUN_BUDGET_S 10.0     /* per N and mode: fewer runs (not fewer than MIN_RUNS) when one run is slow */

struct result {
	double ns_per_op;
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

static inline size_t rand_size(void)
{
	return HOLE_MIN + (size_t)(rng() % (HOLE_MAX - HOLE_MIN + 1));
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void one_op(void)
{
	void *p = os_malloc(rand_size());
	if (!p)
		abort();
	*(volatile char *)p = 1; /* touch it, as a user would */
	os_free(p);
}

/* In the child: build the heap of n holes, then time `ops` malloc/free pairs in `mode`. */
static struct result measure(long n, enum bestfit_mode mode, long ops)
{
	struct result r = { 0, 0, 0 };
	rng_state = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;

	/* The hole pointers live in a mapping, not in glibc's heap, so nothing but osmem moves the break. */
	size_t arr_len = (size_t)n * sizeof(void *);
	void **holes = mmap(NULL, arr_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (holes == MAP_FAILED)
		return r;

	osm_set_bestfit_mode(BESTFIT_INDEX);
	for (long i = 0; i < n; i++) {
		/* hole 0 has the largest size, so every request (<= HOLE_MAX) fits some hole */
		holes[i] = os_malloc(i == 0 ? HOLE_MAX : rand_size());
		void *keeper = os_malloc(KEEPER);
		if (!holes[i] || !keeper)
			return r;
	}
	for (long i = 0; i < n; i++)
		os_free(holes[i]);
	munmap(holes, arr_len);

	osm_set_bestfit_mode(mode);
	for (long i = 0; i < WARMUP; i++)
		one_op();

	char *brk0 = sbrk(0);
	double t0 = now_s();
	for (long i = 0; i < ops; i++)
		one_op();
	double t1 = now_s();
	char *brk1 = sbrk(0);

	r.ns_per_op = (t1 - t0) * 1e9 / (double)ops;
	r.brk_moved = (long)(brk1 - brk0);
	r.ok = os_heap_check() == 0;
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

/* Median ns/op over up to MAX_RUNS children; *runs_out gets the number of runs. Returns NAN on failure. */
static double median_of_runs(long n, enum bestfit_mode mode, long ops, int *runs_out)
{
	double v[MAX_RUNS];
	int runs = MAX_RUNS;
	for (int i = 0; i < runs; i++) {
		struct result r;
		double t0 = now_s();
		if (run_child(n, mode, ops, &r) != 0)
			return NAN;
		double dt = now_s() - t0;
		v[i] = r.ns_per_op;
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

	printf("best fit over N free holes (%d..%d B); op = os_malloc(random %d..%d) + os_free; median of runs\n",
	       HOLE_MIN, HOLE_MAX, HOLE_MIN, HOLE_MAX);
	printf("%9s %13s %13s %11s %16s   %s\n", "N", "index ns/op", "walk ns/op", "walk/index",
	       "index/log2(N)", "ops x runs (index; walk)");
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		long n = sizes[k];
		long walk_ops = (long)(WALK_BUDGET / (double)n);
		if (walk_ops < WALK_MIN_OPS)
			walk_ops = WALK_MIN_OPS;
		int runs_i = 0, runs_w = 0;
		double idx = median_of_runs(n, BESTFIT_INDEX, INDEX_OPS, &runs_i);
		double walk = median_of_runs(n, BESTFIT_WALK, walk_ops, &runs_w);
		if (isnan(idx) || isnan(walk))
			failed = 1;
		printf("%9ld %13.1f %13.1f %11.1f %16.2f   %ld x %d; %ld x %d\n", n, idx, walk, walk / idx,
		       idx / log2((double)n), INDEX_OPS, runs_i, walk_ops, runs_w);
	}
	printf("total %.1f s\n", now_s() - t_start);
	return failed;
}
