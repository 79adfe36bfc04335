/* medium: the front layer's caches of medium blocks (above FRONT_MAX, 2 KiB, up to MEDIUM_MAX, 64 KiB), for
 * libosmem-malloc.so's default profile. Where front.c keeps small objects in pages of equal slots, these are the
 * core's own blocks, header and all: a thread keeps the ones it frees in bins by size and hands them out again
 * without a lock, and a transfer cache shared by the threads passes blocks between them under the front lock
 * before the core's lock is taken.
 *
 * What it owns: each thread's bins (struct front_heap's mc_* fields and struct front_stacks' mc arrays, read and
 * written by their thread alone; the fast paths, osm_front_medium_malloc and osm_front_medium_free, are inline in
 * internal.h), and the transfer cache (front lock). What it must never do: hand out a block the core could hand
 * out too (a cached block stays allocated to the core), or trust a header it has not checked (each block is
 * checked as free checks it when it goes in and when it goes back to the core). The thread heaps themselves, the
 * front lock and the order of the locks are front.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "internal.h"

/* Requests above FRONT_MAX up to MEDIUM_MAX would each take the core's lock and a splay of its index; with threads
 * allocating at once, that lock is where they meet. So a thread keeps the medium blocks it frees in bins by size
 * (internal.h: 21 bins, four per power of two), at most mc_limit a bin (medium_depth blocks) and mc_budget bytes
 * in all (4 MiB, less past 8 threads), and serves its requests from them (internal.h, osm_front_medium_malloc and
 * osm_front_medium_free: no lock, no atomic read-modify-write). The core's blocks are the requests rounded up to an
 * eighth of their power of two, so a bin's blocks come in two sizes, but for a size that a bin's misses repeat, carved
 * exactly (osm_front_medium_refill); a request takes the top block when it holds the request, else the smallest that
 * does (osm_front_medium_pick). A miss takes the one block it serves from the core under its lock (a producer thread,
 * whose blocks die elsewhere, half a bin's worth from the transfer cache below), a full bin (or a cache over its
 * budget) gives its older half back with one lock; a thread that exits, and malloc_trim, give all back; a thread that
 * meets ENOMEM gives all back and tries again. The core sees a cached block as allocated (the heap map and
 * os_heap_check show it so; os_stats counts it as free, in front_cached_*), so the core never merges it away: nothing
 * else can hand it out. The block keeps its header, checked when it goes in and when it goes back to the core (not when
 * it comes out: internal.h, medium_malloc_with), and a freed mark in its payload's second word (medium_mark, the
 * slots' with a bit flipped: a double free is caught at once, a write after free when the block comes out), cleared
 * when it goes back to the core.
 * Traced threads and the classic profile never use it (their heap is the empty heap, whose limits are 0). Measured
 * (threads-8, 8 threads of 16 B..32 KiB): 1.78 s with every medium request on the core's lock, 0.35 s with these
 * caches, glibc 0.28 s; sqlite3's peak RSS 100 MB before, 104-106 MB then; 96.6 MiB since a repeated size is carved
 * exactly (glibc 96.1). */

/* the bins above this one take one block at a time (osm_front_medium_refill) */
#define MEDIUM_BATCH_MAX ((size_t)32768)

/* How many blocks a bin may hold: 64 while the process has one thread, 16 once it has more. One thread that makes
 * and frees a few thousand medium blocks at a time (patterns' batch: rounds of 5,000 blocks of 100 B-16 KiB, all
 * freed) found 16 blocks a bin full at once, and the rest went through the core's best fit, splits and merges:
 * 64 took batch to 0.84 of its time (6 pairs, all faster; 32: 0.93), its peak RSS, sqlite3's, frag's and
 * mixed-realloc's level (the budget, 4 MiB, still bounds the bytes). With threads the 64 held more of each
 * thread's blocks idle: threads-8 +4.5 MiB of peak RSS (+13%) for no time (0.988, 6 pairs); there the 16 stay,
 * and the transfer cache passes blocks between threads. A thread whose process gained threads gives the excess
 * back at its next scavenge (medium_scavenge). Cost: a load of a global the C library keeps, on a slow path. */
static inline size_t medium_depth(void)
{
	return osm_front_program_alone() ? MEDIUM_DEPTH : MEDIUM_DEPTH_THREADED;
}

/* Slow start (tcmalloc's): bin c may hold two more blocks, up to medium_depth. Never below what the bin holds: a
 * bin filled to 64 while the process had one thread keeps its count until the thread's next scavenge gives the
 * excess back, and a limit under the count made the room (limit - count) wrap round, a block pushed past the row
 * (medium/aligned_miss_before_first_scavenge_keeps_bins_apart). Out of line: its three callers' copies cost the
 * 64 KiB hot window 60 bytes more (src/hot.ld). */
