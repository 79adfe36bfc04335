/* malloc_zero: the default profile's malloc(0) addresses (strict.c's reservation) with threads.
 *
 * This program links libosmem-malloc.a (as malloc_protect_exit_signal does), so that it can hold the heap lock
 * itself (osm_lock) and ask which addresses are the reservation's (osm_zero_owns). Cases:
 *  - threads_do_not_take_the_heap_lock: a thread's malloc(0), calloc(0, n), realloc(NULL, 0), realloc(z, 0) and
 *    free(z) while another thread holds the heap lock must all return. Until session 66 each took the lock for the
 *    reservation's bitmap: a loop where a third of the requests were malloc(0) ran 1.8x glibc's time with one
 *    thread and 12x with four. Before the fix this case waits for the lock until its 30 s are up;
 *  - live_addresses_unique: four threads take and free malloc(0) addresses, 64 live each, 1.2 million in all, so
 *    that the round of lines comes round several times and threads share lines; the program marks every address
 *    it holds in a bitmap of its own (an atomic OR that must find the bit clear), and checks that each one faults
 *    on no access it makes (it makes none) and comes from the reservation. An address handed out twice while live
 *    is a FAIL naming it;
 *  - counts_exact: os_stats' allocations and frees grow by exactly the malloc(0)s and frees the threads made
 *    (the counts are the lines' own, summed at the call);
 *  - full_reservation_serves_blocks: 270,000 live malloc(0)s, more than the reservation's 229,376 addresses: each
 *    returns a distinct pointer (blocks past the reservation's end), they all free, and after a few thousand more
 *    malloc(0)s the reservation serves again.
 *  - contended_full_scan_finds_free_line: the reservation full but for 64 addresses in one line, 8 new threads
 *    ask for 8 malloc(0)s each at once, 200 times: every request must get one of those addresses. A thread called
 *    the reservation full after 512 takes of the round of lines, which other threads also take from, so the line
 *    with the free addresses could be missed: 32-40 of the 12,800 requests got a block (session 66's review);
 * Prints `PASS zero/<case>` or `FAIL zero/<case>: why`. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osmem.h"
#define OSMEM_DROPIN /* the library's own build: malloc(0)'s reservation is the drop-in's */
#include "internal.h"

#define ZERO_LINES_TEST (ZERO_SLOTS / 512) /* strict.c's lines of 512 addresses (448 handed out) */
static int n_fail;
static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void (*volatile v_free)(void *) = free;

static void result(const char *name, const char *why)
{
	if (why && why[0]) {
		printf("FAIL zero/%s: %s\n", name, why);
		n_fail++;
	} else {
		printf("PASS zero/%s\n", name);
	}
	fflush(stdout);
}

// ------------------------------------------------------------------
// threads_do_not_take_the_heap_lock
// ------------------------------------------------------------------

static int ready[2], go[2], done[2];

static void *zero_worker(void *arg)
{
	(void)arg;
	void *w = v_malloc(0); /* this thread's first requests before the lock is held: its heap, its line */
	v_free(v_malloc(16));
	v_free(w);
	char c = 'r';
	if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
		return NULL;
	long bad = 0;
	for (int i = 0; i < 10000; i++) {
		void *a = v_malloc(0), *b = v_calloc(0, 8), *c0 = v_realloc(NULL, 0);
		bad += !a || !b || !c0 || !osm_zero_owns(a) || !osm_zero_owns(b) || !osm_zero_owns(c0);
		bad += v_realloc(a, 0) != NULL;
		v_free(b);
		v_free(c0);
	}
	c = bad ? 'b' : 'k';
	if (write(done[1], &c, 1) != 1)
		return NULL;
	return NULL;
}

