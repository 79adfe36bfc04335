/* test_index: the best-fit index's bins (src/index.c, session 68) against the reference walk, at their edges.
 *
 * The index splits its keys by size into bins, one size each below 64 KiB and eight a power of two above, each bin
 * a splay tree. What could go wrong is where a bin ends: a request that falls in a bin whose blocks are all too
 * small, a size just under the exact bins' end, a walk that starts inside a bin, equal sizes. Free blocks of chosen
 * sizes are made on the classic heap (libosmem.a) between allocated spacers, so that they cannot merge, and each
 * answer of the index is compared with find_best_block (the seed's walk: smallest size, lowest address) or with a
 * sort of the heap's free blocks:
 *   - index/best_fit_matches_the_walk_at_every_bin_edge: osm_index_best_fit(q) for q at, around and between every
 *     size made (8 below and above, and 1 above: a size that is no multiple of 8, as the core asks for the smallest
 *     key above the top's own), and at every bin edge from 8 bytes to 128 KiB;
 *   - index/best_fit_skips_the_smaller_keys_of_its_bin: a request in the bin of 80-88 KiB, which holds only a
 *     smaller block, is served from the next bin that holds any;
 *   - index/equal_sizes_lowest_address_first: three free blocks of one size, the middle one the root of their bin;
 *   - index/walk_from_visits_keys_at_least_min_in_order: osm_index_walk_from(min) for the same sizes visits
 *     exactly the free blocks of min bytes or more, in (size, address) order; osm_index_walk visits all;
 *   - index/taken_blocks_leave_a_sound_heap: the blocks taken again by os_malloc, os_heap_check after each;
 *   - index/split_rests_keep_the_order: splits whose rest takes the block's slot (osm_index_rekey, session 69), in
 *     place within a coarse bin and moved out of it, and in an exact bin, the index against the walk after each;
 *   - index/rekey_moves_a_rest_below_its_bin_s_keys: osm_index_rekey on a hand-made split whose rest falls below
 *     another key of its bin, with the block at the bin's root and below it: moved, not rewritten in place.
 * Prints one PASS/FAIL line each. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "osmem.h"
#include "test_util.h"

#define MAXB 256

static int failed;

static void result(const char *name, const char *why)
{
	if (why) {
		printf("FAIL index/%s: %s\n", name, why);
		failed++;
	} else {
		printf("PASS index/%s\n", name);
	}
}

/* The sizes of the free blocks made: each edge of the exact bins' end and of the bins above, duplicates. */
static const size_t sizes[] = {
	8,     16,    24,    40,    1000,  1000,  1000,  4096,  4104,  65504, 65520, 65528, 65536,
	65544, 70000, 73720, 73728, 73736, 81920, 98296, 98304, 100000, 122872, 122880, 126000,
};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void *blocks[NSIZES];

static struct block_meta *meta(void *p) { return (struct block_meta *)((char *)p - sizeof(struct block_meta)); }

/* Free blocks of sizes[], in address order, each between two allocated spacers, freed from the highest address
 * down. */
static const char *make_free_blocks(void)
{
	void *spacer[NSIZES + 1];
	spacer[0] = os_malloc(8);
	for (size_t i = 0; i < NSIZES; i++) {
		blocks[i] = os_malloc(sizes[i]);
		spacer[i + 1] = os_malloc(8);
		if (!blocks[i] || !spacer[i + 1])
			return "os_malloc returned NULL";
		if (meta(blocks[i])->status != STATUS_ALLOC || meta(blocks[i])->size != sizes[i])
			return "a block is not a heap block of its size: the test's premise broke";
	}
	for (size_t i = NSIZES; i-- > 0;)
		os_free(blocks[i]);
	coalesce_blocks();
	if (osm_heap.pending || osm_heap.unslotted)
		return "free blocks are outside the index after coalesce_blocks";
	/* the middle one of the three 1,000-byte blocks out of the index and in again: its bin's root, not its least */
	uint32_t x = free_slot(meta(blocks[5]));
	osm_index_remove(x);
	osm_index_insert(x);
	return os_heap_check() ? "os_heap_check failed after the frees" : NULL;
}

