/* Internal types and small helpers shared by osmem's files (hidden from the library's users).
 *
 * Layers, one way down: API (osmem.c) -> core (heap.c, index.c, check.c) -> os (os.c).
 * The core owns the heap of blocks; only os.c talks to the kernel. */
#ifndef OSMEM_INTERNAL_H
#define OSMEM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "block_meta.h"

#define HIDDEN __attribute__((visibility("hidden")))

// ------------------------------------------------------------------
// Policy constants (SPEC.md Part 1)
// ------------------------------------------------------------------

#define MMAP_THRESHOLD  ((size_t)128 * 1024) /* ALIGN(n) + META >= this: own mapping (malloc, realloc) */
#define PREALLOC_SIZE   ((size_t)128 * 1024) /* the first sbrk of the heap */
#define MAX_REQUEST     ((size_t)PTRDIFF_MAX - (size_t)(1 << 20)) /* larger: ENOMEM, never a wrapped size */
#define MAX_HEAP_SPAN   ((size_t)1 << 35)    /* 32-bit index links in 8-byte units reach 32 GiB */

// ------------------------------------------------------------------
// os layer (os.c): the only code that calls the kernel
// ------------------------------------------------------------------

/* Current program break, without moving it. */
HIDDEN void *osm_os_brk_current(void);
/* Moves the break up by len; returns the old break, or NULL (errno ENOMEM) when it cannot. */
HIDDEN void *osm_os_brk_grow(size_t len);
/* A private anonymous read/write mapping of exactly len bytes, or NULL. */
HIDDEN void *osm_os_map(size_t len);
HIDDEN void osm_os_unmap(void *addr, size_t len);
HIDDEN size_t osm_os_page_size(void);
/* Whether [addr, addr + len) (at most two pages) is mapped, so that reading it cannot fault. */
HIDDEN bool osm_os_is_mapped(const void *addr, size_t len);
/* Gives len bytes at the top of the heap back: the break moves down. Returns false when it cannot. */
HIDDEN bool osm_os_brk_shrink(size_t len);
/* Moves a mapping to a new length (the kernel may move it); NULL when it cannot. */
HIDDEN void *osm_os_remap(void *addr, size_t old_len, size_t new_len);
/* Tells the kernel the pages of [addr, addr + len) hold nothing worth keeping (page-aligned range). */
HIDDEN void osm_os_discard(void *addr, size_t len);
/* The value of environment variable `name` (read without allocating, also before libc has set environ). */
HIDDEN const char *osm_os_getenv(const char *name);
/* System calls made so far, counted where they are made. */
struct os_calls { size_t brk, mmap, munmap, mremap, madvise; };
HIDDEN extern struct os_calls osm_os_calls;
/* A per-process random value (from the kernel's AT_RANDOM bytes: no system call). */
HIDDEN uint32_t osm_os_random32(void);
/* Writes "osmem: <api>(): <what> 0x<ptr>\n" to standard error and aborts. */
HIDDEN _Noreturn void osm_os_fatal_pointer(const char *api, const char *what, const void *ptr);
/* Writes v in base 10 or 16 (lowercase) into out, NUL-terminated; returns the number of digits. out must hold
 * 24 bytes. Every number osmem prints goes through here: nothing in the library uses printf. */
HIDDEN size_t osm_os_utoa(char *out, uintmax_t v, unsigned base);
/* Writes a message to standard error with write(2). */
HIDDEN void osm_os_write_err(const char *msg);
/* Writes all of buf to fd (write(2), retried on short writes; never a cancellation point). */
HIDDEN void osm_os_write_fd(int fd, const char *buf, size_t len);
/* One of osmem's own files: a descriptor at a high number, close-on-exec, and what it was opened on. */
struct os_file { int fd; uint64_t dev, ino; };
/* Opens (truncates) a trace file: `path`, `path.PID`, or `path` if no other process holds it (an flock that
 * lasts while the owner runs), else `path.PID`. */
enum os_trace_name { TRACE_PATH, TRACE_PATH_PID, TRACE_PATH_IF_FREE };
HIDDEN bool osm_os_open_trace(struct os_file *f, const char *path, enum os_trace_name how);
/* The statistics' file: a private copy of standard error for "1", else the file `spec` (appended). */
HIDDEN bool osm_os_open_stats(struct os_file *f, const char *spec);
/* Writes all of buf to f, unless f's descriptor no longer refers to the file osmem opened (the program closed
 * the number and reused it): then f is dropped (fd -1) and nothing is written. */