static void t_lock_free(void)
{
	char why[200] = "";
	if (pipe(ready) || pipe(go) || pipe(done)) {
		result("threads_do_not_take_the_heap_lock", "pipe failed");
		return;
	}
	v_free(v_malloc(0));
	pthread_t t;
	if (pthread_create(&t, NULL, zero_worker, NULL)) {
		result("threads_do_not_take_the_heap_lock", "pthread_create failed");
		return;
	}
	char c;
	if (read(ready[0], &c, 1) != 1) { /* the worker's first requests, which may take the lock (its heap), are done */
		result("threads_do_not_take_the_heap_lock", "the worker's ready byte did not come");
		return;
	}
	osm_lock();
	c = 'g';
	if (write(go[1], &c, 1) != 1)
		snprintf(why, sizeof why, "write to the worker failed");
	/* 30 s for 10,000 rounds that take milliseconds: a busy machine does not make this fail, a lock does */
	struct pollfd pf = { .fd = done[0], .events = POLLIN };
	int r = why[0] ? 0 : poll(&pf, 1, 30000);
	if (!why[0] && r <= 0)
		snprintf(why, sizeof why, "the worker's malloc(0)/calloc(0, 8)/realloc/free rounds did not end within 30 s "
			 "while this thread held the heap lock: they wait for it");
	osm_unlock();
	if (r > 0 && read(done[0], &c, 1) == 1 && c != 'k')
		snprintf(why, sizeof why, "a zero-byte request returned NULL, an address outside the reservation, or "
			 "realloc(p, 0) did not return NULL");
	pthread_join(t, NULL);
	result("threads_do_not_take_the_heap_lock", why);
}

// ------------------------------------------------------------------
// live_addresses_unique, counts_exact
// ------------------------------------------------------------------

#define ROUNDS 300000
#define LIVE   64
static uint64_t held[ZERO_SLOTS / 64]; /* the addresses some thread holds now */
static long dup_count, outside_count;
static void *dup_addr;

static void hold(void *p, bool take)
{
	size_t i = (size_t)((char *)p - osm_zero_zone) / ZERO_STEP;
	uint64_t bit = (uint64_t)1 << (i % 64);
	if (take) {
		if (__atomic_fetch_or(&held[i / 64], bit, __ATOMIC_RELAXED) & bit) {
			__atomic_add_fetch(&dup_count, 1, __ATOMIC_RELAXED);
			dup_addr = p;
		}
	} else {
		__atomic_fetch_and(&held[i / 64], ~bit, __ATOMIC_RELAXED);
	}
}

static void *churn(void *arg)
{
	uint64_t x = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
	void *live[LIVE] = { 0 };
	for (int i = 0; i < ROUNDS; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		int k = (int)(x >> 58);
		if (live[k]) {
			hold(live[k], false);
			v_free(live[k]);
		}
		live[k] = (x >> 40) & 1 ? v_malloc(0) : v_calloc(0, 4);
		if (!live[k] || !osm_zero_owns(live[k])) {
			__atomic_add_fetch(&outside_count, 1, __ATOMIC_RELAXED);
			live[k] = NULL;
			continue;
		}
		hold(live[k], true);
	}
	for (int k = 0; k < LIVE; k++)
		if (live[k]) {
			hold(live[k], false);
			v_free(live[k]);
		}
	return NULL;
}

static void t_threads(void)
{
	struct os_stats a, b;
	os_stats(&a);
	pthread_t t[4];
	int made = 0;
	for (long i = 0; i < 4; i++)
		made += pthread_create(&t[i], NULL, churn, (void *)i) == 0;
	for (int i = 0; i < made; i++)
		pthread_join(t[i], NULL);
	os_stats(&b);
	char why[200] = "";
	if (made != 4)
		snprintf(why, sizeof why, "pthread_create failed");
	else if (dup_count)
		snprintf(why, sizeof why, "%ld addresses handed out while live in another thread, %p the last", dup_count,
			 dup_addr);
	else if (outside_count)
		snprintf(why, sizeof why, "%ld malloc(0)s returned NULL or a block outside the reservation, with at most "
			 "256 live", outside_count);
	result("live_addresses_unique", why);
	why[0] = 0;
	/* the threads' own requests: ROUNDS each; their heaps' first slots and the thread starts may add a few */
	size_t allocs = b.allocations - a.allocations, frees = b.frees - a.frees;
	if (allocs < 4 * (size_t)ROUNDS || allocs > 4 * (size_t)ROUNDS + 64 || allocs - frees > 64)
		snprintf(why, sizeof why, "os_stats counted %zu allocations and %zu frees for the threads' %d malloc(0)s "
			 "and their frees", allocs, frees, 4 * ROUNDS);
	result("counts_exact", why);
}

// ------------------------------------------------------------------
// full_reservation_serves_blocks
// ------------------------------------------------------------------

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

