/* heap: the classic allocator of docs/CLASSIC.md, over one list of struct block_meta blocks.
 *
 * Small requests live on the heap at the program break: best fit, split, coalesce, grow the last block,
 * append. Large ones get their own mapping. The seed's design found the best fit by walking every block and
 * coalesced by a pass over the whole heap; here both are kept as observable rules but neither walks:
 *  - free blocks are indexed by (size, address) in index.c, so the best fit is O(log n);
 *  - a freed block goes on a `pending` list instead of being merged at once. docs/CLASSIC.md coalesces at the next heap
 *    allocation, and realloc's rules see the unmerged neighbours in between, so merging earlier would place
 *    blocks differently. coalesce_blocks() merges only the runs that pending blocks belong to: each free is
 *    paid for once, O(1) amortised, and the result is exactly the full pass of the seed.
 * The drop-in's default profile (heap_policy) adds what a long-running program needs: merging at free, growing
 * the break in chunks, trimming the top, mremap for large reallocs.
 * Neither the index nor the pending list writes into a free block's payload: their links live in side storage
 * (slots, named by the header's spare 4 bytes), so the bytes a program freed stay as it left them (docs/CLASSIC.md).
 * Callers hold the lock (lock.c). The core never calls the kernel except through os.c. */
#include <errno.h>

#include "internal.h"

HIDDEN struct heap osm_heap = {
	.policy = { .align = 8, .mmap_threshold = MMAP_THRESHOLD, .calloc_threshold = 4096 },
	.classic = true,
};

static void idle_env(void);

ONCE_PATH void osm_init(bool dropin)
{
	if (osm_heap.secret)
		return;
	struct heap_policy *p = &osm_heap.policy;
	p->align = dropin ? 16 : 8; /* malloc promises alignof(max_align_t) */
	p->mmap_threshold = MMAP_THRESHOLD;
	p->calloc_threshold = osm_os_page_size();
	const char *profile = dropin ? osm_os_getenv("OSMEM_PROFILE") : "classic";
	osm_heap.classic = profile && strcmp(profile, "classic") == 0;
	if (profile && *profile && !osm_heap.classic && strcmp(profile, "default") != 0) {
		osm_os_write_err("osmem: OSMEM_PROFILE=");  /* once: osm_init runs once */
		osm_os_write_err(profile);
		osm_os_write_err(" is not a profile (classic or default); using default\n");
	}
	if (!osm_heap.classic) {
		p->calloc_threshold = MMAP_THRESHOLD; /* a fresh mapping per 4 KiB calloc is the textbook's, not ours */
		p->eager_coalesce = true;
		p->use_mremap = true;
		p->grow_min = 256 * 1024;
		p->trim_threshold = 1024 * 1024;
		p->trim_keep = 256 * 1024;
		p->map_cache = true;
		p->prefault = true;
		osm_huge_env(); /* read now, not at 32 MiB of heap: a setting not understood is named in any program */
		idle_env();
	}
#ifdef OSMEM_DROPIN
	(void)osm_os_copy_streams(); /* OSMEM_STREAM, read and judged now (realloc's big copies, both profiles) */
#endif
	osm_heap.secret = osm_os_random32() | 1;
	osm_heap.key = ((uint64_t)osm_heap.secret * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)osm_os_random32() << 32) ^
		       (uint64_t)(uintptr_t)&osm_heap;
	osm_heap.key |= 1;
	const char *trace = osm_os_getenv("OSMEM_TRACE");
	if (trace && *trace)
		osm_trace_start(trace, (const char *const *)&osm_heap.base, (const char *const *)&osm_heap.end,
			    osm_heap.classic ? (dropin ? "osmem-trace 1 profile=classic align=16"
						       : "osmem-trace 1 profile=classic align=8")
					     : "osmem-trace 1 profile=default align=16");
}

void osm_set_bestfit_mode(enum bestfit_mode mode)
{
	osm_heap.bestfit = mode;
}

/* With gaps: p in the last segment or one of those before it. */
static bool in_segments(const char *p, size_t len)
{
	if (p >= osm_heap.seg_lo)
		return true; /* the caller checked the end */
	for (uint32_t i = 0; i < osm_heap.n_segs; i++)
		if (p >= osm_heap.segs[i].lo && p < osm_heap.segs[i].hi)
			return (size_t)(osm_heap.segs[i].hi - p) >= len;
	return false;
}

bool osm_in_heap(const void *p)
{
	return osm_heap.head && (const char *)p >= osm_heap.base && (const char *)p < osm_heap.end &&
	       (!osm_heap.gaps || in_segments(p, 1));
}

static inline size_t page_size(void) { return osm_os_page_size(); }
static inline size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

static void count_in_use(void)
{
	size_t now = osm_heap.count.heap_in_use + osm_heap.count.mapped_bytes;
	if (now > osm_heap.count.peak_in_use)
		osm_heap.count.peak_in_use = now;
}

// ------------------------------------------------------------------
// Slots: the side storage of free blocks (internal.h)
// ------------------------------------------------------------------

/* .lbss: mapped by the loader, pages touched as slots are first used; the first chunk is slots0, set at its first
 * use (the table itself is in .lbss too, untouched by programs that free nothing) */
static struct fslot slots0[SLOT_CHUNK] LARGE_BSS;
HIDDEN struct fslot *osm_slot_chunk[SLOT_CHUNKS] LARGE_BSS;

void osm_set_slot_limit(uint32_t n)
{
	osm_heap.slot_limit = n;
}

/* A slot for free block b, or 0 when none can be had (the classic profile's static storage is full). O(1). */
static uint32_t slot_new(struct block_meta *b)
{
	uint32_t i = osm_heap.slot_free;
	if (osm_heap.slot_limit && osm_heap.slots_used >= osm_heap.slot_limit)
		return 0;
	if (i) {
		osm_heap.slot_free = slot_at(i)->l;
	} else {
		i = osm_heap.slot_top ? osm_heap.slot_top : 1;
		if (i >> SLOT_CHUNK_BITS >= SLOT_CHUNKS)
			return 0;
		if (!osm_slot_chunk[i >> SLOT_CHUNK_BITS]) {
			if (i >> SLOT_CHUNK_BITS == 0) {
				osm_slot_chunk[0] = slots0;
			} else {
#ifdef OSMEM_DROPIN
				/* after a refusal, no new try for SLOT_MAP_WAIT_NS: each coalescing pass asks for a slot for
				 * every block that has none, and each ask made a failing mmap (6.5 million of them for 20,000
				 * frees and mallocs under an RLIMIT_DATA: 4.6 s against 0.01 s; the review of session 56,
				 * faults/slot_chunk_refusal_not_retried_at_each_ask). Cost: a coarse clock read an ask. */
				if (osm_heap.slot_map_refused &&
				    osm_os_coarse_ns() + 1 - osm_heap.slot_map_refused < SLOT_MAP_WAIT_NS)
					return 0;
				osm_slot_chunk[i >> SLOT_CHUNK_BITS] = osm_os_map(SLOT_CHUNK * sizeof(struct fslot));
				if (!osm_slot_chunk[i >> SLOT_CHUNK_BITS]) {
					osm_heap.slot_map_refused = osm_os_coarse_ns() + 1;
					return 0;
				}
				osm_heap.slot_map_refused = 0;
#else
				return 0; /* libosmem.so maps no more: it makes docs/CLASSIC.md's system calls, no others */
#endif
			}
		}
		osm_heap.slot_top = i + 1;
	}
	struct fslot *sl = slot_at(i);
	sl->blk = (uintptr_t)b;
	sl->size = b->size;
	sl->l = sl->r = 0;
	osm_heap.slots_used++;
	return i;
}

static void slot_release(uint32_t i)
{
	struct fslot *sl = slot_at(i);
	sl->blk = 0; /* a stale tag no longer names this block */
	sl->r = 0;
	sl->l = osm_heap.slot_free;
	osm_heap.slot_free = i;
	osm_heap.slots_used--;
}

// ------------------------------------------------------------------
// The pending list: freed blocks not yet coalesced, linked through their slots
// ------------------------------------------------------------------

static void pending_push(uint32_t x)
{
	uint32_t head = osm_heap.pending;
	slot_at(x)->l = 0;
	slot_at(x)->r = head;
	if (head)
		slot_at(head)->l = x;
	osm_heap.pending = x;
}

static void pending_remove(uint32_t x)
{
	uint32_t p = slot_at(x)->l, n = slot_at(x)->r;
	if (p)
		slot_at(p)->r = n;
	else
		osm_heap.pending = n;
	if (n)
		slot_at(n)->l = p;
}

/* Takes a free block out of whichever structure holds it and gives its slot back. */
static void free_detach(struct block_meta *b)
{
	osm_check_free_block(b);
	uint32_t x = free_slot(b);
	if (!x) { /* TAG_NOSLOT: held by nothing */
		osm_heap.unslotted--;
		return;
	}
	if (slot_at(x)->blk & SLOT_TREE)
		osm_index_remove(x);
	else
		pending_remove(x);
	slot_release(x);
}

/* A free block enters the index (it is known to have no free neighbour) or the pending list. Without a slot
 * it is held by nothing, and the heap falls back to the seed's walks until it is merged or taken. */
static void free_insert(struct block_meta *b, bool to_index)
{
	uint32_t x = slot_new(b);
	if (!x) {
		set_block_tag(b, TAG_NOSLOT);
		osm_heap.unslotted++;
		return;
	}
	set_block_tag(b, x);
	if (to_index)
		osm_index_insert(x);
	else
		pending_push(x);
}

/* Checks free block b, about to be taken, and gives its slot when it is in the index, where it stays for now
 * (take_block_from passes the slot on to the rest of a split); else takes b out of whatever holds it: 0. */
static uint32_t index_keep(struct block_meta *b)
{
	osm_check_free_block(b);
	uint32_t x = free_slot(b);
	if (x && (slot_at(x)->blk & SLOT_TREE))
		return x;
	free_detach(b);
	return 0;
}

/* A block becomes free: status, then the index or the pending list. Only the header changes. */
static void free_attach(struct block_meta *b, bool to_index)
{
	b->status = STATUS_FREE;
	free_insert(b, to_index);
}

static void mark_alloc(struct block_meta *b, int status)
{
	b->status = status;
	set_block_tag(b, block_cookie(b));
}

/* An allocated block's size changed: its cookie covers the size. */
static inline void stamp_block(struct block_meta *b)
{
	if (b->status != STATUS_FREE)
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
	osm_heap.count.heap_blocks++;
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
	osm_heap.count.heap_blocks--;
}

/* The decay's sizes (its section, below, says why): blocks it visits, the front of a block it keeps resident, and
 * that front where page faults are cheap. */
#define DECAY_MIN        ((size_t)1 << 20)
#define DECAY_KEEP       ((size_t)1 << 20)
#define DECAY_KEEP_CHEAP ((size_t)1 << 18)
#define IDLE_MIN         ((size_t)8192) /* the idle sweep's smallest block: holds a whole page past the tag */
static void decay_carry(const struct block_meta *from, const uint64_t w[2], struct block_meta *to, bool merged);
static struct block_meta *idle_at;

/* b swallows the block after it (which must be free and adjacent), header included. In the default profile b's
 * first payload word, where the decay tags a free block (decay_visit), is cleared: b keeps its header, so a tag
 * that said "given back" would have stood for the merged block too, and n's pages, resident, would never have
 * gone back (8 threads that freed 800 MB of 5000-byte blocks kept a 68 MiB block's 36 MiB so). Except where b is
 * small, within the front any decay keeps (DECAY_KEEP_CHEAP), and n is a block the decay has seen idle: the
 * merged block keeps n's age (decay_carry), since all it holds of recent use lies in that front. A program that
 * takes a block from an idle one's front now and then and frees it (a request served by best fit, which splits
 * there) had made the whole block read as used: it never went back (idle_medium in bench/workloads/patterns.c:
 * 900 MB freed by one thread stayed resident through its idle seconds; growth/idle_block_given_back_despite_
 * periodic_requests). Only a free b: a realloc grows an allocated one in place here, its payload the program's.
 * The classic profile writes nothing into freed memory (docs/CLASSIC.md). */
static void absorb_next(struct block_meta *b)
{
	struct block_meta *n = b->next;
	bool carry = b->status == STATUS_FREE && !osm_heap.classic && META_SIZE + b->size <= DECAY_KEEP_CHEAP &&
		     n->size >= DECAY_MIN; /* smaller, the decay never tagged it */
	uint64_t nw[2] = { 0, 0 };
	if (carry)
		memcpy(nw, payload(n), sizeof nw);
	free_detach(n);
	list_remove(n);
	if (idle_at == n) /* the idle sweep's place (its section, below) */
		idle_at = b;
	b->size += META_SIZE + n->size;
	stamp_block(b);
	if (b->status == STATUS_FREE && !osm_heap.classic)
		*(uint64_t *)payload(b) = 0;
	if (carry)
		decay_carry(n, nw, b, true);
	osm_heap.count.coalesces++;
	if (TRACING)
		osm_trace_event("  coalesce %p %p %z", b, n, b->size);
}

struct block_meta *find_last_block(void)
{
	return osm_heap.tail;
}

// ------------------------------------------------------------------
// Growing and trimming the heap
// ------------------------------------------------------------------

static bool heap_links_ok(const struct block_meta *b);

/* A block appended at the break after the tail, whose links are checked first: a tail whose `next` the program
 * rewrote would otherwise have the new block written through it. */
static struct block_meta *new_block(char *at, size_t size)
{
	if (osm_heap.tail && !heap_links_ok(osm_heap.tail))
		osm_fatal_block(osm_heap.tail, "corrupted header");
	struct block_meta *b = (struct block_meta *)at;
	b->size = size;
	list_insert_after(osm_heap.tail, b);
	return b;
}

/* The break grows again after a free trimmed it: the trim handed back pages the program wanted, and faulting
 * them in again costs about 1.4 us a page here, ten times writing it. So the threshold that decides a trim
 * doubles (and what a trim keeps with it), up to TRIM_ADAPT_MAX, unless the program set it (mallopt): a program
 * whose heap swings by tens of megabytes keeps that swing mapped instead of giving it back and faulting it in at
 * every swing (large: 74,000 page faults, 2.1x what its peak RSS holds, before this). */
#define TRIM_ADAPT_MAX ((size_t)64 << 20)
static void trim_regrown(void)
{
	struct heap_policy *p = &osm_heap.policy;
	osm_heap.trim_watch = false;
	if (osm_heap.classic || p->fixed_threshold || !p->trim_threshold || p->trim_threshold >= TRIM_ADAPT_MAX)
		return;
	p->trim_threshold = p->trim_threshold > TRIM_ADAPT_MAX / 2 ? TRIM_ADAPT_MAX : p->trim_threshold * 2;
	if (p->trim_keep < p->trim_threshold / 2)
		p->trim_keep = p->trim_threshold / 2;
	if (TRACING)
		osm_trace_event("  trim_threshold %z", p->trim_threshold);
}

/* The mapped break. When the kernel refuses to move the real one (another mapping sits right above it: a JIT's,
 * a library's, Valgrind's small brk segment), the default profile reserves address space above the heap and grows
 * the heap into it as it would into the break: a new segment (adopt_segment), then growth in place, best fit,
 * splits and merges as before, and a trim that gives the top back. glibc's sysmalloc does the same (the main
 * arena goes on in mmapped, non-contiguous memory). Before, each request the heap could not serve got a mapping
 * of its own: an mmap and at least a page for a 3 KiB block, an munmap at its free, and no medium cache (50,000
 * blocks of 2-30 KiB: 50,000 mmap calls, `brk_blocked/medium_blocks_share_mappings`). The reservation is as large
 * as RLIMIT_AS allows up to VBRK_RESERVE (PROT_NONE: address space, no memory); it must lie above the heap,
 * whose blocks are in address order. Where it cannot be made (RLIMIT_AS, address space) or lies below the heap,
 * the heap maps each block, as before, for a second (vbrk_off_until: up to eleven mmap calls once a second, not at
 * every request), and then tries again: a limit that was lowered for a while (RLIMIT_AS) left every heap request
 * of the process mapped one by one until session 57 (its review of the large blocks; a 5,000-byte block then takes
 * an mmap, 8 KiB and an munmap at its free: `brk_blocked/reservation_tried_again_after_refusal`). */
#define VBRK_RETRY_NS 1000000000ull
#define VBRK_RESERVE ((size_t)64 << 30)
#define VBRK_MIN     ((size_t)64 << 20)
#define VBRK_HINT_GAP ((uintptr_t)1 << 30)
/* A reservation for the mapped break that holds len more bytes: the current one continued, or a new one above the
 * heap. False when none can be had (then not asked for again for VBRK_RETRY_NS). Rare: out of the hot text. */
static __attribute__((noinline)) bool vbrk_reserve(size_t len, bool *fresh)
{
	if (osm_heap.vbrk_off_until && osm_os_coarse_ns() < osm_heap.vbrk_off_until)
		return false; /* a reservation failed or lay below the heap: not tried again at every request */
	char *r = NULL;
	size_t want, least = len > VBRK_MIN ? round_up(len, page_size()) : VBRK_MIN;
	/* a reservation used up goes on where it ends, the same segment: a new one anywhere lands below the
	 * heap (mappings are placed top-down) and was refused, so after a first reservation that a lowered
	 * RLIMIT_AS had cut to 64 MiB, every heap block took a mapping of its own for good (session 61's review:
	 * 907 mmap calls for 1,500 blocks; brk_blocked/used_up_reservation_goes_on) */
	for (want = VBRK_RESERVE; osm_heap.vbrk && !r && want >= least; want /= 2)
		r = osm_os_reserve_at(osm_heap.vbrk_end, want) ? osm_heap.vbrk_end : NULL;
	if (r) {
		osm_heap.vbrk_end += want * 2; /* the loop halved it once more after the reservation it took */
		return true;
	}
	/* a gigabyte or so above the heap's end (past a wall of less than that), in the gap between the break and
	 * the mappings, which grow down from the top: there the reservation can go on when used up. Where that
	 * range is taken, the kernel places it as it would any mapping */
	uintptr_t top = (uintptr_t)(osm_heap.base ? osm_heap.end : (char *)osm_os_brk_current());
	char *hint = (char *)(round_up(top, VBRK_HINT_GAP) + VBRK_HINT_GAP);
	for (want = VBRK_RESERVE; !r && want >= least; want /= 2)
		r = osm_os_reserve(want, hint);
	want *= 2;
	if (r && osm_heap.base && r < osm_heap.end) {
		osm_os_unmap(r, want);
		r = NULL;
	}
	if (!r) {
		osm_heap.vbrk_off_until = osm_os_coarse_ns() + VBRK_RETRY_NS;
		return false;
	}
	*fresh = !osm_heap.vbrk;
	osm_heap.vbrk = r;
	osm_heap.vbrk_end = r + want;
	return true;
}

/* The first reservation, and its commit refused (RLIMIT_DATA counts what is committed, not what is reserved):
 * given back. Kept, it stood for the break (brk_current) while the heap still grew by brk, and no trim or growth
 * in place matched the break again (session 61's review: 54 MB never trimmed;
 * brk_blocked/refused_commit_gives_reservation_back). */
static __attribute__((noinline)) void vbrk_unreserve(void)
{
	osm_os_unmap(osm_heap.vbrk, (size_t)(osm_heap.vbrk_end - osm_heap.vbrk));
	osm_heap.vbrk = osm_heap.vbrk_end = NULL;
	osm_heap.vbrk_off_until = osm_os_coarse_ns() + VBRK_RETRY_NS;
}

static char *vbrk_grow(size_t len)
{
	bool fresh = false;
	if ((!osm_heap.vbrk || len > (size_t)(osm_heap.vbrk_end - osm_heap.vbrk)) && !vbrk_reserve(len, &fresh))
		return NULL;
	if (!osm_os_commit(osm_heap.vbrk, len)) {
		if (fresh)
			vbrk_unreserve();
		return NULL;
	}
	char *p = osm_heap.vbrk;
	osm_heap.vbrk += len;
	return p;
}

/* Where the heap's break is: the mapped one once it is in use. */
static char *brk_current(void)
{
	return osm_heap.brk_refused && osm_heap.vbrk ? osm_heap.vbrk : (char *)osm_os_brk_current();
}

/* Moves the break up by len. Once the kernel has refused a modest growth that the mapped break then served, the
 * default profile stops asking (one failed system call, not one per malloc) and grows the mapped break instead
 * (vbrk_grow); where neither grows, heap_or_map serves what the heap cannot from mappings, and the break is asked
 * again at the next growth. */