static __attribute__((noinline)) void medium_grow(struct front_heap *h, size_t c)
{
	size_t depth = medium_depth(), limit = h->mc_limit[c] + 2u < depth ? h->mc_limit[c] + 2u : depth;
	h->mc_limit[c] = (uint8_t)(limit > h->mc_count[c] ? limit : h->mc_count[c]);
}

/* A cached block (of a thread or of the transfer cache) back to the core, checked as free checks it. Core lock
 * held. */
static void medium_to_core(struct block_meta *b)
{
	void **q = payload(b);
	if (q[1] != (void *)medium_mark(q))
		osm_front_medium_bad(q, "free", "write after free");
	q[1] = NULL;
	osm_free(osm_user_block(q, "free", false));
}

/* The k oldest blocks of bin c leave h's stack (the rest move down). */
static void medium_drop_oldest(struct front_heap *h, size_t c, size_t k)
{
	size_t left = h->mc_count[c] - k;
	memmove(stacks_of(h)->mc[c], stacks_of(h)->mc[c] + k, left * sizeof stacks_of(h)->mc[c][0]);
	memmove(stacks_of(h)->mc_size[c], stacks_of(h)->mc_size[c] + k, left * sizeof stacks_of(h)->mc_size[c][0]);
	h->mc_count[c] = (uint8_t)left;
	h->mc_low[c] = (uint8_t)(h->mc_low[c] > k ? h->mc_low[c] - k : 0); /* the blocks below it moved down */
}

/* Gives the k oldest blocks of class c back to the core. Core lock held. */
static void medium_give_back(struct front_heap *h, size_t c, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		h->mc_bytes -= stacks_of(h)->mc_size[c][i]; /* the cache's own record: the header is checked by the core */
		h->mc_flushed++;
		medium_to_core(stacks_of(h)->mc[c][i]);
	}
	medium_drop_oldest(h, c, k);
}

/* The transfer cache (tcmalloc's): per bin a stack of medium blocks that threads gave back, shared, under the
 * front lock. A thread whose bin is full puts its older half here before the core; a thread that misses takes
 * half a bin from here before the core. Threads that free what others will ask for (threads-8: eight threads of
 * the same sizes) then pass blocks to each other without the core's lock and its best-fit searches, splits and
 * merges (a splay each): the core sees blocks only when this overflows (XFER_DEPTH a bin, 4-16 MiB in all), when
 * they sat a second unused, or at malloc_trim and ENOMEM, which give it all back. Its blocks keep their freed mark
 * and stay allocated to the core, as in a thread's cache; os_stats counts them in front_cached_*. */
/* Its size (session 35): with 32 blocks a bin and 4 MiB in all, 8 threads of 2-32 KiB blocks (threads-8's medium
 * half alone) sent 77,000 blocks through the core's splits and merges in 12M operations and took 1.8 times
 * tcmalloc's time. With 64 a bin and 16 MiB: 16,000 blocks, 0.80 of the time and 75% of the peak RSS (a block
 * recycled whole touches no new memory, where the core's merges and splits spread the heap); threads-8 itself
 * 0.92 of its time. The budget grows with the threads (2 MiB each, XFER_BUDGET_THREAD), from the 4 MiB it was:
 * one thread that freed 34 MB of medium blocks and then asked for 40 MB of large ones peaked 7 MB higher with
 * 16 MiB, the blocks it could have reused sitting here. What the cache holds that no thread took for a second goes
 * back to the core (osm_front_xfer_decay), whose decay returns the memory: an idle program keeps none of it. */
#define XFER_DEPTH  64
#define XFER_BUDGET ((size_t)16 << 20)       /* at most */
#define XFER_BUDGET_MIN ((size_t)4 << 20)    /* at least */
#define XFER_BUDGET_THREAD ((size_t)2 << 20) /* per thread with a cache, between the two */
static struct {
	struct block_meta *b[XFER_DEPTH];
	uint32_t size[XFER_DEPTH];
	size_t n;
	size_t low; /* the fewest blocks since osm_front_xfer_decay's last pass: those below it sat idle */
} xfer[MEDIUM_CLASSES] LARGE_BSS;
static size_t xfer_bytes, xfer_blocks, xfer_flushed; /* front lock; xfer_flushed: blocks it gave to the core */
static size_t xfer_scavenged;                        /* of xfer_flushed: given back after a second unused */

/* A cached block whose header failed the lock-free look (xfer_put), looked at again under the core's lock, where
 * its links cannot be changing: a status, cookie, size (other than the one the cache recorded) or link that still
 * fails is a header the program overwrote. Front lock held (then the core's: the documented order). */
static void medium_recheck_header(struct block_meta *b, size_t recorded, const char *api)
{
	osm_front_core_lock();
	bool ok = medium_header_ok(b) && b->size == recorded && medium_links_ok(b);
	osm_front_core_unlock();
	if (!ok)
		osm_front_medium_bad(payload(b), api, "corrupted header");
}

