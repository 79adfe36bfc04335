/* malloc_front_range: pointers into the front's reserved range, and a process that cannot reserve it.
 *
 * Hazard: free tells a front slot from anything else by one compare against the reserved range (internal.h,
 * osm_front_in_range), then reads the page descriptor of the pointer's segment. A segment given back (malloc_trim,
 * or more than SEGS_KEEP free ones) must stay readable there, or a free of a stale pointer into it would fault
 * inside osmem instead of being reported; and the next segments must reuse it before the range grows. Where the
 * range cannot grow (something else mapped where it would), segments are mapped anywhere and free must still
 * find them.
 * Checked:
 *   - stale_free_in_released_segment, stale_realloc_..., stale_usable_size_...: a pointer of a segment that
 *     malloc_trim gave back is reported as an invalid pointer (SIGABRT, the pointer named), not a fault;
 *   - released_segment_reused: after the trim, 40 MiB of small objects again take the released segments (no
 *     segment beyond the first round's);
 *   - range_blocked_segments_elsewhere: a fresh process whose first segment has a page mapped right after it
 *     (by the program) takes its next segments elsewhere, and their slots are still front slots: freed, the last
 *     comes back at once from the thread's cache, and os_stats counts the frees in the front; and no address
 *     space is reserved ahead (the process maps less than 1 GiB after its first segment);
 *   - segment_calls_match_strace: os_stats counts the range's system calls as strace sees them (a released
 *     segment's PROT_NONE is an mmap call, not a munmap);
 *   - placement_not_from_glibc_guard: the range's first segment is not placed by AT_RANDOM's bytes 8..11
 *     (glibc's pointer guard: a heap address gave away 22 of its bits);
 *   - injected_fault_keeps_range_K: OSMEM_FAIL=mmap:K with errno left at EEXIST by the program: the injected
 *     failure is no memory, not an occupied address, and later segments still go in the range;
 *   - released_address_space_back_under_rlimit_as: under an RLIMIT_AS, after 150 MiB of small objects came and
 *     went, a 150 MiB request still succeeds: out of address space, released segments give theirs back.
 * Prints `PASS front/range/...` or `FAIL ...: why`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

#define OBJ   1024
#define COUNT (40 * 1024)  /* 40 MiB of 1 KiB objects: ten segments */

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static int failures;

static void result(const char *name, const char *why)
{
	if (why) {
		printf("FAIL front/range/%s: %s\n", name, why);
		failures++;
	} else {
		printf("PASS front/range/%s\n", name);
	}
	fflush(stdout);
}

static void *objs[COUNT];

/* 40 MiB of 1 KiB objects, every one written, then all freed and the free segments given back; returns the
 * middle one's address (its segment is given back: the newest holds the thread's current page and stays), NULL
 * if malloc failed */
static char *fill_free_trim(char **lo, char **hi)
{
	*lo = (char *)UINTPTR_MAX, *hi = NULL;
	for (size_t i = 0; i < COUNT; i++) {
		objs[i] = v_malloc(OBJ);
		if (!objs[i])
			return NULL;
		memset(objs[i], 0x5a, OBJ);
		if ((char *)objs[i] < *lo)
			*lo = objs[i];
		if ((char *)objs[i] > *hi)
			*hi = objs[i];
	}
	char *mid = objs[COUNT / 2];
	for (size_t i = 0; i < COUNT; i++)
		v_free(objs[i]);
	malloc_trim(0);
	return mid;
}

/* Whether the page of p is mapped without access (a released segment's pages past its first) */
static int page_is_reserved(const void *p)
{
	static char maps[1 << 20];
	tu_read_file("/proc/self/maps", maps, sizeof maps);
	for (char *line = strtok(maps, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long a, b;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && (uintptr_t)p >= a && (uintptr_t)p < b)
			return strncmp(perms, "---p", 4) == 0;
	}
	return 0;
}

static char *stale;

static void stale_setup(void)
{
	char *lo, *hi;
	stale = fill_free_trim(&lo, &hi);
	if (!stale || !page_is_reserved(stale)) {
		fprintf(stderr, "setup: the page of %p, in a segment malloc_trim found free, was not given back\n",
			(void *)stale);
		_exit(7);
	}
	tu_say_addr(stale);
}

static void stale_free(void)
{
	stale_setup();
	v_free(stale);
}

