/* malloc_front_slow_start: a thread's first objects of a size class while many threads live (front.c,
 * starter_core).
 *
 * Hazard: a thread's first object of a class took a page of the thread's own, a 4 KiB page faulted in for one or
 * two objects. A program of many threads that each keep a few objects of many sizes paid that page per thread and
 * class: 500 threads of 40 objects of 16 B..2 KB (bench/workloads/patterns.c, manythreads) peaked at 61-69 MiB
 * resident, glibc at 27. Now a thread born while 16 or more other threads have heaps (SLOW_START_THREADS) leaves a
 * class's first requests to the core, until they would fill 4 KiB, and takes a page only then. Each case runs in
 * a child of its own, after WARM threads that hold objects (so that enough threads have heaps):
 *   - many_threads_take_no_page_for_a_few_objects: NEW threads each make one object in each of CLASSES size
 *     classes and wait. The bytes of the front's pages assigned to classes (os_stats front_page_bytes) must not
 *     grow meanwhile (before: a 64 KiB page per thread and class, 250 MiB assigned for 200 threads), and the
 *     resident set grows by less than 64 KiB a thread (before: about 120).
 *   - starter_objects_freed_by_any_thread: those objects (core blocks) are checked byte by byte, half freed by
 *     the main thread and half by the threads that made them; the heap check stays clean.
 *   - few_big_objects_take_no_page: the same with NEW threads that each make 3 objects of 1,400 bytes and 2 of
 *     2,000 (the classes of 1,408 and 2,048): a class's page came once its objects would fill 4 KiB as core
 *     blocks, so each thread took two pages, a 4 KiB faulted in for one object in each (manythreads' 40 objects
 *     of 16 B..2 KB: 33 MiB resident with all alive, glibc 27). Now once they would fill 8 KiB (SLOW_START_BYTES):
 *     no page for them (manythreads 30 MiB, and 0.89 of the time, 20 pairs, p 0.004);
 *   - thread_takes_pages_once_it_keeps_allocating: one more thread makes 2,000 objects of 64 bytes; the core
 *     serves only its first few dozen, the front the rest (os_stats: allocations against cache hits and misses).
 * Prints `PASS front/slow_start/...` or `FAIL ...: why`. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

#define WARM    24   /* threads started first, holding their objects: more than front.c's SLOW_START_THREADS */
#define NEW     200  /* threads born after them */
#define CLASSES 20   /* objects a thread makes, each of another size class: 16, 116, ..., 1916 bytes */
#define BIGS    5    /* few_big_objects_take_no_page: objects a thread makes, of 2 classes above 1 KiB */
#define STACK   ((size_t)128 << 10)

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static pthread_barrier_t made, go;
static unsigned char *obj[WARM + NEW][CLASSES];
static int bad; /* objects whose bytes were not what their thread wrote */

static bool big; /* few_big_objects_take_no_page's shape: BIGS objects a thread, 3 of 1400 bytes and 2 of 2000 */
static size_t n_obj(void) { return big ? BIGS : CLASSES; }
static size_t obj_size(size_t i) { return big ? (i < 3 ? 1400 : 2000) : 16 + i * 100; }
static uint64_t obj_seed(size_t t, size_t i) { return (uint64_t)t * 1000 + i + 1; }

static void result(const char *name, const char *why)
{
	if (why)
		printf("FAIL front/slow_start/%s: %s\n", name, why);
	else
		printf("PASS front/slow_start/%s\n", name);
	fflush(stdout);
}

/* Thread t: its CLASSES objects, written; then waits until released, checks and frees the odd ones (the main
 * thread frees the even ones). */
static void *holder(void *arg)
{
	size_t t = (size_t)(uintptr_t)arg;
	for (size_t i = 0; i < n_obj(); i++) {
		obj[t][i] = v_malloc(obj_size(i));
		if (obj[t][i])
			pat_fill(obj[t][i], obj_seed(t, i), 0, obj_size(i));
	}
	pthread_barrier_wait(&made);
	pthread_barrier_wait(&go);
	for (size_t i = 1; i < n_obj(); i += 2)
		if (obj[t][i]) {
			if (pat_check(obj[t][i], obj_seed(t, i), 0, obj_size(i)) != obj_size(i))
				__atomic_fetch_add(&bad, 1, __ATOMIC_RELAXED);
			v_free(obj[t][i]);
		}
	return NULL;
}

/* Starts threads [from, to) as holders with small stacks; false if one could not be created. */
static bool start(pthread_t *th, size_t from, size_t to)
{
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, STACK);
	bool ok = true;
	for (size_t t = from; t < to && ok; t++)
		ok = pthread_create(&th[t], &at, holder, (void *)(uintptr_t)t) == 0;
	pthread_attr_destroy(&at);
	return ok;
}

static bool all_made(size_t from, size_t to)
{
	for (size_t t = from; t < to; t++)
		for (size_t i = 0; i < n_obj(); i++)
			if (!obj[t][i])
				return false;
	return true;
}

