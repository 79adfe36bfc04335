/* malloc_api: the drop-in malloc family of libosmem-malloc.so, one exported function at a time (the drop-in's
 * contract in README.md).
 *
 * Each group prints `PASS name` or `FAIL name: why`, and every group ends with os_heap_check() == 0. The whole
 * suite runs twice: first in the profile the process was started with (the default one, normally), then the
 * program sets OSMEM_PROFILE=classic and re-executes itself (/proc/self/exe --classic-rerun N, N being the
 * failures so far) to run everything again in the classic profile, where names carry a `classic/` prefix.
 * Started with OSMEM_PROFILE=classic already set, it runs once, in the classic profile.
 * Exits non-zero when any group failed, in either run.
 *
 * Every allocator call goes through a volatile function pointer, so the compiler cannot fold malloc/free pairs,
 * assume anything about errno, or warn about the deliberate misuse of sizes: the library itself is what runs. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)
/* Mapped in every profile: above the default profile's dynamic mmap threshold, which rises (as glibc's does) to
 * the size of a freed mapped block, at most 32 MiB. Never touched, so it costs no memory. */
#define MAPPED_ALWAYS (40 * MiB)
#define MMAP_THRESH (128 * KiB)

// ------------------------------------------------------------------
// The functions under test, behind volatile pointers
// ------------------------------------------------------------------

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void *(*volatile v_reallocarray)(void *, size_t, size_t) = reallocarray;
static int (*volatile v_posix_memalign)(void **, size_t, size_t) = posix_memalign;
static void *(*volatile v_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile v_memalign)(size_t, size_t) = memalign;
static void *(*volatile v_valloc)(size_t) = valloc;
static void *(*volatile v_pvalloc)(size_t) = pvalloc;
static size_t (*volatile v_usable)(void *) = malloc_usable_size;
static int (*volatile v_trim)(size_t) = malloc_trim;
static struct mallinfo2 (*volatile v_mallinfo2)(void) = mallinfo2;
static void (*volatile v_malloc_stats)(void) = malloc_stats;
static void *(*volatile v_os_malloc)(size_t) = os_malloc;
static void (*volatile v_os_free)(void *) = os_free;
static void *(*volatile v_os_calloc)(size_t, size_t) = os_calloc;
static void *(*volatile v_os_realloc)(void *, size_t) = os_realloc;

// ------------------------------------------------------------------
// Reporting
// ------------------------------------------------------------------

static const char *prefix = "";
static char why[600];
static int n_pass, n_fail;

static void failf(int line, const char *cond, const char *fmt, ...)
{
	if (why[0])
		return;
	int k = snprintf(why, sizeof why, "line %d: %s: ", line, cond);
	va_list ap;
	va_start(ap, fmt);
	if (k > 0 && (size_t)k < sizeof why)
		vsnprintf(why + k, sizeof why - (size_t)k, fmt, ap);
	va_end(ap);
}

/* EXPECT(cond, fmt, ...): record the first failure and leave the current function (which returns void). */
#define EXPECT(c, ...)                                         \
	do {                                                   \
		if (!(c)) {                                    \
			failf(__LINE__, #c, __VA_ARGS__);      \
			return;                                \
		}                                              \
	} while (0)
/* The same in helpers that return bool. */
#define EXPECTB(c, ...)                                        \
	do {                                                   \
		if (!(c)) {                                    \
			failf(__LINE__, #c, __VA_ARGS__);      \
			return false;                          \
		}                                              \
	} while (0)
#define TRY(call)              \
	do {                           \
		if (!(call))           \
			return;        \
	} while (0)

static void run(const char *name, void (*fn)(void))
{
	why[0] = 0;
	fn();
	if (!why[0] && os_heap_check() != 0)
		snprintf(why, sizeof why, "os_heap_check() failed after the group (see stderr)");
	if (why[0]) {
		printf("FAIL %s%s: %s\n", prefix, name, why);
		n_fail++;
	} else {
		printf("PASS %s%s\n", prefix, name);
		n_pass++;
	}
	fflush(stdout);
}

// ------------------------------------------------------------------
// Patterns and block checks
// ------------------------------------------------------------------

static inline unsigned char pat(size_t i, unsigned tag)
{
	return (unsigned char)(((uint32_t)i * 0x9E3779B1u >> 13) ^ (uint32_t)(i >> 8) ^ tag);
}

static void fill(void *p, size_t from, size_t to, unsigned tag)
{
	unsigned char *c = p;
	for (size_t i = from; i < to; i++)
		c[i] = pat(i, tag);
}

/* Index of the first byte in [0, n) that does not hold the pattern, or n. */
static size_t verify(const void *p, size_t n, unsigned tag)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != pat(i, tag))
			return i;
	return n;
}

static size_t first_nonzero(const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i])
			return i;
	return n;
}

static const struct block_meta *header(const void *p)
{
	return (const struct block_meta *)((const char *)p - META_SIZE);
}

/* Whether the default profile's front layer (src/front.c) serves a block of usable size u: slots of at most
 * 2 KiB (FRONT_MAX), with no header, unless the front is off (classic profile, OSMEM_FRONT=0; tracing keeps it
 * on). Medium blocks (2-64 KiB) are core blocks with headers, checked like any. */
static bool front_block(size_t u)
{
	const char *profile = getenv("OSMEM_PROFILE"), *front = getenv("OSMEM_FRONT");
	bool off = (profile && strcmp(profile, "classic") == 0) || (front && strcmp(front, "0") == 0);
	return !off && u <= 2048;
}

/* A fresh block for n bytes: non-NULL, aligned, malloc_usable_size(p) >= n, its header says what the ABI says
 * (core blocks; front slots have none), and all its usable bytes can be written (the heap check after the group
 * would see an overflow). */
static bool good_block(void *p, size_t n, size_t align, const char *what)
{
	EXPECTB(p != NULL, "%s(%zu) returned NULL (errno %d)", what, n, errno);
	EXPECTB(((uintptr_t)p & (align - 1)) == 0, "%s(%zu) = %p is not %zu-aligned", what, n, p, align);
	EXPECTB(((uintptr_t)p & 15) == 0, "%s(%zu) = %p is not 16-aligned", what, n, p);
	size_t u = v_usable(p);
	EXPECTB(u >= n, "%s(%zu): malloc_usable_size %zu < %zu", what, n, u, n);
	const struct block_meta *h = header(p);
	if (!front_block(u)) {
		EXPECTB(h->status == STATUS_ALLOC || h->status == STATUS_MAPPED, "%s(%zu): header status %d", what, n,
			h->status);
		EXPECTB(h->size == u, "%s(%zu): header size %zu, malloc_usable_size %zu", what, n, h->size, u);
	} else {
		/* size classes: 16-byte steps to 128, then 4 per power of two; aligned requests: a power of two */
		EXPECTB(u - n < (n < 128 ? 16 : n / 4 + 16) || align > 16, "%s(%zu): front slot of %zu bytes wastes too much",
			what, n, u);
	}
	memset(p, 0x5c, u);
	return true;
}

// ------------------------------------------------------------------
// malloc, free, malloc(0), malloc_usable_size
// ------------------------------------------------------------------

static const size_t sizes[] = {
	1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 64, 100, 127, 128, 255, 256, 1000, 1024, 4000, 4064, 4065,
	4080, 4096, 5000, 8192, 10000, 65536, 100000, 131000, 131007, 131008, 131024, 131025, 131040, 131041,
	131072, 200000, 1 * 1024 * 1024, 3 * 1024 * 1024 + 5, 4 * 1024 * 1024,
};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void t_malloc_basic(void)
{
	void *live[NSIZES];
	for (size_t i = 0; i < NSIZES; i++) {
		live[i] = v_malloc(sizes[i]);
		TRY(good_block(live[i], sizes[i], 16, "malloc"));
		fill(live[i], 0, sizes[i], (unsigned)i);
	}
	/* all alive at once: no block overlaps another */
	for (size_t i = 0; i < NSIZES; i++) {
		size_t bad = verify(live[i], sizes[i], (unsigned)i);
		EXPECT(bad == sizes[i], "block of %zu bytes changed at %zu", sizes[i], bad);
	}
	EXPECT(os_heap_check() == 0, "heap check with every size alive");
	for (size_t i = 0; i < NSIZES; i += 2)
		v_free(live[i]);
	for (size_t i = 1; i < NSIZES; i += 2)
		v_free(live[i]);
	/* many small blocks, freed in an interleaved order */
	enum { N = 2000 };
	static void *many[N];
	for (int i = 0; i < N; i++) {
		size_t n = 1 + (size_t)(i * 37) % 700;
		many[i] = v_malloc(n);
		TRY(good_block(many[i], n, 16, "malloc"));
	}
	for (int i = 0; i < N; i += 3)
		v_free(many[i]);
	for (int i = 1; i < N; i += 3)
		v_free(many[i]);
	for (int i = 2; i < N; i += 3)
		v_free(many[i]);
}

