/* heap: the classic allocator of SPEC.md Part 1, over one list of struct block_meta blocks.
 *
 * Small requests live on the heap at the program break: best fit, split, coalesce, grow the last block,
 * append. Large ones get their own mapping. The seed's design found the best fit by walking every block and
 * coalesced by a pass over the whole heap; here both are kept as observable rules but neither walks:
 *  - free blocks are indexed by (size, address) in index.c, so the best fit is O(log n);
 *  - a freed block goes on a `pending` list instead of being merged at once. SPEC.md coalesces at the next heap
 *    allocation, and realloc's rules see the unmerged neighbours in between, so merging earlier would place
 *    blocks differently. coalesce_blocks() merges only the runs that pending blocks belong to: each free is
 *    paid for once, O(1) amortised, and the result is exactly the full pass of the seed.
 * Callers hold the lock (osmem.c). The core never calls the kernel except through os.c. */
#include <errno.h>

#include "internal.h"

HIDDEN struct heap osm_heap = { .align = 8, .calloc_threshold = 4096 };

void osm_init(size_t align)
{
	if (osm_heap.secret)
		return;
	osm_heap.align = align;
	osm_heap.calloc_threshold = os_page_size();
	osm_heap.secret = os_random32() | 1;
}

void osm_set_bestfit_mode(enum bestfit_mode mode)
{
	osm_heap.bestfit = mode;
}

bool osm_in_heap(const void *p)
{
	return osm_heap.head && (const char *)p >= osm_heap.base && (const char *)p < osm_heap.end;
}

// ------------------------------------------------------------------
// The pending list: freed blocks not yet coalesced (links in the payload, like the index)
// ------------------------------------------------------------------

static inline void *pprev_slot(struct block_meta *b) { return payload(b); }
static inline void *pnext_slot(struct block_meta *b) { return (char *)payload(b) + 4; }

static void pending_push(struct block_meta *b)
{
	uint32_t r = block_ref(b), head = osm_heap.pending;
	set_block_tag(b, TAG_PENDING);
	st32(pprev_slot(b), 0);
	st32(pnext_slot(b), head);
	if (head)
		st32(pprev_slot(ref_block(head)), r);
	osm_heap.pending = r;
}

static void pending_remove(struct block_meta *b)
{
	uint32_t p = ld32(pprev_slot(b)), n = ld32(pnext_slot(b));
	if (p)
		st32(pnext_slot(ref_block(p)), n);
	else
		osm_heap.pending = n;
	if (n)
		st32(pprev_slot(ref_block(n)), p);
}

/* Takes a free block out of whichever structure holds it. */
static void free_detach(struct block_meta *b)
{
	if (block_tag(b) == TAG_TREE)
		index_remove(b);
	else
		pending_remove(b);
}

/* A block becomes free: status, then the index (known to have no free neighbour) or the pending list. */
static void free_attach(struct block_meta *b, bool to_index)
{
	b->status = STATUS_FREE;
	if (to_index)
		index_insert(b);
	else
		pending_push(b);
}

static void mark_alloc(struct block_meta *b, int status)
{
	b->status = status;
	set_block_tag(b, block_cookie(b));
}

// ------------------------------------------------------------------
// The block list
// ------------------------------------------------------------------

static void list_insert_after(struct block_meta *at, struct block_meta *b)
{
	b->prev = at;
	b->next = at ? at->next : osm_heap.head;
	if (b->next)
		b->next->prev = b;
	else
		osm_heap.tail = b;
	if (at)
		at->next = b;
	else
		osm_heap.head = b;
}

static void list_remove(struct block_meta *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		osm_heap.head = b->next;
	if (b->next)
		b->next->prev = b->prev;
	else
		osm_heap.tail = b->prev;
}

/* b swallows the block after it (which must be free and adjacent), header included. */
static void absorb_next(struct block_meta *b)
{
	struct block_meta *n = b->next;
	free_detach(n);
	list_remove(n);
	b->size += META_SIZE + n->size;
}

struct block_meta *find_last_block(void)
{
	return osm_heap.tail;
}

// ------------------------------------------------------------------
// Growing the heap
// ------------------------------------------------------------------

static struct block_meta *new_block(char *at, size_t size)
{
	struct block_meta *b = (struct block_meta *)at;
	b->size = size;
	list_insert_after(osm_heap.tail, b);
	return b;
}

/* Break memory [p, p + len) that does not continue our last block (someone else moved the break): it starts
 * a new segment, aligned to the granule. Returns the usable start, or NULL when it is unusable. */
static char *adopt_segment(char *p, size_t *len)
{
	size_t pad = (size_t)(-(uintptr_t)p) & (osm_heap.align - 1);
	if (pad) {
		/* rare: a foreign sbrk left the break unaligned; ask for the few bytes we lose */
		if (os_brk_grow(pad) != p + *len)
			return NULL;
	}
	if (osm_heap.base && (size_t)(p + pad + *len - osm_heap.base) > MAX_HEAP_SPAN)
		return NULL;
	return p + pad;
}