static int many_case_named(const char *name, const char *freed_name)
{
	static pthread_t th[WARM + NEW];
	char why[600];
	pthread_barrier_init(&made, NULL, WARM + 1);
	pthread_barrier_init(&go, NULL, WARM + NEW + 1);
	if (!start(th, 0, WARM)) {
		result(name, "pthread_create failed (test setup)");
		return 1;
	}
	pthread_barrier_wait(&made); /* the warm threads have their heaps and objects */
	pthread_barrier_destroy(&made);
	pthread_barrier_init(&made, NULL, NEW + 1);
	struct os_stats s0, s1;
	os_stats(&s0);
	long rss0 = tu_rss_kib();
	if (!start(th, WARM, WARM + NEW)) {
		result(name, "pthread_create failed (test setup)");
		return 1;
	}
	pthread_barrier_wait(&made);
	long grew = tu_rss_kib() - rss0;
	os_stats(&s1);
	int r = 0;
	if (!all_made(0, WARM + NEW)) {
		result(name, "malloc returned NULL (test setup)");
		r = 1;
	} else if (s1.front_page_bytes > s0.front_page_bytes + 4 * ((size_t)64 << 10) || grew > NEW * 64L) {
		snprintf(why, sizeof why, "%d threads alive, then %d more made %s: the front's pages assigned to "
			 "classes grew from %zu to %zu KiB (want no more than 4 pages: a thread's first objects of a "
			 "class go to the core while many threads live, until they would fill 8 KiB) and the resident "
			 "set grew by %ld KiB, %ld a thread (want under 64)", WARM, NEW,
			 big ? "3 objects of 1400 bytes and 2 of 2000 each" : "one object each of 20 size classes "
			 "(16..1916 bytes)", s0.front_page_bytes >> 10, s1.front_page_bytes >> 10, grew, grew / NEW);
		result(name, why);
		r = 1;
	} else {
		result(name, NULL);
	}
	/* the even objects freed here, by a thread that did not make them; the odd ones by their own threads */
	for (size_t t = 0; t < WARM + NEW; t++)
		for (size_t i = 0; i < n_obj(); i += 2)
			if (obj[t][i]) {
				if (pat_check(obj[t][i], obj_seed(t, i), 0, obj_size(i)) != obj_size(i))
					bad++;
				v_free(obj[t][i]);
			}
	pthread_barrier_wait(&go);
	for (size_t t = 0; t < WARM + NEW; t++)
		pthread_join(th[t], NULL);
	int check = os_heap_check();
	if (bad || check != 0) {
		snprintf(why, sizeof why, "%d of %d objects did not hold the bytes their threads wrote when freed, "
			 "heap check %s", bad, (int)((WARM + NEW) * n_obj()), check == 0 ? "clean" : "failed");
		result(freed_name, why);
		return 1;
	}
	result(freed_name, NULL);
	return r;
}

static int many_case(void)
{
	return many_case_named("many_threads_take_no_page_for_a_few_objects", "starter_objects_freed_by_any_thread");
}

static int big_case(void)
{
	big = true;
	return many_case_named("few_big_objects_take_no_page", "few_big_objects_freed_by_any_thread");
}

#define KEEP 2000
static void *keeper(void *arg)
{
	void **p = arg;
	for (size_t i = 0; i < KEEP; i++)
		p[i] = v_malloc(64);
	return NULL;
}

static int keep_case(void)
{
	static pthread_t th[WARM];
	static void *p[KEEP];
	char why[400];
	pthread_barrier_init(&made, NULL, WARM + 1);
	pthread_barrier_init(&go, NULL, WARM + 1);
	if (!start(th, 0, WARM)) {
		result("thread_takes_pages_once_it_keeps_allocating", "pthread_create failed (test setup)");
		return 1;
	}
	pthread_barrier_wait(&made);
	struct os_stats s0, s1;
	os_stats(&s0);
	pthread_t k;
	bool ok = pthread_create(&k, NULL, keeper, p) == 0 && pthread_join(k, NULL) == 0;
	os_stats(&s1);
	size_t all = s1.allocations - s0.allocations;
	size_t front = (s1.cache_hits + s1.cache_misses) - (s0.cache_hits + s0.cache_misses);
	size_t core = all - front, nulls = 0;
	for (size_t i = 0; i < KEEP; i++) {
		nulls += !p[i];
		v_free(p[i]);
	}
	pthread_barrier_wait(&go);
	for (size_t t = 0; t < WARM; t++)
		pthread_join(th[t], NULL);
	if (!ok || nulls) {
		result("thread_takes_pages_once_it_keeps_allocating",
		       "pthread_create failed or malloc returned NULL (test setup)");
		return 1;
	}
	if (front < KEEP - 100 || core < 10) {
		snprintf(why, sizeof why, "%d threads alive, then one more made %d objects of 64 bytes: %zu came "
			 "from the front and %zu from the core (want the core's slow start for the first few dozen, at "
			 "least 10, and the front's pages for the rest, at least %d)", WARM, KEEP, front, core,
			 KEEP - 100);
		result("thread_takes_pages_once_it_keeps_allocating", why);
		return 1;
	}
	result("thread_takes_pages_once_it_keeps_allocating", NULL);
	return 0;
}

int main(void)
{
	int r = tu_in_child("front/slow_start",
			    "many_threads_take_no_page_for_a_few_objects, starter_objects_freed_by_any_thread",
			    many_case);
	r |= tu_in_child("front/slow_start", "few_big_objects_take_no_page, few_big_objects_freed_by_any_thread",
			 big_case);
	r |= tu_in_child("front/slow_start", "thread_takes_pages_once_it_keeps_allocating", keep_case);
	return r;
}
