/* malloc_mapcache: the default profile keeps a freed mapping of 32 MiB or more for the next request that size
 * (src/heap.c, "The mapping cache"), so that a program which frees a big buffer and asks for another (a frame per
 * frame, an array temporary per expression) does not map it afresh and fault every page in again (16,384 faults,
 * about 22 ms here, per 64 MiB). What the cache must never do, each guarded here: hand calloc pages that are not
 * zero, or fault in what calloc's program never touches; keep a mapping much longer than the request; keep what
 * malloc_trim asks back, or what no request wants for a second; keep more than four; let a second free of a kept
 * block pass. Prints `PASS mapcache/<case>` or `FAIL mapcache/<case>: why`. */
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

#define MiB ((size_t)1 << 20)

static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void (*volatile v_free)(void *) = free;

static int failures;

static void verdict(const char *name, int ok, const char *why)
{
	if (ok && os_heap_check() == 0) {
		printf("PASS mapcache/%s\n", name);
	} else {
		printf("FAIL mapcache/%s: %s%s\n", name, ok ? "os_heap_check failed after: " : "", why);
		failures++;
	}
}

static long minor_faults(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* The mapping cache's figures, from os_stats_print's `kept ...` lines (os_stats counts them within
 * front_cached_*, with the front's caches). */
struct kept { size_t maps, bytes, reused, mmaps, munmaps, populates; };

static size_t stat_line(const char *text, const char *name)
{
	const char *at = strstr(text, name);
	size_t v = SIZE_MAX;
	if (at && sscanf(at + strlen(name), " %zu", &v) != 1)
		v = SIZE_MAX;
	return v;
}

static struct kept kept_now(void)
{
	struct kept k = { SIZE_MAX, SIZE_MAX, SIZE_MAX, 0, 0, SIZE_MAX };
	int fds[2];
	static char text[16384];
	if (pipe(fds) != 0)
		return k;
	os_stats_print(fds[1]);
	close(fds[1]);
	ssize_t n = read(fds[0], text, sizeof text - 1);
	close(fds[0]);
	text[n > 0 ? n : 0] = 0;
	k.maps = stat_line(text, "kept mappings ");
	k.bytes = stat_line(text, "kept mapping bytes");
	k.reused = stat_line(text, "kept mappings reused");
	k.populates = stat_line(text, "populate calls");
	struct os_stats st;
	os_stats(&st);
	k.mmaps = st.mmap_calls;
	k.munmaps = st.munmap_calls;
	return k;
}

/* Every page of [p, p + n) written (what a program filling its buffer does). */
static void touch(char *p, size_t n, int v)
{
	for (size_t i = 0; i < n; i += 4096)
		p[i] = (char)v;
	p[n - 1] = (char)v;
}

/* Gives back whatever the cache holds, so that each case starts from none. */
static void empty_cache(void) { malloc_trim(0); }

/* The cache emptied, then one block of n bytes written and freed: its mapping kept. */
static void leave_kept(size_t n)
{
	empty_cache();
	char *a = v_malloc(n);
	touch(a, n, 1);
	v_free(a);
}

/* A block of `kept` bytes written and freed (its mapping kept), then one of n bytes asked for and every page of it
 * written, then freed: the cache's figures around the request, and the page faults the writing made. */
struct reuse { bool got; long faults; struct kept s0, s1; };

static struct reuse reuse_after(size_t kept, size_t n)
{
	struct reuse r;
	leave_kept(kept);
	r.s0 = kept_now();
	long f0 = minor_faults();
	char *b = v_malloc(n);
	if (b)
		touch(b, n, 2);
	r.faults = minor_faults() - f0;
	r.s1 = kept_now();
	r.got = b != NULL;
	v_free(b);
	return r;
}

static void big_block_reused_without_faults(void)
{
	char why[300];
	struct reuse r = reuse_after(40 * MiB, 40 * MiB);
	snprintf(why, sizeof why, "a 40 MiB block freed and asked for again made %zu mmap calls and %ld page faults, "
		 "and %zu requests were served by a kept mapping (want 0, fewer than 1000 of its 10240 pages, 1)",
		 r.s1.mmaps - r.s0.mmaps, r.faults, r.s1.reused - r.s0.reused);
	verdict("big_block_reused_without_faults",
		r.got && r.s1.mmaps == r.s0.mmaps && r.faults < 1000 && r.s1.reused == r.s0.reused + 1, why);
}

/* The first byte of each 512 not zero in [p, p + n), or SIZE_MAX. */
static size_t first_dirty(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 512)
		if (p[i] || p[i + 511])
			return i;
	return SIZE_MAX;
}

/* How many of the len bytes' pages from p's first whole page are resident (mincore), or SIZE_MAX when it cannot
 * tell (p NULL, len above 99 MiB, mincore refused). */
static size_t resident_pages(const unsigned char *p, size_t len)
{
	static unsigned char vec[99 * MiB / 4096];
	if (!p || len > 99 * MiB)
		return SIZE_MAX;
	char *lo = (char *)(((uintptr_t)p + 4095) & ~(uintptr_t)4095);
	if (mincore(lo, len, vec) != 0)
		return SIZE_MAX;
	size_t n = 0;
	for (size_t i = 0; i < len / 4096; i++)
		n += vec[i] & 1;
	return n;
}

/* calloc takes a kept mapping too and zeroes what the freed block left: written, when its pages are resident
 * (a fresh mapping would fault every one in again), given back, when most were never touched (writing them would
 * fault them all in). Before session 43 calloc never took one, and the blocks it freed were kept all the same:
 * 40 rounds of calloc, write and free of 64 MiB held four kept mappings beside each new one (329 MB, glibc 67)
 * and faulted every page in afresh (1.81 s; now 0.09). */
static void calloc_takes_kept_mapping(void)
{
	char why[400];
	empty_cache();
	size_t most = 0, bad = SIZE_MAX;
	struct kept s0 = kept_now();
	for (int round = 0; round < 4 && bad == SIZE_MAX; round++) {
		unsigned char *c = v_calloc(1, 40 * MiB);
		if (!c)
			break;
		bad = first_dirty(c, 40 * MiB);
		memset(c, 0xab, 40 * MiB);
		v_free(c);
		struct kept k = kept_now();
		most = k.maps > most ? k.maps : most;
	}
	struct kept s1 = kept_now();
	snprintf(why, sizeof why, "4 rounds of calloc(1, 40 MiB), every byte written 0xab, freed: %s at byte %zu, at "
		 "most %zu mappings kept after a round, %zu callocs served by a kept mapping (want zeroes, 1, 3)",
		 bad == SIZE_MAX ? "zeroes" : "not zero", bad == SIZE_MAX ? 0 : bad, most, s1.reused - s0.reused);
	verdict("calloc_takes_kept_mapping", bad == SIZE_MAX && most == 1 && s1.reused - s0.reused == 3, why);
	empty_cache();
}

/* os_calloc, the drop-in's os_* API in the default profile, shares calloc's core: the same zeros from a kept
 * mapping (its first version zeroed only heap blocks there, and handed a kept mapping's old bytes out). */
static void os_calloc_zeroes_kept_mapping(void)
{
	char why[300];
	leave_kept(40 * MiB);
	struct kept s0 = kept_now();
	unsigned char *c = os_calloc(1, 40 * MiB);
	struct kept s1 = kept_now();
	size_t bad = c ? first_dirty(c, 40 * MiB) : 0;
	os_free(c);
	snprintf(why, sizeof why, "os_calloc(1, 40 MiB) after a written 40 MiB block was freed: %s at byte %zu, %zu "
		 "served by a kept mapping (want zeroes, 1)", !c ? "NULL" : bad == SIZE_MAX ? "zeroes" : "not zero",
		 bad == SIZE_MAX ? 0 : bad, s1.reused - s0.reused);
	verdict("os_calloc_zeroes_kept_mapping", c && bad == SIZE_MAX && s1.reused == s0.reused + 1, why);
	empty_cache();
}

/* A kept mapping of which the freed block touched one page in 16: calloc gets zeroes, and the pages it was not
 * given back are not resident (zero_kept gave them back rather than write 40 MiB of zeros into pages that were
 * never used). */
static void calloc_of_sparse_kept_mapping_stays_sparse(void)
{
	char why[400];
	empty_cache();
	char *a = v_malloc(40 * MiB);
	for (size_t i = 0; a && i < 40 * MiB; i += 16 * 4096)
		a[i] = 1;
	v_free(a);
	struct kept s0 = kept_now();
	unsigned char *c = v_calloc(1, 40 * MiB);
	struct kept s1 = kept_now();
	size_t resident = resident_pages(c, 39 * MiB); /* before the zeros are read: a read maps the zero page */
	size_t bad = c ? first_dirty(c, 40 * MiB) : 0;
	v_free(c);
	snprintf(why, sizeof why, "calloc(1, 40 MiB) after a 40 MiB block with one page in 16 written was freed: %s at "
		 "byte %zu, %zu of its pages resident before the zeros were read, %zu served by a kept mapping, %zu "
		 "populates counted (want zeroes, at most 1,000 of 9,984, 1, 0: calloc populates fresh mappings only, and "
		 "session 46's first version counted one here that it never made)", !c ? "NULL" : bad == SIZE_MAX ?
		 "zeroes" : "not zero", bad == SIZE_MAX ? 0 : bad, resident, s1.reused - s0.reused,
		 s1.populates - s0.populates);
	verdict("calloc_of_sparse_kept_mapping_stays_sparse", c && bad == SIZE_MAX && resident <= 1000 &&
		s1.reused == s0.reused + 1 && s1.populates == s0.populates, why);
	empty_cache();
}

/* The same program, but one that writes every page it callocs: a fresh calloc's block of 40 MiB, written whole and
 * freed (calloc's verdict: dense; its mapping kept), then calloc(1, 100 MiB), which the kept mapping serves grown by
 * mremap into 60 MiB of fresh pages. Before session 74, zero_kept found most of it not resident and gave it back,
 * lazy, as if the program were sparse: a program that reads its zeros before it writes them then takes two faults a
 * page, the second a copy of the zero page that interrupts every other CPU running one of its threads (calloc of
 * 4-64 MiB in four threads freeing each other's blocks: 1.00 s, tcmalloc 0.37). Now the grown block is populated
 * while the verdict is dense (heap.c, zero_kept_block): its pages are resident before the program reads them.
 * And a program that wrote one page in 16 of its first block (verdict: sparse) still gets the grown one lazy. */
static void calloc_of_grown_kept_mapping(const char *name, bool dense)
{
	char why[500];
	empty_cache();
	unsigned char *a = v_calloc(1, 40 * MiB);
	for (size_t i = 0; a && i < 40 * MiB; i += dense ? 4096 : 16 * 4096)
		a[i] = 0x5a;
	v_free(a);
	struct kept s0 = kept_now();
	unsigned char *c = v_calloc(1, 100 * MiB);
	struct kept s1 = kept_now();
	size_t pages = 99 * MiB / 4096, resident = resident_pages(c, 99 * MiB);
	size_t bad = c ? first_dirty(c, 100 * MiB) : 0;
	v_free(c);
	snprintf(why, sizeof why, "calloc(1, 40 MiB) with %s written and freed, then calloc(1, 100 MiB): %s at byte "
		 "%zu, %zu of its first %zu pages resident before the zeros were read, %zu served by a kept mapping, %zu "
		 "populates counted (want zeroes, %s, 1, %d: the kept mapping grown, and %s as the program's fresh "
		 "blocks are)", dense ? "every page" : "one page in 16", !c ? "NULL" : bad == SIZE_MAX ? "zeroes" :
		 "not zero", bad == SIZE_MAX ? 0 : bad, resident == SIZE_MAX ? 0 : resident, pages, s1.reused - s0.reused,
		 s1.populates - s0.populates, dense ? "all of them" : "at most 1,000", dense ? 1 : 0,
		 dense ? "populated" : "left lazy");
	bool pages_ok = dense ? resident == pages : resident <= 1000;
	verdict(name, c && bad == SIZE_MAX && pages_ok && s1.reused == s0.reused + 1 &&
		s1.populates == s0.populates + (dense ? 1 : 0), why);
	empty_cache();
}

static void long_mapping_tail_given_back(void)
{
	char why[300];
	leave_kept(64 * MiB);
	struct kept s0 = kept_now();
	char *b = v_malloc(40 * MiB);
	struct kept s1 = kept_now();
	size_t usable = b ? malloc_usable_size(b) : 0;
	touch(b, 40 * MiB, 2);
	v_free(b);
	snprintf(why, sizeof why, "a 40 MiB request after a 64 MiB block was freed: %zu mmap calls, %zu munmap calls, "
		 "usable size %zu (want 0, 1: the 24 MiB tail given back, and a usable size below 41 MiB)",
		 s1.mmaps - s0.mmaps, s1.munmaps - s0.munmaps, usable);
	verdict("long_mapping_tail_given_back", b && s1.mmaps == s0.mmaps && s1.munmaps == s0.munmaps + 1 &&
		usable >= 40 * MiB && usable < 41 * MiB, why);
}

static void trim_gives_kept_back(void)
{
	char why[300];
	empty_cache();
	v_free(v_malloc(40 * MiB));
	struct kept s0 = kept_now();
	struct os_stats st0, st1;
	os_stats(&st0);
	int r = malloc_trim(0);
	os_stats(&st1);
	struct kept s1 = kept_now();
	snprintf(why, sizeof why, "after a 40 MiB block was freed, %zu mappings were kept; malloc_trim(0) returned %d and "
		 "left %zu kept (%zu bytes) with %zu munmap calls (want 1 kept before; 1, 0, 0 bytes, 1 call)",
		 s0.maps, r, s1.maps, s1.bytes, s1.munmaps - s0.munmaps);
	verdict("trim_gives_kept_back", s0.maps == 1 && r == 1 && s1.maps == 0 && s1.bytes == 0 &&
		s1.munmaps == s0.munmaps + 1, why);
	snprintf(why, sizeof why, "os_stats front_cached_bytes %zu with a 40 MiB mapping kept, %zu after malloc_trim "
		 "(want at least 40 MiB, then less)", st0.front_cached_bytes, st1.front_cached_bytes);
	verdict("os_stats_counts_kept", st0.front_cached_bytes >= 40 * MiB && st1.front_cached_bytes < 40 * MiB, why);
}

/* A kept mapping that no request wants goes back after about a second, at the next request that reaches the
 * core: here a 64 KiB block, above what the per-thread caches serve. */
static void idle_mapping_given_back(void)
{
	char why[300];
	empty_cache();
	v_free(v_malloc(40 * MiB));
	struct kept s0 = kept_now();
	v_free(v_malloc(80 << 10)); /* at once: kept (80 KiB: a request for the core, above the medium caches') */
	struct kept s1 = kept_now();
	usleep(1300 * 1000);
	v_free(v_malloc(80 << 10)); /* after 1.3 s: given back */
	struct kept s2 = kept_now();
	snprintf(why, sizeof why, "a freed 40 MiB mapping: %zu kept, %zu kept after a request at once, %zu after one "
		 "1.3 s later, with %zu munmap calls (want 1, 1, 0, 1)", s0.maps, s1.maps, s2.maps,
		 s2.munmaps - s1.munmaps);
	verdict("idle_mapping_given_back", s0.maps == 1 && s1.maps == 1 && s2.maps == 0 &&
		s2.munmaps == s1.munmaps + 1, why);
}

/* Hazard: a kept mapping went back only at a request or free that reached the core, so a program that then lived
 * on its caches' hits kept it resident to its exit: a 512 MiB buffer freed, then 4 s of small malloc and free, 526
 * MB resident, glibc 1.5 MB (found by a review in session 51). The front's tick (every so many frees its caches
 * take) expires them too (heap.c, osm_heap_idle_tick). Here 40 MiB, then small requests only, for up to 3 s. */
static void idle_mapping_given_back_by_cache_hits(void)
{
	char why[300];
	empty_cache();
	v_free(v_malloc(40 * MiB));
	struct kept s0 = kept_now(), s1 = s0;
	void *v[64] = { 0 };
	uint64_t t0 = tu_now_ns();
	unsigned long i = 0;
	while (s1.maps && tu_now_ns() - t0 < 3000000000ull) {
		for (int k = 0; k < 10000; k++, i++) {
			v_free(v[i % 64]);
			v[i % 64] = v_malloc(16 + i % 200);
		}
		s1 = kept_now();
	}
	for (int k = 0; k < 64; k++)
		v_free(v[k]);
	snprintf(why, sizeof why, "a freed 40 MiB mapping: %zu kept, then %zu still kept after %lu small malloc and free "
		 "(cache hits) over %.1f s (want 1, then 0 within 3 s: a kept mapping unused for a second goes back)",
		 s0.maps, s1.maps, i, (double)(tu_now_ns() - t0) / 1e9);
	verdict("idle_mapping_given_back_by_cache_hits", s0.maps == 1 && s1.maps == 0, why);
}

static void at_most_four_kept(void)
{
	char why[300];
	empty_cache();
	char *p[6];
	for (int i = 0; i < 6; i++)
		p[i] = v_malloc(33 * MiB);
	struct kept s0 = kept_now();
	for (int i = 0; i < 6; i++)
		v_free(p[i]);
	struct kept s1 = kept_now();
	snprintf(why, sizeof why, "6 blocks of 33 MiB freed: %zu kept (%zu bytes), %zu munmap calls (want 4 kept, the "
		 "oldest 2 given back)", s1.maps, s1.bytes, s1.munmaps - s0.munmaps);
	verdict("at_most_four_kept", p[5] && s1.maps == 4 && s1.munmaps == s0.munmaps + 2 &&
		s1.bytes < 4 * 34 * MiB, why);
	empty_cache();
}

/* Aligned requests take kept mappings too (alignment up to a page), with the payload aligned and the usable size a
 * fresh aligned mapping would have: to the end of its last page. */
static void aligned_request_reuses(void)
{
	char why[400];
	size_t aligns[] = { 64, 4096 }, bad_align = 0, bad_usable = 0, maps = 0, reused = 0;
	for (int k = 0; k < 2; k++) {
		size_t a = aligns[k];
		leave_kept(41 * MiB); /* a plain block's mapping, a little longer than the aligned request needs */
		struct kept s0 = kept_now();
		void *p = NULL;
		int rc = posix_memalign(&p, a, 40 * MiB);
		struct kept s1 = kept_now();
		if (rc || !p || (uintptr_t)p % a)
			bad_align = a;
		size_t u = p ? malloc_usable_size(p) : 0;
		if (u < 40 * MiB || u >= 40 * MiB + 4096)
			bad_usable = u;
		if (p)
			touch(p, 40 * MiB, 3);
		maps += s1.mmaps - s0.mmaps;
		reused += s1.reused - s0.reused;
		v_free(p);
	}
	snprintf(why, sizeof why, "posix_memalign(64 and 4096, 40 MiB) after a 41 MiB block was freed each time: %zu "
		 "mmap calls, %zu served by a kept mapping, misaligned at %zu, usable size %zu (want 0, 2, none, 40 MiB "
		 "to the end of its page)", maps, reused, bad_align, bad_usable);
	verdict("aligned_request_reuses", maps == 0 && reused == 2 && !bad_align && !bad_usable, why);
}

/* With a 40 MiB mapping kept and the address space capped 30 MiB above what is mapped, a 60 MiB request can be
 * served only if the kept mapping goes back first: a kept mapping must never make a request fail. `align` 0: malloc,
 * else posix_memalign. */
static void mapping_fails_then_kept_go(const char *name, size_t align)
{
	char why[300];
	leave_kept(40 * MiB);
	struct rlimit saved, cap;
	if (getrlimit(RLIMIT_AS, &saved) != 0) {
		verdict(name, 0, "getrlimit failed (test setup)");
		return;
	}
	cap = saved;
	cap.rlim_cur = tu_vm_bytes() + 30 * MiB;
	void *p = NULL;
	int set = setrlimit(RLIMIT_AS, &cap) == 0;
	if (set) {
		if (align)
			p = posix_memalign(&p, align, 60 * MiB) == 0 ? p : NULL;
		else
			p = v_malloc(60 * MiB);
	}
	setrlimit(RLIMIT_AS, &saved);
	struct kept k = kept_now();
	snprintf(why, sizeof why, "%s of 60 MiB with a 40 MiB mapping kept and 30 MiB of address space left: %s, %zu "
		 "mappings still kept (want a block, and none kept: the kept one goes back when a mapping fails)",
		 align ? "posix_memalign(4096)" : "malloc", !set ? "setrlimit failed" : p ? "a block" : "NULL", k.maps);
	verdict(name, set && p && k.maps == 0 && (!align || (uintptr_t)p % align == 0), why);
	v_free(p);
	empty_cache();
}

/* Hazard (session 57's review of the large blocks): calloc zeroes a mostly untouched kept mapping by giving its
 * pages back (MADV_DONTNEED), and trusted that call; on pages the program had locked (mlock, mlockall) it fails
 * and they keep their bytes: calloc(64 MiB) after a 64 MiB block with 16 KiB locked and written was freed
 * returned those 16,384 bytes as they were. Now a refused give-back leaves the zeros to be written. */
static void calloc_of_locked_kept_mapping_zeroed(void)
{
	char why[300];
	empty_cache();
	unsigned char *p = v_malloc(64 * MiB);
	int locked = p ? mlock(p + MiB, 16384) : -1;
	if (p)
		memset(p + MiB, 0xA5, 16384);
	v_free(p); /* kept, the 16 KiB still locked (the program never unlocked them) */
	unsigned char *q = v_calloc(1, 64 * MiB);
	size_t bad = q ? first_dirty(q, 64 * MiB) : SIZE_MAX;
	snprintf(why, sizeof why, "a 64 MiB block with 16 KiB locked and written, freed, then calloc(64 MiB): %s, first "
		 "non-zero byte at %zu (want none)%s", q ? (q == p ? "the kept mapping" : "another block") : "NULL", bad,
		 locked ? " (mlock failed: test setup)" : "");
	verdict("calloc_of_locked_kept_mapping_zeroed", locked == 0 && q && bad == SIZE_MAX, why);
	if (q)
		munlock(q + MiB, 16384);
	v_free(q);
	empty_cache();
}

/* Hazard (the same review): a request the break could not serve (RLIMIT_AS, RLIMIT_DATA) mapped its block and
 * failed there, while a kept mapping held the address space: with 256 MiB kept under a cap 384 MiB above what was
 * mapped, malloc(100000) and memalign(4096, 100000) returned NULL after about 128 MiB (glibc, which keeps nothing,
 * served 384). The kept mappings now go back before such a request fails. In a child: the cap is for good there. */
static void heap_request_fails_then_kept_go(const char *name, size_t align)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		empty_cache();
		size_t vm0 = tu_vm_bytes();
		char *big = v_malloc(256 * MiB);
		if (!big)
			_exit(3);
		big[0] = 1;
		v_free(big); /* kept: 256 MiB of the 384 the cap leaves */
		struct rlimit cap;
		if (getrlimit(RLIMIT_AS, &cap) != 0)
			_exit(2);
		cap.rlim_cur = vm0 + 384 * MiB;
		if (setrlimit(RLIMIT_AS, &cap) != 0)
			_exit(2);
		size_t got = 0;
		void *p;
		while (got < 384 * MiB && (p = align ? memalign(align, 100000) : v_malloc(100000)) != NULL)
			got += 100000;
		char why[300];
		snprintf(why, sizeof why, "%s(100000) with 256 MiB kept and 384 MiB of address space left: %zu MiB served "
			 "before NULL (want 300 or more: the kept mapping goes back first)", align ? "memalign" : "malloc",
			 got >> 20);
		verdict(name, got >= 300 * MiB, why);
		fflush(stdout);
		_exit(failures ? 1 : 0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) > 1)
		verdict(name, 0, "the child died, or its setup failed (2: rlimit, 3: malloc)");
	else if (WEXITSTATUS(st))
		failures++;
}