/* The k oldest blocks of h's bin c go to the transfer cache, as many as it takes. Front lock held. Returns how
 * many went. Each is checked as free checks it, its whole header too (the cache's pop reads only the mark and
 * `next`: internal.h, medium_malloc_with): a mark or a header the program overwrote while the block was cached is
 * reported here. The size it carries is the cache's own record, never the header's: a header rewritten with a
 * larger size and a matching `next` would otherwise travel on as a larger block (the review of session 25: a
 * 4096-byte block handed out for malloc(4608)). */
static size_t xfer_put(struct front_heap *h, size_t c, size_t k)
{
	size_t m = 0, xn = xfer[c].n, budget = osm_front_threads() * XFER_BUDGET_THREAD;
	budget = budget < XFER_BUDGET_MIN ? XFER_BUDGET_MIN : budget > XFER_BUDGET ? XFER_BUDGET : budget;
	for (; m < k && xn < XFER_DEPTH; m++) {
		struct block_meta *b = stacks_of(h)->mc[c][m];
		size_t size = stacks_of(h)->mc_size[c][m];
		void **q = payload(b);
		if (q[1] != (void *)medium_mark(q))
			osm_front_medium_bad(q, "free", "write after free");
		if (!medium_header_ok(b) || b->size != size || !medium_links_ok(b))
			medium_recheck_header(b, size, "free");
		if (xfer_bytes + size > budget)
			break;
		xfer[c].b[xn] = b;
		xfer[c].size[xn++] = (uint32_t)size;
		xfer_bytes += size;
		h->mc_bytes -= size;
	}
	/* n and the block count are peeked at without the lock (xfer_take, xfer_drain): atomic stores */
	__atomic_store_n(&xfer[c].n, xn, __ATOMIC_RELAXED);
	__atomic_store_n(&xfer_blocks, xfer_blocks + m, __ATOMIC_RELAXED);
	medium_drop_oldest(h, c, m);
	return m;
}

/* A miss of n bytes in bin c: up to `want` blocks of the bin move from the transfer cache to h's stack, a block
 * that fits n, its payload aligned to a (1: any), last (on top), if the transfer cache has one. Returns whether it
 * did. */
static bool xfer_take(struct front_heap *h, size_t c, size_t n, size_t want, size_t a)
{
	if (!__atomic_load_n(&xfer[c].n, __ATOMIC_RELAXED)) /* a racy peek: an empty bin costs no lock */
		return false;
	osm_front_lock();
	size_t fit = SIZE_MAX, room = h->mc_limit[c] - h->mc_count[c], xn = xfer[c].n;
	for (size_t j = xn; j-- > 0;)
		if (xfer[c].size[j] >= n && ((uintptr_t)payload(xfer[c].b[j]) & (a - 1)) == 0) {
			fit = j;
			break;
		}
	if (fit == SIZE_MAX || room == 0) {
		osm_front_unlock();
		return false;
	}
	if (want > room)
		want = room;
	/* The fitting one out first, the blocks above it moved down one: the bin stays ordered from the oldest put
	 * to the newest, which the decay's low-water mark relies on (the blocks below it are the ones that sat a
	 * pass). Filling the gap with the newest block instead put that block below the mark, and the next pass gave
	 * it back a moment after a thread put it (medium/transfer_cache_decay_spares_recent_blocks). The move is a
	 * few entries: the fit is the newest block that holds the request, most often at or near the top. */
	struct block_meta *top = xfer[c].b[fit];
	uint32_t top_size = xfer[c].size[fit];
	size_t taken = 1;
	xn--;
	memmove(&xfer[c].b[fit], &xfer[c].b[fit + 1], (xn - fit) * sizeof xfer[c].b[0]);
	memmove(&xfer[c].size[fit], &xfer[c].size[fit + 1], (xn - fit) * sizeof xfer[c].size[0]);
	if (fit < xfer[c].low)
		xfer[c].low--; /* an idle block left: one fewer below the mark */
	for (; taken < want && xn && h->mc_bytes + xfer[c].size[xn - 1] + top_size <= h->mc_budget; taken++) {
		xn--;
		stacks_of(h)->mc[c][h->mc_count[c]] = xfer[c].b[xn];
		stacks_of(h)->mc_size[c][h->mc_count[c]++] = xfer[c].size[xn];
		h->mc_bytes += xfer[c].size[xn];
		xfer_bytes -= xfer[c].size[xn];
	}
	stacks_of(h)->mc[c][h->mc_count[c]] = top;
	stacks_of(h)->mc_size[c][h->mc_count[c]++] = top_size;
	h->mc_bytes += top_size;
	xfer_bytes -= top_size;
	__atomic_store_n(&xfer[c].n, xn, __ATOMIC_RELAXED);
	if (xn < xfer[c].low)
		xfer[c].low = xn;
	__atomic_store_n(&xfer_blocks, xfer_blocks - taken, __ATOMIC_RELAXED);
	h->mc_shared = true; /* its misses keep the rounding (osm_front_medium_refill) */
	osm_front_unlock();
	return true;
}

