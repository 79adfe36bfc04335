/* override: the malloc family, exported by libosmem-malloc.so only (libosmem.so must not replace malloc).
 *
 * glibc's contract as a program sees it: 16-byte alignment, malloc(0) is a unique pointer, free keeps errno,
 * overflow is ENOMEM, bad alignments are EINVAL, realloc(p, 0) frees, a success leaves errno as it was.
 * Small requests are served by the front layer (front.c) in the default profile; everything else runs on the one
 * heap that the os_* functions use, under its lock. Nothing is copied or zeroed under the lock. A bad pointer is
 * reported with the pointer and the name of the function it was given to, and aborts. */
#define _GNU_SOURCE
#include <emmintrin.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"
#include "osmem.h"

#define EXPORT __attribute__((visibility("default")))

static inline void *fail(int err)
{
	errno = err;
	return NULL;
}

static inline bool is_pow2(size_t a) { return a && !(a & (a - 1)); }

// ------------------------------------------------------------------
// malloc, free, calloc, realloc
// ------------------------------------------------------------------

/* The default profile's malloc(0) and calloc of 0 bytes (calloc: its factors, for the trace): an address that
 * faults at any access (strict.c's reservation, as hardened_malloc does), so a program that writes through it is
 * stopped at the write. Without the heap lock while the front is on (neither the classic profile nor strict mode)
 * and no trace runs: until session 66 every one took the lock, and a loop where a third of the requests were
 * malloc(0) ran 1.8x glibc's time in one thread, 12x in four (zero/threads_do_not_take_the_heap_lock). Traced,
 * under the lock with the request's lines. The classic profile, or no address left: a block of its own, as for 1
 * byte (CLASSIC.md), with no second try after the caches give memory back, as a larger request has. Out of line,
 * out of the hot text: core_malloc and calloc_slow only branch here. */
static __attribute__((noinline)) void *zero_request(bool zeroed, size_t nmemb, size_t size)
{
	int saved = errno; /* a success leaves errno as it was */
	bool tried = !TRACING && osm_front_dfkey;
	if (tried) {
		void *z = osm_zero_alloc();
		if (z)
			return z;
	}
	osm_lock();
	osm_set_op(zeroed ? "calloc" : "malloc");
	if (TRACING && zeroed)
		osm_trace_event("calloc %z %z t=%t", nmemb, size);
	else if (TRACING)
		osm_trace_event("malloc %z t=%t", (size_t)0);
	void *z = osm_heap.classic || tried ? NULL : osm_zero_alloc(); /* tried: full or refused, not asked twice */
	struct block_meta *b = NULL;
	size_t dirty = 0, populate = 0;
	if (!z) {
		osm_note_request(0);
		b = zeroed ? osm_malloc_zero(1, osm_heap.policy.calloc_threshold, &dirty, &populate)
			   : osm_malloc(1, osm_heap.policy.mmap_threshold);
		z = b ? payload(b) : NULL;
	}
	if (TRACING)
		osm_trace_event("= %p", z);
	osm_unlock();
	if (!z)
		return fail(ENOMEM);
	if (b && zeroed) /* with the lock let go, as calloc_slow's */
		memset(z, 0, b->status != STATUS_MAPPED ? b->size : dirty);
	errno = saved;
	return z;
}

/* free of malloc(0)'s address: a second free or a bad pointer is reported. Traced, under the lock, with its line.
 * Out of line, as zero_request: out of the hot text (tests/test_footprint.py). */
static __attribute__((noinline)) void zero_free(void *p)
{
	if (!TRACING) {
		osm_zero_check(p, "free", true);
		return;
	}
	osm_lock();
	osm_set_op("free");
	osm_trace_event("free %p t=%t", p);
	osm_zero_check(p, "free", true);
	osm_unlock();
}

/* The core's malloc: requests the front does not serve (0 bytes, large, front off, thread exiting). Out of line,
 * so that the front's fast path in malloc() saves no registers. */
__attribute__((noinline)) static void *core_malloc(size_t n)
{
	if (n > MAX_REQUEST)
		return fail(ENOMEM);
	if (!n)
		return zero_request(false, 0, 0);
	int saved = errno; /* a success leaves errno as it was, whatever failed on the way */
	osm_front_check_heads();
	osm_front_release_spare(n);
	osm_lock();
	osm_set_op("malloc");
	if (TRACING)
		osm_trace_event("malloc %z t=%t", n);
	osm_note_request(n);
	struct block_meta *b = osm_malloc(n, osm_heap.policy.mmap_threshold);
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	osm_unlock();
	osm_front_idle_tick();
	/* out of memory: the medium caches and the released segments go back, then once more */
	if (!b && osm_front_reclaim()) {
		errno = saved;
		void *r = core_malloc(n);
		osm_front_reclaim_end();
		return r;
	}
	return b ? (errno = saved, payload(b)) : fail(ENOMEM);
}

/* Strict mode (OSMEM_CHECK=strict, strict.c) and the first call of all, which reads OSMEM_CHECK, come through the
 * out-of-line paths below, not the fast paths: the front stays off in strict mode (no thread gets a heap, no
 * segment is mapped: front.c, global_init), so malloc's fast path always misses and free's never owns a pointer.
 * That saves malloc and free a load and a branch each (session 20). */

/* 1 to FRONT_MAX when the current page of the class has no free slot: the front's slow path, else the core. */
__attribute__((noinline)) static void *small_malloc(size_t n)
{
	if (osm_strict_first())
		return osm_strict_alloc(n, 0, false, "malloc");
	void *p = osm_front_malloc(n);
	return p ? p : core_malloc(n);
}

/* Above FRONT_MAX (and 0): the thread's medium cache (medium.c), else the core. Out of line. */
__attribute__((noinline)) static void *medium_malloc(size_t n)
{
	if (osm_strict_first())
		return osm_strict_alloc(n, 0, false, "malloc");
	if (n - 1 < MEDIUM_REQ_MAX) {
		void *p = osm_front_medium_malloc(n);
		if (p)
			return p;
	}
	return core_malloc(n);
}

EXPORT void *malloc(size_t n)
{
	/* 1 to FRONT_MAX: the front layer's fast path (front.c); NULL: no free slot at hand, off, or strict mode: the
	 * slow path. 0 wraps round to the core's path (zero_request): the same compare as n <= FRONT_MAX */
	if (n - 1 < FRONT_MAX) {
		void *p = osm_front_malloc_hit(n);
		if (__builtin_expect(p != NULL, 1))
			return p;
		return small_malloc(n); /* tail calls: the fast path saves no register */
	}
	return medium_malloc(n);
}

/* A core block of another thread's freeing, when the lock is taken: it waits for the lock's next holder (heap.c,
 * "Frees that find the lock taken"), checked and marked without the lock. Above the medium sizes only: a block
 * of those sizes may sit in a thread's medium cache, whose freed mark the lock's way must see. */
static bool free_without_lock(void *p)
{
	struct block_meta *b = osm_defer_check(p, MEDIUM_END_BLOCK);
	return b && osm_defer_push(b);
}

