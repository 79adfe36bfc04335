/* index: the best-fit index of coalesced free blocks.
 *
 * Exact best fit: for s, the smallest key >= (s, 0) in (size, address) order, which is exactly docs/CLASSIC.md's
 * rule (smallest size >= s, lowest address among equal sizes). The keys are split by size into bins, each bin a
 * top-down splay tree (Sleator & Tarjan) of its blocks keyed by (size, address), with a two-level bitmap of the
 * bins that hold any:
 *
 * - under BIN_EXACT (64 KiB), a bin a size, in 8-byte steps (8,192 bins): its tree is ordered by address alone;
 * - from BIN_EXACT on, eight bins a power of two (a bin's sizes differ by at most an eighth).
 *
 * Best fit for s looks in s's own bin (a splay), and when nothing there holds s, takes the lowest key of the next
 * bin that holds any (two bit scans and a splay to that tree's least key). Inserts and removals splay one bin's tree,
 * which is most often one or a few blocks. Every key of a bin is smaller than every key of the bins above it, so a
 * walk that visits the bins in order sees the keys ascend strictly (check.c checks it).
 *
 * Until session 68 one tree held every free block: a thread's batches of 5,000 blocks of 100 B-16 KiB (bench/patterns'
 * `batch`) spent 45% of their time in its splays, and ran at 1.67x glibc's time. A splay tree needs only two links
 * per node and no balance bits, and a program that keeps taking one end of a bin's sizes finds it at the root. The
 * nodes are the free blocks' slots (internal.h): the links never touch the blocks' payload, which docs/CLASSIC.md
 * keeps as the program left it. Keys must not change while a block is in the index: callers remove a block before
 * they resize it, or, for a split's rest, hand the new key to osm_index_rekey (the slot keeps the old key until
 * then, so the tree stays sound while the headers change). */
#include "internal.h"

// ------------------------------------------------------------------
// Links and keys
// ------------------------------------------------------------------

static inline uint32_t *lslot(uint32_t n) { return &slot_at(n)->l; }
static inline uint32_t *rslot(uint32_t n) { return &slot_at(n)->r; }
static inline uint32_t left(uint32_t n) { return slot_at(n)->l; }
static inline uint32_t right(uint32_t n) { return slot_at(n)->r; }
static inline size_t key_size(uint32_t n) { return slot_at(n)->size; } /* the key, kept in the slot */
static inline uintptr_t key_addr(uint32_t n) { return (uintptr_t)slot_block(n); }

static inline void set_link(uint32_t *p, uint32_t v) { *p = v; }

/* (sa, aa) < (sb, ab): sizes first, then addresses. */
static inline bool key_less(size_t sa, uintptr_t aa, size_t sb, uintptr_t ab)
{
	return sa < sb || (sa == sb && aa < ab);
}

// ------------------------------------------------------------------
// Splay
// ------------------------------------------------------------------

/* Brings the node with key (ks, kr), or the last node on its search path, to the root of t. */
static uint32_t splay(uint32_t t, size_t ks, uintptr_t kr)
{
	uint32_t lroot = 0, rroot = 0;        /* the trees of nodes known smaller / larger than the key */
	uint32_t *lhook = &lroot, *rhook = &rroot; /* where the next smaller / larger node is hung */

	for (;;) {
		if (key_less(ks, kr, key_size(t), key_addr(t))) {
			uint32_t l = left(t);
			if (!l)
				break;
			if (key_less(ks, kr, key_size(l), key_addr(l))) { /* zig-zig: rotate right */
				set_link(lslot(t), right(l));
				set_link(rslot(l), t);
				t = l;
				if (!left(t))
					break;
			}
			set_link(rhook, t); /* link right */
			rhook = lslot(t);
			t = left(t);
		} else if (key_less(key_size(t), key_addr(t), ks, kr)) {
			uint32_t r = right(t);
			if (!r)
				break;
			if (key_less(key_size(r), key_addr(r), ks, kr)) { /* zag-zag: rotate left */
				set_link(rslot(t), left(r));
				set_link(lslot(r), t);
				t = r;
				if (!right(t))
					break;
			}
			set_link(lhook, t); /* link left */
			lhook = rslot(t);
			t = right(t);
		} else {
			break;
		}
	}
	set_link(lhook, left(t));
	set_link(rhook, right(t));
	set_link(lslot(t), lroot);
	set_link(rslot(t), rroot);
	return t;
}

// ------------------------------------------------------------------
// Bins
// ------------------------------------------------------------------