static void stale_realloc(void)
{
	stale_setup();
	(void)v_realloc(stale, 100);
}

static void stale_usable_size(void)
{
	stale_setup();
	(void)malloc_usable_size(stale);
}

static void released_segment_reused(void)
{
	char *lo1, *hi1, *lo2, *hi2, why[300];
	if (!fill_free_trim(&lo1, &hi1) || !fill_free_trim(&lo2, &hi2)) {
		result("released_segment_reused", "malloc(1024) returned NULL (test setup)");
		return;
	}
	size_t seg = (size_t)4 << 20; /* src/internal.h, FRONT_SEG_SIZE */
	if ((uintptr_t)lo2 / seg < (uintptr_t)lo1 / seg || (uintptr_t)hi2 / seg > (uintptr_t)hi1 / seg) {
		snprintf(why, sizeof why, "the second 40 MiB of 1 KiB objects lie in [%p, %p], the first in [%p, %p]: want "
			 "the released segments reused, no segment beyond the first round's", (void *)lo2, (void *)hi2,
			 (void *)lo1, (void *)hi1);
		result("released_segment_reused", why);
	} else {
		result("released_segment_reused", NULL);
	}
}

/* Runs this program again with `arg` (and `env` set): the child exits 0, or prints why and exits 1 */
static void run_child(const char *self, const char *name, const char *arg, const char *env)
{
	char out[2000], why[2200];
	int st = tu_spawn((char *const[]){ (char *)self, (char *)arg, NULL }, env, 1, out, sizeof out);
	if (st < 0) {
		result(name, "pipe or fork failed (test setup)");
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(why, sizeof why, "the child%s%s %s %d: %s", env ? " with " : "", env ? env : "",
			 WIFEXITED(st) ? "exited" : "was killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
			 out);
		result(name, why);
	} else {
		result(name, NULL);
	}
}