/* Every block of the transfer cache goes back to the core (malloc_trim, ENOMEM). Returns whether there was any. */
static bool xfer_drain(void)
{
	if (!__atomic_load_n(&xfer_blocks, __ATOMIC_RELAXED))
		return false;
	osm_front_lock();
	osm_front_core_lock();
	osm_set_op("free");
	bool any = xfer_blocks != 0;
	for (size_t c = 0; c < MEDIUM_CLASSES; c++) {
		if (!xfer[c].n) /* its mark is 0 as well: an empty bin's page stays untouched (osm_front_xfer_decay) */
			continue;
		for (size_t i = 0; i < xfer[c].n; i++) {
			medium_to_core(xfer[c].b[i]);
			xfer_flushed++;
		}
		__atomic_store_n(&xfer[c].n, 0, __ATOMIC_RELAXED);
		xfer[c].low = 0;
	}
	xfer_bytes = 0;
	__atomic_store_n(&xfer_blocks, 0, __ATOMIC_RELAXED);
	osm_front_core_unlock();
	osm_front_unlock();
	return any;
}

/* The transfer cache's blocks that no thread took since the last pass, a second or more ago (those below each
 * bin's low-water mark: the oldest), go back to the core, whose own decay then gives their memory back (tcmalloc
 * scavenges its caches the same way). From front.c's pool_decay, once a second, front lock held; it takes the
 * core's, as pool_decay itself does. */
void osm_front_xfer_decay(void)
{
	bool locked = false;
	size_t gone = 0;
	/* An empty cache is not read either: each bin's count lies in its own page of the 16 KiB array, never written
	 * in a process that does not use the cache, so reading them took 5 page faults (the kernel's zero page) at
	 * every process's first tick (perf record -e page-faults of a 200,000-pair program) */
	if (!xfer_blocks)
		return;
	for (size_t c = 0; c < MEDIUM_CLASSES; c++) {
		/* An empty bin (its mark is 0 too) is not written: the first pass comes at a process's first tick, and
		 * a store of 0 to each bin's mark dirtied the whole 16 KiB array, 5 resident pages of .lbss in every
		 * process that never used the cache (smaps of pairs: 28 KiB of the library's .bss, now 8) */
		if (!xfer[c].n)
			continue;
		size_t k = xfer[c].low < xfer[c].n ? xfer[c].low : xfer[c].n, left = xfer[c].n - k;
		xfer[c].low = left; /* the next pass's mark starts from what stays */
		if (!k)
			continue;
		if (!locked) {
			osm_front_core_lock();
			osm_set_op("free");
			locked = true;
		}
		for (size_t i = 0; i < k; i++) {
			xfer_bytes -= xfer[c].size[i];
			medium_to_core(xfer[c].b[i]);
		}
		memmove(xfer[c].b, xfer[c].b + k, left * sizeof xfer[c].b[0]);
		memmove(xfer[c].size, xfer[c].size + k, left * sizeof xfer[c].size[0]);
		__atomic_store_n(&xfer[c].n, left, __ATOMIC_RELAXED);
		gone += k;
	}
	if (locked)
		osm_front_core_unlock();
	xfer_flushed += gone;
	xfer_scavenged += gone;
	__atomic_store_n(&xfer_blocks, xfer_blocks - gone, __ATOMIC_RELAXED);
}

void osm_front_medium_flush_all(struct front_heap *h)
{
	bool any = false;
	for (size_t c = 0; c < MEDIUM_CLASSES; c++)
		any |= h->mc_count[c] != 0;
	if (!any)
		return;
	osm_front_core_lock();
	osm_set_op("free");
	for (size_t c = 0; c < MEDIUM_CLASSES; c++)
		medium_give_back(h, c, h->mc_count[c]);
	osm_front_core_unlock();
}

/* An idle thread's whole medium cache back to the core, by another thread (front.c, steal_idle, which made
 * sure that the owner is not using it and will not until it is done). Front lock held. */
void osm_front_medium_steal(struct front_heap *h)
{
	size_t n = 0;
	for (size_t c = 0; c < MEDIUM_CLASSES; c++)
		n += h->mc_count[c];
	osm_front_medium_flush_all(h);
	h->mc_scavenged += n;
}

void osm_front_medium_trim(void)
{
	struct front_heap *h = osm_front_tl_heap;
	if (osm_front_thread_active() && mc_enter(h)) { /* else a pass is giving them back */
		osm_front_medium_flush_all(h);
		mc_leave(h);
	}
	xfer_drain();
}

_Noreturn void osm_front_medium_bad(void *p, const char *api, const char *what)
{
	osm_fatal_pointer(api, what, p);
}

