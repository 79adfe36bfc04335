/* override: the malloc family, exported by libosmem-malloc.so only (libosmem.so must not replace malloc).
 *
 * glibc's contract as a program sees it: 16-byte alignment, malloc(0) is a unique pointer, free keeps errno,
 * overflow is ENOMEM, bad alignments are EINVAL, realloc(p, 0) frees, a success leaves errno as it was.
 * Small requests are served by the front layer (front.c) in the default profile; everything else runs on the one
 * heap that the os_* functions use, under its lock. Nothing is copied or zeroed under the lock. A bad pointer is
 * reported with the pointer and the name of the function it was given to, and aborts. */
#define _GNU_SOURCE
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

/* The core's malloc: requests the front does not serve (large, front off, thread exiting). Out of line, so that
 * the front's fast path in malloc() saves no registers. */
__attribute__((noinline)) static void *core_malloc(size_t n)
{
	if (n > MAX_REQUEST)
		return fail(ENOMEM);
	int saved = errno; /* a success leaves errno as it was, whatever failed on the way */
	osm_front_check_heads();
	osm_lock();
	osm_heap.op = "malloc";
	if (TRACING)
		osm_trace_event("malloc %z t=%t", n);
	osm_heap.count.requested += n;
	struct block_meta *b = osm_malloc(n ? n : 1, osm_heap.policy.mmap_threshold);
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	osm_unlock();
	return b ? (errno = saved, payload(b)) : fail(ENOMEM);
}

EXPORT void *malloc(size_t n)
{
	if (__builtin_expect(osm_strict, 0) && osm_strict_on()) /* OSMEM_CHECK=strict (strict.c); one branch otherwise */
		return osm_strict_alloc(n, 0, false, "malloc");
	if (n <= FRONT_MAX) { /* the front layer's fast path (front.c); NULL: off or out of memory, ask the core */
		void *p = osm_front_malloc(n);
		if (__builtin_expect(p != NULL, 1))
			return p;
	}
	return core_malloc(n);
}

__attribute__((noinline)) static void core_free(void *p)
{
	int saved = errno;
	osm_lock();
	osm_heap.op = "free";
	if (TRACING)
		osm_trace_event("free %p t=%t", p);
	osm_free(osm_user_block(p, "free", false));
	osm_unlock();
	errno = saved;
}

EXPORT void free(void *p)
{
	if (__builtin_expect(osm_strict, 0) && osm_strict_on()) {
		osm_strict_free(p, "free");
		return;
	}
	if (!p)
		return;
	if (osm_front_owns(p)) { /* a slot of a front page; keeps errno */
		osm_front_free(p, "free");
		return;
	}
	core_free(p);
}

EXPORT void *calloc(size_t nmemb, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(nmemb, size, &n) || n > MAX_REQUEST)
		return fail(ENOMEM);
	if (__builtin_expect(osm_strict, 0) && osm_strict_on())
		return osm_strict_alloc(n, 0, true, "calloc");
	if (n <= FRONT_MAX) {
		void *p = osm_front_malloc(n);
		if (p)
			return memset(p, 0, n);
	}
	int saved = errno;
	osm_lock();
	osm_heap.op = "calloc";
	if (TRACING)
		osm_trace_event("calloc %z %z t=%t", nmemb, size);
	osm_heap.count.requested += n;
	struct block_meta *b = osm_malloc(n ? n : 1, osm_heap.policy.calloc_threshold);
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	osm_unlock();
	if (!b)
		return fail(ENOMEM);
	/* zeroed with the lock let go: the block is this thread's alone. Reused blocks are dirty; fresh mappings are
	 * zero. */
	if (b->status != STATUS_MAPPED)
		memset(payload(b), 0, b->size);
	errno = saved;
	return payload(b);
}