/* Hazard (the same review): a request aligned beyond a page never took a kept mapping, though its free kept one:
 * 20 rounds of posix_memalign(2 MiB, 64 MiB), written and freed, each mapped afresh beside the kept ones and
 * faulted all 16,384 pages in (329 MB peak and 0.84 s, where glibc takes 67 MB and tcmalloc 0.09 s). It now takes
 * a kept mapping that holds the aligned block, the whole pages before the block's header going back. */
static void wide_aligned_request_reuses(void)
{
	char why[400];
	empty_cache();
	struct kept s0 = kept_now();
	size_t bad_align = 0, bad_usable = 0, rounds = 6;
	long f0 = minor_faults();
	for (size_t i = 0; i < rounds; i++) {
		void *p = NULL;
		if (posix_memalign(&p, 2 * MiB, 64 * MiB) != 0 || (uintptr_t)p % (2 * MiB)) {
			bad_align = 2 * MiB;
			break;
		}
		size_t u = malloc_usable_size(p);
		if (u < 64 * MiB)
			bad_usable = u;
		touch(p, 64 * MiB, (int)i + 1);
		v_free(p);
	}
	long faults = minor_faults() - f0;
	struct kept s1 = kept_now();
	snprintf(why, sizeof why, "%zu rounds of posix_memalign(2 MiB, 64 MiB), written and freed: %zu mmap calls, %zu "
		 "served by a kept mapping, %ld page faults, misaligned %zu, usable %zu (want 1, %zu, under 2 rounds' "
		 "32,768, none, 64 MiB or more)", rounds, s1.mmaps - s0.mmaps, s1.reused - s0.reused, faults, bad_align,
		 bad_usable, rounds - 1);
	verdict("wide_aligned_request_reuses", !bad_align && !bad_usable && s1.mmaps - s0.mmaps == 1 &&
		s1.reused - s0.reused == rounds - 1 && faults < 32768, why);
	empty_cache();
}

