/* front: per-thread caches of small slots for libosmem-malloc.so's default profile (mimalloc-style sharding),
 * and the thread heaps that also hold the medium caches of core blocks (2 KiB to 64 KiB: medium.c).
 *
 * What it owns. Requests of at most FRONT_MAX (2 KiB) bytes, rounded up to one of 29 size classes (16-byte steps
 * to 128, then 4 classes per power of two to 1 KiB, 1040, and 8 from 1 KiB to 2 KiB: at most 25% internal waste,
 * 12.5% past 256). Slots have no header: a 16-byte object costs 16 bytes. Why 8 past 1 KiB, and 1040: requests of
 * a power of two and a few bytes are common there (sqlite3's 1032-byte blocks, 87,000 of them, 25,000 alive at its
 * peak), and took 1280 bytes; 1152 with the 8 classes, which cut sqlite3's peak RSS by 2.7% and threads-8's by 4%;
 * 1040 with the class of its own (glibc's chunk for it), 100.6 -> 97.4 MiB (glibc 93.9), the other workloads
 * unchanged. An aligned request takes the smallest class that holds it and whose size the alignment divides (its
 * slots are then aligned: internal.h, osm_front_aligned_class), which every power of two up to 2 KiB has. Finer
 * classes below 1 KiB were tried and cost more than they saved: each class a thread uses has a page of its own,
 * and small programs (larson, prodcon) grew by 8-15%.
 * A slot lives in a 64 KiB page of equal slots; pages come from 4 MiB segments aligned to 4 MiB whose first page
 * holds the metadata of all 64 pages, so free(p) finds its page with a mask and a shift. The segments are mapped
 * one after another in one range of address space (range_segment), so whether p is ours at all is a subtraction
 * and a compare (osm_front_in_range); segments mapped outside it (where the range could not grow) are found by a bit
 * per segment in a two-level map (osm_front_segmap, 4 MiB of address space per bit, a 64 KiB leaf mapped for each
 * 2 TiB that holds a segment), which covers all of them: no system call, no lock.
 *
 * Who touches what.
 *  - A thread's heap (struct front_heap, reached through an initial-exec TLS pointer) owns pages: only that
 *    thread pops or pushes their `free` lists, so malloc and a local free take no lock and no atomic operation.
 *  - In front of the pages, the heap's thread cache (tc[], glibc's tcache, in arrays as tcmalloc's per-CPU
 *    caches): a local free pushes the slot on its class's stack (osm_front_tc_max slots, about 32 KiB), malloc
 *    pops from it first. The slot freed last is the one handed out next, its line still hot, whichever page it
 *    lives in (without it, a free into a page that is not the current one left malloc a cold slot of the current
 *    page: larson-1 went from 67 to 82 M ops/s with it). Cached slots stay counted as used by their pages
 *    (`used`), so no page empties under them; a full cache gives its older half back (osm_front_tc_overflow),
 *    the thread's exit and malloc_trim give all back (tc_flush_all). A cached slot holds its freed mark in
 *    both of its first two words, the second read by free, the first by malloc when the slot leaves the cache
 *    (tc_slot_marked), and no link: malloc reads the
 *    stack, not the slot, so it does not wait on the slot's line (larson-1: 76 M ops/s with links in the slots,
 *    82 M with arrays).
 *  - A free by any other thread is a CAS push onto the page's `thread_free` list; the owner takes the whole
 *    list with one exchange in its slow path (page_collect). Never blocked, never lost. A thread with a heap
 *    gathers its frees into another thread's page per size class and pushes up to RB_MAX with one CAS
 *    (remote_batch; flushed at its exit, its slow path and malloc_trim): that CAS, on a line the owner takes
 *    with its exchange, was most of a remote free's cost. A free into an abandoned page is pushed at once.
 *  - Pages move between a heap and the global pool, segments are mapped and unmapped, and pages of dead threads
 *    are abandoned and adopted, all under front_mutex, in batches (BATCH pages at a time; a heap keeps up to
 *    EMPTY_KEEP empty pages of its own). Lock order: front_mutex before the core's heap lock.
 *  - A thread that exits (pthread key destructor) gives everything back: empty pages to the pool, pages with live
 *    slots become abandoned (heap NULL): other threads still free into them (thread_free) and a thread that needs a
 *    page of that class adopts them; sweeps under the lock (a thread's slow path, malloc_trim, and each pass of the
 *    idle decay, up to DECAY_SWEEP pages) return the ones that became empty.
 *  - A live thread that is not idle but holds pages other than its current ones is asked by each pass of the decay
 *    (bit 0 of its trim_seen) to collect the frees other threads pushed onto them, at its next free tick or slow
 *    path, and to give back those they emptied (heap_trim_late): a thread busy with other sizes kept the pages of a
 *    class it no longer allocated for its whole life (session 65).
 *  - A live thread found idle by two passes of the decay a second apart (a pool's worker waiting for work) has its
 *    pages other than its current ones taken the same way, and malloc_trim takes them from every thread not inside
 *    a slow path (steal_idle): the owner marks its slow paths (mc_busy), a barrier of every thread makes the mark
 *    safe to read, and its fast paths touch only its current pages and its thread cache, which stay.
 *
 * Hardening, always on and cheap. Links in free slots are encoded (next ^ (slot >> 12) ^ secret, glibc's safe
 * linking with a per-process secret) and every popped link must decode to a slot of the same page, else
 * `osmem: malloc(): corrupted free list 0x<slot>` and abort. A freed slot carries a mark in its second word (its
 * address ^ another secret; glibc's tcache key): a free that finds the mark is a double free, whoever owns the
 * page (a search of the page's lists would miss a slot another thread holds in its remote batch). A pointer that
 * is not a carved slot of a page with slots
 * is an invalid pointer. All reported through osm_os_fatal_pointer, before anything changes.
 *
 * When it is off. libosmem.so never builds this file. The drop-in bypasses it when OSMEM_PROFILE=classic and when
 * OSMEM_FRONT=0: the first slow path of each thread finds it off and every request goes to the core, as before.
 *
 * Traced (OSMEM_TRACE). The front stays on, so that a traced program's small requests are served as untraced (its
 * medium ones are not: the medium caches are off, medium.c, and the core's heap differs: docs/TRACE.md), but runs
 * serialised: every request it serves (cache hits included) and each of its decisions (pages taken, given back,
 * abandoned, adopted; remote frees; segments mapped) is a line of the trace (docs/TRACE.md), written under the
 * front lock and then the heap lock, so that front and core lines never interleave. The fast paths are not
 * touched: a traced thread keeps osm_front_tl_heap at the empty heap (its real heap is tl_heap), so its malloc finds
 * the empty page and its free finds a page of another heap, and both fall into the slow paths, which see the
 * thread's state TL_TRACED. Cost when tracing is off: a load and a branch in some slow paths (free's, realloc's
 * and memalign's entries, and each event site, like the core's). The slow path knows the size class, not the
 * request: a malloc or calloc it serves is the line `slot C` (C: the class's slot size); memalign and realloc
 * know their arguments (thread-local tl_req, set by their entry points here).
 *
 * fork. The handlers (called from osmem.c, stdio's lock first, then the front lock, then the heap lock) make
 * the child's front lock usable. The child keeps the forking thread's heap; the other threads' heaps and their
 * pages stay as they were, owned by threads that do not exist in the child: that memory is lost to the child
 * (frees into it are accepted and kept on thread_free lists), which is the price of not walking lists that a
 * thread may have been changing at the moment of the fork.
 *
 * Memory goes back lazily: a heap keeps EMPTY_KEEP empty pages, the pool keeps their memory, and a segment goes
 * back to the kernel (decommitted to PROT_NONE in the front's range, unmapped elsewhere: seg_release) only when
 * all its pages are free and segs_hold fully free ones are kept (SEGS_KEEP,
 * more once the program builds in rounds: those go at the core's next request, as many as it asks for, or once
 * their pages idled a second). malloc_trim
 * returns every free page (madvise), the free 4 KiB inside the caller's pages (not its current ones) and the
 * abandoned pages that still hold slots in use (page_trim: their free slots there are set aside until the page is
 * current again), and every free segment, at once; other threads trim their own pages later (heap_trim_late). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"
#include "osmem.h"

#define EMPTY_KEEP 8        /* empty pages a heap keeps for any class */
#define BATCH 4             /* pages moved between a heap and the pool per lock */
#define FULL_SCAN 8         /* full pages looked at for remote frees before taking a new page */
#define ABANDONED_SCAN 16   /* abandoned pages looked at per lock */
/* Slow start for pages: a thread born while SLOW_START_THREADS or more other threads have heaps leaves its
 * first requests of each class to the core (front.c, starter_core). */
#define SLOW_START_THREADS 16
#define SLOW_START_BYTES   8192 /* ... until its objects of a class would fill this much as core blocks */
/* Fully free segments kept mapped (resident: they were written) rather than unmapped. A program whose small objects
 * come and go in bursts of a few segments otherwise maps them afresh and faults every page in again: sqlite3 with 1
 * kept made 35,500 page faults (glibc 24,400), with 4 29,400, at the same peak RSS (97.4 MiB, 11 runs); with 8,
 * 27,400 but 105 MiB, as the kept segments were still resident when its heap grew to its peak. */
#define SEGS_KEEP 4
/* Past SEGS_KEEP, up to SEGS_HOLD more fully free segments (segs_hold below: once the program is seen to build in
 * rounds) stay mapped until the core is asked for memory
 * (osm_front_release_spare, before a request that may grow its heap: what sqlite3's 105 MiB above came from) or
 * their pages have idled a second (pool_decay). A program that builds and frees a million small objects in rounds
 * unmapped all but four of its 14 segments at each round's end and faulted them in again at the next: 20 rounds
 * took 0.84 s and 210,000 page faults (mimalloc 0.33 s, tcmalloc 0.52, glibc 2.37;
 * front/segments/free_segments_kept_for_the_next_round). */
#define SEGS_HOLD 64
/* How many fully free segments pool_put keeps before it gives one back: SEGS_KEEP, doubled (up to SEGS_HOLD) each
 * time a segment is mapped within a second of one given back, as the trim threshold adapts. A program that frees
 * what it built and does not build again gives the segments back at once, as before; one that builds in rounds
 * keeps them after its first few (front/segments/free_segments_given_back_without_rounds). Front lock. */
static size_t segs_hold = SEGS_KEEP;
#define POOL_DECAY_NS 1000000000ull /* a second: pool pages idle this long go back (pool_decay) */
static uint64_t seg_released_ns; /* when a segment last went back (the coarse clock) */
/* Twice the malloc_trim calls so far (atomic): a thread behind it trims (heap_trim_late). Even, so that bit 0 of a
 * heap's trim_seen is free for the decay's pass to ask a busy thread to collect its pages (steal_idle), which the
 * same compare finds at no cost on the fast paths. */
static uint32_t trim_epoch;
/* Remote frees gathered into one page before one CAS pushes them. The slots of a batch are unusable to the page's
 * owner until it is pushed: prodcon (every free remote) peaked at 3.76 MiB with 32, 3.52 with 16 or 8, in the
 * same time with 16 (0.426 -> 0.422 s over 15 runs) but 23% slower with 8; larson-2/4/8 unchanged. */
#define RB_MAX 16

const uint32_t osm_front_class_size[FRONT_CLASSES] = {
	16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512,
	640, 768, 896, 1024, 1040, 1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048,
};

/* internal.h, osm_front_aligned_class: rows for alignments 32, 64, ..., 2048 (tests/malloc_front_size_classes.c
 * checks every entry a request reaches against the sizes above; a row's entries below its alignment's class are
 * never read) */
const uint8_t osm_front_align_up[7][FRONT_CLASSES] = {
	{ 1, 1, 3, 3, 5, 5, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 21, 22, 23, 24, 25, 26, 27, 28 },
	{ 3, 3, 3, 3, 7, 7, 7, 7, 9, 9, 11, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 21, 22, 23, 24, 25, 26, 27, 28 },
	{ 7, 7, 7, 7, 7, 7, 7, 7, 11, 11, 11, 11, 13, 13, 15, 15, 16, 17, 18, 19, 21, 21, 22, 23, 24, 25, 26, 27, 28 },
	{ 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 15, 15, 15, 15, 17, 17, 19, 19, 22, 22, 22, 24, 24, 26, 26, 28, 28 },
	{ 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 19, 19, 19, 19, 24, 24, 24, 24, 24, 28, 28, 28, 28 },
	{ 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 19, 28, 28, 28, 28, 28, 28, 28, 28, 28 },
	{ 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28 },
};

/* How many freed slots a thread caches per class: about 32 KiB of them, 16 to TC_DEPTH (global_init sets them;
 * free's fast path reads them only for a page of a thread that has a heap, so after it). 16 KiB until session 55:
 * larson-1 (one thread replacing 1,000 objects of 16..1000 B) took 0.976 of the time at 32 KiB (12 pairs, all
 * faster; 64 KiB 0.972, 4 KiB 1.087), fewer frees past a full stack and mallocs past an empty one; threads-8,
 * larson-4, pairs, mixed and prodcon level, peak RSS within the runs' spread (python3 with PYTHONMALLOC=malloc,
 * pairs, the larsons, threads-8, prodcon). The classes up to 256 bytes were at 63 slots already. */
uint8_t osm_front_tc_max[FRONT_CLASSES];

/* A segment's first 16 KiB: the descriptors of its 64 pages. pages[0] is this header's own page, with no slots;
 * its last line holds the segment's own fields (seg_links). Pages are handed out from page 1 up, and a page's
 * descriptor is first written when the page is (pool_take; a heap takes up to BATCH at a time), so a program that
 * uses a dozen pages has one or two pages of its segment's metadata resident: writing all 63 descriptors at the
 * segment's birth, with its fields after them, made it five (16 KiB more in every process). Nothing reads the
 * descriptors of pages never handed out either (stats, malloc_info): a read would map them. */
struct front_seg {
	struct front_page pages[FRONT_PAGES];
};
_Static_assert(sizeof(struct front_seg) <= FRONT_PAGE_SIZE, "a segment's descriptors fit in its first page");

static inline struct front_seg_links *seg_links(struct front_seg *s) { return &s->pages[0].seg; }

// ------------------------------------------------------------------
// State
// ------------------------------------------------------------------

/* A page with no slots, and a heap whose every class points at it: the fast paths of a thread that has no heap
 * yet fall into the slow path at once, and never write here. The empty heap has no stacks below it (struct
 * front_heap_mem): its counts are 0, so nothing reads them. */
static struct front_page empty_page = { .state = PG_CUR };
HIDDEN struct front_heap osm_front_empty_heap = {
#define E4 &empty_page, &empty_page, &empty_page, &empty_page
	.cur = { E4, E4, E4, E4, E4, E4, E4, &empty_page },
#undef E4
};
_Static_assert(FRONT_CLASSES == 29, "osm_front_empty_heap lists 29 classes");

__thread struct front_heap *osm_front_tl_heap __attribute__((tls_model("initial-exec"))) = &osm_front_empty_heap;
__thread struct osm_mapkeep osm_front_tl_mapkeep __attribute__((tls_model("initial-exec")));
enum { TL_NEW, TL_ACTIVE, TL_DONE, TL_OFF, TL_TRACED };
static __thread uint8_t tl_state __attribute__((tls_model("initial-exec")));
static __thread bool tl_in_lock __attribute__((tls_model("initial-exec")));
static __thread unsigned tl_fork_skips __attribute__((tls_model("initial-exec")));
/* Set by fork's prepare handler once it holds the front lock, cleared by its parent and child handlers (as
 * lock.c's `forking` for the core's lock): pthread_atfork handlers registered before osmem's run in between on
 * this thread, and may allocate. Their requests take no front lock: this thread holds it. Until session 50 they
 * waited for it, forever, wherever a request needed the lock (a thread's first request, a new page: a child
 * handler's 4,000 mallocs of 1 KiB; protect_fork/handlers). */
static __thread bool tl_forking __attribute__((tls_model("initial-exec")));
/* Traced mode: the thread's heap (osm_front_tl_heap stays at the empty heap), whether it holds both locks for a traced
 * request (the nested front_lock and core_lock of the helpers are then no-ops), and the request a memalign or a
 * realloc entry point announced to the slow path that serves it. */
