/* malloc_front_segments: a program whose small objects come and go in bursts.
 *
 * Hazard: the front layer unmaps a segment (4 MiB) as soon as it is wholly free and another free one is kept.
 * A program that allocates a few segments' worth of small objects, frees them and allocates them again (sqlite3
 * between its statements) then maps the segments afresh each time and faults every page in again: on this
 * machine a fault costs ten times what writing the page costs. With one free segment kept, sqlite3 faulted in
 * 35,500 pages to glibc's 24,400; with four, 29,400 at the same peak RSS (97.4 MiB; front.c, SEGS_KEEP).
 * Checked:
 *   - burst_reuses_segments: rounds of 12 MiB of 1 KiB objects (three segments' worth), all freed at the end of
 *     each round; after the first round, the next ones map no segment;
 *   - free_segments_given_back_without_rounds: 40 MiB of such objects freed the first time: all but the kept
 *     segments go back at once, for a program that frees what it built and goes idle (the next check's first
 *     version kept them all until the next request to the core);
 *   - free_segments_kept_for_the_next_round: after a few rounds of those 40 MiB, their ten segments stay mapped
 *     (up to SEGS_HOLD: each segment mapped within a second of one given back doubles what is kept), and the next
 *     round maps nothing: before, all but SEGS_KEEP went back at each round's end, and a program that built and
 *     freed a million small objects in rounds faulted them in again each time (20 rounds: 210,000 page faults,
 *     0.84 s; mimalloc 0.33 s);
 *   - free_segments_bounded: a request to the core takes back as many of them as it asks for (malloc of 5 MiB:
 *     two), so they do not stay resident under the heap's growth, and a large one all but SEGS_KEEP + 2 (the kept
 *     ones, and the one or two that the thread's current and empty pages still sit in);
 *   - idle_pool_pages_given_back: the pages of those segments, free in the pool, were resident to the exit (a
 *     program whose threads freed what they had kept all of it: 8 threads that freed 20,000 objects of 1000 bytes
 *     each kept 48 MiB while they waited, glibc 2). Once a second has gone by, a request that reaches the core
 *     gives them back (front.c, pool_decay): at most the pages the thread keeps for itself stay.
 *   - idle_pool_pages_given_back_by_cache_hits: the same, when every request after the frees is one the thread
 *     cache serves: the caches' frees call the decay every FRONT_TICK (front.c, osm_front_tick); before, only a
 *     request that reached the core did, and the pages stayed resident for as long as the program lived on its
 *     caches. Until session 52 the hits ran 50 times 100,000 pairs and 100 ms, which a loaded machine got
 *     through before the decay's passes (a second apart) had given everything back (289 pages left, 224 wanted);
 *     now they run until the pages are back or 15 s of wall-clock time have gone by.
 * Prints `PASS front/segments/...` or `FAIL ...: why`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "osmem.h"

#define FRONT_SEG_SIZE ((size_t)4 << 20) /* src/internal.h: one segment */
#define SEGS_KEEP 4                      /* src/front.c: fully free segments kept mapped */
#define EMPTY_KEEP 8                     /* src/front.c: empty pages a thread keeps */
#define PAGE_PAGES 16                    /* a front page is 64 KiB: 16 pages of 4 KiB */
#define OBJ 1024

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static int failures;

static void result(const char *name, const char *why)
{
	if (why) {
		printf("FAIL front/segments/%s: %s\n", name, why);
		failures++;
	} else {
		printf("PASS front/segments/%s\n", name);
	}
	fflush(stdout);
}

/* n objects of OBJ bytes, every page written, then all freed (in allocation order); false if malloc failed */
static int burst(void **p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		p[i] = v_malloc(OBJ);
		if (!p[i])
			return 0;
		memset(p[i], (int)i, OBJ);
	}
	for (size_t i = 0; i < n; i++)
		v_free(p[i]);
	return 1;
}

/* Resident 4 KiB pages of the segments that held p[0..n): each counted once (mincore; 0 where unmapped). */
static size_t segments_resident(void **p, size_t n)
{
	static uintptr_t seen[64];
	static unsigned char vec[FRONT_SEG_SIZE / 4096];
	size_t nseen = 0, count = 0;
	for (size_t i = 0; i < n; i++) {
		uintptr_t seg = (uintptr_t)p[i] & ~(FRONT_SEG_SIZE - 1);
		size_t k = 0;
		while (k < nseen && seen[k] != seg)
			k++;
		if (k < nseen || nseen == 64)
			continue;
		seen[nseen++] = seg;
		if (mincore((void *)seg, FRONT_SEG_SIZE, vec) == 0)
			for (size_t j = 0; j < sizeof vec; j++)
				count += vec[j] & 1;
	}
	return count;
}