/* The exec'd child: one segment, the address after it taken, 20 MiB more: exits 0, or prints why and exits 1 */
static int blocked_child(void)
{
	size_t seg = (size_t)4 << 20; /* src/internal.h, FRONT_SEG_SIZE */
	char *first = v_malloc(OBJ);
	if (!first)
		return printf("malloc(1024) returned NULL\n"), 1;
	if ((uintptr_t)first < ((uintptr_t)16 << 40) || (uintptr_t)first >= ((uintptr_t)32 << 40) + seg)
		return printf("the first slot %p is not in [16, 32) TiB: the range was not used\n", (void *)first), 1;
	char *end = (char *)((uintptr_t)first & ~(seg - 1)) + seg;
	size_t vm0 = tu_vm_bytes();
	if (mmap(end, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != end)
		return printf("could not map the page at %p, after the first segment (test setup)\n", (void *)end), 1;
	size_t n = 20 * 1024, outside = 0;
	char **p = v_malloc(n * sizeof *p);
	for (size_t i = 0; i < n; i++) {
		if (!(p[i] = v_malloc(OBJ)))
			return printf("malloc(1024) returned NULL after %zu\n", i), 1;
		memset(p[i], 0x33, OBJ);
		outside += p[i] < end - seg || p[i] >= end;
	}
	if (!outside)
		return printf("20 MiB of 1 KiB objects all in the first segment\n"), 1;
	struct os_stats s0, s1;
	os_stats(&s0);
	char *last = p[n - 1];
	for (size_t i = 0; i < n; i++)
		v_free(p[i]);
	char *again = v_malloc(OBJ);
	os_stats(&s1);
	if (again != last)
		return printf("malloc(1024) after the frees returned %p, not the slot freed last (%p): the frees of "
			      "segments outside the range did not reach the thread's cache\n", (void *)again, (void *)last), 1;
	if (s1.front_in_use >= s0.front_in_use)
		return printf("front bytes in use %zu then %zu: the frees were not counted in the front\n",
			      s0.front_in_use, s1.front_in_use), 1;
	if (vm0 > ((size_t)1 << 30))
		return printf("%zu MiB of address space after one segment: want no reservation ahead\n", vm0 >> 20), 1;
	v_free(again);
	v_free(p);
	v_free(first);
	return os_heap_check() == 0 ? 0 : (printf("os_heap_check failed\n"), 1);
}

/* The strace'd child: between two marker writes, 40 MiB of small objects mapped, freed and given back; prints
 * what os_stats counted in between */
static int syscalls_child(void)
{
	struct os_stats s0, s1;
	char *lo, *hi;
	os_stats(&s0);
	if (write(1, "@", 1) != 1)
		return 1;
	char *mid = fill_free_trim(&lo, &hi);
	if (write(1, "@", 1) != 1)
		return 1;
	os_stats(&s1);
	printf("\nCOUNTS %zu %zu %zu\n", s1.mmap_calls - s0.mmap_calls, s1.munmap_calls - s0.munmap_calls,
	       s1.madvise_calls - s0.madvise_calls);
	return mid ? 0 : 1;
}

/* os_stats counts system calls as strace sees them: the range's mmap (MAP_FIXED_NOREPLACE at its end, MAP_FIXED
 * over a released segment, PROT_NONE when one is released), munmap and madvise */
static void segment_calls_match_strace(const char *self)
{
	const char *name = "segment_calls_match_strace";
	char log[] = "/tmp/osmem-range-strace-XXXXXX", why[600];
	int fd = mkstemp(log);
	if (fd < 0) {
		result(name, "mkstemp failed (test setup)");
		return;
	}
	close(fd);
	static char out[4096];
	char *const argv[] = { "strace", "-qq", "-e", "signal=none", "-e", "trace=mmap,munmap,madvise,write", "-o", log,
			       (char *)self, "--syscalls-child", NULL };
	int st = tu_spawn(argv, NULL, 0, out, sizeof out);
	if (st < 0) {
		result(name, "pipe or fork failed (test setup)");
		unlink(log);
		return;
	}
	size_t want[3], got[3] = { 0, 0, 0 };
	const char *c = strstr(out, "COUNTS ");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !c || sscanf(c, "COUNTS %zu %zu %zu", &want[0], &want[1],
								    &want[2]) != 3) {
		snprintf(why, sizeof why, "the strace'd child %s %d (127: no strace; tests/setup.sh installs it): %.300s",
			 WIFEXITED(st) ? "exited" : "was killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
			 out);
		result(name, why);
		unlink(log);
		return;
	}
	static char trace[1 << 20];
	tu_read_file(log, trace, sizeof trace);
	unlink(log);
	int markers = 0;
	for (char *line = strtok(trace, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, "write(1, \"@\"", 12) == 0)
			markers++;
		else if (markers == 1)
			got[0] += strncmp(line, "mmap(", 5) == 0, got[1] += strncmp(line, "munmap(", 7) == 0,
			got[2] += strncmp(line, "madvise(", 8) == 0;
	}
	if (markers < 2 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || !want[0] || !got[2])
		snprintf(why, sizeof why, "between the markers (%d seen) strace saw %zu mmap, %zu munmap, %zu madvise; "
			 "os_stats counted %zu, %zu, %zu (want equal, and segments both mapped and given back)", markers,
			 got[0], got[1], got[2], want[0], want[1], want[2]);
	result(name, markers < 2 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || !want[0] || !got[2]
			     ? why : NULL);
}

#define TIB ((uintptr_t)1 << 40)
static int in_range_region(const void *p) { return (uintptr_t)p >= 16 * TIB && (uintptr_t)p < 32 * TIB + (64u << 20); }

/* The range's first segment is not placed by the AT_RANDOM bytes glibc keeps its pointer guard in (bytes 8..15):
 * with them, any heap address gave away 22 bits of the guard */
static int placement_child(void)
{
	char *p = v_malloc(64);
	const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
	uint32_t v;
	if (!p || !r)
		return printf("malloc(64) %p, AT_RANDOM %p (test setup)\n", (void *)p, (const void *)r), 1;
	if (!in_range_region(p))
		return printf("the first slot %p is not in [16, 32) TiB: the range was not used\n", (void *)p), 1;
	memcpy(&v, r + 8, sizeof v);
	uintptr_t guess = 16 * TIB + (((uintptr_t)v << 22) & (16 * TIB - 1));
	uintptr_t seg = (uintptr_t)p & ~(((uintptr_t)4 << 20) - 1);
	if (seg == guess)
		return printf("the first segment %p is where AT_RANDOM's bytes 8..11 (glibc's pointer guard) put it\n",
			      (void *)seg), 1;
	return 0;
}

/* OSMEM_FAIL=mmap:K fails the Kth mmap; errno holds EEXIST before every malloc (left over from the program's own
 * calls): an injected failure is no memory, not an occupied address, so later segments still go in the range */