static char *brk_grow(size_t len)
{
	char *p;
	if (osm_heap.brk_refused) {
		p = vbrk_grow(len);
	} else {
		p = osm_os_brk_grow(len);
		if (p)
			osm_huge_grown(p, len); /* default profile only: it returns at once in the classic one */
		else if (!osm_heap.classic && len <= ((size_t)32 << 20)) {
			/* a modest growth refused: the break is walled in, or an address-space limit was met. Only a
			 * mapped break that serves it makes the refusal final: under RLIMIT_AS (where no reservation fits
			 * either) the break grows again once memory is freed. It was final at once, and every later heap
			 * block took a page mapping of its own: glibc's tst-dynarray-fail ran out after its first 2 MiB
			 * request (growth/refused_growth_is_not_a_wall). Cost there: a failing brk call per growth. */
			p = vbrk_grow(len);
			if (p)
				osm_heap.brk_refused = true;
		}
	}
	if (p && osm_heap.trim_watch)
		trim_regrown();
	return p;
}

/* Break memory [p, p + len) that does not continue our last block (someone else moved the break): it starts
 * a new segment, aligned to the granule. Returns the usable start, or NULL when it is unusable. */
static char *adopt_segment(char *p, size_t *len)
{
	if (osm_heap.base && (p < osm_heap.end || osm_heap.n_segs == HEAP_SEGS_MAX))
		return NULL; /* the heap's blocks are in address order; and the table of segments is full */
	size_t pad = (size_t)(-(uintptr_t)p) & (osm_heap.policy.align - 1);
	/* rare: a foreign sbrk left the break unaligned; ask for the few bytes we lose. Before the segment is recorded:
	 * a refusal leaves the table as it was (it recorded a segment that never began, found by a review in session
	 * 54: the next one then counted the gap twice) */
	if (pad && brk_grow(pad) != p + *len)
		return NULL;
	if (osm_heap.base) {
		/* the segment that ends here, for osm_in_heap: what lies after it is not the heap's */
		osm_heap.segs[osm_heap.n_segs].lo = osm_heap.seg_lo ? osm_heap.seg_lo : osm_heap.base;
		osm_heap.segs[osm_heap.n_segs++].hi = osm_heap.end;
		osm_heap.seg_lo = p;
		__atomic_store_n(&osm_heap.gaps, true, __ATOMIC_RELAXED); /* not the first segment: the blocks no longer tile one range */
		osm_heap.gap_bytes += (size_t)(p - osm_heap.end);
	}
	return p + pad;
}

ONCE_PATH int heap_preallocation(void)
{
	size_t len = PREALLOC_SIZE;
	char *p = brk_grow(len);
	if (!p)
		return -1;
	__atomic_store_n(&osm_heap.base, NULL, __ATOMIC_RELAXED);
	p = adopt_segment(p, &len);
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	/* atomic stores: the medium caches read the range without the lock (internal.h, medium_in_heap) */
	__atomic_store_n(&osm_heap.base, p, __ATOMIC_RELAXED);
	__atomic_store_n(&osm_heap.end, p + len, __ATOMIC_RELAXED);
	struct block_meta *b = new_block(p, len - META_SIZE);
	free_attach(b, true);
	if (TRACING) {
		osm_trace_event("  brk +%z", len);
		osm_trace_event("  prealloc %p %z", b, b->size);
	}
	return 0;
}

/* How far to move the break for `need` bytes when what grows has `eighth` as its eighth: exactly `need` in the
 * classic profile, else whole chunks of at least the growth minimum (256 KiB) and that eighth (capped at 64
 * MiB), in whole pages, so that n growing requests make O(log n) brk calls. Address space only: the kernel faults
 * pages in as they are touched. */
static size_t grow_chunk(size_t need, size_t eighth)
{
	size_t min = osm_heap.policy.grow_min;
	if (!min)
		return need;
	if (eighth > ((size_t)64 << 20))
		eighth = (size_t)64 << 20;
	if (eighth > min)
		min = eighth;
	return round_up(need > min ? need : min, page_size());
}

/* A malloc's growth: geometric in the heap so far. */
static size_t grow_size(size_t need)
{
	return grow_chunk(need, osm_heap_bytes() / 8);
}

enum grow { GROW_OK, GROW_ENOMEM, GROW_ELSEWHERE };

/* Moves the break by len right after our last block. GROW_ELSEWHERE: the break is no longer ours (another
 * user of sbrk moved it), so the last block cannot grow; the caller appends instead. */
static enum grow extend_in_place(size_t len)
{
	if (brk_current() != osm_heap.end)
		return GROW_ELSEWHERE;
	char *p = brk_grow(len);
	if (!p)
		return GROW_ENOMEM;
	if (p != osm_heap.end) {
		/* lost a race with a foreign sbrk: keep what we got as a free block of its own segment */
		char *start = adopt_segment(p, &len);
		if (start && len >= META_SIZE + osm_heap.policy.align) {
			struct block_meta *b = new_block(start, len - META_SIZE);
			free_attach(b, false);
			__atomic_store_n(&osm_heap.end, start + len, __ATOMIC_RELEASE);
			if (TRACING) /* the heap map must see the block: it had no line (found by a review in session 51) */
				osm_trace_event("  segment %p %z", b, b->size);
		}
		return GROW_ELSEWHERE;
	}
	__atomic_store_n(&osm_heap.end, osm_heap.end + len, __ATOMIC_RELEASE);
	if (TRACING)
		osm_trace_event("  brk +%z", len);
	return GROW_OK;
}

/* A new block of at least s bytes at the break (docs/CLASSIC.md, step 5). */
static struct block_meta *heap_append(size_t s)
{
	size_t len = grow_size(s + META_SIZE);
	char *p = brk_grow(len);
	if (!p)
		return NULL;
	bool adopted = p != osm_heap.end;
	if (adopted) {
		p = adopt_segment(p, &len);
		if (!p) {
			errno = ENOMEM;
			return NULL;
		}
	}
	struct block_meta *b = new_block(p, len - META_SIZE); /* checks the tail against the old end */
	__atomic_store_n(&osm_heap.end, p + len, __ATOMIC_RELEASE);
	if (TRACING) {
		/* after another sbrk user's bytes, the block starts a segment: its line tells the heap map of the gap (it
		 * had none, found by a review in session 54), and a `brk +N` would place the break N past the old end */
		if (adopted)
			osm_trace_event("  segment %p %z", b, b->size);
		else
			osm_trace_event("  brk +%z", len);
		osm_trace_event("  append %p %z", b, b->size);
	}
	return b;
}

/* Gives the free top of the heap back to the kernel, keeping `keep` bytes of it (at least one granule: the block
 * stays a block). keep may be anything up to SIZE_MAX (malloc_trim's pad): nothing wraps. */
static bool trim_top(size_t keep)
{
	struct block_meta *t = osm_heap.tail;
	uint32_t x = t && t->status == STATUS_FREE ? free_slot(t) : 0;
	if (!x || !(slot_at(x)->blk & SLOT_TREE))
		return false;
	osm_check_free_block(t); /* its size moves the break: one the program overwrote took it below live blocks */
	if (keep < osm_heap.policy.align)
		keep = osm_heap.policy.align;
	if (t->size <= keep)
		return false;
	size_t cut = round_down(t->size - keep, page_size());
	if (!cut || brk_current() != osm_heap.end)
		return false;
	if (osm_heap.brk_refused && osm_heap.vbrk) { /* the mapped break: its top goes back to reserved address space */
		osm_heap.vbrk -= cut;
		osm_os_decommit(osm_heap.vbrk, cut);
	} else if (!osm_os_brk_shrink(cut)) {
		return false;
	}
	osm_index_remove(x);
	t->size -= cut;
	__atomic_store_n(&osm_heap.end, osm_heap.end - cut, __ATOMIC_RELEASE);
	if (osm_heap.touched > osm_heap.end)
		osm_heap.touched = osm_heap.end; /* the pages above are gone: a regrown break faults them in afresh */
	osm_index_insert(x);
	osm_heap.count.trims++;
	if (TRACING) {
		osm_trace_event("  brk -%z", cut);
		osm_trace_event("  trim %p %z", t, t->size);
	}
	return true;
}

/* The whole pages of free block b past its first `keep` payload bytes go back to the kernel. The header stays; the
 * kernel may drop the pages after it (the index lives in side storage). */
static size_t discard_past(struct block_meta *b, size_t keep, bool *released)
{
	osm_check_free_block(b); /* its size bounds the madvise: one the program overwrote wiped the next block */
	uintptr_t from = round_up((uintptr_t)payload(b) + keep, page_size());
	uintptr_t to = round_down((uintptr_t)block_end(b), page_size());
	if (to <= from)
		return 0;
	if (!osm_os_discard((void *)from, to - from))
		return 0; /* locked pages (mlock, mlockall) refuse it and keep their bytes: nothing went back */
	if (TRACING)
		osm_trace_event("  madvise %p %z", (void *)from, (size_t)(to - from));
	*released = true;
	return (size_t)(to - from);
}

static bool discard_free_pages(struct block_meta *b, void *released)
{
	discard_past(b, 0, released);
	return true;
}

static bool mapcache_empty(void);

/* The kept mappings, and the free top of the heap beyond pad: what malloc_trim and a refused request's retry
 * share. True when anything went back. */
static bool trim_kept_and_top(size_t pad)
{
	bool released = mapcache_empty();
	if (!osm_heap.head || osm_heap.classic)
		return released;
	coalesce_blocks();
	osm_heap.trim_since = 0;
	return trim_top(pad) || released;
}

/* The classic profile never gives memory back (docs/CLASSIC.md: the break never shrinks, freed bytes stay as they
 * were): malloc_trim there returns 0 and changes nothing. The default profile's kept mappings go back too, and the
 * pages of its free blocks. */
bool osm_trim(size_t pad)
{
	bool released = trim_kept_and_top(pad);
	if (osm_heap.head && !osm_heap.classic)
		osm_index_walk(discard_free_pages, &released);
	return released;
}

/* Out of memory (medium.c, osm_front_reclaim, before its one retry): what a refused request can use at once, the
 * free top waiting for its lazy trim and the kept mappings. Not the free blocks' pages, as osm_trim gives: madvise
 * frees no address space (RLIMIT_AS, RLIMIT_DATA), and done at every failure it walked them all each time and said
 * something went back, so every failure was tried twice (a review: 20,000 failed requests beside 100 free holes,
 * 1.91 s and 100 madvise calls each, where they took 0.02 s; growth/failed_requests_make_no_madvise). True when
 * anything went back. */
bool osm_trim_for_retry(void)
{
	return trim_kept_and_top(0);
}

// ------------------------------------------------------------------
// Best fit, split, coalesce (the seed's helpers)
// ------------------------------------------------------------------

/* The reference best fit: the smallest free block >= size, lowest address first. O(n): tests and the
 * benchmark compare the index against it. */
struct block_meta *find_best_block(size_t size)
{
	struct block_meta *best = NULL;
	for (struct block_meta *b = osm_heap.head; b; b = osm_walk_next(b))
		if (b->status == STATUS_FREE && b->size >= size && (!best || b->size < best->size))
			best = b;
	return best;
}

static struct block_meta *pick_best_block(size_t size)
{
	if (osm_heap.unslotted)
		return find_best_block(size); /* some free blocks are in no index: the seed's walk sees them all */
	switch (osm_heap.bestfit) {
	case BESTFIT_WALK:
		return find_best_block(size);
	case BESTFIT_VERIFY: {
		struct block_meta *walk = find_best_block(size), *idx = osm_index_best_fit(size);
		if (walk != idx) {
			osm_os_write_err("osmem: best fit mismatch between the index and the reference walk\n");
			__builtin_trap();
		}
		return idx;
	}
	default:
		return osm_index_best_fit(size);
	}
}

/* A header is about to be written at h: when h's page lies at or past the frontier of pages written so far (the
 * break's memory is handed out upwards), the default profile faults it in with one system call first. On this
 * machine a first-touch page fault costs about 12 us; MADV_POPULATE_WRITE of one page 2-3 us, and the first write
 * after it another 4-6 us (bench/fault_cost; session 20). This write is made under the heap lock, where every
 * other thread that wants the core waits for it: threads-8 (8 threads on 2 cores) took 0.944 of its time (9
 * paired runs). Only the header's own page, which the write would fault in anyway: the pages a block spans are
 * the program's to touch or not (populating 64 KiB ahead of each split took threads-8 from 37 to 60 MiB, its
 * blocks being touched at their ends only). Below the frontier, pages a trim or a decay gave back fault as usual.
 * Not where the heap is advised for huge pages (huge.c): there one fault brings in 2 MiB, and a populate per 4 KiB
 * of it was a system call each for nothing, which also made the huge fault dearer: frag 0.69 s without the
 * populates, 1.71 s with them (7 interleaved runs, session 24; glibc 1.29).
 * And only where faults are dear: at the 64th fresh header page huge.c's probe times a few first touches
 * (osm_huge_faults_dear); under 4 us (session 24's host: 1.5 us, where a populate cost 2.2-3 us) the populates
 * stop and the header's write takes its own fault: frag 1.19 -> 1.12 s without huge pages there. */
#define PREFAULT_PROBE_AT 64
static inline void prefault(const void *h)
{
	char *pg = (char *)round_down((uintptr_t)h, page_size());
	if (!osm_heap.policy.prefault || pg < osm_heap.touched)
		return;
	osm_heap.touched = pg + page_size();
	if (osm_huge_heap_advised(pg))
		return;
	/* from the 64th on, not at it alone: a probe that could not measure (its mapping refused) is made again a
	 * second later, where one refusal kept the populates for good (session 61's review) */
	if (++osm_heap.prefaults >= PREFAULT_PROBE_AT && !osm_huge_faults_dear()) {
		osm_heap.policy.prefault = false; /* faults are cheap here: the write's own fault is cheaper */
		return;
	}
	osm_os_populate(pg, page_size());
}

/* split_blocks' cut, the rest not yet free: the rest's header, or NULL when b stays whole. */
static struct block_meta *split_rest(struct block_meta *b, size_t size)
{
	if (b->size - size < META_SIZE + osm_heap.policy.align)
		return NULL;
	struct block_meta *r = (struct block_meta *)((char *)b + META_SIZE + size);
	prefault(r);
	r->size = b->size - size - META_SIZE;
	b->size = size;
	stamp_block(b);
	list_insert_after(b, r);
	osm_heap.count.splits++;
	if (TRACING)
		osm_trace_event("  split %p %z %p %z", b, b->size, r, r->size);
	return r;
}

/* Cuts b down to size when what is left can hold a header and a granule (40 bytes in the classic API);
 * the rest becomes a free block right after it. */
void split_blocks(struct block_meta *b, size_t size, bool to_index)
{
	struct block_meta *r = split_rest(b, size);
	if (r)
		free_attach(r, to_index);
}

/* The first block of b's run of adjacent free blocks, merged with the rest of the run, in the index. */
static void merge_run(struct block_meta *b)
{
	osm_check_free_block(b);
	while (b->prev && b->prev->status == STATUS_FREE && adjacent(b->prev, b)) {
		b = b->prev;
		osm_check_free_block(b);
	}
	free_detach(b);
	while (is_free_neighbour(b, b->next))
		absorb_next(b);
	free_insert(b, true);
}

/* Merges every run of adjacent free blocks. Runs can only have formed around pending blocks, so only their
 * runs are visited: each block is merged away at most once. While some free block has no slot (the classic
 * side storage is full), the seed's full pass runs instead: it sees every free block. */
void coalesce_blocks(void)
{
	if (osm_heap.unslotted) {
		for (struct block_meta *b = osm_heap.head; b; b = osm_walk_next(b))
			if (b->status == STATUS_FREE && (is_free_neighbour(b, b->next) || block_tag(b) == TAG_NOSLOT ||
							 !(slot_at(free_slot(b))->blk & SLOT_TREE)))
				merge_run(b);
		return;
	}
	while (osm_heap.pending)
		merge_run(slot_block(osm_heap.pending));
}

// ------------------------------------------------------------------
// Trimming the top, lazily (default profile)
// ------------------------------------------------------------------

/* A free top larger than the trim threshold goes back to the kernel once it has been waiting for TRIM_DELAY_NS,
 * and then only what the program did not use meanwhile, not at the free that made it: a program whose heap swings
 * (large: blocks of 64 KiB to 4 MiB replaced at random, the top freed and taken again every few operations)
 * otherwise hands the top back and faults it in again at the next swing (session 25, 11 interleaved runs,
 * `/usr/bin/time`): trimmed at once, large made 37,600 page faults and took 0.170 s; with the delay 32,400 and
 * 0.160 s (mimalloc 32,900 and 0.140 s), mixed-realloc 43,300 -> 39,900 faults. The price is the path the heap
 * takes: large's peak RSS 106 -> 113 MiB at the benchmark's seed, +1.6% on average over eight seeds (from -6% to
 * +7% a seed). The adaptive trim threshold (trim_regrown) alone let large trim three times a run. DEVELOPERS.md:
 * memory goes back lazily, in batches.
 * The wait: the first free or core allocation that finds the top above the threshold starts it (trim_since) and
 * sets the high-water mark (trim_high) at the top's start; every block taken from the heap meanwhile (take_block)
 * and every realloc grown in place (trim_used) raises the mark to its end. When the delay is over, the next free
 * or core allocation trims the top above the mark (and at least trim_keep stays): the pages the program used
 * during the wait stay, the ones it did not go back. A top that falls below the threshold ends the wait. A light
 * load at the top's start (a 100 KB block taken and freed every 20 ms under a 52 MB free top) therefore does not
 * keep the rest forever, as a wait that restarted at every use did (the review of session 25). Cost: a clock
 * read per free or core allocation while a top waits; a compare per heap allocation. A program that makes no
 * call that reaches the core keeps a waiting top until it does (as mimalloc's and jemalloc's delayed purges).
 * A program that set a threshold itself (mallopt M_TRIM_THRESHOLD, M_TOP_PAD, ...) gets glibc's rule, the trim
 * at the free: it asked for that. malloc_trim trims at once, whatever waits. */
#define TRIM_DELAY_NS 100000000ull /* 100 ms */

/* A heap block now reaches up to end: the wait's high-water mark follows. */
static inline void trim_used(const char *end)
{
	if (osm_heap.trim_since && end > osm_heap.trim_high)
		osm_heap.trim_high = end;
}

/* The free top t begins its wait now (trim_due). */
static __attribute__((noinline)) void trim_wait_begin(struct block_meta *t, uint64_t now)
{
	osm_heap.trim_since = now | 1; /* never 0: 0 is "no wait" */
	osm_heap.trim_high = payload(t);
	if (TRACING)
		osm_trace_event("  trim_wait %p %z", t, t->size);
}

static void trim_due(void)
{
	struct block_meta *t = osm_heap.tail;
	struct heap_policy *p = &osm_heap.policy;
	if (!p->trim_threshold || !t || t->status != STATUS_FREE || t->size <= p->trim_threshold) {
		osm_heap.trim_since = 0;
		return;
	}
	if (p->fixed_threshold) {
		if (trim_top(p->trim_keep))
			osm_heap.trim_watch = true;
		return;
	}
	/* the coarse clock, for a 100 ms wait: the precise one cost 25-45 ns a call here (perf: 8% of a churn of
	 * 70-200 KB blocks). It reads the same tick many times, so trim_since (now | 1) can lie 1 ns ahead of now:
	 * signed, or the wait would end at once */
	uint64_t now = osm_os_coarse_ns();
	char *from = payload(t);
	if (!osm_heap.trim_since) {
		trim_wait_begin(t, now);
		return;
	}
	if ((int64_t)(now - osm_heap.trim_since) < (int64_t)TRIM_DELAY_NS)
		return;
	size_t keep = p->trim_keep;
	if (osm_heap.trim_high > from && (size_t)(osm_heap.trim_high - from) > keep)
		keep = (size_t)(osm_heap.trim_high - from); /* used during the wait: stays */
	osm_heap.trim_since = 0;
	if (!trim_top(keep))
		return;
	osm_heap.trim_watch = true;
	/* what the program used during the wait stayed: a top still above the threshold begins another wait at once,
	 * for the allocations that reach the core, which start none (alloc_block calls here only during a wait) */
	if (t->size > p->trim_threshold)
		trim_wait_begin(t, now);
}

// ------------------------------------------------------------------
// Decay: big free blocks that stay idle go back (default profile; one thread: after a second)
// ------------------------------------------------------------------

