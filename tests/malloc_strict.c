/* malloc_strict: OSMEM_CHECK=strict catches what it promises (docs/STRICT.md), each hazard in a process of its own.
 *
 * Each case runs as `malloc_strict --case NAME`, forked and re-executed with OSMEM_CHECK=strict set from its very
 * first allocation (the mode is read once, at the first call of the malloc family), its standard error on a pipe.
 * The child prints `ADDR 0x<p>` (the pointer the report must name), then commits the bug. The parent requires the
 * expected death: SIGABRT with the exact line `osmem: <api>(): <what> 0x<p>`, or SIGSEGV for the checks that fault
 * at once (guard pages, malloc(0), a sealed large block), with no report from osmem. The `clean_*` cases do only
 * legal things and must exit 0 with nothing on standard error: strict mode has no false alarms there.
 * OSMEM_STRICT_TEST_MODE=default runs the children without strict mode: every hazard that only strict mode
 * catches must then FAIL (the check that each test can fail); those the default mode catches as well (double and
 * invalid frees, realloc after free, a sized delete past its block's size, a large block's use after free, the
 * two through malloc(0), whose address comes from the same reservation) pass there too.
 * Prints `PASS strict/<case>` or `FAIL strict/<case>: why`; exits non-zero on any failure. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "osmem.h"
#include "test_util.h"

#define MiB ((size_t)1024 * 1024)

/* Behind volatile pointers: the compiler must not see (or warn about, or drop) the deliberate misuse. */
static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void (*volatile v_free)(void *) = free;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void *(*volatile v_memalign)(size_t, size_t) = memalign;

/* The C++ operators, called from C by their mangled names (libosmem-malloc.so defines them). */
extern void *cxx_new(size_t n) __asm__("_Znwm");
extern void cxx_delete(void *p) __asm__("_ZdlPv");
extern void cxx_delete_sized(void *p, size_t n) __asm__("_ZdlPvm");
extern void *cxx_new_aligned(size_t n, size_t a) __asm__("_ZnwmSt11align_val_t");
extern void cxx_delete_sized_aligned(void *p, size_t n, size_t a) __asm__("_ZdlPvmSt11align_val_t");
static void (*volatile v_delete_sized)(void *, size_t) = cxx_delete_sized;

static int n_fail;

/* Tells the parent the pointer the report must carry: only the child knows it. */
static void *addr(void *p)
{
	char msg[64];
	snprintf(msg, sizeof msg, "ADDR 0x%lx\n", (unsigned long)(uintptr_t)p);
	if (write(2, msg, strlen(msg)) < 0)
		_exit(99);
	void *volatile v = p;
	return v;
}

/* A child that finds something wrong before the bug exits with this status and says why. */
static _Noreturn void child_fail(const char *why)
{
	if (write(2, why, strlen(why)) < 0 || write(2, "\n", 1) < 0)
		_exit(96);
	_exit(96);
}

// ------------------------------------------------------------------
// The hazards (run in the child)
// ------------------------------------------------------------------

static void overflow_1_byte(void)
{
	char *p = addr(v_malloc(24));
	p[24] = 'x';
	v_free(p);
}

static void overflow_8_bytes(void)
{
	char *p = addr(v_malloc(32));
	memset(p + 32, 'A', 8);
	v_free(p);
}

/* 17 bytes: the block holds 32; byte 31 lies past the first 8 canary bytes, in the rest of the block. */
static void overflow_into_slack(void)
{
	char *p = addr(v_malloc(17));
	p[31] = 0;
	v_free(p);
}

/* Never freed: the canaries of live blocks are checked at exit. */
static void overflow_found_at_exit(void)
{
	char *p = addr(v_malloc(40));
	p[41] = 7;
	exit(0);
}

static void overflow_found_by_realloc(void)
{
	char *p = addr(v_malloc(100));
	p[100] = 0;
	(void)v_realloc(p, 200);
}

/* The process's first call of the malloc family is a free, which reads OSMEM_CHECK: strict mode sits off malloc's
 * and free's fast paths (the front stays off in strict mode, so they always miss), so the first free must decide it
 * as the first malloc would, and the block after it be a strict one. */
