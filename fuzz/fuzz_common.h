/* fuzz_common.h: what the libFuzzer harnesses share: the input read as a stream of small numbers, request sizes
 * that reach every threshold, the allocator under test behind one set of names (the os_* API or the drop-in's
 * malloc family), a failure report that allocates nothing, and the "ghosts" that prove freed bytes stay as the
 * program left them (classic API and classic profile; the rule of tests/test_differential.c).
 *
 * Nothing here calls malloc: in the drop-in harnesses malloc is osmem's, and a harness that allocated for its
 * own bookkeeping would change the heap it is watching. Tables are static. */
#ifndef OSMEM_FUZZ_COMMON_H
#define OSMEM_FUZZ_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block_meta.h"
#include "internal.h"
#include "osmem.h"
#include "test_util.h"

#ifdef FUZZ_DROPIN
#include <malloc.h>
#define GRANULE 16
#else
#define GRANULE 8
#endif
#define ALIGNG(n) (((n) + GRANULE - 1) & ~(size_t)(GRANULE - 1))

// ------------------------------------------------------------------
// Failing: one line on stderr (no stdio buffers, no malloc), then abort so libFuzzer keeps the input
// ------------------------------------------------------------------

static long fz_op_no;
static const char *fz_harness = "fuzz";

static _Noreturn __attribute__((format(printf, 1, 2))) void fz_fail(const char *fmt, ...)
{
	char msg[768];
	int k = snprintf(msg, sizeof msg, "FUZZ FAIL %s: op %ld: ", fz_harness, fz_op_no);
	va_list ap;
	va_start(ap, fmt);
	k += vsnprintf(msg + k, sizeof msg - (size_t)k - 1, fmt, ap);
	va_end(ap);
	if (k > (int)sizeof msg - 2)
		k = (int)sizeof msg - 2;
	msg[k++] = '\n';
	ssize_t w = write(STDERR_FILENO, msg, (size_t)k);
	(void)w;
	abort();
}

// ------------------------------------------------------------------
// Patterns (tests/test_util.h's, byte for byte) without coverage, cmp tracing or ASan checks: the harness's own
// loops over every byte of every block would otherwise take most of the time and teach libFuzzer nothing
// ------------------------------------------------------------------

#define FZ_PLAIN __attribute__((no_sanitize("coverage", "address", "undefined"), noinline))

static FZ_PLAIN void fz_pat_fill(unsigned char *p, uint64_t seed, size_t from, size_t to)
{
	size_t i = from;
	for (; i < to && (i & 7); i++)
		p[i] = pat_byte(seed, i);
	for (; i + 8 <= to; i += 8) {
		uint64_t w = pat_word(seed, i >> 3);
		__builtin_memcpy(p + i, &w, 8);
	}
	for (; i < to; i++)
		p[i] = pat_byte(seed, i);
}

static FZ_PLAIN size_t fz_pat_check(const unsigned char *p, uint64_t seed, size_t from, size_t to)
{
	size_t i = from;
	for (; i < to && (i & 7); i++)
		if (p[i] != pat_byte(seed, i))
			return i;
	for (; i + 8 <= to; i += 8) {
		uint64_t w;
		__builtin_memcpy(&w, p + i, 8);
		if (w != pat_word(seed, i >> 3))
			break;
	}
	for (; i < to; i++)
		if (p[i] != pat_byte(seed, i))
			return i;
	return to;
}

/* The first byte of [p, p + n) that is not zero, or n. */
static FZ_PLAIN size_t fz_nonzero(const unsigned char *p, size_t n)
{
	size_t i = 0;
	for (; i < n; i++)
		if (p[i])
			break;
	return i;
}

// ------------------------------------------------------------------
// The input: bytes read as numbers; an exhausted input reads zeros
// ------------------------------------------------------------------

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t in_u8(struct fz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint16_t in_u16(struct fz_in *in)
{
	uint16_t lo = in_u8(in);
	return (uint16_t)(lo | (uint16_t)in_u8(in) << 8);
}

static inline uint64_t in_u64(struct fz_in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)in_u8(in) << (8 * i);
	return v;
}

/* A request size. Mostly small (the front's classes, the classic heap's splits), then the calloc threshold
 * (a page) and the mmap threshold (128 KiB) within a few granules either way, mid-sized and large blocks, and 0. */
static size_t in_size(struct fz_in *in)
{
	uint8_t sel = in_u8(in);
	uint16_t v = in_u16(in);
	switch (sel & 7) {
	case 0:
	case 1:
	case 2:
		return 1 + v % 256;
	case 3:
		return 1 + v % 2048;
	case 4:
		return 2049 + v % 14336;
	case 5: /* ALIGN(n) + 32 == threshold at n = threshold - 32 - granule + 1 ... threshold - 32 */
		return (sel & 8 ? (size_t)4096 : MMAP_THRESHOLD) - META_SIZE - 48 + v % 96;
	case 6:
		return 1 + (size_t)v * 3; /* up to 192 KiB: across the mmap threshold */
	default: /* 0, or up to 1 MiB now and then (page faults are dear here: rarely) */
		return (sel & 0x30) == 0x10 ? 0 : (sel & 0x30) == 0x30 ? 1 + (size_t)v * 16 : 1 + v % 64;
	}
}