/* One heap serves every thread and shrinks only at its top, so a big block one thread frees below another
 * thread's blocks stays resident as a hole until a request that size comes; glibc's per-thread arenas each trim
 * their own top. So, with a second thread, a free block of DECAY_MIN or more that was already free decay_ns ago
 * (10 ms at first; it adapts, below; one thread: DECAY_NS_ALONE) and has not been used since hands its pages
 * back (madvise, its header page kept): lazily, in one pass over the index's large end at most every decay_ns,
 * from the frees and allocations that reach the core (decay_tick), and from one in FRONT_TICK of the frees the
 * front's caches take (osm_heap_idle_tick). A block freed and asked for again at once is never touched (a loop of malloc, memset and
 * free of 3 MiB in two threads costs no page fault), one left idle costs a fault per page if it is used again
 * later. python3's four threads: peak RSS 1.29x glibc's before.
 * The first DECAY_KEEP bytes of the block stay: a request that reuses a free block takes its front (best fit
 * splits there), so the program's next buffer of up to 1 MiB (python3's zlib states and blobs, every few ms)
 * finds its pages resident, and only what lies beyond goes back. Giving back whole blocks, python3 faulted in
 * 30,800 pages to glibc's 24,400 and took 1.34 s to its 1.29; keeping the first 1 MiB: 23,600 faults and 1.29 s,
 * for 1.7 MiB more at its peak (65.9 MiB; glibc 56.9, osmem without the decay 73.6). 15 runs each, session 15.
 * How "free at the last pass and not used since" is known without side storage: the pass writes a tag (the
 * block's address, the pass number and the process key, multiplied) into the free block's first payload word;
 * the next pass finds it there only if the block was neither used nor merged away in between (a merged block has
 * another header, a used one was written to, or at worst is discarded once more while free).
 * The delay adapts (session 22), as the trim threshold does (trim_regrown): a block given back and taken again by
 * a request past its kept front within DECAY_REUSE_NS was given back too soon (its pages fault in again, about
 * 20 us each on this machine), and the delay doubles, up to DECAY_NS_MAX. The give-back writes its time into the
 * block's second payload word, which heap_fit reads when it takes a block so tagged (decay_reused). python3's bz2
 * and zlib buffers come back every few tens of milliseconds: at a fixed 10 ms, 23,400 page faults and 1.019 of
 * glibc's time; adapting (the delay reaches 160 ms), 20,300 and 0.978, and PYTHONMALLOC=malloc 0.929 -> 0.891
 * (15 and 11 interleaved runs); the cost is peak RSS, 60.9 -> 67.3 MiB (glibc 56.6; jemalloc 74). A program that
 * frees a big block for good still gets its pages back 10 ms later, until a reuse has doubled the delay: it never
 * shrinks again, as glibc's dynamic thresholds never come down. */
/* DECAY_MIN and DECAY_KEEP are defined before absorb_next, which reads them. */
/* Where a page fault is cheap (huge.c's probe, osm_huge_faults_dear: under 4 us; 1.5-2 us on the hosts of sessions
 * 24-26), the numbers above buy little: they were set where a fault cost 10-20 us. There the decay keeps 256 KiB of
 * a block's front and its delay stays at 10 ms (decay_reused): python3 (11 interleaved runs, session 26) 67.9 ->
 * 59.6 MiB at its peak (glibc 57.1), 20,200 -> 27,100 page faults (glibc 24,400), 0.993 -> 1.021 of glibc's time;
 * PYTHONMALLOC=malloc 69.0 -> 60.5 MiB (glibc 63.6), 0.974 -> 0.960 of glibc's time. The 256 KiB alone, with the
 * doubling: 68.1 MiB, nothing gained; no doubling with 1 MiB kept: 62.6. growth/cheap_faults/... */
/* DECAY_KEEP_CHEAP: before absorb_next. */
#define DECAY_NS_MIN   10000000ull   /* 10 ms */
#define DECAY_NS_MAX   1280000000ull /* 1.28 s: seven doublings */
#define DECAY_REUSE_NS 1000000000ull /* a block taken again within 1 s of its give-back was given back too soon */
static uint64_t decay_last_ns, decay_pass = 1; /* pass 0: the tag of a block already given back */
static uint64_t decay_ns = DECAY_NS_MIN;

static uint64_t decay_tag(const struct block_meta *b, uint64_t pass)
{
	return ((uint64_t)(uintptr_t)b ^ (pass * 0x9E3779B97F4A7C15ull)) * (osm_heap.key | 1);
}

/* The front of a block the decay keeps resident: DECAY_KEEP, or DECAY_KEEP_CHEAP where faults are cheap. The
 * probe runs once, at the first call (a mapping of 16 pages and their faults). */
static size_t decay_keep(void)
{
	return osm_huge_faults_dear() ? DECAY_KEEP : DECAY_KEEP_CHEAP;
}

/* A free block `to` made of memory of the free block `from` (its rest after a split, or what it merged into)
 * takes from's age in the decay: w, from's first two payload words as they were, says whether the last pass or
 * the one before found it free (its tag) or whether a pass gave it back (tag 0, and when, in w[1]). The rest of a
 * split block given back stays given back (its resident part lies within the front that block kept); a merged
 * one is told the last pass found it idle, so that the next pass gives back all but its front again: the small
 * block in front of it was just used, and only within that front. Cost: up to three multiplies, on the splits of
 * blocks of DECAY_MIN or more and on the merges of a small block with a larger one. */
static void decay_carry(const struct block_meta *from, const uint64_t w[2], struct block_meta *to, bool merged)
{
	uint64_t pass, *tw = (uint64_t *)payload(to);
	if (w[0] == decay_tag(from, decay_pass))
		pass = decay_pass;
	else if (w[0] == decay_tag(from, decay_pass - 1))
		pass = decay_pass - 1;
	else if (w[0] == decay_tag(from, 0))
		pass = merged ? decay_pass - 1 : 0;
	else
		return;
	tw[0] = decay_tag(to, pass);
	if (!pass)
		tw[1] = w[1];
}

static bool decay_visit(struct block_meta *b, void *arg)
{
	uint64_t *w = (uint64_t *)payload(b);
	if (w[0] == decay_tag(b, decay_pass - 1)) { /* free at the last pass, and untouched since: all but its front */
		osm_heap.count.decayed_bytes += discard_past(b, decay_keep(), arg);
		w[0] = decay_tag(b, 0);
		w[1] = decay_last_ns; /* when: read by decay_reused (the word lies in the kept front) */
	} else if (w[0] != decay_tag(b, 0)) {
		w[0] = decay_tag(b, decay_pass);
	}
	return true;
}

/* heap_fit takes b for a request of s bytes: when b is a block the decay gave back, s reaches past its kept front
 * (so its pages fault in again), and that within DECAY_REUSE_NS of the give-back, the delay doubles, unless
 * faults are cheap here (then it never doubles: DECAY_KEEP_CHEAP). Cost: a compare of s, on heap_fit's path; a
 * load of the block's first word for one above 1 MiB; a clock read only for a block so tagged. The probe's
 * verdict is asked last: the give-back that tagged the block took it already (decay_keep), so a process whose
 * blocks the decay never gave back makes no probe here. */
static void decay_reused(const struct block_meta *b, size_t s)
{
	if (s <= DECAY_KEEP || osm_heap.classic || decay_ns >= DECAY_NS_MAX)
		return;
	uint64_t *w = (uint64_t *)payload((struct block_meta *)b);
	/* read by a write that changes nothing (lock xadd of 0): take_block_from's store follows, and a plain read of a
	 * page never touched would map the zero page for that store to copy (take_block_from says why that is dear) */
	if (__atomic_fetch_add(&w[0], 0, __ATOMIC_RELAXED) != decay_tag(b, 0) ||
	    osm_os_now_ns() - w[1] >= DECAY_REUSE_NS || !osm_huge_faults_dear())
		return;
	__atomic_store_n(&decay_ns, decay_ns * 2, __ATOMIC_RELAXED);
	if (TRACING)
		osm_trace_event("  decay_ns %z", (size_t)decay_ns);
}

// ------------------------------------------------------------------
// Idle holes: smaller free blocks that stay idle go back too (default profile; after 5 to 10 s)
// ------------------------------------------------------------------

/* The decay above takes blocks of DECAY_MIN (1 MiB) or more. A program whose working set shrank (a server after a
 * peak, a build that freed its tables) leaves its heap holed: its frees coalesce into free blocks of tens of KiB
 * between the blocks still live, which only a request of their size reuses. They stayed resident for good: 512 MiB
 * of 16 B..16 KiB objects, 90% freed at random, then 12 s of light use, kept 529 MiB resident (glibc 518,
 * mimalloc 560, tcmalloc 569; jemalloc, whose dirty pages decay over 10 s, 137; /tmp programs of session 63,
 * docs/TRADEOFFS.md). So a sweep, every idle_ns (5 s; OSMEM_IDLE_MS), visits the free blocks of IDLE_MIN to
 * DECAY_MIN in the heap's order and tags each with the sweep's number, as the decay tags its blocks (the first
 * payload word; a merge clears it, and take_block clears it in a block it hands out); a block that still holds the
 * last sweep's tag was neither used nor merged for a whole period, and its whole pages past the tag go back
 * (madvise). The next sweep begins a period after the last one ended (not began: a sweep that outlasted its period,
 * few calls reaching the core, was followed at once by the next, which gave back holes tagged right after their
 * last change; session 64's review, idle/hole_kept_a_period_after_a_long_sweep).
 * So a hole goes back 5 to 10 s after it last changed, and one that changes more often never does: the benchmark's
 * workloads, which reuse their holes within milliseconds and end within seconds, make the same page faults as
 * before. (The rest of a split made at the same address as the last sweep's rest holds that rest's tag; it is
 * free, and goes back a period early.)
 * The sweep walks the heap's list (checked links, osm_walk_next) IDLE_BATCH headers at each tick (at the frees and
 * allocations that reach the core, and at the front's ticks, osm_heap_idle_tick), giving back at most
 * IDLE_DISCARDS blocks, from where it stopped: no call waits on a walk of every block. A walk of the best-fit
 * index in its order, splaying each block it visited, left the tree a chain, and the next sweep's first step
 * walked all of it: 66,000 steps and 10-13 ms in one call with 500,000 holes (the review of session 63). Where the
 * heap is advised for huge pages nothing goes back: a hole is smaller than a huge page, a discard inside one breaks
 * it up, and the kernel's khugepaged fills it in again (the same review: 207 MB to 35 and back to 208 in 130 s).
 * Not in the classic profile, whose freed bytes stay as they were. */
#define IDLE_BATCH      256
#define IDLE_DISCARDS   32
#define IDLE_NS_DEFAULT 5000000000ull
static uint64_t idle_ns = IDLE_NS_DEFAULT; /* 0: never (OSMEM_IDLE_MS=0); set at osm_init */
/* When the next sweep begins: 0 while one is under way, UINT64_MAX when there is none (the classic profile, or
 * OSMEM_IDLE_MS=0): idle_due is one compare */
static uint64_t idle_next_ns = UINT64_MAX;
static uint64_t idle_pass = 1;
/* idle_at: the next block the sweep looks at (declared above absorb_next, which moves it off a block it merges) */

/* The decay's tag with passes of their own (bit 62), so that neither mistakes the other's for its own. */
static uint64_t idle_tag(const struct block_meta *b, uint64_t pass)
{
	return decay_tag(b, pass | (uint64_t)1 << 62);
}

/* A sweep is under way, or one is due at `now`. An atomic load: osm_heap_idle_tick asks without the lock. */
static inline bool idle_due(uint64_t now)
{
	return now >= __atomic_load_n(&idle_next_ns, __ATOMIC_RELAXED);
}

/* A step of the sweep, a new one begun when due. Heap lock held. Cost: IDLE_BATCH header loads (and their links
 * checked), a load of a free block's first payload word, and a madvise for each block that goes back. */
static __attribute__((noinline)) void idle_step(uint64_t now)
{
	if (idle_next_ns) { /* a sweep begins */
		__atomic_store_n(&idle_next_ns, 0, __ATOMIC_RELAXED);
		idle_pass++;
		idle_at = osm_heap.head;
	}
	bool released = false;
	size_t discards = 0;
	for (size_t k = 0; k < IDLE_BATCH && idle_at && discards < IDLE_DISCARDS; k++) {
		struct block_meta *b = idle_at;
		idle_at = osm_walk_next(b);
		if (b->status != STATUS_FREE || b->size < IDLE_MIN || b->size >= DECAY_MIN || osm_huge_heap_advised(b))
			continue;
		/* a block that reads free is one before its payload is written: an allocated block whose status the
		 * program overwrote had its first word tagged, then its pages given back (found by session 68's fuzzing:
		 * fuzz_corrupt's silent class; idle/corrupted_status_reported) */
		osm_check_free_block(b);
		uint64_t *w = (uint64_t *)payload(b);
		if (w[0] == idle_tag(b, idle_pass - 1)) { /* tagged by the last sweep, untouched since */
			osm_heap.count.decayed_bytes += discard_past(b, sizeof w[0], &released);
			w[0] = idle_tag(b, 0);
			discards++;
		} else if (w[0] != idle_tag(b, 0)) {
			w[0] = idle_tag(b, idle_pass);
		}
	}
	/* done: the next one a period after this one ended, not began. A sweep that outlasted the period (few calls
	 * reach the core) was followed at once by the next, which gave back the holes the last one had tagged right
	 * after their last change, a few milliseconds later (idle/hole_kept_a_period_after_a_long_sweep): a hole is
	 * seen unchanged a whole period apart only if the next sweep begins a period after the last one's last visit */
	if (!idle_at)
		__atomic_store_n(&idle_next_ns, now + idle_ns, __ATOMIC_RELAXED);
}

/* A sweep is under way: background.c's wake carries it on (front.c, osm_front_background_tick), since an idle
 * process makes no call that would. An atomic load. */
bool osm_heap_idle_sweeping(void)
{
	return __atomic_load_n(&idle_next_ns, __ATOMIC_RELAXED) == 0;
}

/* OSMEM_IDLE_MS: the sweep's period in milliseconds (0: no sweep), read at the heap's start (default profile).
 * Anything else is said once, and the default holds. */
static ONCE_PATH void idle_env(void)
{
	const char *v = osm_os_getenv("OSMEM_IDLE_MS");
	size_t ms;
	if (v && *v && osm_os_parse_count(v, &ms) && ms <= 86400000) {
		idle_ns = (uint64_t)ms * 1000000;
	} else if (v && *v) {
		osm_os_write_err("osmem: OSMEM_IDLE_MS=");
		osm_os_write_err(v);
		osm_os_write_err(" is not understood (milliseconds, 0 to 86400000; 0: never); using 5000\n");
	}
	/* the first sweep a period after the heap's start: a program that ends sooner never runs one */
	if (idle_ns)
		__atomic_store_n(&idle_next_ns, osm_os_coarse_ns() + idle_ns, __ATOMIC_RELAXED);
}

/* The one-thread rules below (the decay's second, the threshold's rise past THREADED_MAX, the mapping cache's four
 * slots and band, the top taken last) follow glibc's __libc_single_threaded, which pthread_create clears for good.
 * osmem's background thread (OSMEM_BACKGROUND=1, background.c) clears it from the library's constructor on, and a
 * program of one thread then ran by the threaded rules: large took 1.08 of its time and 141 MiB at its peak
 * instead of 108, mixed-realloc 1.13 of its time (session 73, bench/ab.py --env-b). That thread holds no block:
 * the heap still has one user. So the background thread names the program's thread before it starts
 * (osm_heap_alone_claim) and itself once it runs (osm_heap_alone_helper), and the rules stay the one-thread ones
 * until a third thread comes to them: then, as glibc's flag, for good (alone_tid 0). */
static int alone_tid;  /* the program's only thread while no other has come to the rules (0: no claim) */
static int helper_tid; /* the background thread's */

#ifdef OSMEM_DROPIN /* only background.c makes a claim; in libosmem.so alone_tid stays 0 */
void osm_heap_alone_claim(int program_tid)
{
	__atomic_store_n(&helper_tid, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&alone_tid, program_tid, __ATOMIC_RELAXED);
}

void osm_heap_alone_helper(int tid)
{
	__atomic_store_n(&helper_tid, tid, __ATOMIC_RELAXED);
}

/* A fork's child has its forking thread alone and no background thread: the child of a program whose claim held
 * keeps the one-thread rules under its own id (glibc's flag stays clear in it), and true; any other, false. */
bool osm_heap_alone_fork_child(void)
{
	__atomic_store_n(&helper_tid, 0, __ATOMIC_RELAXED);
	if (!__atomic_load_n(&alone_tid, __ATOMIC_RELAXED))
		return false;
	__atomic_store_n(&alone_tid, osm_lock_self_id(), __ATOMIC_RELAXED);
	return true;
}
#endif

/* A claim holds: the calling thread is the program's or the helper; any other ends it. Cost: a kernel id read
 * from thread-local storage and two compares, only where a claim was made. */
static __attribute__((noinline)) bool alone_check(void)
{
	int a = __atomic_load_n(&alone_tid, __ATOMIC_RELAXED), me = osm_lock_self_id();
	if (a && (me == a || me == __atomic_load_n(&helper_tid, __ATOMIC_RELAXED)))
		return true;
	__atomic_store_n(&alone_tid, 0, __ATOMIC_RELAXED);
	return false;
}

/* Whether the heap has one user thread (the rules below). Cost: glibc's flag, and where it is clear a load of
 * alone_tid (0 unless the background thread runs). */
static inline bool one_thread(void)
{
	return osm_os_single_threaded() || (__atomic_load_n(&alone_tid, __ATOMIC_RELAXED) && alone_check());
}

/* One thread: a pass at most every DECAY_NS_ALONE. Its heap has no other thread's blocks above a hole, but it
 * has its own medium cache's: a program that builds a structure of medium blocks and frees it all (a phase over)
 * leaves the blocks its cache keeps last at the top of the heap, above everything it freed, which the trim
 * (trim_due) therefore never reaches. glibc, whose caches take no block above 1 KiB, trimmed all of it: 20,000
 * blocks of 5000 bytes freed kept 100 MiB resident until exit, glibc 1 (growth/one_thread_idle_heap_given_back).
 * A second, not the threads' 10 ms: a block idle that long is a phase over, not a program between two uses of it
 * (the benchmark's single-threaded workloads, large, mixed-realloc and frag, reuse their holes within
 * milliseconds). jemalloc waits 10 s by default, mimalloc 10 ms. */
#define DECAY_NS_ALONE 1000000000ull

/* Whether a pass is due at `now`: decay_ns (one thread: DECAY_NS_ALONE or more) gone by since the last one.
 * Atomic loads: osm_heap_idle_tick asks without the lock (a stale answer costs a lock taken for nothing, or a pass
 * a tick later); both words are written under the lock. */
static bool decay_due(uint64_t now)
{
	uint64_t ns = __atomic_load_n(&decay_ns, __ATOMIC_RELAXED);
	uint64_t wait = one_thread() && ns < DECAY_NS_ALONE ? DECAY_NS_ALONE : ns;
	/* signed: the coarse clock may read behind the last pass */
	return (int64_t)(now - __atomic_load_n(&decay_last_ns, __ATOMIC_RELAXED)) >= (int64_t)wait;
}

/* From the free path and the allocations the core serves, and from the front's caches (osm_heap_idle_tick): a pass
 * when one is due. Cost otherwise: a read of the coarse clock (vDSO, about 5 ns; it lags by up to a tick, 4 ms,
 * against the 10 ms a pass waits at least) and a compare. Heap lock held. */
static void decay_tick(void)
{
	if (osm_heap.classic)
		return;
	uint64_t now = osm_os_coarse_ns();
	if (idle_due(now))
		idle_step(now);
	if (!decay_due(now))
		return;
	__atomic_store_n(&decay_last_ns, now, __ATOMIC_RELAXED);
	decay_pass++;
	bool released = false;
	osm_index_walk_from(DECAY_MIN, decay_visit, &released);
}

static bool mapcache_due(uint64_t now);
static void mapcache_expire(void);
static size_t mapcache_n;
static size_t mapcache_grows; /* kept mappings grown (mremap) to serve a request: osm_malloc_zero asks */

/* A program whose requests stopped reaching the core (it frees a structure, then lives on what its caches hold)
 * gave nothing back: the passes came only from the core's own frees and allocations. The front calls this every
 * FRONT_TICK frees its caches take (front.c, osm_front_tick), without a lock: a pass when one is due, the lock
 * taken only then (at most once a decay_ns, a second in a process of one thread). Cost otherwise: a coarse clock
 * read and a compare (growth/idle_heap_given_back_by_cache_hits). */