int main(void)
{
	static void *p[(40 << 20) / OBJ];
	char why[300];
	struct os_stats s0, s1;

	size_t n = (12 << 20) / OBJ;
	if (!burst(p, n)) {
		result("burst_reuses_segments", "malloc(1024) returned NULL (test setup)");
		return 1;
	}
	os_stats(&s0);
	int ok = 1;
	for (int r = 0; r < 4; r++)
		ok &= burst(p, n);
	os_stats(&s1);
	if (!ok) {
		result("burst_reuses_segments", "malloc(1024) returned NULL (test setup)");
	} else if (s1.mmap_calls != s0.mmap_calls || s1.munmap_calls != s0.munmap_calls) {
		snprintf(why, sizeof why, "4 more rounds of 12 MiB of 1 KiB objects, allocated and freed, made %zu mmap and "
			 "%zu munmap calls (want 0 and 0: the first round's segments stay mapped for the next)",
			 s1.mmap_calls - s0.mmap_calls, s1.munmap_calls - s0.munmap_calls);
		result("burst_reuses_segments", why);
	} else {
		result("burst_reuses_segments", NULL);
	}

	/* 40 MiB of 1 KiB objects freed once, no round before: all but the kept segments go back at once */
	size_t all = sizeof p / sizeof p[0];
	if (!burst(p, all)) {
		result("free_segments_given_back_without_rounds", "malloc(1024) returned NULL (test setup)");
		return 1;
	}
	os_stats(&s1);
	size_t segs = s1.front_bytes / FRONT_SEG_SIZE;
	if (segs > SEGS_KEEP + 2) {
		snprintf(why, sizeof why, "after 40 MiB of 1 KiB objects were freed, the first time, %zu segments stay mapped "
			 "(want at most %d: the kept free ones and the one or two that hold the thread's current and empty "
			 "pages; a program that does not build again gets the rest back at once)", segs, SEGS_KEEP + 2);
		result("free_segments_given_back_without_rounds", why);
	} else {
		result("free_segments_given_back_without_rounds", NULL);
	}

	/* Rounds of the same 40 MiB: each segment mapped within a second of one given back doubles what is kept, so
	 * after a few rounds the ten segments stay mapped for the next, which maps nothing */
	int again = 1;
	for (int r = 0; r < 4 && again; r++)
		again = burst(p, all);
	os_stats(&s0);
	again = again && burst(p, all);
	os_stats(&s1);
	segs = s1.front_bytes / FRONT_SEG_SIZE;
	if (!again) {
		result("free_segments_kept_for_the_next_round", "malloc(1024) returned NULL (test setup)");
	} else if (segs < 9 || s1.mmap_calls != s0.mmap_calls || s1.munmap_calls != s0.munmap_calls) {
		snprintf(why, sizeof why, "after 5 rounds of 40 MiB of 1 KiB objects, %zu segments stayed mapped, and a 6th "
			 "made %zu mmap and %zu munmap calls (want 9 or more, 0 and 0: the free segments wait for the next "
			 "round, front.c segs_hold)", segs, s1.mmap_calls - s0.mmap_calls, s1.munmap_calls - s0.munmap_calls);
		result("free_segments_kept_for_the_next_round", why);
	} else {
		result("free_segments_kept_for_the_next_round", NULL);
	}

	/* A request to the core takes as many of them back as it asks for (5 MiB: two segments), and a larger one
	 * all but the SEGS_KEEP kept ones (and the one or two that hold the thread's current and EMPTY_KEEP empty
	 * pages, which are not free). */
	void *big = v_malloc(5 << 20);
	os_stats(&s0);
	size_t gone = segs - s0.front_bytes / FRONT_SEG_SIZE;
	v_free(big);
	big = v_malloc(64 << 20);
	os_stats(&s1);
	v_free(big);
	size_t left = s1.front_bytes / FRONT_SEG_SIZE;
	if (!big || gone != 2 || left > SEGS_KEEP + 2) {
		snprintf(why, sizeof why, "with %zu segments mapped and free, malloc(5 MiB) gave back %zu of them and "
			 "malloc(64 MiB) left %zu mapped (want 2, then at most %d: the kept free ones and the one or two "
			 "that hold the thread's current and empty pages)", segs, gone, left, SEGS_KEEP + 2);
		result("free_segments_bounded", why);
	} else {
		result("free_segments_bounded", NULL);
	}

	if (!burst(p, all)) {
		result("idle_pool_pages_given_back", "malloc(1024) returned NULL (test setup)");
		return 1;
	}
	size_t before = segments_resident(p, all), after = before;
	const size_t keep = (EMPTY_KEEP + 2) * PAGE_PAGES + 64; /* the thread's empty and current pages, descriptors */
	int rounds = 0;
	os_stats(&s0);
	while (rounds < 3 && after > keep) { /* a second idle, then a request that reaches the core (above 64 KiB) */
		usleep(1050000);
		void *q = v_malloc(100000);
		v_free(q);
		rounds++;
		after = segments_resident(p, all);
	}
	if (before < 1000) {
		snprintf(why, sizeof why, "after 40 MiB of 1 KiB objects were freed, the segments that held them had only %zu "
			 "pages resident (test setup: want the kept segments' pages, 1000 or more)", before);
		result("idle_pool_pages_given_back", why);
	} else if (after > keep) {
		snprintf(why, sizeof why, "the segments that held 40 MiB of freed 1 KiB objects kept %zu of their pages "
			 "resident (%zu right after the frees) through %d idle seconds, each ended by a request that reaches "
			 "the core (want at most %zu: pool pages idle a second go back)", after, before, rounds, keep);
		result("idle_pool_pages_given_back", why);
	} else {
		result("idle_pool_pages_given_back", NULL);
		os_stats(&s1);
		size_t counted = s1.idle_released - s0.idle_released, gone = (before - after) * 4096;
		if (counted < gone / 2 || counted > ((size_t)40 << 20)) {
			snprintf(why, sizeof why, "the pool's idle pages went back (%zu KiB no longer resident) and os_stats "
				 "counts %zu KiB in idle_released (want at least half of that, at most the 40 MiB freed)",
				 gone >> 10, counted >> 10);
			result("idle_pool_pages_counted", why);
		} else {
			result("idle_pool_pages_counted", NULL);
		}
	}

	/* The same burst again, and then only requests the thread cache serves (malloc and free of 64 bytes): none
	 * reaches the core, so before the caches' frees called the decay (front.c, osm_front_tick) the pool's pages
	 * stayed resident however long the program ran on. Cache hits for up to HITS_S seconds of wall-clock time
	 * (not a count of rounds: a busy machine makes fewer passes of the decay in as many rounds), looked at every
	 * 100 ms. */
	if (!burst(p, all)) {
		result("idle_pool_pages_given_back_by_cache_hits", "malloc(1024) returned NULL (test setup)");
		return 1;
	}
	before = after = segments_resident(p, all);
	os_stats(&s0);
	unsigned long long pairs = 0;
	enum { HITS_S = 15 };
	struct timespec t0, t1;
	double took = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (after > keep && took < HITS_S) {
		for (int k = 0; k < 100000; k++, pairs++)
			v_free(v_malloc(64));
		usleep(100000);
		after = segments_resident(p, all);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	}
	os_stats(&s1);
	if (s1.cache_misses - s0.cache_misses > 2 || s1.bytes_requested != s0.bytes_requested) {
		snprintf(why, sizeof why, "%llu malloc/free pairs of 64 bytes made %zu cache misses and asked the core for "
			 "%zu bytes (test setup: want cache hits only)", pairs, s1.cache_misses - s0.cache_misses,
			 s1.bytes_requested - s0.bytes_requested);
		result("idle_pool_pages_given_back_by_cache_hits", why);
	} else if (before < 1000 || after > keep) {
		snprintf(why, sizeof why, "the segments that held 40 MiB of freed 1 KiB objects had %zu pages resident "
			 "after the frees and %zu after %llu malloc/free pairs of 64 bytes, all cache hits, over %.1f s (want "
			 "1000 or more, then at most %zu within %d s: the caches' frees call the pool's decay)", before, after,
			 pairs, took, keep, HITS_S);
		result("idle_pool_pages_given_back_by_cache_hits", why);
	} else {
		result("idle_pool_pages_given_back_by_cache_hits", NULL);
	}
	return failures ? 1 : 0;
}