#define BIN_SHIFT 3                          /* sizes are multiples of 8 (the classic alignment; 16 by default) */
#define BIN_EXACT ((size_t)65536)
#define BIN_EXACT_N (BIN_EXACT >> BIN_SHIFT) /* bin i < BIN_EXACT_N: the blocks of i * 8 bytes */
#define BIN_LOG   16                         /* log2(BIN_EXACT) */
#define BINS      (BIN_EXACT_N + (64 - BIN_LOG) * 8)
#define BIN_WORDS ((BINS + 63) / 64)         /* bins.map: a bit a bin */
#define SUM_WORDS ((BIN_WORDS + 63) / 64)    /* bins.sum: a bit a word of bins.map */

/* Written under the heap lock. The exact bins' 32 KiB of roots, in .lbss (LARGE_BSS): a page of them is touched
 * only when blocks of its 1,024 sizes are free (tests/test_footprint.py, idle_tables_untouched). The rest, 2.6 KiB,
 * with the small globals every process touches: the larger bins' roots (the heap's first free block is one of
 * theirs) and the bitmaps. */
static uint32_t bin_exact[BIN_EXACT_N] LARGE_BSS;
static struct {
	uint64_t sum[SUM_WORDS]; /* bit w: map[w] is not 0 */
	uint64_t map[BIN_WORDS]; /* bit i: bin i holds a block */
	uint32_t large[BINS - BIN_EXACT_N];
} bins __attribute__((aligned(64)));

static inline uint32_t *root_at(size_t i)
{
	return i < BIN_EXACT_N ? &bin_exact[i] : &bins.large[i - BIN_EXACT_N];
}

/* The bin of the keys of size bytes; for a size that is not a multiple of 8 below BIN_EXACT, the first bin whose
 * keys are all at least as large. */
static inline size_t bin_of(size_t size)
{
	if (size < BIN_EXACT)
		return (size + (1u << BIN_SHIFT) - 1) >> BIN_SHIFT; /* size 65,529..65,535: the first of the bins above */
	unsigned e = 63u - (unsigned)__builtin_clzll(size);
	return BIN_EXACT_N + (e - BIN_LOG) * 8 + ((size >> (e - 3)) & 7);
}

static void bin_mark(size_t i)
{
	bins.map[i / 64] |= (uint64_t)1 << (i % 64);
	bins.sum[i / 4096] |= (uint64_t)1 << (i / 64 % 64);
}

static void bin_unmark(size_t i)
{
	if (!(bins.map[i / 64] &= ~((uint64_t)1 << (i % 64))))
		bins.sum[i / 4096] &= ~((uint64_t)1 << (i / 64 % 64));
}

/* The first bin at or after i that holds a block; BINS when none does. */
static size_t bin_next(size_t i)
{
	if (i >= BINS)
		return BINS;
	uint64_t m = bins.map[i / 64] & (~(uint64_t)0 << (i % 64));
	if (m)
		return i / 64 * 64 + (size_t)__builtin_ctzll(m);
	for (size_t w = i / 64 + 1, s = w / 64; s < SUM_WORDS; s++) {
		uint64_t sm = bins.sum[s] & (s == w / 64 ? ~(uint64_t)0 << (w % 64) : ~(uint64_t)0);
		if (sm) {
			size_t word = s * 64 + (size_t)__builtin_ctzll(sm);
			return word * 64 + (size_t)__builtin_ctzll(bins.map[word]);
		}
	}
	return BINS;
}

bool osm_index_empty(void)
{
	for (size_t s = 0; s < SUM_WORDS; s++)
		if (bins.sum[s])
			return false;
	return true;
}

// ------------------------------------------------------------------
// Operations
// ------------------------------------------------------------------

void osm_index_insert(uint32_t x)
{
	struct block_meta *b = slot_block(x);
	size_t i = bin_of(b->size);
	uint32_t *rootp = root_at(i), root = *rootp;
	slot_at(x)->blk |= SLOT_TREE;
	slot_at(x)->size = b->size;
	if (!root) {
		set_link(lslot(x), 0);
		set_link(rslot(x), 0);
		*rootp = x;
		bin_mark(i);
		return;
	}
	uint32_t t = splay(root, b->size, (uintptr_t)b);
	if (key_less(b->size, (uintptr_t)b, key_size(t), key_addr(t))) {
		set_link(lslot(x), left(t));
		set_link(rslot(x), t);
		set_link(lslot(t), 0);
	} else {
		set_link(rslot(x), right(t));
		set_link(lslot(x), t);
		set_link(rslot(t), 0);
	}
	*rootp = x;
}