__attribute__((noinline)) static void core_free(void *p)
{
	if (osm_zero_owns(p)) { /* malloc(0)'s address: errno untouched (no system call) */
		zero_free(p);
		return;
	}
	int saved = errno;
	if (!osm_lock_try()) {
		if (free_without_lock(p))
			return; /* errno untouched */
		osm_lock();
	}
	osm_set_op("free");
	if (TRACING)
		osm_trace_event("free %p t=%t", p);
	struct block_meta *b = osm_user_block(p, "free", false);
	if (osm_front_medium_cached(b)) /* in a thread's medium cache: freed already */
		osm_fatal_pointer("free", "double free", p);
	osm_free(b);
	osm_unlock();
	osm_front_idle_tick();
	errno = saved;
}

/* Not in the front's range (NULL included): strict mode, a slot of a segment mapped outside the range,
 * a medium block this thread keeps, else the core's free. Out of line. */
__attribute__((noinline)) static void medium_free(void *p)
{
	if (osm_strict_first()) {
		osm_strict_free(p, "free");
		return;
	}
	if (osm_front_owns(p)) { /* a segment mapped outside the range (where it could not grow) */
		osm_front_free(p, "free");
		return;
	}
	if (!p || osm_front_medium_free(p, "free"))
		return;
	core_free(p);
}

EXPORT void free(void *p)
{
	if (osm_front_in_range(p)) { /* a slot of a front page, or reported there; keeps errno. NULL is not */
		osm_front_free(p, "free");
		return;
	}
	medium_free(p); /* a tail call: the slot path above saves no register */
}

/* Everything but calloc's hit: overflow, strict mode, misses, 0, medium and core sizes. Out of line. */
__attribute__((noinline)) static void *calloc_slow(size_t nmemb, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(nmemb, size, &n) || n > MAX_REQUEST)
		return fail(ENOMEM);
	if (osm_strict_first())
		return osm_strict_alloc(n, 0, true, "calloc");
	if (n - 1 < FRONT_MAX) { /* 0: the core's path, as malloc(0) */
		void *p = osm_front_malloc(n);
		if (p)
			return memset(p, 0, osm_front_slot_bytes(n));
	} else if (n - 1 < MEDIUM_REQ_MAX) {
		void *p = osm_front_medium_malloc(n);
		if (p) {
			/* the block's size, malloc_usable_size's, once its header holds as free's fast path checks
			 * it: the cache's pop compares the block's `next` with the size it keeps, not the header's
			 * size, which a program's overflow may have rewritten (fuzz/crashes, calloc_size_trusted: a
			 * memset of that size ran past the heap). A header that fails there (or a heap with gaps,
			 * where that check does not apply) is checked by the core under its lock, which reports a
			 * corrupted one. */
			struct block_meta *b = medium_user_block(p);
			size_t u;
			if (b) {
				u = b->size;
			} else {
				osm_lock();
				u = osm_user_block(p, "calloc", false)->size;
				osm_unlock();
			}
			return memset(p, 0, u);
		}
	}
	if (!n)
		return zero_request(true, nmemb, size);
	int saved = errno;
	osm_front_release_spare(n);
	osm_lock();
	osm_set_op("calloc");
	if (TRACING)
		osm_trace_event("calloc %z %z t=%t", nmemb, size);
	osm_note_request(n);
	size_t dirty, populate;
	struct block_meta *b = osm_malloc_zero(n, osm_heap.policy.calloc_threshold, &dirty, &populate);
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	osm_unlock();
	/* out of memory: the medium caches and the released segments go back, then once more */
	if (!b && osm_front_reclaim()) {
		errno = saved;
		void *r = calloc(nmemb, size);
		osm_front_reclaim_end();
		return r;
	}
	if (!b)
		return fail(ENOMEM);
	/* zeroed with the lock let go: the block is this thread's alone. Reused blocks are dirty; fresh mappings are
	 * zero; a kept mapping's are dirty as far as the core says (osm_malloc_zero). */
	if (b->status != STATUS_MAPPED)
		memset(payload(b), 0, b->size);
	else if (dirty)
		memset(payload(b), 0, dirty);
	if (populate) /* fresh pages of a program that writes what it callocs (heap.c, calloc_populate) */
		osm_os_populate_uncounted((void *)(((uintptr_t)payload(b) + osm_os_page_size() - 1) &
						   ~(uintptr_t)(osm_os_page_size() - 1)), populate);
	errno = saved;
	return payload(b);
}

/* A front slot, zeroed: malloc's hit and a tail call of memset, no stack frame. Strict mode has no front (the hit
 * misses); 0 wraps round to calloc_slow. The zeros cover the whole slot, all that malloc_usable_size says the
 * program may use, as glibc, jemalloc and mimalloc zero theirs (until session 41 only the n bytes asked for:
 * malloc_api's calloc_zeroes_usable_size). */
EXPORT void *calloc(size_t nmemb, size_t size)
{
	size_t n;
	if (!__builtin_mul_overflow(nmemb, size, &n) && n - 1 < FRONT_MAX) {
		void *p = osm_front_malloc_hit(n);
		if (__builtin_expect(p != NULL, 1))
			return memset(p, 0, osm_front_slot_bytes(n));
	}
	return calloc_slow(nmemb, size);
}

/* realloc of malloc(0)'s address: nothing to copy. Checked first (a freed or bad address is reported, also when
 * the new block cannot be had); given back once the new block is there (realloc(p, 0): at once, NULL). Traced as
 * a heap block's: realloc(p, 0) is `free P`, a move is the new block's request and result, then `free P`. */
__attribute__((noinline)) static void *zero_realloc(void *p, size_t n)
{
	int saved = errno;
	if (!TRACING) { /* no lock: the reservation's bits are atomic (strict.c) */
		osm_zero_check(p, "realloc", n == 0);
		void *q = n ? malloc(n) : NULL;
		if (!q)
			return n ? NULL : (errno = saved, NULL); /* ENOMEM, p still allocated; or p freed */
		osm_zero_check(p, "realloc", true);
		errno = saved;
		return q;
	}
	osm_lock();
	osm_set_op("realloc");
	if (!n && TRACING)
		osm_trace_event("free %p t=%t", p);
	osm_zero_check(p, "realloc", n == 0);
	osm_unlock();
	void *q = n ? malloc(n) : NULL;
	if (n && !q)
		return NULL; /* ENOMEM, p still allocated */
	if (n) {
		osm_lock();
		osm_set_op("realloc");
		if (TRACING)
			osm_trace_event("free %p t=%t", p);
		osm_zero_check(p, "realloc", true);
		osm_unlock();
	}
	errno = saved;
	return q;
}