static inline __attribute__((always_inline)) void idle_tick(bool background)
{
	uint64_t now = osm_os_coarse_ns();
	if (osm_heap.classic || (!decay_due(now) && !mapcache_due(now) && !idle_due(now)))
		return;
	osm_lock();
	/* the name a report from the pass gives: it runs in a free, or in osmem's own thread */
	osm_set_op(background ? "background pass" : "free");
	if (background && TRACING)
		osm_trace_idle_begin();
	if (mapcache_n)
		mapcache_expire();
	decay_tick(); /* asks again, under the lock: another thread may have made the pass meanwhile */
	osm_unlock();
}

void osm_heap_idle_tick(void)
{
	idle_tick(false);
}

/* The same from background.c's thread, which makes no request: its decisions get a trace line of their own. */
void osm_heap_background_tick(void)
{
	idle_tick(true);
}

/* A heap block becomes free: merged at the next heap allocation (docs/CLASSIC.md), or at once in the default profile,
 * which may then give the top of the heap back, and the pages of big blocks left idle (decay_tick). */
static void release_block(struct block_meta *b)
{
	free_attach(b, false);
	if (TRACING)
		osm_trace_event("  free %p %z", b, b->size);
	if (osm_heap.policy.eager_coalesce) {
		coalesce_blocks();
		trim_due();
		decay_tick();
	}
}

// ------------------------------------------------------------------
// Mapped blocks
// ------------------------------------------------------------------

/* The most bytes of mapped blocks live at once since the mapping cache was last empty: what bounds the cache's
 * bytes (mapcache_budget). */
static size_t mapped_hwm;

static void mapped_link(struct block_meta *b)
{
	b->prev = NULL;
	b->next = osm_heap.mapped;
	if (b->next)
		b->next->prev = b;
	osm_heap.mapped = b;
	mark_alloc(b, STATUS_MAPPED);
	osm_mapset_add(b);
	osm_heap.count.mapped_bytes += b->size;
	osm_heap.count.mapped_count++;
	if (osm_heap.count.mapped_bytes > mapped_hwm)
		mapped_hwm = osm_heap.count.mapped_bytes;
	if (osm_heap.count.mapped_bytes > osm_heap.count.mapped_peak_bytes)
		osm_heap.count.mapped_peak_bytes = osm_heap.count.mapped_bytes;
	if (osm_heap.count.mapped_count > osm_heap.count.mapped_peak_count)
		osm_heap.count.mapped_peak_count = osm_heap.count.mapped_count;
	count_in_use();
}

/* A mapped header's list links, checked against the set of live mappings before they are followed. */
static bool mapped_links_ok(const struct block_meta *b)
{
	size_t sz;
	if (b->prev ? osm_mapset_find(b->prev, &sz) != MAPSET_LIVE || b->prev->next != b : osm_heap.mapped != b)
		return false;
	return !b->next || (osm_mapset_find(b->next, &sz) == MAPSET_LIVE && b->next->prev == b);
}

static void mapped_unlink(struct block_meta *b, bool unmapped)
{
	if (!mapped_links_ok(b))
		osm_fatal_block(b, "corrupted header");
	if (b->prev)
		b->prev->next = b->next;
	else
		osm_heap.mapped = b->next;
	if (b->next)
		b->next->prev = b->prev;
	osm_mapset_del(b, unmapped);
	/* every thread's osm_mapkeep entries are stale now: b may be one of them */
	__atomic_store_n(&osm_heap.mapped_gen, osm_heap.mapped_gen + 1, __ATOMIC_RELAXED);
	osm_heap.count.mapped_bytes -= b->size;
	osm_heap.count.mapped_count--;
}

static struct block_meta *map_block(size_t s)
{
	struct block_meta *b = osm_os_map(s + META_SIZE);
	if (!b)
		return NULL;
	b->size = s;
	mapped_link(b);
	osm_heap.count.allocations++;
	if (TRACING)
		osm_trace_event("  mmap %z %p", s + META_SIZE, b);
	return b;
}

/* A mapping starts at the page that holds its header (aligned blocks put the header inside that page). */
static void unmap_block(struct block_meta *b)
{
	char *start = (char *)round_down((uintptr_t)b, page_size());
	size_t len = (size_t)(block_end(b) - start);
	mapped_unlink(b, true);
	osm_os_unmap(start, len);
	if (TRACING)
		osm_trace_event("  munmap %p %z", b, len);
}

/* With a second thread the dynamic threshold rises no higher than THREADED_MAX for any request (heap_threshold),
 * and the mappings the program frees from that size up are kept (mapcache_min, mapcache_put). The threads share
 * one heap: a big block one thread frees leaves a hole that the others' smaller requests split at once, so its
 * next big request finds no hole that holds it and grows the heap past it, and the heap's span, resident, climbs
 * with every round. python3's churn (4 threads, each compressing with bz2, whose buffers are 3.6 MB) peaked at
 * 68-73 MiB with those buffers in the heap (the threshold at 4 MiB), glibc 58-60 (each thread has an arena of its
 * own, whose top they sit at and are trimmed from); with them in mappings of their own, kept at their free for the
 * next request they hold, 60-64 MiB and no more page faults (growth/big_blocks_keep_out_of_shared_heap). A cap
 * alone had been tried before: each big block mapped and faulted afresh (growth/threaded_big_block_reused). Cost:
 * a load of glibc's __libc_single_threaded where the core reads the threshold. One thread has the heap to itself
 * and keeps glibc's rule: large and mixed-realloc reuse their holes. */
#define THREADED_MAX ((size_t)1 << 20)

/* At the limit nothing more maps for its size; a threshold of 0 (strict mode: a mapping and its guard page, every
 * time; docs/STRICT.md) stays 0: from the heap, strict mode's guard page fell on the next block's header (a
 * review of session 62: strict/clean_mmap_max_keeps_guarded_mappings). Below the limit the threshold as set
 * (mallopt fixed it: no cap for threads). */
static __attribute__((noinline)) size_t threshold_at_limit(size_t threshold)
{
	return threshold && osm_heap.count.mapped_count >= osm_heap.policy.mmap_max ? SIZE_MAX : threshold;
}

/* The threshold a request of the default profile meets: threshold (the policy's) capped at THREADED_MAX once the
 * process has had a second thread, unless the program set it (mallopt) or strict mode asked for mappings (0).
 * With mallopt's M_MMAP_MAX n, once n mapped blocks are live nothing more is mapped for its size, as in glibc
 * (whose count of mappings meets the limit in sysmalloc); until session 62 osmem refused any n below 65536 (0
 * from mallopt). A set limit turns the dynamic threshold off, so raise_mmap_threshold never sees this. Cost: a
 * call (one copy for its five callers, out of the hot text's way) and a test of a policy field. */
static __attribute__((noinline)) size_t heap_threshold(size_t threshold)
{
	const struct heap_policy *p = &osm_heap.policy;
	if (__builtin_expect(p->mmap_max != 0, 0))
		return threshold_at_limit(threshold);
	return threshold > THREADED_MAX && !p->fixed_threshold && !one_thread() ? THREADED_MAX : threshold;
}

// ------------------------------------------------------------------
// The mapping cache (default profile): big mappings freed and asked for again
// ------------------------------------------------------------------

/* A block above MMAP_THRESHOLD_MAX always gets a mapping of its own: the dynamic threshold rises no higher. A
 * program that frees one and asks for another that size (a frame buffer per frame, an array temporary per
 * expression) would map it afresh and fault every page in again: 16,384 faults, about 22 ms here, per 64 MiB (glibc,
 * jemalloc and mimalloc do that; tcmalloc keeps the pages). So the default profile keeps up to mapcache_slots() such
 * mappings after their free, MAPCACHE_BYTES in all, and a big request takes the smallest that holds it, whose tail
 * beyond the request goes back (munmap: no page is touched), so that the block is the one a fresh mapping would
 * give; when none holds it, the longest grows to it (mapcache_grow), and a realloc's growth into these sizes takes
 * one that holds it, with room for one more doubling (regrow_kept): memory the program freed is used again before
 * any is mapped beside it. A kept mapping that no request took for MAPCACHE_NS goes back: lazily, at the next
 * request or free that reaches the core (one clock read while any is kept). malloc_trim gives them all back, and so
 * does a mapping the kernel refuses (map_big), before it is tried once more. calloc takes them too, and zeroes what
 * a freed block left there (osm_malloc_zero, zero_kept). Not once mallopt set a threshold (the program asked for
 * glibc's rules), nor in strict mode (strict.c relies on a freed block being unmapped), nor in the classic profile.
 * Aligned requests (up to a page) take them too. The trace says `keep`, `reuse`, `kept_grow` and `release`
 * (docs/TRACE.md). Costs: a free keeps a mapping with one clock read; a request scans at most MAPCACHE_SLOTS
 * entries. */
#define MAPCACHE_SLOTS 64
/* The newest big mapping handed out (map_big) and still live, when it was the longest handed out so far: what
 * tells a buffer grown by copy (a std::vector's push_back, a string's append: a new block twice the size, the old
 * one copied into it and freed) from a block freed to be asked for again (outgrown). Cleared at its free; moved
 * with it by remap_block. big_longest: the longest big block handed out since the cache was last empty (its
 * mappings unused for a second, or malloc_trim) or a request asked for under half of it: a growth's next round (a
 * vector built again from its first 32 MiB) starts a record of its own. */
static struct block_meta *newest_big;
static size_t newest_big_len, big_longest;
/* The shortest request a kept mapping was looked for since the cache was last empty: a tail shorter than that
 * serves none of the program's requests (mapcache_tail). */
static size_t big_shortest = SIZE_MAX;
/* The slots in use: 4 in a process of one thread, whose cache keeps mappings of 32 MiB up; MAPCACHE_SLOTS with a
 * second thread, whose cache keeps them from THREADED_MAX (1 MiB), where every block of that size has a mapping of
 * its own: two threads churning 64 live blocks of 1-8 MB, 256 bytes written in each, made a system call or two
 * under the lock at every request with four slots (a kept mapping grown by mremap, or a fresh mmap, and an munmap
 * of the one pushed out), 0.92 s where glibc's arenas take 0.21; with 16, 0.38 s, and 4,400 munmaps and 4,000
 * mremaps instead of 18,000 each per 100,000 requests (a review in session 60:
 * mapcache/threaded_churn_reuses_kept_mappings). 64 since session 65: threads whose buffers of 1-3 MB are written
 * whole and freed more than 16 at a time (python3's bytearrays in two threads) pushed the oldest kept mappings out
 * and mapped their next buffers afresh, every page faulted in again: 1.2-1.35x glibc's time and twice its page
 * faults; 0.92 of that time with 64 (12 paired runs; mapcache/threaded_burst_of_frees_kept). Bounded in bytes by
 * MAPCACHE_BYTES, and each goes back after a second unused, as with one thread. A request scans the slots in use:
 * 64 compares, for a block of a MiB or more. */
static size_t mapcache_slots(void)
{
	return one_thread() ? 4 : MAPCACHE_SLOTS;
}
#define MAPCACHE_MIN   MMAP_THRESHOLD_MAX      /* mappings this long or longer: no threshold takes them in */
#define MAPCACHE_BYTES ((size_t)1 << 30)
#define REGROW_KEEP    2                       /* a realloc's growth keeps up to twice its request (regrow_kept) */
/* What the cache may hold: twice the most mapped bytes the program had live at once since the cache was last empty,
 * and MAPCACHE_BYTES at most. A thread's temporary buffers of random sizes (64 KiB-8 MiB, a quarter written, one
 * live at a time) left 64 kept mappings and their tails, 121 MB, where one buffer is live: 31.6 MB resident and
 * 90,000 page faults where glibc takes 9.8 MB and 6,300; a buffer grown by realloc in a thread, read from a file of
 * random size up to 16 MiB, kept 64 of its final buffers, 736 MB resident against glibc's 34
 * (mapcache/kept_bytes_bounded_by_live_mapped). */
static size_t mapcache_budget(void)
{
	return 2 * mapped_hwm < MAPCACHE_BYTES ? 2 * mapped_hwm : MAPCACHE_BYTES;
}
/* The cache emptied (its mappings idle for a second, malloc_trim, ENOMEM): the records that steer it start over from
 * what is live now (outgrown's longest, mapcache_tail's shortest, mapcache_budget's high-water mark). */
static void mapcache_records_reset(void)
{
	big_longest = 0;
	big_shortest = SIZE_MAX;
	mapped_hwm = osm_heap.count.mapped_bytes;
}
#define MAPCACHE_NS    1000000000ull           /* 1 s unused: given back */
/* oldest first; in .lbss: 1.5 KiB that only programs with big blocks write (tests/malloc_front_footprint.c) */
/* tail: the mapping is the tail of a kept one that a request took the front of (mapcache_tail): the block freed
 * in front of it joins it (mapcache_put) */
static struct { char *start; size_t len; uint64_t when; bool tail; } mapcache[MAPCACHE_SLOTS] LARGE_BSS;
/* when the oldest kept mapping was kept (0: none), for osm_heap_idle_tick, which reads it without the lock */
static uint64_t mapcache_oldest;

static void mapcache_note_oldest(void)
{
	__atomic_store_n(&mapcache_oldest, mapcache_n ? mapcache[0].when : 0, __ATOMIC_RELAXED);
}

/* Whether the oldest kept mapping is due to go back at `now` (the coarse clock, which may read behind: then a
 * tick later). Without the lock. */
static bool mapcache_due(uint64_t now)
{
	uint64_t t = __atomic_load_n(&mapcache_oldest, __ATOMIC_RELAXED);
	return t && (int64_t)(now - t) >= (int64_t)MAPCACHE_NS;
}

/* The shortest mapping the mapping cache keeps (below): MAPCACHE_MIN, and THREADED_MAX with a second thread. */
static size_t mapcache_min(void)
{
	return one_thread() ? MAPCACHE_MIN : THREADED_MAX;
}

/* Entry i leaves the cache (the entries after it move down). */
static void mapcache_remove(size_t i)
{
	osm_heap.count.kept_maps--;
	osm_heap.count.kept_bytes -= mapcache[i].len;
	for (mapcache_n--; i < mapcache_n; i++)
		mapcache[i] = mapcache[i + 1];
	mapcache_note_oldest();
}

static void mapcache_release(size_t i)
{
	char *start = mapcache[i].start;
	size_t len = mapcache[i].len;
	mapcache_remove(i);
	osm_os_unmap(start, len);
	if (TRACING)
		osm_trace_event("  release %p %z", start, len);
}

/* Gives back what stayed unused for MAPCACHE_NS. Called with the lock held, by each request and free that reaches
 * the core while the cache holds any. */
static void mapcache_expire(void)
{
	uint64_t now = osm_os_coarse_ns();
	while (mapcache_n && now - mapcache[0].when >= MAPCACHE_NS)
		if (mapcache_release(0), !mapcache_n) /* the cache idled out: later requests start records of their own */
			mapcache_records_reset();
}

/* Every kept mapping goes back (malloc_trim, ENOMEM). Returns whether any did. Out of line: inlined into map_big,
 * it took 119 bytes of the hot text for a path only a process at its limits runs. */
static __attribute__((noinline)) bool mapcache_empty(void)
{
	bool any = mapcache_n != 0;
	while (mapcache_n)
		mapcache_release(0);
	mapcache_records_reset();
	return any;
}

static __attribute__((noinline)) void note_big(struct block_meta *b) /* out of line: map_big is hot */
{
	if (b->size < big_longest / 2)
		big_longest = 0; /* a request under half the record: a growth starting over (its next round) */
	newest_big = b->size > big_longest ? b : NULL;
	if (newest_big)
		newest_big_len = big_longest = b->size;
}

/* Whether mapped block b (len bytes of mapping, 32 MiB or more) was outgrown: the newest big mapping, taken after
 * it, still live, and longer than any before it, is half as long again or longer. Its copy is done, and the next
 * request of the growth is longer still: kept, b would sit resident beside the growing buffer for its second, to
 * serve only as the first part of the next one. A std::vector pushed to 30 M longs peaked at 369 MB (glibc 265):
 * its freed 128 MiB buffer kept while the 256 MiB one filled (mapcache/outgrown_buffer_not_kept). A loop of two
 * buffers (an input of 40 MiB, an output of 64) gives its first input back and keeps both from its second round
 * on: the output is no longer the longest yet (mapcache/loop_of_two_buffers_keeps_both). With threads the newest
 * may be another thread's, and a block so judged is mapped afresh at its next request, as glibc maps every one;
 * below 32 MiB, where threads keep their mappings from 1 MiB (mapcache_min), none is judged: random sizes of 1-8
 * MB in two threads would set records by the halving rule at every turn. Cost: a compare at a big free. */
static __attribute__((noinline)) bool outgrown(const struct block_meta *b, size_t len) /* out of line, as note_big */
{
	if (b == newest_big) {
		newest_big = NULL;
		return false;
	}
	bool out = newest_big_len >= len + len / 2 && len >= MAPCACHE_MIN;
	if (out && TRACING)
		osm_trace_event("  outgrown %p %z", b, len);
	return out;
}

/* Mapped block b is being freed (learn: by the program, not as the old block of a growth that moved): kept
 * (true), or the caller unmaps it. */
static bool mapcache_put(struct block_meta *b, bool learn)
{
	char *start = (char *)round_down((uintptr_t)b, page_size());
	size_t len = round_up((size_t)(block_end(b) - start), page_size());
	/* the old block of a growth that moved (learn false), from THREADED_MAX up, is not kept: its buffer outgrew
	 * it, and kept, the old blocks of four threads' doubling buffers (16 MiB each) pushed the 64 MiB their last
	 * rounds left out of the cache, to be faulted in again (vecgrow4: 158,000 page faults against 140,000) */
	size_t least = learn ? mapcache_min() : MAPCACHE_MIN;
	bool out = newest_big && outgrown(b, len);
	/* not longer than the budget (at most MAPCACHE_BYTES): the loop below would empty the cache and go on */
	size_t budget = mapcache_budget();
	if (!osm_heap.policy.map_cache || osm_heap.policy.fixed_threshold || len < least || len > budget || out)
		return false;
	mapped_unlink(b, true); /* a second free of it is a double free, as after munmap */
	while (mapcache_n >= mapcache_slots() || osm_heap.count.kept_bytes + len > budget)
		mapcache_release(0);
	if (TRACING)
		osm_trace_event("  keep %p %z", b, len);
	/* the kept tail this block was cut from joins it: one mapping again, which the next round's first big request
	 * takes and cuts, and its growth takes back in place (regrow_adjacent). Not any kept neighbour: mappings of
	 * their own, side by side, stay apart (the cache counts them, and mremap moves one mapping, not two) */
	for (size_t i = 0; i < mapcache_n; i++)
		if (mapcache[i].tail && mapcache[i].start == start + len) {
			len += mapcache[i].len;
			mapcache_remove(i); /* its bytes are counted again below, in len */
			if (TRACING)
				osm_trace_event("  kept_join %p %z", start, len);
			break;
		}
	mapcache[mapcache_n].start = start;
	mapcache[mapcache_n].len = len;
	mapcache[mapcache_n].tail = false;
	mapcache[mapcache_n++].when = osm_os_coarse_ns();
	mapcache_note_oldest();
	osm_heap.count.kept_maps++;
	osm_heap.count.kept_bytes += len;
	return true;
}

/* The block of s bytes in the mapping [start, start + len) that left the cache, its payload lead bytes in, or NULL
 * (the mapping went back: the caller maps afresh). The mapping is made readable and writable again first: a program
 * may have protected part of its block (a guard page under a stack or a buffer, mprotect's manual page) and freed
 * it so, which glibc's munmap at the free forgets and a kept mapping would hand the next request, calloc writing
 * its zeros into it (session 57's review of the large blocks; `mapcache/protected_kept_mapping_made_writable`).
 * One mprotect a reuse, about a microsecond, where the reuse saves a fault per page. */
static struct block_meta *mapcache_block(char *start, size_t len, bool aligned, size_t lead, size_t s)
{
	if (!osm_os_protect(start, len, true)) {
		osm_os_unmap(start, len);
		if (TRACING)
			osm_trace_event("  release %p %z", start, len);
		return NULL;
	}
	struct block_meta *b = (struct block_meta *)(start + lead - META_SIZE);
	/* the size map_block or map_aligned would give: malloc_usable_size and a sized delete see the same */
	b->size = aligned ? len - lead : s;
	mapped_link(b);
	osm_heap.count.allocations++;
	osm_heap.count.reused_maps++;
	if (TRACING)
		osm_trace_event("  reuse %p %z %z", b, b->size, len);
	return b;
}

