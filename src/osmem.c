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
// The lock, and fork
// ------------------------------------------------------------------

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;
/* Set from just before this thread takes the lock until just after it lets go: a fork from a signal handler
 * that interrupted this thread anywhere in that span must not wait for the lock. */
static __thread bool in_allocator __attribute__((tls_model("initial-exec")));
/* Forks whose prepare handler found this thread in the allocator and left the lock alone; nested forks
 * (a signal handler forking while this thread is inside fork) unwind in order. */
static __thread unsigned fork_skips __attribute__((tls_model("initial-exec")));

void osm_lock(void)
{
	in_allocator = true;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pthread_mutex_lock(&heap_lock);
	osm_init(DROPIN);
}

void osm_unlock(void)
{
	pthread_mutex_unlock(&heap_lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	in_allocator = false;
}

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

/* fork() copies the heap as it is: take the lock first so no other thread is half-way through a change.
 * A fork from a signal handler that interrupted this very thread inside the allocator cannot wait for
 * itself: then the lock is left alone (as glibc does for a single thread). */
static void fork_prepare(void)
{
	_IO_list_lock();
#ifdef OSMEM_DROPIN
	osm_front_fork_prepare(); /* front lock before heap lock */
#endif
	if (in_allocator)
		fork_skips++;
	else
		osm_lock();
	osm_trace_flush();
}

static void fork_parent(void)
{
	if (fork_skips)
		fork_skips--;
	else
		osm_unlock();
#ifdef OSMEM_DROPIN
	osm_front_fork_parent();
#endif
	_IO_list_unlock();
}

static void fork_child(void)
{
	_IO_list_resetlock();
	/* the child has one thread: a fresh lock, whatever state the parent's other threads left it in */
	pthread_mutex_init(&heap_lock, NULL);
#ifdef OSMEM_DROPIN
	osm_front_fork_child();
#endif
	in_allocator = false;
	fork_skips = 0;
	osm_trace_fork_child();
}

__attribute__((constructor)) static void osmem_register_fork(void)
{
	/* registers handlers only: no allocation, and the break is not touched */
	pthread_atfork(fork_prepare, fork_parent, fork_child);
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
	if (TRACING)
		osm_trace_event("os_free %p t=%t", ptr);
	osm_free(osm_user_block(ptr, "os_free", false));
	osm_unlock();
}

void *os_calloc(size_t nmemb, size_t size)
{
	if (!nmemb || !size)
		return NULL;
	if (nmemb > MAX_REQUEST / size)
		return fail_enomem();
	osm_lock();
	if (TRACING)
		osm_trace_event("os_calloc %z %z t=%t", nmemb, size);
	osm_heap.count.requested += nmemb * size;
	struct block_meta *b = osm_malloc(nmemb * size, osm_heap.policy.calloc_threshold);
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
#endif
	osm_lock();
	if (TRACING)
		osm_trace_event("os_realloc %p %z t=%t", ptr, size);
	struct block_meta *b = osm_user_block(ptr, "os_realloc", true);
	if (b->status == STATUS_FREE) {                      /* 3, also when size is 0: nothing to free */
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
