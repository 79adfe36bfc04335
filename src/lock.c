/* lock: the core's lock, which every layer above takes around the core (the API for a request, the front for a
 * batch, strict mode, mallopt), and its part in fork.
 *
 * Core layer: it calls only the core (osm_init; osm_deferred_drain, the frees that waited for the lock), the
 * recorder (the trace's deferred writes) and the OS seam (the lock word, the thread id). The fork handlers
 * themselves are the API's (osmem.c): they order stdio's lock, the front's and this one.
 *
 * The lock is one word (internal.h, osm_os_lock_take): 0 when free, else the owner's thread id, plus
 * OSM_LOCK_WAITERS when another thread may sleep on it. Taking it is one compare-and-swap 0 -> tid (a plain store
 * while the process has one thread), so "this thread holds the lock" is exact at every instruction, also for a
 * signal handler that interrupted this thread (fork must know: it cannot wait for a lock its own thread holds, and
 * it must wait for one its thread merely waits for). Costs: uncontended, a CAS and an exchange; contended, a short
 * spin, then futex system calls (os.c, osm_os_lock_slow). Never a cancellation point. */
#include "internal.h"

#ifdef OSMEM_DROPIN
#define DROPIN true
#else
#define DROPIN false
#endif

static struct osm_lock_line heap_lock_line;
#define heap_lock (heap_lock_line.word)
/* This thread's kernel id, read once per thread (again in a forked child), once the process has threads. */
static __thread int self_tid __attribute__((tls_model("initial-exec")));
/* The mark of the only thread of a process that has one: any holder of the lock is then this thread, so it needs no
 * kernel id and the classic library makes no system call but the textbook's (brk, mmap, munmap). It made one gettid
 * per process, which a teaching checker's `strace` or `ltrace -S` lists (session 57's review of the classic rules).
 * Above every thread id (below 2^22) and below OSM_LOCK_WAITERS. A thread that holds the lock when a second thread
 * is created would hold it under this mark and then look for it under its kernel id; osmem creates no thread, and
 * no program can while a request of its own thread is inside osmem (pthread_create is not async-signal-safe). */
#define SOLO_MARK 0x3fffffff
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
	if (__builtin_expect(self_tid != 0, 1))
		return self_tid;
	if (osm_os_single_threaded())
		return SOLO_MARK;
	self_tid = osm_os_thread_id();
	return self_tid;
}

int osm_lock_self_id(void)
{
	return my_tid();
}

bool osm_lock_held_by_self(void)
{
	return (__atomic_load_n(&heap_lock, __ATOMIC_RELAXED) & ~OSM_LOCK_WAITERS) == my_tid();
}

/* The lock just taken: its holder first frees the blocks that other threads' frees left waiting while it was
 * taken (heap.c, osm_deferred_drain): one load of a line those frees write, when none wait. */
static void taken(void)
{
	osm_init(DROPIN);
	if (osm_deferred_waiting())
		osm_deferred_drain();
}

void osm_lock(void)
{
	if (!forking)
		osm_os_lock_take(&heap_lock, my_tid());
	taken();
}

bool osm_lock_try(void)
{
	if (!forking && !osm_os_lock_try(&heap_lock, my_tid()))
		return false;
	taken();
	return true;
}

void osm_unlock(void)
{
	if (forking)
		return;
	osm_os_lock_give(&heap_lock);
	/* the recorder's file writes wait until here: a slow disk stalls this thread only */
	if (TRACING)
		osm_trace_after_unlock();
}

// ------------------------------------------------------------------
// fork (the handlers: osmem.c)
// ------------------------------------------------------------------

bool osm_lock_fork_skip(void)
{
	if (!osm_lock_held_by_self())
		return false;
	fork_skips++;
	return true;
}

void osm_lock_fork_take(void)
{
	osm_os_lock_take(&heap_lock, my_tid());
	osm_init(DROPIN);
	forking = true;
}

bool osm_lock_fork_parent(void)
{
	if (fork_skips) {
		fork_skips--;
		return false;
	}
	forking = false;
	osm_unlock();
	return true;
}

void osm_lock_fork_child(void)
{
	self_tid = 0; /* the child's id, read when it is needed (none while the child has one thread) */
	__atomic_store_n(&heap_lock, 0, __ATOMIC_RELAXED);
}

void osm_lock_fork_child_done(void)
{
	fork_skips = 0;
	osm_trace_fork_child();
	forking = false;
}