static void overflow_after_first_call_free(void)
{
	v_free(NULL);
	char *p = addr(v_malloc(100));
	p[100] = 0;
	v_free(p);
}

static void overflow_found_by_delete(void)
{
	char *p = addr(cxx_new(40));
	p[40] = 1;
	cxx_delete(p);
}

/* The 8 bytes before a heap block are its header's last field (next): the core's check sees it. */
static void underwrite_8_bytes(void)
{
	char *p = addr(v_malloc(64));
	memset(p - 8, 'U', 8);
	v_free(p);
}

static void underwrite_1_byte(void)
{
	char *p = addr(v_malloc(200));
	p[-1] ^= 0x40;
	v_free(p);
}

/* A large block's header sits a page away; the bytes right before its payload are canary. */
static void large_block_underwrite(void)
{
	char *p = addr(v_malloc(MiB + 100));
	p[-1] = 0;
	v_free(p);
}

/* Sizes whose body filled the mapping up to its header: 1 MiB - 32 left no canary before the payload at all (p[-1] is
 * the header's link, which nothing checked), 135120 left 16 bytes (session 50). */
static void underwrite_large(size_t n, size_t back)
{
	char *p = addr(v_malloc(n));
	p[-(ptrdiff_t)back] = 0;
	v_free(p);
}
static void large_block_underwrite_no_pad(void) { underwrite_large(MiB - 32, 1); }
static void large_block_underwrite_no_pad_64(void) { underwrite_large(MiB - 32, 64); }
static void large_block_underwrite_pad_16(void) { underwrite_large(135120, 17); }

/* Past the granule: the guard page, at once. */
static void large_block_overflow_guard_page(void)
{
	char *p = addr(v_malloc(MiB));
	((volatile char *)p)[MiB] = 1;
}

/* Within the granule (n is not a multiple of 16): the canary, at free. */
static void large_block_overflow_canary(void)
{
	char *p = addr(v_malloc(MiB + 3));
	p[MiB + 3] = 1;
	v_free(p);
}

/* Freed, written, then 1100 more frees push it out of the quarantine (1024 blocks): the fill is checked there. */
static void write_after_free(void)
{
	char *p = addr(v_malloc(100));
	v_free(p);
	p[10] = 1;
	for (int i = 0; i < 1100; i++)
		v_free(v_malloc(50));
	child_fail("the write after free was not reported when the block left the quarantine");
}

/* Freed, written, and still in the quarantine when the program ends: exit checks every block held. */
static void write_after_free_in_quarantine(void)
{
	char *p = addr(v_malloc(100));
	v_free(p);
	p[99] = 1;
	exit(0);
}

/* malloc_trim empties the quarantine, checking each block. */
static void write_after_free_found_by_trim(void)
{
	char *p = addr(v_malloc(3000));
	v_free(p);
	p[0] = 0;
	malloc_trim(0);
	child_fail("malloc_trim did not report the write after free");
}

/* A freed large block is sealed: the write faults at once. */
static void large_write_after_free_faults(void)
{
	char *p = addr(v_malloc(MiB));
	v_free(p);
	((volatile char *)p)[MiB / 2] = 1;
}

/* 40 MiB: larger than the whole quarantine, unmapped at its free (the default profile would keep a mapping that
 * size for reuse; strict mode must not: the write faults at once). */
static void huge_write_after_free_faults(void)
{
	char *p = addr(v_malloc(40 * MiB));
	v_free(p);
	((volatile char *)p)[20 * MiB] = 1;
}

static void zero_size_access_faults(void)
{
	char *a = v_malloc(0), *b = v_malloc(0);
	if (!a || !b || a == b)
		child_fail("malloc(0) did not return two distinct pointers");
	if (malloc_usable_size(a) != 0)
		child_fail("malloc_usable_size(malloc(0)) is not 0");
	addr(a);
	(void)((volatile char *)a)[0];
}

static void zero_size_double_free(void)
{
	char *p = addr(v_malloc(0));
	v_free(p);
	v_free(p);
}

static void double_free(void)
{
	char *p = addr(v_malloc(64));
	v_free(p);
	v_free(p);
}