/* A popped block failed the lock-free checks: the core's checks under its lock decide (a neighbour may have
 * been changing at that moment); the freed mark is the cache's own. */
void osm_front_medium_recheck(struct block_meta *b)
{
	void **q = payload(b);
	osm_lock();
	osm_set_op("malloc");
	(void)osm_user_block(q, "malloc", false);
	osm_unlock();
	if (q[1] != (void *)medium_mark(q))
		osm_front_medium_bad(q, "malloc", "write after free");
}

/* Out of memory: the transfer cache and this thread's medium cache go back to the core, and the range's released
 * segments give their address space back (front.c, osm_front_range_release). True when something did
 * and this request has not been retried yet: the caller then tries once more (osm_front_reclaim_end after). Other
 * threads may refill the transfer cache at any moment, so without the flag a failing request could retry without
 * end, each round taking both locks and a failing mmap (a review found 9 rounds for one malloc). */
static __thread bool tl_reclaim_retry __attribute__((tls_model("initial-exec")));
bool osm_front_reclaim(void)
{
	if (tl_reclaim_retry)
		return false;
	bool any = xfer_drain();
	any |= osm_front_range_release();
	struct front_heap *h = osm_front_tl_heap;
	if (osm_front_thread_active() && mc_enter(h)) { /* else a pass is giving them back */
		if (h->mc_bytes) {
			osm_front_medium_flush_all(h);
			any = true;
		}
		mc_leave(h);
	}
	/* last, with the cached blocks back in the core (one at the top kept the free top below it): the core's free
	 * top waiting for its lazy trim (heap.c, trim_due) and its kept mappings (osm_trim_for_retry). Until session 59
	 * a free top of 50 MB held RLIMIT_DATA's room for 100 ms after the frees, and malloc(64 MiB) failed where
	 * glibc, which trims at the free, served it (growth/enomem_gives_back_waiting_top) */
	osm_lock();
	any |= osm_trim_for_retry();
	osm_unlock();
	tl_reclaim_retry = any;
	return any;
}

void osm_front_reclaim_end(void)
{
	tl_reclaim_retry = false;
}

/* This thread's heap, made at its first medium slow path (a miss, a full bin's free, an aligned request: a thread's
 * requests may all be of one kind), for a use of the bins begun with mc_enter(began); NULL when it has no cache
 * (classic profile, front off, traced, exiting) or must not use it. A use begun on the empty heap was not counted
 * in: it counts itself into the heap here, the one it makes or one a signal handler made since it began, and backs
 * off as mc_enter does when a pass is giving that heap's bins back (the count stays: mc_leave(empty) takes it). */
static struct front_heap *cache_heap(struct front_heap *began)
{
	struct front_heap *h = osm_front_tl_heap;
	if (began != &osm_front_empty_heap)
		return h;
	if (h == &osm_front_empty_heap && !(h = osm_front_heap_init()))
		return NULL;
	__atomic_store_n(&h->mc_busy, (uint8_t)(__atomic_load_n(&h->mc_busy, __ATOMIC_RELAXED) + 1), __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST); /* mc_enter's order */
	return __atomic_load_n(&h->mc_steal, __ATOMIC_ACQUIRE) ? NULL : h;
}

/* The block at index j of h's bin c, swapped with the top one and popped, with the pop's checks (medium_pop). */
static void *pop_at(struct front_heap *h, size_t c, size_t j)
{
	size_t k = h->mc_count[c];
	struct block_meta *b = stacks_of(h)->mc[c][j];
	uint32_t sz = stacks_of(h)->mc_size[c][j];
	stacks_of(h)->mc[c][j] = stacks_of(h)->mc[c][k - 1];
	stacks_of(h)->mc_size[c][j] = stacks_of(h)->mc_size[c][k - 1];
	stacks_of(h)->mc[c][k - 1] = b;
	stacks_of(h)->mc_size[c][k - 1] = sz;
	return medium_pop(h, c, k);
}

/* The top block of bin c is too small for n (or there is none): the most recent block that fits (a scan of the
 * bin's sizes: one cache line for 16, four for a one-thread process's 64) is swapped to the top and popped; else a
 * refill. */
static void *medium_pick(struct front_heap *h, size_t c, size_t n)
{
	size_t k = h->mc_count[c], i = k, best = SIZE_MAX;
	for (size_t j = k; j-- > 0;) /* the smallest that fits: large blocks stay for large requests */
		if (stacks_of(h)->mc_size[c][j] >= n && stacks_of(h)->mc_size[c][j] < best)
			best = stacks_of(h)->mc_size[c][i = j];
	return i < k ? pop_at(h, c, i) : osm_front_medium_refill(h, c, n);
}
void *osm_front_medium_pick(struct front_heap *h, size_t c, size_t n)
{
	void *p = medium_pick(h, c, n);
	mc_leave(h);
	return p;
}