/* A block below 32 MiB is not kept: the dynamic threshold brings the next ones into the heap instead. */
static void small_mapping_not_kept(void)
{
	char why[300];
	empty_cache();
	char *p = v_malloc(20 * MiB);
	struct kept s0 = kept_now();
	v_free(p);
	struct kept s1 = kept_now();
	snprintf(why, sizeof why, "a 20 MiB mapped block freed: %zu kept, %zu munmap calls (want 0 and 1)", s1.maps,
		 s1.munmaps - s0.munmaps);
	verdict("small_mapping_not_kept", p && s1.maps == 0 && s1.munmaps == s0.munmaps + 1, why);
}

/* open_memstream's fclose: a mapped buffer of 34 MiB cut by realloc to 20 MiB after a free of that size had raised
 * the mmap threshold above 20 MiB. The block stays where it is (mremap gives the tail back), with its bytes: it
 * moved into the heap, a copy faulted in beside the old mapping, which the cache then kept resident (peak 54 MB,
 * glibc 34; a review in session 59). */
static void mapped_shrink_stays_in_place(void)
{
	char why[300];
	empty_cache();
	const size_t big = 34 * MiB, cut = 20 * MiB;
	char *p = v_malloc(big);
	if (p)
		memset(p, 1, big);
	v_free(p); /* the threshold rises to 32 MiB */
	char *q = v_malloc(big), *r = NULL;
	size_t bad = SIZE_MAX;
	if (q) {
		for (size_t n = 0; n < big; n += 4096)
			q[n] = (char)(n >> 12);
		r = realloc(q, cut);
		for (size_t n = 0; r && n < cut && bad == SIZE_MAX; n += 4096)
			if (r[n] != (char)(n >> 12))
				bad = n;
	}
	snprintf(why, sizeof why, "a mapped block of 34 MiB cut to 20 MiB %s, a lost byte at %zu (want: the same "
		 "address, nothing lost)", !q || !r ? "failed" : r == q ? "stayed" : "moved", bad == SIZE_MAX ? 0 : bad);
	verdict("mapped_shrink_stays_in_place", q && r == q && bad == SIZE_MAX, why);
	v_free(r ? r : q);
	empty_cache();
}

/* A buffer grown by doubling realloc to 40 MiB, every page written, then freed, round after round: from the
 * second round on, the growth into the cache's sizes takes the kept mapping (copying what the buffer held), so one
 * mapping stays kept between rounds. Before: each round grew by mremap into fresh pages beside the kept one, and
 * the kept mappings piled up (four rounds' buffers resident at once: 1,050 MB for a 256 MiB buffer, glibc 263). */
static void growing_buffer_takes_kept_mapping(void)
{
	char why[400];
	empty_cache();
	size_t most = 0, bad = SIZE_MAX;
	struct kept s0 = kept_now();
	for (int round = 0; round < 4; round++) {
		size_t cap = 4096;
		char *p = v_malloc(cap);
		for (size_t n = 0; p && n < 40 * MiB; n += 4096) {
			if (n + 4096 > cap) {
				char *q = realloc(p, cap *= 2);
				if (!q)
					break;
				p = q;
			}
			p[n] = (char)(n >> 12);
		}
		for (size_t n = 0; p && n < 40 * MiB && bad == SIZE_MAX; n += 4096) /* the copies kept every byte */
			if (p[n] != (char)(n >> 12))
				bad = n;
		v_free(p);
		struct kept k = kept_now();
		if (k.maps > most)
			most = k.maps;
	}
	struct kept s1 = kept_now();
	snprintf(why, sizeof why, "4 rounds of a buffer doubled by realloc to 64 MiB (40 MiB written), then freed: at most "
		 "%zu mappings kept after a round, %zu growths served by a kept mapping, a lost byte at %zu (want 1 kept, "
		 "at least 3 served, none lost)", most, s1.reused - s0.reused, bad == SIZE_MAX ? 0 : bad);
	verdict("growing_buffer_takes_kept_mapping", most == 1 && s1.reused - s0.reused >= 3 && bad == SIZE_MAX, why);
	empty_cache();
}

/* The cache emptied, a block of n bytes mapped afresh and filled with v, then a block of `kept` bytes written and
 * freed: the first block, whose growth the cache's one mapping may serve. */
static char *mapped_then_kept(size_t n, int v, size_t kept)
{
	empty_cache();
	char *p = v_malloc(n);
	if (p)
		touch(p, n, v);
	char *a = v_malloc(kept);
	if (a)
		touch(a, kept, 1);
	v_free(a);
	return p;
}