/* realloc of a medium block to a size the block already holds and more than half of it (mimalloc's rule; a size
 * of the block's own bin, a quarter of a power of two, is always more than half): the same pointer, nothing
 * written, no lock. Until session 42 only a size of the block's bin was kept. The core's
 * way split such a block down to the request under the lock, so the next small growth found it short and moved
 * it: redis's LPUSH grows a list's listpack by about 130 bytes a push, and each push took the lock with a split and
 * a coalesce (122,000 of each in the benchmark's run; 62,000 now: shrinks into a lower bin, and threaded growths
 * the cache misses), where jemalloc keeps a block within its size class. The server's instructions (callgrind,
 * 30,000 requests of each of set, lpush, lpop and hset): 780.7M -> 763.2M. A shrink to half the block or less
 * still goes the core's way, which gives the rest back. Above half (session 42): a buffer whose size goes up and
 * down (64 buffers of 2-64 KiB reallocated at random) was split at each shrink, under the lock, and moved and
 * copied at the next growth; with this rule and the growth into a free neighbour below, 0.40 s -> 0.097 (glibc
 * 0.12, mimalloc 0.17, tcmalloc 0.15, jemalloc 0.22; realloc/medium_shrink_to_more_than_half_stays_whole). The
 * default profile only (osm_front_dfkey: the front is on); the classic profile keeps docs/CLASSIC.md's split.
 *
 * realloc of a medium block (the medium caches' sizes) to another medium size that it does not keep: a block from
 * this thread's medium cache, the copy, and the old block freed into the cache. No lock when the cache hits: about
 * 60 instructions and the copy. The same checks as free's fast path, and a freed block (its mark) goes the core's
 * way, which reports it.
 * In a process of one thread, a shrink (to half the block or less) and a growth the free block after it holds go
 * the core's way instead: the core splits the shrink, and grows the block into the free rest in place (rule 8),
 * without a copy, under a lock no other thread takes. The look at the neighbour (medium_next_free_holds) is a
 * lock-free hint the core checks again. 64 buffers of 2-64 KiB reallocated at random, one thread: 0.40 s with a
 * split at each shrink and a move at each growth, 0.27 with the half rule above alone, 0.155 with the neighbour
 * alone, 0.097 with both (glibc 0.12, mimalloc 0.17, tcmalloc 0.15, jemalloc 0.22; realloc/medium_growth_takes_
 * free_neighbour). The cache's way for the shrinks: 0.22.
 * With more threads, the core's lock is where they meet: four threads doing the same took 1.0 s with the core's
 * way (most of it waiting for the lock and the index's splay), 0.40 with the cache's (glibc 0.33, mimalloc 0.38,
 * tcmalloc 0.40, jemalloc 0.52; medium/threaded_realloc_stays_in_caches). Until session 42 a threaded
 * growth took one block from the cache (no batch) and gave the old block to the core, where any thread could take
 * it: python3's threads' caches had held its extra megabytes (peak RSS 72.4 -> 68.5 MiB in session 24). Since the
 * caches give back what sits idle 10 ms (medium.c, medium_scavenge), python3's churn.py peaks level either way
 * (15 alternated runs: 61.3 -> 61.9 MiB, PYTHONMALLOC=malloc 63.1 -> 62.8, times 1.006 and 0.997).
 * NULL: the core's way (tracing, other sizes, a miss, and one thread's shrinks and growths in place). */
static inline void *medium_realloc(void *p, size_t n)
{
	if (TRACING || n - (FRONT_MAX + 1) >= MEDIUM_MAX - FRONT_MAX)
		return NULL;
	struct block_meta *b = medium_user_block(p);
	if (!b)
		return NULL;
	if (osm_os_single_threaded() && (n <= b->size || medium_next_free_holds(b, align_up(n))))
		return NULL;
	size_t keep = b->size < n ? b->size : n;
	void *q = osm_front_medium_malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, keep);
	medium_free(p);
	return q;
}

/* p's page when p is a live slot of the front's range, checked as free's fast path checks it (a carved slot without
 * the freed mark, of a page whose limit lets its frees take the fast way, not one with slots malloc_trim set
 * aside, which have no mark), and nothing is traced; else NULL: realloc_slow's way, which reports. */
static inline struct front_page *live_slot_page(void *p)
{
	if (TRACING || !osm_front_in_range(p))
		return NULL;
	struct front_page *pg = front_page_of(p);
	return front_is_page_slot(pg, (uintptr_t)p) && ((void **)p)[1] != (void *)front_mark(p) ? pg : NULL;
}

/* realloc of a live slot to a size of the same class: the slot stays, decided inline. A string grown a byte at a
 * time: 11.7 ns a call through osm_front_usable and osm_front_keeps, glibc 6.8. */
static inline bool slot_realloc_keeps(void *p, size_t n)
{
	struct front_page *pg = n - 1 < FRONT_MAX ? live_slot_page(p) : NULL;
	return pg && osm_front_class_of[(n + 15) >> 4] == pg->cls;
}

/* realloc of a slot that slot_realloc_keeps did not keep, to 1..MAX_REQUEST bytes: the slot, checked as there
 * (live_slot_page), moves by malloc, the copy and free, each its fast path when it hits; anything else (or tracing)
 * is realloc_slow's. A
 * buffer doubled from 8 bytes to 4 KiB and freed took 250 ns a round through realloc_slow (its checks again,
 * osm_front_usable, osm_front_keeps, errno saved twice: about 200 instructions a move beyond the copy), glibc
 * 150 ns (whose top chunk grows in place), tcmalloc 185 (realloc/slot_moves_keep_bytes checks its bytes). */
static inline bool slot_realloc_moves(void *p, size_t n)
{
	return n - 1 < MAX_REQUEST && live_slot_page(p);
}

__attribute__((noinline)) static void *slot_move(void *p, size_t n)
{
	size_t u = front_page_of(p)->slot_size;
	void *q = malloc(n);
	if (q) {
		memcpy(q, p, u < n ? u : n);
		free(p);
	}
	return q;
}

/* realloc of a medium block to a size of its bin (medium_realloc's first case), decided inline. */
static inline bool medium_realloc_keeps(void *p, size_t n)
{
	if (TRACING || n - (FRONT_MAX + 1) >= MEDIUM_MAX - FRONT_MAX || !osm_front_dfkey)
		return false;
	struct block_meta *b = medium_user_block(p);
	return b && n <= b->size && n > b->size / 2;
}

/* realloc of a heap block above the medium sizes that leaves at most an eighth of it unused (heap.c,
 * realloc_slack): the block stays as it is, decided without the lock, with medium_block's checks of the header and
 * links (any of them failing: the core's way, which reports). A buffer grown a few bytes at a time (a log line
 * builder, a growing array) keeps its block for an eighth of its size at each growth: 42 ns a call under the
 * lock from 32 KiB to 128 KiB, 8.6 ns here (glibc 7.5). Not traced requests only: a traced one is a line. */
static inline bool heap_realloc_keeps(void *p, size_t n)
{
	/* dfkey 0: strict mode, front off. A front segment carved from the heap (front.c, seg_carve) is an allocated
	 * heap block whose header holds: its start is no pointer malloc returned, and kept here it handed the program
	 * the front's page descriptors and slots (front/carve/realloc_of_carved_segment_start_reported) */
	if (TRACING || n <= MEDIUM_MAX || !osm_front_dfkey || osm_front_owns(p))
		return false;
	struct block_meta *b = heap_block_unlocked(p, 0, SIZE_MAX);
	return b && ((void **)p)[1] != (void *)medium_mark(p) && !osm_deferred_marked(p) &&
	       osm_realloc_keeps(b, align_up(n));
}