static void double_free_large(void)
{
	char *p = addr(v_malloc(2 * MiB));
	v_free(p);
	v_free(p);
}

/* Aligned to a page: the header lies pages below the payload; the block leaves the quarantine (malloc_trim empties
 * it) and is unmapped, then freed again (it said invalid pointer until session 50). */
static void double_free_large_page_aligned(void)
{
	void *q = NULL;
	if (posix_memalign(&q, 4096, MiB) != 0)
		child_fail("posix_memalign failed");
	char *p = addr(q);
	v_free(p);
	malloc_trim(0);
	v_free(p);
}

/* 40 MiB: larger than the whole quarantine, unmapped at the first free; the second is still named. */
static void double_free_huge(void)
{
	char *p = addr(v_malloc(40 * MiB));
	v_free(p);
	v_free(p);
}

/* A large block's pointer freed twice, after 64 other large blocks went (strict.c's ring of gone pointers no longer
 * holds it) and a new large block was mapped where it was, its header at the stale pointer's header position (the
 * kernel hands the same range back: the new block's payload lies a page higher). The second free took that live
 * header for the stale pointer's own and unmapped the new block under the program (session 64's review: a write
 * to it then died of SIGSEGV). Now the pointer inside a live block of ours is named. */
static void double_free_of_forgotten_large_block(void)
{
	size_t n = 40 * MiB - 32;
	char *p = v_malloc(n);
	v_free(p);
	for (int i = 0; i < 64; i++) { /* other large blocks come and go: the ring forgets p */
		v_free(v_malloc(200000));
		malloc_trim(0);
	}
	char *q = v_malloc(n - 4096);
	if (q != p + 4096) {
		char why[160];
		snprintf(why, sizeof why, "setup: the new block is at %p, not a page above the stale pointer %p (the "
			 "kernel placed the mapping elsewhere)", (void *)q, (void *)p);
		child_fail(why);
	}
	v_free(addr(p));
}

/* The same ring, the other way: a pointer it holds becomes live again as an os_malloc block (the os_* API shares
 * the drop-in's heap, and free takes its blocks: docs/STRICT.md), which the kernel mapped where the large block
 * was. Its free was reported as a double free. */
static void clean_os_malloc_block_at_a_gone_pointer(void)
{
	size_t n = 40 * MiB - 32; /* larger than the quarantine: unmapped at once */
	char *p = v_malloc(n);
	v_free(p);
	malloc_trim(0);
	for (size_t m = n; m < n + 3 * 4096; m += 16) {
		char *q = os_malloc(m);
		if (q == p) {
			v_free(q);
			exit(0);
		}
		os_free(q);
	}
	char why[120];
	snprintf(why, sizeof why, "setup: no os_malloc block of %zu..%zu bytes landed at %p", n, n + 3 * 4096, (void *)p);
	child_fail(why);
}

/* The check behind the case above runs for every free of a mapped os_malloc block, a legal one: its first version
 * scanned strict mode's whole table each time, 3 ms a free with a million live blocks against 11 us with a
 * thousand (session 64's review). Thread CPU time, medians of 15: a busy host stretches neither. */
static double cpu_us_per_os_free(void)
{
	double t[15];
	for (int i = 0; i < 15; i++) {
		struct timespec a, b;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
		v_free(os_malloc(40 * MiB));
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
		t[i] = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
	}
	for (int i = 1; i < 15; i++) /* insertion sort: the median */
		for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
			double x = t[j];
			t[j] = t[j - 1];
			t[j - 1] = x;
		}
	return t[7];
}

static void clean_os_free_not_slowed_by_live_blocks(void)
{
	double few = cpu_us_per_os_free();
	for (int i = 0; i < 300000; i++)
		if (!v_malloc(16))
			child_fail("malloc(16) returned NULL (setup)");
	double many = cpu_us_per_os_free();
	if (many > 10 * few + 200) {
		char why[200];
		snprintf(why, sizeof why, "free of a mapped os_malloc block took %.0f us of CPU with 300,000 live blocks, "
			 "%.0f us with none: a walk of strict mode's table", many, few);
		child_fail(why);
	}
	exit(0);
}