int heap_preallocation(void)
{
	size_t len = PREALLOC_SIZE;
	char *p = os_brk_grow(len);
	if (!p)
		return -1;
	osm_heap.base = NULL;
	p = adopt_segment(p, &len);
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	osm_heap.base = p;
	osm_heap.end = p + len;
	struct block_meta *b = new_block(p, len - META_SIZE);
	free_attach(b, true);
	return 0;
}

enum grow { GROW_OK, GROW_ENOMEM, GROW_ELSEWHERE };

/* Moves the break by len right after our last block. GROW_ELSEWHERE: the break is no longer ours (another
 * user of sbrk moved it), so the last block cannot grow; the caller appends instead. */
static enum grow extend_in_place(size_t len)
{
	if (os_brk_current() != osm_heap.end)
		return GROW_ELSEWHERE;
	if ((size_t)(osm_heap.end - osm_heap.base) + len > MAX_HEAP_SPAN) {
		errno = ENOMEM;
		return GROW_ENOMEM;
	}
	char *p = os_brk_grow(len);
	if (!p)
		return GROW_ENOMEM;
	if (p != osm_heap.end) {
		/* lost a race with a foreign sbrk: keep what we got as a free block of its own segment */
		char *start = adopt_segment(p, &len);
		if (start && len >= META_SIZE + osm_heap.align) {
			free_attach(new_block(start, len - META_SIZE), false);
			osm_heap.end = start + len;
		}
		return GROW_ELSEWHERE;
	}
	osm_heap.end += len;
	return GROW_OK;
}

/* A new block of size s at the break (SPEC step 5). */
static struct block_meta *heap_append(size_t s)
{
	size_t len = s + META_SIZE;
	if ((size_t)(osm_heap.end - osm_heap.base) + len > MAX_HEAP_SPAN) {
		errno = ENOMEM;
		return NULL;
	}
	char *p = os_brk_grow(len);
	if (!p)
		return NULL;
	if (p != osm_heap.end) {
		p = adopt_segment(p, &len);
		if (!p) {
			errno = ENOMEM;
			return NULL;
		}
	}
	osm_heap.end = p + len;
	struct block_meta *b = new_block(p, s);
	mark_alloc(b, STATUS_ALLOC);
	return b;
}

// ------------------------------------------------------------------
// Best fit, split, coalesce (the seed's helpers)
// ------------------------------------------------------------------

/* The reference best fit: the smallest free block >= size, lowest address first. O(n): tests and the
 * benchmark compare the index against it. */
struct block_meta *find_best_block(size_t size)
{
	struct block_meta *best = NULL;
	for (struct block_meta *b = osm_heap.head; b; b = b->next)
		if (b->status == STATUS_FREE && b->size >= size && (!best || b->size < best->size))
			best = b;
	return best;
}

static struct block_meta *pick_best_block(size_t size)
{
	switch (osm_heap.bestfit) {
	case BESTFIT_WALK:
		return find_best_block(size);
	case BESTFIT_VERIFY: {
		struct block_meta *walk = find_best_block(size), *idx = index_best_fit(size);
		if (walk != idx) {
			os_write_err("osmem: best fit mismatch between the index and the reference walk\n");
			__builtin_trap();
		}
		return idx;
	}
	default:
		return index_best_fit(size);
	}
}

/* Cuts b down to size when what is left can hold a header and a granule (40 bytes in the classic API);
 * the rest becomes a free block right after it. */
void split_blocks(struct block_meta *b, size_t size, bool to_index)
{
	if (b->size - size < META_SIZE + osm_heap.align)
		return;
	struct block_meta *r = (struct block_meta *)((char *)b + META_SIZE + size);
	r->size = b->size - size - META_SIZE;
	b->size = size;
	list_insert_after(b, r);
	free_attach(r, to_index);
}

/* Merges every run of adjacent free blocks. Runs can only have formed around pending blocks, so only their
 * runs are visited: each block is merged away at most once. */
void coalesce_blocks(void)
{
	while (osm_heap.pending) {
		struct block_meta *b = ref_block(osm_heap.pending);
		while (b->prev && b->prev->status == STATUS_FREE && adjacent(b->prev, b))
			b = b->prev;
		free_detach(b);
		while (is_free_neighbour(b, b->next))
			absorb_next(b);
		index_insert(b);
	}
}

// ------------------------------------------------------------------
// Allocation
// ------------------------------------------------------------------