/* realloc of a mapped block that leaves at most an eighth of it unused, decided without the lock: the block is
 * one this thread's realloc kept or remapped under the lock before (osm_mapkeep), and no mapped block has been
 * unlinked since, so it is still live and its header osmem's; its status and keyed cookie are checked (a header
 * the program overwrote takes the core's way, which reports). Otherwise finding a mapped header takes the lock
 * and the mapping set (osm_user_block): gawk appending to four strings, two of them mapped, spent 40% of its time
 * there, 0.30 s against glibc's 0.17. Not traced requests only. Out of line: realloc_slow inlines the test of
 * the four entries alone (hot text). */
static __attribute__((noinline)) bool mapped_keeps(void *p, size_t n)
{
	if (osm_front_tl_mapkeep.gen != __atomic_load_n(&osm_heap.mapped_gen, __ATOMIC_RELAXED) || TRACING ||
	    n > MAX_REQUEST)
		return false;
	struct block_meta *b = block_of(p);
	return b->status == STATUS_MAPPED && block_tag(b) == block_cookie(b) && osm_realloc_keeps(b, align_up(n));
}

/* After the core kept or remapped p's mapped block under the lock (untraced): the next keep takes no lock. */
static __attribute__((noinline)) void mapped_note(void *p)
{
	osm_mapkeep_note(p, osm_heap.mapped_gen);
}

/* realloc's copy of a block the core moved. From MOVE_STREAM bytes up, on AMD processors (os.c,
 * osm_os_copy_streams; OSMEM_STREAM), the destination is written with non-temporal stores: a moved block's new
 * place is most often memory freed a while ago, not in any cache, and there glibc's memcpy copies what exceeds
 * the L2 cache with ordinary stores, each of which reads its line from memory before it overwrites it. Streaming
 * stores skip that read, and leave the cache to what the program uses next (a buffer grown by realloc is written
 * at its end). glibc streams only above its non-temporal threshold, 288 MiB on the AMD EPYC hosts (it counts the
 * host's cache as shared), so its copies never stream there. mixed-realloc: 1.329 -> 1.269 s (11 runs; from
 * 128 KiB: 1.302, from 512 KiB: 1.275, from 1 MiB: no gain), python3 unchanged. On Intel memcpy's `rep movsb`
 * writes whole lines without reading them, into the cache: streaming there made mixed-realloc 1.18x slower
 * (session 73). Below MOVE_STREAM, elsewhere, or for the unaligned head and the tail, memcpy. Cost: one pass of
 * 16-byte loads and streaming stores, and a fence so that the bytes are visible before the pointer is returned;
 * a count for the statistics. The two blocks never overlap (the old one stays allocated until the copy is
 * done). */
#define MOVE_STREAM ((size_t)256 << 10)
size_t osm_streamed_moves;
static void move_copy(void *dst, const void *src, size_t n)
{
	if (n < MOVE_STREAM || !osm_os_copy_streams()) {
		memcpy(dst, src, n);
		return;
	}
	__atomic_fetch_add(&osm_streamed_moves, 1, __ATOMIC_RELAXED);
	char *d = dst;
	const char *s = src;
	size_t head = (16 - ((uintptr_t)d & 15)) & 15; /* 0 for the default profile's 16-byte payloads */
	memcpy(d, s, head);
	size_t i = head;
	for (; i + 64 <= n; i += 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)(s + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
		__m128i e = _mm_loadu_si128((const __m128i *)(s + i + 48));
		_mm_stream_si128((__m128i *)(d + i), a);
		_mm_stream_si128((__m128i *)(d + i + 16), b);
		_mm_stream_si128((__m128i *)(d + i + 32), c);
		_mm_stream_si128((__m128i *)(d + i + 48), e);
	}
	_mm_sfence();
	memcpy(d + i, s + i, n - i);
}

/* realloc of a heap or mapped block to a slot's size (1 to FRONT_MAX; the front on): a slot, the bytes that fit,
 * the old block freed, as jemalloc, tcmalloc and mimalloc move a block whose size class changes. The core would
 * split the block and keep the small object among its own blocks, header and all, where every later realloc of it
 * took the lock and a best-fit search: random reallocs of 4,096 objects between 16-516 bytes and 4-64 KB ran
 * 1.9x glibc's time, 4.5x tcmalloc's (realloc/shrink_to_slot_leaves_the_heap). The pointer is checked first:
 * medium_user_block without the lock, else osm_user_block under it, which reports a bad one before anything
 * changes. A failed malloc leaves the block as it was (NULL, ENOMEM). Traced, the move is the lines of the malloc
 * and the free that make it, as a slot's move is (front.c, osm_front_keeps). */
static void *shrink_to_slot(void *p, size_t n)
{
	struct block_meta *b = medium_user_block(p);
	if (!b) {
		osm_lock();
		osm_set_op("realloc");
		b = osm_user_block(p, "realloc", false);
		if (osm_front_medium_cached(b))
			osm_fatal_pointer("realloc", "double free", p);
		osm_unlock();
	}
	size_t keep = b->size < n ? b->size : n;
	void *q = malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, keep);
	free(p);
	return q;
}

static size_t usable_slow(void *p, const char *api);

/* realloc(p, 0) of a heap or mapped block: glibc frees and returns NULL; a bad pointer is realloc's to report.
 * Out of line, as realloc_retry: realloc_slow's rare ways stay out of the hot text. */
static __attribute__((noinline)) void *realloc_to_zero(void *p, int saved)
{
	osm_front_release_spare(0);
	osm_lock();
	osm_set_op("realloc");
	if (TRACING)
		osm_trace_event("free %p t=%t", p);
	struct block_meta *b = osm_user_block(p, "realloc", true);
	if (b->status == STATUS_FREE || osm_front_medium_cached(b))
		osm_fatal_pointer("realloc", "double free", p);
	osm_free(b);
	osm_unlock();
	errno = saved;
	return NULL;
}

static void *realloc_slow(void *p, size_t n);

/* The core had no memory for realloc(p, n): the medium caches and the released segments go back, then once more,
 * as malloc's (the block is as it was; found by a review in session 51:
 * medium/enomem_reclaims_cached_blocks_for_realloc). */
static __attribute__((noinline)) void *realloc_retry(void *p, size_t n, int saved)
{
	if (osm_front_reclaim()) {
		errno = saved;
		void *r = realloc_slow(p, n);
		osm_front_reclaim_end();
		return r;
	}
	return fail(ENOMEM);
}