static __thread struct front_heap *tl_heap __attribute__((tls_model("initial-exec")));
static __thread bool tl_hold __attribute__((tls_model("initial-exec")));
/* Requests this thread sends straight to the core because its heap or a segment could not be mapped lately
 * (RETRY_AFTER after each failure). Without it, a thread under ENOMEM tried the mapping again at every small
 * request: a failed mmap, and for a segment the front lock too, before the core served it
 * (front/enomem/heap_mapping_not_retried_every_request, segment_mapping_not_retried_every_request: 100,000
 * attempts for 100,000 mallocs). */
static __thread uint16_t tl_map_backoff __attribute__((tls_model("initial-exec")));
#define RETRY_AFTER 256
enum { REQ_NONE, REQ_MEMALIGN, REQ_REALLOC };
static __thread struct { uint8_t kind; void *p; size_t a, n; } tl_req __attribute__((tls_model("initial-exec")));

HIDDEN uint64_t *osm_front_segmap[FRONT_SEGMAP_SIZE >> SEGMAP_LEAF_BITS]; /* the leaves (internal.h) */
static uint64_t *segmap_spare; /* a leaf mapped ahead (seg_new), so that segmap_set never fails; front lock */
HIDDEN size_t osm_front_segmap_lo = FRONT_SEGMAP_SIZE, osm_front_segmap_hi;
/* lo starts at 2^63: a reader that sees the first segment's span before its lo (the two stores are apart) still
 * finds no user pointer (below 2^47) in range, NULL included */
HIDDEN struct osm_front_range osm_front_range __attribute__((aligned(16))) = { RANGE_UNSET, 0 };
/* (n + 15) / 16 -> the smallest class that holds n (generated from class_size; checked at start-up) */
const uint8_t osm_front_class_of[FRONT_MAX / 16 + 1] = {
	0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11,
	11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15,
	15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17,
	17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19,
	19, 20, 21, 21, 21, 21, 21, 21, 21, 22, 22, 22, 22, 22, 22, 22,
	22, 23, 23, 23, 23, 23, 23, 23, 23, 24, 24, 24, 24, 24, 24, 24,
	24, 25, 25, 25, 25, 25, 25, 25, 25, 26, 26, 26, 26, 26, 26, 26,
	26, 27, 27, 27, 27, 27, 27, 27, 27, 28, 28, 28, 28, 28, 28, 28,
	28,
};
HIDDEN uintptr_t osm_front_key, osm_front_dfkey;

/* Everything below is guarded by front_mutex. */
/* The front lock: a lock word (internal.h, osm_os_lock_take), as the core's: uncontended a CAS and an exchange;
 * contended a short spin, then a futex. A pthread mutex sleeps at once, and its critical sections here are a few
 * hundred nanoseconds: threads-8 spent its waits in futex calls. */
static struct osm_lock_line front_mutex_line;
#define front_mutex (front_mutex_line.word)
static enum { G_UNSET, G_ON, G_OFF } global_state;
static bool front_traced;                            /* set once, before the first page exists (atomic reads) */
static pthread_key_t exit_key;
static struct front_seg *segments;
static size_t n_segments, n_free_segments;
static struct front_list pool;                       /* pages of all segments given back: free, resident */
static struct front_list pool_cold;                  /* pool pages whose memory went back to the kernel */
static uint64_t pool_decay_last;                     /* the last pass of pool_decay (atomic reads) */
static uint64_t reap_last;                           /* the last heaps_reap of osm_front_idle_tick (atomic) */
static size_t pool_discarded;                        /* bytes pool_decay gave back (os_stats: idle_released) */
static struct front_seg *fresh_seg;                  /* the segment with pages never handed out, if any */
static struct front_list abandoned[FRONT_CLASSES];
static size_t n_abandoned, n_abandoned_cls[FRONT_CLASSES];
static struct front_heap *live_heaps, *spare_heaps;
static size_t n_live;
static struct { size_t hits, misses, frees, remote_freed, collected, mc_hits, mc_frees, mc_refills, mc_flushed, mc_scavenged; } dead; /* the counters of exited threads */
static size_t orphan_frees; /* frees by threads without a heap (atomic) */
static size_t orphan_remote_freed;                   /* remote frees by threads without a heap (atomic) */
/* In a fork's child, what the caches of the threads that do not exist there held when it forked (their slots still
 * counted as used by their pages, their medium blocks allocated in the core's view): cached, and lost to the child,
 * so os_stats counts them as cached, as before the child's heaps list lost them (osm_front_fork_child). */
static struct { size_t tc_slots, tc_bytes, mc_blocks, mc_bytes; } ghost;

// ------------------------------------------------------------------
// Lists of pages
// ------------------------------------------------------------------

static void list_push(struct front_list *l, struct front_page *pg)
{
	pg->prev = l->last;
	pg->next = NULL;
	if (l->last)
		l->last->next = pg;
	else
		l->first = pg;
	l->last = pg;
}

static void list_remove(struct front_list *l, struct front_page *pg)
{
	if (pg->prev)
		pg->prev->next = pg->next;
	else
		l->first = pg->next;
	if (pg->next)
		pg->next->prev = pg->prev;
	else
		l->last = pg->prev;
	pg->next = pg->prev = NULL;
}

static struct front_page *list_pop(struct front_list *l)
{
	struct front_page *pg = l->first;
	if (pg)
		list_remove(l, pg);
	return pg;
}

static inline struct front_seg *seg_of(const struct front_page *pg)
{
	return (struct front_seg *)((uintptr_t)pg & ~(FRONT_SEG_SIZE - 1));
}

/* The address of the page's memory (its slot 0), formatted or not: what the trace names a page by. */
static inline void *page_addr(struct front_page *pg)
{
	return (char *)seg_of(pg) + (size_t)(pg - seg_of(pg)->pages) * FRONT_PAGE_SIZE;
}

/* The 4 KiB of a carved segment (seg_carve) the front never gives back: its last, whose last 32 bytes are not the
 * segment's (the header of the heap block after it), as a bit of a page's 4 KiB (page_trim); 0 elsewhere. */
static inline uint16_t seg_tail_kept(const struct front_page *pg)
{
	return seg_links(seg_of(pg))->carved && pg == &seg_of(pg)->pages[FRONT_PAGES - 1] ? (uint16_t)0x8000 : 0;
}

static inline void set_heap(struct front_page *pg, struct front_heap *h)
{
	__atomic_store_n(&pg->heap, h, __ATOMIC_RELAXED);
}

// ------------------------------------------------------------------
// The lock (signal-safe against a fork from a handler, like osmem.c's)
// ------------------------------------------------------------------

/* The word holds its owner's thread id, as the core's lock does: fork's prepare handler (from a signal handler too)
 * must tell a thread that holds the lock, whose fork cannot wait for it, from one that only waits for it, whose fork
 * must wait like any other. tl_in_lock, set before the wait, told neither: a fork from a handler that interrupted a
 * wait skipped the lock and copied a front another thread was changing (until session 50;
 * protect_fork_waiter/fork_waits_for_front_lock). */
static void front_lock(void)
{
	if (tl_hold || tl_forking)
		return;
	tl_in_lock = true;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	osm_os_lock_take(&front_mutex, osm_lock_self_id());
}

static bool front_held_by_self(void)
{
	return (__atomic_load_n(&front_mutex, __ATOMIC_RELAXED) & ~OSM_LOCK_WAITERS) == osm_lock_self_id();
}

static void front_unlock(void)
{
	if (tl_hold || tl_forking)
		return;
	osm_os_lock_give(&front_mutex);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	tl_in_lock = false;
}

/* The core's lock, for the system calls the front makes through os.c (front lock held or not: that order). */
static void core_lock(void)
{
	if (!tl_hold)
		osm_lock();
}

static void core_unlock(void)
{
	if (!tl_hold)
		osm_unlock();
}

static inline bool front_tracing(void)
{
	return __builtin_expect(__atomic_load_n(&front_traced, __ATOMIC_RELAXED), 0);
}

/* A traced request: the front lock, then the heap lock (the trace's lock), held until trace_end. */
static void trace_begin(void)
{
	front_lock();
	osm_lock();
	tl_hold = true;
}

/* The front lock goes first: osm_unlock writes the queued trace (lock.c, osm_trace_after_unlock), and a write
 * that blocks (a pipe nobody reads fast enough, a slow disk) must stall this thread only. Released the other way
 * round, every thread's next small request waited for the front lock behind that write
 * (observe: trace/blocked_writer_stalls_no_other_thread). */
static void trace_end(void)
{
	tl_hold = false;
	front_unlock();
	osm_unlock();
}

/* The same, for medium.c. */
void osm_front_lock(void) { front_lock(); }
void osm_front_unlock(void) { front_unlock(); }
void osm_front_core_lock(void) { core_lock(); }
void osm_front_core_unlock(void) { core_unlock(); }

/* A fork from a handler that interrupted this thread's wait for the lock: the wait's tl_in_lock, which the fork's
 * own lock and unlock overwrite, is put back after them (the wait resumes when the handler returns). */
static __thread bool tl_fork_in_lock __attribute__((tls_model("initial-exec")));

void osm_front_fork_prepare(void)
{
	if (front_held_by_self()) {
		tl_fork_skips++;
	} else {
		tl_fork_in_lock = tl_in_lock;
		front_lock();
		tl_forking = true;
	}
}

void osm_front_fork_parent(void)
{
	if (tl_fork_skips) {
		tl_fork_skips--;
	} else {
		tl_forking = false;
		front_unlock();
		tl_in_lock = tl_fork_in_lock;
	}
}

/* A heap leaves the live ones (its thread exited, or does not exist in a fork's child): its counters join the dead
 * threads'. Front lock held (or the child of a fork, which has one thread). */
static void heap_unlink(struct front_heap *h)
{
	dead.hits += h->hits;
	dead.mc_hits += h->mc_hits;
	dead.mc_frees += h->mc_frees;
	dead.mc_refills += h->mc_refills;
	dead.mc_flushed += h->mc_flushed;
	dead.mc_scavenged += h->mc_scavenged;
	dead.misses += h->misses;
	dead.frees += h->frees;
	dead.remote_freed += __atomic_load_n(&h->remote_freed, __ATOMIC_RELAXED);
	dead.collected += h->collected;
	if (h->prev)
		h->prev->next = h->next;
	else
		live_heaps = h->next;
	if (h->next)
		h->next->prev = h->prev;
	n_live--;
}

/* Only the forking thread lives on in the child: the other heaps leave the list of live heaps, their counters
 * joining the dead threads', so that os_stats' front_threads and a new thread's share of the medium budget count
 * the child's threads (until session 41 a child of a program of 5 threads said 5). Their pages stay as they were
 * (front.c's header, "fork") and still name them as owner, so the structs are not reused (not spare_heaps): a
 * thread of the child that got one would own pages in whatever state the fork caught them. The front lock was
 * held across the fork (osm_front_fork_prepare), so the list is whole; the child has one thread, no lock needed. */
void osm_front_fork_child(void)
{
	front_mutex = 0;
	tl_in_lock = tl_fork_skips ? false : tl_fork_in_lock;
	tl_forking = false;
	tl_fork_skips = 0;
	struct front_heap *mine = tl_state == TL_TRACED ? tl_heap : osm_front_tl_heap;
	if (mine != &osm_front_empty_heap && mine)
		mine->tid = osm_os_thread_id(); /* the child's thread: heaps_reap must find it alive */
	for (struct front_heap *h = live_heaps, *next; h; h = next) {
		next = h->next;
		if (h == mine)
			continue;
		for (size_t c = 0; c < FRONT_CLASSES; c++) {
			ghost.tc_slots += tc_count(h, c);
			ghost.tc_bytes += tc_count(h, c) * osm_front_class_size[c];
		}
		for (size_t c = 0; c < MEDIUM_CLASSES; c++)
			ghost.mc_blocks += h->mc_count[c];
		ghost.mc_bytes += h->mc_bytes;
		heap_unlink(h);
		h->next = h->prev = NULL;
	}
}

// ------------------------------------------------------------------
// Pages: format, carve, pop, collect
// ------------------------------------------------------------------

static void page_format(struct front_page *pg, struct front_heap *h, size_t cls)
{
	size_t idx = (size_t)(pg - seg_of(pg)->pages);
	pg->cls = (uint8_t)cls;
	pg->slot_size = osm_front_class_size[cls];
	pg->reserved = (uint32_t)((FRONT_PAGE_SIZE - (seg_tail_kept(pg) ? META_SIZE : 0)) / pg->slot_size);
	pg->capacity = 0;
	pg->start = (uintptr_t)seg_of(pg) + idx * FRONT_PAGE_SIZE;
	pg->span = 0;
	pg->magic = slot_magic(pg->slot_size);
	pg->limit = 0;
	__atomic_store_n(&pg->parked, 0, __ATOMIC_RELAXED);
	pg->bare = 0;
	pg->free = NULL;
	pg->used = 0;
	__atomic_store_n(&pg->thread_free, 0, __ATOMIC_RELAXED);
	set_heap(pg, h);
	if (TRACING)
		osm_trace_event("  page %p %z %z", (void *)pg->start, (size_t)pg->slot_size, (size_t)pg->reserved);
}

/* A page that holds no slots (pool, empty cache): every pointer into it is invalid. */
static void page_unformat(struct front_page *pg, uint8_t state)
{
	pg->state = state;
	pg->span = 0;
	pg->magic = 0;
	pg->limit = 0;
	__atomic_store_n(&pg->parked, 0, __ATOMIC_RELAXED);
	pg->bare = 0;
	pg->free = NULL;
	pg->used = 0;
	set_heap(pg, NULL);
}

/* The mask of the 4 KiB pages (bits 0-15) that the slot at offset off of a page, of size bytes, lies in. */
static inline uint32_t small_pages_of(uintptr_t off, uint32_t size)
{
	unsigned lo = (unsigned)(off >> 12), hi = (unsigned)((off + size - 1) >> 12);
	return ((2u << hi) - 1) & ~((1u << lo) - 1);
}

/* Whether slot p of pg lies (in part) in memory malloc_trim gave back (page_trim): it is free, set aside, and its
 * freed mark is gone with the memory. Any thread. */
static inline bool slot_parked(const struct front_page *pg, uintptr_t p)
{
	uint16_t parked = __atomic_load_n(&pg->parked, __ATOMIC_RELAXED);
	return parked && (small_pages_of(p & (FRONT_PAGE_SIZE - 1), pg->slot_size) & parked);
}

/* The slots malloc_trim set aside (page_trim) go back on the free list, marked free, when the page becomes its
 * class's current page again (slow_malloc): the program allocates from it now, and the released memory faults in
 * as the slots are written. The page's frees take the fast path again (limit). Owner. */
static void page_unpark(struct front_page *pg)
{
	uint16_t parked = pg->parked;
	uint32_t size = pg->slot_size, n = 0;
	void *next = pg->free;
	for (uint32_t i = pg->capacity; i-- > 0;) {
		if (!(small_pages_of((uintptr_t)i * size, size) & parked))
			continue;
		void **s = (void **)(pg->start + (uintptr_t)i * size);
		s[0] = (void *)front_enc(s, next);
		s[1] = (void *)front_mark(s);
		next = s;
		n++;
	}
	pg->free = next;
	__atomic_store_n(&pg->parked, 0, __ATOMIC_RELAXED);
	pg->limit = pg->capacity * (uint32_t)(pg->magic * pg->slot_size);
	if (TRACING)
		osm_trace_event("  page_refill %p %z", page_addr(pg), (size_t)n);
}

/* Carves up to 4 KiB of never-used slots into the free list (at least one slot), so a fresh page faults in its
 * memory as it is used, not at once. Returns false when the page is all carved. Never on a page with slots set
 * aside (only the current page is carved, and it has none: page_unpark). */
static bool page_extend(struct front_page *pg)
{
	if (pg->capacity == pg->reserved)
		return false;
	uint32_t n = 4096 / pg->slot_size, left = pg->reserved - pg->capacity;
	if (n < 1)
		n = 1;
	if (n > left)
		n = left;
	char *first = (char *)pg->start + (size_t)pg->capacity * pg->slot_size;
	void *next = pg->free;
	for (uint32_t i = n; i-- > 0;) {
		void **s = (void **)(first + (size_t)i * pg->slot_size);
		s[0] = (void *)front_enc(s, next);
		s[1] = (void *)front_mark(s);
		next = s;
	}
	pg->free = next;
	pg->capacity += n;
	pg->span = (uintptr_t)pg->capacity * pg->slot_size;
	pg->limit = pg->capacity * (uint32_t)(pg->magic * pg->slot_size); /* capacity * e (slot_magic) */
	return true;
}