/* The newest block of h's bin c, else of bin cc, whose payload is aligned to a and which holds r bytes: its bin, and
 * its index in *at; MEDIUM_CLASSES when there is none. Reads the stacks' addresses and sizes, none of the blocks. */
static size_t aligned_in_bins(struct front_heap *h, size_t c, size_t cc, size_t a, size_t r, size_t *at)
{
	for (size_t bin = c;; bin = cc) {
		for (size_t j = h->mc_count[bin]; j-- > 0;) {
			uintptr_t p = (uintptr_t)payload(stacks_of(h)->mc[bin][j]);
			if (stacks_of(h)->mc_size[bin][j] >= r && (p & (a - 1)) == 0) {
				*at = j;
				return bin;
			}
		}
		if (bin == cc)
			return MEDIUM_CLASSES;
	}
}

/* memalign, aligned_alloc, posix_memalign and aligned operator new of FRONT_MAX < n <= MEDIUM_MAX with an
 * alignment above malloc's: a block of this thread's medium cache whose payload is aligned to a (most often the
 * one an aligned request of this size freed last), else one from the transfer cache, else NULL with *n rounded for
 * the core's memalign (medium_aligned_round) when the thread has a cache, so that the core's block, once freed into
 * a cache, serves the next such request. Before, each of them took the core's lock and its index, and each free
 * did too once its bin was full of aligned blocks no request took back: a loop of aligned_alloc(4096, 4096) and
 * free in 4 threads ran 30 times glibc's time (jemalloc and tcmalloc level with glibc;
 * medium/memalign_served_by_cache). A request of FRONT_MAX or less (its alignment beyond FRONT_MAX) takes a block
 * of the first bin, as jemalloc and tcmalloc give it a page of its own.
 * Why the transfer cache and the tiles (session 47): in 4 threads that free each other's blocks, a thread's
 * aligned requests found no block in its own bins as often as one in ten (the blocks they freed went to the
 * freeing thread's bins, and from full bins to the transfer cache, where only malloc's misses looked), and each
 * such miss took the core's lock, a best fit for the size and the alignment, and left the aligned block's front
 * in the heap as a free fragment: valloc of 1-64 KiB took 2.8 times tcmalloc's time and 1.5 times its memory
 * (bench/apis.py; medium/aligned_miss_takes_transfer_cache, medium/aligned_blocks_tile_the_heap).
 * Cost: a scan of up to 2 x medium_depth addresses of one or two bins, none of the blocks read; on a miss, a peek at
 * the transfer cache (its lock when it holds blocks of the bin). */
static void *medium_memalign(struct front_heap *began, size_t a, size_t *n);
void *osm_front_medium_memalign(size_t a, size_t *n)
{
	struct front_heap *h = osm_front_tl_heap;
	if (!mc_enter(h))
		return NULL; /* a pass is giving this idle cache back: the core, unrounded */
	void *p = medium_memalign(h, a, n);
	mc_leave(h);
	return p;
}

static void *medium_memalign(struct front_heap *began, size_t a, size_t *n)
{
	/* a thread's first request may be this one, and all of them may be (a thread that only calls valloc): its
	 * heap is made here as at a miss, else every such request and free took the core's lock (session 42: four
	 * threads of valloc(16..1024) and free, 1.19 s against glibc's 0.067; medium/valloc_only_thread_cached) */
	struct front_heap *h = cache_heap(began);
	if (!h)
		return NULL; /* no cache: the core, unrounded */
	size_t r = medium_aligned_round(a, *n), c = medium_bin(r), cc = medium_aligned_bin_hi(r), j;
	*n = r;
	size_t bin = aligned_in_bins(h, c, cc, a, r, &j);
	if (bin == MEDIUM_CLASSES) {
		/* the transfer cache's newest block that fits and is aligned, put on top of its bin */
		medium_grow(h, c);
		if (xfer_take(h, c, r, 1, a))
			bin = c;
		else if (cc != c && xfer_take(h, cc, r, 1, a))
			bin = cc;
		else {
			h->mc_refills++; /* a miss, which the core serves: os_stats' cache_misses (the review of session 56) */
			return NULL;
		}
		j = h->mc_count[bin] - 1;
	}
	return pop_at(h, bin, j);
}

/* Idle blocks back to the core (tcmalloc's and jemalloc's cache scavenging), in a threaded process. A bin's
 * stack is used at its top: the blocks below its low-water mark since the last look (10 ms or more ago, from this
 * thread's medium slow paths) have not been used since, and all of them go back to the core with one lock (half,
 * tcmalloc's choice, kept 1 MiB more of python3's peak). A thread's idle blocks are memory no other thread can
 * use: python3's threads each held 2.5-2.9 MiB of medium blocks at exit, every bin at or near its limit, after
 * about 12 hits a refill. Cost: a compare and a
 * store of a byte on the pop (internal.h, osm_front_medium_malloc); a clock read on the slow paths.
 * Not in one thread: its cache is the only user of its blocks, so idle ones come back to use, while the core
 * splits blocks given back for other requests (mixed-realloc's growing buffers: +11 MiB of peak RSS). */
