/* malloc_front_carve: the front's segments carved from the heap's free memory (front.c, seg_carve).
 *
 * Hazard: a program that alternates phases of medium blocks (the heap) and of small objects (the front's
 * segments) kept both resident: the front mapped fresh segments beside the heap's free, resident pages, and the
 * next phase of medium blocks faulted the heap in again beside the segments (bench/workloads/patterns.c, phases:
 * 231 MB at the peak against glibc's 164). Each case runs in a child of its own, whose heap starts as the parent's.
 *   - small_phase_reuses_freed_heap: 24 MB of 5000-byte blocks freed, then 600,000 objects of 16 bytes (9.6 MB):
 *     most of them lie in the span the blocks took, and the resident set grows by less than half of them.
 *   - released_segment_goes_back_to_heap: a thread makes those 16-byte objects, frees them and exits; its
 *     segments go back to the heap (the front's segment bytes fall back), and medium blocks made next lie where
 *     the segments were.
 *   - medium_block_over_released_segment_is_not_cached: those medium blocks, written in their first 8 bytes only
 *     (not the second word, where a freed slot kept its mark), are freed once each. The first version reported a
 *     double free: a cached medium block's mark was the slots' mark, which the released segment's memory still
 *     held at the very addresses the blocks landed on (internal.h, medium_mark).
 *   - stale_slot_pointer_into_released_segment_reported: a free of one of those 16-byte objects after its segment
 *     went back to the heap is reported (the child dies by SIGABRT with osmem's message), not taken.
 *   - realloc_of_carved_segment_start_reported: realloc of a carved segment's start, to a size its block could
 *     keep, is reported as an invalid pointer, not handed to the program with the front's pages in it.
 *   - last_page_spares_next_header: a carved segment ends 32 bytes short of its 4 MiB, where the heap block after
 *     it keeps its header; malloc_trim, which gives back the free 4 KiB inside the front's pages, must not give
 *     back the last 4 KiB of such a segment (front.c, seg_tail_kept): the heap check stays clean and medium blocks
 *     are still served.
 *   - kept_segments_go_back_as_heap_grows: 20 MB of 1 KiB objects freed leave SEGS_KEEP empty segments kept for
 *     the next burst; then 60 MB of medium blocks grow the heap while the front takes nothing. The kept segments
 *     stayed resident beside the heap (16 MB in patterns' phases); now they go once the heap has grown 32 MiB past
 *     the front's last use of its pool (front.c, spare_mark): at most two segments are left (the thread's pages).
 *   - threads_carve_and_release_concurrently: four threads, each in turn a phase of medium blocks and one of small
 *     objects, the neighbour thread freeing half of each phase's blocks: carving and giving back from several
 *     threads at once, every byte checked, the heap check clean, and some small objects in the heap (carved).
 *   - carved_churn_keeps_no_mapped_segments: a segment mapped within a second of one given back doubles how many
 *     fully free mapped segments the front keeps (a program building in rounds); carved ones given back and carved
 *     again counted too, and after six threads' carved segments came and went, 72 MB of freed mapped segments
 *     stayed. Carving saves the faults a kept mapping saves, so it no longer counts.
 * Prints `PASS front/carve/...` or `FAIL ...: why`. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

#define FRONT_SEG_SIZE ((size_t)4 << 20) /* src/internal.h: one segment */
#define MED 5000
#define NMED ((24u << 20) / MED)
#define SMALL 16
#define NSMALL 600000u

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static char *med[NMED], *small[NSMALL];
static char *lo, *hi; /* the span the medium blocks took */

static void result(const char *name, const char *why)
{
	if (why)
		printf("FAIL front/carve/%s: %s\n", name, why);
	else
		printf("PASS front/carve/%s\n", name);
	fflush(stdout);
}

/* The medium phase: NMED blocks written whole, then freed; lo and hi bound them. */
static int medium_phase(void)
{
	lo = hi = NULL;
	for (size_t i = 0; i < NMED; i++) {
		if (!(med[i] = v_malloc(MED)))
			return 0;
		memset(med[i], 1, MED);
		lo = !lo || med[i] < lo ? med[i] : lo;
		hi = med[i] + MED > hi ? med[i] + MED : hi;
	}
	for (size_t i = 0; i < NMED; i++)
		v_free(med[i]);
	return 1;
}