static void *page_pop(struct front_page *pg)
{
	void **s = pg->free;
	void *next = front_dec(s, (uintptr_t)s[0]);
	if (next && !front_is_slot(pg, (uintptr_t)next))
		osm_front_corrupt(s);
	pg->free = next;
	__builtin_prefetch(next, 1);
	pg->used++;
	slot_words(s, NULL);
	return s;
}

/* Moves the frees other threads pushed onto the owner's free list: one exchange of the page's thread_free word,
 * which holds the list's head and, in its top 16 bits, how many slots it holds (remote_push adds them with the same
 * CAS). When the page has no free slot (the usual case: malloc's slow path collects when the current page ran
 * out) the list becomes its free list as it is, and each link is checked when it is popped, as every free-list
 * link is: no walk. A walk over slots that other threads wrote last, each line a miss on another core, was a
 * third of larson-2's time. Otherwise a walk checks the links and finds the tail. Owner only (or under the front
 * lock for an abandoned page). Returns the slots collected. */
static uint32_t page_collect(struct front_page *pg)
{
	if (!__atomic_load_n(&pg->thread_free, __ATOMIC_RELAXED))
		return 0;
	uintptr_t w = __atomic_exchange_n(&pg->thread_free, 0, __ATOMIC_ACQUIRE);
	void **list = (void **)(w & TF_PTR);
	uint32_t n = (uint32_t)(w >> TF_SHIFT);
	if (!list || n == 0 || n > pg->used)
		osm_front_corrupt(list);
	if (pg->free) {
		uint32_t k = 1;
		void **tail = list;
		for (;;) {
			void **next = front_dec(tail, (uintptr_t)tail[0]);
			if (!next)
				break;
			if (!front_is_slot(pg, (uintptr_t)next) || k >= n)
				osm_front_corrupt(tail);
			tail = next;
			k++;
		}
		tail[0] = (void *)front_enc(tail, pg->free);
	}
	pg->free = list;
	pg->used -= n;
	if (TRACING)
		osm_trace_event("  collect %p %z", page_addr(pg), (size_t)n);
	return n;
}

_Noreturn void osm_front_corrupt(void *slot)
{
	osm_fatal_pointer("malloc", "corrupted free list", slot);
}

void *osm_front_corrupt_jump(void *slot)
{
	osm_front_corrupt(slot);
}

/* The head link of each class's current free list, checked as a pop would check it. A write after free into the
 * slot freed last (the commonest use after free) is then caught at the next large request (core_malloc), not only
 * when that class is used again (glibc checks its fastbins when a large request consolidates them). The same for
 * the head of each class's thread cache. Two loads and compares per class the thread has used, on a path that
 * takes a lock anyway. */
void osm_front_check_heads(void)
{
	struct front_heap *h = tl_state == TL_TRACED ? tl_heap : osm_front_tl_heap;
	/* only the classes this heap has had a page of: the others have no list and an empty cache. Checking all 29
	 * twice took 385 instructions a call, a quarter of a large malloc's (callgrind, bench's large) */
	for (uint32_t m = h->used_classes; m; m &= m - 1) {
		size_t cls = (size_t)__builtin_ctz(m);
		struct front_page *pg = h->cur[cls];
		void **s = pg->free;
		if (s) {
			void *next = front_dec(s, (uintptr_t)s[0]);
			if (next && !front_is_slot(pg, (uintptr_t)next))
				osm_front_corrupt(s);
		}
		void **t = h->tc_top[cls];
		if (t && !tc_slot_marked(t))
			osm_front_corrupt(t);
	}
}

// ------------------------------------------------------------------
// Segments and the pool (front lock held)
// ------------------------------------------------------------------

/* Front lock held. The range of indexes ever set only widens, so that malloc_info's walk of the map
 * (override.c, info_front) reads a few words, not 4 MiB of zero pages (a page fault each). */
static void segmap_set(uintptr_t seg, bool on)
{
	size_t i = seg >> FRONT_SEG_SHIFT;
	if (on) {
		if (i < osm_front_segmap_lo)
			__atomic_store_n(&osm_front_segmap_lo, i, __ATOMIC_RELAXED);
		if (i > osm_front_segmap_hi)
			__atomic_store_n(&osm_front_segmap_hi, i, __ATOMIC_RELAXED);
	}
	uint64_t *leaf = osm_front_segmap[i >> SEGMAP_LEAF_BITS];
	if (!leaf) {
		if (!on)
			return;
		leaf = segmap_spare; /* seg_new mapped it before it took the segment */
		segmap_spare = NULL;
		__atomic_store_n(&osm_front_segmap[i >> SEGMAP_LEAF_BITS], leaf, __ATOMIC_RELEASE);
	}
	uint64_t bit = (uint64_t)1 << (i & 63);
	if (on)
		__atomic_fetch_or(&leaf[(i & SEGMAP_LEAF_MASK) >> 6], bit, __ATOMIC_RELEASE);
	else
		__atomic_fetch_and(&leaf[(i & SEGMAP_LEAF_MASK) >> 6], ~bit, __ATOMIC_RELEASE);
}

/* Huge pages for segments (src/huge.c says why and what they cost): from the SEG_HUGE_FROM-th segment on, a new
 * segment is advised once the newest one before it (full: a segment is mapped only when the pool is empty) is
 * found dense, 7/8 of its pages resident. Until then each new segment costs one mincore of 4 MiB. A program with
 * fewer segments keeps 4 KiB pages: a huge page is resident whole. Only a segment's upper 2 MiB is advised: the
 * lower holds page 0, written at the segment's birth, which would make all of it resident at once; pages are
 * handed out from page 1 up (pool_take), so the upper half fills last. Advising both
 * halves cost sqlite3 2.1 MiB of peak RSS (97.4 -> 99.5 MiB, 21,750 faults); the upper half alone nothing
 * (97.5 MiB, 22,800 faults; 29,400 without huge pages). Front lock and core lock held. */
#define SEG_HUGE_FROM 8
static int seg_huge; /* 0: not yet, 1: every new segment, -1: never */

static void seg_advise(char *seg)
{
	enum huge_mode m = osm_huge_env();
	if (seg_huge < 0 || (m != HUGE_MODE_FORCED && n_segments + 1 < SEG_HUGE_FROM))
		return;
	int k = m == HUGE_MODE_OFF ? 0 : osm_huge_kernel_ok();
	if (k <= 0) {
		if (!k)
			seg_huge = -1;
		return; /* -1: not known yet, asked again at the next segment */
	}
	if (!seg_huge &&
	    (m == HUGE_MODE_FORCED || (segments && osm_huge_dense(segments, (char *)segments + FRONT_SEG_SIZE)))) {
		int pays = osm_huge_pays(); /* dense, and faults dear enough here (huge.c) */
		if (pays < 0)
			return; /* the probe could not measure: asked again at the next segment */
		seg_huge = pays ? 1 : -1;
	}
	if (seg_huge > 0) /* the upper half only: see above */
		osm_huge_advise(seg + FRONT_SEG_SIZE / 2, FRONT_SEG_SIZE / 2);
}

/* The range (internal.h, osm_front_range): segments mapped one after another, so that free tells a slot from
 * anything else with one subtraction and one compare (four instructions where the segment map's test took ten;
 * with malloc's one-word mark check, pairs went from 1.07 to 1.00 of tcmalloc's time: docs/TRADEOFFS.md). The
 * first segment is mapped at a random 4 MiB boundary between 16 and 32 TiB, a region the kernel's top-down
 * placement (libraries, stacks, other mappings, from 127 TiB down) and the break (near the program) leave alone,
 * and each next one right after the last (MAP_FIXED_NOREPLACE): no address space is reserved ahead, so a program
 * that lowers RLIMIT_AS later (glibc's own tests do) sees the address space it would see with segments mapped
 * anywhere. A released segment stays ours: its page 0 stays mapped and discarded (it reads as zeros, no slot, so a
 * free of a stale pointer there is reported, not a fault), the rest becomes PROT_NONE (no memory, nothing else
 * mapped in the hole), and the next segment takes the lowest released one before the range grows. Where the
 * range cannot grow (something mapped there, or an RLIMIT_AS), segments are mapped anywhere as before and found
 * through the segment map. */
#define RANGE_FROM  ((uintptr_t)16 << 40)
static bool range_full;   /* the range could not grow, or gave address space back: new segments go anywhere */

/* The index of the range's lowest released segment (its map bit clear), or used when there is none. Front lock
 * held. */
static size_t range_lowest_released(uintptr_t lo, size_t used)
{
	size_t i = 0;
	while (i < used && osm_front_segmap_test((lo >> FRONT_SEG_SHIFT) + i, __ATOMIC_RELAXED))
		i++;
	return i;
}

/* A segment of the range, fresh zero memory; NULL when the range cannot give one (*failed: the kernel refused
 * memory itself, ENOMEM: no point mapping elsewhere). Front and core locks held. */
static char *range_segment(bool *failed)
{
	uintptr_t lo = osm_front_range.lo == RANGE_UNSET ? 0 : osm_front_range.lo, span = osm_front_range.span;
	size_t used = span >> FRONT_SEG_SHIFT, i = range_lowest_released(lo, used);
	if (i < used) { /* memory again where it went: its page 0 was discarded (zeros), the rest is fresh PROT_NONE */
		char *seg = (char *)lo + i * FRONT_SEG_SIZE;
		if (!osm_os_commit(seg + FRONT_PAGE_SIZE, FRONT_SEG_SIZE - FRONT_PAGE_SIZE))
			*failed = true;
		return *failed ? NULL : seg;
	}
	if (range_full)
		return NULL;
	char *seg = (char *)lo + span;
	int got = 0;
	for (unsigned k = 0; !got && k < (lo ? 1u : 4u); k++) {
		if (!lo) /* the first: a random 4 MiB boundary in [16, 32) TiB, four tries (osm_os_random_fresh: not
			  * the AT_RANDOM bytes glibc keeps its guards in, which the address would show) */
			seg = (char *)(RANGE_FROM + ((osm_os_random_fresh() << FRONT_SEG_SHIFT) & (RANGE_FROM - 1)));
		got = (uintptr_t)seg + FRONT_SEG_SIZE > ((uintptr_t)1 << 47) ? 0 : osm_os_map_at(seg, FRONT_SEG_SIZE);
		if (got < 0) { /* no memory (a limit, or injected): this time only */
			*failed = true;
			return NULL;
		}
	}
	if (!got) { /* something is mapped where the range would grow */
		range_full = true;
		return NULL;
	}
	if (!lo)
		lo = (uintptr_t)seg;
	__atomic_store_n(&osm_front_range.lo, lo, __ATOMIC_RELAXED);
	__atomic_store_n(&osm_front_range.span, span + FRONT_SEG_SIZE, __ATOMIC_RELAXED);
	return seg;
}

/* Out of memory (a request failed with ENOMEM): the range's released segments still hold their address space,
 * which RLIMIT_AS counts, so they give it back (munmap). The range then ends below the lowest of them: the live
 * segments above it are found through the segment map from then on (free's out-of-line path), their frees
 * become a little dearer, and the range never grows again. Whether any went (the caller, medium.c's
 * osm_front_reclaim, then retries once). Takes the front lock, then the core's for the system calls. */
bool osm_front_range_release(void)
{
	front_lock();
	uintptr_t lo = osm_front_range.lo;
	size_t used = osm_front_range.span >> FRONT_SEG_SHIFT;
	size_t first = lo == RANGE_UNSET ? used : range_lowest_released(lo, used);
	if (first == used) {
		front_unlock();
		return false;
	}
	range_full = true;
	__atomic_store_n(&osm_front_range.span, first << FRONT_SEG_SHIFT, __ATOMIC_RELAXED); /* before the holes open */
	core_lock();
	for (size_t i = first; i < used; i++)
		if (!osm_front_segmap_test((lo >> FRONT_SEG_SHIFT) + i, __ATOMIC_RELAXED))
			osm_os_unmap((char *)lo + i * FRONT_SEG_SIZE, FRONT_SEG_SIZE);
	if (TRACING) /* under the heap lock, as every trace line (until session 50 after it: a race on the buffer) */
		osm_trace_event("  range_give_back %p %z", (void *)(lo + (first << FRONT_SEG_SHIFT)),
				(used - first) << FRONT_SEG_SHIFT);
	core_unlock();
	front_unlock();
	return true;
}

/* A segment carved from the heap's free memory (heap.c, osm_heap_carve says why), which the heap gets back when
 * the segment is released (seg_release): a program that alternates phases of small objects and of medium blocks
 * reuses one memory for both, as glibc's one heap does, instead of faulting in fresh segments beside the heap's
 * free pages and then the heap beside the segments (patterns' phases: 231 MB at the peak, glibc 164). Its memory
 * is not zero: the descriptors are cleared (16 KiB, page 0; PG_POOL is 0), slots need nothing (malloc clears a
 * slot's two words, page_extend writes links and marks). The block is the segment less its last 32 bytes, where
 * the next block's header goes: segments carved one after another from one free block lie side by side, no gap
 * between them; the last page holds a slot fewer where the header would be in it (page_format), and its last
 * 4 KiB are never given back (seg_tail_kept). Outside the range, its slots are found through the segment map: a
 * free there takes free's out-of-line path (a call and a bit test more). Front and core locks held. */
static char *seg_carve(void)
{
	struct block_meta *b = osm_heap_carve(FRONT_SEG_SIZE, FRONT_SEG_SIZE - META_SIZE);
	if (!b)
		return NULL;
	memset(payload(b), 0, FRONT_PAGES * sizeof(struct front_page));
	return payload(b);
}

/* A segment aligned to its size: carved from the heap's free blocks, else from the range, else mapped anywhere
 * (over-map by one segment, then unmap the two ends). The system calls go through os.c under the core's lock
 * (front lock, then heap lock: the documented order), which keeps the counters of system calls exact. */
static struct front_seg *seg_new(void)
{
	/* a leaf of the segment map ready for the segment's part of the address space, if it has none (internal.h):
	 * one mmap of 64 KiB before the first segment, and after each that opened a new part. Refused: no segment */
	core_lock(); /* before the leaf's mmap too: os.c's counters and OSMEM_FAIL's countdown are the core lock's */
	if (!segmap_spare && !(segmap_spare = osm_os_map(SEGMAP_LEAF_BYTES))) {
		core_unlock();
		return NULL;
	}
	bool failed = false;
	char *seg = seg_carve(), *raw = NULL;
	bool carved = seg != NULL;
	if (!seg)
		seg = range_segment(&failed);
	if (!seg && !failed)
		raw = osm_os_map(2 * FRONT_SEG_SIZE);
	if (seg && !carved) { /* heap memory takes no advice here: huge.c advises the heap itself */
		seg_advise(seg);
	} else if (raw) {
		seg = (char *)(((uintptr_t)raw + FRONT_SEG_SIZE - 1) & ~(FRONT_SEG_SIZE - 1));
		if (seg > raw)
			osm_os_unmap(raw, (size_t)(seg - raw));
		if (raw + 2 * FRONT_SEG_SIZE > seg + FRONT_SEG_SIZE)
			osm_os_unmap(seg + FRONT_SEG_SIZE, (size_t)(raw + 2 * FRONT_SEG_SIZE - (seg + FRONT_SEG_SIZE)));
		if (!((uintptr_t)seg >> 47))
			seg_advise(seg);
	}
	core_unlock();
	if (!seg || (uintptr_t)seg >> 47)
		return NULL;
	/* carving is no round of mapping: a carved segment costs no fault to take again (carved_churn_keeps_no_mapped_
	 * segments: six threads' carved segments given back raised the hold, and 72 MB of mapped ones stayed) */
	if (!carved && seg_released_ns && osm_os_coarse_ns() - seg_released_ns < POOL_DECAY_NS && segs_hold < SEGS_HOLD)
		segs_hold *= 2; /* mapped again within a second of a give-back: the program builds in rounds */
	if (TRACING)
		osm_trace_event("  seg_map %p %z", (void *)seg, FRONT_SEG_SIZE);
	struct front_seg *s = (struct front_seg *)seg; /* descriptors all zero: every page PG_POOL */
	struct front_seg_links *l = seg_links(s);
	l->free_pages = l->fresh = FRONT_PAGES - 1;
	l->carved = carved;
	fresh_seg = s; /* a segment is mapped only when no other has a free page */
	l->next = segments;
	if (segments)
		seg_links(segments)->prev = s;
	segments = s;
	n_segments++;
	__atomic_store_n(&n_free_segments, n_free_segments + 1, __ATOMIC_RELAXED); /* read unlocked (osm_front_release_spare) */
	segmap_set((uintptr_t)s, true);
	return s;
}