/* The kept mapping i (shorter than the request: none holds it), grown to need bytes by mremap to serve a block of s
 * bytes whose payload lies lead bytes into it, or NULL (the caller maps afresh; i stays kept). Its pages stay
 * resident and only the growth faults in. A program whose big requests grow (a buffer per file read, each file
 * larger; 20 requests from 40 MiB up by a tenth each, every page written, then freed) otherwise mapped each afresh
 * beside the kept ones that could not hold it: 1,046 MB resident for a 246 MiB block, 1.57 s, where glibc
 * takes 252 MB and 1.10 s, tcmalloc (whose freed spans merge with the heap's growth) 260 MB and 0.29 s
 * (mapcache/growing_requests_grow_kept_mapping). */
/* A request of need bytes (from MAPCACHE_MIN up) that no kept mapping held grew the longest of them: in a process
 * of one thread, the other kept mappings shorter than it go back. The program's big blocks are growing past them,
 * and kept beside the grown one they stay resident while its new pages fault in: ImageMagick's convert (an image
 * resized, blurred and rotated: blocks of 32, 48, 72, 72 and 112 MB) kept a 72 MB mapping beside the 112 MB one
 * grown from the other, 40 MB above glibc's peak (mapcache/grown_request_drops_shorter_kept). Not with threads:
 * there the shorter ones are other threads' next blocks (patterns' callocbig4, four threads taking 40, 44 and 48
 * MiB in turn, took them again within milliseconds, and dropped they were faulted in again: 13% of its time; an
 * idle time of 50 ms before a drop spared it, but missed convert's, kept a few milliseconds before). Below
 * MAPCACHE_MIN (a threaded process's band of 1-32 MiB) nothing changes. */
static __attribute__((noinline)) void mapcache_drop_shorter(size_t need) /* out of line: mapcache_take is hot */
{
	if (need < MAPCACHE_MIN || !one_thread())
		return;
	for (size_t i = mapcache_n; i-- > 0;)
		if (mapcache[i].len < need && mapcache[i].len >= MAPCACHE_MIN)
			mapcache_release(i);
}

static struct block_meta *mapcache_grow(size_t i, bool aligned, size_t lead, size_t s, size_t need)
{
	if (i == SIZE_MAX)
		return NULL;
	char *start = osm_os_remap(mapcache[i].start, mapcache[i].len, need);
	if (!start)
		return NULL;
	if (TRACING)
		osm_trace_event("  kept_grow %p %z %p", mapcache[i].start, need, start);
	mapcache_grows++;
	mapcache_remove(i);
	mapcache_drop_shorter(need);
	return mapcache_block(start, need, aligned, lead, s);
}

/* Whether a request of s bytes that takes a kept mapping keeps it whole when it is at most REGROW_KEEP times its need
 * (the tail beyond is cut otherwise, mapcache_tail): with threads, from THREADED_MAX to MAPCACHE_MIN, the band of
 * sizes that the cache keeps only then. Blocks of random sizes there (a thread's buffers of 1-2 MiB, each written
 * and freed) took the smallest kept mapping that held them and gave its tail back, and the next larger request grew
 * a kept one by mremap into fresh pages: two threads of 2,000 such blocks each took 0.45 s and 176,000 page faults,
 * glibc 0.06 s and 4,100 (its arenas reuse the memory), 8 threads of 4-8 MiB 0.84 s against 0.19 (session 57's
 * review of the large blocks). Kept whole, the mappings settle at the largest sizes asked for. What it costs: a
 * block may hold up to twice its need (malloc_usable_size says so; osm_mapped_size_fits lets a sized delete of it
 * pass). Not below the band (a mapped request under a threshold mallopt set low): there an aligned medium request,
 * rounded up for the medium caches, took twice its rounded size from a kept tail, more than a sized delete of the
 * size asked allows (found by cxx/sized_aligned_delete_after_low_mmap_threshold once tails were kept, session 67). */
static bool kept_whole(size_t s)
{
	return s >= THREADED_MAX && s < MAPCACHE_MIN && !one_thread();
}

/* Not kept_whole(n) itself: a forked child of a threaded process has one thread again, and deletes what its parent's
 * threads allocated so. The payload starts at most a page into the mapping (an alignment up to a page; beyond it,
 * the cut leaves less). */
bool osm_mapped_size_fits(const struct block_meta *b, size_t n)
{
	return b->status == STATUS_MAPPED && n <= b->size && n < MAPCACHE_MIN &&
	       b->size <= REGROW_KEEP * round_up(n + page_size(), page_size());
}

/* The tail [start, start + len) of a kept mapping that a shorter request took: kept on its own, in the place its
 * age gives it (when: the mapping's), when it is long enough to be kept (mapcache_min) and to serve the shortest
 * request looked for (big_shortest; own: a shrunk block's own tail, kept for its growth whatever that is); else it
 * goes back (munmap).
 * A thread's buffer grown by copy, round after round (a std::vector built to 16 MiB and destroyed, 40 times), took
 * its first big request from the 8 MiB mapping the last round left, and its next from the 16 MiB one, cut each to
 * its size, and grew the cut mappings back by mremap into fresh pages: 179,000 page faults and 0.57 s where glibc's
 * arena reuses its memory, 16,200 and 0.18 s. Kept, the tails serve the next requests with their pages resident
 * (mapcache/cut_tail_serves_next_request). What it costs: the tail stays resident until a request takes it or its
 * second is up, as the whole mapping would have. Four threads that calloc 40, 44 and 48 MiB in turn (patterns'
 * callocbig4) kept their tails of 4-8 MiB, which none of their requests fits in, and peaked at 231 MB instead of 180:
 * hence big_shortest. The tail of a mapping a realloc's growth took too, since session 68: the buffer's next growths
 * take it in place (regrow_adjacent), and its free joins them again (mapcache_put). In session 67 such a tail went
 * back: a buffer doubled by realloc to 256 MiB, 8 rounds (patterns' vecgrow), grew by mremap out past it and kept its
 * old 64 MiB block beside it, 345 MB at its peak against glibc's 257 (272 with the tails going back, 0.74 s; 280 MB
 * and 0.18 s taken in place). */
static void mapcache_tail(char *start, size_t len, uint64_t when, bool own)
{
	if ((len < big_shortest && !own) || len < mapcache_min() || mapcache_n >= mapcache_slots() ||
	    osm_heap.count.kept_bytes + len > mapcache_budget()) {
		osm_os_unmap(start, len);
		if (TRACING)
			osm_trace_event("  release %p %z", start, len);
		return;
	}
	size_t i = mapcache_n;
	for (; i > 0 && mapcache[i - 1].when > when; i--)
		mapcache[i] = mapcache[i - 1];
	mapcache[i].start = start;
	mapcache[i].len = len;
	mapcache[i].when = when;
	mapcache[i].tail = true;
	mapcache_n++;
	mapcache_note_oldest();
	osm_heap.count.kept_maps++;
	osm_heap.count.kept_bytes += len;
	if (TRACING)
		osm_trace_event("  kept_tail %p %z", start, len);
}

/* A kept mapping for a block of s bytes whose payload is aligned to a (at most a page; the granule or less: a plain
 * request), or NULL. When none holds it, `grow` lets the longest shorter one grow to it (mapcache_grow). The
 * block starts in the mapping's first page, as map_block's and map_aligned's do. */
static struct block_meta *mapcache_take(size_t a, size_t s, bool grow)
{
	bool aligned = a > osm_heap.policy.align, wide = a > page_size();
	size_t lead = aligned && a > META_SIZE ? a : META_SIZE; /* the payload's offset from the mapping's start */
	size_t need = round_up(lead + s, page_size()), best = SIZE_MAX, shorter = SIZE_MAX, best_lead = lead;
	big_shortest = need < big_shortest ? need : big_shortest;
	for (size_t i = 0; i < mapcache_n; i++) {
		/* aligned beyond a page: the payload's offset in this mapping (whole pages before its header go back) */
		uintptr_t at = (uintptr_t)mapcache[i].start;
		size_t li = wide ? round_up(at + META_SIZE, a) - at : lead, ni = round_up(li + s, page_size());
		if (mapcache[i].len >= ni && (best == SIZE_MAX || mapcache[i].len < mapcache[best].len))
			best = i, best_lead = li;
		if (mapcache[i].len < need && (shorter == SIZE_MAX || mapcache[i].len > mapcache[shorter].len))
			shorter = i;
	}
	if (best == SIZE_MAX)
		return grow && !wide ? mapcache_grow(shorter, aligned, lead, s, need) : NULL;
	char *start = mapcache[best].start;
	size_t len = mapcache[best].len;
	uint64_t when = mapcache[best].when;
	mapcache_remove(best);
	if (wide) { /* the whole pages before the header's go back */
		size_t cut = round_down(best_lead - META_SIZE, page_size());
		if (cut) {
			osm_os_unmap(start, cut);
			if (TRACING) /* the kept mapping ends here (the heap map's reuse finds none at the new start) */
				osm_trace_event("  release %p %z", start, cut);
		}
		start += cut, len -= cut, lead = best_lead - cut;
		need = round_up(lead + s, page_size());
	}
	size_t keep = grow && !kept_whole(s) ? need : need * REGROW_KEEP;
	if (len <= keep)
		return mapcache_block(start, len, aligned || len > need, lead, s);
	/* the block is what a fresh mapping would be; the tail stays kept, or goes back (traced after the reuse) */
	struct block_meta *b = mapcache_block(start, keep, aligned || keep > need, lead, s);
	mapcache_tail(start + keep, len - keep, when, false);
	return b;
}

// ------------------------------------------------------------------
// Allocation
// ------------------------------------------------------------------

/* Heap blocks of PAGE_ROUND_MIN and up take whole pages, header included (default profile): blocks carved one
 * after the other then start at one offset of their pages, and a program that touches a word per page of them runs
 * faster. large (64 KiB-4 MiB blocks, a byte written and read per page of each): 0.18 -> 0.15 s (medians of 7
 * interleaved runs; user time 0.19 -> 0.15), mimalloc 0.14-0.15. Not from an alignment of the payloads as such:
 * aligned_alloc(4096) of the same sizes left 0.19 s of user time, and many small free blocks in front of the aligned
 * ones (/tmp/s62/large4.c, session 62). The cost is resident memory: the rest of the page a block ends in is left
 * unused when the next block's data would have filled it. From 64 KiB up, mixed-realloc (8 B-512 KiB, buffers grown
 * by realloc) peaked at 151 MB against 143-145; from 256 KiB up at 141 (large 108 against 110), with the same time:
 * a few KiB at most for a block of 256 KiB or more, under 1.6%. Only sparse access gains: the same program writing
 * its blocks whole (memset) took the same time either way (0.51-0.66 s against 0.53-0.64, 5 runs each), so this
 * is for programs that touch big blocks a page apart (large's pattern), not a general speed-up. Applied where a
 * block is carved (take_block), and
 * only as far as the free block chosen for s reaches: best fit is still for s, and a request of exactly a free
 * block's size takes that block. */
static __attribute__((noinline)) size_t page_round(const struct block_meta *b, size_t s)
{
	if (osm_heap.classic)
		return s;
	size_t r = round_up(s + META_SIZE, page_size()) - META_SIZE;
	return r < b->size ? r : b->size;
}

/* b, free and out of every structure (x 0), or in the index under slot x, serves s bytes. With x, the rest of a
 * split takes b's slot and its place in the index (osm_index_rekey). */
static struct block_meta *take_block_from(struct block_meta *b, size_t s, uint32_t x)
{
	if (s >= PAGE_ROUND_MIN)
		s = page_round(b, s);
	uint64_t w[2] = { 0, 0 };
	/* a block of a size the decay or the idle sweep tags (its first payload word): the tag stays with the free
	 * memory, not with the block handed out. Left there, a block the program freed without having written its first
	 * word read as given back already, and stayed resident for good (idle/hole_taken_whole_goes_back_again) */
	size_t before = b->size;
	bool tagged = !osm_heap.classic && before >= IDLE_MIN;
	if (tagged) {
		/* read by a write (xchg): a payload whose page the program never touched (a block carved at a page, its
		 * header at the end of the page before) took a read fault that mapped the zero page here, then a second
		 * fault for the store, whose copy of the zero page interrupts every other CPU running one of the
		 * program's threads to flush their TLBs (apis, aligned_alloc(4096) of 1-64 KiB in four threads: 9% of
		 * its time in those interrupts). A write faults the page in once, fresh and zeroed */
		w[0] = __atomic_exchange_n((uint64_t *)payload(b), 0, __ATOMIC_RELAXED);
		w[1] = ((const uint64_t *)payload(b))[1];
	}
	struct block_meta *r = split_rest(b, s); /* b has no free neighbour here: the rest goes straight to the index */
	if (x && r) {
		r->status = STATUS_FREE;
		set_block_tag(r, x);
		osm_index_rekey(x, r);
	} else if (x) {
		osm_index_remove(x);
		slot_release(x);
	} else if (r) {
		free_attach(r, true);
	}
	if (tagged && before >= DECAY_MIN + META_SIZE + s) /* a rest the decay visits is as idle as b was */
		decay_carry(b, w, b->next, false);
	trim_used(block_end(b));
	mark_alloc(b, STATUS_ALLOC);
	osm_heap.count.heap_in_use += b->size;
	osm_heap.count.allocations++;
	count_in_use();
	return b;
}

static struct block_meta *take_block(struct block_meta *b, size_t s)
{
	return take_block_from(b, s, 0);
}

/* A heap block of PAGE_ROUND_MIN or more that best fit takes from a hole starts at a page (default profile): free
 * block b, chosen for s bytes, whose header is not at a page's start, gives the bytes up to the next page back as a
 * free block of its own when it still holds s after them, and the block taken starts there. page_round's blocks tile
 * the heap a page at a time from where each starts, but a hole that smaller blocks left starts anywhere, and so did
 * the blocks carved from it and the holes they left: in a churn of 64 KiB-4 MiB blocks like large's, 36% of them sat
 * at the tiling's offset. A program that touches a big block a word per page (large's pattern) finds those words in
 * cache lines that the blocks before it at the same place touched; a block at another offset finds none. Measured on
 * an Intel host (session 74): large's writes to the blocks it reused took 67-75 ms, 38-45 with this (mimalloc, which
 * starts its large blocks at a page: 46-48); the whole run 0.73-0.75 of its time (8 pairs), peak RSS level (108.2 ->
 * 107.4-109.6 MiB). mixed-realloc's peak moved by -3.4 to +4.2 MiB over seven seeds of its generator (+2.9 at the
 * suite's; +0.7 by their mean, 0.5%): the placements differ, and the holes with them. The gap (at most a page less a
 * header) is a free block that small requests may take, in a page the block before it made resident. Not where the
 * break grows under the top (heap_alloc: the top's blocks tile already, and moving there cost mixed-realloc 3.5 MiB),
 * nor for aligned requests (aligned_fit, carve_aligned place their own). *x: b's index slot, or 0 when b is out of
 * every structure; the block returned is out of every structure. Traced as the request's `fit` of b, b's `split` at
 * the page, the gap's `free` and a `fit` of the rest. Cost: a mask of b's address; a split and an index rekey when the
 * block moves. */
static __attribute__((noinline)) struct block_meta *page_start(struct block_meta *b, size_t s, uint32_t *x)
{
	size_t gap = (size_t)(-(uintptr_t)b & (page_size() - 1));
	if (osm_heap.classic || !gap || gap < META_SIZE + osm_heap.policy.align || b->size < gap + s)
		return b;
	struct block_meta *nb = split_rest(b, gap - META_SIZE); /* the rest holds s: never NULL */
	nb->status = STATUS_FREE;
	if (*x)
		osm_index_rekey(*x, b); /* a smaller key at the same address: b keeps its slot */
	else
		free_attach(b, false);
	*x = 0;
	if (TRACING) {
		osm_trace_event("  free %p %z", b, b->size);
		osm_trace_event("  fit %p %z", nb, nb->size);
	}
	return nb;
}

/* The top is the last resort (default profile, one thread), as glibc's top chunk, which serves a request only when
 * no bin holds a chunk large enough. Best fit alone takes the free top whenever it is the smallest fit, and the top
 * is where the heap's pages past anything written so far lie: carving it faults fresh pages in while a larger hole
 * below it, resident and idle, waits for a request its size. large (64 KiB-4 MiB blocks replaced at random): 116
 * MB resident for a peak of 93.5 MB live, glibc 104; with the top last, 108 MB (5 runs, /usr/bin/time: 113.4 ->
 * 105.3 MiB, glibc 103.9) and 2,000 fewer page faults; mixed-realloc 142.8 -> 140.4 MiB. With a second thread the
 * decay hands an idle hole's pages back after 10 ms, so a hole is not resident memory going to waste, and a
 * request carving its front every few milliseconds would hide it from the decay (a merged block reads as used): it
 * stayed resident whole (growth/threaded_idle_block_given_back). One thread's decay waits a second, and its holes
 * stay resident meanwhile. The classic profile keeps docs/CLASSIC.md's rule: the smallest fit, top or not; so do the
 * seed's walk and its check against the index (BESTFIT_WALK, _VERIFY) and a heap with blocks outside the index.
 * Cost: when best fit lands on the top, one more search of the index (O(log n)) for the next larger key. */
static inline bool top_last(void)
{
	return !osm_heap.classic && osm_heap.bestfit == BESTFIT_INDEX && !osm_heap.unslotted &&
	       one_thread();
}

static struct block_meta *fit_below_top(struct block_meta *top)
{
	struct block_meta *o = osm_index_best_fit(top->size + 1); /* the smallest key above the top's own */
	if (!o)
		return top;
	if (TRACING)
		osm_trace_event("  top_last %p %z", top, top->size);
	return o;
}

/* A free heap block of at least s bytes, taken without growing the heap; NULL when none fits. The classic rules'
 * first step; the default profile also asks it first for a request at or above the mmap threshold (below 32 MiB), as
 * glibc takes its bins and top before sysmalloc maps: pages the heap already holds cost nothing to hand out, where a
 * fresh mapping costs two system calls and a page fault per page (about 1.35 us each here, more on a busy host).
 * node: a Buffer 1000 bytes larger than the last, each past the threshold the last one's free raised, was mapped
 * afresh every time: 48,000 faults against glibc's 42,000; 38,800-40,800 with this. Cost: one best-fit search
 * (O(log n)) before the mapping. Aligned requests (osm_memalign) still map: carving an aligned block from a hole
 * leaves a gap in front of it. */
static struct block_meta *heap_fit(size_t s)
{
	coalesce_blocks();
	struct block_meta *b = pick_best_block(s);
	if (!b)
		return NULL;
	if (b == osm_heap.tail && top_last())
		b = fit_below_top(b);
	if (TRACING)
		osm_trace_event("  fit %p %z", b, b->size);
	decay_reused(b, s);
	uint32_t x = index_keep(b);
	if (s >= PAGE_ROUND_MIN)
		b = page_start(b, s, &x);
	return take_block_from(b, s, x);
}

/* The classic order of a heap allocation of s (aligned) bytes. */
static struct block_meta *heap_alloc(size_t s)
{
	if (!osm_heap.head && heap_preallocation() < 0)
		return NULL;
	struct block_meta *b = heap_fit(s);
	if (b)
		return b;
	if (TRACING)
		osm_trace_event("  nofit");
	struct block_meta *last = find_last_block();
	if (last->status == STATUS_FREE) {
		/* checked (in free_detach) before its size sizes the growth: a rewritten one would move the break askew;
		 * and before the break moves, while its size still tiles the heap */
		free_detach(last);
		size_t grow = grow_size(s - last->size);
		switch (extend_in_place(grow)) {
		case GROW_OK:
			last->size += grow;
			if (TRACING)
				osm_trace_event("  grow %p %z", last, last->size);
			return take_block(last, s);
		case GROW_ENOMEM:
			free_insert(last, true); /* back in the index, unchanged */
			return NULL;
		case GROW_ELSEWHERE:
			free_insert(last, true);
			break;
		}
	}
	b = heap_append(s);
	return b ? take_block(b, s) : NULL;
}