static void invalid_free(void)
{
	char *p = v_malloc(64);
	v_free(addr(p + 16));
}

static void invalid_free_stack(void)
{
	_Alignas(16) char buf[256];
	memset(buf, 0, sizeof buf);
	v_free(addr(buf + 64));
}

/* The pointer before the size (session 58's review: realloc(p, SIZE_MAX) gave ENOMEM for any p) */
static void realloc_too_large_after_free(void)
{
	char *p = addr(v_malloc(64));
	v_free(p);
	(void)v_realloc(p, SIZE_MAX);
}

static void realloc_too_large_of_stack(void)
{
	_Alignas(16) char buf[256];
	(void)v_realloc(addr(buf + 64), SIZE_MAX);
}

/* an address whose header and page would lie at 0, where the ring of freed large blocks has its empty entries */
static void free_low_address(void)
{
	v_free(addr((void *)0x1000));
}

static void realloc_after_free(void)
{
	char *p = addr(v_malloc(64));
	v_free(p);
	(void)v_realloc(p, 100);
}

/* new(40) takes a 48-byte slot in the default profile, so a delete that says 48 passes there; strict mode knows
 * the 40. */
static void sized_delete_mismatch(void)
{
	void *p = addr(cxx_new(40));
	v_delete_sized(p, 48);
}

static void sized_delete_mismatch_large(void)
{
	void *p = addr(cxx_new(MiB));
	v_delete_sized(p, MiB + 1);
}

// ------------------------------------------------------------------
// Legal use: no report, no fault
// ------------------------------------------------------------------

static const size_t sizes[] = { 1, 7, 8, 15, 16, 17, 24, 31, 32, 33, 100, 1000, 4096, 5000, 65536, 131000, 131072,
				200000, MiB, 3 * MiB + 5 };
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Every byte of every block written, read back, reallocated, freed; aligned forms; C++ forms. */
static void clean_every_size(void)
{
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes[i];
		unsigned char *p = v_malloc(n);
		if (!p || ((uintptr_t)p & 15) || malloc_usable_size(p) != n)
			child_fail("malloc: NULL, unaligned, or malloc_usable_size is not the size asked for");
		memset(p, 0xAB, n);
		unsigned char *q = v_realloc(p, 2 * n + 1);
		if (!q || q == p)
			child_fail("realloc did not move (strict mode always moves)");
		for (size_t k = 0; k < n; k++)
			if (q[k] != 0xAB)
				child_fail("realloc lost the contents");
		memset(q, 0x11, 2 * n + 1);
		q = v_realloc(q, n / 2 + 1);
		memset(q, 0x22, n / 2 + 1);
		v_free(q);
		unsigned char *c = v_calloc(n, 1);
		for (size_t k = 0; k < n; k++)
			if (c[k])
				child_fail("calloc over reused memory is not zero");
		memset(c, 0xFF, n);
		v_free(c);
		static const size_t aligns[] = { 32, 64, 4096, 65536 };
		for (size_t a = 0; a < 4; a++) {
			unsigned char *m = v_memalign(aligns[a], n);
			if (!m || ((uintptr_t)m & (aligns[a] - 1)))
				child_fail("memalign: NULL or unaligned");
			memset(m, 0x33, n);
			v_free(m);
		}
		void *x = cxx_new(n);
		memset(x, 0x44, n);
		cxx_delete_sized(x, n);
		void *y = cxx_new_aligned(n, 256);
		if ((uintptr_t)y & 255)
			child_fail("operator new(align 256) is not aligned");
		memset(y, 0x55, n);
		cxx_delete_sized_aligned(y, n, 256);
	}
	void *z = v_malloc(0);
	if (!z)
		child_fail("malloc(0) is NULL");
	z = v_realloc(z, 10);
	memset(z, 1, 10);
	if (v_realloc(z, 0) != NULL)
		child_fail("realloc(p, 0) did not return NULL");
	free(NULL);
	errno = 1234;
	v_free(v_malloc(10));
	if (errno != 1234)
		child_fail("free changed errno");
	errno = 0;
	if (v_malloc(SIZE_MAX / 2) != NULL || errno != ENOMEM)
		child_fail("an impossible size did not fail with ENOMEM");
	exit(0);
}