static void t_malloc_zero(void)
{
	enum { N = 200 };
	void *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = v_malloc(0);
		EXPECT(p[i] != NULL, "malloc(0) #%d returned NULL", i);
		EXPECT(((uintptr_t)p[i] & 15) == 0, "malloc(0) = %p not 16-aligned", p[i]);
		for (int j = 0; j < i; j++)
			EXPECT(p[i] != p[j], "malloc(0) returned %p twice (#%d and #%d)", p[i], j, i);
		size_t u = v_usable(p[i]);
		memset(p[i], 0x11, u);
	}
	for (int i = 0; i < N; i++)
		v_free(p[i]);
	/* realloc(NULL, 0) is malloc(0); calloc(0, x) and calloc(x, 0) likewise give unique pointers */
	void *a = v_realloc(NULL, 0), *b = v_calloc(0, 16), *c = v_calloc(16, 0);
	EXPECT(a && b && c, "realloc(NULL,0)=%p calloc(0,16)=%p calloc(16,0)=%p", a, b, c);
	EXPECT(a != b && b != c && a != c, "zero-size pointers not unique: %p %p %p", a, b, c);
	v_free(a);
	v_free(b);
	v_free(c);
	/* realloc(p, 0) frees p (glibc) and returns NULL: small and mapped */
	struct mallinfo2 m0 = v_mallinfo2();
	void *big = v_malloc(MAPPED_ALWAYS);
	EXPECT(big, "malloc(MAPPED_ALWAYS)");
	struct mallinfo2 m1 = v_mallinfo2();
	EXPECT(m1.hblks == m0.hblks + 1, "hblks %zu -> %zu after malloc(1 MiB)", m0.hblks, m1.hblks);
	EXPECT(v_realloc(big, 0) == NULL, "realloc(mapped, 0) did not return NULL");
	struct mallinfo2 m2 = v_mallinfo2();
	EXPECT(m2.hblks == m0.hblks, "realloc(mapped, 0) did not free it: hblks %zu -> %zu", m1.hblks, m2.hblks);
	void *small = v_malloc(100);
	EXPECT(small, "malloc(100)");
	size_t in_use = v_mallinfo2().uordblks;
	EXPECT(v_realloc(small, 0) == NULL, "realloc(small, 0) did not return NULL");
	EXPECT(v_mallinfo2().uordblks < in_use, "realloc(small, 0) did not free it");
}

static void t_free_null(void)
{
	errno = 4321;
	v_free(NULL);
	EXPECT(errno == 4321, "free(NULL) changed errno to %d", errno);
	v_os_free(NULL);
}

static void t_usable_size(void)
{
	EXPECT(v_usable(NULL) == 0, "malloc_usable_size(NULL) != 0");
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes[i];
		unsigned char *p = v_malloc(n);
		TRY(good_block(p, n, 16, "malloc"));
		size_t u = v_usable(p);
		EXPECT(u < n + 4096 || n >= MMAP_THRESH - 64, "usable %zu for %zu: too much slack on the heap", u, n);
		fill(p, 0, u, 7); /* every usable byte is the program's */
		EXPECT(os_heap_check() == 0, "heap check after writing %zu usable bytes of malloc(%zu)", u, n);
		EXPECT(verify(p, u, 7) == u, "usable bytes of malloc(%zu) changed", n);
		v_free(p);
	}
}

// ------------------------------------------------------------------
// calloc
// ------------------------------------------------------------------

static void t_calloc_zero(void)
{
	/* the same size again: the block just freed is dirty */
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes[i];
		unsigned char *p = v_malloc(n);
		TRY(good_block(p, n, 16, "malloc"));
		memset(p, 0xAA, v_usable(p));
		v_free(p);
		unsigned char *q = v_calloc(n, 1);
		EXPECT(q && ((uintptr_t)q & 15) == 0, "calloc(%zu, 1) = %p", n, (void *)q);
		EXPECT(v_usable(q) >= n, "calloc(%zu): usable %zu", n, v_usable(q));
		size_t nz = first_nonzero(q, n);
		EXPECT(nz == n, "calloc(%zu, 1) after a dirty free (0xAA): byte %zu is 0x%02x (same block: %s)", n, nz,
		       q[nz], q == p ? "yes" : "no");
		memset(q, 0xAA, v_usable(q));
		v_free(q);
		/* the other way round, and as an array of 16-byte elements */
		unsigned char *r = v_calloc(1, n);
		EXPECT(r && first_nonzero(r, n) == n, "calloc(1, %zu) after a dirty free is not zero", n);
		memset(r, 0xAA, v_usable(r));
		v_free(r);
		size_t m = (n + 15) / 16;
		r = v_calloc(m, 16);
		EXPECT(r && first_nonzero(r, m * 16) == m * 16, "calloc(%zu, 16) after a dirty free is not zero", m);
		v_free(r);
	}
	/* many dirty blocks freed, then calloc'd back in other shapes (split, coalesced, reused) */
	enum { N = 300 };
	static unsigned char *d[N];
	for (int i = 0; i < N; i++) {
		size_t n = 16 + (size_t)(i * 97) % 3000;
		d[i] = v_malloc(n);
		EXPECT(d[i], "malloc");
		memset(d[i], 0xAA, v_usable(d[i]));
	}
	for (int i = 0; i < N; i++)
		v_free(d[i]);
	for (int i = 0; i < N; i++) {
		size_t n = 8 + (size_t)(i * 53) % 5000, m = 1 + (size_t)i % 7;
		d[i] = v_calloc(m, n);
		EXPECT(d[i], "calloc(%zu, %zu)", m, n);
		size_t nz = first_nonzero(d[i], m * n);
		EXPECT(nz == m * n, "calloc(%zu, %zu) over dirty memory: byte %zu nonzero", m, n, nz);
		memset(d[i], 0xAA, m * n);
	}
	for (int i = 0; i < N; i++)
		v_free(d[i]);
	/* one big dirty heap block, then many small callocs carved out of it */
	unsigned char *big = v_malloc(100000);
	EXPECT(big, "malloc(100000)");
	memset(big, 0xAA, v_usable(big));
	v_free(big);
	for (int i = 0; i < N; i++) {
		size_t n = 24 + (size_t)i * 5;
		d[i] = v_calloc(1, n);
		EXPECT(d[i], "calloc");
		EXPECT(first_nonzero(d[i], n) == n, "calloc(1, %zu) carved from a dirty block is not zero", n);
	}
	for (int i = 0; i < N; i++)
		v_free(d[i]);
	/* a dirty realloc'd region */
	unsigned char *r = v_malloc(1000);
	EXPECT(r, "malloc");
	memset(r, 0xAA, 1000);
	r = v_realloc(r, 60000);
	EXPECT(r, "realloc");
	memset(r, 0xAA, 60000);
	v_free(r);
	unsigned char *z = v_calloc(60000, 1);
	EXPECT(z && first_nonzero(z, 60000) == 60000, "calloc(60000) after a dirty realloc'd block");
	v_free(z);
}

// ------------------------------------------------------------------
// realloc
// ------------------------------------------------------------------

/* Walks one block through `path`, checking the preserved prefix and filling the rest at each step. */
static bool realloc_walk(const size_t *path, size_t len, unsigned tag)
{
	size_t old = path[0];
	unsigned char *p = v_malloc(old);
	EXPECTB(p, "malloc(%zu)", old);
	fill(p, 0, old, tag);
	for (size_t k = 1; k < len; k++) {
		size_t n = path[k];
		unsigned char *q = v_realloc(p, n);
		EXPECTB(q, "realloc(%zu -> %zu) returned NULL", old, n);
		EXPECTB(((uintptr_t)q & 15) == 0, "realloc(%zu -> %zu) = %p not 16-aligned", old, n, (void *)q);
		size_t u = v_usable(q);
		EXPECTB(u >= n, "realloc(%zu -> %zu): usable %zu", old, n, u);
		size_t keep = old < n ? old : n;
		size_t bad = verify(q, keep, tag);
		EXPECTB(bad == keep, "realloc(%zu -> %zu) (%s): byte %zu of %zu kept bytes differs", old, n,
			q == p ? "in place" : "moved", bad, keep);
		fill(q, keep, n, tag);
		p = q;
		old = n;
	}
	EXPECTB(verify(p, old, tag) == old, "final contents");
	v_free(p);
	return true;
}

