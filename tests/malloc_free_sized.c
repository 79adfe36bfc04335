/* malloc_free_sized: C23's free_sized and free_aligned_sized (src/override.c, "C23's sized frees").
 *
 * The hazard: glibc 2.43 exports both, and its own is handed the block directly, not through free. A preloaded
 * allocator that does not export them lets a program built there (or GLib's g_free_sized, which calls free_sized
 * when it exists) give osmem's blocks to glibc's free: a corrupted arena or an abort. So the first case asks the
 * dynamic linker which free_sized a program gets, and every other case runs through that one.
 *
 * What each case asserts: a sized free frees the block (os_stats' frees counts it, the heap checks), keeps errno,
 * and accepts a size up to what the block holds (realloc's slack, an aligned block); a size larger than the block,
 * an alignment the pointer does not have, a double free and a pointer osmem never returned are reported with the
 * pointer and abort (a forked child each). Strict mode (OSMEM_CHECK=strict) wants the exact size asked for.
 * The program runs its cases in the profile it was started in, then re-executes itself in the classic profile and
 * in strict mode (names prefixed `classic/` and `strict/`). Prints PASS/FAIL lines; exits non-zero on a failure. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define GROUP "free_sized"

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
static free_sized_fn volatile v_free_sized;
static free_aligned_sized_fn volatile v_free_aligned_sized;
static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

static int n_fail;
static const char *prefix = ""; /* "", "classic/" or "strict/" */
static bool strict;

static void result(const char *name, const char *why)
{
	if (why) {
		printf("FAIL %s/%s%s: %s\n", GROUP, prefix, name, why);
		n_fail++;
	} else {
		printf("PASS %s/%s%s\n", GROUP, prefix, name);
	}
}

static size_t frees_now(void)
{
	struct os_stats st;
	os_stats(&st);
	return st.frees;
}

// ------------------------------------------------------------------
// The definition a program gets
// ------------------------------------------------------------------

/* Whichever free_sized the dynamic linker gives a program must be osmem's: libc's (glibc 2.43) frees without
 * passing through free. Fails before the drop-in exported them: dlsym finds none on glibc 2.36, the one a newer
 * glibc would have supplied. */
static bool t_exported(void)
{
	static char why[512];
	v_free_sized = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
	v_free_aligned_sized = (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
	Dl_info a, b;
	if (!v_free_sized || !v_free_aligned_sized) {
		snprintf(why, sizeof why, "the program gets no %s from osmem (on glibc 2.43, libc's own would free "
			 "osmem's blocks)", v_free_sized ? "free_aligned_sized" : "free_sized");
	} else if (!dladdr((void *)v_free_sized, &a) || !dladdr((void *)v_free_aligned_sized, &b) ||
		   !strstr(a.dli_fname, "libosmem-malloc") || !strstr(b.dli_fname, "libosmem-malloc")) {
		snprintf(why, sizeof why, "free_sized and free_aligned_sized resolve into %s and %s, not "
			 "libosmem-malloc.so", a.dli_fname ? a.dli_fname : "?", b.dli_fname ? b.dli_fname : "?");
	}
	result("exported_so_libc_never_frees_osmem_blocks", why[0] ? why : NULL);
	return !why[0];
}

// ------------------------------------------------------------------
// Sized frees that must free
// ------------------------------------------------------------------

static const size_t sizes[] = { 0, 1, 16, 100, 256, 2048, 2049, 3000, 40000, 65584, 100000, 200000, 40 * MiB };

/* Every size class and source: a slot, a medium block, a core block, a mapping, malloc(0)'s address. */
static void t_each_source(void)
{
	char why[256] = "";
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && !why[0]; i++) {
		size_t n = sizes[i];
		unsigned char *p = v_malloc(n);
		if (!p) {
			snprintf(why, sizeof why, "malloc(%zu) failed", n);
			break;
		}
		memset(p, 0x5a, n < 4096 ? n : 4096);
		size_t before = frees_now();
		errno = 1234;
		v_free_sized(p, n);
		size_t after = frees_now();
		if (errno != 1234)
			snprintf(why, sizeof why, "free_sized(p, %zu) changed errno to %d", n, errno);
		else if (!strict && after != before + 1) /* strict: counted as the block leaves the quarantine */
			snprintf(why, sizeof why, "free_sized(p, %zu): frees went %zu -> %zu, want one more", n, before,
				 after);
		else if (os_heap_check() != 0)
			snprintf(why, sizeof why, "os_heap_check failed after free_sized(p, %zu)", n);
	}
	result("each_source_freed_errno_kept", why[0] ? why : NULL);
}

/* The size asked for last, after realloc kept slack (a block bigger than the size by more than a split's worth),
 * and calloc's product. */