static void seg_release(struct front_seg *s)
{
	struct front_seg_links *l = seg_links(s);
	for (size_t i = 1; i < FRONT_PAGES - l->fresh; i++) /* every page handed out is back in the pool */
		list_remove(s->pages[i].pooled.cold ? &pool_cold : &pool, &s->pages[i]);
	if (s == fresh_seg)
		fresh_seg = NULL;
	if (l->prev)
		seg_links(l->prev)->next = l->next;
	else
		segments = l->next;
	if (l->next)
		seg_links(l->next)->prev = l->prev;
	n_segments--;
	__atomic_store_n(&n_free_segments, n_free_segments - 1, __ATOMIC_RELAXED);
	if (!l->carved)
		seg_released_ns = osm_os_coarse_ns();
	segmap_set((uintptr_t)s, false);
	if (TRACING)
		osm_trace_event("  seg_unmap %p %z", (void *)s, FRONT_SEG_SIZE);
	core_lock();
	if (l->carved) {
		osm_heap_uncarve(block_of(s)); /* the heap's again, pages given back or not */
	} else if (osm_front_in_range(s)) { /* page 0 stays, reading as zeros; the rest back to reserved space */
		osm_os_decommit((char *)s + FRONT_PAGE_SIZE, FRONT_SEG_SIZE - FRONT_PAGE_SIZE);
		if (!osm_os_discard(s, FRONT_PAGE_SIZE)) /* locked pages (mlockall) keep their bytes: zeroed by hand */
			memset(s, 0, FRONT_PAGE_SIZE);
	} else {
		osm_os_unmap(s, FRONT_SEG_SIZE);
	}
	core_unlock();
}

/* Up to count fully free segments past `keep` go back (seg_release): any, or (cold_only) those whose every page
 * handed out is on the cold pool, its memory given back a second after its free (pool_chill). Front lock held. */
static void release_spare(bool cold_only, size_t count, size_t keep)
{
	for (struct front_seg *s = segments, *next; s && n_free_segments > keep && count; s = next) {
		struct front_seg_links *l = seg_links(s);
		next = l->next;
		if (l->free_pages != FRONT_PAGES - 1)
			continue;
		bool cold = true;
		for (size_t i = 1; cold_only && cold && i < FRONT_PAGES - l->fresh; i++)
			cold = s->pages[i].pooled.cold;
		if (cold) {
			seg_release(s);
			count--;
		}
	}
}

/* Moves pool pages to the cold pool and gives their memory back (madvise, one call per run of adjacent pages):
 * all of them (malloc_trim), or those that entered the pool POOL_DECAY_NS or more before now (the pool is in the
 * order they entered it). Returns the bytes given back. Front lock held. */
static size_t discard_run(char *run, size_t len)
{
	struct front_page *last = front_page_of(run + len - 1);
	size_t all = len;
	if (seg_tail_kept(last) && run + len == (char *)page_addr(last) + FRONT_PAGE_SIZE)
		len -= 4096; /* the heap's next header lies there */
	if (TRACING)
		osm_trace_event("  page_discard %p %z", (void *)run, len);
	return osm_os_discard(run, len) ? all : 0; /* locked pages (mlockall) stay: not counted as given back */
}

static size_t pool_chill(bool all, uint64_t now)
{
	struct front_page *pg;
	char *run = NULL;
	size_t run_len = 0, bytes = 0;
	core_lock();
	while ((pg = pool.first) && (all || (int64_t)(now - pg->pooled.since) >= (int64_t)POOL_DECAY_NS)) {
		list_remove(&pool, pg);
		pg->pooled.cold = true;
		list_push(&pool_cold, pg);
		if (run && (char *)page_addr(pg) == run + run_len) {
			run_len += FRONT_PAGE_SIZE;
			continue;
		}
		if (run)
			bytes += discard_run(run, run_len);
		run = page_addr(pg);
		run_len = FRONT_PAGE_SIZE;
	}
	if (run)
		bytes += discard_run(run, run_len);
	core_unlock();
	return bytes;
}

/* Pages that stayed in the pool a second go back to the kernel: a program whose threads freed what they had (a
 * phase over) otherwise kept every page of a segment that some other page still holds, resident to the exit: 8
 * threads that freed 20,000 objects of 1000 bytes each and waited kept 48 MiB, glibc 2
 * (front/segments/idle_pool_pages_given_back). A second, as the heap's decay in a process of one thread
 * (heap.c, DECAY_NS_ALONE): pages that come and go within a second stay, and the pool hands out its resident
 * pages before its cold ones. From pool_put, from the requests that reach the core and from one in FRONT_TICK of
 * the frees the caches take (osm_front_idle_tick), at most a pass a second. Front lock held. */
static void decay_abandoned(void);
static void heaps_reap(size_t max);
static void heap_trim_late(struct front_heap *h);
static bool heap_trim_own(struct front_heap *h);
/* Idle threads' caches and pages: a thread that used memory in a burst and then blocks (a pool's worker waiting for
 * work) kept it until it ran again.
 *  - Its medium cache (medium.c), up to its budget of 4 MiB: its blocks, allocated in the core's eyes, kept the free
 *    memory between them from merging into runs the heap's decay gives back. Eight workers of a 2-60 KiB burst,
 *    blocked: 72 MB resident 3 s later while the main thread ran, glibc 2.7 (its per-thread arenas trim their
 *    tops), jemalloc 103, tcmalloc 81 (medium/blocked_thread_cache_given_back).
 *  - Its pages of small slots other than its current ones (partial, full, and the empty pages it keeps): only the
 *    owner collects the frees other threads push onto its pages, so a worker that built objects another thread
 *    freed kept every page of them. A pool of 8 workers, each in turn building 400,000 objects of 16-315 B that the
 *    main thread frees: 577 MB resident after 24 jobs, through malloc_trim, glibc 3 (session 58's soak;
 *    front/stranded/blocked_worker_pages_given_back). They go as the thread's exit would give them (heap_exit_page):
 *    empty ones to the pool, the others abandoned, for any thread to adopt and for the sweeps to empty. Its current
 *    pages and its thread cache stay: the owner's fast paths use them without a mark.
 * A heap whose owner made no request or free between two passes (a second apart at least) is idle; its mc_steal is
 * set, every thread runs a barrier (osm_os_membarrier), and if its owner is not then inside a use of its bins or of
 * its pages' lists (mc_busy, internal.h: mc_enter; the small slow paths count themselves in too) the
 * pass takes them, the owner going to the core meanwhile (or, freeing, to its page's remote list). The owner pays
 * two stores and a load per medium use and per small slow path; the pass a system call when a heap is idle and holds
 * something. malloc_trim takes them from every other thread that is not inside such a use (all), idle or not, as
 * glibc's trims every arena. Not where the kernel has no membarrier (nothing is taken, as before), not traced, not
 * in one thread. From pool_decay and osm_front_trim, front lock held. */
static bool steal_off; /* membarrier refused: no more passes */
#define STEAL_BINS  1     /* mc_steal: the pass takes the heap's medium bins */
#define STEAL_PAGES 2     /* and its pages */
static bool stealing;  /* a pass is on (a pool_put of its own runs pool_decay, which must not start another) */

/* Whether h holds pages other than its current ones. Front lock; a racy look at an idle owner's lists. */
static bool heap_holds_pages(const struct front_heap *h)
{
	if (h->empty.first)
		return true;
	for (size_t c = 0; c < FRONT_CLASSES; c++)
		if (h->partial[c].first || h->full[c].first)
			return true;
	return false;
}

static void heap_exit_page(struct front_heap *h, struct front_page *pg);
static void pool_put(struct front_page *pg);

/* h's pages other than its current ones go as its exit would give them (heap_exit_page). Its owner is not inside
 * a slow path (mc_busy was 0 after the barrier, and it waits on mc_steal meanwhile). Front lock held. */
static void steal_pages(struct front_heap *h)
{
	struct front_page *pg;
	for (size_t c = 0; c < FRONT_CLASSES; c++) {
		while ((pg = list_pop(&h->partial[c])))
			heap_exit_page(h, pg);
		while ((pg = list_pop(&h->full[c])))
			heap_exit_page(h, pg);
	}
	while ((pg = list_pop(&h->empty)))
		pool_put(pg);
	h->n_empty = 0; /* not traced: no pass runs while tracing (a traced program's heaps are seen as they are) */
}

static __attribute__((noinline)) void steal_idle(bool all)
{
	if (steal_off || stealing || TRACING || osm_os_single_threaded())
		return;
	stealing = true;
	struct front_heap *mine = osm_front_tl_heap;
	size_t idle = 0;
	for (struct front_heap *h = live_heaps; h; h = h->next) {
		if (h == mine && !all && heap_holds_pages(h)) /* the thread that runs the pass: as a busy one, below */
			__atomic_fetch_or(&h->trim_seen, 1u, __ATOMIC_RELAXED);
		if (h == mine || h->reaping)
			continue;
		/* medium bins idle: no medium request or free; the pages: none at all */
		size_t seen = __atomic_load_n(&h->mc_hits, __ATOMIC_RELAXED) + __atomic_load_n(&h->mc_frees, __ATOMIC_RELAXED) +
			      __atomic_load_n(&h->mc_refills, __ATOMIC_RELAXED);
		size_t seen_small = __atomic_load_n(&h->hits, __ATOMIC_RELAXED) + __atomic_load_n(&h->misses, __ATOMIC_RELAXED) +
				    __atomic_load_n(&h->frees, __ATOMIC_RELAXED);
		bool same = h->mc_seen_set && seen == h->mc_seen, same_small = h->mc_seen_set && seen_small == h->sm_seen;
		if (!all) { /* a trim's pass leaves the decay's look as it was: idle is two of its passes, a second apart */
			h->mc_seen = seen;
			h->sm_seen = seen_small;
			h->mc_seen_set = true;
		}
		uint8_t what = (uint8_t)(((same || all) && __atomic_load_n(&h->mc_bytes, __ATOMIC_RELAXED) ? STEAL_BINS : 0) |
					 ((same && same_small) || all ? (heap_holds_pages(h) ? STEAL_PAGES : 0) : 0));
		if (what) {
			__atomic_store_n(&h->mc_steal, what, __ATOMIC_RELAXED);
			idle++;
		} else if (!all && heap_holds_pages(h)) {
			/* not idle: its pages stay, and only it collects the frees other threads push onto them; a page of a
			 * class it no longer allocates was never looked at again. It collects at its next free tick or
			 * malloc slow path (heap_trim_late) */
			__atomic_fetch_or(&h->trim_seen, 1u, __ATOMIC_RELAXED);
		}
	}
	if (!idle) {
		stealing = false;
		return;
	}
	int mb = osm_os_membarrier();
	bool ok = mb > 0;
	steal_off = mb < 0; /* for good; not after a failure of the moment (ENOMEM) */
	for (struct front_heap *h = live_heaps; h; h = h->next) {
		uint8_t what = __atomic_load_n(&h->mc_steal, __ATOMIC_RELAXED);
		if (!what)
			continue;
		if (ok && __atomic_load_n(&h->mc_busy, __ATOMIC_ACQUIRE) == 0) {
			if (what & STEAL_BINS)
				osm_front_medium_steal(h);
			if (what & STEAL_PAGES)
				steal_pages(h);
		}
		__atomic_store_n(&h->mc_steal, 0, __ATOMIC_RELEASE); /* the owner may use its bins and lists again */
	}
	stealing = false;
}

/* The owner's side for its small slow paths (steal_idle) is mc_enter (internal.h), the medium bins' own: counted
 * in h->mc_busy; false while a pass is taking h's pages, and the caller goes another way (the core, the page's
 * remote list) or waits (own_enter_wait). Its end, own_leave: the empty heap is never counted in. */
static inline void own_leave(struct front_heap *h)
{
	if (h != &osm_front_empty_heap)
		mc_leave_own(h);
}
/* The same for a path that cannot go another way (the thread's exit, malloc_trim): it waits for the pass, which
 * holds the front lock throughout. Never called with either lock held (a pass may wait for the core's). */
static inline __attribute__((always_inline)) void own_enter_wait(struct front_heap *h)
{
	while (!mc_enter(h)) {
		front_lock();
		front_unlock();
	}
}

static void pool_decay(uint64_t now)
{
	uint64_t last = pool_decay_last;
	if ((int64_t)(now - last) < (int64_t)POOL_DECAY_NS)
		return;
	__atomic_store_n(&pool_decay_last, now, __ATOMIC_RELAXED);
	if (pool.first && (int64_t)(now - pool.first->pooled.since) >= (int64_t)POOL_DECAY_NS)
		pool_discarded += pool_chill(false, now);
	release_spare(true, SIZE_MAX, SEGS_KEEP);
	osm_front_xfer_decay(); /* the medium blocks no thread took since the last pass */
	/* another thread has a heap, and this is not the process's first pass: steal_idle is cold text, and its first
	 * call only takes each thread's counts, which the first pass (a multi-threaded program's first tick) can leave
	 * to the next. Called there, it mapped the text's second 64 KiB in every short program with threads: 56 KiB of
	 * larson-1's 2.8 MiB (footprint/threads_first_tick_maps_no_cold_text) */
	if (last && __atomic_load_n(&n_live, __ATOMIC_RELAXED) > 1)
		steal_idle(false); /* the caches of threads idle since the last pass, with their pages */
	decay_abandoned();
}

/* For a pass that may write trace lines, from outside any request: the trace's locks (trace_begin) when this
 * thread is traced, else the front lock. Returns which, for front_leave. */
static bool front_enter(void)
{
	bool traced = front_tracing();
	if (traced)
		trace_begin();
	else
		front_lock();
	return traced;
}
static void front_leave(bool traced)
{
	if (traced)
		trace_end();
	else
		front_unlock();
}

/* The heap's end when the front last took a page from its pool or a segment became fully free: once the heap has
 * grown SPARE_GROWTH past it (twice the kept segments' worth, while the front took nothing), the kept free segments
 * go, one per FRONT_SEG_SIZE more (osm_front_release_spare). Written under the front lock, read without it. */