/* calloc's zeros cover all that malloc_usable_size says the program may use, as glibc's, jemalloc's and mimalloc's
 * do: a program that grows into its block's slack (a string buffer sized by malloc_usable_size) finds zeros there.
 * Until session 41 a front slot or a medium block was zeroed for the n bytes asked for only. */
static void t_calloc_zeroes_usable_size(void)
{
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes[i];
		unsigned char *p = v_malloc(n);
		TRY(good_block(p, n, 16, "malloc"));
		memset(p, 0xAA, v_usable(p));
		v_free(p);
		unsigned char *q = v_calloc(n, 1);
		EXPECT(q != NULL, "calloc(%zu, 1) = NULL", n);
		size_t u = v_usable(q), nz = first_nonzero(q, u);
		EXPECT(nz == u, "calloc(%zu, 1) after a dirty free (0xAA): byte %zu of the %zu usable bytes is 0x%02x (same "
		       "block: %s)", n, nz, u, q[nz], q == p ? "yes" : "no");
		v_free(q);
	}
}

static void t_realloc_grow_shrink(void)
{
	static const size_t up[] = {
		1, 15, 16, 17, 100, 1000, 4096, 10000, 65536, 131007, 131008, 131024, 131025, 131040, 131072,
		200000, MiB, 3 * MiB, 4 * MiB,
	};
	size_t n = sizeof up / sizeof up[0];
	size_t down[sizeof up / sizeof up[0]];
	for (size_t i = 0; i < n; i++)
		down[i] = up[n - 1 - i];
	TRY(realloc_walk(up, n, 1));
	TRY(realloc_walk(down, n, 2));
	/* across the 128 KiB boundary, back and forth, and big jumps both ways */
	static const size_t zig[] = {
		100, 4 * MiB, 200, MiB, 131024, 131025, 131024, 131040, 131008, 300000, 1, 4 * MiB, 3 * MiB, 131072,
		130000, 2 * MiB, 16, 200000, 199999, 500000, 64, 1,
	};
	TRY(realloc_walk(zig, sizeof zig / sizeof zig[0], 3));
	/* the same walks with a neighbour alive, so in-place growth and moves both happen */
	void *guard1 = v_malloc(48), *guard2;
	EXPECT(guard1, "malloc");
	TRY(realloc_walk(up, n, 4));
	guard2 = v_malloc(48);
	EXPECT(guard2, "malloc");
	TRY(realloc_walk(down, n, 5));
	TRY(realloc_walk(zig, sizeof zig / sizeof zig[0], 6));
	v_free(guard1);
	v_free(guard2);
	/* two blocks growing in turns, one step at a time */
	unsigned char *a = v_malloc(8), *b = v_malloc(8);
	size_t na = 8, nb = 8;
	EXPECT(a && b, "malloc");
	fill(a, 0, na, 10);
	fill(b, 0, nb, 11);
	while (na < 600000) {
		size_t ma = na * 3 / 2 + 8, mb = nb * 5 / 4 + 16;
		unsigned char *a2 = v_realloc(a, ma);
		EXPECT(a2 && verify(a2, na, 10) == na, "interleaved realloc a %zu -> %zu", na, ma);
		fill(a2, na, ma, 10);
		unsigned char *b2 = v_realloc(b, mb);
		EXPECT(b2 && verify(b2, nb, 11) == nb, "interleaved realloc b %zu -> %zu", nb, mb);
		fill(b2, nb, mb, 11);
		a = a2, b = b2, na = ma, nb = mb;
	}
	EXPECT(verify(a, na, 10) == na && verify(b, nb, 11) == nb, "interleaved final contents");
	v_free(a);
	v_free(b);
	/* realloc to the same size, and of blocks from the aligned family */
	unsigned char *s = v_malloc(5000);
	EXPECT(s, "malloc");
	fill(s, 0, 5000, 12);
	s = v_realloc(s, 5000);
	EXPECT(s && verify(s, 5000, 12) == 5000, "realloc to the same size");
	v_free(s);
	static const size_t al[] = { 64, 4096, 65536, MiB };
	static const size_t asz[] = { 100, 5000, 200000 };
	for (size_t i = 0; i < 4; i++)
		for (size_t j = 0; j < 3; j++) {
			unsigned char *p = v_memalign(al[i], asz[j]);
			EXPECT(p && ((uintptr_t)p & (al[i] - 1)) == 0, "memalign(%zu, %zu)", al[i], asz[j]);
			fill(p, 0, asz[j], 13);
			static const size_t to[] = { 300000, 50, 150000, 7000, 2 * MiB };
			size_t old = asz[j];
			for (size_t k = 0; k < 5; k++) {
				unsigned char *q = v_realloc(p, to[k]);
				size_t keep = old < to[k] ? old : to[k];
				EXPECT(q && verify(q, keep, 13) == keep,
				       "realloc of memalign(%zu, %zu) block %zu -> %zu lost contents", al[i], asz[j], old,
				       to[k]);
				fill(q, keep, to[k], 13);
				p = q;
				old = to[k];
			}
			v_free(p);
		}
}

/* realloc's move of a big block (override.c, move_copy): from 256 KiB up the copy streams (non-temporal stores in
 * 64-byte steps, memcpy for the rest); every byte must arrive, whatever the length's remainder. The blocks come
 * from the heap (a freed mapped block of 4 MiB first raises the default profile's threshold) or, in the classic
 * profile, are mappings that realloc copies (no mremap there); a live block above each one, inside the span the
 * grown block would need, keeps it from growing in place. Until session 52 one guard was taken and assumed to be
 * carved right after the block, but best fit sometimes put it into a free hole below, and all 5 reallocs grew in
 * place ("only 0 of 5 ... moved"): now guards are taken until one lies in that span, the others kept meanwhile
 * (they fill the holes below), and a realloc that did not move past such a guard fails. */
static void t_realloc_big_move(void)
{
	void *m = v_malloc(4 * MiB);
	EXPECT(m, "malloc(4 MiB)");
	v_free(m);
	static const size_t ns[] = { 256 * KiB - 16, 256 * KiB, 256 * KiB + 13, 300 * KiB + 72, MiB + 40 + 7 };
	enum { GUARDS = 32 };
	size_t moved = 0, guarded = 0;
	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
		size_t n = ns[i], grown = n + n / 2 + 4096;
		char *a = v_malloc(n);
		EXPECT(a, "malloc(%zu)", n);
		fill(a, 0, n, (unsigned)i);
		/* core blocks (above the medium caches' 64 KiB) until one lies in (a, a + grown); in the classic profile
		 * a is a mapping and none does: all GUARDS are taken, and the copy moves it anyway */
		char *guards[GUARDS];
		size_t ng = 0;
		bool above = false;
		while (ng < GUARDS && !above) {
			char *g = v_malloc(80 * KiB);
			EXPECT(g, "malloc(80 KiB), guard %zu", ng + 1);
			guards[ng++] = g;
			above = g > a && g < a + grown;
		}
		guarded += above;
		char *b = v_realloc(a, grown);
		EXPECT(b, "realloc(%zu -> %zu)", n, grown);
		EXPECT(!above || b != a, "realloc(%zu -> %zu) grew %p in place over the live block %p", n, grown, (void *)a,
		       (void *)guards[ng - 1]);
		moved += b != a;
		size_t bad = verify(b, n, (unsigned)i);
		EXPECT(bad == n, "realloc of %zu bytes moved to %p: byte %zu lost", n, (void *)b, bad);
		for (size_t k = 0; k < ng; k++)
			v_free(guards[k]);
		v_free(b);
	}
	EXPECT(moved >= 3, "only %zu of 5 big reallocs moved their block (the test needs moves; %zu had a live block "
	       "in the way)", moved, guarded);
	EXPECT(os_heap_check() == 0, "heap check after the big moves");
}

static void t_reallocarray(void)
{
	unsigned char *p = v_reallocarray(NULL, 10, 10);
	EXPECT(p, "reallocarray(NULL, 10, 10)");
	TRY(good_block(p, 100, 16, "reallocarray"));
	fill(p, 0, 100, 20);
	p = v_reallocarray(p, 1000, 300); /* 300000: mapped */
	EXPECT(p && verify(p, 100, 20) == 100, "reallocarray grow");
	fill(p, 0, 300000, 21);
	p = v_reallocarray(p, 10, 30);
	EXPECT(p && verify(p, 300, 21) == 300, "reallocarray shrink");
	v_free(p);
}

// ------------------------------------------------------------------
// Overflow and huge sizes
// ------------------------------------------------------------------

