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
 *   - index/taken_blocks_leave_a_sound_heap: the blocks taken again by os_malloc, os_heap_check after each.
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
	return failed != 0;
}
