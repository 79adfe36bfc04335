/* osmem: the classic API (os_malloc, os_calloc, os_realloc, os_free) and the lock around the core.
 *
 * Arguments are checked here (zero sizes, overflow, bad pointers) and the core runs under one lock.
 * Nothing here calls the kernel; errno is ENOMEM whenever NULL stands for a failure. libosmem.so follows
 * docs/CLASSIC.md to the letter; in libosmem-malloc.so (OSMEM_DROPIN) these share malloc's heap and profile. */
#include <errno.h>
#include <pthread.h>

#include "internal.h"
#include "osmem.h"

#ifdef OSMEM_DROPIN
#define DROPIN true
#else
#define DROPIN false
#endif

// ------------------------------------------------------------------
// fork
// ------------------------------------------------------------------

#ifdef __GLIBC__
/* stdio's list lock: glibc's fork takes it before its own malloc's locks, and so must we, since a thread
 * that holds a FILE's lock may be waiting for ours (glibc bug 19431; tst-malloc-fork-deadlock). It is
 * recursive, so glibc's fork taking it again after our handler is fine. */
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);
extern void _IO_list_resetlock(void);
#else
static void _IO_list_lock(void) {}
static void _IO_list_unlock(void) {}
static void _IO_list_resetlock(void) {}
#endif

/* fork() copies the heap as it is: the core's lock is taken first (lock.c, osm_lock_fork_*) so that no other
 * thread is half-way through a change; the child's heap is then consistent. The order: stdio's list lock, the
 * front's lock, the heap's. A fork from a signal handler that interrupted this very thread while it held the lock
 * cannot wait for itself: the lock is left alone, and that child's heap may be half-changed (README: after such a
 * fork the child may only call async-signal-safe functions, as with glibc). A thread that was only waiting for
 * the lock does not hold it: its fork waits like any other.
 * stdio's list lock only while the process has threads, as glibc's fork takes it: it is there for another thread
 * that holds a FILE's lock, and it is not safe against a signal. It is recursive by owner, but between taking its
 * low-level lock and writing the owner (and between clearing the owner and letting go) a signal whose handler forks
 * waits for itself forever: glibc's tst-mallocfork2 (a one-thread process forking from SIGUSR1 handlers) hung so
 * once in session 71's `make check` (tests/malloc_protect_fork_stdio.c). Whether the process has threads does not
 * change between a fork's prepare handler and its parent or child one (no thread is made meanwhile, and a child of
 * a threaded process still counts as threaded). */
static void fork_prepare(void)
{
	if (!osm_os_single_threaded())
		_IO_list_lock();
	if (osm_lock_fork_skip())
		return;
#ifdef OSMEM_DROPIN
	osm_front_fork_prepare(); /* front lock before heap lock */
#endif
	osm_lock_fork_take();
}

static void fork_parent(void)
{
	if (osm_lock_fork_parent()) {
#ifdef OSMEM_DROPIN
		osm_front_fork_parent();
#endif
	}
	if (!osm_os_single_threaded())
		_IO_list_unlock();
}

static void fork_child(void)
{
	if (!osm_os_single_threaded())
		_IO_list_resetlock();
	osm_lock_fork_child(); /* one thread, with a new id: a free lock, whatever the parent's threads left in it */
#ifdef OSMEM_DROPIN
	osm_front_fork_child();
	osm_background_fork_child();
#endif
	osm_lock_fork_child_done();
}

// ------------------------------------------------------------------
// Statistics and the heap dump (their text: stats.c, dump.c)
// ------------------------------------------------------------------

/* The figures of every layer, each read under its own lock (the front's first, never nested in the heap's), and the
 * mapping cache's apart for the text. */