/* More frees than the quarantine holds, on live neighbours: every block leaves it with its fill intact. */
static void clean_quarantine_churn(void)
{
	enum { N = 5000 };
	static char *live[N];
	for (int i = 0; i < N; i++) {
		size_t n = (size_t)(i * 37 % 3000) + 1;
		live[i] = v_malloc(n);
		memset(live[i], i, n);
		if (i % 3 == 0) {
			v_free(live[i]);
			live[i] = NULL;
		}
	}
	for (int i = 0; i < N; i++)
		v_free(live[i]);
	for (int i = 0; i < 100; i++)
		v_free(v_malloc((size_t)i * 20000)); /* large and small: the byte limit too */
	malloc_trim(0);
	exit(0);
}

/* A program at its address-space limit frees what it holds and asks again: the freed blocks wait in the
 * quarantine (up to 16 MiB), and a request that fails empties it and is tried once more, as the default mode gives
 * its caches back. Before the fix, malloc(56 MiB) after 63 blocks of 1 MiB were freed returned NULL, where glibc
 * and the default mode served it (a soak of session 60; glibc's tst-dynarray-fail). */
static void clean_enomem_empties_the_quarantine(void)
{
	unsigned long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f || fscanf(f, "%lu", &pages) != 1)
		child_fail("/proc/self/statm unreadable (test setup)");
	fclose(f);
	struct rlimit rl = { (rlim_t)pages * 4096 + 64 * MiB, RLIM_INFINITY };
	if (setrlimit(RLIMIT_AS, &rl) != 0)
		child_fail("setrlimit refused (test setup)");
	static char *held[128];
	int n = 0;
	while (n < 128 && (held[n] = v_malloc(MiB)) != NULL)
		memset(held[n++], 1, 4096);
	if (n < 32)
		child_fail("fewer than 32 blocks of 1 MiB fit under the limit (test setup)");
	for (int i = 0; i < n; i++)
		v_free(held[i]);
	for (int k = 0; k < 3; k++) {
		char *p = v_malloc(56 * MiB);
		if (!p) {
			char why[160];
			snprintf(why, sizeof why, "malloc(56 MiB) #%d returned NULL after %d blocks of 1 MiB were freed "
				 "(the quarantine kept them)", k, n);
			child_fail(why);
		}
		memset(p, 2, 4096);
		v_free(p);
	}
	exit(0);
}

/* mallopt(M_MMAP_MAX, 2): strict mode's large blocks still get a mapping and its guard page each (docs/STRICT.md:
 * whatever M_MMAP_MAX says). Session 62's limit turned strict mode's "always map" into "from the heap" at the
 * limit, whose guard page fell on the next block's header: the next malloc crashed (a review of session 62). */
static void clean_mmap_max_keeps_guarded_mappings(void)
{
	if (mallopt(M_MMAP_MAX, 2) != 1)
		child_fail("mallopt(M_MMAP_MAX, 2) refused");
	static char *big[6];
	for (int i = 0; i < 6; i++) {
		big[i] = v_malloc(200000);
		if (!big[i])
			child_fail("malloc(200000) returned NULL");
		memset(big[i], 0x5a, 200000);
	}
	char *small = v_malloc(1000);
	if (!small)
		child_fail("malloc(1000) returned NULL");
	memset(small, 1, 1000);
	for (int i = 0; i < 6; i++)
		v_free(big[i]);
	v_free(small);
	exit(0);
}

// ------------------------------------------------------------------
// The cases
// ------------------------------------------------------------------

enum expect { ABORT, SEGV, CLEAN };

struct strict_case {
	const char *name;
	void (*bad)(void);
	enum expect expect;
	const char *api, *what; /* ABORT: the report */
};