/* The small phase: NSMALL objects, each written; how many lie in [lo, hi). */
static size_t small_phase(int *ok)
{
	size_t inside = 0;
	*ok = 1;
	for (size_t i = 0; i < NSMALL; i++) {
		if (!(small[i] = v_malloc(SMALL))) {
			*ok = 0;
			return inside;
		}
		memset(small[i], 2, 8);
		inside += small[i] >= lo && small[i] < hi;
	}
	return inside;
}

static size_t front_bytes(void)
{
	struct os_stats s;
	os_stats(&s);
	return s.front_bytes;
}

static int reuse_case(void)
{
	char why[400];
	if (!medium_phase()) {
		result("small_phase_reuses_freed_heap", "malloc(5000) returned NULL (test setup)");
		return 1;
	}
	memset(small, 1, sizeof small); /* the test's own 4.8 MB of pointers, resident before the count */
	long before = tu_rss_kib();
	int ok;
	size_t inside = small_phase(&ok);
	long grew = tu_rss_kib() - before;
	if (!ok) {
		result("small_phase_reuses_freed_heap", "malloc(16) returned NULL (test setup)");
		return 1;
	}
	if (inside < NSMALL / 2 || grew > (long)(NSMALL * SMALL / 2 / 1024) || os_heap_check() != 0) {
		snprintf(why, sizeof why, "24 MB of %d-byte blocks freed, then %u objects of %d bytes: %zu of them lie in "
			 "the freed span (want at least half) and the resident set grew by %ld KiB (want at most %u: the "
			 "front's segments come from the heap's free memory), heap check %s", MED, NSMALL, SMALL, inside,
			 grew, NSMALL * SMALL / 2 / 1024, os_heap_check() == 0 ? "clean" : "failed");
		result("small_phase_reuses_freed_heap", why);
		return 1;
	}
	result("small_phase_reuses_freed_heap", NULL);
	return 0;
}

static size_t thread_inside;
static int thread_ok;

static void *small_thread(void *arg)
{
	(void)arg;
	thread_inside = small_phase(&thread_ok);
	for (size_t i = 0; i < NSMALL; i++)
		v_free(small[i]);
	return NULL;
}

/* Whether p lies in a 4 MiB segment that held one of the thread's objects (their segments, by address). */
static int in_old_segment(const char *p)
{
	uintptr_t seg = (uintptr_t)p & ~(FRONT_SEG_SIZE - 1);
	for (size_t i = 0; i < NSMALL; i += 1024)
		if (((uintptr_t)small[i] & ~(FRONT_SEG_SIZE - 1)) == seg)
			return 1;
	return 0;
}

static int release_case(void)
{
	char why[400];
	pthread_t t;
	if (!medium_phase()) {
		result("released_segment_goes_back_to_heap", "malloc(5000) returned NULL (test setup)");
		return 1;
	}
	size_t seg0 = front_bytes();
	if (pthread_create(&t, NULL, small_thread, NULL) != 0 || pthread_join(t, NULL) != 0 || !thread_ok) {
		result("released_segment_goes_back_to_heap", "the thread's malloc(16) failed (test setup)");
		return 1;
	}
	size_t seg1 = front_bytes();
	/* medium blocks again, the second word left as the memory had it */
	enum { N = 6000, SZ = 3000 };
	static char *m[N];
	size_t over = 0;
	for (size_t i = 0; i < N; i++) {
		if (!(m[i] = v_malloc(SZ))) {
			result("released_segment_goes_back_to_heap", "malloc(3000) returned NULL (test setup)");
			return 1;
		}
		memcpy(m[i], &i, sizeof i);
		over += in_old_segment(m[i]);
	}
	int fail = 0;
	if (thread_inside < NSMALL / 2 || seg1 > seg0 + FRONT_SEG_SIZE || over < N / 4) {
		snprintf(why, sizeof why, "a thread made %u objects of %d bytes (%zu of them in the freed span of 24 MB of "
			 "medium blocks: want at least half), freed them and exited: the front's segments took %zu bytes "
			 "before it, %zu after (want at most one segment more), and %zu of %d medium blocks made next lie "
			 "where its segments were (want at least a quarter: the segments went back to the heap)", NSMALL,
			 SMALL, thread_inside, seg0, seg1, over, N);
		result("released_segment_goes_back_to_heap", why);
		fail = 1;
	} else {
		result("released_segment_goes_back_to_heap", NULL);
	}
	for (size_t i = 0; i < N; i++) /* a stale slot mark read as a cached block's: "double free", and abort */
		v_free(m[i]);
	if (os_heap_check() != 0) {
		result("medium_block_over_released_segment_is_not_cached", "the heap check failed after the frees");
		return 1;
	}
	result("medium_block_over_released_segment_is_not_cached", over ? NULL :
	       "no medium block landed on the released segments (test setup: see released_segment_goes_back_to_heap)");
	return fail | !over;
}