/* Everything but the requests that leave a slot or a heap block where it is. Out of line. */
__attribute__((noinline)) static void *realloc_slow(void *p, size_t n)
{
	if (osm_strict_first())
		return osm_strict_realloc(p, n);
	if (!p)
		return malloc(n);
	if (osm_mapkeep_has(&osm_front_tl_mapkeep, p) && mapped_keeps(p, n))
		return p;
	if (n > MAX_REQUEST) { /* the pointer first, as glibc's realloc checks it: a bad one is reported, not ENOMEM */
		int was = errno;
		(void)usable_slow(p, "realloc");
		errno = was;
		return fail(ENOMEM);
	}
	int saved = errno; /* a path that failed on the way (mremap, then a copy that worked) must not show */
	if (osm_front_owns(p)) { /* the same size class stays in place; else a new block, the front slot freed */
		size_t u = osm_front_usable(p, "realloc");
		if (n && osm_front_keeps(u, n))
			return p;
		void *q = n ? malloc(n) : NULL;
		if (n && !q)
			return NULL;
		if (q)
			memcpy(q, p, u < n ? u : n);
		osm_front_free(p, "realloc");
		errno = saved;
		return q;
	}
	void *q = medium_realloc(p, n);
	if (q)
		return q;
	if (osm_zero_owns(p))
		return zero_realloc(p, n);
	if (n - 1 < FRONT_MAX && osm_front_dfkey)
		return shrink_to_slot(p, n);
	if (!n)
		return realloc_to_zero(p, saved);
	osm_front_release_spare(n);
	osm_lock();
	osm_set_op("realloc");
	if (TRACING)
		osm_trace_event("realloc %p %z t=%t", p, n);
	struct block_meta *b = osm_user_block(p, "realloc", false);
	if (osm_front_medium_cached(b))
		osm_fatal_pointer("realloc", "double free", p);
	osm_note_request(n);
	/* A move copies with the lock let go (the core leaves the old block allocated and names it); a traced realloc
	 * copies under the lock, so its lines stay together. */
	struct block_meta *old = NULL;
	size_t len = 0;
	bool grew = false;
	struct block_meta *nb = TRACING ? osm_realloc(b, n) : osm_realloc_deferred(b, n, &old, &len, &grew);
	if (TRACING)
		osm_trace_event("= %p", nb ? payload(nb) : NULL);
	else if (nb && !old && nb->status == STATUS_MAPPED && !osm_heap.classic)
		mapped_note(payload(nb));
	osm_unlock();
	if (!nb)
		return realloc_retry(p, n, saved);
	if (old) {
		move_copy(payload(nb), payload(old), len);
		osm_lock();
		osm_set_op("realloc");
		osm_realloc_finish(old, grew);
		osm_unlock();
	}
	errno = saved;
	return payload(nb);
}

/* A realloc that leaves its slot or heap block where it is (the same size class, the same bin, at most an eighth
 * of a larger block unused) returns before anything else, with no register saved: a string or buffer grown a few
 * bytes at a time makes such calls by the thousand. Strict mode and the first call of all never get here with a pointer these accept (strict mode maps no
 * segment and has no medium caches: osm_front_dfkey is 0). */
EXPORT void *realloc(void *p, size_t n)
{
	if (slot_realloc_keeps(p, n) || medium_realloc_keeps(p, n) || heap_realloc_keeps(p, n))
		return p;
	if (slot_realloc_moves(p, n))
		return slot_move(p, n);
	return realloc_slow(p, n); /* tail calls */
}

EXPORT void *reallocarray(void *p, size_t nmemb, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(nmemb, size, &n)) /* realloc's answer to a size too large: p checked, then ENOMEM */
		return p ? realloc_slow(p, SIZE_MAX) : fail(ENOMEM);
	return realloc(p, n);
}

// ------------------------------------------------------------------
// The aligned family
// ------------------------------------------------------------------

static void *aligned(size_t alignment, size_t n);

/* Past the front's slots: strict mode, the medium cache, the core. Out of line, so that the slots' way below saves
 * no registers (it was half of aligned_alloc(64, 16..1024)'s instructions). */
__attribute__((noinline)) static void *aligned_rest(size_t alignment, size_t n)
{
	if (osm_strict_first())
		return osm_strict_alloc(n, alignment, false, "memalign");
	if (n > MAX_REQUEST || alignment > MAX_REQUEST - n)
		return fail(ENOMEM);
	size_t asked = n; /* the medium cache's try below sets n to its tiled size */
	/* the medium cache (up to FRONT_MAX: an alignment beyond it); the front's slots were tried (aligned) */
	if ((alignment > FRONT_MAX || n > FRONT_MAX) && n - 1 < MEDIUM_MAX) {
		void *p = alignment <= 16 ? osm_front_medium_malloc(n) : osm_front_medium_memalign(alignment, &n);
		if (p)
			return p;
	}
	int saved = errno;
	osm_front_release_spare(n);
	osm_lock();
	osm_set_op("memalign");
	if (TRACING)
		osm_trace_event("memalign %z %z t=%t", alignment, n);
	osm_note_request(n);
	struct block_meta *b = osm_memalign(alignment, n ? n : 1);
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	osm_unlock();
	if (!b && osm_front_reclaim()) {
		errno = saved;
		/* the request as asked: n tiled again asked for more (memalign(4096, 2049): 8,160 bytes, not 4,064;
		 * found by a review in session 51, medium/enomem_reclaims_cached_blocks_for_memalign) */
		void *r = aligned(alignment, asked);
		osm_front_reclaim_end();
		return r;
	}
	return b ? (errno = saved, payload(b)) : fail(ENOMEM);
}

/* alignment: a power of two from 16. Up to FRONT_MAX bytes aligned up to FRONT_MAX: a slot of a class the alignment
 * divides (front.c, osm_front_memalign); strict mode's front is off, so that it misses there. */
static void *aligned(size_t alignment, size_t n)
{
	if (alignment <= FRONT_MAX && n <= FRONT_MAX && !osm_strict_first()) {
		void *p = osm_front_memalign(alignment, n);
		if (p)
			return p;
	}
	return aligned_rest(alignment, n);
}

/* glibc 2.36: an alignment that is not a power of two is rounded up to one; one too large is EINVAL. */
EXPORT void *memalign(size_t alignment, size_t n)
{
	if (alignment > SIZE_MAX / 2 + 1)
		return fail(EINVAL);
	size_t a = 16;
	while (a < alignment)
		a <<= 1;
	return aligned(a, n);
}

EXPORT void *aligned_alloc(size_t alignment, size_t n)
{
	if (!is_pow2(alignment))
		return fail(EINVAL); /* C11: a valid alignment is a power of two */
	return memalign(alignment, n);
}

EXPORT int posix_memalign(void **out, size_t alignment, size_t n)
{
	if (!is_pow2(alignment) || alignment % sizeof(void *))
		return EINVAL;
	void *p = memalign(alignment, n);
	if (!p)
		return errno; /* and errno stays ENOMEM, as glibc leaves it (programs and glibc's tests read it) */
	*out = p;
	return 0;
}

EXPORT void *valloc(size_t n)
{
	return memalign(osm_os_page_size(), n);
}

EXPORT void *pvalloc(size_t n)
{
	size_t page = osm_os_page_size();
	if (n > SIZE_MAX - page)
		return fail(ENOMEM);
	return memalign(page, n ? (n + page - 1) & ~(page - 1) : page);
}

// ------------------------------------------------------------------
// Introspection
// ------------------------------------------------------------------