static const struct strict_case cases[] = {
	{ "overflow_1_byte", overflow_1_byte, ABORT, "free", "buffer overflow" },
	{ "overflow_8_bytes", overflow_8_bytes, ABORT, "free", "buffer overflow" },
	{ "overflow_into_slack", overflow_into_slack, ABORT, "free", "buffer overflow" },
	{ "overflow_found_at_exit", overflow_found_at_exit, ABORT, "exit", "buffer overflow" },
	{ "overflow_found_by_realloc", overflow_found_by_realloc, ABORT, "realloc", "buffer overflow" },
	{ "overflow_after_first_call_free", overflow_after_first_call_free, ABORT, "free", "buffer overflow" },
	{ "overflow_found_by_delete", overflow_found_by_delete, ABORT, "operator delete", "buffer overflow" },
	{ "underwrite_8_bytes", underwrite_8_bytes, ABORT, "free", "corrupted header" },
	{ "underwrite_1_byte", underwrite_1_byte, ABORT, "free", "corrupted header" },
	{ "large_block_underwrite", large_block_underwrite, ABORT, "free", "buffer underflow" },
	{ "large_block_underwrite_no_pad", large_block_underwrite_no_pad, ABORT, "free", "buffer underflow" },
	{ "large_block_underwrite_no_pad_64", large_block_underwrite_no_pad_64, ABORT, "free", "buffer underflow" },
	{ "large_block_underwrite_pad_16", large_block_underwrite_pad_16, ABORT, "free", "buffer underflow" },
	{ "large_block_overflow_guard_page", large_block_overflow_guard_page, SEGV, NULL, NULL },
	{ "large_block_overflow_canary", large_block_overflow_canary, ABORT, "free", "buffer overflow" },
	{ "write_after_free", write_after_free, ABORT, "free", "write after free" },
	{ "write_after_free_in_quarantine", write_after_free_in_quarantine, ABORT, "exit", "write after free" },
	{ "write_after_free_found_by_trim", write_after_free_found_by_trim, ABORT, "malloc_trim", "write after free" },
	{ "large_write_after_free_faults", large_write_after_free_faults, SEGV, NULL, NULL },
	{ "huge_write_after_free_faults", huge_write_after_free_faults, SEGV, NULL, NULL },
	{ "zero_size_access_faults", zero_size_access_faults, SEGV, NULL, NULL },
	{ "zero_size_double_free", zero_size_double_free, ABORT, "free", "double free" },
	{ "double_free", double_free, ABORT, "free", "double free" },
	{ "double_free_large", double_free_large, ABORT, "free", "double free" },
	{ "double_free_huge", double_free_huge, ABORT, "free", "double free" },
	{ "double_free_large_page_aligned", double_free_large_page_aligned, ABORT, "free", "double free" },
	{ "invalid_free", invalid_free, ABORT, "free", "invalid pointer" },
	{ "double_free_of_forgotten_large_block", double_free_of_forgotten_large_block, ABORT, "free",
	  "invalid pointer" },
	{ "invalid_free_stack", invalid_free_stack, ABORT, "free", "invalid pointer" },
	{ "realloc_after_free", realloc_after_free, ABORT, "realloc", "double free" },
	{ "realloc_too_large_after_free", realloc_too_large_after_free, ABORT, "realloc", "double free" },
	{ "realloc_too_large_of_stack", realloc_too_large_of_stack, ABORT, "realloc", "invalid pointer" },
	{ "free_low_address", free_low_address, ABORT, "free", "invalid pointer" },
	{ "sized_delete_mismatch", sized_delete_mismatch, ABORT, "operator delete", "size mismatch" },
	{ "sized_delete_mismatch_large", sized_delete_mismatch_large, ABORT, "operator delete", "size mismatch" },
	{ "clean_every_size", clean_every_size, CLEAN, NULL, NULL },
	{ "clean_quarantine_churn", clean_quarantine_churn, CLEAN, NULL, NULL },
	{ "clean_enomem_empties_the_quarantine", clean_enomem_empties_the_quarantine, CLEAN, NULL, NULL },
	{ "clean_mmap_max_keeps_guarded_mappings", clean_mmap_max_keeps_guarded_mappings, CLEAN, NULL, NULL },
	{ "clean_os_malloc_block_at_a_gone_pointer", clean_os_malloc_block_at_a_gone_pointer, CLEAN, NULL, NULL },
	{ "clean_os_free_not_slowed_by_live_blocks", clean_os_free_not_slowed_by_live_blocks, CLEAN, NULL, NULL },
};
#define NCASES (sizeof cases / sizeof cases[0])