/* Free one of the thread's objects after its segment went back to the heap (in a child: tu_death_case). */
static char *stale;

static void free_stale(void)
{
	tu_say_addr(stale);
	v_free(stale);
}

static int stale_case(void)
{
	pthread_t t;
	if (!medium_phase() || pthread_create(&t, NULL, small_thread, NULL) != 0 || pthread_join(t, NULL) != 0 ||
	    !thread_ok) {
		result("stale_slot_pointer_into_released_segment_reported", "test setup failed");
		return 1;
	}
	for (size_t i = 0; i < NSMALL && !stale; i += 997)
		if (small[i] >= lo && small[i] < hi)
			stale = small[i];
	if (!stale) {
		result("stale_slot_pointer_into_released_segment_reported", "no object lay in the freed span (test setup)");
		return 1;
	}
	return !tu_death_case("front/carve", "", "stale_slot_pointer_into_released_segment_reported", free_stale, "free",
			      "invalid pointer");
}

/* A carved segment's start is an allocated heap block with a sound header, and no pointer malloc returned:
 * realloc of it to a size its block could keep (within an eighth of 4 MiB) took realloc's lock-free way for large
 * heap blocks, which returned the segment as the program's (two reviews, session 58): the program's writes then
 * wiped the page descriptors, and a later free of a live slot was reported as invalid. */
static char *carved_seg;

static void *(*volatile v_realloc)(void *, size_t) = realloc;

static void realloc_seg(void)
{
	tu_say_addr(carved_seg);
	char *q = v_realloc(carved_seg, FRONT_SEG_SIZE - 4096);
	if (q)
		memset(q, 0, FRONT_SEG_SIZE - 4096); /* what a program does with what realloc gave */
}

static int realloc_seg_case(void)
{
	int ok;
	if (!medium_phase() || small_phase(&ok) < NSMALL / 2 || !ok) {
		result("realloc_of_carved_segment_start_reported", "no small object in the freed heap span (test setup)");
		return 1;
	}
	for (size_t i = 0; i < NSMALL && !carved_seg; i += 997)
		if (small[i] >= lo && small[i] < hi)
			carved_seg = (char *)((uintptr_t)small[i] & ~(FRONT_SEG_SIZE - 1));
	return !tu_death_case("front/carve", "", "realloc_of_carved_segment_start_reported", realloc_seg, "realloc",
			      "invalid pointer");
}

/* 16-byte objects fill carved segments, every 4 KiB keeps one object but the last 4 KiB of each 64 KiB page,
 * whose objects are all freed; malloc_trim gives those back, but not where the heap's next header lies. */