void osm_index_remove(uint32_t x)
{
	struct block_meta *b = slot_block(x);
	size_t size = key_size(x), i = bin_of(size);
	uint32_t *rootp = root_at(i);
	uint32_t t = *rootp ? splay(*rootp, size, (uintptr_t)b) : 0; /* t == x: b is in the index */
	if (t != x)
		osm_fatal_block(b, "corrupted header"); /* never: keys live in the slots; a check, not a hope */
	if (!left(t)) {
		if (!(*rootp = right(t)))
			bin_unmark(i);
	} else {
		uint32_t r = right(t);
		/* every key on the left is smaller than x: splaying for x brings their maximum up, with no right child */
		uint32_t m = splay(left(t), size, (uintptr_t)b);
		set_link(rslot(m), r);
		*rootp = m;
	}
	slot_at(x)->blk &= ~SLOT_TREE;
}

/* x's block, in the index, was split: its rest r (a smaller size at a higher address, its header written) takes
 * its place. When the key stays in its bin and x is the bin's root with no smaller key, the order holds with the
 * slot rewritten in place: no splay, no bitmap, no slot given back and taken again. That is the case of a program
 * that carves a run of blocks off one big free block (bench/patterns' `batch`: best fit splays that block to its
 * bin's root, and it is most often the bin's only one). Otherwise a removal under the old key and an insertion
 * under the new one. */
void osm_index_rekey(uint32_t x, struct block_meta *r)
{
	struct fslot *sl = slot_at(x);
	size_t i = bin_of(sl->size), rs = r->size;
	if (*root_at(i) == x && !left(x) && bin_of(rs) == i) {
		sl->blk = (uintptr_t)r | SLOT_TREE;
		sl->size = rs;
		return;
	}
	osm_index_remove(x);
	sl->blk = (uintptr_t)r;
	osm_index_insert(x);
}

/* Bin i's smallest key >= (size, 0), or 0; bin i holds a block. */
static uint32_t bin_fit(size_t i, size_t size)
{
	/* After splaying for (size, 0) the root is the key's predecessor or successor. */
	uint32_t *rootp = root_at(i), t = *rootp = splay(*rootp, size, 0);
	if (key_size(t) >= size)
		return t;
	uint32_t n = right(t);
	while (n && left(n)) /* the successor; osm_index_remove splays it next, which pays for this descent */
		n = left(n);
	return n;
}

/* Below BIN_EXACT a block of s's own bin holds s: a splay of that bin's tree, often of one block. Otherwise the
 * bin's tree answers, or the next bin that holds any block: two bit scans and a splay to its least key. */
struct block_meta *osm_index_best_fit(size_t size)
{
	size_t i = bin_of(size);
	uint32_t t = *root_at(i) ? bin_fit(i, size) : 0;
	if (!t) {
		size_t j = bin_next(i + 1);
		if (j == BINS)
			return NULL;
		t = bin_fit(j, 0);
	}
	return slot_block(t);
}

/* Morris in-order traversal of the subtree at cur: no stack, so a degenerate (deep) tree is fine; the tree is
 * restored as it goes. *go turns false at a callback that returns false (the walk still restores the links). */
static size_t morris(uint32_t cur, bool (*visit)(struct block_meta *b, void *arg), void *arg, bool *go)
{
	size_t count = 0;
	while (cur) {
		if (!left(cur)) {
			if (*go && !visit(slot_block(cur), arg))
				*go = false;
			count++;
			cur = right(cur);
			continue;
		}
		uint32_t pre = left(cur);
		while (right(pre) && right(pre) != cur)
			pre = right(pre);
		if (!right(pre)) {
			set_link(rslot(pre), cur);
			cur = left(cur);
		} else {
			set_link(rslot(pre), 0);
			if (*go && !visit(slot_block(cur), arg))
				*go = false;
			count++;
			cur = right(cur);
		}
	}
	return count;
}

size_t osm_index_walk(bool (*visit)(struct block_meta *b, void *arg), void *arg)
{
	return osm_index_walk_from(0, visit, arg);
}

/* The blocks of at least min bytes, in key order: in min's bin, after splaying for (min, 0) the root is min's
 * predecessor or successor, so they are the root (when large enough) and its right subtree; then every block of
 * the bins above. O(log n + k), not a walk of every free block. */
size_t osm_index_walk_from(size_t min, bool (*visit)(struct block_meta *b, void *arg), void *arg)
{
	bool go = true;
	size_t count = 0, i = bin_of(min);
	uint32_t *rootp = root_at(i);
	if (*rootp) {
		uint32_t t = *rootp = splay(*rootp, min, 0);
		if (key_size(t) >= min) {
			count++;
			go = visit(slot_block(t), arg);
		}
		count += morris(right(t), visit, arg, &go);
	}
	for (size_t j = bin_next(i + 1); j < BINS; j = bin_next(j + 1))
		count += morris(*root_at(j), visit, arg, &go);
	return count;
}