static void report(const char *name, const char *why)
{
	if (why) {
		printf("FAIL strict/%s: %s\n", name, why);
		n_fail++;
	} else {
		printf("PASS strict/%s\n", name);
	}
	fflush(stdout);
}

static const char *signame(int sig)
{
	static char buf[32];
	if (sig == SIGABRT)
		return "SIGABRT";
	if (sig == SIGSEGV)
		return "SIGSEGV";
	snprintf(buf, sizeof buf, "signal %d", sig);
	return buf;
}

static void run_case(const struct strict_case *sc, const char *mode)
{
	char why[1000];
	int fds[2];
	if (pipe(fds) != 0) {
		report(sc->name, "pipe failed");
		return;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		report(sc->name, "fork failed");
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 2);
		close(fds[1]);
		setenv("OSMEM_CHECK", mode, 1);
		char *args[] = { "malloc_strict", "--case", (char *)sc->name, NULL };
		execv("/proc/self/exe", args);
		_exit(95);
	}
	close(fds[1]);
	char out[4096];
	size_t len = tu_read_all(fds[0], out, sizeof out);
	close(fds[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	const char *a = strstr(out, "ADDR 0x");
	unsigned long ptr = a ? strtoul(a + 7, NULL, 16) : 0;
	const char *shown = a && strchr(a, '\n') ? strchr(a, '\n') + 1 : out;
	int shown_len = (int)strcspn(shown, "\n");
	const char *bad = NULL;
	if (sc->expect == CLEAN) {
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || len) {
			snprintf(why, sizeof why, "legal use did not end cleanly: %s %d; stderr: \"%.300s\"",
				 WIFSIGNALED(st) ? "killed by" : "exit status",
				 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out);
			bad = why;
		}
	} else if (!WIFSIGNALED(st)) {
		snprintf(why, sizeof why, "the child exited with status %d instead of dying of %s; stderr: \"%.*s\"",
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1, sc->expect == SEGV ? "SIGSEGV" : "SIGABRT", shown_len,
			 shown);
		bad = why;
	} else if (WTERMSIG(st) != (sc->expect == SEGV ? SIGSEGV : SIGABRT)) {
		snprintf(why, sizeof why, "the child died of %s, not %s; stderr: \"%.*s\"", signame(WTERMSIG(st)),
			 sc->expect == SEGV ? "SIGSEGV" : "SIGABRT", shown_len, shown);
		bad = why;
	} else if (!a) {
		snprintf(why, sizeof why, "the child died before it named its pointer; stderr: \"%.*s\"", shown_len,
			 shown);
		bad = why;
	} else if (sc->expect == SEGV && strstr(out, "osmem:")) {
		snprintf(why, sizeof why, "the fault came after a report: \"%.*s\"", shown_len, shown);
		bad = why;
	} else if (sc->expect == ABORT) {
		char want[200];
		snprintf(want, sizeof want, "osmem: %s(): %s 0x%lx\n", sc->api, sc->what, ptr);
		if (!strstr(out, want)) {
			snprintf(why, sizeof why, "stderr \"%.*s\" lacks \"%.*s\"", shown_len, shown,
				 (int)strcspn(want, "\n"), want);
			bad = why;
		}
	}
	report(sc->name, bad);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--case") == 0) {
		signal(SIGABRT, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		alarm(60);
		for (size_t i = 0; i < NCASES; i++)
			if (strcmp(cases[i].name, argv[2]) == 0) {
				cases[i].bad();
				child_fail("CHILD SURVIVED THE BAD CALL");
			}
		child_fail("no such case");
	}
	const char *mode = getenv("OSMEM_STRICT_TEST_MODE");
	if (!mode || !*mode)
		mode = "strict";
	for (size_t i = 0; i < NCASES; i++)
		if (argc < 2 || strcmp(argv[1], cases[i].name) == 0)
			run_case(&cases[i], mode);
	fprintf(stderr, "malloc_strict (OSMEM_CHECK=%s): %d failed\n", mode, n_fail);
	return n_fail ? 1 : 0;
}
