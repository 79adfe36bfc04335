/* index: the best-fit index of coalesced free blocks.
 *
 * A top-down splay tree (Sleator & Tarjan) keyed by (size, address): the best fit for s is the smallest key
 * >= (s, 0), which is exactly docs/CLASSIC.md's rule (smallest size >= s, lowest address among equal sizes), found in
 * amortised O(log n). A splay tree needs only two links per node and no balance bits. The nodes are the free
 * blocks' slots (internal.h): the links never touch the blocks' payload, which docs/CLASSIC.md keeps as the program
 * left it. Keys must not change while a block is in the tree: callers remove a block before they resize it. */
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
// Operations
// ------------------------------------------------------------------

void osm_index_insert(uint32_t x)
{
	struct block_meta *b = slot_block(x);
	uint32_t root = osm_heap.root;
	slot_at(x)->blk |= SLOT_TREE;
	slot_at(x)->size = b->size;
	if (!root) {
		set_link(lslot(x), 0);
		set_link(rslot(x), 0);
		osm_heap.root = x;
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
	osm_heap.root = x;
}

void osm_index_remove(uint32_t x)
{
	struct block_meta *b = slot_block(x);
	size_t size = key_size(x);
	uint32_t t = splay(osm_heap.root, size, (uintptr_t)b); /* t == x: b is in the tree */
	if (t != x)
		osm_fatal_block(b, "corrupted header"); /* never: keys live in the slots; a check, not a hope */
	if (!left(t)) {
		osm_heap.root = right(t);
	} else {
		uint32_t r = right(t);
		/* every key on the left is smaller than x: splaying for x brings their maximum up, with no right child */
		uint32_t m = splay(left(t), size, (uintptr_t)b);
		set_link(rslot(m), r);
		osm_heap.root = m;
	}
	slot_at(x)->blk &= ~SLOT_TREE;
}

struct block_meta *osm_index_best_fit(size_t size)
{
	if (!osm_heap.root)
		return NULL;
	/* After splaying for (size, 0) the root is the key's predecessor or successor. */
	uint32_t t = splay(osm_heap.root, size, 0);
	osm_heap.root = t;
	if (key_size(t) >= size)
		return slot_block(t);
	uint32_t n = right(t);
	if (!n)
		return NULL;
	while (left(n)) /* the successor; osm_index_remove splays it next, which pays for this descent */
		n = left(n);
	return slot_block(n);
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
	bool go = true;
	return morris(osm_heap.root, visit, arg, &go);
}

/* The blocks of at least min bytes, in order of size: after splaying for (min, 0) the root is min's predecessor
 * or successor, so they are the root (when large enough) and its right subtree. O(log n + k), not a walk of every
 * free block. */
size_t osm_index_walk_from(size_t min, bool (*visit)(struct block_meta *b, void *arg), void *arg)
{
	if (!osm_heap.root)
		return 0;
	uint32_t t = splay(osm_heap.root, min, 0);
	osm_heap.root = t;
	bool go = true;
	size_t count = 0;
	if (key_size(t) >= min) {
		count++;
		go = visit(slot_block(t), arg);
	}
	return count + morris(right(t), visit, arg, &go);
}