static void t_overflow(void)
{
	volatile size_t max = SIZE_MAX, half = SIZE_MAX / 2;
	errno = 0;
	EXPECT(v_malloc(max) == NULL && errno == ENOMEM, "malloc(SIZE_MAX): errno %d", errno);
	errno = 0;
	EXPECT(v_malloc(max - 4096) == NULL && errno == ENOMEM, "malloc(SIZE_MAX-4096): errno %d", errno);
	errno = 0;
	EXPECT(v_malloc(PTRDIFF_MAX) == NULL && errno == ENOMEM, "malloc(PTRDIFF_MAX): errno %d", errno);
	errno = 0;
	EXPECT(v_malloc((size_t)1 << 62) == NULL && errno == ENOMEM, "malloc(2^62): errno %d", errno);
	errno = 0;
	EXPECT(v_calloc(half, 3) == NULL && errno == ENOMEM, "calloc(SIZE_MAX/2, 3): errno %d", errno);
	errno = 0;
	EXPECT(v_calloc(3, half) == NULL && errno == ENOMEM, "calloc(3, SIZE_MAX/2): errno %d", errno);
	errno = 0;
	EXPECT(v_calloc((size_t)1 << 31, (size_t)1 << 31) == NULL && errno == ENOMEM, "calloc(2^31, 2^31): errno %d",
	       errno);
	errno = 0;
	EXPECT(v_calloc(max, max) == NULL && errno == ENOMEM, "calloc(SIZE_MAX, SIZE_MAX): errno %d", errno);

	/* a failed reallocarray / realloc leaves the old block as it was, small and mapped */
	static const size_t olds[] = { 100, 5000, 200000, 2 * MiB };
	for (size_t i = 0; i < 4; i++) {
		size_t n = olds[i];
		unsigned char *p = v_malloc(n);
		EXPECT(p, "malloc(%zu)", n);
		fill(p, 0, n, 30);
		size_t u = v_usable(p);
		errno = 0;
		EXPECT(v_reallocarray(p, half, 3) == NULL && errno == ENOMEM,
		       "reallocarray(p(%zu), SIZE_MAX/2, 3): errno %d", n, errno);
		EXPECT(v_usable(p) == u && verify(p, n, 30) == n, "reallocarray overflow changed the %zu-byte block",
		       n);
		errno = 0;
		EXPECT(v_realloc(p, max) == NULL && errno == ENOMEM, "realloc(p(%zu), SIZE_MAX): errno %d", n, errno);
		EXPECT(v_usable(p) == u && verify(p, n, 30) == n, "realloc(SIZE_MAX) changed the %zu-byte block", n);
		errno = 0;
		EXPECT(v_realloc(p, PTRDIFF_MAX) == NULL && errno == ENOMEM, "realloc(p(%zu), PTRDIFF_MAX): errno %d",
		       n, errno);
		errno = 0;
		EXPECT(v_realloc(p, (size_t)1 << 62) == NULL && errno == ENOMEM, "realloc(p(%zu), 2^62): errno %d", n,
		       errno);
		EXPECT(v_usable(p) == u && verify(p, n, 30) == n, "failed realloc(2^62) changed the %zu-byte block", n);
		EXPECT(os_heap_check() == 0, "heap check after failed reallocs of a %zu-byte block", n);
		/* still a good block: it grows and frees normally */
		p = v_realloc(p, n + 1000);
		EXPECT(p && verify(p, n, 30) == n, "realloc after the failures");
		v_free(p);
	}
	/* the aligned family with sizes that cannot fit */
	void *out = (void *)0x1234;
	errno = 77;
	int rc = v_posix_memalign(&out, 64, max);
	/* glibc leaves errno = ENOMEM after a failed posix_memalign (programs and glibc's tests read it) */
	EXPECT(rc == ENOMEM && errno == ENOMEM && out == (void *)0x1234, "posix_memalign(64, SIZE_MAX): rc %d errno %d",
	       rc, errno);
	errno = 0;
	EXPECT(v_aligned_alloc(4096, max - 100) == NULL && errno == ENOMEM, "aligned_alloc(4096, SIZE_MAX-100): %d",
	       errno);
	errno = 0;
	EXPECT(v_memalign(64, (size_t)1 << 62) == NULL && errno == ENOMEM, "memalign(64, 2^62): errno %d", errno);
	errno = 0;
	EXPECT(v_memalign(SIZE_MAX / 2 + 1, 1) == NULL && errno == ENOMEM, "memalign(2^63, 1): errno %d", errno);
	errno = 0;
	EXPECT(v_pvalloc(max - 10) == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX-10): errno %d", errno);
	errno = 0;
	EXPECT(v_valloc(max) == NULL && errno == ENOMEM, "valloc(SIZE_MAX): errno %d", errno);
	/* an alignment far beyond what the heap can give is ENOMEM, not a crash */
	rc = v_posix_memalign(&out, (size_t)1 << 40, 16);
	EXPECT(rc == ENOMEM, "posix_memalign(2^40, 16) = %d", rc);
	EXPECT(os_heap_check() == 0, "heap check after the huge alignment");
}

/* Hazard: memalign(a, n) where a and n each pass the size check but their sum passes what any request may be
 * (MAX_REQUEST): the answer is ENOMEM before any system call. Passed on to the core, the request asked the kernel
 * for a mapping of 2^63 bytes (a doomed mmap, counted in os_stats) before it failed. */
static void t_memalign_sum_too_large(void)
{
	struct os_stats s0, s1;
	os_stats(&s0);
	errno = 0;
	void *p = v_memalign((size_t)1 << 62, (size_t)1 << 62);
	int e = errno;
	os_stats(&s1);
	EXPECT(p == NULL && e == ENOMEM, "memalign(2^62, 2^62) = %p, errno %d (want NULL, ENOMEM)", p, e);
	EXPECT(s1.brk_calls == s0.brk_calls && s1.mmap_calls == s0.mmap_calls,
	       "memalign(2^62, 2^62) made %zu brk and %zu mmap calls (want none: the sum is too large before anything "
	       "is asked of the kernel)", s1.brk_calls - s0.brk_calls, s1.mmap_calls - s0.mmap_calls);
}

// ------------------------------------------------------------------
// errno
// ------------------------------------------------------------------

static void t_free_errno(void)
{
	static const size_t ns[] = { 1, 100, 5000, 100000, 131072, 200000, MiB };
	for (size_t i = 0; i < 7; i++) {
		void *p = v_malloc(ns[i]);
		EXPECT(p, "malloc(%zu)", ns[i]);
		errno = 12345;
		v_free(p);
		EXPECT(errno == 12345, "free of a %zu-byte block set errno to %d", ns[i], errno);
		void *c = v_calloc(1, ns[i]);
		EXPECT(c, "calloc(%zu)", ns[i]);
		errno = 12345;
		v_free(c);
		EXPECT(errno == 12345, "free of a calloc(%zu) block set errno to %d", ns[i], errno);
		void *a = v_memalign(4096, ns[i]);
		EXPECT(a, "memalign(4096, %zu)", ns[i]);
		errno = 12345;
		v_free(a);
		EXPECT(errno == 12345, "free of memalign(4096, %zu) set errno to %d", ns[i], errno);
	}
	/* frees that give the top of the heap back, and keep errno: the default profile trims a top above its
	 * threshold once it has waited 100 ms (heap.c, trim_due), at the next free that reaches the core: f's, below
	 * (g keeps f from merging with the top), or one of the loop's when the loop takes longer than the wait. The
	 * groups before raised the thresholds (up to a 64 MiB trim threshold), so the top here is 80 MiB (never
	 * written: nothing faults), in a child, whose heap goes with it; the child checks that the trim did happen
	 * (os_stats' trims), or the test would test nothing. */
	fflush(stdout);
	pid_t pid = fork();
	EXPECT(pid >= 0, "fork");
	if (pid == 0) {
		/* blocks of 80 KiB: core blocks (the medium caches keep up to 64 KiB, which never reach the top) */
		enum { N = 1024 };
		static void *b[N];
		const char *profile = getenv("OSMEM_PROFILE");
		int classic = profile && strcmp(profile, "classic") == 0;
		void *f = v_malloc(80 * KiB), *g = v_malloc(80 * KiB);
		if (!f || !g)
			_exit(2);
		for (int i = 0; i < N; i++)
			if (!(b[i] = v_malloc(80 * KiB)))
				_exit(3);
		/* counted from before the frees: in strict mode each free fills its 80 KiB, and on a loaded machine
		 * charging 10 us a page fault the loop outlasted the 100 ms wait, so the trim came inside it and
		 * f's free had none left to do (session 49: 1 run in 20 under load failed with 6) */
		struct os_stats s0, s1;
		os_stats(&s0);
		for (int i = N - 1; i >= 0; i--) {
			errno = 12345;
			v_free(b[i]);
			if (errno != 12345)
				_exit(4);
		}
		usleep(150000);
		errno = 12345;
		v_free(f);
		int e = errno;
		os_stats(&s1);
		v_free(g);
		if (e != 12345)
			_exit(5);
		_exit(classic || s1.trims > s0.trims ? 0 : 6);
	}
	int st = 0;
	EXPECT(waitpid(pid, &st, 0) == pid, "waitpid");
	EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "frees through a top trim: the child ended with %d (2, 3: malloc failed; 4: a free of the top set errno; "
	       "5: the free that trimmed set errno; 6: no trim, 150 ms after an 80 MiB top was freed)",
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	/* os_free keeps it too (it shares free's paths) */
	void *o = v_os_malloc(MiB);
	EXPECT(o, "os_malloc");
	errno = 12345;
	v_os_free(o);
	EXPECT(errno == 12345, "os_free of a mapped block set errno to %d", errno);
	/* a successful call does not need to keep errno, but realloc(p, 0) frees: it keeps it like free */
	void *r = v_malloc(MiB);
	EXPECT(r, "malloc");
	errno = 12345;
	EXPECT(v_realloc(r, 0) == NULL, "realloc(p, 0)");
	EXPECT(errno == 12345, "realloc(mapped, 0) (a free) set errno to %d", errno);
}