static void t_realloc_and_calloc(void)
{
	char why[256] = "";
	char *p = NULL;
	size_t n = 0;
	for (int i = 0; i < 200; i++) {
		n += 997;
		char *q = realloc(p, n);
		if (!q) {
			snprintf(why, sizeof why, "realloc to %zu failed", n);
			break;
		}
		p = q;
		p[n - 1] = 1;
	}
	if (!why[0]) {
		size_t before = frees_now();
		v_free_sized(p, n);
		if (!strict && frees_now() != before + 1)
			snprintf(why, sizeof why, "free_sized of a block grown by realloc to %zu did not free it", n);
	}
	void *c = calloc(10, 300);
	if (!why[0] && c) {
		size_t before = frees_now();
		v_free_sized(c, 3000);
		if (!strict && frees_now() != before + 1)
			snprintf(why, sizeof why, "free_sized(calloc(10, 300), 3000) did not free it");
	}
	if (!why[0] && os_heap_check() != 0)
		snprintf(why, sizeof why, "os_heap_check failed");
	result("realloc_slack_and_calloc_accepted", why[0] ? why : NULL);
}

/* A size below the block's (glibc ignores the size; osmem accepts up to what the block holds). Not strict mode,
 * which wants the exact size. */
static void t_smaller_accepted(void)
{
	char why[256] = "";
	for (size_t i = 1; i < sizeof sizes / sizeof sizes[0] && !why[0]; i++) {
		void *p = v_malloc(sizes[i]);
		size_t before = frees_now();
		v_free_sized(p, sizes[i] / 2);
		if (frees_now() != before + 1)
			snprintf(why, sizeof why, "free_sized(malloc(%zu), %zu) did not free it", sizes[i], sizes[i] / 2);
	}
	if (!why[0] && os_heap_check() != 0)
		snprintf(why, sizeof why, "os_heap_check failed");
	result("smaller_size_accepted", why[0] ? why : NULL);
}

/* free_aligned_sized of each aligned source; NULL is nothing, whatever the arguments. */
static void t_aligned(void)
{
	static const size_t al[][2] = { { 64, 100 }, { 32, 40 }, { 4096, 5000 }, { 256, 200000 }, { 4096, 4096 },
					{ 65536, 3 * MiB } };
	char why[256] = "";
	for (size_t i = 0; i < sizeof al / sizeof al[0] && !why[0]; i++) {
		void *p = NULL;
		if (posix_memalign(&p, al[i][0], al[i][1]) != 0) {
			snprintf(why, sizeof why, "posix_memalign(%zu, %zu) failed", al[i][0], al[i][1]);
			break;
		}
		memset(p, 0x11, al[i][1] < 8192 ? al[i][1] : 8192);
		size_t before = frees_now();
		errno = 77;
		v_free_aligned_sized(p, al[i][0], al[i][1]);
		if ((!strict && frees_now() != before + 1) || errno != 77)
			snprintf(why, sizeof why, "free_aligned_sized(p, %zu, %zu): %s", al[i][0], al[i][1],
				 errno != 77 ? "errno changed" : "not freed");
	}
	v_free_sized(NULL, 12345);
	v_free_aligned_sized(NULL, 3, 12345); /* C23: a null pointer does nothing */
	if (!why[0] && os_heap_check() != 0)
		snprintf(why, sizeof why, "os_heap_check failed");
	result("aligned_sources_and_null", why[0] ? why : NULL);
}

// ------------------------------------------------------------------
// Sized frees that must be reported (each in a child)
// ------------------------------------------------------------------

static void *the_block;
static _Alignas(64) unsigned char static_array[4096];

static void *block_said(size_t n)
{
	void *p = v_malloc(n);
	memset(p, 0x33, n < 4096 ? n : 4096);
	tu_say_addr(p);
	return p;
}
static void d_larger_slot(void) { v_free_sized(block_said(100), 200); }
/* one byte past what the slot holds: the bound is the slot's size exactly, not the next class's (a bound a class too
 * large lets a program free a block it overran, or free_sized with another object's size, unseen) */
static void d_larger_slot_by_one(void)
{
	void *p = block_said(100);
	v_free_sized(p, malloc_usable_size(p) + 1);
}
static void d_larger_medium(void) { v_free_sized(block_said(3000), 20000); }
static void d_larger_core(void) { v_free_sized(block_said(100000), 300000); }
static void d_larger_mapped(void) { v_free_sized(block_said(40 * MiB), 41 * MiB); }
static void d_larger_zero(void) { v_free_sized(block_said(0), 1000); } /* classic: a block of 16 bytes */
static void d_smaller_strict(void) { v_free_sized(block_said(3000), 2999); }
static void d_double_slot(void)
{
	void *p = block_said(100);
	v_free(p);
	v_free_sized(p, 100000); /* the double free is what the report names, not the size */
}
static void d_double_medium(void)
{
	void *p = block_said(3000);
	v_free(p);
	v_free_sized(p, 3000);
}
/* what free_sized freed is free: a free of it after is a double free (each profile and mode; strict mode, whose
 * os_stats counts a free only as its block leaves the quarantine, sees the free_sized here) */