static int fault_child(void)
{
	size_t n = 20 * 1024, outside = 0;
	char **p = (char **)objs; /* static: a malloc of the array would take the first mmap itself */
	for (size_t i = 0; i < n; i++) {
		errno = EEXIST;
		p[i] = v_malloc(OBJ);
		if (!p[i])
			return printf("malloc(1024) returned NULL after %zu\n", i), 1;
		outside += !in_range_region(p[i]);
	}
	for (size_t i = 0; i < n; i++)
		v_free(p[i]);
	/* after a failed mapping the thread leaves the next 256 requests to the core (front.c, RETRY_AFTER): those
	 * are outside; a closed range would put nearly all of them outside */
	if (outside > 256 + 16)
		return printf("%zu of %zu 1 KiB objects outside the range: the injected failure closed it\n", outside,
			      n), 1;
	return os_heap_check() == 0 ? 0 : (printf("os_heap_check failed\n"), 1);
}

/* RLIMIT_AS 240 MiB above the process's size; 150 MiB of small objects allocated and freed (their segments go
 * back, but as PROT_NONE address space of the range); then malloc(150 MiB) must succeed: out of address space,
 * the released segments give theirs back and the request is tried again */
static int aslimit_child(void)
{
	struct rlimit rl = { .rlim_cur = tu_vm_bytes() + ((size_t)240 << 20), .rlim_max = RLIM_INFINITY };
	if (setrlimit(RLIMIT_AS, &rl) != 0)
		return printf("setrlimit failed (test setup)\n"), 1;
	size_t n = 150 * 1024;
	char **p = v_malloc(n * sizeof *p);
	if (!p)
		return printf("malloc of the pointer array failed (test setup)\n"), 1;
	for (size_t i = 0; i < n; i++) {
		if (!(p[i] = v_malloc(OBJ)))
			return printf("malloc(1024) returned NULL after %zu (test setup)\n", i), 1;
		memset(p[i], 0x11, 64);
	}
	for (size_t i = 0; i < n; i++)
		v_free(p[i]);
	v_free(p);
	char *big = v_malloc((size_t)150 << 20);
	if (!big)
		return printf("malloc(150 MiB) returned NULL with 240 MiB of address space left before 150 MiB of small "
			      "objects came and went (address space now %zu MiB above the start): the released segments "
			      "kept theirs\n", (tu_vm_bytes() >> 20)), 1;
	memset(big, 1, (size_t)150 << 20);
	v_free(big);
	return os_heap_check() == 0 ? 0 : (printf("os_heap_check failed\n"), 1);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--blocked-child") == 0)
		return blocked_child();
	if (argc > 1 && strcmp(argv[1], "--syscalls-child") == 0)
		return syscalls_child();
	if (argc > 1 && strcmp(argv[1], "--placement-child") == 0)
		return placement_child();
	if (argc > 1 && strcmp(argv[1], "--fault-child") == 0)
		return fault_child();
	if (argc > 1 && strcmp(argv[1], "--aslimit-child") == 0)
		return aslimit_child();
	failures += !tu_death_case("front/range", "", "stale_free_in_released_segment", stale_free, "free",
				   "invalid pointer");
	failures += !tu_death_case("front/range", "", "stale_realloc_in_released_segment", stale_realloc, "realloc",
				   "invalid pointer");
	failures += !tu_death_case("front/range", "", "stale_usable_size_in_released_segment", stale_usable_size,
				   "malloc_usable_size", "invalid pointer");
	released_segment_reused();
	run_child(argv[0], "range_blocked_segments_elsewhere", "--blocked-child", NULL);
	segment_calls_match_strace(argv[0]);
	run_child(argv[0], "placement_not_from_glibc_guard", "--placement-child", NULL);
	run_child(argv[0], "injected_fault_keeps_range_1", "--fault-child", "OSMEM_FAIL=mmap:1");
	run_child(argv[0], "injected_fault_keeps_range_2", "--fault-child", "OSMEM_FAIL=mmap:2");
	run_child(argv[0], "injected_fault_keeps_range_3", "--fault-child", "OSMEM_FAIL=mmap:3");
	run_child(argv[0], "released_address_space_back_under_rlimit_as", "--aslimit-child", NULL);
	return failures ? 1 : 0;
}
