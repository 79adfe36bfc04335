/* check: the expensive invariant walk that tests run after each step (os_heap_check, in osmem.c).
 *
 * It reads everything and changes nothing: the block list against the break, the side storage (index and
 * pending list) against the free blocks, the mappings against their set. It never runs on the allocation paths,
 * takes no lock (its caller holds the heap lock) and writes nothing: it returns what broke. */
#include "internal.h"

struct tree_walk {
	struct block_meta *prev;
	size_t bad;
};

static bool check_tree_node(struct block_meta *b, void *arg)
{
	struct tree_walk *w = arg;
	uint32_t x = osm_in_heap(b) ? free_slot(b) : 0;
	if (!x || b->status != STATUS_FREE || !(slot_at(x)->blk & SLOT_TREE))
		w->bad++;
	else if (w->prev && !(w->prev->size < b->size || (w->prev->size == b->size && w->prev < b)))
		w->bad++; /* keys must ascend strictly */
	w->prev = b;
	return true;
}

static const char *check_list(size_t *in_tree, size_t *pending, size_t *unslotted)
{
	struct heap *h = &osm_heap;
	struct block_meta *prev = NULL;
	*in_tree = *pending = *unslotted = 0;
	if (!h->head)
		return h->tail || !osm_index_empty() || h->pending ? "blocks without a heap" : NULL;
	if ((char *)h->head != h->base)
		return "the first block is not at the heap start";
	for (struct block_meta *b = h->head; b; prev = b, b = b->next) {
		/* as integers: a corrupted size must not overflow a pointer (fuzz_corrupt) */
		if (!osm_in_heap(b) || ((char *)b - h->base) % 8 || (size_t)(h->end - (char *)b) < META_SIZE ||
		    b->size > (size_t)(h->end - (char *)b) - META_SIZE)
			return "a block lies outside the heap";
		if (b->prev != prev)
			return "a block's prev link is wrong";
		if (prev && (char *)b < block_end(prev))
			return "blocks overlap or are out of address order";
		if (b->size < h->policy.align || b->size % h->policy.align || ((char *)b - h->base) % 8)
			return "a block's size or address is not aligned";
		switch (b->status) {
		case STATUS_ALLOC:
			if (block_tag(b) != block_cookie(b))
				return "an allocated block's cookie is wrong";
			break;
		case STATUS_FREE: {
			uint32_t x = free_slot(b);
			if (x && (slot_at(x)->blk & SLOT_TREE))
				(*in_tree)++;
			else if (x)
				(*pending)++;
			else if (block_tag(b) == TAG_NOSLOT)
				(*unslotted)++;
			else
				return "a free block's tag names no slot of its own";
			/* once coalesced, no two free blocks touch; only blocks freed since may */
			uint32_t px = prev && prev->status == STATUS_FREE ? free_slot(prev) : 0;
			if (px && adjacent(prev, b) && (slot_at(px)->blk & SLOT_TREE) && x && (slot_at(x)->blk & SLOT_TREE))
				return "two adjacent free blocks were not coalesced";
			break;
		}
		default:
			return "a heap block has a bad status";
		}
	}
	if (prev != h->tail)
		return "the tail is not the last block";
	if (block_end(prev) != h->end)
		return "the last block does not end at the heap end";
	if (*unslotted != h->unslotted)
		return "the count of free blocks without a slot is wrong";
	return NULL;
}

static const char *check_pending(size_t expected)
{
	size_t n = 0;
	uint32_t prev = 0;
	for (uint32_t r = osm_heap.pending; r; n++) {
		struct block_meta *b = slot_block(r);
		if (n > expected || r >= osm_heap.slot_top || !osm_in_heap(b) || b->status != STATUS_FREE ||
		    free_slot(b) != r || (slot_at(r)->blk & SLOT_TREE))
			return "the pending list holds a block that is not pending";
		if (slot_at(r)->l != prev)
			return "the pending list's back link is wrong";
		prev = r;
		r = slot_at(r)->r;
	}
	return n == expected ? NULL : "the pending list misses free blocks";
}

static const char *check_slots(size_t in_use)
{
	size_t unused = 0;
	for (uint32_t r = osm_heap.slot_free; r; r = slot_at(r)->l) {
		if (r >= osm_heap.slot_top || slot_at(r)->blk || ++unused > osm_heap.slot_top)
			return "the list of unused slots is broken";
	}
	size_t used = osm_heap.slot_top ? osm_heap.slot_top - 1 : 0;
	return used - unused == in_use ? NULL : "slots are lost: used slots and free blocks differ";
}

static const char *check_mapped(void)
{
	struct block_meta *prev = NULL;
	size_t size;
	for (struct block_meta *b = osm_heap.mapped; b; prev = b, b = b->next) {
		if (osm_mapset_find(b, &size) != MAPSET_LIVE || size != b->size)
			return "a mapped block is not in the set of live mappings";
		if (b->status != STATUS_MAPPED || block_tag(b) != block_cookie(b))
			return "a mapped block's header is wrong";
		if (b->prev != prev)
			return "the list of mappings is broken";
		if ((uintptr_t)payload(b) & (osm_heap.policy.align - 1))
			return "a mapped block is misplaced";
	}
	return NULL;
}

const char *osm_heap_check(void)
{
	size_t in_tree, pending, unslotted;
	const char *why = check_list(&in_tree, &pending, &unslotted);
	if (!why)
		why = check_pending(pending);
	if (!why) {
		struct tree_walk w = { NULL, 0 };
		size_t n = osm_index_walk(check_tree_node, &w);
		if (w.bad)
			why = "the index holds a block that is not a coalesced free block, or is out of order";
		else if (n != in_tree)
			why = "the index and the free blocks differ";
	}
	if (!why)
		why = check_slots(in_tree + pending);
	if (!why)
		why = check_mapped();
	return why;
}