static void d_freed_then_free(void)
{
	void *p = block_said(3000);
	v_free_sized(p, 3000);
	v_free(p);
}
static void d_freed_then_free_slot(void)
{
	void *p = block_said(48);
	v_free_sized(p, 48);
	v_free(p);
}
static void d_invalid(void)
{
	tu_say_addr(static_array + 256);
	v_free_sized(static_array + 256, 8);
}
static void d_misaligned(void)
{
	the_block = block_said(100);
	uintptr_t a = (uintptr_t)the_block;
	v_free_aligned_sized(the_block, (size_t)(a & -a) << 1, 100); /* twice the alignment it has */
}
static void d_not_power_of_two(void) { v_free_aligned_sized(block_said(100), 48, 100); }

struct death {
	const char *name;
	void (*fn)(void);
	const char *api, *what, *strict_what; /* strict_what NULL: the case is not run in strict mode */
};

static const struct death deaths[] = {
	{ "larger_than_slot_reported", d_larger_slot, "free_sized", "size larger than the block", "size mismatch" },
	{ "larger_than_slot_by_one_reported", d_larger_slot_by_one, "free_sized", "size larger than the block",
	  "size mismatch" },
	{ "larger_than_medium_block_reported", d_larger_medium, "free_sized", "size larger than the block",
	  "size mismatch" },
	{ "larger_than_core_block_reported", d_larger_core, "free_sized", "size larger than the block",
	  "size mismatch" },
	{ "larger_than_mapping_reported", d_larger_mapped, "free_sized", "size larger than the block",
	  "size mismatch" },
	{ "larger_than_malloc0_reported", d_larger_zero, "free_sized", "size larger than the block", "size mismatch" },
	{ "smaller_than_asked_strict_reported", d_smaller_strict, "free_sized", NULL, "size mismatch" },
	{ "double_free_slot_named_before_size", d_double_slot, "free_sized", "double free", "double free" },
	{ "double_free_medium_reported", d_double_medium, "free_sized", "double free", "double free" },
	{ "freed_block_then_free_is_double_free", d_freed_then_free, "free", "double free", "double free" },
	{ "freed_slot_then_free_is_double_free", d_freed_then_free_slot, "free", "double free", "double free" },
	{ "never_returned_pointer_reported", d_invalid, "free_sized", "invalid pointer", "invalid pointer" },
	{ "misaligned_pointer_reported", d_misaligned, "free_aligned_sized", "alignment mismatch",
	  "alignment mismatch" },
	{ "alignment_not_power_of_two_reported", d_not_power_of_two, "free_aligned_sized", "alignment mismatch",
	  "alignment mismatch" },
};

int main(int argc, char **argv)
{
	const char *profile = getenv("OSMEM_PROFILE"), *check = getenv("OSMEM_CHECK");
	strict = check && strcmp(check, "strict") == 0;
	if (strict)
		prefix = "strict/";
	else if (profile && strcmp(profile, "classic") == 0)
		prefix = "classic/";
	int earlier = argc >= 3 && strcmp(argv[1], "--rerun") == 0 ? atoi(argv[2]) : 0;

	if (t_exported()) {
		t_each_source();
		t_realloc_and_calloc();
		if (!strict)
			t_smaller_accepted();
		t_aligned();
		for (size_t i = 0; i < sizeof deaths / sizeof deaths[0]; i++) {
			const char *what = strict ? deaths[i].strict_what : deaths[i].what;
			if (what && !tu_death_case(GROUP, prefix, deaths[i].name, deaths[i].fn, deaths[i].api, what))
				n_fail++;
		}
		if (os_heap_check() != 0)
			result("heap_checks_at_the_end", "os_heap_check failed in the parent");
	}

	/* then the classic profile, then strict mode: each chosen at the first allocation, so a fresh process */
	const char *next = !prefix[0] ? "OSMEM_PROFILE=classic" : !strict ? "OSMEM_CHECK=strict" : NULL;
	if (next) {
		char failures[16];
		snprintf(failures, sizeof failures, "%d", n_fail + earlier);
		char *args[] = { argv[0], "--rerun", failures, NULL };
		fflush(stdout);
		unsetenv("OSMEM_PROFILE");
		putenv((char *)next);
		execv("/proc/self/exe", args);
		printf("FAIL %s/rerun: execv(/proc/self/exe): %s\n", GROUP, strerror(errno));
		return 1;
	}
	fprintf(stderr, "malloc_free_sized: %d failed\n", n_fail + earlier);
	return n_fail + earlier ? 1 : 0;
}