/* heap_or_map's request that neither the break nor a mapping could serve: when kept mappings held the address
 * space (RLIMIT_AS, RLIMIT_DATA), they go back and the request is tried once more, else NULL. Out of line: only a
 * process at its limits comes here, and heap_or_map, which programs run, stays small in the hot text. */
static __attribute__((noinline)) struct block_meta *heap_or_map_again(size_t s)
{
	if (!mapcache_empty())
		return NULL;
	struct block_meta *b = heap_alloc(s);
	return b ? b : map_block(s);
}

/* A heap allocation, or in the default profile its own mapping when the break cannot grow (another mapping sits
 * above it, or the kernel refuses): a program keeps running where glibc's would (glibc's sysmalloc falls back to
 * mmap the same way). The classic profile keeps docs/CLASSIC.md's rule: NULL and ENOMEM. */
static struct block_meta *heap_or_map(size_t s)
{
	struct block_meta *b = heap_alloc(s);
	if (b || osm_heap.classic)
		return b;
	if (TRACING)
		osm_trace_event("  brk refused: mapped instead");
	b = map_block(s);
	return b ? b : heap_or_map_again(s);
}

static struct block_meta *map_aligned(size_t a, size_t s);

/* A block of s bytes with a mapping of its own, its payload aligned to a (the granule or less: a plain request): a
 * kept mapping when one serves it (mapcache_take), else a fresh one; when the kernel refuses that (address space,
 * memory), the kept mappings go back and it is tried once more. */
static struct block_meta *map_big(size_t a, size_t s)
{
	bool aligned = a > osm_heap.policy.align;
	struct block_meta *b = mapcache_n ? mapcache_take(a, s, true) : NULL;
	for (int tries = 0; !b && tries < 2; tries++) {
		b = aligned ? map_aligned(a, s) : map_block(s);
		if (!b && !mapcache_empty())
			break;
	}
	if (b && s >= MAPCACHE_MIN)
		note_big(b);
	return b;
}

/* Whether a request of s bytes at or above the mmap threshold tries the heap's free blocks before a mapping:
 * glibc's order under the dynamic threshold (heap_fit); threshold 0 is strict mode's demand for a mapping, and a
 * threshold the program set (mallopt) keeps its blocks mapped, as the program most likely asked for. From 32 MiB a
 * block always maps (and the mapping cache keeps it). */
static bool fit_first(size_t s, size_t threshold)
{
	return threshold && !osm_heap.classic && !osm_heap.policy.fixed_threshold && osm_heap.head &&
	       s + META_SIZE < MMAP_THRESHOLD_MAX;
}

/* A request of s bytes at or above the threshold that no mapping could serve (the kernel refused: RLIMIT_AS, the
 * map count, OSMEM_FAIL): the heap, its free blocks first, then the break, as glibc's sysmalloc falls back to its
 * top. After mallopt had fixed the threshold (or from 32 MiB, which always maps first), a free heap block of 1.5
 * MiB left malloc(200000) NULL where glibc served it (a soak of session 60: growth/map_refused_takes_heap). The
 * default profile only: strict mode (threshold 0) demands a mapping, and the classic rules say NULL. Out of line:
 * only a process at its limits comes here. */
static __attribute__((noinline)) struct block_meta *map_refused(size_t s, size_t threshold)
{
	if (!threshold || osm_heap.classic)
		return NULL;
	if (TRACING)
		osm_trace_event("  map_refused %z: the heap instead", s);
	return heap_alloc(s);
}

/* A big request below the threshold (8 MiB up) that no free heap block holds, while a kept mapping does: that
 * mapping serves it, cut to its size (the tail goes back), rather than the break growing by as much beside it.
 * ImageMagick's convert (an image resized, blurred, rotated, then encoded in three 28 MB buffers) kept a 72 MB
 * mapping idle for its second while the heap grew by 84 MB: 275 MB at its peak, glibc 221
 * (mapcache/heap_request_takes_kept_mapping). The pages it reuses are resident already; what is cut goes back at
 * once. NULL: the heap as before. Out of line: only requests of 8 MiB or more while mappings are kept come here. */
#define KEPT_FOR_HEAP_MIN (MAPCACHE_MIN / 4)
static __attribute__((noinline)) struct block_meta *kept_for_heap(size_t s)
{
	size_t need = round_up(META_SIZE + s, page_size());
	bool held = false;
	for (size_t i = 0; i < mapcache_n && !held; i++)
		held = mapcache[i].len >= need;
	if (!held || !osm_heap.head || osm_heap.policy.fixed_threshold)
		return NULL;
	struct block_meta *b = heap_fit(s);
	return b ? b : mapcache_take(0, s, true); /* one holds it: taken and cut, never grown */
}

/* A request of n bytes: a mapping of its own from threshold up (a kept one if one serves it), else the heap. */
static struct block_meta *alloc_block_now(size_t s, size_t threshold)
{
	if (s + META_SIZE < threshold) {
		struct block_meta *k = s >= KEPT_FOR_HEAP_MIN && mapcache_n ? kept_for_heap(s) : NULL;
		return k ? k : heap_or_map(s);
	}
	struct block_meta *b = fit_first(s, threshold) ? heap_fit(s) : NULL;
	if (!b)
		b = map_big(0, s);
	return b ? b : map_refused(s, threshold);
}

static struct block_meta *alloc_block(size_t n, size_t threshold)
{
	threshold = heap_threshold(threshold);
	if (mapcache_n)
		mapcache_expire();
	struct block_meta *b = alloc_block_now(align_up(n), threshold);
	/* a top that waited long enough goes back after the request is served, which may take part of it (then
	 * kept: trim_used): trimmed first, a request larger than the trim's keep moved the break down and up again */
	if (osm_heap.trim_since)
		trim_due();
	decay_tick(); /* a pass may come at an allocation too: a program's last calls may be all mallocs */
	return b;
}

struct block_meta *osm_malloc(size_t n, size_t threshold)
{
	return alloc_block(n, threshold);
}

/* calloc's block b took a kept mapping, whose payload may hold a freed block's data (of a mapping grown to serve it,
 * the growth does not, but its pages are not resident either, which the count below sees): how many of the first
 * d bytes the caller must still zero, with the lock let go. Zeroing pages that are resident costs a write; a page given
 * back (madvise) and touched again costs a fault, ten times that here. So the pages of a mostly resident mapping
 * are the caller's to write; those of a mostly untouched one (a big calloc that the program used sparsely, freed)
 * are given back here, where writing them would fault them all in and keep them resident: they read as zeros, as
 * a fresh mapping's, and only the payload's first page is left to zero. */
static size_t zero_kept(struct block_meta *b, size_t d)
{
	char *p = payload(b);
	uintptr_t lo = round_up((uintptr_t)p, page_size()), hi = round_up((uintptr_t)p + d, page_size());
	if (!d || hi <= lo || osm_os_resident((void *)lo, hi - lo) * 2 * page_size() >= hi - lo)
		return d;
	if (!osm_os_discard((void *)lo, hi - lo))
		return d; /* locked pages keep their bytes: the caller writes the zeros */
	if (TRACING)
		osm_trace_event("  madvise %p %z", (void *)lo, (size_t)(hi - lo));
	return min_size(d, lo - (uintptr_t)p);
}

/* calloc's fresh pages, written as they are used or populated at once (default profile). A fresh mapping reads as
 * zeros from the kernel's one zero page, so calloc leaves it as it is, and glibc and jemalloc do the same. But a program that checks or searches its zeros before it writes them (a
 * hash table's buckets, a bitmap) takes two faults a page: the read maps the zero page, and the write then copies
 * it. The second fault replaces a mapping that other threads may have cached, so in a process with threads it
 * flushes their TLBs by interrupting every other CPU that runs one, which this virtual machine makes dear: 4
 * threads, each calloc of 4-64 MiB checked and then written (bench/apis.py), spent two thirds of their time in those
 * interrupts (perf: do_wp_page -> flush_tlb_mm_range -> x2apic_send_IPI), 2.4 s against tcmalloc's 0.47, which
 * zeroes every block it hands out. Populated at once (MADV_POPULATE_WRITE, one system call, made after the lock)
 * the pages take no fault at all. But a program that uses a big calloc sparsely (one page in 16) would then hold
 * all of it resident: 67 MB where glibc holds 5 (tcmalloc and mimalloc 72). So calloc learns which kind of program
 * it serves. A fresh block it leaves lazy is a sample; once the sample is ZERO_SAMPLE_NS old (at a later fresh
 * calloc), or when it is freed, mincore says whether the program has touched most of its pages
 * (zero_sample_measure). While the last verdict was dense, fresh blocks are populated, one in ZERO_SAMPLE_EVERY
 * but for its last sixteenth, left lazy as the next sample (the end: a program that uses a block's front only
 * reads as sparse there); before any verdict, and while it is sparse, none are, and a sample is a whole block.
 * Returns the bytes from the payload's first whole page that the caller populates (0: none), counted here under the
 * lock. Costs: a clock read per fresh calloc block; a mincore or two per look at a sample. Not in the classic
 * profile. */
#define ZERO_SAMPLES      4
#define ZERO_SAMPLE_EVERY 8
#define ZERO_SAMPLE_NS    1000000ull /* 1 ms: long enough for a program to write what it asked for */
#define ZERO_WINDOW       16         /* while dense, a sample is the last sixteenth of its block */

/* Sample i's pages, counted: the verdict for calloc's next fresh blocks. Most of its pages touched: dense. A block
 * still in use whose touched pages are its first ones (at least 8, and 7 in 8 of the first as many) is a program
 * filling it from the start, or one that uses only its front: looked at again at the next fresh calloc, it is
 * dense if its front has grown since (the filler under way), sparse if not. A 50 MB block read then written page by
 * page was at its 73rd page 1 ms after its calloc on a host that charged 10 us a fault, and read as sparse, so the
 * blocks after it stayed lazy (bench/apis.py, calloc of 4-64 MiB in 4 threads: 2x tcmalloc's time). A window (a
 * block's end) none of whose pages is touched says nothing yet, until it is due: its block freed (freed), its place
 * in the table needed (due), or as old as touching every page of its block at two dear faults a page would take
 * (ZERO_PAGE_NS a page, 50 ms at least): such a filler reaches the end last. Otherwise sparse. The sample leaves the
 * table with its verdict. */
#define ZERO_DUE_NS  50000000ull /* 50 ms */
#define ZERO_PAGE_NS 20000ull    /* two faults at 10 us */
static void zero_sample_measure(size_t i, bool freed, bool due)
{
	uintptr_t lo = osm_heap.zero_sample[i].lo;
	size_t len = osm_heap.zero_sample[i].len, pages = len / page_size(), seen = osm_heap.zero_sample[i].seen;
	size_t resident = osm_os_resident((void *)lo, len);
	bool dense = resident * 2 >= pages;
	if (!dense && !freed) {
		if (resident >= 8 && osm_os_resident((void *)lo, resident * page_size()) * 8 >= resident * 7) {
			if (!seen && !due) {
				osm_heap.zero_sample[i].seen = resident; /* its front: filling, or all it uses? */
				return;
			}
			dense = resident > seen && seen;
		} else if (!resident && osm_heap.zero_sample[i].window && !due) {
			uint64_t age = osm_os_now_ns() - osm_heap.zero_sample[i].when;
			if (age < ZERO_DUE_NS + pages * ZERO_WINDOW * ZERO_PAGE_NS)
				return; /* measured again at the next fresh calloc */
		}
	}
	osm_heap.zero_sample[i].lo = 0;
	osm_heap.zero_dense = dense;
	if (TRACING)
		osm_trace_event(dense ? "  zero_density %p %z %z dense" : "  zero_density %p %z %z sparse", (void *)lo,
				resident, pages);
}

static size_t calloc_populate(struct block_meta *b)
{
	uintptr_t lo = round_up((uintptr_t)payload(b), page_size()), hi = round_down((uintptr_t)block_end(b), page_size());
	if (osm_heap.classic || hi <= lo)
		return 0;
	uint64_t now = osm_os_now_ns();
	size_t free_i = ZERO_SAMPLES;
	for (size_t i = 0; i < ZERO_SAMPLES; i++) {
		if (osm_heap.zero_sample[i].lo && now - osm_heap.zero_sample[i].when >= ZERO_SAMPLE_NS)
			zero_sample_measure(i, false, false);
		if (!osm_heap.zero_sample[i].lo)
			free_i = i;
	}
	size_t k = osm_heap.zero_fresh++;
	if (!osm_heap.zero_dense || k % ZERO_SAMPLE_EVERY == 0) {
		/* while dense, the sample is the block's last sixteenth, the rest populated: a whole block left lazy
		 * cost its read-then-written pages two faults each, one in eight blocks (bench/apis.py, calloc of 4-64
		 * MiB in 4 threads: 329 of 1,028 MiB sampled, 120 of them the first blocks, before any verdict) */
		size_t window = osm_heap.zero_dense ? round_down((hi - lo) / ZERO_WINDOW, page_size()) : hi - lo;
		window = window ? window : hi - lo;
		size_t i = free_i < ZERO_SAMPLES ? free_i : k % ZERO_SAMPLES;
		if (osm_heap.zero_sample[i].lo)
			zero_sample_measure(i, false, true); /* full: one of them waits no more */
		osm_heap.zero_sample[i].lo = hi - window;
		osm_heap.zero_sample[i].len = window;
		osm_heap.zero_sample[i].when = now;
		osm_heap.zero_sample[i].seen = 0;
		osm_heap.zero_sample[i].window = window != hi - lo;
		if (TRACING)
			osm_trace_event("  zero_sample %p %z", (void *)(hi - window), window);
		if (window == hi - lo)
			return 0;
		hi -= window; /* populated below */
	}
	osm_os_calls.madvise++; /* the populate the caller makes after the lock */
	osm_os_calls.populate++;
	if (TRACING)
		osm_trace_event("  populate %p %z", (void *)lo, (size_t)(hi - lo));
	return (size_t)(hi - lo);
}

/* Mapped block b is about to be freed, unmapped or remapped: a sample in it is measured now, while its pages are
 * still there. Four compares when the table holds any. */
static void zero_sample_freed(struct block_meta *b)
{
	uintptr_t p = (uintptr_t)payload(b), end = (uintptr_t)block_end(b);
	for (size_t i = 0; i < ZERO_SAMPLES; i++)
		if (osm_heap.zero_sample[i].lo - p < end - p)
			zero_sample_measure(i, true, true);
}

/* calloc's block b, a kept mapping (grown by mremap to serve it when `grew`): the bytes the caller zeroes
 * (zero_kept), and in *populate those it populates from the payload's first whole page. A kept mapping that
 * zero_kept gave back was left mostly untouched by the block freed there, which says the program uses that size
 * sparsely (mapcache/calloc_of_sparse_kept_mapping_stays_sparse), and stays lazy. One that grew was mostly fresh
 * pages, which say nothing of the program: the verdict on its fresh blocks holds (calloc_populate), and while it is
 * dense the pages given back are populated. Left lazy, a program that reads its zeros before it writes them took
 * two faults a page, the second a copy of the zero page that interrupts every other CPU running one of its threads
 * to flush their TLBs: calloc of 4-64 MiB in four threads freeing each other's blocks (bench/apis.py), 18 of 72
 * requests served by a kept mapping grown, 6 of them given back whole, spent 60% of its time in those interrupts
 * (perf: do_wp_page -> flush_tlb_mm_range -> x2apic_send_IPI). Out of line: only calloc's reuses come here. */
static __attribute__((noinline)) size_t zero_kept_block(struct block_meta *b, bool grew, size_t *populate)
{
	size_t dirty = zero_kept(b, b->size);
	uintptr_t lo = round_up((uintptr_t)payload(b), page_size()), hi = round_down((uintptr_t)block_end(b), page_size());
	*populate = 0;
	if (!grew || dirty >= b->size || !osm_heap.zero_dense || hi <= lo)
		return dirty;
	osm_os_calls.madvise++; /* the populate the caller makes after the lock */
	osm_os_calls.populate++;
	if (TRACING)
		osm_trace_event("  populate %p %z", (void *)lo, (size_t)(hi - lo));
	*populate = (size_t)(hi - lo);
	return dirty;
}

/* calloc's request (default profile; the classic one keeps no mapping): as malloc's, with *dirty the bytes of the
 * payload, from its start, that the caller zeroes after the lock when the block is mapped (a kept mapping's:
 * zero_kept); a block of the heap is zeroed whole, and a fresh mapping not at all. A kept mapping never served
 * calloc until session 43, and calloc's blocks freed were kept all the same: 40 rounds of calloc, write and free
 * of 64 MiB held four kept mappings beside each new one (329 MB peak, glibc 67) and faulted every page in afresh
 * (1.81 s, as glibc; tcmalloc, which zeroes what it reuses, 0.12 s; mapcache/calloc_takes_kept_mapping). */
struct block_meta *osm_malloc_zero(size_t n, size_t threshold, size_t *dirty, size_t *populate)
{
	size_t reused = osm_heap.count.reused_maps; /* it moves when the cache serves the request (mapcache_block) */
	size_t grows = mapcache_grows;
	struct block_meta *b = alloc_block(n, threshold);
	bool kept = b && b->status == STATUS_MAPPED && osm_heap.count.reused_maps != reused;
	if (kept) {
		*dirty = zero_kept_block(b, mapcache_grows != grows, populate);
		return b;
	}
	*dirty = 0;
	*populate = b && b->status == STATUS_MAPPED ? calloc_populate(b) : 0;
	return b;
}

/* glibc's dynamic threshold (default profile): a program that frees a mapped block of some size will likely ask
 * for that size again, and a fresh mapping costs two system calls and a page fault per page every time. So the
 * threshold rises above that size (up to 32 MiB) and the next ones come from the heap, where freed blocks are
 * reused; the trim threshold follows at twice it, so the heap does not hand them straight back.
 * From THRESHOLD_ROUND_MIN up, the threshold rises to the next power of two rather than just past the block: a
 * program whose big blocks have random sizes sees its largest so far creep upward (4.05, 4.15, 4.16, 4.19 MiB),
 * and under glibc's rule each new largest is mapped afresh and its pages faulted in (large: 47,000 faults for a
 * 112 MiB peak; with the rounding 37,600 faults, 0.150 -> 0.137 s, peak RSS 112.6 -> 106.3 MiB). Below 2 MiB the
 * rule stays glibc's: rounding from 1 MiB up kept mixed-realloc's growing buffers (1 to 2 MiB) in the heap and
 * cost it 15 MiB of peak RSS. */
#define THRESHOLD_ROUND_MIN ((size_t)2 << 20)
static void raise_mmap_threshold(const struct block_meta *b)
{
	struct heap_policy *p = &osm_heap.policy;
	size_t len = b->size + META_SIZE;
	/* not in the classic profile, nor once the program set a threshold itself (mallopt: glibc's no_dyn_threshold) */
	if (osm_heap.classic || p->fixed_threshold || len < p->mmap_threshold || len > MMAP_THRESHOLD_MAX)
		return;
	size_t t = len + 1;
	if (len >= THRESHOLD_ROUND_MIN) {
		t = (size_t)1 << (64 - __builtin_clzll((unsigned long long)len)); /* the power of two above len */
		if (t > MMAP_THRESHOLD_MAX)
			t = len < MMAP_THRESHOLD_MAX ? MMAP_THRESHOLD_MAX : len + 1;
	}
	t = heap_threshold(t); /* with threads: no higher than THREADED_MAX, nor the trim's keep above it */
	if (t <= p->mmap_threshold)
		return;
	p->mmap_threshold = p->calloc_threshold = t;
	if (p->trim_threshold < 2 * p->mmap_threshold)
		p->trim_threshold = 2 * p->mmap_threshold;
	/* and a trim keeps one such block's worth at the top: the next one is served without growing the break and
	 * faulting its pages in again (about 1.4 us a page here, ten times writing it) */
	if (p->trim_keep < p->mmap_threshold)
		p->trim_keep = p->mmap_threshold;
	if (TRACING)
		osm_trace_event("  threshold %z", p->mmap_threshold);
}

/* b goes back: freed by the program, or the old block of a realloc that moved; learn: whether its size teaches the
 * dynamic threshold. The old block of a growth does not: the buffer outgrew that size and will not ask for it
 * again. A buffer doubled past the threshold moves, at 32 MiB, into a kept mapping (regrow_kept); the free of its
 * old 16 MiB mapping raised the threshold to 16 MiB, and from then on every such buffer grew through the break up
 * to 16 MiB: 4 threads each doubling a buffer to 64 MiB, five rounds (patterns' vecgrow4), left 65 MB of freed
 * heap behind them, resident, and peaked at 285-365 MB where glibc takes 255
 * (mapcache/moved_mapping_does_not_raise_threshold). The old block of a shrink that moved (a mapped block asked
 * for less than the threshold, moved to the heap) still teaches, as a free would: glibc's realloc teaches nothing
 * (munmap_chunk, not free), and a program that only reallocs blocks of 64 KiB-4 MiB then maps and faults each
 * one in again, 5 times the time it took when those moves taught (bench/apis.py, realloc 64 KiB-4 MiB). */