/* A mapped block moved by realloc is not a block the program freed: it must not teach the dynamic mmap threshold,
 * as glibc's realloc unmaps a chunk it moved without touching its threshold. Before: a 16 MiB buffer's growth into a
 * kept mapping freed its old mapping, the threshold rose to 16 MiB, and from then on every buffer grew through the
 * heap's break up to that size; four threads each doubling a buffer to 64 MiB (patterns' vecgrow4) left 65 MB of
 * freed heap resident behind them and peaked at up to 367 MB (glibc 255). Seen here as a 1 MiB request that still
 * gets a mapping of its own. Runs first: the cases after it free mapped blocks, which do raise the threshold. */
static void moved_mapping_does_not_raise_threshold(void)
{
	char why[400];
	char *p = mapped_then_kept(16 * MiB, 3, 64 * MiB);
	struct kept s0 = kept_now();
	char *q = p ? realloc(p, 32 * MiB) : NULL;
	struct kept s1 = kept_now();
	bool kept_bytes = q && q[0] == 3 && q[16 * MiB - 1] == 3;
	char *r = v_malloc(1 * MiB);
	struct kept s2 = kept_now();
	snprintf(why, sizeof why, "a 16 MiB mapped block grown to 32 MiB by realloc: %zu growths served by a kept mapping "
		 "(want 1), bytes kept %s; then a 1 MiB request made %zu mmap calls (want 1: a mapping of its own, as "
		 "before the move; 0 means the moved block's unmapping raised the threshold above 1 MiB)",
		 s1.reused - s0.reused, kept_bytes ? "yes" : "no", s2.mmaps - s1.mmaps);
	verdict("moved_mapping_does_not_raise_threshold", q && r && kept_bytes && s1.reused == s0.reused + 1 &&
		s2.mmaps == s1.mmaps + 1, why);
	v_free(r);
	v_free(q ? q : p);
	empty_cache();
}

/* The old block of a realloc that shrank and moved (a mapped block asked for less than the threshold, moved to the
 * heap) teaches the dynamic threshold as a free would: only a growth's old block does not (see above). When no move
 * taught it (session 46's first fix, glibc's rule), a program that only reallocs blocks of 64 KiB-4 MiB mapped and
 * faulted each one in afresh: 0.09 -> 0.41 s and 38,000 -> 225,000 page faults (bench/apis.py, realloc 64 KiB-4 MiB,
 * one thread; tcmalloc 0.08 s). Seen here as a 3 MiB request after the move, which the heap serves. Runs right
 * after moved_mapping_does_not_raise_threshold, while the threshold is still the initial 128 KiB. */
static void shrinking_move_raises_threshold(void)
{
	char why[300];
	char *p = v_malloc(4 * MiB);
	if (p)
		touch(p, 4 * MiB, 6);
	char *q = p ? realloc(p, 100 * 1024) : NULL;
	bool kept_bytes = q && q[0] == 6 && q[4096] == 6 && q[24 * 4096] == 6;
	struct kept s0 = kept_now();
	char *r = v_malloc(3 * MiB);
	struct kept s1 = kept_now();
	snprintf(why, sizeof why, "a 4 MiB mapped block shrunk to 100 KiB by realloc (moved to the heap), bytes kept %s; "
		 "then a 3 MiB request made %zu mmap calls (want 0: the move's old 4 MiB raised the threshold above it)",
		 kept_bytes ? "yes" : "no", s1.mmaps - s0.mmaps);
	verdict("shrinking_move_raises_threshold", q && r && kept_bytes && s1.mmaps == s0.mmaps, why);
	v_free(r);
	v_free(q ? q : p);
}

static void *nothing(void *arg) { return arg; }

/* Hazard: with a second thread the cache keeps mappings from 1 MiB up (heap.c, THREADED_MAX), and it kept the old
 * block of a growth that moved too: four threads' doubling buffers left their 16 MiB old blocks in the four slots
 * and pushed out the 64 MiB mappings their last rounds had left, which the next rounds then faulted in again
 * (vecgrow4: 158,000 page faults against 140,000). In a child (the thread makes the process threaded for good): a
 * 16 MiB block grown to 32 MiB takes the kept 64 MiB mapping; its old mapping must go back, not stay kept. */
/* fn in a child made threaded for good by a thread that has ended, its verdicts its own; its exit status 2 or 3: its
 * setup failed */
static void in_threaded_child(const char *name, void (*fn)(void))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		pthread_t t;
		if (pthread_create(&t, NULL, nothing, NULL) != 0 || pthread_join(t, NULL) != 0)
			_exit(2);
		empty_cache();
		fn();
		fflush(stdout);
		_exit(failures ? 1 : 0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) > 1)
		verdict(name, 0, "the child died, or its setup failed (2: no thread, 3: malloc, 4: its own forked child "
			"failed)");
	else if (WEXITSTATUS(st))
		failures++;
}

static void old_block_not_kept(void)
{
	char *b = v_malloc(16 * MiB), *p = v_malloc(64 * MiB);
	if (!b || !p)
		_exit(3);
	touch(b, 16 * MiB, 1);
	touch(p, 64 * MiB, 1);
	v_free(p);
	struct kept s0 = kept_now();
	char *q = realloc(b, 32 * MiB);
	struct kept s1 = kept_now();
	char why[300];
	snprintf(why, sizeof why, "with a second thread, a kept 64 MiB mapping (%zu kept), then a 16 MiB block "
		 "grown to 32 MiB: %s, %zu reused, %zu kept after (want 1 reused, 0 kept: the old block goes back)",
		 s0.maps, q ? "moved" : "realloc failed", s1.reused - s0.reused, s1.maps);
	verdict("threaded_growth_old_block_not_kept", q && s0.maps == 1 && s1.reused == s0.reused + 1 &&
		s1.maps == 0, why);
	v_free(q);
}

static void threaded_growth_old_block_not_kept(void)
{
	in_threaded_child("threaded_growth_old_block_not_kept", old_block_not_kept);
}

/* Hazard: with a second thread the cache keeps mappings from 1 MiB up, but a realloc's growth took a kept mapping
 * only from 32 MiB up (heap.c, regrow_kept): sqlite3's buffers, grown from the heap to 1 MiB and then to 2 MiB and
 * freed, round after round, each mapped and faulted in afresh while the four kept 2 MiB mappings of the rounds
 * before sat resident and unused (a soak of session 56: two threads of sqlite3 at 21 MB, glibc 12-13; 13 MB now).
 * In a child (the thread makes the process threaded for good): a 600 KB heap block grown to 1.1 MiB after a
 * 2.2 MiB block was freed must take the kept mapping, not map afresh. */
static void growth_takes_kept_mapping(void)
{
	char *b = v_malloc(600000), *p = v_malloc(2200000);
	if (!b || !p)
		_exit(3);
	touch(b, 600000, 1);
	touch(p, 2200000, 1);
	v_free(p);
	struct kept s0 = kept_now();
	struct os_stats a, c;
	os_stats(&a);
	char *q = realloc(b, 1100000);
	os_stats(&c);
	struct kept s1 = kept_now();
	char why[300];
	snprintf(why, sizeof why, "with a second thread, a kept 2.2 MB mapping (%zu kept), then a 600 KB heap "
		 "block grown to 1.1 MB: %s, %zu reused, %zu mmap calls (want 1 reused, 0 mmap calls)", s0.maps,
		 q ? "moved" : "realloc failed", s1.reused - s0.reused, c.mmap_calls - a.mmap_calls);
	verdict("threaded_growth_takes_kept_mapping", q && q[0] == 1 && q[599999] == 1 && s0.maps == 1 &&
		s1.reused == s0.reused + 1 && c.mmap_calls == a.mmap_calls, why);
	v_free(q);
}

static void threaded_growth_takes_kept_mapping(void)
{
	in_threaded_child("threaded_growth_takes_kept_mapping", growth_takes_kept_mapping);
}

/* Hazard (session 57's review of the large blocks): with threads the cache keeps mappings from 1 MiB, and a request
 * took the smallest kept one that held it and gave its tail back, so a larger request after it grew a kept mapping
 * by mremap into fresh pages: blocks of random sizes between 1 and 2 MiB, each written and freed, faulted about 44
 * pages in at each request (two threads of 2,000: 0.45 s, 176,000 faults; glibc 0.06 s, 4,100). A request of the
 * threaded band now keeps a kept mapping whole when it is at most twice its need. In a child made threaded. */
static void random_sizes_keep_mappings_whole(void)
{
	uint64_t x = 12345;
	size_t rounds = 600;
	struct kept s0 = kept_now();
	long f0 = minor_faults();
	for (size_t i = 0; i < rounds; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		size_t n = MiB + (size_t)(x >> 33) % MiB;
		char *p = v_malloc(n);
		if (!p)
			_exit(3);
		touch(p, n, (int)i);
		v_free(p);
	}
	long faults = minor_faults() - f0;
	struct kept s1 = kept_now();
	char why[300];
	snprintf(why, sizeof why, "with a second thread, %zu blocks of 1-2 MiB of random sizes, each written and freed: "
		 "%ld page faults, %zu mmap and %zu mremap-or-kept reuses (want under 8 faults a block: a kept mapping "
		 "taken whole, not cut and grown again into fresh pages)", rounds, faults, s1.mmaps - s0.mmaps,
		 s1.reused - s0.reused);
	verdict("threaded_random_sizes_keep_mappings_whole", faults < (long)rounds * 8, why);
}

static void threaded_random_sizes_keep_mappings_whole(void)
{
	in_threaded_child("threaded_random_sizes_keep_mappings_whole", random_sizes_keep_mappings_whole);
}

/* Hazard (a soak of real programs in session 65): with threads every block of 1 MiB or more has a mapping of its own,
 * and the cache kept 16. Threads whose buffers of 1-3 MB are written whole and freed more than 16 at a time (python3's
 * bytearrays: 1.2-1.35x glibc's time, twice its page faults) found the oldest kept mappings pushed out and mapped
 * their next buffers afresh, every page faulted in again. Here 40 blocks of 1.1-1.9 MiB, written whole, are freed
 * together, and 40 of the same sizes asked for again and written whole: each takes a kept mapping, its pages
 * resident (with 16 slots, 24 fresh mappings and about 9,000 page faults). In a child made threaded. */
