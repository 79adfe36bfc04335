/* osmem: the classic API (os_malloc, os_calloc, os_realloc, os_free) and the lock around the core.
 *
 * Arguments are checked here (zero sizes, overflow, bad pointers) and the core runs under one lock.
 * Nothing here calls the kernel; errno is ENOMEM whenever NULL stands for a failure. libosmem.so follows
 * SPEC.md Part 1 to the letter; in libosmem-malloc.so (OSMEM_DROPIN) these share malloc's heap and profile. */
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
// The lock
// ------------------------------------------------------------------

/* The heap lock is one word (internal.h, osm_os_lock_take): 0 when free, else the owner's thread id, plus
 * OSM_LOCK_WAITERS when another thread may sleep on it. Taking it is one compare-and-swap 0 -> tid, so "this
 * thread holds the lock" is exact at every instruction, also for a signal handler that interrupted this thread
 * (fork must know: it cannot wait for a lock its own thread holds, and it must wait for one its thread merely
 * waits for). Costs: uncontended, a CAS and an exchange; contended, a short spin, then futex system calls (os.c,
 * osm_os_lock_slow). Never a cancellation point. */

static int heap_lock;
/* This thread's kernel id, read once per thread (again in a forked child). */
static __thread int self_tid __attribute__((tls_model("initial-exec")));
/* Set by fork's prepare handler once it holds the lock, cleared by its parent and child handlers: other
 * pthread_atfork handlers that run in between on this thread (registered before osmem's, so they run after its
 * prepare and before its parent/child handlers) may allocate. They run without taking the lock: this thread
 * holds it and every other thread that wants it is waiting. */
static __thread bool forking __attribute__((tls_model("initial-exec")));
/* Forks whose prepare handler found this thread holding the lock (a fork from a signal handler that interrupted
 * the allocator, or another fork, on this thread) and left it alone; nested forks unwind in order. */
static __thread unsigned fork_skips __attribute__((tls_model("initial-exec")));

static inline int my_tid(void)
{
	if (!self_tid)
		self_tid = osm_os_thread_id();
	return self_tid;
}

static void lock_take(void)
{
	osm_os_lock_take(&heap_lock, my_tid());
}

static void lock_release(void)
{
	osm_os_lock_give(&heap_lock);
}

bool osm_lock_held_by_self(void)
{
	return (__atomic_load_n(&heap_lock, __ATOMIC_RELAXED) & ~OSM_LOCK_WAITERS) == my_tid();
}

void osm_lock(void)
{
	if (!forking)
		lock_take();
	osm_init(DROPIN);
}

void osm_unlock(void)
{
	if (forking)
		return;
	lock_release();
	/* the recorder's file writes wait until here: a slow disk stalls this thread only */
	if (TRACING)
		osm_trace_after_unlock();
}

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

/* fork() copies the heap as it is: take the lock first so that no other thread is half-way through a change;
 * the child's heap is then consistent. A fork from a signal handler that interrupted this very thread while it
 * held the lock cannot wait for itself: the lock is left alone, and that child's heap may be half-changed
 * (README: after such a fork the child may only call async-signal-safe functions, as with glibc). A thread
 * that was only waiting for the lock does not hold it: its fork waits like any other. */
static void fork_prepare(void)
{
	_IO_list_lock();
	if (osm_lock_held_by_self()) {
		fork_skips++;
		return;
	}
#ifdef OSMEM_DROPIN
	osm_front_fork_prepare(); /* front lock before heap lock */
#endif
	lock_take();
	osm_init(DROPIN);
	forking = true;
}

static void fork_parent(void)
{
	if (fork_skips) {
		fork_skips--;
	} else {
		forking = false;
		osm_unlock();
#ifdef OSMEM_DROPIN
		osm_front_fork_parent();
#endif
	}
	_IO_list_unlock();
}

static void fork_child(void)
{
	_IO_list_resetlock();
	/* the child has one thread, with a new id: a free lock, whatever the parent's other threads left in it */
	self_tid = osm_os_thread_id();
	__atomic_store_n(&heap_lock, 0, __ATOMIC_RELAXED);
#ifdef OSMEM_DROPIN
	osm_front_fork_child();
#endif
	fork_skips = 0;
	osm_trace_fork_child();
	forking = false;
}

// ------------------------------------------------------------------
// Start and end of the process
// ------------------------------------------------------------------

/* After every destructor and exit handler: a library finalised after osmem (its destructor frees) still
 * counts in the statistics and still reaches the trace. */
static void at_last_exit(void *arg)
{
	(void)arg;
	osm_trace_at_exit();
	osm_stats_at_exit();
}

static bool exit_last; /* at_last_exit will run */

__attribute__((constructor)) static void osmem_start(void)
{
	/* registers handlers and opens the statistics' file only: no allocation, and the break is not touched */
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	bool stats = osm_stats_open();
	const char *trace = osm_os_getenv("OSMEM_TRACE");
	if (stats || (trace && *trace))
		exit_last = osm_os_at_exit_last(at_last_exit, !DROPIN);
}

/* The trace is flushed here too, in case a later destructor ends the process with _exit; the statistics print
 * once: at the end, or here when the end could not be reached. */
__attribute__((destructor)) static void osmem_end(void)
{
	osm_trace_at_exit();
	if (!exit_last)
		osm_stats_at_exit();
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
	osm_heap.op = "os_malloc"; /* the name the core's reports give */
	if (TRACING)
		osm_trace_event("os_malloc %z t=%t", size);
	osm_heap.count.requested += size;
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
	osm_heap.op = "os_free"; /* the name the core's reports give */
#ifdef OSMEM_DROPIN
	if (osm_zero_owns(ptr)) { /* malloc(0)'s address (strict.c) */
		osm_zero_check(ptr, "os_free", true);
		osm_unlock();
		return;
	}
#endif
	if (TRACING)
		osm_trace_event("os_free %p t=%t", ptr);
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
	osm_heap.op = "os_calloc"; /* the name the core's reports give */
	if (TRACING)
		osm_trace_event("os_calloc %z %z t=%t", nmemb, size);
	osm_heap.count.requested += nmemb * size;
	struct block_meta *b = osm_malloc_zero(nmemb * size, osm_heap.policy.calloc_threshold);
	if (b && b->status != STATUS_MAPPED)
		memset(payload(b), 0, b->size); /* a reused block is dirty; fresh mappings are already zero */
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	osm_unlock();
	return b ? payload(b) : fail_enomem();
}

void *os_realloc(void *ptr, size_t size)
{
	if (!ptr)                                            /* 1 */
		return os_malloc(size);
#ifdef OSMEM_DROPIN
	if (osm_front_owns(ptr))
		return osm_front_os_realloc(ptr, size);
	if (osm_zero_owns(ptr)) { /* malloc(0)'s address: nothing to copy; 0 frees it; freed already: NULL (3) */
		osm_lock();
		osm_heap.op = "os_realloc";
		bool live = osm_zero_live(ptr, "os_realloc");
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
	osm_heap.op = "os_realloc"; /* the name the core's reports give */
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
	if (size > MAX_REQUEST) {
		osm_unlock();
		return fail_enomem();
	}
	osm_heap.count.requested += size;
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