static void free_block(struct block_meta *b, bool learn)
{
	osm_heap.count.frees++;
	if (mapcache_n)
		mapcache_expire();
	if (b->status == STATUS_MAPPED) {
		if (learn)
			raise_mmap_threshold(b);
		if (osm_heap.zero_fresh)
			zero_sample_freed(b); /* a sample of calloc's, measured before its pages go */
		if (!mapcache_put(b, learn))
			unmap_block(b);
		return;
	}
	osm_heap.count.heap_in_use -= b->size;
	release_block(b);
}

void osm_free(struct block_meta *b)
{
	free_block(b, true);
}

/* A mapping with a payload aligned to a: map enough to find one, then give back the whole pages on either side. */
static struct block_meta *map_aligned(size_t a, size_t s)
{
	size_t len = s + META_SIZE + a;
	char *m = osm_os_map(len);
	if (!m)
		return NULL;
	char *p = (char *)round_up((uintptr_t)m + META_SIZE, a);
	char *start = (char *)round_down((uintptr_t)(p - META_SIZE), page_size());
	char *end = (char *)round_up((uintptr_t)(p + s), page_size());
	if (start > m)
		osm_os_unmap(m, (size_t)(start - m));
	if (m + len > end)
		osm_os_unmap(end, (size_t)(m + len - end));
	struct block_meta *b = block_of(p);
	b->size = (size_t)(end - p);
	mapped_link(b);
	osm_heap.count.allocations++;
	if (TRACING)
		osm_trace_event("  mmap %z %p", len, b);
	return b;
}

/* Block b, taken from the heap with room for s bytes at an address aligned to a, becomes that block: the first
 * aligned payload address that leaves either nothing or a whole free block (a header and a granule) in front of
 * it; the front goes back to the free blocks, and so does what the payload leaves at the end (split_blocks). */
static struct block_meta *carve_aligned(struct block_meta *b, size_t a, size_t s)
{
	size_t min_front = META_SIZE + osm_heap.policy.align;
	char *p0 = payload(b), *p = (char *)round_up((uintptr_t)p0, a);
	if (p != p0 && (size_t)(p - p0) < min_front)
		p += a;
	if (p != p0) {
		struct block_meta *nb = block_of(p);
		size_t gap = (size_t)(p - p0);
		osm_heap.count.heap_in_use -= b->size;
		nb->size = b->size - gap;
		b->size = gap - META_SIZE;
		list_insert_after(b, nb);
		mark_alloc(nb, STATUS_ALLOC);
		if (TRACING)
			osm_trace_event("  carve %p %z %p %z", b, b->size, nb, nb->size);
		release_block(b); /* the front goes back to the free blocks */
		b = nb;
		osm_heap.count.heap_in_use += b->size;
	}
	size_t before = b->size;
	split_blocks(b, s, false);
	osm_heap.count.heap_in_use -= before - b->size;
	if (osm_heap.policy.eager_coalesce)
		coalesce_blocks();
	return b;
}

/* The default profile's first try for an aligned heap block: the smallest free block that holds s, when its
 * payload is aligned already, taken as malloc takes a fit; NULL otherwise. The search for s + a and a header
 * (heap_alloc, carve_aligned) passes over such a block: aligned medium blocks are sized to tile the heap (internal.h,
 * medium_aligned_round), so the block after one the core carved, or one the caches gave back, starts aligned, and
 * was left idle while the next request carved a new block, and a free fragment in front of it, elsewhere
 * (medium/aligned_blocks_tile_the_heap). Cost: one more best-fit search (O(log n)) when it finds nothing. */
static struct block_meta *aligned_fit(size_t a, size_t s)
{
	if (osm_heap.classic || !osm_heap.head || osm_heap.bestfit != BESTFIT_INDEX)
		return NULL;
	coalesce_blocks();
	if (osm_heap.unslotted)
		return NULL;
	struct block_meta *b = osm_index_best_fit(s);
	if (!b || ((uintptr_t)payload(b) & (a - 1)))
		return NULL;
	if (TRACING)
		osm_trace_event("  fit %p %z", b, b->size);
	decay_reused(b, s);
	return take_block_from(b, s, index_keep(b));
}

/* A block whose payload is aligned to a (a power of two above the granule). In the order malloc follows: below
 * the mmap threshold the heap (a block with room for the payload at an aligned address and a free block in front
 * of it, carve_aligned), from the threshold up the heap's free blocks first in the default profile (fit_first),
 * then a mapping. Aligned mappings raise the dynamic threshold when freed, as glibc's do (raise_mmap_threshold).
 * Before both (session 42), a loop of aligned_alloc(4096, 64 KiB..4 MiB) and free mapped every block afresh,
 * two munmaps and a page fault per page each time: 11.8 s where glibc took 0.78 and malloc 0.2
 * (growth/aligned_churn_reuses_heap). */
struct block_meta *osm_memalign(size_t a, size_t n)
{
	size_t s = align_up(n);
	if (a <= osm_heap.policy.align)
		return osm_malloc(n, osm_heap.policy.mmap_threshold);
	size_t threshold = heap_threshold(osm_heap.policy.mmap_threshold), room = s + a + META_SIZE;
	struct block_meta *b;
	if (s + META_SIZE >= threshold) {
		if (mapcache_n)
			mapcache_expire();
		b = room > s && fit_first(room, threshold) ? heap_fit(room) : NULL;
		if (b)
			return carve_aligned(b, a, s);
		struct block_meta *m = map_big(a, s);
		if (m || room <= s || !(b = map_refused(room, threshold)))
			return m;
		return carve_aligned(b, a, s);
	}
	b = aligned_fit(a, s);
	if (b)
		return b;
	b = heap_alloc(room);
	if (!b && !osm_heap.classic) { /* the default profile maps when the break cannot grow, as malloc does */
		struct block_meta *m = map_aligned(a, s);
		if (m || !mapcache_empty())
			return m;
		b = heap_alloc(room); /* the kept mappings held the memory: once more without them */
		if (!b)
			return map_aligned(a, s);
	}
	return b ? carve_aligned(b, a, s) : NULL;
}

/* The front's segments from the heap's free memory (default profile): a block of s bytes whose payload is aligned
 * to a, carved from a free block that holds it (best fit for s + a and a header), never growing the heap; NULL when
 * no free block is that large. A program that frees a phase's medium blocks and then builds small objects had the
 * front map fresh segments beside the heap's free, resident memory, and the next phase of medium blocks faulted
 * the heap in again beside the segments (bench/workloads/patterns.c, phases: 2M objects of 32 bytes and 50,000 of
 * 3,000 in turn, 231 MB at the peak against glibc's 164, which serves both from one heap). The block is the
 * front's until osm_heap_uncarve: allocated to the core (the heap map and os_heap_check show it so) but counted
 * neither in bytes in use nor in allocations, as a mapped segment is not. Cost: a best-fit search (O(log n)),
 * when the front needs a segment and before it maps one. Lock held. */
struct block_meta *osm_heap_carve(size_t a, size_t s)
{
	if (osm_heap.classic || !osm_heap.head || osm_heap.bestfit != BESTFIT_INDEX)
		return NULL;
	coalesce_blocks();
	if (osm_heap.unslotted)
		return NULL;
	struct block_meta *b = osm_index_best_fit(s + a + META_SIZE);
	if (!b)
		return NULL;
	if (TRACING)
		osm_trace_event("  fit %p %z", b, b->size);
	free_detach(b);
	mark_alloc(b, STATUS_ALLOC);
	trim_used(block_end(b));
	osm_heap.count.heap_in_use += b->size; /* carve_aligned's accounting is an allocated block's */
	b = carve_aligned(b, a, s);
	osm_heap.count.heap_in_use -= b->size;
	return b;
}

/* A carved block (osm_heap_carve) back to the free blocks. Lock held. */
void osm_heap_uncarve(struct block_meta *b)
{
	osm_heap.count.heap_in_use += b->size; /* osm_free takes it off again */
	osm_heap.count.frees--;
	osm_free(b);
}

/* Moves b's contents to a new block and frees b. */
static struct block_meta *move_block(struct block_meta *b, struct block_meta *nb, size_t keep)
{
	if (!nb)
		return NULL;
	if (osm_heap.defer_move) {
		/* the caller copies with the lock let go, then calls osm_realloc_finish(b) (no copying under a lock) */
		osm_heap.move_old = b;
		osm_heap.move_len = min_size(b->size, keep);
		osm_heap.move_grew = keep > b->size;
		return nb;
	}
	memcpy(payload(nb), payload(b), min_size(b->size, keep));
	free_block(b, keep <= b->size);
	osm_heap.count.moved_reallocs++;
	return nb;
}

/* grew: the move's own, which osm_realloc_deferred returned; osm_heap.move_grew is by now another thread's, whose
 * realloc ran while this one copied (a threaded program's shrinking realloc made a growth's old block teach the
 * mmap threshold: growth/move_learns_from_its_own_realloc, found by a review in session 50). */
void osm_realloc_finish(struct block_meta *old, bool grew)
{
	free_block(old, !grew);
	osm_heap.count.moved_reallocs++;
}

/* The default profile's realloc keeps slack, as every peer does (jemalloc and tcmalloc keep a block within its
 * size class, mimalloc down to half its size; glibc keeps none and makes up for it with a top chunk that grows
 * in place for nothing): a block grown in place, or remapped, takes an eighth more than asked, and a request that
 * leaves at most an eighth of a block unused leaves it as it is. A buffer grown a few bytes at a time otherwise
 * paid the lock, a best-fit remove and insert (the neighbour absorbed, the rest split off again) on every call,
 * 63 ns against glibc's 7.5 from 32 KiB to 128 KiB, and above the mmap threshold an mremap per call, 75 ns
 * against 12 (realloc/growing_buffer_does_not_call_per_byte). At most an eighth of a block unused, as medium requests'
 * rounding leaves; a real shrink (more than an eighth) still gives the rest back. The classic profile is exact
 * (docs/CLASSIC.md cases 4 to 8). osm_realloc_keeps (internal.h) is the test. */
static inline size_t realloc_slack(size_t s)
{
	return osm_heap.classic ? s : align_up(s + s / 8);
}

/* mapped -> mapped: the kernel moves the pages (default profile). The block takes the whole last page, so that
 * the next growth within it calls nothing. */
static struct block_meta *remap_block(struct block_meta *b, size_t s)
{
	if ((uintptr_t)b & (page_size() - 1))
		return NULL; /* an aligned block: its mapping does not start at its header */
	s = round_up(s + META_SIZE, page_size()) - META_SIZE;
	if (osm_heap.zero_fresh)
		zero_sample_freed(b); /* its pages move: a sample of calloc's in it is measured first */
	mapped_unlink(b, false);
	struct block_meta *nb = osm_os_remap(b, b->size + META_SIZE, s + META_SIZE);
	if (!nb) {
		mapped_link(b);
		return NULL;
	}
	if (nb != b) /* the old address is gone: free(old) is a double free, not an invalid pointer (session 50) */
		osm_mapset_moved(b);
	if (b == newest_big)
		newest_big = nb;
	nb->size = s;
	mapped_link(nb);
	osm_heap.count.inplace_reallocs++;
	if (TRACING)
		osm_trace_event("  mremap %p %z %p", b, s + META_SIZE, nb);
	return nb;
}

/* A mapped block b growing to s bytes takes, in place, the kept mapping that begins where its own mapping ends: the
 * part its growth needs (with realloc's slack), the rest staying kept (mapcache_tail); the whole of it when that is
 * still short, and mremap grows b on from there. No copy, no page fault, no system call but the mprotect that makes
 * the taken pages writable (mapcache_block's, for a block freed with a page protected). Such a neighbour is most
 * often the tail of the kept mapping b was cut from (mapcache_tail), which b's free joins again (mapcache_put). A
 * thread's buffer grown by realloc to a random size up to 16 MiB, 300 rounds (patterns' growbuf): each round mapped
 * its 1 MiB step afresh, grew by mremap into fresh pages beside the kept mappings and cut those to size, 13.9x
 * glibc's time, whose thread arena grows the buffer at its top in pages already resident. Returns whether b holds s
 * now. */
static __attribute__((noinline)) bool regrow_adjacent(struct block_meta *b, size_t s)
{
	if (((uintptr_t)b & (page_size() - 1)) || osm_heap.policy.fixed_threshold)
		return false; /* an aligned block: its mapping does not start at its header */
	mapcache_expire();
	char *end = (char *)round_up((uintptr_t)block_end(b), page_size());
	size_t have = (size_t)(end - (char *)b), want = round_up(realloc_slack(s) + META_SIZE, page_size());
	for (size_t i = 0; i < mapcache_n && want > have; i++) {
		if (mapcache[i].start != end)
			continue;
		size_t len = mapcache[i].len, take = want - have < len ? want - have : len;
		uint64_t when = mapcache[i].when;
		if (!osm_os_protect(end, take, true))
			return false;
		mapcache_remove(i);
		mapped_unlink(b, false);
		b->size = have + take - META_SIZE;
		mapped_link(b);
		osm_heap.count.inplace_reallocs++;
		if (TRACING)
			osm_trace_event("  kept_absorb %p %z %p %z", b, b->size, end, take);
		if (len > take)
			mapcache_tail(end + take, len - take, when, false);
		return b->size >= s;
	}
	return false;
}

/* A mapped block b shrinking in place to s bytes, with threads: its tail becomes a kept mapping of its own for
 * SHRINK_TAIL_NS (mapcache_tail, which gives it back at once when it is too short to keep), where mremap gave its
 * pages back. The block's next growth takes it again in place (regrow_adjacent), or another request takes it, with
 * its pages resident. Random reallocs of 64 KiB-4 MiB in a threaded process shrank their mappings by mremap and
 * faulted the pages in again at the next growth: 172,000 page faults where tcmalloc, whose page heap keeps freed
 * spans, takes 28,500 (bench/apis.py; mapcache/threaded_shrink_keeps_tail); 86,000 and 0.19 s instead of 0.39 now.
 * Not the cache's second: python3's churn cuts its compressed buffers to size once, and kept a second their tails
 * raised its peak from 63-66 to 71-75 MiB; kept 10 ms, the threads' decay time, its peak is level (66.2 against 66.5
 * MiB, medians of 8; 20 ms: 66.4 against 64.7; mapcache/threaded_shrink_tail_not_kept_long). One thread keeps its
 * blocks below 32 MiB in the heap, and no such tail. Returns whether b holds s bytes now. */
#define SHRINK_TAIL_NS 10000000ull
static __attribute__((noinline)) bool shrink_keep_tail(struct block_meta *b, size_t s)
{
	if (((uintptr_t)b & (page_size() - 1)) || osm_heap.policy.fixed_threshold || !osm_heap.policy.map_cache ||
	    one_thread())
		return false; /* aligned: its mapping starts before its header; one thread: its blocks live in the heap */
	char *end = (char *)round_up((uintptr_t)block_end(b), page_size());
	char *cut = (char *)b + round_up(s + META_SIZE, page_size());
	if (cut >= end)
		return false;
	mapped_unlink(b, false);
	b->size = (size_t)(cut - (char *)b) - META_SIZE;
	mapped_link(b);
	osm_heap.count.inplace_reallocs++;
	if (TRACING)
		osm_trace_event("  kept_cut %p %z", b, b->size);
	/* kept as if since a second less SHRINK_TAIL_NS: mapcache_expire gives it back SHRINK_TAIL_NS from now. Whatever
	 * the shortest request looked for (big_shortest): the block's own growth is the one it waits for */
	mapcache_tail(cut, (size_t)(end - cut), osm_os_coarse_ns() - MAPCACHE_NS + SHRINK_TAIL_NS, true);
	return true;
}

/* A block b growing to s bytes, in the cache's sizes (MAPCACHE_MIN up), takes a kept mapping that holds it (with
 * realloc's slack), or NULL: the caller copies into it rather than growing b by mremap (case 4) or mapping afresh
 * (case 5, b in the heap). A buffer that grows by doubling and is freed, round after round, grew past its last
 * round's kept mapping by mremap into fresh pages, faulted them all in again, and left the kept one resident beside
 * it: four rounds' buffers (the cache's four slots) were resident at once, 1,050 MB for a 256 MiB buffer where glibc
 * peaks at 263 (mapcache/growing_buffer_takes_kept_mapping). The copy is of pages already resident into pages
 * already resident; what mremap saves in copying, the fresh pages' faults cost several times over here.
 * The block keeps up to REGROW_KEEP times what it asked of the mapping (mapcache_take), not just that: a buffer that
 * doubled into the cache's sizes will most likely double again, and then grows in place, in pages already resident.
 * Before, the tail went back at once and the next doubling took another kept mapping (a copy, and the old one kept
 * beside it) or grew by mremap into fresh pages (mapcache/doubling_buffer_grows_within_kept_mapping). What a block
 * keeps this way is bounded by what it asked, and a realloc that shrinks it by more than an eighth gives it back. */
static __attribute__((noinline)) struct block_meta *regrow_take(size_t s)
{
	mapcache_expire();
	return mapcache_n ? mapcache_take(0, realloc_slack(s), false) : NULL;
}

static inline __attribute__((always_inline)) struct block_meta *regrow_kept(struct block_meta *b, size_t s)
{
	if (!mapcache_n || s <= b->size || s + META_SIZE < MAPCACHE_MIN || osm_heap.policy.fixed_threshold)
		return NULL;
	return regrow_take(s); /* out of line: realloc's cases 4 and 5 inline the test alone (hot text) */
}

/* A heap block growing into a mapping (case 5), or a mapped block growing (case 4, since session 67), in a process
 * with threads, from THREADED_MAX up to MAPCACHE_MIN, where the cache keeps mappings but regrow_kept takes none: the
 * smallest kept mapping that holds it (with realloc's slack). The block moves and is copied either way, so a kept
 * mapping spares the fresh one's page faults; a mapped block's mremap spares the copy but faults its growth in
 * beside the kept mapping, resident and unused (a thread's buffer grown by realloc to random sizes up to 16 MiB:
 * 736 MB resident with the cache bound alone at 1 GiB; mapcache/threaded_mapped_growth_takes_kept_mapping).
 * sqlite3's buffers, grown from the heap to 1 MiB (then to 2 MiB by mremap) and freed, round after round, each
 * mapped afresh while the four 2 MiB mappings of the rounds before sat kept, resident and unused: two threads of it
 * at 21 MB, glibc's 12-13, now 13 (a soak of session 56; mapcache/threaded_growth_takes_kept_mapping). A longer
 * one is cut, its tail kept beside the block, which the buffer's next growths take in place (regrow_adjacent).
 * Until session 68 no mapping over four times the need was taken, as the cut tail went back: a buffer doubling from
 * 1 MiB would have cut the 64 MiB its last round left and faulted it in again (vecgrow4 twice its time). patterns'
 * growbuf then mapped each round's 1 MiB step afresh: 0.67 s, now 0.05 (glibc 0.05; vecgrow4 0.17 -> 0.09 s,
 * 278 -> 233 MB). */
static __attribute__((noinline)) struct block_meta *regrow_kept_threaded(struct block_meta *b, size_t s)
{
	if (!mapcache_n || s <= b->size || s + META_SIZE >= MAPCACHE_MIN || s + META_SIZE < mapcache_min() ||
	    osm_heap.policy.fixed_threshold)
		return NULL;
	mapcache_expire();
	return mapcache_n ? mapcache_take(0, realloc_slack(s), false) : NULL;
}

/* Rule 7's growth: the break moves under b, the heap's last block, until b holds s bytes. In the default profile
 * by a chunk geometric in the block (grow_chunk), not in the heap as a malloc's growth: two threads growing
 * buffers side by side took the free top in turns, each growth that reached the break added an eighth of the
 * heap, and the heap (and what the moves touched of it) grew to 98 MB for 4.5 MB of buffers (session 31,
 * realloc/last_block_growth_sized_by_the_block). */