static void burst_of_frees_kept(void)
{
	enum { N = 40 };
	static char *b[N];
	size_t n[N];
	for (int i = 0; i < N; i++) {
		n[i] = MiB + MiB / 10 + (size_t)i * (MiB * 8 / 10 / N);
		b[i] = v_malloc(n[i]);
		if (!b[i])
			_exit(3);
		memset(b[i], i, n[i]);
	}
	for (int i = 0; i < N; i++)
		v_free(b[i]);
	struct kept s0 = kept_now();
	long f0 = minor_faults();
	for (int i = 0; i < N; i++) {
		b[i] = v_malloc(n[i]);
		if (!b[i])
			_exit(3);
		memset(b[i], i + 1, n[i]);
	}
	long faults = minor_faults() - f0;
	struct kept s1 = kept_now();
	for (int i = 0; i < N; i++)
		v_free(b[i]);
	char why[300];
	snprintf(why, sizeof why, "with a second thread, %d blocks of 1.1-1.9 MiB written whole, freed together, then asked "
		 "for again and written whole: %ld page faults, %zu fresh mappings, %zu kept ones reused (want under %d "
		 "faults: every block a kept mapping, its pages resident)", N, faults, s1.mmaps - s0.mmaps,
		 s1.reused - s0.reused, N * 16);
	verdict("threaded_burst_of_frees_kept", faults < N * 16, why);
}

static void threaded_burst_of_frees_kept(void)
{
	in_threaded_child("threaded_burst_of_frees_kept", burst_of_frees_kept);
}

/* Hazard (a review in session 60): with threads every block of 1 MiB or more has a mapping of its own, and the cache
 * kept four: two threads churning 64 live blocks of 1-8 MB, barely written, made a system call or two under the lock
 * at every request (a fresh mmap, the munmap of the mapping pushed out): 3.8x glibc's time, whose arenas make none.
 * With a second thread the cache keeps 16. Here one thread frees 8 of 64 live blocks at a time and then asks for 8
 * of new sizes, as two threads' requests interleave (a second thread exists, so that the policy is the threaded
 * one and the sequence the same in every run): 20,000 requests, 256 bytes written in each block. */
static void churn_reuses_kept_mappings(void)
{
	enum { LIVE = 64, ROUNDS = 2500, BURST = 8 };
	static char *live[LIVE];
	uint64_t x = 777;
	for (int i = 0; i < LIVE; i++) {
		live[i] = v_malloc(MiB + (size_t)i * 100000);
		if (!live[i])
			_exit(3);
		memset(live[i], 1, 256);
	}
	struct os_stats a, c;
	os_stats(&a);
	for (int r = 0; r < ROUNDS; r++) {
		int idx[BURST];
		for (int b = 0; b < BURST; b++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			idx[b] = (int)((x >> 40) % LIVE);
			v_free(live[idx[b]]);
			live[idx[b]] = NULL;
		}
		for (int b = 0; b < BURST; b++) {
			if (live[idx[b]])
				continue; /* drawn twice in this burst */
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			size_t n = MiB + (size_t)(x >> 20) % (7 * MiB);
			live[idx[b]] = v_malloc(n);
			if (!live[idx[b]])
				_exit(3);
			memset(live[idx[b]], r & 0xff, 256);
		}
	}
	os_stats(&c);
	for (int i = 0; i < LIVE; i++)
		v_free(live[i]);
	size_t calls = (c.mmap_calls - a.mmap_calls) + (c.munmap_calls - a.munmap_calls) +
		       (c.mremap_calls - a.mremap_calls);
	char why[300];
	snprintf(why, sizeof why, "with a second thread, %d requests of 1-8 MB in bursts of 8 among 64 live blocks: %zu "
		 "mmap, %zu munmap and %zu mremap calls (want under %d in all: kept mappings reused, not one or two "
		 "system calls a request)", ROUNDS * BURST, c.mmap_calls - a.mmap_calls, c.munmap_calls - a.munmap_calls,
		 c.mremap_calls - a.mremap_calls, ROUNDS * BURST / 2);
	verdict("threaded_churn_reuses_kept_mappings", calls < ROUNDS * BURST / 2, why);
}

static void threaded_churn_reuses_kept_mappings(void)
{
	in_threaded_child("threaded_churn_reuses_kept_mappings", churn_reuses_kept_mappings);
}

/* Hazard (session 57's review of the large blocks): a program that protects part of its block (a guard page) and
 * frees it so loses nothing under glibc, whose free unmaps the block; a kept mapping handed the protected page to
 * the next request, and calloc's zeros faulted inside osmem (SIGSEGV) where its program had done nothing wrong.
 * In a child made threaded (the cache keeps 2 MiB there): a 2 MiB block, written, a page of it PROT_NONE, freed,
 * then calloc(2 MiB) must take the mapping, read as zeros and take writes everywhere. */
static void protected_mapping_made_writable(void)
{
	char *p = v_malloc(2 * MiB);
	if (!p)
		_exit(3);
	touch(p, 2 * MiB, 7);
	memset(p, 7, 2 * MiB);
	char *guard = (char *)(((uintptr_t)p + 65536) & ~(uintptr_t)4095);
	if (mprotect(guard, 4096, PROT_NONE) != 0)
		_exit(2);
	v_free(p);
	struct kept s0 = kept_now();
	unsigned char *q = v_calloc(1, 2 * MiB); /* SIGSEGV here, inside osmem, before */
	struct kept s1 = kept_now();
	size_t bad = q ? first_dirty(q, 2 * MiB) : SIZE_MAX - 1;
	if (q)
		memset(q, 9, 2 * MiB);
	char why[300];
	snprintf(why, sizeof why, "with a second thread, a 2 MiB block with a page made PROT_NONE, freed, then calloc(2 "
		 "MiB): %zu reused, first non-zero byte at %zu (want 1 and none), and every byte written after",
		 s1.reused - s0.reused, bad);
	verdict("protected_kept_mapping_made_writable", q && s1.reused == s0.reused + 1 && bad == SIZE_MAX, why);
	v_free(q);
}

static void protected_kept_mapping_made_writable(void)
{
	in_threaded_child("protected_kept_mapping_made_writable", protected_mapping_made_writable);
}

/* The price of the above: a block may hold up to twice its request, and a C++ sized delete of it must still pass
 * (cxx.c, core_size_fits, osm_mapped_size_fits). A 1.2 MiB new after a 2 MiB block was freed, in a threaded child. */
void *osm_test_new(size_t n) __asm__("_Znwm");
void osm_test_delete_sized(void *p, size_t n) __asm__("_ZdlPvm");
void *osm_test_new_aligned(size_t n, size_t a) __asm__("_ZnwmSt11align_val_t");
void osm_test_delete_sized_aligned(void *p, size_t n, size_t a) __asm__("_ZdlPvmSt11align_val_t");
static void sized_delete_of_whole_mapping(void)
{
	char *p = v_malloc(2 * MiB);
	if (!p)
		_exit(3);
	touch(p, 2 * MiB, 1);
	v_free(p);
	struct kept s0 = kept_now();
	char *q = osm_test_new(1200 * 1024);
	struct kept s1 = kept_now();
	size_t u = malloc_usable_size(q);
	touch(q, 1200 * 1024, 2);
	/* a forked child has one thread again, and deletes the block its parent's thread allocated: it must pass too
	 * (glibc 2.36 still counts such a child threaded; a C library that does not would have failed it before) */
	fflush(stdout);
	pid_t kid = fork();
	if (kid == 0) {
		osm_test_delete_sized(q, 1200 * 1024);
		_exit(0);
	}
	int kid_st = 0;
	if (kid < 0 || waitpid(kid, &kid_st, 0) != kid || !WIFEXITED(kid_st) || WEXITSTATUS(kid_st) != 0)
		_exit(4);
	osm_test_delete_sized(q, 1200 * 1024); /* aborts on a size mismatch: the child dies, the case fails */
	p = v_malloc(2 * MiB); /* the same, aligned: its payload a page into the mapping */
	if (!p)
		_exit(3);
	touch(p, 2 * MiB, 3);
	v_free(p);
	char *r = osm_test_new_aligned(1200 * 1024, 4096);
	touch(r, 1200 * 1024, 4);
	osm_test_delete_sized_aligned(r, 1200 * 1024, 4096);
	char why[300];
	snprintf(why, sizeof why, "with a second thread, new(1.2 MiB) after a 2 MiB block was freed: %zu reused, usable "
		 "%zu (want 1 and the 2 MiB mapping's whole payload), then its sized delete passed, and an aligned one's",
		 s1.reused - s0.reused, u);
	verdict("threaded_sized_delete_of_whole_kept_mapping", s1.reused == s0.reused + 1 && u > 1900 * 1024, why);
}

static void threaded_sized_delete_of_whole_kept_mapping(void)
{
	in_threaded_child("threaded_sized_delete_of_whole_kept_mapping", sized_delete_of_whole_mapping);
}

/* A buffer doubled by realloc into the cache's sizes takes a kept mapping with room for its next doubling (up to
 * twice what it asks), so that next doubling neither copies nor faults. Before: the kept mapping's tail went back at
 * once, the next doubling took another kept mapping (a copy of 32 MiB, and the old one kept beside it) or grew by
 * mremap into fresh pages: four threads each doubling a buffer to 64 MiB, five rounds (vecgrow4), 0.19 s and
 * 166,000 page faults, now 0.15 s and 140,000 (glibc 0.32 s, 328,000). */
static void doubling_buffer_grows_within_kept_mapping(void)
{
	char why[400];
	char *p = mapped_then_kept(16 * MiB, 4, 72 * MiB);
	char *q = p ? realloc(p, 32 * MiB) : NULL;
	struct os_stats a, b;
	os_stats(&a);
	long f0 = minor_faults();
	char *r = q ? realloc(q, 64 * MiB) : NULL;
	if (r)
		touch(r + 32 * MiB, 32 * MiB, 5);
	long faults = minor_faults() - f0;
	os_stats(&b);
	bool kept_bytes = r && r[0] == 4 && r[16 * MiB - 1] == 4 && r[64 * MiB - 1] == 5;
	snprintf(why, sizeof why, "after a 72 MiB block was freed, a 16 MiB buffer grown to 32 MiB and then to 64 MiB: "
		 "the second growth %s, made %zu mremap and %zu mmap calls and %ld page faults writing its new 32 MiB, bytes "
		 "kept %s (want it in place, 0, 0, fewer than 1,000 of its 8,192 pages, yes)", r == q ? "stayed in place" :
		 "moved", b.mremap_calls - a.mremap_calls, b.mmap_calls - a.mmap_calls, faults, kept_bytes ? "yes" : "no");
	verdict("doubling_buffer_grows_within_kept_mapping", q && r == q && b.mremap_calls == a.mremap_calls &&
		b.mmap_calls == a.mmap_calls && faults < 1000 && kept_bytes, why);
	v_free(r ? r : q ? q : p);
	empty_cache();
}