static void t_full(void)
{
	enum { N = 270000 };
	void **p = v_malloc(N * sizeof *p), **sorted = v_malloc(N * sizeof *p);
	char why[200] = "";
	size_t inside = 0, nulls = 0;
	for (size_t i = 0; i < N; i++) {
		p[i] = v_malloc(0);
		nulls += !p[i];
		inside += p[i] && osm_zero_owns(p[i]);
	}
	memcpy(sorted, p, N * sizeof *p);
	qsort(sorted, N, sizeof *sorted, cmp_ptr);
	size_t dups = 0;
	for (size_t i = 1; i < N; i++)
		dups += sorted[i] == sorted[i - 1];
	for (size_t i = 0; i < N; i++)
		v_free(p[i]);
	void *last = NULL;
	for (int i = 0; i < 4096; i++) {
		v_free(last);
		last = v_malloc(0);
	}
	if (nulls || dups)
		snprintf(why, sizeof why, "%zu of %d malloc(0)s returned NULL, %zu pointers twice", nulls, (int)N, dups);
	else if (inside < 220000 || inside == N)
		snprintf(why, sizeof why, "%zu of %d live malloc(0)s in the reservation (it holds 229,376; the rest must be "
			 "blocks)", inside, (int)N);
	else if (!osm_zero_owns(last))
		snprintf(why, sizeof why, "after the frees, malloc(0) still served a block (%p), not the reservation", last);
	v_free(last);
	v_free(p);
	v_free(sorted);
	result("full_reservation_serves_blocks", why);
}

// ------------------------------------------------------------------
// contended_full_scan_finds_free_line
// ------------------------------------------------------------------

#define ASKERS 8
static pthread_barrier_t askers_ready;
static void *asked[ASKERS][ASKERS];

static void *asker(void *arg)
{
	void **mine = asked[(uintptr_t)arg];
	pthread_barrier_wait(&askers_ready);
	for (int i = 0; i < ASKERS; i++)
		mine[i] = v_malloc(0);
	return NULL;
}

static void t_contended_full(void)
{
	enum { N = 240000, TRIALS = 200 };
	void **p = v_malloc(N * sizeof *p);
	size_t inside = 0, blocks = 0, missed = 0, asks = 0;
	char why[200] = "";
	for (size_t i = 0; i < N; i++) { /* the reservation full: the blocks past it are freed again */
		p[i] = v_malloc(0);
		if (p[i] && osm_zero_owns(p[i]))
			p[inside++] = p[i];
		else
			v_free(p[i]);
	}
	for (int t = 0; t < TRIALS && !why[0]; t++) {
		size_t line = (size_t)t * 37 % ZERO_LINES_TEST, freed = 0;
		for (size_t i = 0; i < inside && freed < ASKERS * ASKERS; i++) /* 64 free addresses, all in one line */
			if (p[i] && (size_t)((char *)p[i] - osm_zero_zone) / (512 * ZERO_STEP) == line) {
				v_free(p[i]);
				p[i] = NULL;
				freed++;
			}
		pthread_barrier_init(&askers_ready, NULL, ASKERS);
		pthread_t th[ASKERS];
		int made = 0;
		for (uintptr_t i = 0; i < ASKERS; i++)
			made += pthread_create(&th[made], NULL, asker, (void *)i) == 0;
		if (made != ASKERS) {
			snprintf(why, sizeof why, "pthread_create failed");
			for (int i = 0; i < made; i++) /* they wait at the barrier until the process ends */
				pthread_detach(th[i]);
			break;
		}
		for (int i = 0; i < ASKERS; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&askers_ready);
		size_t k = 0, got = 0;
		for (int i = 0; i < ASKERS; i++)
			for (int j = 0; j < ASKERS; j++) {
				void *q = asked[i][j];
				if (q && osm_zero_owns(q)) { /* back into a hole of p */
					while (p[k])
						k++;
					p[k] = q;
					got++;
				} else {
					blocks++;
					v_free(q);
				}
			}
		asks += ASKERS * ASKERS;
		missed += freed > got ? freed - got : 0;
	}
	if (!why[0] && (blocks || missed))
		snprintf(why, sizeof why, "%zu of %zu malloc(0)s served a block while %zu addresses of the reservation were "
			 "free (its lines not all looked at before it was called full)", blocks, asks, missed);
	for (size_t i = 0; i < inside; i++)
		v_free(p[i]);
	v_free(p);
	result("contended_full_scan_finds_free_line", why);
}

int main(void)
{
	t_lock_free();
	t_threads();
	t_full();
	t_contended_full();
	return n_fail != 0;
}