static struct block_meta *map_block(size_t s)
{
	struct block_meta *b = os_map(s + META_SIZE);
	if (!b)
		return NULL;
	b->size = s;
	b->prev = NULL;
	b->next = osm_heap.mapped;
	if (b->next)
		b->next->prev = b;
	osm_heap.mapped = b;
	mark_alloc(b, STATUS_MAPPED);
	return b;
}

static void unmap_block(struct block_meta *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		osm_heap.mapped = b->next;
	if (b->next)
		b->next->prev = b->prev;
	os_unmap(b, b->size + META_SIZE);
}

/* SPEC's order of a heap allocation of s (aligned) bytes. */
static struct block_meta *heap_alloc(size_t s)
{
	if (!osm_heap.head && heap_preallocation() < 0)
		return NULL;
	coalesce_blocks();
	struct block_meta *b = pick_best_block(s);
	if (b) {
		index_remove(b);
		split_blocks(b, s, true); /* after a coalesce b has no free neighbour: the rest goes to the index */
		mark_alloc(b, STATUS_ALLOC);
		return b;
	}
	struct block_meta *last = find_last_block();
	if (last->status == STATUS_FREE) {
		switch (extend_in_place(s - last->size)) {
		case GROW_OK:
			index_remove(last);
			last->size = s;
			mark_alloc(last, STATUS_ALLOC);
			return last;
		case GROW_ENOMEM:
			return NULL;
		case GROW_ELSEWHERE:
			break;
		}
	}
	return heap_append(s);
}

struct block_meta *osm_malloc(size_t n, size_t threshold)
{
	size_t s = align_up(n);
	if (s + META_SIZE >= threshold)
		return map_block(s);
	return heap_alloc(s);
}

void osm_free(struct block_meta *b)
{
	if (b->status == STATUS_MAPPED) {
		unmap_block(b);
		return;
	}
	free_attach(b, false); /* merged at the next heap allocation, as SPEC.md says */
}

static inline size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* Moves b's contents to a new block and frees b. */
static struct block_meta *move_block(struct block_meta *b, struct block_meta *nb, size_t keep)
{
	if (!nb)
		return NULL;
	memcpy(payload(nb), payload(b), min_size(b->size, keep));
	osm_free(b);
	return nb;
}

/* SPEC.md's cases 4 to 9 (the API handles 1 to 3): b is allocated or mapped, n > 0. */
struct block_meta *osm_realloc(struct block_meta *b, size_t n)
{
	size_t s = align_up(n);
	if (b->status == STATUS_MAPPED)                           /* 4 */
		return move_block(b, osm_malloc(n, MMAP_THRESHOLD), s);
	if (s + META_SIZE >= MMAP_THRESHOLD)                       /* 5 */
		return move_block(b, map_block(s), s);
	if (b->size >= s) {                                        /* 6 */
		split_blocks(b, s, false);
		return b;
	}
	if (b == find_last_block()) {                              /* 7 */
		switch (extend_in_place(s - b->size)) {
		case GROW_OK:
			b->size = s;
			return b;
		case GROW_ENOMEM:
			return NULL;
		case GROW_ELSEWHERE:
			break;
		}
	}
	while (b->size < s && is_free_neighbour(b, b->next))       /* 8 */
		absorb_next(b);
	if (b->size >= s) {
		split_blocks(b, s, false);
		return b;
	}
	return move_block(b, heap_alloc(s), s);                    /* 9 */
}

// ------------------------------------------------------------------
// Checking a user's pointer: O(1), before anything changes
// ------------------------------------------------------------------

struct block_meta *osm_user_block(void *ptr, const char *api, bool allow_free)
{
	struct block_meta *b = block_of(ptr);
	if ((uintptr_t)ptr & (osm_heap.align - 1))
		os_fatal_pointer(api, "invalid pointer", ptr);
	if (osm_in_heap(b)) {
		if ((size_t)((char *)b - osm_heap.base) & 7)
			os_fatal_pointer(api, "invalid pointer", ptr);
		if (b->status == STATUS_ALLOC && block_tag(b) == block_cookie(b) &&
		    (b->prev ? b->prev->next == b : osm_heap.head == b))
			return b;
		if (b->status == STATUS_FREE && (block_tag(b) == TAG_TREE || block_tag(b) == TAG_PENDING)) {
			if (allow_free)
				return b;
			os_fatal_pointer(api, "double free", ptr);
		}
		os_fatal_pointer(api, "invalid pointer", ptr);
	}
	/* A mapping starts on a page: anything else is not ours, and is rejected without being read. */
	if ((uintptr_t)b & (os_page_size() - 1))
		os_fatal_pointer(api, "invalid pointer", ptr);
	if (b->status == STATUS_MAPPED && block_tag(b) == block_cookie(b) &&
	    (b->prev ? b->prev->next == b : osm_heap.mapped == b))
		return b;
	os_fatal_pointer(api, "invalid pointer", ptr);
}