// ------------------------------------------------------------------
// The aligned family
// ------------------------------------------------------------------

static const size_t asizes[] = { 1, 100, 5000, 200000 };

enum { AL_POSIX, AL_ALIGNED_ALLOC, AL_MEMALIGN, AL_N };
static const char *const al_name[] = { "posix_memalign", "aligned_alloc", "memalign" };

static void *aligned_call(int kind, size_t a, size_t n, int *rc)
{
	void *p = NULL;
	*rc = 0;
	switch (kind) {
	case AL_POSIX:
		p = (void *)0x1;
		*rc = v_posix_memalign(&p, a, n);
		if (*rc)
			p = NULL;
		break;
	case AL_ALIGNED_ALLOC:
		p = v_aligned_alloc(a, n);
		break;
	default:
		p = v_memalign(a, n);
		break;
	}
	return p;
}

static void aligned_family(int kind)
{
	enum { NA = 18, NS = 4 }; /* 8 .. 1 MiB */
	static void *live[NA * NS];
	static size_t live_n[NA * NS];
	int k = 0;
	for (int e = 3; e <= 20; e++) {
		size_t a = (size_t)1 << e;
		for (int s = 0; s < NS; s++) {
			size_t n = asizes[s];
			int rc;
			void *p = aligned_call(kind, a, n, &rc);
			EXPECT(p && rc == 0, "%s(%zu, %zu) failed (rc %d, errno %d)", al_name[kind], a, n, rc, errno);
			char what[64];
			snprintf(what, sizeof what, "%s(align %zu)", al_name[kind], a);
			TRY(good_block(p, n, a, what));
			fill(p, 0, v_usable(p), (unsigned)k);
			live[k] = p;
			live_n[k] = v_usable(p);
			k++;
		}
	}
	int check = os_heap_check();
	int overwritten = -1;
	for (int i = 0; i < k && overwritten < 0; i++)
		if (verify(live[i], live_n[i], (unsigned)i) != live_n[i])
			overwritten = i;
	/* free in a scrambled order (also on failure, so that later groups start clean) */
	for (int step = 0; step < k; step++) {
		int i = (step * 29) % k;
		v_free(live[i]);
	}
	EXPECT(check == 0, "%s: os_heap_check() with all %d blocks alive (8..1 MiB alignments) failed", al_name[kind],
	       k);
	EXPECT(overwritten < 0, "%s block #%d was overwritten", al_name[kind], overwritten);
	EXPECT(os_heap_check() == 0, "%s: heap check after freeing them", al_name[kind]);
	/* again, each block freed at once (the free neighbours of aligned blocks are reused) */
	for (int e = 3; e <= 20; e++)
		for (int s = 0; s < NS; s++) {
			int rc;
			size_t a = (size_t)1 << e, n = asizes[s];
			void *p = aligned_call(kind, a, n, &rc);
			EXPECT(p && ((uintptr_t)p & (a - 1)) == 0 && v_usable(p) >= n, "%s(%zu, %zu) = %p (second round)",
			       al_name[kind], a, n, p);
			memset(p, 0x77, v_usable(p));
			void *q = v_malloc(n);
			EXPECT(q && ((uintptr_t)q & 15) == 0, "malloc(%zu) between aligned blocks", n);
			memset(q, 0x66, v_usable(q));
			v_free(p);
			v_free(q);
		}
}

static void t_posix_memalign(void) { aligned_family(AL_POSIX); }
static void t_aligned_alloc(void) { aligned_family(AL_ALIGNED_ALLOC); }
static void t_memalign(void) { aligned_family(AL_MEMALIGN); }

static void t_aligned_errors(void)
{
	static const size_t bad[] = { 0, 3, 4, 24, 1, 2, 48, 12, SIZE_MAX, SIZE_MAX / 2 + 2 };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		void *out = (void *)0x1234;
		errno = 999;
		int rc = v_posix_memalign(&out, bad[i], 100);
		EXPECT(rc == EINVAL, "posix_memalign(align %zu) returned %d, not EINVAL", bad[i], rc);
		EXPECT(errno == 999, "posix_memalign(align %zu) changed errno to %d", bad[i], errno);
		EXPECT(out == (void *)0x1234, "posix_memalign(align %zu) wrote *memptr", bad[i]);
	}
	static const size_t bad_c11[] = { 0, 3, 24, 48, SIZE_MAX };
	for (size_t i = 0; i < sizeof bad_c11 / sizeof bad_c11[0]; i++) {
		errno = 0;
		void *p = v_aligned_alloc(bad_c11[i], 100);
		EXPECT(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 100) = %p, errno %d", bad_c11[i], p, errno);
	}
	errno = 0;
	void *p = v_memalign(SIZE_MAX / 2 + 2, 1);
	EXPECT(p == NULL && errno == EINVAL, "memalign(SIZE_MAX/2+2, 1) = %p, errno %d", p, errno);
	errno = 0;
	p = v_memalign(SIZE_MAX, 1);
	EXPECT(p == NULL && errno == EINVAL, "memalign(SIZE_MAX, 1) = %p, errno %d", p, errno);
	/* memalign (glibc): an alignment that is not a power of two is rounded up; 0 and small ones give malloc's */
	static const size_t odd[] = { 0, 1, 3, 24, 48, 100, 3000, 5000 };
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		size_t want = 16;
		while (want < odd[i])
			want <<= 1;
		void *q = v_memalign(odd[i], 100);
		EXPECT(q && ((uintptr_t)q & (want - 1)) == 0, "memalign(%zu, 100) = %p, want %zu-aligned", odd[i], q,
		       want);
		v_free(q);
	}
	/* posix_memalign success does not touch errno either, and size 0 gives a freeable pointer */
	void *out = NULL;
	errno = 999;
	EXPECT(v_posix_memalign(&out, 64, 0) == 0 && out && errno == 999, "posix_memalign(64, 0)");
	v_free(out);
	void *z = v_aligned_alloc(256, 0);
	EXPECT(z && ((uintptr_t)z & 255) == 0, "aligned_alloc(256, 0) = %p", z);
	v_free(z);
}

static void t_valloc_pvalloc(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	static const size_t ns[] = { 0, 1, 100, 4095, 4096, 4097, 5000, 131072, 200000 };
	void *keep[2 * 9];
	for (size_t i = 0; i < 9; i++) {
		size_t n = ns[i];
		void *v = v_valloc(n);
		EXPECT(v && ((uintptr_t)v & (page - 1)) == 0, "valloc(%zu) = %p", n, v);
		EXPECT(v_usable(v) >= n, "valloc(%zu): usable %zu", n, v_usable(v));
		memset(v, 0x21, v_usable(v));
		void *pv = v_pvalloc(n);
		EXPECT(pv && ((uintptr_t)pv & (page - 1)) == 0, "pvalloc(%zu) = %p", n, pv);
		size_t want = n ? (n + page - 1) / page * page : page;
		EXPECT(v_usable(pv) >= want, "pvalloc(%zu): usable %zu < %zu (whole pages)", n, v_usable(pv), want);
		memset(pv, 0x22, v_usable(pv));
		keep[2 * i] = v;
		keep[2 * i + 1] = pv;
	}
	int check = os_heap_check();
	for (size_t i = 0; i < 18; i++)
		v_free(keep[(i * 7) % 18]);
	EXPECT(check == 0, "os_heap_check() with the valloc/pvalloc blocks alive failed");
}