void osm_stats_gather(struct os_stats *st, struct osm_stats_extra *x)
{
#ifdef OSMEM_DROPIN
	struct front_stats fs;
	osm_front_stats(&fs); /* its own lock, taken before the heap lock and not nested in it */
#endif
	osm_lock();
	const struct heap_counters *c = &osm_heap.count;
	memset(st, 0, sizeof *st);
	st->bytes_requested = c->requested;
	st->bytes_in_use = c->heap_in_use + c->mapped_bytes;
	st->peak_in_use = c->peak_in_use;
	st->heap_size = osm_heap_bytes();
	st->mapped_bytes = c->mapped_bytes;
	st->mapped_count = c->mapped_count;
	st->mapped_peak_bytes = c->mapped_peak_bytes;
	st->mapped_peak_count = c->mapped_peak_count;
	osm_free_summary(&st->largest_free, &st->free_blocks, &st->free_bytes);
	st->fragmentation = st->free_bytes ? 1.0 - (double)st->largest_free / (double)st->free_bytes : 0.0;
	st->allocations = c->allocations;
	st->frees = c->frees;
	st->brk_calls = osm_os_calls.brk;
	st->mmap_calls = osm_os_calls.mmap;
	st->munmap_calls = osm_os_calls.munmap;
	st->mremap_calls = osm_os_calls.mremap;
	st->madvise_calls = osm_os_calls.madvise;
	st->populate_calls = osm_os_calls.populate;
	st->splits = c->splits;
	st->coalesces = c->coalesces;
	st->inplace_reallocs = c->inplace_reallocs;
	st->moved_reallocs = c->moved_reallocs;
	st->trims = c->trims;
	st->huge_bytes = c->huge_bytes;
	st->fault_probe_ns = c->fault_probe_ns;
	st->idle_released = c->decayed_bytes;
	st->deferred_frees = c->deferred_frees;
	st->front_cached_blocks = c->kept_maps; /* the kept mappings; the front's caches are added below */
	st->front_cached_bytes = c->kept_bytes;
	x->classic = osm_heap.classic;
	x->front_carved_bytes = 0;
	x->kept_maps = c->kept_maps;
	x->kept_bytes = c->kept_bytes;
	x->reused_maps = c->reused_maps;
	x->background = false;
	x->background_wakes = 0;
	osm_unlock();
	x->streamed_moves = 0;
#ifdef OSMEM_DROPIN
	x->background = osm_background_running(&x->background_wakes);
	x->streamed_moves = __atomic_load_n(&osm_streamed_moves, __ATOMIC_RELAXED);
	st->cache_hits = fs.hits;
	st->cache_misses = fs.misses;
	st->front_bytes = fs.segment_bytes;
	x->front_carved_bytes = fs.carved_bytes;
	st->front_page_bytes = fs.page_bytes;
	st->front_in_use = fs.in_use; /* the thread caches' slots are in neither front_in_use nor front_free */
	st->front_free = fs.free_bytes;
	st->front_threads = fs.threads;
	st->front_scavenged = fs.mc_scavenged;
	st->idle_released += fs.pool_discarded;
	st->bytes_in_use += fs.in_use;
	st->allocations += fs.hits + fs.misses; /* every request the front served (a miss is served in its slow path) */
	st->frees += fs.frees;
	osm_zero_counts(&st->allocations, &st->frees); /* malloc(0)'s addresses, which no layer below serves */
	/* medium caches: the program's requests are the core's (a refill takes the one block it serves from the
	 * core), plus the ones the caches served; its frees, the core's minus the blocks a cache gave back, plus the
	 * ones the caches took; what they hold is free, not in use */
	st->cache_hits += fs.mc_hits;
	st->cache_misses += fs.mc_refills;
	st->allocations += fs.mc_hits;
	st->frees = st->frees - fs.mc_flushed + fs.mc_frees;
	/* read under the front lock, before the core's figures: a cache that gave blocks back since is counted twice */
	st->bytes_in_use = st->bytes_in_use > fs.mc_bytes ? st->bytes_in_use - fs.mc_bytes : 0;
	st->front_cached_blocks += fs.mc_blocks + fs.tc_slots;
	st->front_cached_bytes += fs.mc_bytes + fs.tc_bytes;
	/* the core's peak or the front's slots now, and never below what an earlier call reported: the front does
	 * not track its own peak on the fast path (a peak of 640,000 bytes of slots read as 4,096 once they were
	 * freed; the review of session 56, stats/peak_never_falls) */
	static size_t reported_peak;
	size_t seen = __atomic_load_n(&reported_peak, __ATOMIC_RELAXED);
	if (st->peak_in_use < st->bytes_in_use)
		st->peak_in_use = st->bytes_in_use;
	if (st->peak_in_use < seen)
		st->peak_in_use = seen;
	while (seen < st->peak_in_use &&
	       !__atomic_compare_exchange_n(&reported_peak, &seen, st->peak_in_use, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		;
#endif
}

void os_stats_get(struct os_stats *st, size_t size)
{
	struct os_stats all;
	struct osm_stats_extra x;
	osm_stats_gather(&all, &x);
	memcpy(st, &all, size < sizeof all ? size : sizeof all);
}

/* The unsized entry point of programs built before os_stats_get (the parentheses keep osmem.h's macro out). */
void(os_stats)(struct os_stats *st)
{
	os_stats_get(st, sizeof *st);
}

void os_stats_print(int fd)
{
	struct os_stats st;
	struct osm_stats_extra x;
	osm_stats_gather(&st, &x);
	osm_stats_print(fd, &st, &x);
}

int os_heap_dump(int fd, int format)
{
	if (format != OS_DUMP_TEXT && format != OS_DUMP_JSON)
		return -1;
	struct osm_dump d;
	osm_lock();
	osm_set_op("os_heap_dump"); /* the dump trusts the links: a forged one is reported first, under this name */
	osm_heap_links_check();
	bool built = osm_dump_build(format == OS_DUMP_JSON, &d);
	osm_unlock();
	if (!built)
		return -1;
	osm_dump_write(fd, &d);
	return 0;
}

static void stats_at_exit(void)
{
	if (!osm_stats_wanted())
		return;
	/* exit() from a signal handler that interrupted this thread holding a lock the figures need: no figures (it
	 * waited for itself until session 50: protect_exit_signal/stats_at_exit_lock_held) */
	bool busy = osm_lock_held_by_self();
#ifdef OSMEM_DROPIN
	busy |= osm_front_lock_busy();
#endif
	if (busy) {
		osm_os_write_err("osmem: no statistics: the process exited from a signal handler inside the allocator\n");
		return;
	}
	struct os_stats st;
	struct osm_stats_extra x;
	osm_stats_gather(&st, &x);
	osm_stats_at_exit(&st, &x);
}

// ------------------------------------------------------------------
// Start and end of the process
// ------------------------------------------------------------------

/* The trace's end: sealed under the heap lock, written after it. exit() from a signal handler that interrupted
 * the allocator: this thread holds the lock already. */
static void trace_at_exit(void)
{
	if (!osm_trace_on)
		return;
	bool held = osm_lock_held_by_self();
	if (!held)
		osm_lock();
	osm_trace_seal_at_exit();
	if (!held)
		osm_unlock();
	osm_trace_drain_at_exit();
}

/* After every destructor and exit handler: a library finalised after osmem (its destructor frees) still
 * counts in the statistics and still reaches the trace. */
static void at_last_exit(void *arg)
{
	(void)arg;
	trace_at_exit();
	stats_at_exit();
}

static bool exit_last; /* at_last_exit will run */

__attribute__((constructor)) static ONCE_PATH void osmem_start(void)
{
	/* registers handlers and opens the statistics' file only: no allocation, and the break is not touched */
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	bool stats = osm_stats_open();
	const char *trace = osm_os_getenv("OSMEM_TRACE");
	if (trace && *trace)
		osm_trace_note_start(trace);
	if (stats || (trace && *trace))
		exit_last = osm_os_at_exit_last(at_last_exit, !DROPIN);
#ifdef OSMEM_DROPIN
	/* OSMEM_BACKGROUND=1: last, with the handlers in place and no lock held; the test inline (hot text, every
	 * process), the start out of it */
	const char *bg = osm_os_getenv("OSMEM_BACKGROUND");
	if (bg && *bg)
		osm_background_start(bg);
#endif
}

/* The trace is flushed here too, in case a later destructor ends the process with _exit; the statistics print
 * once: at the end, or here when the end could not be reached. */
__attribute__((destructor)) static void osmem_end(void)
{
#ifdef OSMEM_DROPIN
	__atomic_store_n(&osm_background_stop, true, __ATOMIC_RELEASE); /* its thread makes no pass from now on */
#endif
	trace_at_exit();
	if (!exit_last)
		stats_at_exit();
}

// ------------------------------------------------------------------
// The classic API
// ------------------------------------------------------------------

static void *fail_enomem(void)
{
	errno = ENOMEM;
	return NULL;
}

void *os_malloc(size_t size)
{
	if (!size)
		return NULL;
	if (size > MAX_REQUEST)
		return fail_enomem();
	osm_lock();
	osm_set_op("os_malloc"); /* the name the core's reports give */
	if (TRACING)
		osm_trace_event("os_malloc %z t=%t", size);
	osm_note_request(size);
	struct block_meta *b = osm_malloc(size, osm_heap.policy.mmap_threshold);
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	osm_unlock();
	return b ? payload(b) : fail_enomem();
}

void os_free(void *ptr)
{
	if (!ptr)
		return;
#ifdef OSMEM_DROPIN
	if (osm_front_owns(ptr)) { /* malloc's small slots (front.c) */
		osm_front_free(ptr, "os_free");
		return;
	}
#endif
	osm_lock();
	osm_set_op("os_free"); /* the name the core's reports give */
	if (TRACING)
		osm_trace_event("os_free %p t=%t", ptr);
#ifdef OSMEM_DROPIN
	if (osm_zero_owns(ptr)) { /* malloc(0)'s address (strict.c) */
		osm_zero_check(ptr, "os_free", true);
		osm_unlock();
		return;
	}
#endif
	struct block_meta *b = osm_user_block(ptr, "os_free", false);
#ifdef OSMEM_DROPIN
	if (osm_front_medium_cached(b)) /* in a thread's medium cache: freed already */
		osm_fatal_pointer("os_free", "double free", ptr);
#endif
	osm_free(b);
	osm_unlock();
}

void *os_calloc(size_t nmemb, size_t size)
{
	if (!nmemb || !size)
		return NULL;
	if (nmemb > MAX_REQUEST / size)
		return fail_enomem();
	osm_lock();
	osm_set_op("os_calloc"); /* the name the core's reports give */
	if (TRACING)
		osm_trace_event("os_calloc %z %z t=%t", nmemb, size);
	osm_note_request(nmemb * size);
	size_t dirty, populate; /* of a kept mapping (the drop-in's default profile): what its freed block may have
				  * left; of a fresh mapping, what to populate (heap.c, calloc_populate) */
	struct block_meta *b = osm_malloc_zero(nmemb * size, osm_heap.policy.calloc_threshold, &dirty, &populate);
	size_t clear = !b ? 0 : b->status != STATUS_MAPPED ? b->size : dirty;
	if (clear) /* a reused block is dirty; fresh mappings are already zero, and no memset call is made for them */
		memset(payload(b), 0, clear);
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	osm_unlock();
	if (b && populate)
		osm_os_populate_uncounted((void *)(((uintptr_t)payload(b) + osm_os_page_size() - 1) &
						   ~(uintptr_t)(osm_os_page_size() - 1)), populate);
	return b ? payload(b) : fail_enomem();
}

void *os_realloc(void *ptr, size_t size)
{
	if (!ptr)                                            /* 1 */
		return os_malloc(size);
#ifdef OSMEM_DROPIN
	if (osm_front_owns(ptr)) {
		size_t move;
		void *r = osm_front_os_realloc(ptr, size, &move);
		if (!move)
			return r;
		void *q = os_malloc(size); /* traced: the core's os_malloc line, then os_free of the slot */
		if (!q)
			return NULL;
		memcpy(q, ptr, move);
		osm_front_free(ptr, "os_realloc");
		return q;
	}
	if (osm_zero_owns(ptr)) { /* malloc(0)'s address: nothing to copy; 0 frees it; freed already: NULL (3) */
		osm_lock();
		osm_set_op("os_realloc");
		bool live = osm_zero_live(ptr, "os_realloc");
		if (!live && TRACING) /* else the lines of os_malloc and os_free below */
			osm_trace_event("os_realloc %p %z t=%t\n  case 3\n= NULL", ptr, size);
		osm_unlock();
		if (!live)
			return NULL;
		void *q = size ? os_malloc(size) : NULL;
		if (size && !q)
			return NULL;
		os_free(ptr);
		return q;
	}
#endif
	osm_lock();
	osm_set_op("os_realloc"); /* the name the core's reports give */
	if (TRACING)
		osm_trace_event("os_realloc %p %z t=%t", ptr, size);
	struct block_meta *b = osm_user_block(ptr, "os_realloc", true);
	bool cached = false; /* drop-in: a block in a thread's medium cache is a free block to the program */
#ifdef OSMEM_DROPIN
	cached = osm_front_medium_cached(b);
#endif
	if (b->status == STATUS_FREE || cached) {            /* 3, also when size is 0: nothing to free */
		if (TRACING)
			osm_trace_event("  case 3\n= NULL");
		osm_unlock();
		return NULL;
	}
	if (!size) {                                         /* 2 */
		if (TRACING)
			osm_trace_event("  case 2");
		osm_free(b);
		if (TRACING)
			osm_trace_event("= NULL");
		osm_unlock();
		return NULL;
	}
	if (size > MAX_REQUEST) { /* after cases 3 and 2, so after the request's line: it ends with its result */
		if (TRACING)
			osm_trace_event("= NULL");
		osm_unlock();
		return fail_enomem();
	}
	osm_note_request(size);
	struct block_meta *nb = osm_realloc(b, size);
	if (TRACING)
		osm_trace_event("= %p", nb ? payload(nb) : NULL);
	osm_unlock();
	return nb ? payload(nb) : fail_enomem();
}

/* The invariant walk (check.c), under the lock; the report is written after the lock is let go. */
int os_heap_check(void)
{
	osm_lock();
	const char *why = osm_heap_check();
	osm_unlock();
	if (!why)
		return 0;
	osm_os_write_err("osmem: heap check failed: ");
	osm_os_write_err(why);
	osm_os_write_err("\n");
	return -1;
}
