/* check: os_heap_check(), the expensive invariant walk that tests run after each step.
 *
 * It reads everything and changes nothing: the block list against the break, the index against the free
 * blocks, the pending list, the mappings. It never runs on the allocation paths. */
#include "internal.h"
#include "osmem.h"

struct tree_walk {
	struct block_meta *prev;
	size_t bad;
};

static bool check_tree_node(struct block_meta *b, void *arg)
{
	struct tree_walk *w = arg;
	if (!osm_in_heap(b) || b->status != STATUS_FREE || block_tag(b) != TAG_TREE)
		w->bad++;
	else if (w->prev && !(w->prev->size < b->size || (w->prev->size == b->size && w->prev < b)))
		w->bad++; /* keys must ascend strictly */
	w->prev = b;
	return true;
}

static int fail(const char *what)
{
	osm_os_write_err("osmem: heap check failed: ");
	osm_os_write_err(what);
	osm_os_write_err("\n");
	return -1;
}

static int check_list(size_t *in_tree, size_t *pending)
{
	struct heap *h = &osm_heap;
	struct block_meta *prev = NULL;
	*in_tree = *pending = 0;
	if (!h->head)
		return h->tail || h->root || h->pending ? fail("blocks without a heap") : 0;
	if ((char *)h->head != h->base)
		return fail("the first block is not at the heap start");
	for (struct block_meta *b = h->head; b; prev = b, b = b->next) {
		if (!osm_in_heap(b) || block_end(b) > h->end || block_end(b) < (char *)b)
			return fail("a block lies outside the heap");
		if (b->prev != prev)
			return fail("a block's prev link is wrong");
		if (prev && (char *)b < block_end(prev))
			return fail("blocks overlap or are out of address order");
		if (b->size < h->policy.align || b->size % h->policy.align || ((char *)b - h->base) % 8)
			return fail("a block's size or address is not aligned");
		switch (b->status) {
		case STATUS_ALLOC:
			if (block_tag(b) != block_cookie(b))
				return fail("an allocated block's cookie is wrong");
			break;
		case STATUS_FREE:
			if (block_tag(b) == TAG_TREE)
				(*in_tree)++;
			else if (block_tag(b) == TAG_PENDING)
				(*pending)++;
			else
				return fail("a free block is neither indexed nor pending");
			/* once coalesced, no two free blocks touch; only blocks freed since may */
			if (prev && prev->status == STATUS_FREE && adjacent(prev, b) && block_tag(prev) == TAG_TREE &&
			    block_tag(b) == TAG_TREE)
				return fail("two adjacent free blocks were not coalesced");
			break;
		default:
			return fail("a heap block has a bad status");
		}
	}
	if (prev != h->tail)
		return fail("the tail is not the last block");
	if (block_end(prev) != h->end)
		return fail("the last block does not end at the heap end");
	return 0;
}

static int check_pending(size_t expected)
{
	size_t n = 0;
	uint32_t prev = 0;
	for (uint32_t r = osm_heap.pending; r; n++) {
		struct block_meta *b = ref_block(r);
		if (n > expected || !osm_in_heap(b) || b->status != STATUS_FREE || block_tag(b) != TAG_PENDING)
			return fail("the pending list holds a block that is not pending");
		if (ld32(payload(b)) != prev)
			return fail("the pending list's back link is wrong");
		prev = r;
		r = ld32((char *)payload(b) + 4);
	}
	return n == expected ? 0 : fail("the pending list misses free blocks");
}

static int check_mapped(void)
{
	struct block_meta *prev = NULL;
	for (struct block_meta *b = osm_heap.mapped; b; prev = b, b = b->next) {
		if (b->status != STATUS_MAPPED || block_tag(b) != block_cookie(b))
			return fail("a mapped block's header is wrong");
		if (b->prev != prev)
			return fail("the list of mappings is broken");
		/* a mapping starts at its header, or (aligned blocks) in the page that holds it */
		if ((uintptr_t)payload(b) & (osm_heap.policy.align - 1) || !osm_os_is_mapped(b, META_SIZE))
			return fail("a mapped block is misplaced");
	}
	return 0;
}

int os_heap_check(void)
{
	size_t in_tree, pending;
	int rc;
	osm_lock();
	rc = check_list(&in_tree, &pending);
	if (!rc)
		rc = check_pending(pending);
	if (!rc) {
		struct tree_walk w = { NULL, 0 };
		size_t n = osm_index_walk(check_tree_node, &w);
		if (w.bad)
			rc = fail("the index holds a block that is not a coalesced free block, or is out of order");
		else if (n != in_tree)
			rc = fail("the index and the free blocks differ");
	}
	if (!rc)
		rc = check_mapped();
	osm_unlock();
	return rc;
}