/* The queries: every size made, 8 below and above it, 1 above it, and every bin edge up to 128 KiB. */
static size_t queries[4 * NSIZES + 64 + 8];
static size_t nq;

static void make_queries(void)
{
	for (size_t i = 0; i < NSIZES; i++) {
		queries[nq++] = sizes[i];
		queries[nq++] = sizes[i] - 8 ? sizes[i] - 8 : 1;
		queries[nq++] = sizes[i] + 8;
		queries[nq++] = sizes[i] + 1;
	}
	for (size_t e = 65536; e <= 131072; e += 8192) { /* the eighths from 64 KiB to 128 KiB, and their neighbours */
		queries[nq++] = e - 8;
		queries[nq++] = e;
		queries[nq++] = e + 8;
	}
	queries[nq++] = 65529; /* past the last exact bin (65,528), not a multiple of 8 */
	queries[nq++] = 65535;
}

static char msg[256];

static const char *best_fit_matches(void)
{
	for (size_t k = 0; k < nq; k++) {
		struct block_meta *want = find_best_block(queries[k]), *got = osm_index_best_fit(queries[k]);
		if (want != got) {
			snprintf(msg, sizeof msg, "best fit for %zu: the index says %p (%zu bytes), the walk %p (%zu bytes)",
				 queries[k], (void *)got, got ? got->size : 0, (void *)want, want ? want->size : 0);
			return msg;
		}
	}
	return NULL;
}

static const char *skips_smaller_keys(void)
{
	/* 81,920 lies alone in its bin, [81920, 90112); 81,928 there finds only it, too small, and must get the next
	 * bin's least key, 98,296 */
	struct block_meta *got = osm_index_best_fit(81928);
	if (!got || got->size != 98296) {
		snprintf(msg, sizeof msg, "best fit for 81928 gave a block of %zu bytes, want 98296", got ? got->size : 0);
		return msg;
	}
	return NULL;
}

/* Run first: 992 finds no block of its own size and takes the next bin's least key, the lowest of three 1,000-byte
 * blocks, not its bin's root (the middle one, freed last). */
static const char *lowest_address_first(void)
{
	struct block_meta *got = osm_index_best_fit(992);
	if (got != meta(blocks[4])) {
		snprintf(msg, sizeof msg, "best fit for 992 gave %p, want the lowest of three 1000-byte blocks, %p",
			 (void *)got, (void *)meta(blocks[4]));
		return msg;
	}
	return NULL;
}

struct seen {
	struct block_meta *b[MAXB];
	size_t n;
};

static bool collect(struct block_meta *b, void *arg)
{
	struct seen *s = arg;
	if (s->n < MAXB)
		s->b[s->n] = b;
	s->n++;
	return true;
}

static int key_cmp(const void *x, const void *y)
{
	const struct block_meta *a = *(struct block_meta *const *)x, *b = *(struct block_meta *const *)y;
	if (a->size != b->size)
		return a->size < b->size ? -1 : 1;
	return a < b ? -1 : a > b;
}

static const char *walks_match(void)
{
	struct seen all = { { 0 }, 0 };
	for (struct block_meta *b = osm_heap.head; b; b = b->next)
		if (b->status == STATUS_FREE && all.n < MAXB)
			all.b[all.n++] = b;
	qsort(all.b, all.n, sizeof all.b[0], key_cmp);
	struct seen w = { { 0 }, 0 };
	if (osm_index_walk(collect, &w) != all.n || w.n != all.n)
		return "osm_index_walk did not visit every free block once";
	for (size_t k = 0; k <= nq; k++) {
		size_t min = k < nq ? queries[k] : 0;
		struct seen s = { { 0 }, 0 };
		size_t count = osm_index_walk_from(min, collect, &s), from = 0;
		while (from < all.n && all.b[from]->size < min)
			from++;
		if (s.n != all.n - from || count != s.n) {
			snprintf(msg, sizeof msg, "walk from %zu visited %zu blocks (returned %zu), want %zu", min, s.n,
				 count, all.n - from);
			return msg;
		}
		for (size_t i = 0; i < s.n; i++)
			if (s.b[i] != all.b[from + i]) {
				snprintf(msg, sizeof msg, "walk from %zu: block %zu is %p (%zu bytes), want %p (%zu bytes)",
					 min, i, (void *)s.b[i], s.b[i]->size, (void *)all.b[from + i],
					 all.b[from + i]->size);
				return msg;
			}
	}
	return NULL;
}