#define SCAVENGE_NS 10000000u /* 10 ms, as the heap's decay (heap.c) */
static void medium_scavenge(struct front_heap *h)
{
	if (osm_front_program_alone())
		return;
	uint64_t now = osm_os_coarse_ns();
	if (now - h->mc_look_ns < SCAVENGE_NS)
		return;
	h->mc_look_ns = now;
	size_t idle[MEDIUM_CLASSES], any = 0;
	for (size_t c = 0; c < MEDIUM_CLASSES; c++) {
		idle[c] = h->mc_low[c] < h->mc_count[c] ? h->mc_low[c] : h->mc_count[c];
		/* a bin filled while the process had one thread (medium_depth) keeps no more than a threaded one */
		if (h->mc_count[c] - idle[c] > MEDIUM_DEPTH_THREADED)
			idle[c] = h->mc_count[c] - MEDIUM_DEPTH_THREADED;
		if (h->mc_limit[c] > MEDIUM_DEPTH_THREADED)
			h->mc_limit[c] = MEDIUM_DEPTH_THREADED;
		any += idle[c];
	}
	if (any) {
		int saved = errno;
		osm_lock();
		osm_set_op("free");
		for (size_t c = 0; c < MEDIUM_CLASSES; c++)
			medium_give_back(h, c, idle[c]);
		osm_unlock();
		h->mc_scavenged += any;
		errno = saved;
	}
	memcpy(h->mc_low, h->mc_count, sizeof h->mc_low);
}

/* A miss: blocks of bin c from the transfer cache (a batch for a producer, below), else the one block of n bytes
 * from the core. NULL when the thread has no cache (classic profile, front off, traced, exiting) or the core has
 * no memory: the caller asks the core. */
void *osm_front_medium_refill(struct front_heap *began, size_t c, size_t n)
{
	struct front_heap *h = cache_heap(began);
	if (!h)
		return NULL;
	medium_scavenge(h);
	medium_grow(h, c);
	/* Half a bin's worth from the transfer cache, up to the bin of 32 KiB (blocks to 40 KiB), for a thread that
	 * allocates medium blocks more than it frees them (a producer: its blocks die in other threads, so its bins
	 * never refill from its own frees and each of its misses would take the front lock); above 32 KiB, and for
	 * every other thread, the one block asked for. From the core, always the one block. Carving a batch from the
	 * core wrote a header into each block, and the blocks waited in the bin (session 37, 7 runs of
	 * `/usr/bin/time` each): python3's churn.py (4 threads) peaked at 69.1 MB with core batches, 64.4 without,
	 * `PYTHONMALLOC=malloc` 68.1 and 63.8, frag 1,148 and 1,120, threads-8 34.5 and 33.7, mixed-realloc 143.7
	 * and 145.0, sqlite3 level; and none was faster for them (without: frag 0.962 of the time, mixed-realloc
	 * 0.993, threads-8 1.012, python3 1.005; 8-12 paired runs, none significant). Blocks handed from one thread
	 * to another (bench/handoff.c, 2-32 KiB) took 1.32-1.38 times as long when the transfer cache too gave one
	 * block a miss, hence its batches for producers (with them: 1.016 and 0.944, level). Above 32 KiB a batch
	 * is half a megabyte that sits in the bin until the program asks for that size again (session 33: python3
	 * 64.5-65.3 MiB with them, 61.3 without). */
	/* The core's block is the request rounded to an eighth of its power of two, so that it serves the bin's
	 * other sizes later; but a miss of the size the bin's last miss had is carved exactly, where the bin keeps
	 * it (the rounded size may lie in the next bin). A program that asks for one odd size again and again gets
	 * no eighth more each time: sqlite3's page cache asks for 4,368 bytes (a 4 KiB page and its header), which
	 * rounded to 4,608, 5.5% of its largest use of memory. Rounding every request to 16 bytes only had the same
	 * effect on sqlite3 but cost threads-8 (sizes drawn at random) 17% more memory and 24% more time: a bin's
	 * blocks of many sizes served each other's requests less often (docs/TRADEOFFS.md, "Session 38").
	 * A builder's misses are carved exactly too: a thread that has freed fewer than one in eight of the medium
	 * blocks it took, and never took one from the transfer cache (mc_shared), keeps what it builds, and the
	 * eighth bought a reuse that never comes: frag's first phase (1 GiB of objects up to 16 KiB, nothing freed)
	 * peaked at 1,120 MB, glibc 1,073; 1,100 with this (session 58; 1,081 if exact blocks could leave their bin).
	 * A producer served by the transfer cache keeps the rounding: its blocks come back through other threads,
	 * and bench/handoff.c peaked 35% higher when it carved exactly (medium/producer_keeps_rounding). */
	size_t carve = n > MEDIUM_MAX ? n : medium_round(n); /* above MEDIUM_MAX: exact, to stay in the last bin */
	bool builder = !h->mc_shared && h->mc_frees * 8 < h->mc_hits + h->mc_refills;
	if (medium_bin(n) == c && (h->mc_last[c] == n || builder))
		carve = n;
	h->mc_last[c] = (uint32_t)n;
	bool producer = h->mc_frees < (h->mc_hits + h->mc_refills) / 2;
	size_t want = producer && medium_size(c) <= MEDIUM_BATCH_MAX ? h->mc_limit[c] / 2 : 1;
	if (xfer_take(h, c, n, want, 1))
		return osm_front_medium_malloc(n); /* the fitting block is on top: a hit (counted so), with the usual checks */
	h->mc_refills++;                        /* a miss: the core serves it */
	int saved = errno;
	/* no osm_front_check_heads here, unlike a large request's (override.c, core_malloc, which tst-safe-linking's
	 * 256 KiB request needs). glibc checks its fast bins at any request above its small bins (1 KiB up) while it
	 * has fast chunks; here the check of 29 classes was 660 instructions a refill, 4M of the 6M osmem took beyond
	 * glibc's in frag (callgrind, session 27). What is given up: a write after free into a cached small slot is
	 * caught when its class takes the slot back, or at the next large request, not at a medium miss. */
	osm_front_release_spare(carve);
	osm_lock();
	osm_set_op("malloc");
	osm_note_request(carve);
	struct block_meta *first = osm_malloc(carve, osm_heap.policy.mmap_threshold);
	osm_unlock();
	osm_front_idle_tick();
	errno = saved;
	return first ? payload(first) : NULL;
}