/* glibc's second names for its allocator (__libc_malloc, __libc_free, ..., and cfree, which only binaries linked
 * against glibc before 2.26 can reach: looked up with dlsym). Hazard: a program that calls one of them got glibc's
 * allocator while malloc was osmem's; a block of one freed by the other is glibc's arena corrupted, or osmem's
 * "invalid pointer" abort. Each must be osmem's own function, and blocks must pass between the two names. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern int __libc_mallopt(int, int);

static void *where(void *fn) /* the object that defines the function, for the report */
{
	Dl_info info;
	return fn && dladdr(fn, &info) ? (void *)info.dli_fname : (void *)"nowhere";
}

static void t_libc_names(void)
{
	static const struct { const char *name, *public; } names[] = {
		{ "__libc_malloc", "malloc" }, { "__libc_free", "free" }, { "cfree", "free" },
		{ "__libc_calloc", "calloc" }, { "__libc_realloc", "realloc" }, { "__libc_memalign", "memalign" },
		{ "__libc_valloc", "valloc" }, { "__libc_pvalloc", "pvalloc" }, { "__libc_mallinfo", "mallinfo" },
		{ "__libc_mallopt", "mallopt" },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		void *a = dlsym(RTLD_DEFAULT, names[i].name), *b = dlsym(RTLD_DEFAULT, names[i].public);
		EXPECT(a && a == b, "%s is %p (from %s), %s is %p (from %s): want the same function", names[i].name,
		       a, (char *)where(a), names[i].public, b, (char *)where(b));
	}
	/* and through the program's own links to them */
	struct os_stats s0, s1;
	os_stats(&s0);
	char *p = __libc_malloc(100);
	EXPECT(p, "__libc_malloc(100) = NULL");
	memset(p, 0x41, 100);
	char *z = __libc_calloc(10, 30);
	EXPECT(z, "__libc_calloc(10, 30) = NULL");
	for (int i = 0; i < 300; i++)
		EXPECT(z[i] == 0, "__libc_calloc(10, 30): byte %d is %d", i, z[i]);
	p = __libc_realloc(p, 5000);
	EXPECT(p && p[0] == 0x41 && p[99] == 0x41, "__libc_realloc(p, 5000) = %p, or lost the bytes", (void *)p);
	void *m = __libc_memalign(256, 100), *v = __libc_valloc(10), *pv = __libc_pvalloc(10);
	EXPECT(m && ((uintptr_t)m & 255) == 0, "__libc_memalign(256, 100) = %p", m);
	EXPECT(v && pv && ((uintptr_t)v & 4095) == 0 && ((uintptr_t)pv & 4095) == 0,
	       "__libc_valloc(10) = %p, __libc_pvalloc(10) = %p", v, pv);
	EXPECT(__libc_mallopt(M_ARENA_MAX, 8) == 1, "__libc_mallopt(M_ARENA_MAX, 8) = 0 (mallopt accepts it)");
	os_stats(&s1);
	EXPECT(s1.allocations - s0.allocations >= 6, "6 blocks from the __libc_ names, os_stats counted %zu allocations",
	       s1.allocations - s0.allocations);
	v_free(p); /* blocks of one name freed by the other */
	v_free(z);
	__libc_free(m);
	__libc_free(v);
	__libc_free(pv);
	__libc_free(v_malloc(40));
}

// ------------------------------------------------------------------
// malloc_trim, mallinfo2, malloc_stats
// ------------------------------------------------------------------

static void t_malloc_trim(void)
{
	enum { N = 64 };
	unsigned char *b[N];
	int rc = v_trim(0);
	EXPECT(rc == 0 || rc == 1, "malloc_trim(0) = %d", rc);
	EXPECT(os_heap_check() == 0, "heap check after the first trim");
	for (int i = 0; i < N; i++) {
		b[i] = v_malloc(64 * KiB);
		EXPECT(b[i], "malloc(64 KiB)");
		memset(b[i], 0x31, 64 * KiB);
	}
	unsigned char *keep = v_malloc(1000);
	EXPECT(keep, "malloc");
	fill(keep, 0, 1000, 40);
	for (int i = 0; i < N; i += 2)
		v_free(b[i]);
	rc = v_trim(0);
	EXPECT(rc == 0 || rc == 1, "malloc_trim(0) = %d", rc);
	EXPECT(os_heap_check() == 0, "heap check after trimming with holes");
	/* the holes are usable again after their pages went back */
	for (int i = 0; i < N; i += 2) {
		b[i] = v_malloc(64 * KiB);
		EXPECT(b[i], "malloc(64 KiB) after trim");
		fill(b[i], 0, 64 * KiB, 41);
	}
	for (int i = 0; i < N; i += 2)
		EXPECT(verify(b[i], 64 * KiB, 41) == 64 * KiB, "block #%d after trim", i);
	for (int i = 0; i < N; i++)
		v_free(b[i]);
	/* 4 MiB of free heap: there is something to give back, except in the classic profile, which never gives
	 * memory back and never changes a freed block's bytes (docs/CLASSIC.md) */
	const char *profile = getenv("OSMEM_PROFILE");
	bool classic = profile && strcmp(profile, "classic") == 0;
	rc = v_trim(0);
	if (classic) {
		EXPECT(rc == 0, "classic: malloc_trim(0) returned %d: the classic profile gives nothing back", rc);
	} else {
		EXPECT(rc == 1, "malloc_trim(0) with 4 MiB free returned %d", rc);
	}
	EXPECT(os_heap_check() == 0, "heap check after malloc_trim(0)");
	rc = v_trim(SIZE_MAX / 4);
	EXPECT(rc == 0 || rc == 1, "malloc_trim(huge pad) = %d", rc);
	rc = v_trim(1 * MiB);
	EXPECT(rc == 0 || rc == 1, "malloc_trim(1 MiB) = %d", rc);
	EXPECT(verify(keep, 1000, 40) == 1000, "a live block changed across malloc_trim");
	/* and the heap still serves */
	for (int i = 0; i < N; i++) {
		b[i] = v_malloc(1 + (size_t)i * 1500);
		EXPECT(b[i], "malloc after trim");
		fill(b[i], 0, 1 + (size_t)i * 1500, 42);
	}
	for (int i = 0; i < N; i++) {
		EXPECT(verify(b[i], 1 + (size_t)i * 1500, 42) == 1 + (size_t)i * 1500, "block after trim");
		v_free(b[i]);
	}
	v_free(keep);
}

static void t_mallinfo2(void)
{
	struct mallinfo2 a = v_mallinfo2();
	EXPECT(a.arena >= a.uordblks + a.fordblks, "arena %zu < uordblks %zu + fordblks %zu", a.arena, a.uordblks,
	       a.fordblks);
	EXPECT(a.usmblks >= a.uordblks + a.hblkhd, "usmblks (peak) %zu < in use %zu", a.usmblks,
	       a.uordblks + a.hblkhd);
	void *p = v_malloc(100000);
	EXPECT(p, "malloc(100000)");
	struct mallinfo2 b = v_mallinfo2();
	EXPECT(b.uordblks >= a.uordblks + 100000, "uordblks %zu -> %zu after malloc(100000)", a.uordblks, b.uordblks);
	EXPECT(b.hblks == a.hblks && b.hblkhd == a.hblkhd, "malloc(100000) counted as mapped (%zu -> %zu)", a.hblks,
	       b.hblks);
	EXPECT(b.arena >= b.uordblks + b.fordblks, "arena %zu < uordblks %zu + fordblks %zu", b.arena, b.uordblks,
	       b.fordblks);
	EXPECT(b.usmblks >= b.uordblks + b.hblkhd, "peak %zu below what is in use", b.usmblks);
	v_free(p);
	struct mallinfo2 c = v_mallinfo2();
	EXPECT(c.uordblks + 100000 <= b.uordblks, "uordblks %zu -> %zu after free", b.uordblks, c.uordblks);
	EXPECT(c.usmblks >= b.usmblks, "the peak went down: %zu -> %zu", b.usmblks, c.usmblks);
	void *m = v_malloc(MAPPED_ALWAYS);
	EXPECT(m, "malloc(MAPPED_ALWAYS)");
	struct mallinfo2 d = v_mallinfo2();
	EXPECT(d.hblks == c.hblks + 1, "hblks %zu -> %zu after malloc(1 MiB)", c.hblks, d.hblks);
	EXPECT(d.hblkhd >= c.hblkhd + MiB, "hblkhd %zu -> %zu after malloc(1 MiB)", c.hblkhd, d.hblkhd);
	EXPECT(d.uordblks == c.uordblks, "a mapped block changed uordblks: %zu -> %zu", c.uordblks, d.uordblks);
	EXPECT(d.usmblks >= d.uordblks + d.hblkhd, "peak %zu below what is in use %zu", d.usmblks,
	       d.uordblks + d.hblkhd);
	void *m2 = v_malloc(MAPPED_ALWAYS + 2 * MiB);
	EXPECT(m2, "malloc(MAPPED_ALWAYS + 2 MiB)");
	struct mallinfo2 e = v_mallinfo2();
	EXPECT(e.hblks == d.hblks + 1 && e.hblkhd >= d.hblkhd + 2 * MiB, "second mapped block: %zu/%zu -> %zu/%zu",
	       d.hblks, d.hblkhd, e.hblks, e.hblkhd);
	v_free(m);
	v_free(m2);
	struct mallinfo2 f = v_mallinfo2();
	EXPECT(f.hblks == c.hblks && f.hblkhd == c.hblkhd, "after freeing the mapped blocks: %zu/%zu, was %zu/%zu",
	       f.hblks, f.hblkhd, c.hblks, c.hblkhd);
	/* free blocks show up in ordblks/fordblks */
	enum { N = 20 };
	void *h[N];
	for (int i = 0; i < N; i++) {
		h[i] = v_malloc(3000);
		EXPECT(h[i], "malloc");
	}
	struct mallinfo2 g = v_mallinfo2();
	for (int i = 0; i < N; i += 2)
		v_free(h[i]); /* holes between live blocks: they cannot merge */
	struct mallinfo2 hh = v_mallinfo2();
	EXPECT(hh.fordblks >= g.fordblks + (N / 2) * 3000 - 3000, "fordblks %zu -> %zu after 10 holes of 3000",
	       g.fordblks, hh.fordblks);
	EXPECT(hh.ordblks >= 1, "ordblks %zu with free holes", hh.ordblks);
	EXPECT(hh.keepcost <= hh.fordblks, "keepcost (largest free) %zu > fordblks %zu", hh.keepcost, hh.fordblks);
	for (int i = 1; i < N; i += 2)
		v_free(h[i]);
	/* the os_stats view agrees */
	struct os_stats st;
	os_stats(&st);
	struct mallinfo2 i2 = v_mallinfo2();
	/* arena: the heap, the front's mapped segments (a carved one is heap already) and the kept mappings (in
	 * front_cached_bytes, with the caches' slots and blocks) */
	EXPECT(st.mapped_count == i2.hblks && st.mapped_bytes == i2.hblkhd && i2.arena >= st.heap_size &&
		       i2.arena <= st.heap_size + st.front_bytes + st.front_cached_bytes &&
		       st.bytes_in_use - st.mapped_bytes == i2.uordblks,
	       "os_stats and mallinfo2 disagree");
}