static int tail_case(void)
{
	char why[400];
	if (!medium_phase()) {
		result("last_page_spares_next_header", "malloc(5000) returned NULL (test setup)");
		return 1;
	}
	int ok;
	size_t inside = small_phase(&ok);
	if (!ok || inside < NSMALL / 2) {
		snprintf(why, sizeof why, "%zu of %u objects of %d bytes in the freed span (test setup: want half)", inside,
			 NSMALL, SMALL);
		result("last_page_spares_next_header", why);
		return 1;
	}
	size_t kept = 0;
	for (size_t i = 0; i < NSMALL; i++) {
		uintptr_t a = (uintptr_t)small[i];
		if ((a & 0xffff) >= 0xf000 || (a & 0xfff) != 0) /* the last 4 KiB of a page go whole; else one a 4 KiB */
			v_free(small[i]);
		else
			kept++;
	}
	malloc_trim(0);
	int clean = os_heap_check() == 0;
	enum { N = 4000 };
	static char *m[N];
	for (size_t i = 0; clean && i < N; i++) {
		m[i] = v_malloc(MED);
		clean = m[i] != NULL;
		if (clean)
			memset(m[i], 3, MED);
	}
	for (size_t i = 0; clean && i < N; i++)
		v_free(m[i]);
	clean = clean && os_heap_check() == 0;
	if (!clean) {
		snprintf(why, sizeof why, "16-byte objects in carved segments, %zu kept (one a 4 KiB, none in the last 4 KiB "
			 "of a page), then malloc_trim(0): the heap check or the next medium blocks failed (the trim must "
			 "keep a carved segment's last 4 KiB, where the next block's header lies)", kept);
		result("last_page_spares_next_header", why);
		return 1;
	}
	result("last_page_spares_next_header", NULL);
	return 0;
}

/* mib MiB of 1 KiB objects, each written, then all freed; false (reported under name) if malloc failed. */
static int kib_burst(size_t mib, const char *name)
{
	static char *o[(80 << 20) / 1024];
	size_t n = (mib << 20) / 1024;
	for (size_t i = 0; i < n; i++) {
		if (!(o[i] = v_malloc(1024))) {
			result(name, "malloc(1024) returned NULL (test setup)");
			return 0;
		}
		memset(o[i], (int)mib, 1024);
	}
	for (size_t i = 0; i < n; i++)
		v_free(o[i]);
	return 1;
}

static int kept_case(void)
{
	char why[400];
	enum { N2 = (60 << 20) / MED };
	static char *m2[N2];
	if (!kib_burst(20, "kept_segments_go_back_as_heap_grows"))
		return 1;
	size_t kept = front_bytes();
	for (size_t i = 0; i < N2; i++) {
		if (!(m2[i] = v_malloc(MED))) {
			result("kept_segments_go_back_as_heap_grows", "malloc(5000) returned NULL (test setup)");
			return 1;
		}
		memset(m2[i], 5, MED);
	}
	size_t after = front_bytes();
	if (kept < 4 * FRONT_SEG_SIZE || after > 2 * FRONT_SEG_SIZE) {
		snprintf(why, sizeof why, "20 MB of 1 KiB objects freed left %zu bytes of segments (test setup: "
			 "want the 4 kept and the thread's, at least %zu); 60 MB of medium blocks later, %zu (want at "
			 "most two segments, %zu: the kept ones go as the heap grows past them)", kept,
			 4 * FRONT_SEG_SIZE, after, 2 * FRONT_SEG_SIZE);
		result("kept_segments_go_back_as_heap_grows", why);
		return 1;
	}
	result("kept_segments_go_back_as_heap_grows", NULL);
	return 0;
}

enum { TT = 4, TN = 40000 };
static char **tv[TT];
static size_t *tlen[TT];
static pthread_barrier_t tbar;
static int tbad;
static size_t tin_heap;
static char *theap_lo; /* the heap's first medium block: the front's range lies far below or above the heap */

static void tcheck(const char *p, size_t len, size_t i)
{
	if (p[0] != (char)i || p[len - 1] != (char)i)
		__atomic_store_n(&tbad, 1, __ATOMIC_RELAXED);
}

static void *phase_thread(void *arg)
{
	size_t id = (size_t)(uintptr_t)arg, next = (id + 1) % TT;
	uint64_t seed = id * 7919 + 1;
	for (int round = 0; round < 4; round++) {
		size_t n = round % 2 ? TN : TN / 16, lo = round % 2 ? 8 : 2048, hi = round % 2 ? 600 : 20000;
		for (size_t i = 0; i < n; i++) {
			size_t len = lo + (size_t)(tu_rng(&seed) % (hi - lo));
			char *p = v_malloc(len);
			if (!p) {
				__atomic_store_n(&tbad, 1, __ATOMIC_RELAXED);
				return NULL;
			}
			memset(p, (int)(i & 255), len);
			tv[id][i] = p;
			tlen[id][i] = len;
			if (round % 2 && p >= theap_lo && p < (char *)sbrk(0))
				__atomic_fetch_add(&tin_heap, 1, __ATOMIC_RELAXED);
		}
		pthread_barrier_wait(&tbar);
		for (size_t i = 1; i < n; i += 2) { /* the neighbour's odd ones: remote frees */
			tcheck(tv[next][i], tlen[next][i], i);
			v_free(tv[next][i]);
		}
		pthread_barrier_wait(&tbar);
		for (size_t i = 0; i < n; i += 2) {
			tcheck(tv[id][i], tlen[id][i], i);
			v_free(tv[id][i]);
		}
		pthread_barrier_wait(&tbar);
	}
	return NULL;
}