/* A request longer than every kept mapping grows the longest by mremap (its pages stay, only the growth faults in)
 * rather than mapping afresh beside it. Before: 20 requests from 40 MiB up by a tenth each, each freed, left up to
 * four kept mappings resident beside the new one (1,046 MB for a 246 MiB block; glibc 252 MB). */
static void growing_requests_grow_kept_mapping(void)
{
	char why[400];
	struct reuse r = reuse_after(40 * MiB, 44 * MiB);
	snprintf(why, sizeof why, "a 44 MiB request after a 40 MiB block was freed: %zu mmap calls, %zu served by a kept "
		 "mapping, %zu left kept, %ld page faults writing it (want 0, 1, 0, and fewer than 5,000: only the 4 MiB "
		 "grown fault in, not its 11,264 pages)", r.s1.mmaps - r.s0.mmaps, r.s1.reused - r.s0.reused, r.s1.maps,
		 r.faults);
	verdict("growing_requests_grow_kept_mapping", r.got && r.s1.mmaps == r.s0.mmaps &&
		r.s1.reused == r.s0.reused + 1 && r.s1.maps == 0 && r.faults < 5000, why);
	empty_cache();
}

/* Hazard (session 66, a soak: ImageMagick's convert peaked at 275 MB, glibc 221): in a process of one thread, a
 * request longer than every kept mapping grew the longest of them, and the others, shorter than the request and of
 * no use to it, stayed resident beside it until their second was up. Now they go back. Here: two 72 MiB blocks
 * written and freed (both kept), then a 112 MiB request. */
static void grown_request_drops_shorter_kept(void)
{
	empty_cache();
	char *a = v_malloc(72 * MiB), *b = v_malloc(72 * MiB);
	if (a)
		touch(a, 72 * MiB, 1);
	if (b)
		touch(b, 72 * MiB, 1);
	v_free(a);
	v_free(b);
	struct kept s0 = kept_now();
	char *c = v_malloc(112 * MiB);
	struct kept s1 = kept_now();
	char why[300];
	snprintf(why, sizeof why, "two 72 MiB blocks freed (%zu kept), then a 112 MiB request: %zu mappings still kept "
		 "(want 2, then 0: the one not grown goes back)", s0.maps, s1.maps);
	verdict("grown_request_drops_shorter_kept", a && b && c && s0.maps == 2 && s1.maps == 0, why);
	v_free(c);
	empty_cache();
}

/* Hazard: a buffer grown by copy (a std::vector's push_back: a block twice the size, the old one copied into it and
 * freed) had its old block kept, resident, while the new one filled: a vector of 30 M longs peaked at 369 MB where
 * glibc peaks at 265, its freed 128 MiB kept beside the 256 MiB it was growing into. A block freed while a newer
 * big block half as long again or longer is live is now given back at once; one freed to be asked for again (the
 * newest) is still kept. Here: a 40 MiB block, then a 64 MiB one it is copied into, then the 40 MiB one freed; then
 * two rounds of a buffer grown from 33 to 140 MiB, each old block copied and freed (a vector built again). */
static void outgrown_one(const char *name, const char *who)
{
	empty_cache();
	char *a = v_malloc(40 * MiB), *b = v_malloc(64 * MiB);
	if (a && b)
		memcpy(b, a, 4096); /* the copy's first page */
	v_free(a);
	struct kept s0 = kept_now();
	v_free(b);
	struct kept s1 = kept_now();
	char why[300];
	snprintf(why, sizeof why, "%s, a 40 MiB block copied into a 64 MiB one and freed: %zu mappings kept (want 0: it "
		 "was outgrown); then the 64 MiB one freed: %zu kept (want 1: the newest is kept)", who, s0.maps, s1.maps);
	verdict(name, a && b && s0.maps == 0 && s1.maps == 1, why);
	empty_cache();
}

static void outgrown_buffer_not_kept(void)
{
	outgrown_one("outgrown_buffer_not_kept", "one thread");
	char why[300];
	size_t most = 0;
	int ok = 1;
	for (int round = 0; round < 2; round++) {
		char *old = NULL;
		for (size_t n = 33 * MiB; n <= 140 * MiB; n *= 2) {
			char *p = v_malloc(n);
			if (!p)
				ok = 0;
			else if (old)
				memcpy(p, old, 4096); /* the copy's first page: enough to read as a growth */
			struct kept k0 = kept_now();
			v_free(old);
			struct kept k = kept_now();
			most = old && k.maps > k0.maps ? k.maps - k0.maps : most;
			old = p;
		}
		v_free(old);
	}
	snprintf(why, sizeof why, "two rounds of a buffer grown 33 -> 66 -> 132 MiB, each old block freed after its "
		 "copy: %zu more mappings kept by such a free (want 0)", most);
	verdict("outgrown_buffer_not_kept_next_round", ok && most == 0, why);
	empty_cache();
}

/* Hazard (of kept tails): a realloc's growth that took a kept mapping kept the mapping's tail too, and the buffer,
 * growing on, moved out past it (mremap) and left its old block kept as well: a buffer doubled by realloc to 256 MiB,
 * 8 rounds (patterns' vecgrow), peaked at 345 MB where glibc takes 257. Session 67 gave such a tail back; since
 * session 68 the growth takes it in place (regrow_adjacent). Here: three rounds of a buffer doubled by realloc from
 * 4 KiB to 256 MiB (288 MiB with realloc's slack), each growth written, and at the end of the third, the buffer
 * live, what is kept: 72 MiB more before session 67's fix (fe332a7), nothing now. */
static void regrow_leaves_no_old_block_kept(void)
{
	empty_cache();
	char *p = NULL;
	size_t live = 0;
	struct kept s1 = { 0, 0, 0, 0, 0, 0 };
	for (int round = 0; round < 3; round++) {
		size_t cap = 4096;
		p = v_malloc(cap);
		while (p && cap < 256 * MiB)
			if ((p = realloc(p, cap *= 2)))
				touch(p + cap / 2, cap / 2, 1);
		if (round == 2) {
			s1 = kept_now();
			live = p ? malloc_usable_size(p) : 0;
		}
		v_free(p);
	}
	char why[300];
	snprintf(why, sizeof why, "three rounds of a buffer doubled by realloc to 256 MiB, at the third's end: %zu "
		 "mappings kept, %zu MiB, beside the buffer's %zu MiB (want at most 300 MiB together: no old block kept)",
		 s1.maps, s1.bytes >> 20, live >> 20);
	verdict("regrow_leaves_no_old_block_kept", live && s1.bytes + live <= 300 * MiB, why);
	empty_cache();
}

/* Hazard (of the rule above): a loop of two buffers (an input of 40 MiB read into, an output of 64 MiB written,
 * both freed each round) must not read as a growing buffer: its output is half as long again as its input, so the
 * first round gives the input back, but from the second round on the output is no longer the longest block yet
 * and both stay kept, served again without a page fault. Here: four rounds, each block written whole. */
static void loop_of_two_buffers_keeps_both(void)
{
	empty_cache();
	struct kept s0 = kept_now();
	long faults = 0;
	int ok = 1;
	for (int round = 0; round < 4; round++) {
		long f0 = minor_faults();
		char *in = v_malloc(40 * MiB), *out = v_malloc(64 * MiB);
		if (!in || !out)
			ok = 0;
		else {
			touch(in, 40 * MiB, 1);
			touch(out, 64 * MiB, 1);
		}
		v_free(in);
		v_free(out);
		if (round >= 2)
			faults += minor_faults() - f0;
	}
	struct kept s1 = kept_now();
	char why[300];
	snprintf(why, sizeof why, "4 rounds of a 40 MiB and a 64 MiB block, written and freed: %zu reuses of kept "
		 "mappings (want 5 or more), %ld page faults in the last two rounds (want under 1000: each block served "
		 "from a kept mapping, not mapped afresh)", s1.reused - s0.reused, faults);
	verdict("loop_of_two_buffers_keeps_both", ok && s1.reused - s0.reused >= 5 && faults < 1000, why);
	empty_cache();
}

/* The same hazard in a process with threads (run after the first thread started): from 32 MiB, a block freed while
 * a newer, longest, big block half as long again is live goes back at once. */
static void threaded_outgrown_buffer_not_kept(void)
{
	outgrown_one("threaded_outgrown_buffer_not_kept", "with threads");
}

/* Hazard: a thread's buffer grown by copy round after round (a std::vector built to 16 MiB and destroyed) took
 * its first big request from the 8 MiB mapping the last round left kept, its next from the 16 MiB one, cut each
 * to its size (the tails unmapped), and grew the cut mappings back by mremap into fresh pages: 4,600 page faults a
 * round, glibc's arena none. The tails now stay kept and serve the next requests. Here (a process with threads):
 * six rounds of a buffer from 1 to 16 MiB, every page written, each old block freed after the next is written. */
static void cut_tail_serves_next_request(void)
{
	empty_cache();
	long faults = 0;
	int ok = 1;
	for (int round = 0; round < 6; round++) {
		long f0 = minor_faults();
		char *old = NULL;
		for (size_t n = MiB; n <= 16 * MiB; n *= 2) {
			char *p = v_malloc(n);
			if (!p) {
				ok = 0;
				break;
			}
			touch(p, n, 1);
			v_free(old);
			old = p;
		}
		v_free(old);
		if (round >= 3)
			faults += minor_faults() - f0;
	}
	char why[300];
	snprintf(why, sizeof why, "with threads, a buffer grown 1 -> 16 MiB by copy, six rounds: %ld page faults in the "
		 "last three (want under 1,500; 13,800 when each round cut its kept mappings and grew them back)", faults);
	verdict("cut_tail_serves_next_request", ok && faults < 1500, why);
}