/* Reads what fn writes to standard error. */
static bool capture_stderr(void (*fn)(void), char *buf, size_t cap)
{
	int fds[2];
	EXPECTB(pipe(fds) == 0, "pipe");
	fflush(stderr);
	int saved = dup(2);
	dup2(fds[1], 2);
	close(fds[1]);
	fn();
	dup2(saved, 2);
	close(saved);
	ssize_t n = read(fds[0], buf, cap - 1);
	close(fds[0]);
	buf[n > 0 ? n : 0] = 0;
	return true;
}

static void call_malloc_stats(void) { v_malloc_stats(); }

/* malloc(0) is a request like any other: os_stats counts it in allocations and its free in frees, in every
 * profile (before session 57 the default profile's malloc(0) addresses were counted in neither). */
static void t_stats_count_malloc0(void)
{
	struct os_stats a, b, c;
	os_stats(&a);
	void *p = v_malloc(0);
	os_stats(&b);
	v_free(p);
	os_stats(&c);
	EXPECT(p, "malloc(0) returned NULL");
	EXPECT(b.allocations == a.allocations + 1, "malloc(0): allocations %zu -> %zu, want one more", a.allocations,
	       b.allocations);
	EXPECT(c.frees == b.frees + 1, "free(malloc(0)): frees %zu -> %zu, want one more", b.frees, c.frees);
}

static void t_malloc_stats(void)
{
	static char out[8192];
	void *p = v_malloc(MiB), *q = v_malloc(1000);
	EXPECT(p && q, "malloc");
	TRY(capture_stderr(call_malloc_stats, out, sizeof out));
	v_free(p);
	v_free(q);
	EXPECT(strstr(out, "osmem: statistics"), "malloc_stats wrote: \"%.200s\"", out);
	EXPECT(strstr(out, "mapped blocks"), "malloc_stats has no mapped blocks line: \"%.200s\"", out);
	const char *profile = getenv("OSMEM_PROFILE");
	bool classic = profile && strcmp(profile, "classic") == 0;
	EXPECT(strstr(out, classic ? "(classic profile)" : "(default profile)"), "wrong profile in \"%.80s\"", out);
}

/* The profile really is the one the environment asks for: only the classic one maps a calloc of 4080 bytes
 * (docs/CLASSIC.md: calloc's threshold is the page size there, 128 KiB in the default profile). */
static void t_profile(void)
{
	const char *profile = getenv("OSMEM_PROFILE");
	bool classic = profile && strcmp(profile, "classic") == 0;
	size_t before = v_mallinfo2().hblks;
	void *p = v_calloc(4080, 1);
	EXPECT(p, "calloc(4080, 1)");
	size_t after = v_mallinfo2().hblks;
	const struct block_meta *h = header(p);
	if (classic) {
		EXPECT(after == before + 1 && h->status == STATUS_MAPPED, "classic: calloc(4080) is not mapped");
		EXPECT(h->size == 4080, "classic: calloc(4080) mapped with size %zu", h->size);
	} else {
		/* a front slot (no header) or a heap block: never a mapping of its own */
		EXPECT(after == before && (front_block(v_usable(p)) || h->status == STATUS_ALLOC),
		       "default: calloc(4080) was mapped");
	}
	v_free(p);
	void *q = v_calloc(1, 4000);
	EXPECT(q && (front_block(v_usable(q)) || header(q)->status == STATUS_ALLOC),
	       "calloc(1, 4000) is on the heap (or a front slot) in both profiles");
	v_free(q);
	/* malloc's threshold: 131024 + 32 < 128 KiB on the heap, 131025 rounds to 131040 and is mapped; in the default
	 * profile only when no free heap block holds it (glibc's order: its free lists and top before a mapping) */
	struct os_stats s0, s1;
	void *a = v_malloc(131024);
	os_stats(&s0);
	void *b = v_malloc(131025);
	os_stats(&s1);
	EXPECT(a && b, "malloc");
	EXPECT(header(a)->status == STATUS_ALLOC, "malloc(131024) was mapped");
	if (classic || header(b)->status == STATUS_MAPPED)
		EXPECT(header(b)->status == STATUS_MAPPED && header(b)->size == 131040 && s1.brk_calls == s0.brk_calls,
		       "malloc(131025): status %d size %zu, %zu brk calls", header(b)->status, header(b)->size,
		       s1.brk_calls - s0.brk_calls);
	else
		EXPECT(header(b)->status == STATUS_ALLOC && s1.brk_calls == s0.brk_calls && s1.mmap_calls == s0.mmap_calls,
		       "default: malloc(131025) from the heap (status %d) made %zu brk and %zu mmap calls (want a free "
		       "block it fits: none)", header(b)->status, s1.brk_calls - s0.brk_calls, s1.mmap_calls - s0.mmap_calls);
	v_free(a);
	v_free(b);
}

// ------------------------------------------------------------------
// The os_* API on the same heap
// ------------------------------------------------------------------

