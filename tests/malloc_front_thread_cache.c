/* malloc_front_thread_cache: the thread caches of small slots (front.c, "thread cache"): per class a LIFO of slots
 * the thread freed into its own pages, which its next malloc of the class takes before any page.
 *
 * Hazards, each a named case:
 *  - a cached slot is still counted as used by its page: statistics must show it as cached, not in use, and a
 *    thread that exits or a malloc_trim must give every cached slot back to its page (else the page never empties
 *    and an exited thread's pages stay abandoned with slots nobody will ever hand out);
 *  - a cache that overflows gives its older half back to the pages: no slot may be lost or handed out twice;
 *  - the slot freed last is the one handed out next (the cache's point: its line is hot).
 * Prints `PASS front/thread_cache/<case>` or `FAIL ...: why`. Default profile only. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osmem.h"

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

static int n_fail;

static void check(const char *name, int ok, const char *why)
{
	printf("%s front/thread_cache/%s%s%s\n", ok ? "PASS" : "FAIL", name, ok ? "" : ": ", ok ? "" : why);
	n_fail += !ok;
}

static struct os_stats stats(void)
{
	struct os_stats st;
	os_stats(&st);
	return st;
}

#define N 100

static void *churn(void *arg)
{
	size_t size = (size_t)(uintptr_t)arg;
	void *p[N];
	for (int i = 0; i < N; i++)
		p[i] = v_malloc(size);
	for (int i = 0; i < N; i++)
		v_free(p[i]);
	return NULL;
}

int main(void)
{
	char why[256];

	/* the slot freed last comes back first */
	void *a = v_malloc(48), *b = v_malloc(48);
	v_free(a);
	v_free(b);
	void *c = v_malloc(48), *d = v_malloc(48);
	snprintf(why, sizeof why, "freed %p then %p, got %p then %p", a, b, c, d);
	check("lifo", c == b && d == a, why);
	v_free(c);
	v_free(d);

	/* freed slots are cached, not in use (a first thread before the baseline: glibc keeps a little of what it
	 * allocates for the first thread it creates) */
	for (size_t size = 16; size <= 2048; size *= 2) {
		pthread_t t;
		pthread_create(&t, NULL, churn, (void *)(uintptr_t)size);
		pthread_join(t, NULL);
	}
	malloc_trim(0);
	struct os_stats s0 = stats();
	void *p[N];
	for (int i = 0; i < 10; i++)
		p[i] = v_malloc(64);
	struct os_stats s1 = stats();
	for (int i = 0; i < 10; i++)
		v_free(p[i]);
	struct os_stats s2 = stats();
	snprintf(why, sizeof why, "front_in_use %zu, %zu with 10 slots of 64, %zu after their frees; cached %zu, %zu",
		 s0.front_in_use, s1.front_in_use, s2.front_in_use, s0.front_cached_blocks, s2.front_cached_blocks);
	check("cached_not_in_use", s1.front_in_use == s0.front_in_use + 640 && s2.front_in_use == s0.front_in_use &&
	      s2.front_cached_blocks == s0.front_cached_blocks + 10 &&
	      s2.front_cached_bytes == s0.front_cached_bytes + 640, why);

	/* malloc_trim gives the cache back to the pages */
	malloc_trim(0);
	struct os_stats s3 = stats();
	snprintf(why, sizeof why, "cached blocks %zu before malloc_trim, %zu after; front_in_use %zu, %zu at the start",
		 s2.front_cached_blocks, s3.front_cached_blocks, s3.front_in_use, s0.front_in_use);
	check("trim_gives_back", s3.front_cached_blocks == 0 && s3.front_in_use == s0.front_in_use, why);

	/* a thread that exits gives its cache back: its pages empty, nothing stays in use */
	for (size_t size = 16; size <= 2048; size *= 2) {
		pthread_t t;
		pthread_create(&t, NULL, churn, (void *)(uintptr_t)size);
		pthread_join(t, NULL);
	}
	struct os_stats s4 = stats();
	snprintf(why, sizeof why, "front_in_use %zu after 8 threads freed all they allocated and exited, %zu before; "
		 "cached %zu", s4.front_in_use, s3.front_in_use, s4.front_cached_blocks);
	check("thread_exit_gives_back", s4.front_in_use == s3.front_in_use && s4.front_cached_blocks == 0, why);

	/* overflow: 3 x N frees of one class, more than the cache holds; every slot comes back once, none is lost */
	void *q[3 * N];
	for (int i = 0; i < 3 * N; i++)
		q[i] = v_malloc(16);
	for (int i = 0; i < 3 * N; i++)
		v_free(q[i]);
	struct os_stats s5 = stats();
	void *r[3 * N];
	int dup = 0;
	for (int i = 0; i < 3 * N; i++) {
		r[i] = v_malloc(16);
		memset(r[i], 0x5a, 16);
		for (int j = 0; j < i; j++)
			dup += r[j] == r[i];
	}
	struct os_stats s6 = stats();
	snprintf(why, sizeof why, "%d slots handed out twice; cached %zu after %d frees (at most 64 of 16 bytes); "
		 "front_in_use %zu with %d live, %zu before", dup, s5.front_cached_blocks, 3 * N, s6.front_in_use, 3 * N,
		 s3.front_in_use);
	check("overflow_loses_nothing", dup == 0 && s5.front_cached_blocks <= 64 &&
	      s6.front_in_use == s3.front_in_use + 3 * N * 16, why);
	for (int i = 0; i < 3 * N; i++)
		v_free(r[i]);
	return n_fail != 0;
}