/* Exact: the payload the block really has. */
/* Everything but a live front slot: strict mode, NULL, a freed or bad slot (front.c reports it), a medium block,
 * and the rest under the lock. Out of line, so that the slot path below saves no register (redis asks at every
 * malloc and free: 1.54M calls in 30,000 requests of each of set, lpush, lpop and hset, where the frame's pushes
 * and pops were 8 of each call's 44 instructions; session 20). */
__attribute__((noinline)) static size_t usable_slow(void *p, const char *api)
{
	if (osm_strict_first())
		return osm_strict_usable(p, api);
	if (!p)
		return 0;
	if (osm_front_owns(p))
		return osm_front_usable(p, api);
	/* A medium block (2-36 KiB of the heap), checked as free's fast path checks it (header, links, the freed
	 * mark), without the lock. redis asks at every malloc and free: its listpacks, query buffers and dict tables
	 * took the lock and the core's checks of the block 99,000 times in 30,000 requests of each of set, lpush,
	 * lpop and hset; now 15,700 (blocks of other sizes), and the server ran 763.2M -> 754.2M instructions
	 * (callgrind). The default profile only: in the classic one nothing else reads the heap without its lock. */
	if (osm_front_dfkey) {
		struct block_meta *b = medium_user_block(p);
		if (b)
			return b->size;
	}
	osm_lock();
	if (osm_zero_owns(p)) { /* malloc(0)'s address: 0 bytes, once checked */
		osm_zero_check(p, api, false);
		osm_unlock();
		return 0;
	}
	struct block_meta *b = osm_user_block(p, api, false);
	if (osm_front_medium_cached(b)) /* freed already: free, realloc and a released slot's size say so too */
		osm_fatal_pointer(api, "double free", p);
	size_t n = b->size;
	osm_unlock();
	return n;
}

EXPORT size_t malloc_usable_size(void *p)
{
	/* a live slot of a carved page of the front's range: its class's size, inline (redis asks at every malloc and
	 * free to count its memory). Strict mode has no front segments, and NULL is in none: both go the slow way, as
	 * do segments outside the range (usable_slow asks the segment map) and pages with slots malloc_trim set aside
	 * (limit 0: such a slot has no freed mark to tell it by) */
	if (osm_front_in_range(p)) {
		const struct front_page *pg = front_page_of(p);
		bool live = front_is_page_slot(pg, (uintptr_t)p) && (uintptr_t)((void **)p)[1] != front_mark(p);
		if (__builtin_expect(live, 1))
			return pg->slot_size;
	}
	return usable_slow(p, "malloc_usable_size");
}

// ------------------------------------------------------------------
// C23's sized frees
// ------------------------------------------------------------------

/* free_sized(p, n) and free_aligned_sized(p, a, n): C23's frees that name the block's size (and alignment). glibc
 * exports them from 2.43, where its own is handed the block without passing through free: a program built there
 * that calls them by name, or a library such as GLib that calls them when they exist (g_free_sized), would give
 * osmem's blocks to glibc's free. So the drop-in exports both, as snmalloc does, and they are free with one check
 * more. The rule is lenient, as glibc's (which ignores the size): the size may be anything up to what the block
 * holds, since realloc keeps slack (DESIGN.md), an aligned request may take a larger block and a program may
 * round its sizes down; a size larger than the block says the program believes in bytes it does not have, and is
 * reported (`osmem: free_sized(): size larger than the block 0x...`) before anything changes, after the checks of
 * free (a bad pointer or a double free is reported as such first). Strict mode checks the exact size asked for
 * (docs/STRICT.md), as it does for C++'s sized delete. Cost over free: for a slot of the front's range, a load of
 * its page's slot size and a compare; otherwise malloc_usable_size's checks first (for a core block, the lock
 * taken twice). */

/* A sized free of anything but a front slot of the range: strict mode, NULL, medium and core blocks, the classic
 * profile. Out of line. */
__attribute__((noinline)) static void free_sized_slow(void *p, size_t n, const char *api)
{
	if (osm_strict_first()) {
		osm_strict_free_sized(p, n, api);
		return;
	}
	if (!p)
		return;
	if (n > usable_slow(p, api)) /* which reports a bad pointer or a double free first */
		osm_os_fatal_pointer(api, "size larger than the block", p);
	free(p);
}

/* A front slot whose page's slot size is less than n: p checked as malloc_usable_size checks it (a bad pointer or
 * a double free is reported as such), then the size reported. */
__attribute__((noinline)) static _Noreturn void free_sized_bad(void *p, const char *api)
{
	(void)usable_slow(p, api);
	osm_os_fatal_pointer(api, "size larger than the block", p);
}

static inline void free_sized_with(void *p, size_t n, const char *api)
{
	if (osm_front_in_range(p)) { /* a slot of a front page (as malloc_usable_size reads its descriptor) */
		if (__builtin_expect(n > front_page_of(p)->slot_size, 0))
			free_sized_bad(p, api);
		osm_front_free(p, api);
		return;
	}
	free_sized_slow(p, n, api);
}

EXPORT void free_sized(void *p, size_t n)
{
	free_sized_with(p, n, "free_sized");
}

/* The alignment must be a power of two that p is aligned to (checked first: a mismatch is reported for any
 * pointer but NULL), then as free_sized. */
EXPORT void free_aligned_sized(void *p, size_t alignment, size_t n)
{
	if (p && (!is_pow2(alignment) || ((uintptr_t)p & (alignment - 1))))
		osm_os_fatal_pointer("free_aligned_sized", "alignment mismatch", p);
	free_sized_with(p, n, "free_aligned_sized");
}

EXPORT int malloc_trim(size_t pad)
{
	if (osm_strict_first()) /* the quarantine empties first (each block verified), then the trim as usual */
		osm_strict_flush("malloc_trim");
	osm_front_medium_trim(); /* this thread's medium blocks back to the core first, so they can merge and go */
	bool front = osm_front_trim(); /* front lock before heap lock, never nested the other way */
	osm_lock();
	osm_set_op("malloc_trim"); /* the name a report of a corrupted header gives */
	if (TRACING)
		osm_trace_event("malloc_trim %z t=%t", pad);
	bool released = osm_trim(pad);
	osm_unlock();
	return released || front;
}

/* The memory osmem holds from the system, each byte once: the heap, the front's mapped segments (a carved one is
 * heap), the kept mappings; the live mapped blocks apart (glibc's arena and hblkhd). mallinfo2, malloc_stats and
 * malloc_info report it: they added the carved segments twice and left the kept mappings out (the observability
 * review of session 56, stats/mallinfo2_system_bytes_each_once). */
static size_t system_bytes(const struct os_stats *st, const struct osm_stats_extra *x)
{
	return st->heap_size + st->front_bytes - x->front_carved_bytes + x->kept_bytes;
}

EXPORT struct mallinfo2 mallinfo2(void)
{
	struct os_stats st;
	struct osm_stats_extra x;
	struct mallinfo2 mi;
	osm_stats_gather(&st, &x);
	memset(&mi, 0, sizeof mi);
	mi.arena = system_bytes(&st, &x); /* the front's segments and kept mappings count, as glibc's heaps */
	mi.ordblks = st.free_blocks;
	mi.hblks = st.mapped_count;
	mi.hblkhd = st.mapped_bytes;
	mi.usmblks = st.peak_in_use;
	mi.uordblks = st.bytes_in_use - st.mapped_bytes;
	mi.fordblks = st.free_bytes + st.front_free + st.front_cached_bytes;
	mi.keepcost = st.largest_free;
	return mi;
}