static void t_os_api(void)
{
	EXPECT(v_os_malloc(0) == NULL, "os_malloc(0) is not NULL");
	EXPECT(v_os_calloc(0, 8) == NULL && v_os_calloc(8, 0) == NULL, "os_calloc with a zero is not NULL");
	EXPECT(v_os_realloc(NULL, 0) == NULL, "os_realloc(NULL, 0) is not NULL");
	errno = 0;
	EXPECT(v_os_malloc(SIZE_MAX) == NULL && errno == ENOMEM, "os_malloc(SIZE_MAX): errno %d", errno);
	errno = 0;
	EXPECT(v_os_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM, "os_calloc overflow: errno %d", errno);
	/* one heap: os_malloc'd blocks go to free() and malloc'd ones to os_free() */
	for (size_t i = 0; i < NSIZES; i++) {
		size_t n = sizes[i];
		void *p = v_os_malloc(n);
		TRY(good_block(p, n, 16, "os_malloc"));
		v_free(p);
		void *q = v_malloc(n);
		TRY(good_block(q, n, 16, "malloc"));
		v_os_free(q);
		unsigned char *c = v_malloc(n);
		EXPECT(c, "malloc");
		memset(c, 0xAA, n);
		v_free(c);
		c = v_os_calloc(n, 1);
		EXPECT(c && first_nonzero(c, n) == n, "os_calloc(%zu, 1) over dirty memory is not zero", n);
		fill(c, 0, n, 50);
		c = v_os_realloc(c, n * 2 + 1);
		EXPECT(c && verify(c, n, 50) == n, "os_realloc(%zu -> %zu)", n, n * 2 + 1);
		c = v_realloc(c, n);
		EXPECT(c && verify(c, n, 50) == n, "realloc of an os_realloc'd block");
		EXPECT(v_os_realloc(c, 0) == NULL, "os_realloc(p, 0) frees");
	}
	/* os_realloc of a block already free: NULL, nothing changes (docs/CLASSIC.md, realloc rule 3) */
	void *l = v_malloc(64), *m = v_malloc(64), *r = v_malloc(64);
	EXPECT(l && m && r, "malloc");
	v_free(m);
	EXPECT(os_heap_check() == 0, "heap check");
	struct os_stats s0, s1;
	os_stats(&s0);
	EXPECT(v_os_realloc(m, 200) == NULL, "os_realloc of a free block did not return NULL");
	os_stats(&s1);
	EXPECT(s0.bytes_in_use == s1.bytes_in_use && s0.free_blocks == s1.free_blocks, "os_realloc of a free block "
	       "changed the heap");
	v_free(l);
	v_free(r);
	/* os_stats counts */
	os_stats(&s0);
	void *big = v_os_malloc(MAPPED_ALWAYS);
	EXPECT(big, "os_malloc(MAPPED_ALWAYS)");
	os_stats(&s1);
	EXPECT(s1.mapped_count == s0.mapped_count + 1 && s1.bytes_in_use >= s0.bytes_in_use + MiB &&
		       s1.allocations == s0.allocations + 1,
	       "os_stats after os_malloc(1 MiB)");
	v_os_free(big);
}

/* A program built against an older osmem.h has a shorter struct os_stats (fields are only ever added at its end):
 * the library must fill what that program knows and not one byte past it (before os_stats_get, os_stats wrote
 * the whole struct of the library's version: the 8 bytes session 18 added overran an older caller's). */
static void t_stats_older_header(void)
{
	size_t old = offsetof(struct os_stats, huge_bytes); /* the struct as it was before session 17 */
	struct os_stats full;
	unsigned char buf[sizeof(struct os_stats) + 64];
	memset(buf, 0xA5, sizeof buf);
	void *p = v_malloc(100);
	EXPECT(p, "malloc");
	os_stats_get((struct os_stats *)(void *)buf, old);
	os_stats(&full);
	v_free(p);
	size_t bad = old;
	while (bad < sizeof buf && buf[bad] == 0xA5)
		bad++;
	EXPECT(bad == sizeof buf, "os_stats_get(st, %zu) wrote byte %zu, past the caller's struct", old, bad);
	struct os_stats got;
	memcpy(&got, buf, sizeof got);
	EXPECT(got.allocations == full.allocations && got.brk_calls == full.brk_calls &&
		       got.front_threads == full.front_threads,
	       "os_stats_get with an older size filled other figures (allocations %zu, want %zu)", got.allocations,
	       full.allocations);
	/* a larger size than the library knows: the library's fields only, the rest untouched */
	memset(buf, 0x5A, sizeof buf);
	os_stats_get((struct os_stats *)(void *)buf, sizeof buf);
	bad = sizeof(struct os_stats);
	while (bad < sizeof buf && buf[bad] == 0x5A)
		bad++;
	EXPECT(bad == sizeof buf, "os_stats_get(st, %zu) wrote byte %zu, past the library's struct", sizeof buf, bad);
}

// ------------------------------------------------------------------
// main
// ------------------------------------------------------------------

static const struct {
	const char *name;
	void (*fn)(void);
} groups[] = {
	{ "profile", t_profile },
	{ "malloc_basic", t_malloc_basic },
	{ "malloc_zero", t_malloc_zero },
	{ "free_null", t_free_null },
	{ "usable_size", t_usable_size },
	{ "calloc_zeroes_reused", t_calloc_zero },
	{ "calloc_zeroes_usable_size", t_calloc_zeroes_usable_size },
	{ "realloc_grow_shrink", t_realloc_grow_shrink },
	{ "realloc_big_move_keeps_bytes", t_realloc_big_move },
	{ "reallocarray", t_reallocarray },
	{ "overflow_enomem", t_overflow },
	{ "memalign_sum_too_large_no_system_call", t_memalign_sum_too_large },
	{ "free_keeps_errno", t_free_errno },
	{ "posix_memalign", t_posix_memalign },
	{ "aligned_alloc", t_aligned_alloc },
	{ "memalign", t_memalign },
	{ "aligned_einval", t_aligned_errors },
	{ "valloc_pvalloc", t_valloc_pvalloc },
	{ "libc_names_are_osmem", t_libc_names },
	{ "malloc_trim", t_malloc_trim },
	{ "mallinfo2", t_mallinfo2 },
	{ "malloc_stats", t_malloc_stats },
	{ "os_stats_counts_malloc0", t_stats_count_malloc0 },
	{ "os_api_same_heap", t_os_api },
	{ "stats_older_header_not_overrun", t_stats_older_header },
};

/* The streamed copy is the AMD processors' (os.c, osm_os_copy_streams), memcpy the others': each host runs one
 * of realloc's two copies by default, so the big move is checked under both settings, in fresh processes (the
 * setting is read at the heap's start). Also that the statistics count what was streamed: "streamed moves" with
 * OSMEM_STREAM=1, no such line with 0 (where a copy that should not stream did, or the other way round). */
static void t_streamed_moves_counted(void)
{
	const char *v = getenv("OSMEM_STREAM");
	char path[] = "/tmp/malloc_api_stats.XXXXXX";
	int fd = mkstemp(path);
	EXPECT(fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	os_stats_print(fd);
	char text[8192];
	ssize_t n = pread(fd, text, sizeof text - 1, 0);
	close(fd);
	EXPECT(n > 0, "os_stats_print wrote nothing");
	text[n] = 0;
	const char *line = strstr(text, "streamed moves");
	long count = line ? strtol(line + strlen("streamed moves"), NULL, 10) : 0;
	if (v && !strcmp(v, "1"))
		EXPECT(count >= 3, "OSMEM_STREAM=1, and the statistics count %ld streamed moves after 3 or more big moves",
		       count);
	else
		EXPECT(!line, "OSMEM_STREAM=%s, and the statistics count %ld streamed moves", v ? v : "(unset)", count);
}

/* The child of stream_runs: the big move and its count, under OSMEM_STREAM=argv[2]; its failures as its status. */
static int stream_child(const char *v)
{
	static char name[32];
	snprintf(name, sizeof name, "stream%s/", v);
	prefix = name;
	run("realloc_big_move_keeps_bytes", t_realloc_big_move);
	run("streamed_moves_counted", t_streamed_moves_counted);
	return n_fail;
}

static void stream_runs(const char *self)
{
	for (int v = 0; v <= 1; v++) {
		char val[2] = { (char)('0' + v), 0 };
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			setenv("OSMEM_STREAM", val, 1);
			execl(self, self, "--stream", val, (char *)NULL);
			printf("FAIL stream%s/rerun: execl: %s\n", val, strerror(errno));
			_exit(1);
		}
		int st = 0;
		if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			if (pid < 0 || !WIFEXITED(st))
				printf("FAIL stream%s/rerun: the child did not end by itself (status %d)\n", val, st);
			n_fail++; /* the child printed its own FAIL lines */
		}
	}
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "--stream") == 0)
		return stream_child(argv[2]) ? 1 : 0;
	const char *profile = getenv("OSMEM_PROFILE");
	bool classic = profile && strcmp(profile, "classic") == 0;
	bool rerun = argc >= 3 && strcmp(argv[1], "--classic-rerun") == 0;
	int earlier_failures = rerun ? atoi(argv[2]) : 0;
	if (classic)
		prefix = "classic/";

	for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
		run(groups[i].name, groups[i].fn);

	if (!classic) {
		stream_runs("/proc/self/exe");
		/* the classic profile is chosen at the first allocation: a fresh process */
		char failures[16];
		snprintf(failures, sizeof failures, "%d", n_fail);
		char *args[] = { argv[0], "--classic-rerun", failures, NULL };
		fflush(stdout);
		if (setenv("OSMEM_PROFILE", "classic", 1) != 0) {
			printf("FAIL classic/rerun: setenv: %s\n", strerror(errno));
			return 1;
		}
		execv("/proc/self/exe", args);
		printf("FAIL classic/rerun: execv(/proc/self/exe): %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "malloc_api: %s%d passed, %d failed%s\n", prefix, n_pass, n_fail,
		earlier_failures ? " (and failures in the default-profile run)" : "");
	return n_fail || earlier_failures ? 1 : 0;
}