/* Sizes nobody can serve: each must give NULL and ENOMEM and change nothing. */
static size_t in_huge(struct fz_in *in)
{
	static const size_t huge[] = {
		SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX / 2, (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX + 1, MAX_REQUEST + 1,
		MAX_REQUEST + 4096,
	};
	return huge[in_u8(in) % (sizeof huge / sizeof huge[0])];
}

// ------------------------------------------------------------------
// Ghosts: freed bytes stay as they were (docs/CLASSIC.md), tests/test_differential.c's rule with a static table
// ------------------------------------------------------------------

/* Every freed heap block becomes a ghost: [p, p + n) with the pattern the program left. When a call returns a block,
 * the ghost bytes inside it are verified (except those the call defines: calloc's zeros, realloc's copy) and
 * forgotten, and so are the 32 bytes before and after it, where a header may have been written (its own, a split
 * remainder's). Sorted by address, never overlapping. A full table forgets instead of adding: forgetting is always
 * safe, it only checks less. */
#define GHOSTS_MAX 4096
struct ghost {
	unsigned char *p;
	size_t from, to; /* the live part: bytes [p + from, p + to) */
	uint64_t seed;
};

static struct ghost ghosts[GHOSTS_MAX];
static size_t n_ghosts;
static bool ghosts_on;

static size_t ghost_find(const unsigned char *a) /* the first ghost whose end is above a */
{
	size_t lo = 0, hi = n_ghosts;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ghosts[mid].p + ghosts[mid].to <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool ghost_insert_at(size_t i, struct ghost g)
{
	if (n_ghosts == GHOSTS_MAX)
		return false;
	memmove(&ghosts[i + 1], &ghosts[i], (n_ghosts - i) * sizeof ghosts[0]);
	ghosts[i] = g;
	n_ghosts++;
	return true;
}

static void ghost_verify(const struct ghost *g, size_t from, size_t to, const char *when)
{
	size_t bad = fz_pat_check(g->p, g->seed, from, to);
	if (bad != to)
		fz_fail("freed bytes changed %s: byte %zu of the block freed at %p is 0x%02x, the program left 0x%02x",
			when, bad, (void *)g->p, g->p[bad], pat_byte(g->seed, bad));
}

static void ghost_add(const unsigned char *p, size_t n, uint64_t seed)
{
	if (!ghosts_on || !n)
		return;
	struct ghost g = { (unsigned char *)p, 0, n, seed };
	size_t i = ghost_find(p);
	if (i < n_ghosts && ghosts[i].p + ghosts[i].from < p + n)
		fz_fail("a block freed at %p (%zu B) overlaps bytes still free from the block freed at %p: osmem handed "
			"out memory without the harness seeing it", (void *)p, n, (void *)ghosts[i].p);
	ghost_insert_at(i, g);
}

/* Forgets the ghost bytes in [a, b); those in [va, vb) are verified first. */
static void ghost_forget(const unsigned char *a, const unsigned char *b, const unsigned char *va,
			 const unsigned char *vb, const char *when)
{
	size_t i = ghost_find(a);
	while (i < n_ghosts && ghosts[i].p + ghosts[i].from < b) {
		struct ghost *g = &ghosts[i];
		size_t lo = a > g->p + g->from ? (size_t)(a - g->p) : g->from;
		size_t hi = b < g->p + g->to ? (size_t)(b - g->p) : g->to;
		if (va) {
			size_t vlo = va > g->p + lo ? (size_t)(va - g->p) : lo;
			size_t vhi = vb < g->p + hi ? (size_t)(vb - g->p) : hi;
			if (vlo < vhi)
				ghost_verify(g, vlo, vhi, when);
		}
		struct ghost tail = *g;
		tail.from = hi;
		g->to = lo;
		bool keep_head = g->from < g->to, keep_tail = tail.from < tail.to;
		if (!keep_head) {
			memmove(g, g + 1, (n_ghosts - i - 1) * sizeof *g);
			n_ghosts--;
		} else {
			i++;
		}
		if (keep_tail && ghost_insert_at(i, tail))
			i++;
	}
}

/* A call returned q, a heap block of `size` payload bytes: [def_from, def_to) of it was defined by the call. */
static void ghost_reused(const unsigned char *q, size_t size, size_t def_from, size_t def_to, const char *api)
{
	if (!ghosts_on || !n_ghosts)
		return;
	ghost_forget(q, q + def_from, q, q + def_from, api);
	ghost_forget(q + def_to, q + size, q + def_to, q + size, api);
	ghost_forget(q - META_SIZE, q + size + META_SIZE, NULL, NULL, api);
}

static void ghost_check_all(void)
{
	for (size_t i = 0; i < n_ghosts; i++)
		ghost_verify(&ghosts[i], ghosts[i].from, ghosts[i].to, "while the block was free");
}

#endif