EXPORT void *realloc(void *p, size_t n)
{
	if (__builtin_expect(osm_strict, 0) && osm_strict_on())
		return osm_strict_realloc(p, n);
	if (!p)
		return malloc(n);
	if (n > MAX_REQUEST)
		return fail(ENOMEM);
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
	osm_lock();
	osm_heap.op = "realloc";
	if (!n) { /* glibc frees and returns NULL; a bad pointer is realloc's to report */
		if (TRACING)
			osm_trace_event("free %p t=%t", p);
		struct block_meta *b = osm_user_block(p, "realloc", true);
		if (b->status == STATUS_FREE)
			osm_fatal_pointer("realloc", "double free", p);
		osm_free(b);
		osm_unlock();
		errno = saved;
		return NULL;
	}
	if (TRACING)
		osm_trace_event("realloc %p %z t=%t", p, n);
	struct block_meta *b = osm_user_block(p, "realloc", false);
	osm_heap.count.requested += n;
	/* A move copies with the lock let go (the core leaves the old block allocated and names it); a traced realloc
	 * copies under the lock, so its lines stay together. */
	osm_heap.defer_move = !TRACING;
	osm_heap.move_old = NULL;
	struct block_meta *nb = osm_realloc(b, n);
	struct block_meta *old = osm_heap.move_old;
	size_t len = osm_heap.move_len;
	osm_heap.defer_move = false;
	osm_heap.move_old = NULL;
	if (TRACING)
		osm_trace_event("= %p", nb ? payload(nb) : NULL);
	osm_unlock();
	if (!nb)
		return fail(ENOMEM);
	if (old) {
		memcpy(payload(nb), payload(old), len);
		osm_lock();
		osm_heap.op = "realloc";
		osm_realloc_finish(old);
		osm_unlock();
	}
	errno = saved;
	return payload(nb);
}

EXPORT void *reallocarray(void *p, size_t nmemb, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(nmemb, size, &n))
		return fail(ENOMEM);
	return realloc(p, n);
}

// ------------------------------------------------------------------
// The aligned family
// ------------------------------------------------------------------

static void *aligned(size_t alignment, size_t n)
{
	if (__builtin_expect(osm_strict, 0) && osm_strict_on())
		return osm_strict_alloc(n, alignment, false, "memalign");
	if (n > MAX_REQUEST || alignment > MAX_REQUEST - n)
		return fail(ENOMEM);
	if (alignment <= FRONT_MAX && n <= FRONT_MAX) { /* power-of-two slots are aligned to their size */
		void *p = osm_front_memalign(alignment, n);
		if (p)
			return p;
	}
	int saved = errno;
	osm_lock();
	osm_heap.op = "memalign";
	if (TRACING)
		osm_trace_event("memalign %z %z t=%t", alignment, n);
	osm_heap.count.requested += n;
	struct block_meta *b = osm_memalign(alignment, n ? n : 1);
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	osm_unlock();
	return b ? (errno = saved, payload(b)) : fail(ENOMEM);
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
EXPORT size_t malloc_usable_size(void *p)
{
	if (__builtin_expect(osm_strict, 0) && osm_strict_on())
		return osm_strict_usable(p, "malloc_usable_size");
	if (!p)
		return 0;
	if (osm_front_owns(p))
		return osm_front_usable(p, "malloc_usable_size");
	osm_lock();
	size_t n = osm_user_block(p, "malloc_usable_size", false)->size;
	osm_unlock();
	return n;
}

EXPORT int malloc_trim(size_t pad)
{
	if (__builtin_expect(osm_strict, 0) && osm_strict_on()) /* the quarantine empties first (each block verified), then the trim as usual */
		osm_strict_flush("malloc_trim");
	bool front = osm_front_trim(); /* front lock before heap lock, never nested the other way */
	osm_lock();
	if (TRACING)
		osm_trace_event("malloc_trim %z t=%t", pad);
	bool released = osm_trim(pad);
	osm_unlock();
	return released || front;
}

EXPORT struct mallinfo2 mallinfo2(void)
{
	struct os_stats st;
	struct mallinfo2 mi;
	os_stats(&st);
	memset(&mi, 0, sizeof mi);
	mi.arena = st.heap_size + st.front_bytes; /* the front's segments count as arena, like glibc's heaps */
	mi.ordblks = st.free_blocks;
	mi.hblks = st.mapped_count;
	mi.hblkhd = st.mapped_bytes;
	mi.usmblks = st.peak_in_use;
	mi.uordblks = st.bytes_in_use - st.mapped_bytes;
	mi.fordblks = st.free_bytes + st.front_free;
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
	os_stats(&st);
	size_t heap_in_use = st.bytes_in_use - st.mapped_bytes; /* includes the front's slots in use */
	st.heap_size += st.front_bytes;
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