/* A free whose class stack is full (or the thread's first, or a thread without a cache): the older half goes
 * back to the core with one lock. False: no cache, the core frees b. */
static __attribute__((noinline)) bool medium_free_slow(struct block_meta *b, size_t c, const char *api,
							struct front_heap *began);
bool osm_front_medium_free_slow(struct block_meta *b, size_t c, const char *api, struct front_heap *began)
{
	bool cached = medium_free_slow(b, c, api, began);
	mc_leave(began); /* the heap the use began on (free's fast path's; medium_free_slow may make one) */
	return cached;
}

static bool medium_free_slow(struct block_meta *b, size_t c, const char *api, struct front_heap *began)
{
	struct front_heap *h = cache_heap(began);
	if (!h)
		return false;
	void **q = payload(b);
	if (q[1] == (void *)medium_mark(q))
		osm_front_medium_bad(q, api, "double free");
	medium_scavenge(h);
	/* Slow start on frees too (tcmalloc's ListTooLong): a thread that only frees (a consumer) never misses, and
	 * at a limit of 2 would take the lock for nearly every free. */
	if (h->mc_count[c] >= h->mc_limit[c])
		medium_grow(h, c);
	bool full = h->mc_count[c] >= h->mc_limit[c], over = h->mc_bytes + b->size > h->mc_budget;
	if (full || over) { /* the class's older half; over the budget, every class's older half */
		int saved = errno;
		size_t give[MEDIUM_CLASSES];
		bool core = false;
		for (size_t k = 0; k < MEDIUM_CLASSES; k++)
			give[k] = k == c || over ? h->mc_count[k] - (k == c && full ? h->mc_limit[k] / 2 : h->mc_count[k] / 2) : 0;
		osm_front_lock(); /* the transfer cache first, then the core for what it did not take */
		for (size_t k = 0; k < MEDIUM_CLASSES; k++) {
			give[k] -= xfer_put(h, k, give[k]);
			core |= give[k] != 0;
		}
		osm_front_unlock();
		if (core) {
			osm_lock();
			osm_set_op(api);
			for (size_t k = 0; k < MEDIUM_CLASSES; k++)
				medium_give_back(h, k, give[k]);
			osm_unlock();
		}
		errno = saved;
	}
	q[1] = (void *)medium_mark(q);
	stacks_of(h)->mc_size[c][h->mc_count[c]] = (uint32_t)b->size;
	stacks_of(h)->mc[c][h->mc_count[c]++] = b;
	h->mc_bytes += b->size;
	h->mc_frees++;
	return true;
}

/* The transfer cache's share of os_stats (front.c, osm_front_stats). Front lock held. */
void osm_front_medium_stats(struct front_stats *fs)
{
	fs->mc_blocks += xfer_blocks;
	fs->mc_bytes += xfer_bytes;
	fs->mc_flushed += xfer_flushed;
	fs->mc_scavenged += xfer_scavenged;
}