static int threads_case(void)
{
	char why[300];
	pthread_t t[TT];
	/* a heap with free memory to carve from: the first round's medium blocks come after this one's free */
	if (!medium_phase())
		return 1;
	theap_lo = lo;
	pthread_barrier_init(&tbar, NULL, TT);
	for (size_t i = 0; i < TT; i++) {
		tv[i] = malloc(TN * sizeof *tv[i]);
		tlen[i] = malloc(TN * sizeof *tlen[i]);
		if (!tv[i] || !tlen[i] || pthread_create(&t[i], NULL, phase_thread, (void *)(uintptr_t)i) != 0) {
			result("threads_carve_and_release_concurrently", "test setup failed");
			return 1;
		}
	}
	for (size_t i = 0; i < TT; i++)
		pthread_join(t[i], NULL);
	int clean = os_heap_check() == 0;
	if (tbad || !clean || !tin_heap) {
		snprintf(why, sizeof why, "four threads in phases of medium blocks and small objects, half freed by "
			 "the neighbour: %s, heap check %s, %zu small objects in the heap (want some: carved segments)",
			 tbad ? "a block lost its bytes or malloc failed" : "every byte kept",
			 clean ? "clean" : "failed", tin_heap);
		result("threads_carve_and_release_concurrently", why);
		return 1;
	}
	result("threads_carve_and_release_concurrently", NULL);
	return 0;
}

/* Carved segments given back and carved again within a second must not count as a program building in rounds,
 * which doubles the mapped segments kept fully free (segs_hold, up to 64): only a mapping saves faults there. */
static int hold_case(void)
{
	char why[300];
	pthread_t t;
	if (!medium_phase())
		return 1;
	for (int r = 0; r < 6; r++) /* threads whose segments are carved from the freed span and given back at exit */
		if (pthread_create(&t, NULL, small_thread, NULL) != 0 || pthread_join(t, NULL) != 0 || !thread_ok) {
			result("carved_churn_keeps_no_mapped_segments", "test setup failed");
			return 1;
		}
	if (!kib_burst(80, "carved_churn_keeps_no_mapped_segments"))
		return 1;
	size_t left = front_bytes();
	if (left > 6 * FRONT_SEG_SIZE) {
		snprintf(why, sizeof why, "after six threads' segments were carved and given back, 80 MB of 1 KiB "
			 "objects were made and freed: %zu bytes of segments stay (want at most six segments: the kept "
			 "four and the thread's; carving is no round of mapping)", left);
		result("carved_churn_keeps_no_mapped_segments", why);
		return 1;
	}
	result("carved_churn_keeps_no_mapped_segments", NULL);
	return 0;
}

int main(void)
{
	int r = tu_in_child("front/carve", "small_phase_reuses_freed_heap", reuse_case);
	r |= tu_in_child("front/carve",
			 "released_segment_goes_back_to_heap, medium_block_over_released_segment_is_not_cached",
			 release_case);
	r |= tu_in_child("front/carve", "stale_slot_pointer_into_released_segment_reported", stale_case);
	r |= tu_in_child("front/carve", "realloc_of_carved_segment_start_reported", realloc_seg_case);
	r |= tu_in_child("front/carve", "last_page_spares_next_header", tail_case);
	r |= tu_in_child("front/carve", "kept_segments_go_back_as_heap_grows", kept_case);
	r |= tu_in_child("front/carve", "threads_carve_and_release_concurrently", threads_case);
	r |= tu_in_child("front/carve", "carved_churn_keeps_no_mapped_segments", hold_case);
	return r;
}
