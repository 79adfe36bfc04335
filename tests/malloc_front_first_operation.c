/* malloc_front_first_operation: a thread whose first call into the allocator is a free of another thread's
 * object (snmalloc's `first_operation`).
 *
 * Hazard: the front layer creates a thread's cache lazily, in its first slow path. A thread that has none yet
 * must still free another thread's slot correctly: pushed onto the owner's page (remote free), never lost, never
 * written into an empty cache. The owner must get every such slot back (it collects them when its page runs
 * out), and os_stats must count them free. The same for a first call that is realloc or malloc_usable_size.
 * Prints `PASS front/first_operation/...` or `FAIL ...: why`. */
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osmem.h"

/* Behind volatile pointers: the compiler must not drop or fold the calls. */
static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
#define malloc(n) v_malloc(n)
#define free(p) v_free(p)
#define realloc(p, n) v_realloc(p, n)

#define N 64
static void *objs[N];
static int failures;

static void result(const char *name, const char *why)
{
	if (why) {
		printf("FAIL front/first_operation/%s: %s\n", name, why);
		failures++;
	} else {
		printf("PASS front/first_operation/%s\n", name);
	}
	fflush(stdout);
}

static void *free_all(void *arg)
{
	(void)arg;
	for (int i = 0; i < N; i++) /* the very first call of this thread: free */
		free(objs[i]);
	return NULL;
}

static void *realloc_first(void *arg)
{
	return realloc(arg, 40); /* the same size class: stays where it is */
}

static void *nothing(void *arg) { return arg; }

static void *usable_first(void *arg)
{
	return (void *)(uintptr_t)malloc_usable_size(arg);
}

static size_t front_in_use(void)
{
	struct os_stats st;
	os_stats(&st);
	return st.front_in_use;
}

int main(void)
{
	static char why[256];
	static char outbuf[1 << 14];
	setvbuf(stdout, outbuf, _IOLBF, sizeof outbuf); /* stdio's own buffer must not be a slot counted below */
	void *warm = malloc(64); /* main's cache exists, so the slots below come from main's page */
	struct os_stats st;
	os_stats(&st);
	if (!st.front_bytes || st.cache_hits + st.cache_misses == 0) {
		result("front_on", "the front layer is off (no front segment after malloc(64))");
		return 1;
	}
	/* glibc keeps a thread's stack and TLS vector (allocated with malloc) for the next thread: one thread first,
	 * so the counts below see only this test's slots */
	pthread_t t;
	pthread_create(&t, NULL, nothing, NULL);
	pthread_join(t, NULL);
	size_t base = front_in_use();
	for (int i = 0; i < N; i++) {
		objs[i] = malloc(64);
		memset(objs[i], 0xA5, 64);
	}
	size_t loaded = front_in_use();
	pthread_create(&t, NULL, free_all, NULL);
	pthread_join(t, NULL);
	size_t after = front_in_use();
	snprintf(why, sizeof why, "front_in_use %zu before, %zu with %d slots of 64, %zu after a thread freed them", base,
		 loaded, N, after);
	result("remote_free_counted", loaded == base + N * 64 && after == base ? NULL : why);

	/* main gets every one of them back before its page grows past one page's worth of new slots */
	static void *seen[2048];
	int back = 0;
	size_t k;
	for (k = 0; k < 2048 && back < N; k++) {
		seen[k] = malloc(64);
		for (int i = 0; i < N; i++)
			if (seen[k] == objs[i]) {
				back++;
				objs[i] = NULL;
			}
	}
	snprintf(why, sizeof why, "only %d of the %d remotely freed slots came back in %zu mallocs of 64", back, N, k);
	result("remote_free_reused", back == N ? NULL : why);
	for (size_t i = 0; i < k; i++)
		free(seen[i]);

	/* a first call that is realloc, and one that is malloc_usable_size */
	void *p = malloc(33), *q;
	memcpy(p, "first-operation", 16);
	pthread_create(&t, NULL, realloc_first, p);
	pthread_join(t, &q);
	result("realloc_first", q == p && memcmp(q, "first-operation", 16) == 0 ? NULL
	       : "realloc(p, 40) of a 48-byte slot by a fresh thread moved it or lost its bytes");
	void *u;
	pthread_create(&t, NULL, usable_first, q);
	pthread_join(t, &u);
	result("usable_size_first", (uintptr_t)u == 48 ? NULL : "malloc_usable_size of a 48-byte slot is not 48");
	free(q);
	free(warm);
	result("in_use_back", front_in_use() == base - 64 ? NULL : "front_in_use did not come back to its start");
	return failures != 0;
}