HIDDEN bool osm_os_file_write(struct os_file *f, const char *buf, size_t len);
/* Closes f's descriptor if it is still the file osmem opened. */
HIDDEN void osm_os_file_close(struct os_file *f);
HIDDEN long osm_os_pid(void);
/* Memory for osmem's own buffers (not the heap's, not counted in osm_os_calls): NULL when there is none. */
HIDDEN void *osm_os_map_buffer(size_t len);
HIDDEN void osm_os_unmap_buffer(void *addr, size_t len);
/* The calling thread's kernel id (gettid): never 0, below 2^22. */
HIDDEN int osm_os_thread_id(void);
/* Sleeps while *word == expected (or until woken; may return early). Private futexes: one process. */
HIDDEN void osm_os_futex_wait(int *word, int expected);
HIDDEN void osm_os_futex_wake(int *word, int count);
/* Runs fn at the very end of exit(), after every destructor and atexit handler that was registered later;
 * call from a constructor. pin: keep this library loaded to the end (it might be dlclose'd). */
HIDDEN bool osm_os_at_exit_last(void (*fn)(void *), bool pin);

// ------------------------------------------------------------------
// Block helpers
// ------------------------------------------------------------------

/* The header's 4 padding bytes after `status` carry a tag: a cookie derived from the block's address for
 * allocated and mapped blocks (so a free of a foreign pointer is caught before anything changes), and the
 * free block's place (index tree or pending list) for free blocks. The ABI fields are untouched. */
#define AUX_OFFSET (offsetof(struct block_meta, status) + sizeof(int))
#define TAG_TREE    0x54524545u /* "TREE": free, coalesced, in the best-fit index */
#define TAG_PENDING 0x50454e44u /* "PEND": free, not yet coalesced */

static inline uint32_t ld32(const void *p) { uint32_t v; memcpy(&v, p, sizeof v); return v; }
static inline void st32(void *p, uint32_t v) { memcpy(p, &v, sizeof v); }

static inline uint32_t block_tag(const struct block_meta *b) { return ld32((const char *)b + AUX_OFFSET); }
static inline void set_block_tag(struct block_meta *b, uint32_t t) { st32((char *)b + AUX_OFFSET, t); }

static inline void *payload(struct block_meta *b) { return (char *)b + META_SIZE; }
static inline struct block_meta *block_of(const void *p) { return (struct block_meta *)((char *)p - META_SIZE); }
static inline char *block_end(const struct block_meta *b) { return (char *)b + META_SIZE + b->size; }
/* Blocks of one list can sit in different break segments (someone else moved the break between them):
 * only blocks that touch are neighbours. */
static inline bool adjacent(const struct block_meta *a, const struct block_meta *b)
{
	return b && block_end(a) == (const char *)b;
}
static inline bool is_free_neighbour(const struct block_meta *a, const struct block_meta *b)
{
	return adjacent(a, b) && b->status == STATUS_FREE;
}

// ------------------------------------------------------------------
// The heap (core)
// ------------------------------------------------------------------

enum bestfit_mode { BESTFIT_INDEX, BESTFIT_WALK, BESTFIT_VERIFY };

/* What the heap does beyond SPEC.md Part 1. The classic API, and the drop-in with OSMEM_PROFILE=classic, set
 * none of it; the drop-in's default profile sets all of it. */
struct heap_policy {
	size_t align;            /* payload granule: 8 for the classic API, 16 for malloc */
	size_t mmap_threshold;   /* ALIGN(n) + META >= this: own mapping */
	size_t calloc_threshold; /* the same for calloc: the page size in SPEC.md */
	bool eager_coalesce;     /* merge at free (no pending list), so the top can be trimmed at once */
	bool use_mremap;         /* mapped -> mapped realloc moves pages, not bytes */
	size_t grow_min;         /* 0: grow the break by exactly what is needed; else by at least this */
	size_t trim_threshold;   /* 0: the break never shrinks; else trim a free top larger than this */
	size_t trim_keep;        /* what a trim leaves at the top */
};

/* Counters behind os_stats, mallinfo2 and malloc_stats; updated under the lock. */
struct heap_counters {
	size_t requested;        /* bytes asked for, over all allocations */
	size_t allocations, frees;
	size_t heap_in_use;      /* payload bytes of allocated heap blocks */
	size_t heap_blocks;      /* blocks on the heap, free or not */
	size_t mapped_bytes, mapped_count;
	size_t mapped_peak_bytes, mapped_peak_count;
	size_t peak_in_use;
	size_t splits, coalesces, inplace_reallocs, moved_reallocs, trims;
};

struct heap {
	struct block_meta *head, *tail; /* heap blocks in address order */
	char *base;                     /* start of the first segment: index links are offsets from here */
	char *end;                      /* end of the last block: where the break is when nobody else moved it */
	uint32_t root;                  /* size-ordered index of coalesced free blocks (splay tree) */
	uint32_t pending;               /* free blocks not yet coalesced, doubly linked */
	struct block_meta *mapped;      /* mapped blocks, linked through prev/next */
	struct heap_policy policy;
	struct heap_counters count;
	uint32_t secret;
	bool classic;                   /* SPEC.md Part 1 to the letter */
	enum bestfit_mode bestfit;
};

HIDDEN extern struct heap osm_heap;

static inline size_t align_up(size_t n) { return (n + osm_heap.policy.align - 1) & ~(osm_heap.policy.align - 1); }