/* Hazard (session 67's hunt of idioms): in a process with threads, where every block from 1 MiB has a mapping of
 * its own and the cache keeps 64 of them, up to 1 GiB, a thread's buffers of random sizes, one live at a time,
 * filled the cache with mappings and tails it barely reused: a buffer grown by realloc to a random size up to 16
 * MiB (a file read whole) kept 64 final buffers, 736 MB resident where glibc takes 34; temporary buffers of 64
 * KiB-8 MiB, a quarter written, 121 MB kept. The cache now holds at most twice the most mapped bytes live at once
 * since it was last empty. Here (in a threaded child): 300 buffers grown by realloc from 4 KiB to 256 KiB-16 MiB,
 * each written and freed, then 1,000 temporaries of 64 KiB-8 MiB. */
static void kept_bytes_bounded_by_live_mapped(void)
{
	unsigned x = 7;
	size_t most = 0;
	char chunk[4096];
	memset(chunk, 'c', sizeof chunk);
	for (int i = 0; i < 300; i++) {
		x = x * 1103515245u + 12345u;
		size_t total = 262144 + (x >> 4) % (16 * MiB), len = 0, cap = 4096;
		char *b = v_malloc(cap);
		while (b && len < total) {
			if (len + 4096 > cap)
				b = realloc(b, cap *= 2);
			if (b)
				memcpy(b + len, chunk, 4096);
			len += 4096;
		}
		v_free(b);
		struct kept k = kept_now();
		most = k.bytes > most ? k.bytes : most;
	}
	size_t most_tmp = 0;
	for (int i = 0; i < 1000; i++) {
		x = x * 1103515245u + 12345u;
		size_t n = 65536 + (x >> 4) % (8 * MiB);
		char *b = v_malloc(n);
		if (b)
			memset(b, 1, n / 4);
		v_free(b);
		struct kept k = kept_now();
		most_tmp = k.bytes > most_tmp ? k.bytes : most_tmp;
	}
	char why[300];
	snprintf(why, sizeof why, "with threads, one buffer live at a time: at most %zu MiB kept after 300 buffers grown "
		 "by realloc to up to 16 MiB (want at most 64: twice the live buffer and its copy), %zu MiB after 1,000 of "
		 "64 KiB-8 MiB (want at most 64)", most >> 20, most_tmp >> 20);
	verdict("kept_bytes_bounded_by_live_mapped", most <= 64 * MiB && most_tmp <= 64 * MiB, why);
}

/* Hazard (the same hunt): with threads, a mapped block of 1-32 MiB that realloc grew went by mremap into fresh
 * pages while a kept mapping that held it sat resident beside it (a kept one was taken only from 32 MiB). It now
 * takes a kept mapping, as a heap block growing into these sizes does. A live block between them (spacer): the kept
 * mapping is not the block's neighbour, which its growth would take in place (threaded_growth_into_kept_tail). */
static void threaded_mapped_growth_takes_kept_mapping(void)
{
	char *k = v_malloc(9 * MiB);
	if (k)
		touch(k, 9 * MiB, 1);
	char *spacer = v_malloc(2 * MiB);
	char *p = v_malloc(2 * MiB);
	if (p)
		memset(p, 7, 2 * MiB);
	v_free(k);
	struct kept s0 = kept_now();
	long f0 = minor_faults();
	char *q = p ? realloc(p, 4 * MiB) : NULL;
	if (q)
		memset(q + 2 * MiB, 8, 2 * MiB);
	long faults = minor_faults() - f0;
	struct kept s1 = kept_now();
	int same = q && q[0] == 7 && q[2 * MiB - 1] == 7;
	char why[300];
	snprintf(why, sizeof why, "with threads, a 2 MiB block grown to 4 MiB beside a kept 9 MiB mapping: %zu reuses, "
		 "%ld page faults writing its new half (want 1 and under 100), contents %s", s1.reused - s0.reused, faults,
		 same ? "kept" : "LOST");
	verdict("threaded_mapped_growth_takes_kept_mapping", same && s1.reused == s0.reused + 1 && faults < 100, why);
	v_free(q);
	v_free(spacer);
}

/* Hazard (patterns' growbuf, session 68): with threads, a buffer grown by realloc from 4 KiB to a random size of up
 * to 16 MiB, round after round (a file read whole), mapped its 1 MiB step afresh, grew by mremap into fresh pages
 * beside the kept mappings, and took one of them (a copy) only at 4 MiB, whose tail went back: 13.9x glibc's time,
 * whose thread arena grows the buffer at its top. Now its 1 MiB step takes the kept mapping, and every growth after
 * takes the kept tail beside it in place. Here: 10 rounds of a buffer doubled from 4 KiB to 16 MiB, every page
 * written; the page faults of the last 8 rounds (about 2,400 a round before). */
static void threaded_growth_into_kept_tail(void)
{
	empty_cache();
	long faults = 0;
	int ok = 1;
	for (int round = 0; round < 10; round++) {
		long f0 = minor_faults();
		size_t cap = 4096;
		char *p = v_malloc(cap);
		for (size_t n = 0; p && n < 16 * MiB; n += 4096) {
			if (n + 4096 > cap && !(p = realloc(p, cap *= 2)))
				break;
			p[n] = (char)(n >> 12);
		}
		for (size_t n = 0; p && n < 16 * MiB; n += 4096)
			ok &= p[n] == (char)(n >> 12);
		ok &= p != NULL;
		v_free(p);
		if (round >= 2)
			faults += minor_faults() - f0;
	}
	char why[300];
	snprintf(why, sizeof why, "with threads, a buffer doubled by realloc from 4 KiB to 16 MiB, 10 rounds: %ld page "
		 "faults in the last 8 (want under 800: each round's growth in the pages the last one left), contents %s",
		 faults, ok ? "kept" : "LOST");
	verdict("threaded_growth_into_kept_tail", ok && faults < 800, why);
}

/* Hazard: with threads, a mapped block that a realloc shrank gave its tail's pages back (mremap), and the next
 * growth faulted them in again: random reallocs of 64 KiB-4 MiB in a threaded process took 172,000 page faults and
 * 0.39 s where tcmalloc takes 28,500 and 0.12 (bench/apis.py). The tail is now kept for SHRINK_TAIL_NS (10 ms), and
 * the growth takes it back in place. Here: a 4 MiB block written, cut to 1.5 MiB, grown to 4 MiB again at once:
 * no mmap, no mremap (the count of in-place reallocs moves by both), under 64 page faults for its 2.5 MiB grown
 * back, every byte kept. Then the same cut, left 60 ms while other calls reach the core: the tail goes back (no
 * kept bytes), which python3's churn needs (its buffers are cut once; kept a second, its peak rose by 7 MiB). */
static void threaded_shrink_keeps_tail(void)
{
	empty_cache();
	char why[400];
	const size_t big = 4 * MiB, cut = 3 * MiB / 2;
	char *p = v_malloc(big);
	if (!p)
		_exit(3);
	for (size_t n = 0; n < big; n += 4096)
		p[n] = (char)(n >> 12);
	struct os_stats a, b;
	os_stats(&a);
	long f0 = minor_faults();
	char *q = realloc(p, cut);
	char *r = q ? realloc(q, big) : NULL;
	long faults = minor_faults() - f0;
	os_stats(&b);
	int ok = r != NULL;
	for (size_t n = 0; r && n < cut; n += 4096)
		ok &= r[n] == (char)(n >> 12);
	for (size_t n = cut; r && n < big; n += 4096)
		r[n] = 1;
	faults = minor_faults() - f0;
	snprintf(why, sizeof why, "with threads, a 4 MiB mapped block cut to 1.5 MiB and grown back: %s, %zu mmap and %zu "
		 "mremap calls, %ld page faults writing it again (want the same address, 0, 0 and under 64), contents %s",
		 !r ? "failed" : r == p ? "in place" : "moved", b.mmap_calls - a.mmap_calls, b.mremap_calls - a.mremap_calls,
		 faults, ok ? "kept" : "LOST");
	verdict("threaded_shrink_keeps_tail", ok && r == p && b.mmap_calls == a.mmap_calls &&
		b.mremap_calls == a.mremap_calls && faults < 64, why);
	char *s = r ? realloc(r, cut) : NULL;
	struct kept k0 = kept_now();
	for (int i = 0; i < 6; i++) { /* 60 ms, with calls that reach the core (the cache's expiry runs there) */
		usleep(10000);
		v_free(v_malloc(200 * 1024));
	}
	struct kept k1 = kept_now();
	snprintf(why, sizeof why, "with threads, a 4 MiB mapped block cut to 1.5 MiB: %zu bytes kept right after, %zu "
		 "after 60 ms of calls (want more than 2 MiB, then 0: the tail waits 10 ms, not the cache's second)",
		 k0.bytes, k1.bytes);
	verdict("threaded_shrink_tail_not_kept_long", s && k0.bytes != SIZE_MAX && k0.bytes > 2 * MiB && k1.bytes == 0,
		why);
	v_free(s ? s : r);
}

/* Hazard (the rule above): the tail a block was cut from must join the block again at its free, or the next round
 * finds two mappings where there was one: its first big request takes the shorter, and the growth after it finds no
 * kept neighbour. Here: a 16 MiB mapping kept, a 2 MiB request cut from it (the tail kept), the block freed. */
static void freed_block_joins_its_kept_tail(void)
{
	empty_cache();
	char *k = v_malloc(16 * MiB);
	if (k)
		touch(k, 16 * MiB, 1);
	v_free(k);
	struct kept s0 = kept_now();
	char *p = v_malloc(2 * MiB);
	struct kept s1 = kept_now();
	v_free(p);
	struct kept s2 = kept_now();
	char why[300];
	snprintf(why, sizeof why, "with threads, a 16 MiB mapping kept (%zu kept), a 2 MiB block cut from it (%zu kept, "
		 "%zu reuse), then freed: %zu mappings kept of %zu MiB (want 1 of 16: the block joined its tail)", s0.maps,
		 s1.maps, s1.reused - s0.reused, s2.maps, s2.bytes >> 20);
	verdict("freed_block_joins_its_kept_tail", p && s0.maps == 1 && s1.maps == 1 && s1.reused == s0.reused + 1 &&
		s2.maps == 1 && s2.bytes >> 20 == 16, why);
	empty_cache();
}

