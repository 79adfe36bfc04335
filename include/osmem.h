/* osmem: a memory allocator you can read and run.
 * The classic API (docs/CLASSIC.md). Link with `pkg-config --cflags --libs osmem`. */
#ifndef OSMEM_H
#define OSMEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OSMEM_API __attribute__((visibility("default")))

/* os_malloc(0) returns NULL. Sizes too large to serve return NULL with errno = ENOMEM. */
OSMEM_API void *os_malloc(size_t size);
/* os_free(NULL) does nothing; a double or invalid free is reported with the pointer and aborts. */
OSMEM_API void os_free(void *ptr);
/* Zeroed memory; NULL with errno = ENOMEM when nmemb * size overflows. */
OSMEM_API void *os_calloc(size_t nmemb, size_t size);
/* The nine cases of docs/CLASSIC.md, in order; realloc of a block already free returns NULL and changes nothing. */
OSMEM_API void *os_realloc(void *ptr, size_t size);

/* What the allocator has done and holds, read under the lock (os_stats). Byte counts are payload bytes
 * unless named otherwise. */
struct os_stats {
	size_t bytes_requested;   /* asked for by the program, over all calls */
	size_t bytes_in_use;      /* in allocated blocks now, heap and mapped */
	/* the most bytes_in_use has been: exact in libosmem.so and in the classic profile. In the drop-in's default
	 * profile the core's own peak (where a block a thread's medium cache held counted as in use) or the most
	 * os_stats found in use, whichever is larger: the caches' fast paths keep no global count, so a peak of
	 * small slots between two calls goes unseen. It never falls from one call to the next. */
	size_t peak_in_use;
	size_t heap_size;         /* bytes between the heap start and its end (the break, when nobody else moved it) */
	size_t mapped_bytes, mapped_count;
	size_t mapped_peak_bytes, mapped_peak_count;
	size_t free_bytes, free_blocks, largest_free;
	double fragmentation;     /* 1 - largest_free / free_bytes (0 with no free bytes) */
	size_t allocations, frees;
	size_t brk_calls, mmap_calls, munmap_calls, mremap_calls, madvise_calls;
	size_t splits, coalesces, inplace_reallocs, moved_reallocs, trims;
	size_t cache_hits, cache_misses; /* the drop-in's per-thread caches (0 without them) */
	/* The drop-in's front layer (per-thread caches of small slots; all 0 without it). Its slots in use are also
	 * in bytes_in_use; allocations and frees count every request, those the caches served included;
	 * bytes_requested counts the requests that reach the core. */
	size_t front_bytes;       /* the front's segments: mapped, or carved from the heap (then in heap_size too) */
	size_t front_page_bytes;  /* in pages assigned to a size class (owned by a thread or abandoned) */
	size_t front_in_use;      /* in slots handed out */
	size_t front_free;        /* free in the front: free slots, cached pages (front_bytes - metadata - in use) */
	size_t front_threads;     /* threads with a cache */
	/* What the caches hold, freed by the program and kept for its next request that size: the medium caches
	 * (stacks of core blocks of 2 KiB to 64 KiB; allocated by the core's own figures), the thread caches of small
	 * slots (used by their pages, in neither front_in_use nor front_free), and the default profile's kept
	 * mappings (freed blocks of 32 MiB or more, given back after about a second unused or by malloc_trim; in
	 * neither mapped_* nor free_*; os_stats_print lists them apart). Free here. */
	size_t front_cached_blocks, front_cached_bytes;
	/* Bytes advised for transparent huge pages: growth of the heap and front segments (the default profile, once
	 * the program is seen to fill them: src/huge.c; 0 in the classic profile). */
	size_t huge_bytes;
	/* Medium blocks the caches gave back to the core after they sat unused for 10 ms or more (threaded
	 * processes: src/front.c, medium_scavenge). */
	size_t front_scavenged;
	/* Pages the default profile faulted in with a system call of their own before writing a block header there
	 * (madvise MADV_POPULATE_WRITE, one page a call: src/heap.c, prefault); also counted in madvise_calls. */
	size_t populate_calls;
	/* What a 4 KiB page fault cost when the default profile measured it (ns, median of 16 first touches of a
	 * mapping of its own), once, when its heap or its front first looked dense enough for huge pages; they are
	 * advised only where it is 4 us or more (src/huge.c). 0: not measured; 1: the probe could not measure. */
	size_t fault_probe_ns;
	/* Bytes the default profile gave back (madvise) because they sat free and unused, not at malloc_trim: free
	 * heap blocks of 1 MiB or more past their front, idle 10 ms with a second thread and a second in one thread
	 * (src/heap.c, the decay), free heap blocks of 8 KiB to 1 MiB past their first 8 bytes, unchanged over two of
	 * the idle sweeps (OSMEM_IDLE_MS; heap.c, "Idle holes"), and the front's pool pages idle a second (src/front.c,
	 * pool_decay). Pages the kernel would not give back (locked by mlock) are not counted. The same pages may be
	 * counted again after they were used and left idle once more. */
	size_t idle_released;
	/* Frees that found the heap's lock held by another thread and left their block for the lock's next holder to
	 * free, instead of waiting (the default profile's blocks above the medium caches' sizes; src/heap.c, "Frees
	 * that find the lock taken"). os_stats takes the lock, which frees what waits first: every count above
	 * already includes them. */
	size_t deferred_frees;
};
/* Fills *st. The struct only ever grows at its end: os_stats_get copies the first size bytes of what this library
 * knows (and never writes past them), so a program built against an older osmem.h keeps working on a newer
 * library; fields a newer header adds and an older library lacks are left untouched. os_stats(st) is
 * os_stats_get(st, sizeof *st); the unsized os_stats symbol stays for programs built before os_stats_get, and
 * fills the whole struct of this version (as mimalloc's mi_stats_get takes its caller's size). */
OSMEM_API void os_stats_get(struct os_stats *st, size_t size);
OSMEM_API void os_stats(struct os_stats *st);
#define os_stats(st) os_stats_get((st), sizeof *(st))
/* Writes the statistics as text to fd (write(2), no stdio). */
OSMEM_API void os_stats_print(int fd);

/* Writes every block in address order (offset, size, status, heap or mapped) to fd: as text lines, or as one
 * JSON object. Returns 0, or -1 when the format is unknown or there is no memory for the snapshot (the text is
 * formatted under the lock and written after it). */
#define OS_DUMP_TEXT 0
#define OS_DUMP_JSON 1
OSMEM_API int os_heap_dump(int fd, int format);

/* Walks the heap, the free index and the mappings and verifies every invariant.
 * Returns 0 when all hold; otherwise writes what broke to standard error and returns -1. */
OSMEM_API int os_heap_check(void);

#ifdef __cplusplus
}
#endif

#endif