static const char *taken_again(void)
{
	for (size_t i = 0; i < NSIZES; i++) {
		void *p = os_malloc(sizes[i]);
		if (!p)
			return "os_malloc returned NULL";
		if (os_heap_check()) {
			snprintf(msg, sizeof msg, "os_heap_check failed after os_malloc(%zu)", sizes[i]);
			return msg;
		}
		const char *why = best_fit_matches();
		if (why)
			return why;
	}
	return NULL;
}

/* The index after each step, against the walk and a sort of the heap, and the heap itself. */
static const char *index_exact(const char *step)
{
	const char *why = best_fit_matches();
	for (struct block_meta *b = osm_heap.head; b && !why; b = b->next) /* and each free block's size, and 1 more */
		for (size_t q = b->status == STATUS_FREE ? b->size : 0; q && q <= b->size + 1 && !why; q++) {
			struct block_meta *want = find_best_block(q), *got = osm_index_best_fit(q);
			if (want != got) {
				snprintf(msg, sizeof msg, "best fit for %zu: the index says %p, the walk %p", q, (void *)got,
					 (void *)want);
				why = msg;
			}
		}
	if (!why)
		why = walks_match();
	if (!why && os_heap_check())
		why = "os_heap_check failed";
	if (why) {
		static char at[400];
		snprintf(at, sizeof at, "after %s: %s", step, why);
		return at;
	}
	return NULL;
}

/* Blocks of the given sizes in a row at the heap's end, then an 8-byte spacer: the caller frees some of them. Every
 * free block is taken first (whole: best fit gives a block of exactly its size), so that the row is carved from the
 * break in order. */
static const char *row(void **p, const size_t *n, size_t k)
{
	coalesce_blocks();
	for (struct block_meta *b = osm_heap.head; b; b = b->next)
		if (b->status == STATUS_FREE && !os_malloc(b->size))
			return "os_malloc returned NULL";
	for (size_t i = 0; i < k; i++) {
		if (!(p[i] = os_malloc(n[i])))
			return "os_malloc returned NULL";
		if (i && (char *)p[i] != (char *)p[i - 1] + ((n[i - 1] + 7) & ~(size_t)7) + sizeof(struct block_meta))
			return "a row's blocks are not adjacent: the test's premise broke";
	}
	return os_malloc(8) ? NULL : "os_malloc returned NULL";
}

static const char *free_now(void *p, const char *step)
{
	os_free(p);
	coalesce_blocks();
	return index_exact(step);
}

/* A split leaves its rest at a higher address with a smaller size, and the rest takes the block's slot: rewritten in
 * place (osm_index_rekey) when the key stays in its bin and the block is the bin's root with no smaller key, moved
 * (removed, inserted) otherwise. In the coarse bins, where both happen, and the exact ones (a mutation that drops the
 * bin's test fails here; the root's and the left child's are for the next test):
 *   - a block alone in [81920, 90112), split four times within its bin (in place), then once past its lower end
 *     (the rest of 74,736 bytes moved to [73728, 81920));
 *   - a bin holding 99,000 and 100,000 bytes, the larger split for 99,008 (its rest leaves the bin);
 *   - a block of 60,000 bytes (an exact bin) split by 40 and by 30,000 bytes;
 * then merges and best fit across all of it. */
static const char *split_rests_keep_the_order(void)
{
	void *p[5];
	const char *why;
	if ((why = row(p, (size_t[]){ 90000, 8, 99000, 8, 100000 }, 5)) || (why = free_now(p[0], "90,000 bytes freed")) ||
	    (why = free_now(p[2], "99,000 bytes freed")) || (why = free_now(p[4], "100,000 bytes freed")))
		return why;
	static const size_t take[] = { 40, 1000, 64, 4000, 10000, 99008 };
	for (size_t k = 0; k < sizeof take / sizeof take[0]; k++) {
		static char step[64];
		snprintf(step, sizeof step, "os_malloc(%zu)", take[k]);
		if (!os_malloc(take[k]))
			return "os_malloc returned NULL";
		if ((why = index_exact(step)))
			return why;
	}
	if ((why = row(p, (size_t[]){ 60000 }, 1)) || (why = free_now(p[0], "60,000 bytes freed")))
		return why;
	for (size_t n = 40; n <= 30000; n += 29960) {
		static char step[64];
		snprintf(step, sizeof step, "os_malloc(%zu) of an exact bin", n);
		if (!os_malloc(n))
			return "os_malloc returned NULL";
		if ((why = index_exact(step)))
			return why;
	}
	return free_now(p[1], "neighbours merged");
}