EXPORT struct mallinfo mallinfo(void)
{
	struct mallinfo2 m2 = mallinfo2();
	struct mallinfo mi;
	mi.arena = (int)m2.arena;
	mi.ordblks = (int)m2.ordblks;
	mi.smblks = 0;
	mi.hblks = (int)m2.hblks;
	mi.hblkhd = (int)m2.hblkhd;
	mi.usmblks = (int)m2.usmblks;
	mi.fsmblks = 0;
	mi.uordblks = (int)m2.uordblks;
	mi.fordblks = (int)m2.fordblks;
	mi.keepcost = (int)m2.keepcost;
	return mi;
}

/* glibc's report, on the stderr stream as glibc writes it (programs redirect that stream, and glibc's own
 * tests read it back), then osmem's statistics. Formatted first, printed with no lock held. */
EXPORT void malloc_stats(void)
{
	struct os_stats st;
	char buf[512];
	int cancel;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel); /* the report is whole or not at all (glibc) */
	struct osm_stats_extra x;
	osm_stats_gather(&st, &x);
	size_t heap_in_use = st.bytes_in_use - st.mapped_bytes; /* includes the front's slots in use */
	st.heap_size = system_bytes(&st, &x);
	snprintf(buf, sizeof buf,
		 "Arena 0:\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
		 "Total (incl. mmap):\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
		 "max mmap regions = %10zu\nmax mmap bytes   = %10zu\n",
		 st.heap_size, heap_in_use, st.heap_size + st.mapped_bytes, st.bytes_in_use,
		 st.mapped_peak_count, st.mapped_peak_bytes);
	fflush(stderr);
	fputs(buf, stderr);
	fflush(stderr);
	os_stats_print(fileno(stderr) >= 0 ? fileno(stderr) : STDERR_FILENO);
	pthread_setcancelstate(cancel, NULL);
}

// ------------------------------------------------------------------
// mallopt and malloc_info
// ------------------------------------------------------------------

/* glibc's options, what osmem does with each (README, "mallopt"). Returns 1 when the option is honoured, or is
 * one osmem can ignore without breaking what the program asked for; 0 for anything else, for a value glibc
 * would refuse, and in the classic profile for every option that would change docs/CLASSIC.md's rules.
 * Honoured (default profile): M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX 0 (no mappings); each
 * turns the dynamic threshold off, as in glibc; M_MMAP_MAX n > 0 (at most n mapped blocks live: the next request
 * above the threshold comes from the heap). Accepted and ignored: M_ARENA_MAX, M_ARENA_TEST (one heap plus
 * per-thread caches, whatever the limit), M_CHECK_ACTION (a bad pointer is always reported and aborts),
 * M_MXFAST (no fastbins; the front's classes are fixed), M_PERTURB (no filling: a debugging aid). In the classic
 * profile an M_MMAP_MAX of 65536 or more (no tighter than the kernel's own limit of mappings,
 * vm.max_map_count's 65530). */
EXPORT int mallopt(int param, int value)
{
	switch (param) {
	/* M_MMAP_THRESHOLD: any value, as glibc 2.36 (a negative one reads as SIZE_MAX: nothing maps for its size;
	 * until session 41 osmem refused a negative one and any above 32 MiB, which glibc takes) */
	case M_MMAP_THRESHOLD:
		return osm_option_set(OPT_MMAP_THRESHOLD, value < 0 ? SIZE_MAX : (size_t)value);
	case M_TRIM_THRESHOLD: /* negative: never (glibc reads -1 as SIZE_MAX); 0: whenever a page is free at the top */
		return osm_option_set(OPT_TRIM_THRESHOLD, value < 0 ? 0 : value == 0 ? 1 : (size_t)value);
	case M_TOP_PAD:
		return value >= 0 && osm_option_set(OPT_TOP_PAD, (size_t)value);
	/* M_MMAP_MAX 0 or negative: nothing is mapped (glibc's count of mappings is never below a negative limit) */
	case M_MMAP_MAX:
		if (value <= 0)
			return osm_option_set(OPT_MMAP_MAX, 0);
		if (osm_option_set(OPT_MMAP_MAX, (size_t)value))
			return 1;
		return value >= 65536; /* classic: refused, but a limit no tighter than the kernel's changes nothing */
	case M_ARENA_MAX:
	case M_ARENA_TEST:
	case M_CHECK_ACTION:
	case M_PERTURB:
		return 1;
	case M_MXFAST:
		return value >= 0 && value <= 80 * (int)sizeof(size_t) / 4; /* glibc's MAX_FAST_SIZE */
	default:
		return 0;
	}
}

/* malloc_info's numbers, gathered under the heap lock and printed without it (stdio may allocate). */
#define INFO_CORE_BINS 48
struct info_bin { size_t from, to, total, count; };
struct info {
	struct info_bin front[FRONT_CLASSES], core[INFO_CORE_BINS];
	size_t fast_count, fast_bytes, rest_count, rest_bytes;
	struct os_stats st;
};

/* The front's free slots per size class, from the page descriptors of every segment (osm_front_segmap). Under
 * the heap lock: a segment is mapped and unmapped under it and leaves the map before it is unmapped, so a
 * segment found in the map stays readable until the lock is let go. The counts of pages other threads own
 * are a snapshot. Cost: one pass over the part of the map segments ever used (a bit per 4 MiB, a word at a time
 * where it is empty: from segments carved from the heap, near the program, to the range at 16-32 TiB, up to
 * 300,000 words, whose untouched pages read as the zero page) and 63 descriptors per segment. */
