/* index: the best-fit index of coalesced free blocks.
 *
 * A top-down splay tree (Sleator & Tarjan) keyed by (size, address): the best fit for s is the smallest key
 * >= (s, 0), which is exactly SPEC.md's rule (smallest size >= s, lowest address among equal sizes), found in
 * amortised O(log n). A splay tree needs only two links per node and no balance bits, which matters here:
 * the smallest free block has 8 bytes of payload, so the links are two 32-bit block references stored in the
 * payload (see block_ref in internal.h). Keys must not change while a block is in the tree: callers remove a
 * block before they resize it. */
#include "internal.h"

// ------------------------------------------------------------------
// Links and keys
// ------------------------------------------------------------------

static inline void *lslot(uint32_t n) { return payload(ref_block(n)); }
static inline void *rslot(uint32_t n) { return (char *)payload(ref_block(n)) + 4; }
static inline uint32_t left(uint32_t n) { return ld32(lslot(n)); }
static inline uint32_t right(uint32_t n) { return ld32(rslot(n)); }
static inline size_t key_size(uint32_t n) { return ref_block(n)->size; }

/* (sa, ra) < (sb, rb); references grow with addresses, so they order equal sizes by address. */
static inline bool key_less(size_t sa, uint32_t ra, size_t sb, uint32_t rb)
{
	return sa < sb || (sa == sb && ra < rb);
}

// ------------------------------------------------------------------
// Splay
// ------------------------------------------------------------------

/* Brings the node with key (ks, kr), or the last node on its search path, to the root of t. */
static uint32_t splay(uint32_t t, size_t ks, uint32_t kr)
{
	uint32_t lroot = 0, rroot = 0;        /* the trees of nodes known smaller / larger than the key */
	void *lhook = &lroot, *rhook = &rroot; /* where the next smaller / larger node is hung */

	for (;;) {
		if (key_less(ks, kr, key_size(t), t)) {
			uint32_t l = left(t);
			if (!l)
				break;
			if (key_less(ks, kr, key_size(l), l)) { /* zig-zig: rotate right */
				st32(lslot(t), right(l));
				st32(rslot(l), t);
				t = l;
				if (!left(t))
					break;
			}
			st32(rhook, t); /* link right */
			rhook = lslot(t);
			t = left(t);
		} else if (key_less(key_size(t), t, ks, kr)) {
			uint32_t r = right(t);
			if (!r)
				break;
			if (key_less(key_size(r), r, ks, kr)) { /* zag-zag: rotate left */
				st32(rslot(t), left(r));
				st32(lslot(r), t);
				t = r;
				if (!right(t))
					break;
			}
			st32(lhook, t); /* link left */
			lhook = rslot(t);
			t = right(t);
		} else {
			break;
		}
	}
	st32(lhook, left(t));
	st32(rhook, right(t));
	st32(lslot(t), lroot);
	st32(rslot(t), rroot);
	return t;
}

// ------------------------------------------------------------------
// Operations
// ------------------------------------------------------------------

void osm_index_insert(struct block_meta *b)
{
	uint32_t x = block_ref(b), root = osm_heap.root;
	set_block_tag(b, TAG_TREE);
	if (!root) {
		st32(lslot(x), 0);
		st32(rslot(x), 0);
		osm_heap.root = x;
		return;
	}
	uint32_t t = splay(root, b->size, x);
	if (key_less(b->size, x, key_size(t), t)) {
		st32(lslot(x), left(t));
		st32(rslot(x), t);
		st32(lslot(t), 0);
	} else {
		st32(rslot(x), right(t));
		st32(lslot(x), t);
		st32(rslot(t), 0);
	}
	osm_heap.root = x;
}

void osm_index_remove(struct block_meta *b)
{
	uint32_t x = block_ref(b);
	uint32_t t = splay(osm_heap.root, b->size, x); /* t == x: b is in the tree */
	if (!left(t)) {
		osm_heap.root = right(t);
	} else {
		uint32_t r = right(t);
		/* every key on the left is smaller than x: splaying for x brings their maximum up, with no right child */
		uint32_t m = splay(left(t), b->size, x);
		st32(rslot(m), r);
		osm_heap.root = m;
	}
}

struct block_meta *osm_index_best_fit(size_t size)
{
	if (!osm_heap.root)
		return NULL;
	/* After splaying for (size, 0) the root is the key's predecessor or successor. */
	uint32_t t = splay(osm_heap.root, size, 0);
	osm_heap.root = t;
	if (key_size(t) >= size)
		return ref_block(t);
	uint32_t n = right(t);
	if (!n)
		return NULL;
	while (left(n)) /* the successor; osm_index_remove splays it next, which pays for this descent */
		n = left(n);
	return ref_block(n);
}

/* Morris in-order traversal: no stack, so a degenerate (deep) tree is fine; the tree is restored as it goes. */
size_t osm_index_walk(bool (*visit)(struct block_meta *b, void *arg), void *arg)
{
	size_t count = 0;
	uint32_t cur = osm_heap.root;
	bool go = true;
	while (cur) {
		if (!left(cur)) {
			if (go && !visit(ref_block(cur), arg))
				go = false;
			count++;
			cur = right(cur);
			continue;
		}
		uint32_t pre = left(cur);
		while (right(pre) && right(pre) != cur)
			pre = right(pre);
		if (!right(pre)) {
			st32(rslot(pre), cur);
			cur = left(cur);
		} else {
			st32(rslot(pre), 0);
			if (go && !visit(ref_block(cur), arg))
				go = false;
			count++;
			cur = right(cur);
		}
	}
	return count;
}