/* osm_index_rekey itself, on the split the previous test cannot make with the classic library: a block that is not
 * its bin's least key cut so that its rest stays in the bin, below another key (the default profile makes it when it
 * passes over the free top for the next larger block of the top's own bin: heap.c, fit_below_top). 99,000 and
 * 100,000 bytes in one bin, cut by hand 1,000 bytes into the larger, whose rest of 98,968 bytes is then the bin's
 * least key. Rewritten in place, the rest would sit above the 99,000 bytes in the tree. Twice: the larger block the
 * bin's root with the smaller as its left child, then the smaller the root with the larger as its right child (no
 * left child, not the root). A broken order is reported before the block is put back, whose removal would stop the
 * test with osmem's own report. */
static const char *rekey_moves_a_rest_below_its_bin_s_keys(void)
{
	void *p[3];
	const char *why;
	if ((why = row(p, (size_t[]){ 99000, 8, 100000 }, 3)) || (why = free_now(p[0], "99,000 bytes freed")) ||
	    (why = free_now(p[2], "100,000 bytes freed")))
		return why;
	struct block_meta *x = meta(p[2]), *r = (struct block_meta *)((char *)p[2] + 1000);
	uint32_t sx = free_slot(x);
	/* splays for (100,008, 0) and (99,000, 0): their predecessor, the larger block, and then their successor, the
	 * smaller one, end at the root */
	static const size_t splay_for[] = { 100008, 99000 };
	for (size_t k = 0; k < 2; k++) {
		(void)osm_index_best_fit(splay_for[k]);
		r->size = x->size - 1000 - sizeof(struct block_meta);
		osm_index_rekey(sx, r);
		struct seen w = { { 0 }, 0 };
		osm_index_walk(collect, &w);
		for (size_t i = 1; i < w.n && i < MAXB && !why; i++)
			if (key_cmp(&w.b[i - 1], &w.b[i]) >= 0) {
				snprintf(msg, sizeof msg, "rekey after a splay for %zu: the index walks %zu bytes at %p before "
					 "%zu bytes at %p", splay_for[k], w.b[i - 1]->size, (void *)w.b[i - 1], w.b[i]->size,
					 (void *)w.b[i]);
				why = msg;
			}
		struct block_meta *got = osm_index_best_fit(r->size);
		if (!why && got != r) {
			snprintf(msg, sizeof msg, "rekey after a splay for %zu: best fit for the rest's %zu bytes gave %p, "
				 "want the rest, %p", splay_for[k], r->size, (void *)got, (void *)r);
			why = msg;
		}
		if (why)
			return why;
		osm_index_remove(sx); /* the block as it was */
		slot_at(sx)->blk = (uintptr_t)x;
		osm_index_insert(sx);
	}
	return index_exact("the block put back");
}

int main(void)
{
	tu_test_name = "index/crash";
	tu_catch_crashes();
	const char *why = make_free_blocks();
	result("free_blocks_made", why);
	if (why)
		return 1;
	make_queries();
	result("equal_sizes_lowest_address_first", lowest_address_first());
	result("best_fit_matches_the_walk_at_every_bin_edge", best_fit_matches());
	result("best_fit_skips_the_smaller_keys_of_its_bin", skips_smaller_keys());
	result("walk_from_visits_keys_at_least_min_in_order", walks_match());
	result("taken_blocks_leave_a_sound_heap", taken_again());
	result("split_rests_keep_the_order", split_rests_keep_the_order());
	result("rekey_moves_a_rest_below_its_bin_s_keys", rekey_moves_a_rest_below_its_bin_s_keys());
	return failed != 0;
}