/* Hazard (the same soak): a request below the mmap threshold (convert's three 28 MB buffers, the threshold at 32
 * MiB) grew the break by its size while a kept mapping that held it sat idle, resident, beside the heap. From 8 MiB
 * up such a request now takes the kept mapping (its pages resident already) and the tail beyond goes back. Here: a
 * 31 MiB mapped block freed (the threshold rises to it), then a 72 MiB one kept, then a 24 MiB request. */
static void heap_request_takes_kept_mapping(void)
{
	fflush(stdout);
	pid_t pid = fork(); /* the raised threshold stays in the child (small_mapping_not_kept wants it below 20 MiB) */
	if (pid == 0) {
		empty_cache();
		char *t = v_malloc(31 * MiB);
		v_free(t);
		struct reuse r = reuse_after(72 * MiB, 24 * MiB);
		char why[400];
		snprintf(why, sizeof why, "a 24 MiB request (below the threshold) after a 72 MiB block was freed: %zu "
			 "served by a kept mapping, %zu left kept of %zu bytes, %ld page faults writing it (want 1, then 1 "
			 "of 48 MiB: the tail, and fewer than 1,000 of its 6,144 pages)", r.s1.reused - r.s0.reused, r.s1.maps,
			 r.s1.bytes, r.faults);
		verdict("heap_request_takes_kept_mapping", r.got && r.s1.reused == r.s0.reused + 1 && r.s1.maps == 1 &&
			r.s1.bytes == 48 * MiB && r.faults < 1000, why);
		fflush(stdout);
		_exit(failures ? 1 : 0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) > 1)
		verdict("heap_request_takes_kept_mapping", 0, "the child died");
	else if (WEXITSTATUS(st))
		failures++;
}

/* Random operations on big blocks (malloc, calloc, posix_memalign, realloc up and down, free; 24-100 MiB, six live
 * at most), each block's pages tagged densely or one in 32: every kept mapping's path (taken whole or trimmed,
 * grown by mremap, taken by a realloc's growth, zeroed for calloc by writing or by giving pages back) must hand
 * out what malloc would: realloc keeps the bytes, calloc reads zero where a freed block wrote, nothing overlaps,
 * and the heap checks whole after each step. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13, rnd_state ^= rnd_state >> 7, rnd_state ^= rnd_state << 17;
	return rnd_state;
}

struct big { unsigned char *p; size_t n, stride; unsigned char tag; };

/* Tags every stride-th page of b below upto (and b's last byte) with b's tag; 0 checks instead that they hold it
 * (or, for a tag of 0, zeros), and returns the first offset that does not, or SIZE_MAX. */
static size_t big_pages(struct big *b, size_t upto, int write)
{
	for (size_t i = 0; i < upto; i += b->stride * 4096) {
		if (write)
			b->p[i] = b->tag;
		else if (b->p[i] != b->tag)
			return i;
	}
	if (write)
		b->p[b->n - 1] = b->tag;
	else if (upto == b->n && b->p[b->n - 1] != b->tag)
		return b->n - 1;
	return SIZE_MAX;
}

static void random_big_ops_keep_contents(void)
{
	char why[400];
	empty_cache();
	struct big v[6] = { { 0 } };
	size_t ops = 0, reused0 = kept_now().reused, bad = SIZE_MAX;
	const char *what = "";
	for (; ops < 300 && bad == SIZE_MAX; ops++) {
		struct big *b = &v[rnd() % 6];
		size_t n = (24 + rnd() % 77) * MiB - rnd() % 4096, k = rnd() % 8;
		if (b->p && k < 3) { /* realloc: the old bytes up to the smaller size stay */
			unsigned char *q = realloc(b->p, n);
			if (!q) {
				what = "realloc returned NULL";
				bad = 0;
				break;
			}
			b->p = q;
			size_t keep = n < b->n ? n : b->n;
			if ((bad = big_pages(b, keep, 0)) != SIZE_MAX) {
				what = "realloc lost a byte";
				break;
			}
			b->n = n;
		} else if (b->p) {
			v_free(b->p);
			b->p = NULL;
			continue;
		} else if (k < 5) { /* calloc: zeros where any freed block wrote */
			b->p = v_calloc(1, n);
			b->n = n;
			b->stride = 1;
			b->tag = 0;
			if (b->p && (bad = big_pages(b, n, 0)) != SIZE_MAX) {
				what = "calloc's block not zero";
				break;
			}
		} else {
			void *q = NULL;
			if (k == 5 && posix_memalign(&q, 4096, n) == 0 && ((uintptr_t)q & 4095)) {
				what = "posix_memalign(4096) misaligned";
				bad = 0;
				break;
			}
			b->p = k == 5 ? q : v_malloc(n);
			b->n = n;
		}
		if (!b->p) {
			what = "a request returned NULL";
			bad = 0;
			break;
		}
		b->stride = rnd() % 2 ? 1 : 32;
		b->tag = (unsigned char)(1 + ops % 255);
		big_pages(b, b->n, 1);
		if (os_heap_check() != 0) {
			what = "os_heap_check failed";
			bad = 0;
			break;
		}
	}
	for (int i = 0; i < 6; i++) /* the last tags still there: no block overlapped another */
		if (v[i].p && bad == SIZE_MAX && (bad = big_pages(&v[i], v[i].n, 0)) != SIZE_MAX)
			what = "a block's tag overwritten by another's";
	for (int i = 0; i < 6; i++)
		v_free(v[i].p);
	size_t reused = kept_now().reused - reused0;
	snprintf(why, sizeof why, "300 random operations on blocks of 24-100 MiB: %s at op %zu, offset %zu; %zu served "
		 "by a kept mapping (want none wrong, and some served)", bad == SIZE_MAX ? "all right" : what, ops,
		 bad == SIZE_MAX ? 0 : bad, reused);
	verdict("random_big_ops_keep_contents", bad == SIZE_MAX && reused > 10, why);
	empty_cache();
}

static void double_free_of_kept_block(void)
{
	char *p = v_malloc(40 * MiB);
	tu_say_addr(p);
	v_free(p);
	v_free(p);
}

int main(void)
{
	const char *profile = getenv("OSMEM_PROFILE");
	if (profile && strcmp(profile, "classic") == 0) {
		/* the classic profile keeps nothing: docs/CLASSIC.md's munmap at every free of a mapped block */
		struct os_stats s0, s1;
		char *p = v_malloc(40 * MiB);
		os_stats(&s0);
		v_free(p);
		os_stats(&s1);
		char why[200];
		snprintf(why, sizeof why, "a 40 MiB block freed: %zu cached blocks after, %zu munmap calls (want 0 and 1)",
			 s1.front_cached_blocks, s1.munmap_calls - s0.munmap_calls);
		verdict("classic_keeps_nothing", s1.front_cached_blocks == 0 && s1.munmap_calls == s0.munmap_calls + 1,
			why);
		return failures ? 1 : 0;
	}
	moved_mapping_does_not_raise_threshold(); /* first: see there */
	/* before any other calloc: calloc's verdict is the process's, and this one wants it sparse */
	calloc_of_grown_kept_mapping("calloc_of_grown_kept_mapping_lazy_when_sparse", false);
	shrinking_move_raises_threshold();
	big_block_reused_without_faults();
	calloc_takes_kept_mapping();
	calloc_of_sparse_kept_mapping_stays_sparse();
	calloc_of_grown_kept_mapping("calloc_of_grown_kept_mapping_populated_when_dense", true);
	os_calloc_zeroes_kept_mapping();
	long_mapping_tail_given_back();
	trim_gives_kept_back();
	idle_mapping_given_back();
	idle_mapping_given_back_by_cache_hits();
	at_most_four_kept();
	aligned_request_reuses();
	mapping_fails_then_kept_go("failed_mapping_gives_kept_back", 0);
	mapping_fails_then_kept_go("failed_aligned_mapping_gives_kept_back", 4096);
	heap_request_fails_then_kept_go("failed_heap_request_gives_kept_back", 0);
	heap_request_fails_then_kept_go("failed_aligned_heap_request_gives_kept_back", 4096);
	calloc_of_locked_kept_mapping_zeroed();
	wide_aligned_request_reuses();
	grown_request_drops_shorter_kept(); /* before the threaded cases: a process of one thread */
	outgrown_buffer_not_kept();
	loop_of_two_buffers_keeps_both();
	regrow_leaves_no_old_block_kept();
	heap_request_takes_kept_mapping();
	threaded_growth_takes_kept_mapping();
	threaded_outgrown_buffer_not_kept();
	in_threaded_child("cut_tail_serves_next_request", cut_tail_serves_next_request);
	in_threaded_child("kept_bytes_bounded_by_live_mapped", kept_bytes_bounded_by_live_mapped);
	in_threaded_child("threaded_mapped_growth_takes_kept_mapping", threaded_mapped_growth_takes_kept_mapping);
	in_threaded_child("threaded_growth_into_kept_tail", threaded_growth_into_kept_tail);
	in_threaded_child("freed_block_joins_its_kept_tail", freed_block_joins_its_kept_tail);
	in_threaded_child("threaded_shrink_keeps_tail", threaded_shrink_keeps_tail);
	threaded_random_sizes_keep_mappings_whole();
	threaded_churn_reuses_kept_mappings();
	threaded_burst_of_frees_kept();
	protected_kept_mapping_made_writable();
	threaded_sized_delete_of_whole_kept_mapping();
	small_mapping_not_kept();
	growing_buffer_takes_kept_mapping();
	mapped_shrink_stays_in_place();
	growing_requests_grow_kept_mapping();
	doubling_buffer_grows_within_kept_mapping();
	threaded_growth_old_block_not_kept();
	random_big_ops_keep_contents(); /* last: the thresholds it leaves behind are its own */
	if (!tu_death_case("mapcache", "", "double_free_of_kept_block", double_free_of_kept_block, "free", "double free"))
		failures++;
	fflush(stdout);
	setenv("OSMEM_PROFILE", "classic", 1);
	execl("/proc/self/exe", "malloc_mapcache", (char *)NULL);
	printf("FAIL mapcache/classic_keeps_nothing: exec failed\n");
	return 1;
}