static uintptr_t spare_mark;
#define SPARE_GROWTH (2 * SEGS_KEEP * FRONT_SEG_SIZE)
static void spare_mark_heap_end(void)
{
	__atomic_store_n(&spare_mark, (uintptr_t)__atomic_load_n(&osm_heap.end, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}

/* Before a request to the core (internal.h): the spare segments past SEGS_KEEP go, as many as the request asks
 * for; the kept ones go too, one per 4 MiB, once the heap has grown by twice their worth while the front took no page
 * (spare_mark). Kept, they save a program whose small objects come and go in bursts the faults of fresh segments
 * (sqlite3, SEGS_KEEP); resident while the heap grows past them, they are memory neither layer uses: a program
 * that builds small objects, frees them and then builds medium blocks kept 16 MB of empty segments beside the
 * heap's 155 MB (patterns' phases: 197 -> 181-185 MB at the peak, glibc 164). Released at every 4 MiB of growth
 * since a segment became free, sqlite3 (whose bursts come between growths) faulted 11% more pages (28,600 ->
 * 31,900) for the same peak; with the front's takes resetting the mark, 4% more after 16 MiB of growth, none after
 * 32 (SPARE_GROWTH; 8 runs each, session 44; python3, mixed-realloc, frag level).
 * Cost when no segment is free: a load and a compare; when some are kept, a load of the heap's end and a
 * compare. */
void osm_front_release_spare(size_t n)
{
	/* tl_in_lock: a signal handler's request that interrupted this thread under the front lock, which taking it
	 * again would wait for forever (the request itself needs only the heap lock) */
	size_t nf = __atomic_load_n(&n_free_segments, __ATOMIC_RELAXED);
	if (!nf || global_state != G_ON || tl_in_lock)
		return;
	uintptr_t end = (uintptr_t)__atomic_load_n(&osm_heap.end, __ATOMIC_RELAXED);
	bool grown = end >= __atomic_load_n(&spare_mark, __ATOMIC_RELAXED) + SPARE_GROWTH;
	if (nf <= SEGS_KEEP && !grown)
		return;
	bool traced = front_enter();
	release_spare(false, n / FRONT_SEG_SIZE + 1, SEGS_KEEP);
	if (grown && end >= spare_mark + SPARE_GROWTH) { /* asked again under the lock */
		release_spare(false, 1, 0);
		/* the next one 4 MiB on */
		__atomic_store_n(&spare_mark, end - SPARE_GROWTH + FRONT_SEG_SIZE, __ATOMIC_RELAXED);
	}
	front_leave(traced);
}

/* A request reached the core (override.c), a medium refill did, or the caches took FRONT_TICK more frees
 * (osm_front_tick): a pass of pool_decay (with the transfer cache's decay, medium.c) when a second has gone by
 * since the last, so that a program whose threads went idle still gives its idle pages and blocks back at its next
 * such request. Cost otherwise: a coarse clock read (about 5 ns) and a compare. Neither lock held. */
static inline __attribute__((always_inline)) void idle_tick_front(bool background)
{
	if (global_state != G_ON || tl_in_lock) /* tl_in_lock: as osm_front_release_spare */
		return;
	uint64_t now = osm_os_coarse_ns();
	if (__atomic_load_n(&n_live, __ATOMIC_RELAXED) > 1 && /* one heap: this thread's, or a gone one it can wait */
	    (int64_t)(now - __atomic_load_n(&reap_last, __ATOMIC_RELAXED)) >= (int64_t)POOL_DECAY_NS) {
		__atomic_store_n(&reap_last, now, __ATOMIC_RELAXED); /* two threads may both look: harmless */
		heaps_reap(16);
	}
	if ((int64_t)(now - __atomic_load_n(&pool_decay_last, __ATOMIC_RELAXED)) < (int64_t)POOL_DECAY_NS)
		return;
	bool traced = front_enter();
	if (background && traced)
		osm_trace_idle_begin(); /* the heap lock is held (trace_begin): the pass's lines get their own idle line */
	pool_decay(now);
	front_leave(traced);
}

void osm_front_idle_tick(void)
{
	idle_tick_front(false);
}

/* Every FRONT_TICK-th free a thread's caches take (osm_front_free, osm_front_medium_free: a test of the count they
 * keep anyway): the core's decay and the pool's, each when due, for a program that lives on its caches after a
 * phase. Without it a program that freed a structure and then made only requests its caches serve kept the
 * freed memory to its exit (growth/idle_heap_given_back_by_cache_hits). Skipped where this thread holds or waits
 * for either lock (a free from a signal handler that interrupted osmem), and in the traced mode, whose frees never
 * take the fast paths. Cost: two coarse clock reads and two compares, per FRONT_TICK frees. */
void osm_front_tick(void)
{
	if (tl_in_lock || tl_hold || osm_lock_held_by_self())
		return;
	struct front_heap *h = osm_front_tl_heap;
	if (h != &osm_front_empty_heap &&
	    __atomic_load_n(&h->trim_seen, __ATOMIC_RELAXED) != __atomic_load_n(&trim_epoch, __ATOMIC_RELAXED))
		heap_trim_late(h);
	osm_heap_idle_tick();
	osm_front_idle_tick();
}

#define BG_SWEEP_STEPS 64 /* 16,384 headers a wake */

HIDDEN bool osm_front_alone_bg; /* background.c's start and its wakes, a second live heap, a fork's child */
static uint64_t bg_steal_last;

/* The background thread's wake (background.c): the passes a free tick makes, from a thread that holds no heap and
 * no lock. Cost when nothing is due: four coarse clock reads and their compares. */
void osm_front_background_tick(void)
{
	/* under the lock, where a new heap counts itself and clears the flag: a look taken before that must not set it
	 * again after */
	front_lock();
	size_t live = n_live;
	__atomic_store_n(&osm_front_alone_bg, live <= 1, __ATOMIC_RELAXED);
	front_unlock();
	/* pool_decay takes idle threads' caches only where a second heap lives (the thread that runs it has one of
	 * them, or waits on a gone one). This thread holds none: the program's only thread's caches too, once idle
	 * two looks a second apart (steal_idle skips the heap of the thread that runs it). */
	uint64_t now = osm_os_coarse_ns();
	if (live == 1 && global_state == G_ON && (int64_t)(now - bg_steal_last) >= (int64_t)POOL_DECAY_NS) {
		bg_steal_last = now;
		front_lock(); /* steal_idle does nothing while tracing: no line to write */
		steal_idle(false);
		front_unlock();
	}
	osm_heap_background_tick();
	/* the core's sweep of idle holes walks IDLE_BATCH headers a tick (heap.c, idle_step), a tick per request that
	 * reaches the core: at a tick a wake, a heap of 60,000 blocks took 23 s a sweep, and a hole two sweeps to go
	 * back. Here it goes on to its end, up to BG_SWEEP_STEPS steps a wake, the lock let go between two; it stops
	 * where the process began to exit (osm_background_stop), whose statistics and trace then see no pass begin */
	for (size_t k = 0; k < BG_SWEEP_STEPS && osm_heap_idle_sweeping() && !osm_background_stopping(); k++)
		osm_heap_background_tick();
	if (!osm_background_stopping())
		idle_tick_front(true);
}

static void pool_put(struct front_page *pg)
{
	if (TRACING)
		osm_trace_event("  page_pool %p", page_addr(pg));
	page_unformat(pg, PG_POOL);
	uint64_t now = osm_os_coarse_ns();
	pg->pooled.since = now;
	pg->pooled.cold = false;
	list_push(&pool, pg);
	struct front_seg *s = seg_of(pg);
	if (++seg_links(s)->free_pages == FRONT_PAGES - 1) {
		__atomic_store_n(&n_free_segments, n_free_segments + 1, __ATOMIC_RELAXED);
		spare_mark_heap_end();
		/* a carved one goes back to the heap at once: kept, it would save no page fault (carving it again
		 * takes the same resident memory), and the heap's next requests would grow the heap beside it */
		if (seg_links(s)->carved || n_free_segments > segs_hold)
			seg_release(s);
	}
	pool_decay(now);
}

/* A free page: the oldest one given back to the pool whose memory is still resident, else one whose memory went
 * back (pool_decay, malloc_trim), else the next never handed out of the newest segment (its descriptor and memory
 * first touched now), else one of a new segment. */
static struct front_page *pool_take(void)
{
	struct front_page *pg = list_pop(&pool);
	if (!pg)
		pg = list_pop(&pool_cold);
	if (!pg) {
		if (!fresh_seg && !seg_new())
			return NULL;
		struct front_seg_links *l = seg_links(fresh_seg);
		uint32_t fresh = l->fresh;
		pg = &fresh_seg->pages[FRONT_PAGES - fresh];
		__atomic_store_n(&l->fresh, fresh - 1, __ATOMIC_RELAXED); /* malloc_info reads it without the front lock */
		if (fresh == 1)
			fresh_seg = NULL;
	}
	struct front_seg_links *l = seg_links(seg_of(pg));
	if (l->free_pages-- == FRONT_PAGES - 1)
		__atomic_store_n(&n_free_segments, n_free_segments - 1, __ATOMIC_RELAXED);
	spare_mark_heap_end();
	return pg;
}

/* Collects the thread frees of up to `budget` abandoned pages (rotating through each list) and gives back the
 * ones that became empty. With want_cls < FRONT_CLASSES, returns an abandoned page of that class with a free
 * slot, adopted by h. Collected bytes are added to *collected. */
static bool sweeping; /* an abandoned_sweep is under way (front lock held) */
static struct front_page *abandoned_sweep(struct front_heap *h, size_t want_cls, size_t budget, size_t *collected)
{
	struct front_page *found = NULL;
	/* pool_put below may run the pool's decay, whose decay_abandoned would sweep these lists from inside this
	 * walk: its counts would then promise pages the lists no longer hold, and list_pop returned NULL (a SIGSEGV
	 * in page_collect: front/stranded/sweep_survives_decay_inside_it). That decay skips its sweep instead. */
	sweeping = true;
	for (size_t c = 0; c < FRONT_CLASSES && budget && n_abandoned; c++) {
		size_t cls = (want_cls + c) % FRONT_CLASSES;
		for (size_t k = n_abandoned_cls[cls]; budget && k; k--, budget--) {
			struct front_page *pg = list_pop(&abandoned[cls]);
			*collected += (size_t)page_collect(pg) * pg->slot_size;
			if (pg->used == 0) {
				n_abandoned--;
				n_abandoned_cls[cls]--;
				pool_put(pg);
			} else if (!found && cls == want_cls &&
				   (pg->free || pg->parked || pg->capacity < pg->reserved)) {
				n_abandoned--;
				n_abandoned_cls[cls]--;
				set_heap(pg, h);
				found = pg;
				if (TRACING)
					osm_trace_event("  adopt %p %z", page_addr(pg), (size_t)pg->used);
			} else {
				list_push(&abandoned[cls], pg);
			}
		}
	}
	sweeping = false;
	return found;
}

/* The decay's look at abandoned pages: pages of threads that exited, emptied since by other threads' frees, go to
 * the pool (and from there back to the kernel with its idle pages). Otherwise they waited for a thread that needed a
 * page of their class, or for malloc_trim: a thread's 24 MiB of 256-byte objects, freed by the main thread after
 * the thread's exit, stayed resident (front/stranded/idle_decay_returns_abandoned_pages). At most DECAY_SWEEP pages
 * a pass, starting each pass a class further on, so that one busy class does not keep the others waiting. Cost:
 * an exchange per page, and a walk of the remote frees of a page that also has free slots; at most once a second,
 * and only while abandoned pages exist. Front lock held. */
#define DECAY_SWEEP 256
static void decay_abandoned(void)
{
	static size_t start;
	if (!n_abandoned || sweeping)
		return;
	start = (start + 1) % FRONT_CLASSES;
	/* want_cls past the classes: no page is adopted (h NULL), the walk starts at class `start` */
	abandoned_sweep(NULL, FRONT_CLASSES + start, DECAY_SWEEP, &dead.collected);
}

// ------------------------------------------------------------------
// Thread heaps
// ------------------------------------------------------------------

static void heap_exit(void *arg);
static void remote_flush(struct front_heap *h);
static void tc_flush_all(struct front_heap *h);

/* global_init's rare parts, out of line: every process runs global_init, so what it carries sits in the hot
 * text's 64 KiB window (test_footprint.py), and a warning or a traced start does not need to */
static __attribute__((noinline)) void front_setting_unknown(const char *front)
{
	/* named once (global_init runs once): off, no or false left the front on in silence */
	osm_os_write_err("osmem: OSMEM_FRONT=");
	osm_os_write_err(front);
	osm_os_write_err(" is not a setting (0 or 1); using default\n");
}
static __attribute__((noinline)) void front_trace_start(void)
{
	/* the heap lock starts the trace (osm_init) if no request has yet; a trace that could not be opened leaves
	 * the front untraced */
	osm_lock();
	__atomic_store_n(&front_traced, TRACING, __ATOMIC_RELAXED);
	osm_unlock();
}

static ONCE_PATH void global_init(void)
{
	const char *profile = osm_os_getenv("OSMEM_PROFILE"), *trace = osm_os_getenv("OSMEM_TRACE");
	const char *front = osm_os_getenv("OSMEM_FRONT");
	if (front && *front && strcmp(front, "0") != 0 && strcmp(front, "1") != 0)
		front_setting_unknown(front);
	/* strict mode serves every request itself (the API asks osm_strict before the front, so it is known here) */
	bool off = (profile && strcmp(profile, "classic") == 0) || (front && strcmp(front, "0") == 0) ||
		   __atomic_load_n(&osm_strict, __ATOMIC_RELAXED) > 0;
	if (off || pthread_key_create(&exit_key, heap_exit) != 0) {
		global_state = G_OFF;
		return;
	}
	for (size_t c = 0; c < FRONT_CLASSES; c++) { /* the thread cache's depths: 32 KiB of slots, 16 to TC_DEPTH */
		size_t d = ((size_t)32 << 10) / osm_front_class_size[c];
		osm_front_tc_max[c] = (uint8_t)(d > TC_DEPTH ? TC_DEPTH : d < 16 ? 16 : d);
	}
	for (size_t i = 0; i <= FRONT_MAX / 16; i++) { /* the table matches the classes, or the front stays off */
		size_t c = osm_front_class_of[i];
		if (osm_front_class_size[c] < i * 16 || (c && osm_front_class_size[c - 1] >= (i ? i * 16 : 16))) {
			global_state = G_OFF;
			return;
		}
	}
	/* 64-bit secrets from the kernel (one getrandom; not the AT_RANDOM bytes, where glibc keeps its stack and
	 * pointer guards: the keys were derived from those until session 21) and the layout ASLR chose */
	uint64_t x = osm_os_random_fresh() ^ (uintptr_t)&global_state ^ ((uintptr_t)&x << 16);
	for (int i = 0; i < 2; i++) {
		x += 0x9E3779B97F4A7C15ull;
		uint64_t z = x;
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		*(i ? &osm_front_dfkey : &osm_front_key) = (uintptr_t)(z ^ (z >> 31)) | (uintptr_t)i; /* dfkey != 0: on */
	}
	if (trace && *trace)
		front_trace_start();
	global_state = G_ON;
}

/* Heaps live in 144 KiB chunks of their own (four to a chunk, each above its stacks: struct front_heap_mem) and
 * are reused after their thread exits. A chunk's heaps are handed out in turn, not all linked at once: linking
 * them wrote a page of each, 8 KiB of RSS in a program that has one thread. */
/* A heap takes one page of its own (internal.h, struct front_heap_mem): at a page start, and within one page */
_Static_assert(offsetof(struct front_heap_mem, heap) % 4096 == 0 && sizeof(struct front_heap) <= 4096,
	       "a thread's heap straddles two pages");

static ONCE_PATH struct front_heap *heap_alloc(void)
{
	static struct front_heap_mem *chunk_next, *chunk_end; /* heaps of the last chunk not handed out yet */
	struct front_heap *h = spare_heaps;
	if (h) {
		spare_heaps = h->next;
	} else {
		if (chunk_next == chunk_end) {
			size_t chunk = 4 * sizeof *chunk_next; /* 144 KiB: four heaps of 36 KiB */
			core_lock();
			struct front_heap_mem *hs = osm_os_map(chunk);
			core_unlock();
			if (!hs)
				return NULL;
			chunk_next = hs;
			chunk_end = hs + chunk / sizeof *hs;
		}
		h = &chunk_next++->heap;
	}
	/* the stacks (mc, mc_size, tc) need no zeros, their counts say what is in them: left untouched, their pages
	 * are not faulted in until used (30 KiB a thread). tc_base(h, c) is the one entry read beyond a count (the
	 * top a pop of the last slot leaves): nothing ever writes it, so it keeps the mapping's zero (NULL) */
	memset(h, 0, sizeof *h);
	/* a new thread has nothing to trim */
	__atomic_store_n(&h->trim_seen, __atomic_load_n(&trim_epoch, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
	for (size_t c = 0; c < FRONT_CLASSES; c++) {
		h->cur[c] = &empty_page;
		h->tc_sp[c] = tc_base(h, c);
	}
	for (size_t c = 0; c < MEDIUM_CLASSES; c++)
		h->mc_limit[c] = 2; /* slow start (tcmalloc's): a bin grows only as its misses show it is used */
	/* 16 blocks in every bin: threads-8 (8 threads of 16 B..32 KiB) took 0.38 s with 8 blocks in the bins above
	 * 8 KiB and a budget of 2 MiB (less than full bins hold), 0.30 s now (glibc 0.30 s) */
	size_t threads = n_live + 1;
	h->slow_start = threads > SLOW_START_THREADS;
	h->mc_budget = threads <= 8 ? MEDIUM_BUDGET : MEDIUM_BUDGET_ALL / threads;
	if (h->mc_budget < MEDIUM_BUDGET_MIN)
		h->mc_budget = MEDIUM_BUDGET_MIN;
	h->next = live_heaps;
	if (live_heaps)
		live_heaps->prev = h;
	live_heaps = h;
	n_live++;
	if (n_live > 1) /* a second program thread: the medium caches' threaded rules at once (internal.h) */
		__atomic_store_n(&osm_front_alone_bg, false, __ATOMIC_RELAXED);
	return h;
}

static struct front_heap *heap_init_errno(void);

/* A thread's first slow path: its heap, and the destructor that returns it at thread exit. NULL when the front
 * is off, or the thread is past its destructor (then the core serves it). Its callers go on to the core then: a
 * failed mapping here must not leave ENOMEM in errno under a malloc that succeeds (a thread's first medium
 * request did: medium/first_request_keeps_errno). */
static struct front_heap *heap_init(void)
{
	int saved = errno;
	struct front_heap *h = heap_init_errno();
	errno = saved;
	return h;
}

/* For medium.c: the calling thread's heap, made now if it has none yet; NULL when it cannot have one (the front
 * off, traced, exiting, out of memory). */
struct front_heap *osm_front_heap_init(void)
{
	return osm_front_tl_heap != &osm_front_empty_heap ? osm_front_tl_heap : heap_init();
}

/* Whether the calling thread holds or waits for the front lock (a signal handler's exit() that interrupted it
 * there must not take it: osmem.c, stats_at_exit). */
bool osm_front_lock_busy(void)
{
	return tl_in_lock || tl_hold;
}

/* Whether the calling thread has a heap of its own (not traced, not exiting). */
bool osm_front_thread_active(void)
{
	return tl_state == TL_ACTIVE;
}

size_t osm_front_threads(void)
{
	return n_live;
}

static ONCE_PATH struct front_heap *heap_init_errno(void)
{
	if (tl_state != TL_NEW)
		return NULL;
	if (tl_map_backoff) { /* the heap could not be mapped lately */
		tl_map_backoff--;
		return NULL;
	}
	front_lock();
	if (global_state == G_UNSET)
		global_init();
	struct front_heap *h = global_state == G_ON ? heap_alloc() : NULL;
	front_unlock();
	if (global_state != G_ON) {
		tl_state = TL_OFF;
		return NULL;
	}
	if (!h) {
		tl_map_backoff = RETRY_AFTER;
		return NULL;
	}
	h->tid = osm_os_thread_id(); /* for heaps_reap: one system call per thread */
	/* The state first: for a key of 32 or more (a program made 32 keys before osmem's first small request) glibc's
	 * pthread_setspecific allocates a second-level array of keys, 512 bytes, which this heap then serves. Set after,
	 * as until session 50, that calloc made a heap of its own, whose pthread_setspecific made another, to the end
	 * of the stack (front/keys/heap_made_with_key_past_32). */
	bool traced = front_tracing();
	if (traced) { /* the fast paths keep failing: every call takes a traced slow path */
		tl_heap = h;
		tl_state = TL_TRACED;
	} else {
		osm_front_tl_heap = h;
		tl_state = TL_ACTIVE;
	}
	if (pthread_setspecific(exit_key, h) != 0) { /* no memory for that array: no exit would run for h */
		heap_exit(h);
		return NULL;
	}
	return traced ? NULL : h;
}

static void heap_exit_page(struct front_heap *h, struct front_page *pg)
{
	h->collected += (size_t)page_collect(pg) * pg->slot_size;
	if (pg->used == 0) {
		pool_put(pg);
		return;
	}
	pg->state = PG_ABANDONED;
	set_heap(pg, NULL);
	if (TRACING)
		osm_trace_event("  abandon %p %z", page_addr(pg), (size_t)pg->used);
	list_push(&abandoned[pg->cls], pg);
	n_abandoned++;
	n_abandoned_cls[pg->cls]++;
}

/* h's pages go back (empty ones to the pool) or are abandoned, its medium blocks go to the core, its counters join
 * the dead threads', and the struct is kept for the next thread. Its thread is this one, exiting, or gone
 * (heaps_reap). Called with the front lock held (traced: the trace's locks), which it lets go. */
static ONCE_PATH void heap_give_back(struct front_heap *h, bool traced)
{
	for (size_t c = 0; c < FRONT_CLASSES; c++) {
		struct front_page *pg;
		if (h->cur[c] != &empty_page)
			heap_exit_page(h, h->cur[c]);
		while ((pg = list_pop(&h->partial[c])))
			heap_exit_page(h, pg);
		while ((pg = list_pop(&h->full[c])))
			heap_exit_page(h, pg);
	}
	struct front_page *pg;
	while ((pg = list_pop(&h->empty)))
		pool_put(pg);
	osm_front_medium_flush_all(h);
	heap_unlink(h);
	h->next = spare_heaps;
	spare_heaps = h;
	if (traced)
		trace_end();
	else
		front_unlock();
}

/* The thread is exiting (pthread key destructor): its heap goes back (heap_give_back). Later calls of this thread
 * use the core. */
static void heap_exit(void *arg)
{
	struct front_heap *h = arg;
	bool traced = tl_state == TL_TRACED;
	/* The thread leaves its heap first, then empties its caches: a signal handler's free that interrupts the
	 * flush then goes to the page's remote list, which heap_give_back collects, not onto a cache being emptied
	 * (where it was lost, and raced with the flush's writes; found by reading, session 50). */
	own_enter_wait(h); /* not while a pass takes its pages (steal_idle); no pass takes them from now on */
	osm_front_tl_heap = &osm_front_empty_heap;
	tl_state = TL_DONE;
	remote_flush(h);
	tc_flush_all(h);
	if (traced) {
		tl_heap = NULL;
		trace_begin();
		if (TRACING)
			osm_trace_event("thread_exit t=%t");
	} else {
		front_lock();
	}
	heap_give_back(h, traced); /* and the locks */
}

/* Heaps whose thread ended without heap_exit: glibc runs the key destructors in at most 4 rounds, and a thread
 * whose first small request came in the last round, from another key's destructor run after osmem's, registered
 * its heap too late for any. Such a heap stayed live for good: its pages and cached slots lost, counted in
 * front_threads (20 such threads: 21 heaps for 1 thread) and in every new thread's share of the medium budget,
 * and slow start switched on past 16 (front/keys/heap_made_in_last_destructor_round_given_back). Looks at up to
 * `max` heaps, from where the last look stopped, and gives back each whose thread is gone (tgkill, signal 0).
 * From malloc_trim (every heap) and osm_front_idle_tick (16 heaps a second at most). Cost: a system call per
 * heap looked at. Neither lock held. */
static ONCE_PATH void heaps_reap(size_t max)
{
	static size_t next_look; /* the place in live_heaps of the next heap to look at (front lock) */
	struct front_heap *mine = tl_state == TL_TRACED ? tl_heap : osm_front_tl_heap;
	for (size_t looked = 0; looked < max;) {
		bool traced = front_enter();
		if (global_state != G_ON || n_live == 0) {
			front_leave(traced);
			return;
		}
		if (max == SIZE_MAX && looked == 0) /* every heap: from the first */
			next_look = 0;
		struct front_heap *gone = NULL, *h = live_heaps;
		size_t at = next_look < n_live ? next_look : 0;
		for (size_t i = 0; h && i < at; i++)
			h = h->next;
		for (; h && looked < max && !gone; h = h->next, at++, looked++)
			if (h != mine && !h->reaping && h->tid && osm_os_thread_gone(h->tid))
				gone = h;
		next_look = h ? at : 0;
		if (!gone) {
			front_leave(traced);
			if (!h) /* the list's end: a pass of malloc_trim's is over */
				return;
			continue;
		}
		gone->reaping = true; /* no other reaper takes it while the lock is let go */
		front_leave(traced);
		remote_flush(gone); /* as its thread's exit would have: outside the lock, which tc_release may take */
		tc_flush_all(gone);
		traced = front_enter();
		if (TRACING)
			osm_trace_event("  thread_gone %p", (void *)gone);
		heap_give_back(gone, traced);
	}
}

// ------------------------------------------------------------------
// malloc's slow path
// ------------------------------------------------------------------

/* A page of class cls with a free slot: partial pages first, then full ones that got remote frees, then an
 * empty page of the heap's own, then (under the lock) an abandoned page or a batch of pages from the pool. */
static struct front_page *find_page(struct front_heap *h, size_t cls)
{
	struct front_page *pg = list_pop(&h->partial[cls]);
	if (pg)
		return pg;
	for (size_t k = 0; k < FULL_SCAN && (pg = h->full[cls].first); k++) {
		list_remove(&h->full[cls], pg);
		if (__atomic_load_n(&pg->thread_free, __ATOMIC_RELAXED)) {
			h->collected += (size_t)page_collect(pg) * pg->slot_size;
			return pg;
		}
		list_push(&h->full[cls], pg); /* to the back: the next scan looks at others first */
	}
	if ((pg = list_pop(&h->empty))) {
		h->n_empty--;
		page_format(pg, h, cls);
		return pg;
	}
	if (tl_map_backoff) { /* a segment could not be mapped lately: the core serves, without the front lock */
		tl_map_backoff--;
		return NULL;
	}
	front_lock();
	pg = n_abandoned ? abandoned_sweep(h, cls, ABANDONED_SCAN, &h->collected) : NULL;
	/* no abandoned page: a batch from the pool, the first for cls, the others kept empty (one lock per BATCH
	 * pages; until this was `!pg && k < BATCH`, which stopped after the first) */
	bool batch = !pg;
	for (size_t k = 0; batch && k < BATCH && h->n_empty < EMPTY_KEEP; k++) {
		struct front_page *p = pool_take();
		if (!p) {
			if (k == 0) /* no page, and no segment could be mapped */
				tl_map_backoff = RETRY_AFTER;
			break;
		}
		if (k == 0) {
			pg = p;
			page_format(pg, h, cls);
		} else {
			p->state = PG_EMPTY;
			list_push(&h->empty, p);
			h->n_empty++;
			if (TRACING)
				osm_trace_event("  page_empty %p", page_addr(p));
		}
	}
	front_unlock();
	return pg;
}

/* The slow path proper: the current page has no free slot (or there is none). */
static inline __attribute__((always_inline)) void *slow_malloc(struct front_heap *h, size_t cls)
{
	remote_flush(h); /* what this thread gathered for another's page goes now, not only at the next batch */
	struct front_page *pg = h->cur[cls];
	if (pg != &empty_page) {
		h->collected += (size_t)page_collect(pg) * pg->slot_size;
		if (pg->free || page_extend(pg)) {
			h->misses++; /* a request the front served: os_stats counts hits + misses as its allocations */
			return page_pop(pg);
		}
		pg->state = PG_FULL;
		list_push(&h->full[cls], pg);
		h->cur[cls] = &empty_page;
	}
	int saved = errno;
	pg = find_page(h, cls);
	errno = saved;
	if (!pg)
		return NULL;
	if (pg->parked) /* a partial or adopted page that a trim left with slots set aside serves mallocs again */
		page_unpark(pg);
	if (!pg->free && !page_extend(pg))
		return NULL; /* cannot happen: every page find_page returns has a free slot */
	pg->state = PG_CUR;
	h->cur[cls] = pg;
	h->used_classes |= (uint32_t)1 << cls;
	h->misses++; /* counted only here and above: a miss the core serves is the core's allocation (os_stats) */
	return page_pop(pg);
}

static void *traced_malloc(size_t cls);

/* Slow start for pages (tcmalloc's slow start, applied to memory): whether the core serves this request of class
 * cls (its block, header and all, lies in the heap every thread shares) instead of a page of the thread's own.
 * A thread's first object of a class costs a page of its own: a 4 KiB page faulted in, in a 64 KiB page that
 * class and thread alone use. With many threads that each keep a few objects of many sizes, those pages were most
 * of the process: 500 threads of 40 objects of 16 B..2 KB (patterns' manythreads) peaked at 61-69 MiB, glibc at
 * 27, every 4 KiB holding one or two objects. So a thread born while SLOW_START_THREADS or more other threads
 * have heaps takes a page of a class only once the class's objects would fill 8 KiB as core blocks (size and
 * header: 170 objects of 16 bytes, 7 of 1 KiB, 3 of 2 KiB), and until then its requests of the class go to the
 * core under its lock. 8 KiB, not the 4 KiB of session 45: at 4 KiB the classes above 1 KiB took their page at a
 * thread's third (or second) object, a 4 KiB page faulted in for one object, two to four pages in each of
 * manythreads' threads: 33 MiB resident with all alive, 30 at 8 KiB (glibc 27), and 0.89 of the time (20 pairs,
 * p 0.004: fewer faults, more of them outside the lock; front/slow_start/few_big_objects_take_no_page). A thread
 * that keeps allocating gets its pages after a few dozen requests (a few hundred of the smallest sizes), and with
 * fewer threads (every workload of make bench) nothing changes: their first pages cost at most a few hundred KiB
 * in all. Cost: a load and a test on the slow path; the core's lock for those first requests. */
static inline bool starter_core(struct front_heap *h, size_t cls)
{
	if (!h->slow_start || (h->used_classes >> cls & 1) ||
	    (uint32_t)(h->starter[cls] + 1) * (osm_front_class_size[cls] + META_SIZE) > SLOW_START_BYTES)
		return false;
	h->starter[cls]++;
	return true;
}

void *osm_front_malloc_slow(size_t cls)
{
	struct front_heap *h = osm_front_tl_heap;
	int saved = errno; /* a heap or segment that could not be mapped: the core serves, errno stays as it was */
	void *p;
	if (h == &osm_front_empty_heap && !(h = heap_init())) {
		p = tl_state == TL_TRACED ? traced_malloc(cls) : NULL;
	} else if (!mc_enter(h)) { /* another thread's pass is taking this idle thread's pages: the core serves */
		p = NULL;
	} else {
		/* atomic: a pass may set bit 0 (steal_idle) */
		bool behind = __atomic_load_n(&h->trim_seen, __ATOMIC_RELAXED) !=
			      __atomic_load_n(&trim_epoch, __ATOMIC_RELAXED);
		if (__builtin_expect(behind, 0) && !tl_in_lock && !tl_hold && !osm_lock_held_by_self())
			heap_trim_late(h);
		p = starter_core(h, cls) ? NULL : slow_malloc(h, cls); /* NULL: the core serves */
		own_leave(h);
	}
	errno = saved;
	return p;
}

/* A traced thread's malloc, calloc, memalign or moving realloc of a front size: what the fast path would do (a
 * hit when the current page has a free slot), else the slow path, recorded with its decisions and its result. */
static void *traced_malloc(size_t cls)
{
	struct front_heap *h = tl_heap;
	if (starter_core(h, cls))
		return NULL; /* the core's request line records it: `malloc N` at a heap address */
	int saved = errno;
	trace_begin();
	if (TRACING) {
		if (tl_req.kind == REQ_MEMALIGN)
			osm_trace_event("memalign %z %z t=%t", tl_req.a, tl_req.n);
		else
			osm_trace_event("slot %z t=%t", (size_t)osm_front_class_size[cls]);
	}
	tl_req.kind = REQ_NONE;
	if (__atomic_load_n(&h->trim_seen, __ATOMIC_RELAXED) != __atomic_load_n(&trim_epoch, __ATOMIC_RELAXED)) {
		/* heap_trim_late, under the trace lock */
		__atomic_store_n(&h->trim_seen, __atomic_load_n(&trim_epoch, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
		heap_trim_own(h);
	}
	struct front_page *pg = h->cur[cls];
	void *p;
	if (pg->free) {
		h->hits++;
		p = page_pop(pg);
	} else {
		p = slow_malloc(h, cls);
	}
	if (TRACING)
		osm_trace_event("= %p", p);
	trace_end();
	errno = saved;
	return p;
}

// ------------------------------------------------------------------
// free's slow paths
// ------------------------------------------------------------------

/* Whether slot s is free: its freed mark, the slot's address xor a 64-bit secret, which a program's data does not
 * hold by chance and malloc clears. The mark decides for every page, the caller's own too: a slot another thread
 * freed may sit in that thread's remote batch (remote_batch), on none of the page's lists, until it is pushed. */
static inline bool slot_is_free(void *s)
{
	return (uintptr_t)((void **)s)[1] == front_mark(s);
}

/* A slot malloc_trim set aside is free, and has no mark (its memory reads zeros): its address tells. */
static void check_slot(void *p, struct front_page *pg, const char *api)
{
	if (!front_is_slot(pg, (uintptr_t)p))
		osm_fatal_pointer(api, "invalid pointer", p);
	if (slot_parked(pg, (uintptr_t)p) || slot_is_free(p))
		osm_fatal_pointer(api, "double free", p);
}

/* A page that is not the current one got a local free: a full page has room again, an empty one goes to the
 * heap's cache (and past EMPTY_KEEP, a batch goes to the pool under the lock). */
static void free_local_slow(struct front_heap *h, struct front_page *pg)
{
	if (pg->state == PG_FULL) {
		list_remove(&h->full[pg->cls], pg);
		pg->state = PG_PARTIAL;
		list_push(&h->partial[pg->cls], pg);
	}
	if (pg->used || pg->state != PG_PARTIAL)
		return;
	list_remove(&h->partial[pg->cls], pg);
	page_unformat(pg, PG_EMPTY);
	list_push(&h->empty, pg);
	if (TRACING)
		osm_trace_event("  page_empty %p", page_addr(pg));
	if (++h->n_empty <= EMPTY_KEEP)
		return;
	int saved = errno;
	front_lock();
	for (size_t k = 0; k < BATCH && h->empty.first; k++, h->n_empty--)
		pool_put(list_pop(&h->empty));
	front_unlock();
	errno = saved;
}

static void remote_push(struct front_page *pg, void **head, void **tail, size_t n);

/* A slot its owner frees to its page's remote list, as another thread would: its page went while the slot sat in
 * the thread cache, or a pass is taking the thread's pages (steal_idle). Rare: out of the hot text. */
static __attribute__((noinline)) void own_free_remote(struct front_heap *h, void **s)
{
	struct front_page *pg = front_page_of(s);
	uint32_t bytes = pg->slot_size;
	remote_push(pg, s, s, 1);
	/* counted as slot_free counts a remote free: os_stats' frees in flight are what was pushed less what was
	 * collected, and the collector counts this one (stranded/taken_page_cached_slot_counted_once) */
	__atomic_store_n(&h->remote_freed, h->remote_freed + bytes, __ATOMIC_RELAXED);
}

/* The oldest k slots of class cls's thread cache (tc_base(h, cls)[1 .. k]) go back to their pages, each checked as
 * malloc checks it. The caller sets tc_sp and tc_top. */
static void tc_release(struct front_heap *h, size_t cls, size_t k)
{
	void ***base = tc_base(h, cls);
	for (size_t i = 1; i <= k; i++) {
		void **s = base[i];
		if (!tc_slot_marked(s))
			osm_front_corrupt(s);
		struct front_page *pg = front_page_of(s);
		if (__builtin_expect(__atomic_load_n(&pg->heap, __ATOMIC_RELAXED) != h, 0)) {
			/* its page went while the slot sat here (steal_idle took it, abandoned, maybe adopted since): the
			 * slot is still counted as used there, and goes back as another thread's free would */
			own_free_remote(h, s);
			continue;
		}
		s[0] = (void *)front_enc(s, pg->free);
		pg->free = s;
		uint32_t used = pg->used - 1;
		pg->used = used;
		/* only a change of list: a full page gets room, a partial one empties. free_local_slow's test reads
		 * `used` and `state` as one word, which the 4-byte store just above cannot forward to: calling it for
		 * every slot of a page not current stalled each (a fifth of a program's time that frees 200,000 strings
		 * it had built, `perf`) */
		if (pg->state != PG_CUR && (pg->state == PG_FULL || used == 0))
			free_local_slow(h, pg);
	}
}

/* Every slot of every class of h's thread cache goes back to its page (thread exit, malloc_trim). */
static void tc_flush_all(struct front_heap *h)
{
	for (size_t c = 0; c < FRONT_CLASSES; c++) {
		size_t k = tc_count(h, c);
		h->tc_sp[c] = tc_base(h, c);
		h->tc_top[c] = NULL;
		tc_release(h, c, k);
	}
}

/* A free found the class's cache full (its top at the row's end): its older half goes back to the pages, then s
 * (marked) is cached. */
void osm_front_tc_overflow(struct front_heap *h, size_t cls, void **s)
{
	if (!mc_enter(h)) { /* a pass is taking this idle thread's pages (steal_idle): s goes to its page's remote list */
		own_free_remote(h, s);
		return;
	}
	void ***base = tc_base(h, cls);
	size_t k = tc_count(h, cls), keep = osm_front_tc_max[cls] / 2;
	tc_release(h, cls, k - keep);
	memmove(&base[1], &base[k - keep + 1], keep * sizeof base[0]);
	base[keep + 1] = s;
	h->tc_sp[cls] = &base[keep + 1];
	h->tc_top[cls] = s;
	own_leave(h);
}

/* Pushes the list head..tail of n slots (linked through encoded links; tail's link not yet set) onto pg's
 * thread-free list, and adds n to its count: one CAS, released, so the owner that takes the list sees every link. */
static void remote_push(struct front_page *pg, void **head, void **tail, size_t n)
{
	uintptr_t old = __atomic_load_n(&pg->thread_free, __ATOMIC_RELAXED);
	do
		tail[0] = (void *)front_enc(tail, (void *)(old & TF_PTR));
	while (!__atomic_compare_exchange_n(&pg->thread_free, &old, (old & ~TF_PTR) + ((uintptr_t)n << TF_SHIFT) +
					    (uintptr_t)head, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* The frees this thread gathered for other threads' pages go to them (a thread's exit, malloc_trim, its own
 * slow paths). The slots stay counted as used by their pages until then, so a page cannot be emptied and given
 * away under them. */
static void remote_flush(struct front_heap *h)
{
	if (!h->rb_any)
		return;
	for (size_t c = 0; c < FRONT_CLASSES; c++)
		if (h->rb[c].page) {
			remote_push(h->rb[c].page, h->rb[c].head, h->rb[c].tail, h->rb[c].count);
			h->rb[c].page = NULL;
		}
	h->rb_any = false;
}

/* A free into another thread's page: gathered per size class while the frees of that class keep to one page (a
 * consumer freeing what a producer allocated in order), pushed with one CAS per RB_MAX of them or when the page
 * changes. The CAS, on a line the owner takes with its exchange, is what a remote free costs: batching divides
 * it. */
static void remote_batch(struct front_heap *h, struct front_page *pg, void **s)
{
	size_t c = pg->cls;
	if (h->rb[c].page != pg) {
		if (h->rb[c].page)
			remote_push(h->rb[c].page, h->rb[c].head, h->rb[c].tail, h->rb[c].count);
		h->rb[c].page = pg;
		h->rb[c].tail = s;
		h->rb[c].count = 0;
		h->rb_any = true;
	} else {
		s[0] = (void *)front_enc(s, h->rb[c].head);
	}
	h->rb[c].head = s;
	if (++h->rb[c].count >= RB_MAX) {
		remote_push(pg, h->rb[c].head, h->rb[c].tail, h->rb[c].count);
		h->rb[c].page = NULL;
	}
}

/* free's slow path for the heap h of the calling thread (&osm_front_empty_heap: it has none): checks p (check_slot
 * reports a bad or freed pointer), then frees it into its own page, or gathers it for another thread's. */
static inline __attribute__((always_inline)) void slot_free(void *p, struct front_page *pg, const char *api,
							     struct front_heap *h)
{
	check_slot(p, pg, api);
	void **s = p;
	/* own page (the mark was the program's data), looked at once counted in (mc_enter): a pass may be taking this
	 * idle thread's pages (steal_idle); then the slot goes to the page's remote list, as another thread's would */
	if (__atomic_load_n(&pg->heap, __ATOMIC_RELAXED) == h && h != &osm_front_empty_heap && mc_enter(h)) {
		if (__atomic_load_n(&pg->heap, __ATOMIC_RELAXED) == h) {
			s[0] = (void *)front_enc(s, pg->free);
			s[1] = (void *)front_mark(s);
			pg->free = s;
			pg->used--;
			h->frees++;
			if (pg->state != PG_CUR)
				free_local_slow(h, pg);
			own_leave(h);
			return;
		}
		own_leave(h);
	}
	/* Another thread's page (or an abandoned one). The mark is written first: once pushed, the owner may hand
	 * the slot out again at any moment. A thread that only frees (a consumer) gets a heap of its own at its
	 * first free: its counters are then plain stores to its own line, not atomic adds to one global line that
	 * every consumer fights over, and it can gather its frees into one page in a batch (remote_batch): one CAS
	 * per RB_MAX frees, not one each. Traced and heapless threads push at once, and so does a free into an abandoned
	 * page (its owner exited: no owner takes that line, and a batch left there by a thread that then blocks kept the
	 * page from emptying through the decay and malloc_trim, only this thread pushing it: consumers that freed an
	 * exited producer's objects held 3.4 MB so; front/stranded/idle_consumers_keep_no_pages_of_exited_producer). */
	size_t bytes = pg->slot_size;
	s[1] = (void *)front_mark(s);
	if (h == &osm_front_empty_heap && tl_state == TL_NEW && !front_tracing())
		h = heap_init() ? osm_front_tl_heap : &osm_front_empty_heap;
	if (h != &osm_front_empty_heap && tl_state == TL_ACTIVE && __atomic_load_n(&pg->heap, __ATOMIC_RELAXED)) {
		remote_batch(h, pg, s);
	} else {
		remote_push(pg, s, s, 1);
	}
	if (h != &osm_front_empty_heap) {
		__atomic_store_n(&h->remote_freed, h->remote_freed + bytes, __ATOMIC_RELAXED);
		size_t f = h->frees + 1;
		__atomic_store_n(&h->frees, f, __ATOMIC_RELAXED);
		/* the decay's passes for a thread that only frees others' objects, as free's fast path ticks: without it
		 * a pool's main thread freeing what its blocked workers built never ran one, and their pages stayed with
		 * them (steal_idle) */
		if (__builtin_expect((f & (FRONT_TICK - 1)) == 0, 0) && tl_state == TL_ACTIVE)
			osm_front_tick();
	} else {
		__atomic_fetch_add(&orphan_remote_freed, bytes, __ATOMIC_RELAXED);
		__atomic_fetch_add(&orphan_frees, 1, __ATOMIC_RELAXED);
	}
	if (TRACING)
		osm_trace_event("  remote_free %p", page_addr(pg));
}

/* A traced free of a front slot (free, os_free, and the free that ends a realloc that moved): its request line,
 * then the free, under both locks. */
static void traced_free(void *p, struct front_page *pg, const char *api)
{
	int saved = errno;
	trace_begin();
	if (TRACING)
		osm_trace_event(strncmp(api, "os_", 3) == 0 ? "os_free %p t=%t" : "free %p t=%t", p);
	slot_free(p, pg, api, tl_state == TL_TRACED ? tl_heap : &osm_front_empty_heap);
	trace_end();
	errno = saved;
}

/* free's fast path did not take p (internal.h, osm_front_free): the thread is traced (its heap is the empty one),
 * p is in another thread's page, it carries the freed mark (a double free, or data that matches it), or it is no
 * carved slot (reported). */
void osm_front_free_slow(void *p, struct front_page *pg, const char *api)
{
	if (front_tracing()) {
		traced_free(p, pg, api);
		return;
	}
	slot_free(p, pg, api, osm_front_tl_heap);
}

// ------------------------------------------------------------------
// The rest of the malloc family
// ------------------------------------------------------------------

size_t osm_front_usable(void *p, const char *api)
{
	struct front_page *pg = front_page_of(p);
	check_slot(p, pg, api);
	if (front_tracing() && strcmp(api, "realloc") == 0) { /* osm_front_keeps comes next, with the new size */
		tl_req.kind = REQ_REALLOC;
		tl_req.p = p;
	}
	return pg->slot_size;
}

/* A traced os_realloc of a front slot that stays where it is (cases 2 and 3 too): its lines. */
static void traced_os_realloc(void *p, size_t n, struct front_page *pg, int c, void *res)
{
	int saved = errno;
	trace_begin();
	if (TRACING) {
		osm_trace_event("os_realloc %p %z t=%t", p, n);
		if (c)
			osm_trace_event("  case %d", c);
	}
	if (c == 2)
		slot_free(p, pg, "os_realloc", tl_state == TL_TRACED ? tl_heap : &osm_front_empty_heap);
	if (TRACING)
		osm_trace_event("= %p", res);
	trace_end();
	errno = saved;
}

void *osm_front_os_realloc(void *p, size_t n, size_t *move)
{
	*move = 0;
	struct front_page *pg = front_page_of(p);
	if (!front_is_slot(pg, (uintptr_t)p))
		osm_fatal_pointer("os_realloc", "invalid pointer", p);
	if (slot_parked(pg, (uintptr_t)p) || slot_is_free(p)) {
		if (front_tracing())
			traced_os_realloc(p, n, pg, 3, NULL);
		return NULL;                                 /* 3: already free, nothing changes */
	}
	if (!n) {                                            /* 2 */
		if (front_tracing())
			traced_os_realloc(p, n, pg, 2, NULL);
		else
			osm_front_free(p, "os_realloc");
		return NULL;
	}
	if (n > MAX_REQUEST) {
		errno = ENOMEM;
		return NULL;
	}
	size_t u = pg->slot_size;
	if (osm_front_keeps(u, n)) {
		if (front_tracing())
			traced_os_realloc(p, n, pg, 0, p);
		return p;
	}
	*move = u < n ? u : n; /* the API moves it: os_malloc (traced, the core's line), the copy, the slot freed */
	return NULL;
}

bool osm_front_keeps(size_t u, size_t n)
{
	bool keep = n <= u && n <= FRONT_MAX && osm_front_class_size[osm_front_class_of[(n + 15) >> 4]] == u;
	if (front_tracing() && tl_req.kind == REQ_REALLOC) {
		/* realloc (override.c): osm_front_usable, then here. In place, the request is recorded now; a move is
		 * recorded as what serves it: the malloc of the new size (`slot C` or the core's `malloc N`), then
		 * `free P` of the old slot. */
		tl_req.kind = REQ_NONE;
		if (keep) {
			int saved = errno;
			trace_begin();
			if (TRACING) {
				osm_trace_event("realloc %p %z t=%t", tl_req.p, n);
				osm_trace_event("= %p", tl_req.p);
			}
			trace_end();
			errno = saved;
		}
	}
	return keep;
}

/* memalign traced, served from the slot of s bytes: the slow path that serves it writes `memalign A N` instead of
 * `slot C`. */
static void *traced_memalign(size_t alignment, size_t n, size_t s)
{
	tl_req.kind = REQ_MEMALIGN;
	tl_req.a = alignment;
	tl_req.n = n;
	void *p = osm_front_malloc(s);
	tl_req.kind = REQ_NONE;
	return p;
}

/* A class whose size the alignment divides has aligned slots: pages start at multiples of 64 KiB. */
void *osm_front_memalign(size_t alignment, size_t n)
{
	size_t s = n; /* alignment 16: any class (every class is a multiple of 16) */
	if (alignment > 16) {
		if (n > FRONT_MAX || alignment > FRONT_MAX)
			return NULL;
		s = osm_front_class_size[osm_front_aligned_class(n, alignment)];
	}
	if (front_tracing())
		return traced_memalign(alignment, n, s);
	return osm_front_malloc(s); /* one copy of malloc's path in the hot text, not two */
}

/* malloc_trim's look at the calling thread's own pages: the remote frees waiting on them are collected, and the
 * pages they empty go to the pool, as heap_exit does when a thread ends. Otherwise only a malloc of the page's
 * class collected them (a few full pages per miss): a thread whose 24 MiB of 256-byte objects another thread
 * freed kept all of it through malloc_trim (front/stranded/trim_collects_remote_frees_of_own_pages; glibc's trim
 * left 2 MB). Owner, front lock held. */
static void heap_collect_all(struct front_heap *h, bool cur)
{
	for (size_t c = 0; c < FRONT_CLASSES; c++) {
		struct front_page *pg = h->cur[c], *next;
		if (cur && pg != &empty_page) {
			h->collected += (size_t)page_collect(pg) * pg->slot_size;
			if (pg->used == 0) {
				h->cur[c] = &empty_page;
				pool_put(pg);
			}
		}
		for (pg = h->full[c].first; pg; pg = next) { /* room again: partial, or empty: the pool */
			next = pg->next;
			uint32_t n = page_collect(pg);
			if (!n)
				continue;
			h->collected += (size_t)n * pg->slot_size;
			list_remove(&h->full[c], pg);
			if (pg->used == 0) {
				pool_put(pg);
			} else {
				pg->state = PG_PARTIAL;
				list_push(&h->partial[c], pg);
			}
		}
		for (pg = h->partial[c].first; pg; pg = next) {
			next = pg->next;
			h->collected += (size_t)page_collect(pg) * pg->slot_size;
			if (pg->used == 0) {
				list_remove(&h->partial[c], pg);
				pool_put(pg);
			}
		}
	}
}

/* malloc_trim inside a page that still holds slots in use: every 4 KiB of it in which no slot is in use goes back
 * to the kernel (madvise, one call per run of them), as glibc's trim gives back the free pages inside its heap.
 * Without it a page kept all of its 64 KiB for one live slot: 40,000 objects of 1,000 bytes with 49 of 50 freed
 * kept 40 MB resident through malloc_trim, glibc's 5.8 (front/trim/trim_gives_back_free_pages_inside_used_pages).
 * A free slot there would lose its link and its freed mark (the memory reads zeros afterwards), so the free list
 * is rebuilt, in address order, of the free slots that lie wholly in memory that stays; those that overlap given-back
 * memory are set aside (`parked`), free, until the page becomes its class's current page again (slow_malloc,
 * page_unpark). While any are, the page's `limit` is 0: free, realloc and malloc_usable_size of its slots take
 * their slow ways, where check_slot knows a set-aside slot by its address (a double free). Not for a current page
 * (the callers skip it): its frees would take the slow path for as long as the program allocates from it, since its
 * free list would never run dry (a malloc/free loop ran at twice its time after one trim: review of session 41).
 * Never-carved 4 KiB (past `span`) go back too, once (`bare`), without being set aside: page_extend writes them
 * afresh. Cost: a walk of the page's free list, a bitmap of 512 bytes and a madvise per run (under the core's lock,
 * as every front system call, for os_stats' count), at malloc_trim only. Returns the bytes given back. Owner
 * (remote frees keep going to thread_free meanwhile: their slots count as in use here), or front lock for an
 * abandoned page. */
static size_t page_trim(struct front_page *pg)
{
	if (pg->used == 0 || (!pg->free && pg->capacity == pg->reserved))
		return 0;
	uint32_t size = pg->slot_size, cap = pg->capacity;
	uintptr_t span = (uintptr_t)cap * size;
	uint64_t freed[FRONT_PAGE_SIZE / 16 / 64] = { 0 }; /* bit i: slot i is free (listed or already set aside) */
	/* every listed slot carries its freed mark: a link that decodes to a slot in use would otherwise give that
	 * slot's memory back under the program's data */
	for (void **s = pg->free; s; s = front_dec(s, (uintptr_t)s[0])) {
		if (!front_is_slot(pg, (uintptr_t)s) || !slot_is_free(s))
			osm_front_corrupt(s);
		size_t i = ((uintptr_t)s - pg->start) / size;
		if (freed[i / 64] >> (i % 64) & 1) /* a slot listed twice: the list loops */
			osm_front_corrupt(s);
		freed[i / 64] |= (uint64_t)1 << (i % 64);
	}
	uint16_t parked = pg->parked;
	for (uint32_t i = 0; parked && i < cap; i++)
		if (small_pages_of((uintptr_t)i * size, size) & parked)
			freed[i / 64] |= (uint64_t)1 << (i % 64);
	uint32_t give = 0, park = 0;
	for (unsigned j = 0; j < FRONT_PAGE_SIZE / 4096; j++) {
		uintptr_t lo = (uintptr_t)j << 12, hi = lo + 4096 < span ? lo + 4096 : span;
		if ((parked >> j & 1) || (lo >= span && (pg->bare >> j & 1)))
			continue;
		bool all = true;
		for (uintptr_t i = lo / size; lo < span && all && i <= (hi - 1) / size; i++)
			all = freed[i / 64] >> (i % 64) & 1;
		all = all && !(seg_tail_kept(pg) >> j & 1);
		if (all)
			give |= 1u << j;
		if (all && lo < span)
			park |= 1u << j;
	}
	pg->bare |= (uint16_t)(give & ~park);
	if (park) {
		parked |= (uint16_t)park;
		void *head = NULL;
		for (uint32_t i = cap; i-- > 0;) {
			if (!(freed[i / 64] >> (i % 64) & 1) || (small_pages_of((uintptr_t)i * size, size) & parked))
				continue;
			void **s = (void **)(pg->start + (uintptr_t)i * size);
			s[0] = (void *)front_enc(s, head); /* s[1] keeps its freed mark */
			head = s;
		}
		pg->free = head;
		pg->limit = 0;
		__atomic_store_n(&pg->parked, parked, __ATOMIC_RELAXED);
	}
	size_t bytes = 0;
	if (give)
		core_lock();
	for (unsigned j = 0, e; j < FRONT_PAGE_SIZE / 4096; j = e) {
		for (e = j; e < FRONT_PAGE_SIZE / 4096 && (give >> e & 1); e++)
			;
		if (e == j) {
			e++;
			continue;
		}
		char *run = (char *)page_addr(pg) + ((size_t)j << 12);
		if (TRACING)
			osm_trace_event("  page_release %p %z", (void *)run, (size_t)(e - j) << 12);
		osm_os_discard(run, (size_t)(e - j) << 12);
		bytes += (size_t)(e - j) << 12;
	}
	if (give)
		core_unlock();
	return bytes;
}

/* A thread's part of malloc_trim, for its own heap h: the remote frees waiting on its pages are collected and the
 * pages they empty go to the pool, with its empty pages; the free 4 KiB inside its pages that hold slots in use,
 * other than its current ones, go back (page_trim). Returns whether memory went back. Owner, front lock held (or
 * traced). */
static bool heap_trim_own(struct front_heap *h)
{
	struct front_page *pg;
	bool released = false;
	remote_flush(h);
	heap_collect_all(h, true);
	while ((pg = list_pop(&h->empty)))
		pool_put(pg);
	h->n_empty = 0;
	for (size_t c = 0; c < FRONT_CLASSES; c++) /* not the current pages: page_trim */
		for (pg = h->partial[c].first; pg; pg = pg->next)
			released |= page_trim(pg) != 0;
	return released;
}

/* malloc_trim ran in another thread since this one last looked (h->trim_seen behind trim_epoch): this thread's
 * pages get the look that only their owner can give them (heap_trim_own), and the pool the pages it gave back.
 * Before it, a trim left every other live thread's pages as they were: 40,000 objects of 1,000 bytes that a
 * worker thread allocated and mostly freed stayed resident through a trim in the main thread
 * (front/trim/other_threads_trim_at_their_next_slow_path). glibc's trim walks every arena from the caller; osmem
 * rebuilds a live thread's free lists only in that thread, so this is later: at the thread's next malloc slow path
 * (a page ran out) or free tick (every FRONT_TICK frees its caches take). The trim itself takes the pages other
 * than the current ones of every thread not inside a slow path (steal_idle). Cost when no trim ran: a load and a
 * compare, on those paths only. Not in a traced thread's free tick (its
 * frees never take the fast paths); a traced thread's slow path calls heap_trim_own under its trace lock. */
static void heap_trim_late(struct front_heap *h)
{
	if (!mc_enter(h)) /* a pass is taking this idle thread's pages: the trim's look comes at a later call */
		return;
	uint32_t epoch = __atomic_load_n(&trim_epoch, __ATOMIC_RELAXED);
	/* bit 0 alone: no trim ran, the decay's pass found this thread busy with pages it does not allocate from
	 * (steal_idle): their remote frees are collected and the pages they empty go to the pool, nothing more.
	 * Without it a thread that built objects another thread freed, and then kept allocating other sizes, kept
	 * every page of them (200,000 objects of 64 bytes: 13 MB for the thread's life) */
	bool trim = (__atomic_load_n(&h->trim_seen, __ATOMIC_RELAXED) & ~1u) != epoch;
	__atomic_store_n(&h->trim_seen, epoch, __ATOMIC_RELAXED);
	int saved = errno;
	if (trim)
		tc_flush_all(h); /* before the lock, as in osm_front_trim */
	front_lock();
	if (!trim)
		heap_collect_all(h, false); /* not the current pages: the thread allocates from them */
	else if (heap_trim_own(h) || pool.first)
		pool_chill(true, 0);
	front_unlock();
	errno = saved;
	own_leave(h);
}

/* malloc_trim: the remote frees waiting on the calling thread's pages are collected (heap_collect_all) and its
 * empty pages go to the pool, abandoned pages are swept, the free 4 KiB inside the caller's pages (not its current
 * ones) and the abandoned pages that still hold slots in use go back (page_trim), every fully free segment is
 * unmapped and the pages of the pool are discarded (their memory reads zero when used again). The other threads'
 * pages but their current ones go too, from every thread not inside a slow path (steal_idle: abandoned or pooled,
 * then swept and trimmed here); only its owner may rebuild a page's free list, so every other live thread trims its
 * current pages at its next malloc slow path or free tick (trim_epoch, heap_trim_late). */
bool osm_front_trim(void)
{
	if (global_state == G_ON)
		heaps_reap(SIZE_MAX); /* before the pages are counted: a gone thread's become abandoned or free */
	struct front_heap *h = tl_state == TL_TRACED ? tl_heap : osm_front_tl_heap;
	bool released = false, traced = front_tracing();
	if (h != &osm_front_empty_heap) {
		own_enter_wait(h); /* another thread's pass may be taking this heap's pages, if it was idle */
		tc_flush_all(h); /* before the lock: it may give a batch of empty pages to the pool, which takes it */
	}
	if (traced) { /* the front's part of malloc_trim: the core's line `malloc_trim PAD` follows */
		trace_begin();
		if (TRACING)
			osm_trace_event("front_trim t=%t");
	} else {
		front_lock();
	}
	if (global_state != G_ON) { /* never traced: tracing needs the front on */
		front_unlock();
		own_leave(h);
		return false;
	}
	struct front_page *pg;
	uint32_t epoch = __atomic_add_fetch(&trim_epoch, 2, __ATOMIC_RELAXED); /* the other threads' turn comes later */
	if (h != &osm_front_empty_heap) {
		__atomic_store_n(&h->trim_seen, epoch, __ATOMIC_RELAXED);
		released |= heap_trim_own(h);
	}
	/* the other threads' pages but their current ones, and their medium caches: those of every thread not inside
	 * a slow path at this moment (steal_idle), which then trim only what is left at their next one */
	steal_idle(true);
	abandoned_sweep(NULL, FRONT_CLASSES, SIZE_MAX, &dead.collected);
	for (size_t c = 0; c < FRONT_CLASSES; c++)
		for (pg = abandoned[c].first; pg; pg = pg->next)
			released |= page_trim(pg) != 0;
	for (struct front_seg *s = segments, *next; s; s = next) {
		next = seg_links(s)->next;
		if (seg_links(s)->free_pages == FRONT_PAGES - 1) {
			seg_release(s);
			released = true;
		}
	}
	released |= pool_chill(true, 0) != 0;
	if (traced)
		trace_end();
	else
		front_unlock();
	own_leave(h);
	return released;
}

/* Read under the front lock. The counters and `used` of running threads are read as they are at that moment
 * (plain fields their owners update without a lock): exact when the program is quiet, a close estimate while
 * other threads allocate. */
void osm_front_stats(struct front_stats *fs)
{
	memset(fs, 0, sizeof *fs);
	front_lock();
	if (global_state != G_ON) {
		front_unlock();
		return;
	}
	size_t remote = dead.remote_freed + __atomic_load_n(&orphan_remote_freed, __ATOMIC_RELAXED);
	size_t collected = dead.collected;
	fs->hits = dead.hits;
	fs->misses = dead.misses;
	fs->mc_hits = dead.mc_hits;
	fs->mc_frees = dead.mc_frees;
	fs->mc_refills = dead.mc_refills;
	fs->mc_flushed = dead.mc_flushed;
	fs->mc_scavenged = dead.mc_scavenged;
	fs->pool_discarded = pool_discarded;
	fs->frees = dead.frees + __atomic_load_n(&orphan_frees, __ATOMIC_RELAXED);
	for (struct front_heap *h = live_heaps; h; h = h->next) {
		fs->hits += __atomic_load_n(&h->hits, __ATOMIC_RELAXED);
		fs->misses += __atomic_load_n(&h->misses, __ATOMIC_RELAXED);
		fs->frees += __atomic_load_n(&h->frees, __ATOMIC_RELAXED);
		remote += __atomic_load_n(&h->remote_freed, __ATOMIC_RELAXED);
		collected += __atomic_load_n(&h->collected, __ATOMIC_RELAXED);
		fs->mc_hits += __atomic_load_n(&h->mc_hits, __ATOMIC_RELAXED);
		fs->mc_frees += __atomic_load_n(&h->mc_frees, __ATOMIC_RELAXED);
		fs->mc_refills += __atomic_load_n(&h->mc_refills, __ATOMIC_RELAXED);
		fs->mc_flushed += __atomic_load_n(&h->mc_flushed, __ATOMIC_RELAXED);
		fs->mc_scavenged += __atomic_load_n(&h->mc_scavenged, __ATOMIC_RELAXED);
		fs->mc_bytes += __atomic_load_n(&h->mc_bytes, __ATOMIC_RELAXED);
		for (size_t c = 0; c < MEDIUM_CLASSES; c++)
			fs->mc_blocks += __atomic_load_n(&h->mc_count[c], __ATOMIC_RELAXED);
		for (size_t c = 0; c < FRONT_CLASSES; c++) {
			void ***sp = __atomic_load_n(&h->tc_sp[c], __ATOMIC_RELAXED);
			size_t n = (size_t)(sp - tc_base(h, c));
			fs->tc_slots += n;
			fs->tc_bytes += n * osm_front_class_size[c];
		}
	}
	osm_front_medium_stats(fs); /* the transfer cache (front lock held) */
	fs->tc_slots += ghost.tc_slots;
	fs->tc_bytes += ghost.tc_bytes;
	fs->mc_blocks += ghost.mc_blocks;
	fs->mc_bytes += ghost.mc_bytes;
	fs->threads = n_live;
	for (struct front_seg *s = segments; s; s = seg_links(s)->next) {
		fs->segment_bytes += FRONT_SEG_SIZE;
		if (seg_links(s)->carved)
			fs->carved_bytes += FRONT_SEG_SIZE;
		/* pages never handed out hold nothing: their descriptors are not read, so that their pages of metadata
		 * stay unmapped (a read maps the zero page, and the first write then faults again) */
		for (size_t i = 1; i < FRONT_PAGES - seg_links(s)->fresh; i++) {
			struct front_page *pg = &s->pages[i];
			uint8_t st = __atomic_load_n(&pg->state, __ATOMIC_RELAXED);
			if (st == PG_POOL || st == PG_EMPTY)
				continue;
			fs->page_bytes += FRONT_PAGE_SIZE;
			fs->in_use += (size_t)__atomic_load_n(&pg->used, __ATOMIC_RELAXED) *
				      __atomic_load_n(&pg->slot_size, __ATOMIC_RELAXED);
		}
	}
	/* slots freed by other threads and not yet collected by their owners are free, not in use */
	size_t pending = remote > collected ? remote - collected : 0;
	fs->in_use = fs->in_use > pending ? fs->in_use - pending : 0;
	fs->free_bytes = fs->segment_bytes - n_segments * FRONT_PAGE_SIZE - fs->in_use;
	/* the thread caches' slots count as used by their pages: they are cached, neither in use nor free */
	fs->in_use = fs->in_use > fs->tc_bytes ? fs->in_use - fs->tc_bytes : 0;
	front_unlock();
}