static inline uint32_t block_cookie(const struct block_meta *b)
{
	return ((uint32_t)((uintptr_t)b >> 3) * 0x9E3779B1u) ^ osm_heap.secret;
}

/* Index links are 32-bit offsets from the heap base in 8-byte units, plus one (0 is "none"). */
static inline uint32_t block_ref(const struct block_meta *b)
{
	return (uint32_t)(((const char *)b - osm_heap.base) >> 3) + 1;
}
static inline struct block_meta *ref_block(uint32_t r)
{
	return (struct block_meta *)(osm_heap.base + ((size_t)(r - 1) << 3));
}

/* heap.c: the classic algorithm */
/* Sets the policy once, before the first allocation: dropin selects malloc's profile (OSMEM_PROFILE). */
HIDDEN void osm_init(bool dropin);
/* A block whose payload is aligned to `alignment` (a power of two above the granule). */
HIDDEN struct block_meta *osm_memalign(size_t alignment, size_t n);
/* Gives free memory back: the top of the heap beyond pad, and the pages inside large free blocks.
 * Returns true when anything went back. */
HIDDEN bool osm_trim(size_t pad);
/* The largest free block on the heap, and the number and bytes of free blocks. */
HIDDEN void osm_free_summary(size_t *largest, size_t *count, size_t *bytes);
HIDDEN struct block_meta *osm_malloc(size_t n, size_t threshold);
HIDDEN void osm_free(struct block_meta *b);
HIDDEN struct block_meta *osm_realloc(struct block_meta *b, size_t n);
/* The header of a pointer handed to free/realloc, checked in O(1) before anything changes; aborts with a report
 * on a pointer osmem never returned, and on a double free unless allow_free (realloc's rule 3). */
HIDDEN struct block_meta *osm_user_block(void *ptr, const char *api, bool allow_free);
HIDDEN bool osm_in_heap(const void *p);

/* The seed's helpers keep their names and roles in the source; their linker symbols carry the osm_ prefix
 * (OSM_SYM), so a program that links libosmem.a and defines its own find_best_block does not clash. */
#define OSM_SYM(name) __asm__("osm_" #name)
HIDDEN struct block_meta *find_best_block(size_t size) OSM_SYM(find_best_block); /* reference: walks the list */
HIDDEN void split_blocks(struct block_meta *b, size_t size, bool to_index) OSM_SYM(split_blocks);
HIDDEN void coalesce_blocks(void) OSM_SYM(coalesce_blocks);
HIDDEN struct block_meta *find_last_block(void) OSM_SYM(find_last_block);
HIDDEN int heap_preallocation(void) OSM_SYM(heap_preallocation);

/* index.c: the free-block index (exact best fit, lowest address among equal sizes) */
HIDDEN void osm_index_insert(struct block_meta *b);
HIDDEN void osm_index_remove(struct block_meta *b);
HIDDEN struct block_meta *osm_index_best_fit(size_t size);
/* In-order visit without recursion (the tree may be deep); returns the number of nodes or stops at a callback
 * that returns false. */
HIDDEN size_t osm_index_walk(bool (*visit)(struct block_meta *b, void *arg), void *arg);

/* trace.c: the decision recorder (OSMEM_TRACE); see docs/TRACE.md. Events are recorded under the heap lock
 * into memory only; the file is written after the lock is released. */
HIDDEN extern int osm_trace_on;
#ifdef OSMEM_NO_TRACE
#define TRACING 0
#else
#define TRACING __builtin_expect(osm_trace_on, 0)
#endif
HIDDEN void osm_trace_start(const char *path, const char *const *base, const char *const *end, const char *header);
HIDDEN void osm_trace_event(const char *fmt, ...);
/* Writes what filled up while the heap lock was held; called with no lock held, right after releasing it. */
HIDDEN void osm_trace_after_unlock(void);
/* Seals and writes everything recorded so far (takes the heap lock, then the recorder's). */
HIDDEN void osm_trace_at_exit(void);
HIDDEN void osm_trace_fork_child(void);
/* The report of a bad pointer, from the layers above os: writes the trace first (the events before a crash are
 * the useful ones), then osm_os_fatal_pointer. Called under the heap lock. */
HIDDEN _Noreturn void osm_fatal_pointer(const char *api, const char *what, const void *ptr);

/* Test and benchmark hooks (reachable by linking libosmem.a). */
HIDDEN void osm_set_bestfit_mode(enum bestfit_mode mode);

/* lock (osmem.c) */
HIDDEN void osm_lock(void);
HIDDEN void osm_unlock(void);
/* Whether the calling thread holds the heap lock (exact, also from a signal handler); a test hook too. */
HIDDEN bool osm_lock_held_by_self(void);

/* stats.c: OSMEM_STATS, opened at start (returns whether it is on) and printed at the very end */
HIDDEN bool osm_stats_open(void);
HIDDEN void osm_stats_at_exit(void);

#endif