static bool grow_last(struct block_meta *b, size_t s, bool *enomem)
{
	size_t grow = grow_chunk(s - b->size, s / 8);
	switch (extend_in_place(grow)) {
	case GROW_OK:
		b->size += grow;
		stamp_block(b);
		if (TRACING)
			osm_trace_event("  grow %p %z", b, b->size);
		split_blocks(b, min_size(realloc_slack(s), b->size), false); /* the chunk's rest is free, at the top */
		return true;
	case GROW_ENOMEM:
		*enomem = true;
		return false;
	case GROW_ELSEWHERE:
		break;
	}
	return false;
}

/* In place on the heap: shrink or grow b (allocated) to s; rules 6 to 8. */
static bool resize_in_place(struct block_meta *b, size_t s, bool *enomem)
{
	if (b->size >= s) {                                        /* 6 */
		if (TRACING)
			osm_trace_event("  case 6");
		split_blocks(b, s, false);
		return true;
	}
	if (b == find_last_block()) {                              /* 7 */
		if (TRACING)
			osm_trace_event("  case 7");
		if (grow_last(b, s, enomem))
			return true;
		if (*enomem)
			return false;
	}
	if (TRACING && is_free_neighbour(b, b->next))
		osm_trace_event("  case 8");
	while (b->size < s && is_free_neighbour(b, b->next))       /* 8 */
		absorb_next(b);
	if (b->size >= s) {
		split_blocks(b, min_size(realloc_slack(s), b->size), false);
		return true;
	}
	/* The default profile: b took the free top and still falls short, so it is the last block now. When no free
	 * block holds s either (rule 9 would grow the heap and copy b into the new top), the break grows under b
	 * instead, as glibc's realloc grows a chunk into its top: no copy, and b's pages are not left behind as a
	 * hole. sqlite3's sorter doubles its buffers up to 8 MiB this way. A free block that holds s is still taken
	 * (rule 9): growing the top regardless cost mixed-realloc 5.7 MiB of peak RSS. */
	if (!osm_heap.classic && b == find_last_block() && (coalesce_blocks(), !pick_best_block(s))) {
		if (TRACING)
			osm_trace_event("  case 7");
		return grow_last(b, s, enomem);
	}
	return false;
}

struct block_meta *osm_realloc_deferred(struct block_meta *b, size_t n, struct block_meta **old, size_t *len,
				       bool *grew)
{
	osm_heap.defer_move = true;
	osm_heap.move_old = NULL;
	struct block_meta *nb = osm_realloc(b, n);
	*old = osm_heap.move_old;
	*len = osm_heap.move_len;
	*grew = osm_heap.move_grew;
	osm_heap.defer_move = false;
	osm_heap.move_old = NULL;
	return nb;
}

void osm_set_op(const char *op)
{
	osm_heap.op = op;
}

void osm_note_request(size_t n)
{
	osm_heap.count.requested += n;
}

/* docs/CLASSIC.md's cases 4 to 9 (the API handles 1 to 3): b is allocated or mapped, n > 0. */
struct block_meta *osm_realloc(struct block_meta *b, size_t n)
{
	size_t s = align_up(n), threshold = heap_threshold(osm_heap.policy.mmap_threshold);
	if (osm_realloc_keeps(b, s)) { /* the default profile: at most an eighth unused, kept as it is */
		if (TRACING)
			osm_trace_event("  slack %p %z", b, b->size);
		osm_heap.count.inplace_reallocs++;
		return b;
	}
	if (b->status == STATUS_MAPPED) {                          /* 4 */
		if (TRACING)
			osm_trace_event("  case 4");
		/* M_MMAP_MAX counts the block itself: at the limit it is resized where it is, as glibc's mremap of a
		 * mapped chunk is, not copied into the heap and mapped again at the next growth (every realloc copied
		 * the whole buffer: a review of session 62, mallopt/default/mmap_max/mapped_growth_stays_mapped) */
		if (osm_heap.policy.mmap_max)
			threshold = osm_heap.policy.mmap_threshold;
		if (mapcache_n && s > b->size && regrow_adjacent(b, s))
			return b;
		struct block_meta *kept = regrow_kept(b, s);
		if (!kept)
			kept = regrow_kept_threaded(b, s);
		if (kept)
			return move_block(b, kept, s);
		/* a shrink that leaves the block at least the static threshold stays where it is too: mremap hands the
		 * tail's pages back, as glibc's realloc of a mapped chunk always does. Moved into the heap under a raised
		 * threshold, it faulted in a copy while the old mapping stayed kept and resident: open_memstream's fclose,
		 * 34 MB cut to 20 MB, peaked at 54 MB, glibc at 34 (a review in session 59:
		 * mapcache/mapped_shrink_stays_in_place) */
		bool shrink = s < b->size && s + META_SIZE >= MMAP_THRESHOLD;
		if (shrink && shrink_keep_tail(b, s))
			return b;
		if (osm_heap.policy.use_mremap && (s + META_SIZE >= threshold || shrink)) {
			struct block_meta *nb = remap_block(b, s > b->size ? realloc_slack(s) : s);
			if (nb)
				return nb;
		}
		return move_block(b, osm_malloc(n, threshold), s);
	}
	if (s + META_SIZE >= threshold) {                          /* 5 */
		if (TRACING)
			osm_trace_event("  case 5");
		struct block_meta *kept = regrow_kept(b, s);
		if (!kept)
			kept = regrow_kept_threaded(b, s);
		if (kept || osm_heap.classic) /* docs/CLASSIC.md: a new mapping */
			return move_block(b, kept ? kept : map_block(s), s);
		/* as malloc's order: a free heap block that holds it first, then a fresh mapping, and when the kernel
		 * refuses that, once more with the kept mappings given back; a mapping alone failed where the heap had
		 * room (found by a review in session 51: protect_realloc/grow_past_threshold_takes_free_heap_block). Not
		 * a kept mapping much longer than s, as malloc's map_big would take and cut: a buffer doubling from the
		 * threshold up would cut the 64 MiB its last round left kept (regrow_kept takes it at 32 MiB), and
		 * fault all of it in again (vecgrow4: 296,000 page faults against 140,000).
		 * A growth moves into realloc's slack (an eighth more), as a growth in place takes it: buffers that grow
		 * in turn (gawk's strings appended to one after the other) moved at every call, each into the hole another
		 * had left, copying 128-320 KB every 16 bytes (1.5 s for 64 buffers to 625 KB, glibc 0.08; a review in
		 * session 59: realloc/buffers_grown_in_turn_move_geometrically). With the slack, every eighth. */
		struct block_meta *nb = NULL;
		size_t want = realloc_slack(s); /* a shrink (by more than an eighth) keeps an eighth too, as in place */
		for (int k = 0; !nb && k < 3; k++, want = s) { /* no room for the slack: s; then the kept mappings go */
			if (k == 2 && !mapcache_empty())
				break;
			nb = fit_first(want, threshold) ? heap_fit(want) : NULL;
			if (!nb)
				nb = map_block(want);
		}
		/* no mapping (the kernel refused one): a heap block, as malloc's map_refused serves such a request
		 * (found by the review of session 60's changes: growth/map_refused_takes_heap, realloc of a heap
		 * block). Not b's own growth in place, whose rule 8 absorbs its free neighbours before it knows
		 * whether they suffice: a realloc that fails leaves its block as it was (malloc_api/overflow_enomem) */
		return move_block(b, nb ? nb : map_refused(s, threshold), s);
	}
	size_t before = b->size;
	bool enomem = false;
	if (resize_in_place(b, s, &enomem)) {
		trim_used(block_end(b));
		osm_heap.count.heap_in_use += b->size - before;
		osm_heap.count.inplace_reallocs++;
		if (osm_heap.policy.eager_coalesce)
			coalesce_blocks(); /* a split-off rest meets its free neighbour now, not at the next malloc */
		count_in_use();
		return b;
	}
	osm_heap.count.heap_in_use += b->size - before; /* what rule 8 absorbed stays absorbed */
	if (enomem && osm_heap.classic) /* the default profile moves the block instead: heap_or_map may map it */
		return NULL;
	if (TRACING)
		osm_trace_event("  case 9");
	return move_block(b, heap_or_map(s), s);                  /* 9 */
}

// ------------------------------------------------------------------
// Summaries
// ------------------------------------------------------------------

struct free_sum { size_t largest, count, bytes; };

static bool sum_free(struct block_meta *b, void *arg)
{
	struct free_sum *f = arg;
	f->count++;
	f->bytes += b->size;
	if (b->size > f->largest)
		f->largest = b->size;
	return true;
}

void osm_free_summary(size_t *largest, size_t *count, size_t *bytes)
{
	struct free_sum f = { 0, 0, 0 };
	osm_index_walk(sum_free, &f);
	for (uint32_t r = osm_heap.pending; r; r = slot_at(r)->r)
		sum_free(slot_block(r), &f);
	if (osm_heap.unslotted)
		for (struct block_meta *b = osm_heap.head; b; b = osm_walk_next(b))
			if (b->status == STATUS_FREE && block_tag(b) == TAG_NOSLOT)
				sum_free(b, &f);
	*largest = f.largest;
	*count = f.count;
	*bytes = f.bytes;
}

// ------------------------------------------------------------------
// Checking headers before they are trusted: O(1), before anything changes
// ------------------------------------------------------------------

/* A header address that lies wholly inside the heap, on the 8-byte grid of the heap's blocks. */
static inline bool hdr_in_heap(const struct block_meta *p)
{
	/* offsets as integers: a forged address near the top of the address space must not wrap (fuzz_corrupt) */
	uintptr_t off = (uintptr_t)p - (uintptr_t)osm_heap.base, span = (uintptr_t)(osm_heap.end - osm_heap.base);
	return span >= META_SIZE && off <= span - META_SIZE && !(off & 7) &&
	       (!osm_heap.gaps || in_segments((const char *)p, META_SIZE));
}

/* The block after b in a walk of the whole list (the seed's best fit, the full coalescing pass, the free-block
 * summary, malloc_info): the next header lies in the heap, above b, and points back at b, or the walk stops
 * with the report. The walks visit allocated blocks too, whose headers the program can reach by an overflow,
 * and nothing else checks those on the way (fuzz_corrupt: a walk followed a rewritten `next` into a wild
 * address). Two loads and three compares a block, on paths that are O(n) already. */
struct block_meta *osm_walk_next(const struct block_meta *b)
{
	struct block_meta *n = b->next;
	if (n && (!hdr_in_heap(n) || (const char *)n <= (const char *)b || n->prev != b))
		osm_fatal_block(b, "corrupted header");
	return n;
}

/* The whole heap list walked with osm_walk_next, before a reader that trusts the links (os_heap_dump, in the record
 * layer) follows them: a forged `next` is reported here, not followed there. O(n), lock held. */
void osm_heap_links_check(void)
{
	for (const struct block_meta *b = osm_heap.head; b; b = osm_walk_next(b))
		;
	/* the mappings' list too: a link an underwrite forged sent the dump into unmapped memory, or round a loop
	 * under the lock for good (death/dump_forged_mapped_link, dump_mapped_link_to_itself; session 50) */
	for (const struct block_meta *b = osm_heap.mapped; b; b = b->next)
		if (!mapped_links_ok(b))
			osm_fatal_block(b, "corrupted header");
}

/* b's neighbours point back at it and its size stays inside the room they leave: what the core relies on
 * before it unlinks, splits or merges b. Cheap: two header loads. */
static bool heap_links_ok(const struct block_meta *b)
{
	const struct block_meta *p = b->prev, *n = b->next;
	if (p ? !hdr_in_heap(p) || p->next != b || (const char *)p >= (const char *)b ||
		    p->size > (size_t)((const char *)b - (const char *)p) - META_SIZE
	      : osm_heap.head != b)
		return false;
	if (n ? !hdr_in_heap(n) || n->prev != b : osm_heap.tail != b)
		return false;
	const char *limit = n ? (const char *)n : osm_heap.end;
	size_t room = (size_t)(limit - (const char *)b) - META_SIZE;
	/* Blocks tile the heap: each ends where the next begins, unless someone else moved the break between
	 * them (gaps). So without gaps the sizes must be exact, and a size the program rewrote, smaller or larger,
	 * in b or in the block before it, is caught the first time either is looked at. */
	if (!osm_heap.gaps)
		return b->size == room && (!p || p->size == (size_t)((const char *)b - (const char *)p) - META_SIZE);
	return b->size <= room;
}

void osm_fatal_block(const struct block_meta *b, const char *what)
{
	osm_fatal_pointer(osm_heap.op ? osm_heap.op : "malloc", what, payload((struct block_meta *)b));
}

/* A free block about to leave its structure (taken, merged, grown): its tag names its own slot, or none, and
 * its links hold. A program that wrote over a freed block's header is stopped here, before osmem follows a
 * forged link. */
void osm_check_free_block(const struct block_meta *b)
{
	uint32_t x = b->status == STATUS_FREE ? free_slot(b) : 0;
	/* TAG_NOSLOT only while some free block has no slot: a tag the program overwrote with 0xffffffff would
	 * otherwise pass, leave the block's real slot in the index for a block handed out, and wrap the count of
	 * unslotted blocks below zero, which sends every later coalesce down the full walk (fuzz_corrupt) */
	if (b->status != STATUS_FREE || !heap_links_ok(b) || (!x && (block_tag(b) != TAG_NOSLOT || !osm_heap.unslotted)) ||
	    (x && slot_at(x)->size != b->size) || (b->size & (osm_heap.policy.align - 1)))
		osm_fatal_block(b, "corrupted header");
}

/* A heap address whose header is not an allocated block's that holds: a free block (returned when allow_free: the
 * classic realloc's rule 3), else reported. Out of line: a correct program's requests never come here, and the
 * hot text has no room for it (tests/test_footprint.py). */
static __attribute__((noinline)) struct block_meta *user_block_odd(void *ptr, struct block_meta *b, const char *api,
								   bool allow_free)
{
	if (!hdr_in_heap(b))
		osm_fatal_pointer(api, "invalid pointer", ptr);
	/* a block of the list whose size, status or cookie the program overwrote: not a foreign pointer */
	if (b->prev ? hdr_in_heap(b->prev) && b->prev->next == b : osm_heap.head == b)
		if (b->next ? hdr_in_heap(b->next) && b->next->prev == b : osm_heap.tail == b)
			if (b->status != STATUS_FREE || (!free_slot(b) && block_tag(b) != TAG_NOSLOT))
				osm_fatal_pointer(api, "corrupted header", ptr);
	if (b->status == STATUS_FREE && (free_slot(b) || block_tag(b) == TAG_NOSLOT)) {
		if (allow_free)
			return b;
		osm_fatal_pointer(api, "double free", ptr);
	}
	osm_fatal_pointer(api, "invalid pointer", ptr);
}

struct block_meta *osm_user_block(void *ptr, const char *api, bool allow_free)
{
	struct block_meta *b = block_of(ptr);
	if ((uintptr_t)ptr & (osm_heap.policy.align - 1))
		osm_fatal_pointer(api, "invalid pointer", ptr);
	if (osm_in_heap(b)) {
		if (!hdr_in_heap(b) || b->status != STATUS_ALLOC || block_tag(b) != block_cookie(b))
			return user_block_odd(ptr, b, api, allow_free);
		if (!heap_links_ok(b))
			osm_fatal_pointer(api, "corrupted header", ptr);
		if (OSM_DEFERS && !osm_heap.classic && osm_deferred_marked(ptr)) /* freed, waiting for the lock */
			osm_fatal_pointer(api, "double free", ptr);
		return b;
	}
	/* Not on the heap: one of osmem's mappings, or not ours. The set of live mappings answers without reading
	 * the memory, so an unmapped, PROT_NONE or file-backed address is reported, never touched. */
	size_t size;
	switch (osm_mapset_find(b, &size)) {
	case MAPSET_LIVE:
		if (b->status != STATUS_MAPPED || block_tag(b) != block_cookie(b) || b->size != size ||
		    !mapped_links_ok(b))
			osm_fatal_pointer(api, "corrupted header", ptr);
		return b;
	case MAPSET_GONE:
		osm_fatal_pointer(api, "double free", ptr);
	default:
		osm_fatal_pointer(api, "invalid pointer", ptr);
	}
}

// ------------------------------------------------------------------
// Frees that find the lock taken (default profile)
// ------------------------------------------------------------------

/* A free of a heap block that finds the lock held by another thread does not wait for it: the block is checked
 * without the lock, as the medium caches check theirs (in the heap, no gaps; status and keyed cookie; links that
 * tile), marked freed in its payload's second word, and pushed on a lock-free stack; the next thread to take the
 * lock frees the stack's blocks first (osm_deferred_drain, from osm_lock), with every check a free makes under the
 * lock. Blocks one thread allocates and another frees (I/O buffers of 64-256 KiB handed to a worker) otherwise had
 * the two threads take turns at the lock for every block: 200,000 blocks of 64-256 KiB through a ring of 64
 * (bench/handoff.c) spent 40% of their time spinning for it.
 *
 * The stack's head word is the top block's payload address (below 2^48) with the stack's depth in its top 16
 * bits: a push is one compare-and-swap, the drain one exchange, and a stack DEFER_MAX deep makes the next free
 * wait for the lock instead (which drains it), so that what waits stays bounded whoever holds the lock. A link is
 * the next payload address xor the heap's key, checked (in the heap, carrying the mark) before it is followed: a
 * program that writes into a block it freed is reported, never followed. The mark is the payload's address keyed
 * by the heap's key and secret: a second free of the block while it waits is seen (the compare-and-swap that sets
 * the mark fails, the free takes the lock, and the drain before it has made the block free: "double free"). A
 * block waiting counts as in use in os_stats until the drain. Never in the classic profile, nor when traced (a
 * trace records each free where it happens). */
#define DEFER_MAX 64
#define DEFER_DEPTH_SHIFT 48
#define DEFER_PTR_MASK (((uint64_t)1 << DEFER_DEPTH_SHIFT) - 1)
struct osm_deferred osm_deferred;

static inline uintptr_t defer_link(uintptr_t next) { return next ^ osm_heap.key; }

#ifdef OSMEM_DROPIN /* the medium caches' checks without the lock (internal.h, heap_block_unlocked) */
struct block_meta *osm_defer_check(void *p, size_t min)
{
	return osm_heap.classic || TRACING ? NULL : heap_block_unlocked(p, min, SIZE_MAX);
}
#endif

bool osm_defer_push(struct block_meta *b)
{
	void **q = payload(b);
	uintptr_t m = osm_defer_mark(q), old = __atomic_load_n((uintptr_t *)&q[1], __ATOMIC_RELAXED);
	if (old == m || !__atomic_compare_exchange_n((uintptr_t *)&q[1], &old, m, false, __ATOMIC_RELAXED,
						     __ATOMIC_RELAXED))
		return false; /* freed already, or being freed: the lock's way reports it */
	uint64_t h = __atomic_load_n(&osm_deferred.head, __ATOMIC_RELAXED), n;
	do {
		if ((h >> DEFER_DEPTH_SHIFT) >= DEFER_MAX) {
			__atomic_store_n((uintptr_t *)&q[1], old, __ATOMIC_RELAXED); /* the caller frees it under the lock */
			return false;
		}
		__atomic_store_n((uintptr_t *)&q[0], defer_link((uintptr_t)(h & DEFER_PTR_MASK)), __ATOMIC_RELAXED);
		n = ((h >> DEFER_DEPTH_SHIFT) + 1) << DEFER_DEPTH_SHIFT | (uint64_t)(uintptr_t)q;
	} while (!__atomic_compare_exchange_n(&osm_deferred.head, &h, n, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
	return true;
}

void osm_deferred_drain(void)
{
	uint64_t h = __atomic_exchange_n(&osm_deferred.head, 0, __ATOMIC_ACQUIRE);
	const char *op = osm_heap.op;
	osm_heap.op = "free";
	void *from = NULL; /* the block whose link led here */
	for (uintptr_t a = (uintptr_t)(h & DEFER_PTR_MASK); a;) {
		void **q = (void **)a;
		struct block_meta *b = block_of(q);
		if ((a & (osm_heap.policy.align - 1)) || !osm_in_heap(b) || !hdr_in_heap(b) || !osm_deferred_marked(q))
			osm_fatal_pointer("free", "corrupted list of frees waiting for the lock", from ? from : q);
		uintptr_t next = defer_link((uintptr_t)q[0]);
		q[0] = q[1] = NULL; /* the link and the mark: malloc hands the block out again */
		osm_free(osm_user_block(q, "free", false));
		osm_heap.count.deferred_frees++;
		from = q;
		a = next;
	}
	osm_heap.op = op;
}