static void info_front(struct info *in)
{
#ifdef OSMEM_DROPIN
	size_t lo = __atomic_load_n(&osm_front_segmap_lo, __ATOMIC_ACQUIRE);
	size_t hi = __atomic_load_n(&osm_front_segmap_hi, __ATOMIC_ACQUIRE);
	for (size_t i = lo; i <= hi && i < FRONT_SEGMAP_SIZE; i++) {
		const uint64_t *leaf = __atomic_load_n(&osm_front_segmap[i >> SEGMAP_LEAF_BITS], __ATOMIC_ACQUIRE);
		if (!leaf) {
			i |= SEGMAP_LEAF_MASK; /* a part of the address space without a segment */
			continue;
		}
		if (!(i & 63) && !__atomic_load_n(&leaf[(i & SEGMAP_LEAF_MASK) >> 6], __ATOMIC_ACQUIRE)) {
			i += 63; /* a word of the map without a segment (carved ones lie far above the range's) */
			continue;
		}
		if (!osm_front_segmap_test(i, __ATOMIC_ACQUIRE))
			continue;
		const struct front_page *pages = (const struct front_page *)((uintptr_t)i << FRONT_SEG_SHIFT);
		/* not the descriptors of pages the segment never handed out (front.c, seg_links): reading them would
		 * map pages of zeros */
		uint32_t fresh = __atomic_load_n(&pages[0].seg.fresh, __ATOMIC_RELAXED);
		for (size_t k = 1; k < FRONT_PAGES - fresh; k++) {
			const struct front_page *pg = &pages[k];
			uint8_t state = __atomic_load_n(&pg->state, __ATOMIC_RELAXED);
			uint8_t cls = __atomic_load_n(&pg->cls, __ATOMIC_RELAXED);
			if (state == PG_POOL || state == PG_EMPTY || cls >= FRONT_CLASSES)
				continue;
			uint32_t used = __atomic_load_n(&pg->used, __ATOMIC_RELAXED);
			uint32_t fit = __atomic_load_n(&pg->reserved, __ATOMIC_RELAXED);
			size_t sz = __atomic_load_n(&pg->slot_size, __ATOMIC_RELAXED);
			if (sz == 0)
				continue;
			size_t n = fit > used ? fit - used : 0;
			in->front[cls].count += n;
			in->front[cls].total += n * sz;
		}
	}
	/* each class serves the requests from one above the class below it up to its slot size */
	for (size_t i = FRONT_MAX / 16; i > 0; i--) {
		struct info_bin *c = &in->front[osm_front_class_of[i]];
		if (!c->to)
			c->to = i * 16;
		c->from = (i - 1) * 16 + 1;
	}
	for (size_t c = 0; c < FRONT_CLASSES; c++) {
		in->fast_count += in->front[c].count;
		in->fast_bytes += in->front[c].total;
	}
#else
	(void)in;
#endif
}

/* The core's free blocks, by powers of two of their size: from and to are the smallest and largest in each. */
static void info_core(struct info *in)
{
	for (const struct block_meta *b = osm_heap.head; b; b = osm_walk_next(b)) {
		if (b->status != STATUS_FREE)
			continue;
		size_t k = (size_t)(63 - __builtin_clzll((unsigned long long)b->size | 1));
		struct info_bin *bin = &in->core[k < INFO_CORE_BINS ? k : INFO_CORE_BINS - 1];
		if (!bin->count || b->size < bin->from)
			bin->from = b->size;
		if (b->size > bin->to)
			bin->to = b->size;
		bin->count++;
		bin->total += b->size;
		in->rest_count++;
		in->rest_bytes += b->size;
	}
}

/* glibc's XML (malloc/malloc.c, __malloc_info), one heap: `fast` are the front's free slots, listed by size
 * class; `rest` the core's free blocks; `mmap` the blocks with their own mapping. osmem keeps no peak of the
 * memory it holds, so `system max` repeats `current`. */
EXPORT int malloc_info(int options, FILE *fp)
{
	if (options != 0 || !fp) {
		errno = EINVAL;
		return -1;
	}
	struct info in; /* 2.6 KiB of stack (glibc's takes 4 KiB for its bins) */
	memset(&in, 0, sizeof in);
	struct osm_stats_extra x;
	osm_stats_gather(&in.st, &x);
	osm_lock();
	osm_set_op("malloc_info"); /* a corrupted header found by the walk is reported under this name */
	info_front(&in);
	info_core(&in);
	osm_unlock();
	size_t sys = system_bytes(&in.st, &x);
	fputs("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", fp);
	for (size_t c = 0; c < FRONT_CLASSES; c++)
		if (in.front[c].count)
			fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n", in.front[c].from,
				in.front[c].to, in.front[c].total, in.front[c].count);
	for (size_t k = 0; k < INFO_CORE_BINS; k++)
		if (in.core[k].count)
			fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n", in.core[k].from,
				in.core[k].to, in.core[k].total, in.core[k].count);
	fprintf(fp,
		"</sizes>\n<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
		"<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
		"<system type=\"current\" size=\"%zu\"/>\n"
		"<system type=\"max\" size=\"%zu\"/>\n"
		"<aspace type=\"total\" size=\"%zu\"/>\n"
		"<aspace type=\"mprotect\" size=\"%zu\"/>\n"
		"</heap>\n",
		in.fast_count, in.fast_bytes, in.rest_count, in.rest_bytes, sys, sys, sys, sys);
	fprintf(fp,
		"<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
		"<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
		"<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
		"<system type=\"current\" size=\"%zu\"/>\n"
		"<system type=\"max\" size=\"%zu\"/>\n"
		"<aspace type=\"total\" size=\"%zu\"/>\n"
		"<aspace type=\"mprotect\" size=\"%zu\"/>\n"
		"</malloc>\n",
		in.fast_count, in.fast_bytes, in.rest_count, in.rest_bytes, in.st.mapped_count, in.st.mapped_bytes,
		sys, sys, sys, sys);
	return 0;
}

// ------------------------------------------------------------------
// glibc's other names for the same functions
// ------------------------------------------------------------------

/* glibc exports its allocator under a second set of names (__libc_malloc, __libc_free, ...; cfree, the old name of
 * free, for binaries linked before glibc 2.26), which a program or a library may call directly: wrappers that
 * forward to "the real malloc", old tools, code written for the malloc hooks' days. Were they glibc's while malloc
 * is osmem's, a block would come from one allocator and go back to the other: glibc's free of an osmem block
 * corrupts glibc's arena, osmem's free of a glibc block is reported as an invalid pointer and aborts. tcmalloc and
 * mimalloc export the same names for the same reason. Each is the public function itself (an alias: one address,
 * no extra call), so every check and the report's name ("free()") are the same. */
/* GCC wants an alias to repeat its target's attributes (malloc, alloc_size, nothrow: glibc's header declares
 * them); its `copy` attribute would, but clang, which builds the fuzz targets, knows neither the warning nor it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-attributes"
#endif
EXPORT void *__libc_malloc(size_t n) __attribute__((alias("malloc")));
EXPORT void __libc_free(void *p) __attribute__((alias("free")));
EXPORT void cfree(void *p) __attribute__((alias("free")));
EXPORT void *__libc_calloc(size_t nmemb, size_t size) __attribute__((alias("calloc")));
EXPORT void *__libc_realloc(void *p, size_t n) __attribute__((alias("realloc")));
EXPORT void *__libc_memalign(size_t alignment, size_t n) __attribute__((alias("memalign")));
EXPORT void *__libc_valloc(size_t n) __attribute__((alias("valloc")));
EXPORT void *__libc_pvalloc(size_t n) __attribute__((alias("pvalloc")));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* mallinfo: glibc's header marks it deprecated */
EXPORT struct mallinfo __libc_mallinfo(void) __attribute__((alias("mallinfo")));
#pragma GCC diagnostic pop
EXPORT int __libc_mallopt(int param, int value) __attribute__((alias("mallopt")));
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* The library's DT_FINI (the Makefile's -Wl,-fini): nothing to do, osmem's exit work runs from .fini_array
 * (osmem_end). crti's _fini, the default, does nothing either but sits after the cold text, so every exit made
 * a page fault that mapped 16 pages of code that the program never ran (the Makefile's hot.ld). */
HIDDEN void osm_dt_fini(void);
void osm_dt_fini(void)
{
}
