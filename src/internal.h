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
/* Big zero-initialised tables (the segment map, the first slot chunk, the mapping set, strict mode's and the
 * trace's buffers: 30 MiB of address space, a few pages of it ever written) go to .lbss, which the linker
 * places after .bss: the small globals then share a few pages instead of sitting in the pages between the big
 * tables, each on a partly used page of its own: pairs has 6 pages of the library's data and .bss resident
 * instead of 9 (12 KiB; 36 KiB with the empty heap's change, struct front_stacks; smaps at exit). A table of
 * 4 KiB or more that is written only in some programs belongs here (tests/malloc_front_footprint.c). */
#define LARGE_BSS __attribute__((section(".lbss")))

/* A function that runs once per thread or per process and that programs do run, so that it lies in the hot text
 * (src/hot.list, the 64 KiB window a program maps): compiled for size, which keeps the window's room for the
 * paths that run at every call (session 54: heap_init_errno, heaps_reap and the fault probe, 3.3 KiB at -O2 with
 * what they inlined, 2.1 KiB so, which now calls global_init, front_enter and front_leave, listed too: the hot
 * text 63.9 -> 63.2 KiB; session 69: the per-process set-up, osm_init, heap_preallocation, the environment's readers
 * and osmem_start, 0.3 KiB less, the room osm_index_rekey's split path took; session 70: a thread's heap_alloc and
 * heap_give_back, 0.3 KiB, the room the one-thread medium bins' depth took). */
#ifdef __clang__ /* which has no such attribute (the fuzzing build): nothing, there is no hot list to fit */
#define ONCE_PATH
#else
#define ONCE_PATH __attribute__((optimize("Os")))
#endif

/* v rounded up or down to a multiple of a (a power of two). */
static inline uintptr_t round_up(uintptr_t v, size_t a) { return (v + a - 1) & ~(uintptr_t)(a - 1); }
static inline uintptr_t round_down(uintptr_t v, size_t a) { return v & ~(uintptr_t)(a - 1); }

// ------------------------------------------------------------------
// Policy constants (docs/CLASSIC.md)
// ------------------------------------------------------------------

#define MMAP_THRESHOLD  ((size_t)128 * 1024) /* ALIGN(n) + META >= this: own mapping (malloc, realloc) */
#define MMAP_THRESHOLD_MAX ((size_t)32 << 20) /* the default profile's dynamic threshold rises no higher */
#define PAGE_ROUND_MIN ((size_t)256 << 10) /* default profile: heap blocks from here up fill whole pages (heap.c) */
#define PREALLOC_SIZE   ((size_t)128 * 1024) /* the first sbrk of the heap */
#define MAX_REQUEST     ((size_t)PTRDIFF_MAX - (size_t)(1 << 20)) /* larger: ENOMEM, never a wrapped size */

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
/* Memory again at addr, a PROT_NONE range of our own (a released front segment's pages): mprotect to read/write
 * (not counted: os_stats has no field for it), false (errno ENOMEM) when refused, the range left as it was. And
 * back to reserved address space (PROT_NONE, fresh zero pages when made accessible again): the memory goes, the
 * range stays ours, so nothing else is mapped there; an mmap call, counted so. */
HIDDEN bool osm_os_commit(void *addr, size_t len);
HIDDEN void osm_os_decommit(void *addr, size_t len);
/* A private anonymous read/write mapping of exactly [addr, addr + len) if nothing is mapped there
 * (MAP_FIXED_NOREPLACE): 1; 0 when something is; -1 (errno ENOMEM) when the kernel refuses memory. Counted as an
 * mmap call. */
HIDDEN int osm_os_map_at(void *addr, size_t len);
/* 64 random bits from the kernel (getrandom, nonblocking), for the default profile only (the classic profile's
 * system calls are exact to docs/CLASSIC.md); where it fails, a mix of the clock and addresses. Not the AT_RANDOM bytes
 * (osm_os_random32): glibc keeps its stack and pointer guards there. */
HIDDEN uint64_t osm_os_random_fresh(void);
HIDDEN size_t osm_os_page_size(void);
/* Gives len bytes at the top of the heap back: the break moves down. Returns false when it cannot. */
HIDDEN bool osm_os_brk_shrink(size_t len);
/* Moves a mapping to a new length (the kernel may move it); NULL when it cannot. */
HIDDEN void *osm_os_remap(void *addr, size_t old_len, size_t new_len);
/* Tells the kernel the pages of [addr, addr + len) hold nothing worth keeping (page-aligned range). */
HIDDEN bool osm_os_discard(void *addr, size_t len);
/* Faults in the pages of [addr, addr + len) for writing, in one system call (madvise MADV_POPULATE_WRITE, Linux
 * 5.14), as a hint: a kernel that does not know the advice is never asked again, and a refusal changes nothing
 * (the write faults as usual). Page-aligned range; keeps errno; counted in madvise calls, and apart in populate
 * calls. */
HIDDEN void osm_os_populate(void *addr, size_t len);
/* The same, not counted: for a caller without the lock (calloc's fresh mappings, populated after it), whose count
 * was taken under the lock when the populate was decided (heap.c, calloc_populate). */
HIDDEN void osm_os_populate_uncounted(void *addr, size_t len);
/* What a first-touch page fault costs here: maps 16 pages of its own (counted in os_calls), writes a byte in
 * each, timing each write, unmaps them; the median in ns, 0 when nothing could be measured. OSMEM_FAULT_NS, when
 * set to a positive number, is returned instead, with no mapping (tests). Keeps errno. */
HIDDEN uint64_t osm_os_fault_ns_env(void);
HIDDEN uint64_t osm_os_fault_probe_ns(void);
/* Transparent huge pages (huge.c): the kernel's mode (/sys/kernel/mm/transparent_hugepage/enabled, read once by
 * the caller), a madvise(MADV_HUGEPAGE) of a page-aligned range (counted in madvise calls), and how many of the
 * pages of [addr, addr + len) are resident (mincore, one call per 16 MiB; not counted). */
enum os_thp { OS_THP_NEVER, OS_THP_MADVISE, OS_THP_ALWAYS, OS_THP_UNKNOWN /* no descriptor or memory for now */ };
HIDDEN enum os_thp osm_os_thp_mode(void);
HIDDEN void osm_os_advise_huge(void *addr, size_t len);
HIDDEN size_t osm_os_resident(const void *addr, size_t len);
/* The value of environment variable `name` (read without allocating, also before libc has set environ). */
HIDDEN const char *osm_os_getenv(const char *name);
/* A setting's number: digits only, at least one, below 2^64 (os.c's one parser). False for anything else. */
HIDDEN bool osm_os_parse_count(const char *s, size_t *out);
/* System calls made so far, counted where they are made. */
struct os_calls { size_t brk, mmap, munmap, mremap, madvise, populate; };
HIDDEN extern struct os_calls osm_os_calls;
/* Fault injection (tests): the nth call of `kind` from now fails as the kernel fails it (NULL and ENOMEM; a
 * brk that would shrink the heap returns false), and is counted in osm_os_calls like a real one; with sticky,
 * every later call of that kind fails too. n = 0 turns it off. OSMEM_FAIL=mmap:N,brk:M+,mremap:K sets the
 * same from the environment, read at the heap's first system call (a call of this hook first wins). */
enum os_fault { OS_FAULT_BRK, OS_FAULT_MMAP, OS_FAULT_MREMAP, OS_FAULT_MEMBARRIER, OS_FAULT_KINDS };
HIDDEN void osm_os_fail_after(enum os_fault kind, size_t n, bool sticky);
/* Calls failed on purpose so far. */
HIDDEN size_t osm_os_faults_injected(void);
/* A per-process random value (from the kernel's AT_RANDOM bytes: no system call). */
HIDDEN uint32_t osm_os_random32(void);
/* Writes "osmem: <api>(): <what> 0x<ptr>\n" to standard error and aborts. */
HIDDEN _Noreturn void osm_os_fatal_pointer(const char *api, const char *what, const void *ptr);
/* Writes v in base 10 or 16 (lowercase) into out, NUL-terminated; returns the number of digits. out must hold
 * 24 bytes. Every number osmem prints goes through here: nothing in the library uses printf. */
HIDDEN size_t osm_os_utoa(char *out, uintmax_t v, unsigned base);
/* Writes a message to standard error with write(2). */
HIDDEN void osm_os_write_err(const char *msg);
/* Writes all of buf to fd (write(2), retried on short writes; never a cancellation point). Returns 0, or the errno
 * of the write that failed (EIO for one that wrote nothing). */
HIDDEN int osm_os_write_fd(int fd, const char *buf, size_t len);
/* errno's description, without gettext or allocation (strerrordesc_np) */
HIDDEN const char *osm_os_error_text(int e);
/* One of osmem's own files: a descriptor at a high number, close-on-exec, and what it was opened on; err: the errno
 * of the last write that failed there (a full disk, /dev/full), 0 if none. */
struct os_file { int fd; int err; uint64_t dev, ino; };
/* Opens (truncates) a trace file: `path`, `path.PID`, or `path` if no other process holds it (an flock that
 * lasts while the owner runs), else `path.PID`. */
enum os_trace_name { TRACE_PATH, TRACE_PATH_PID, TRACE_PATH_IF_FREE };
HIDDEN bool osm_os_open_trace(struct os_file *f, const char *path, enum os_trace_name how);
/* Why a file of osmem's could not be opened at path, given the open's errno: a FIFO with no reader, a socket, or
 * osm_os_path_unwritable's reasons; NULL if none is known. */
HIDDEN const char *osm_os_open_failure(const char *path, int err);
/* Why a file of osmem's at path (the trace, the statistics) could not be written (a directory, no permission, no
 * such directory), or NULL. */
HIDDEN const char *osm_os_path_unwritable(const char *path);
/* A relative path made absolute in out (cap bytes) from the current directory; false when the directory cannot be
 * read or the result does not fit. */
HIDDEN bool osm_os_absolute(char *out, size_t cap, const char *path);
/* The statistics' file: a private copy of standard error for "1", else the file `spec` (appended). */
HIDDEN bool osm_os_open_stats(struct os_file *f, const char *spec);
/* Writes all of buf to f, unless f's descriptor no longer refers to the file osmem opened (the program closed
 * the number and reused it): then f is dropped (fd -1) and nothing is written. False when not every byte went;
 * f->err then says why if the write itself failed. */
HIDDEN bool osm_os_file_write(struct os_file *f, const char *buf, size_t len);
/* Closes f's descriptor if it is still the file osmem opened. */
HIDDEN void osm_os_file_close(struct os_file *f);
HIDDEN long osm_os_pid(void);
/* Memory for osmem's own buffers (not the heap's, not counted in osm_os_calls): NULL when there is none. */
HIDDEN void *osm_os_map_buffer(size_t len);
HIDDEN void osm_os_unmap_buffer(void *addr, size_t len);
/* The calling thread's kernel id (gettid): never 0, below 2^22. */
HIDDEN int osm_os_thread_id(void);
#ifdef OSMEM_DROPIN
/* Whether realloc's big copies stream (OSMEM_STREAM, else the processor's maker: os.c). */
HIDDEN bool osm_os_copy_streams(void);
#endif
HIDDEN bool osm_os_thread_gone(int tid);
/* a barrier on every thread of the process: 1 done, 0 not this time (the kernel had no memory for it), -1 never
 * (not available) */
HIDDEN int osm_os_membarrier(void);
/* A detached thread of osmem's own running fn, every signal blocked, named name; false if none could be made. */
HIDDEN bool osm_os_thread_start(void *(*fn)(void *), const char *name);
HIDDEN void osm_os_sleep_ns(uint64_t ns);
/* Sleeps while *word == expected (or until woken; may return early). Private futexes: one process. */
HIDDEN void osm_os_futex_wait(int *word, int expected);
HIDDEN void osm_os_futex_wake(int *word, int count);

/* Whether the process has never had a second thread: glibc's __libc_single_threaded (2.32 and later), which
 * pthread_create clears before the new thread exists (glibc 2.36 leaves it clear in a forked child of a threaded
 * process, though the child has one thread; a later C library may set it again there); a thread changes it only
 * outside osmem, so a lock taken in one mode is given in the same one. Constant false where the C library does
 * not say. A load, no system call. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
extern char __libc_single_threaded;
#define osm_os_single_threaded() ((bool)__atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED))
#else
#define osm_os_single_threaded() false
#endif

/* A lock word alone on its cache line. A lock's word is written at every take and give; a variable that shares
 * its line is taken from every other core's cache each time, and the front's keys, read by every malloc and free
 * hit, sat in the heap lock's line (session 31: 4 threads growing buffers by realloc, 2.4x glibc's time). */
struct osm_lock_line {
	_Alignas(64) int word;
	char pad_[60];
};

/* A lock word (the heap lock, lock.c; the front lock, front.c): 0 when free, else its holder's mark (a thread id,
 * or any nonzero value below OSM_LOCK_WAITERS), plus OSM_LOCK_WAITERS when a thread may sleep on it.
 * Cost, one thread in the process: a load and a plain store each way, no atomic read-modify-write (glibc's
 * malloc skips its arena lock the same way, SINGLE_THREAD_P): a locked instruction waits for every store before
 * it, and realloc takes the lock right after its copy, so it paid for the whole copy's stores draining.
 * Otherwise, uncontended: one compare-and-swap to take, one exchange to give. Contended: osm_os_lock_slow spins
 * a while, then sleeps. A word found held by the only thread (a signal handler calling malloc inside malloc)
 * goes the slow way, as before: it waits, it never takes a held lock. */
#define OSM_LOCK_WAITERS 0x40000000
HIDDEN void osm_os_lock_slow(int *word, int me);
static inline void osm_os_lock_take(int *word, int me)
{
	if (osm_os_single_threaded() && __atomic_load_n(word, __ATOMIC_RELAXED) == 0) {
		__atomic_store_n(word, me, __ATOMIC_RELAXED);
		return;
	}
	int v = 0;
	if (!__atomic_compare_exchange_n(word, &v, me, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		osm_os_lock_slow(word, me);
}
/* The same, or false at once when another thread holds it. */
static inline bool osm_os_lock_try(int *word, int me)
{
	if (osm_os_single_threaded() && __atomic_load_n(word, __ATOMIC_RELAXED) == 0) {
		__atomic_store_n(word, me, __ATOMIC_RELAXED);
		return true;
	}
	int v = 0;
	return __atomic_compare_exchange_n(word, &v, me, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
static inline void osm_os_lock_give(int *word)
{
	if (osm_os_single_threaded()) { /* no other thread: nobody sleeps on the word */
		__atomic_store_n(word, 0, __ATOMIC_RELEASE);
		return;
	}
	if (__atomic_exchange_n(word, 0, __ATOMIC_RELEASE) & OSM_LOCK_WAITERS)
		osm_os_futex_wake(word, 1);
}
/* CLOCK_MONOTONIC in nanoseconds (the vDSO: no system call). */
HIDDEN uint64_t osm_os_now_ns(void);
/* The same to the last clock tick (1-4 ms behind, about 5 ns a read): for waits of 10 ms or more on frequent
 * paths. */
HIDDEN uint64_t osm_os_coarse_ns(void);
/* Runs fn at the very end of exit(), after every destructor and atexit handler that was registered later;
 * call from a constructor. pin: keep this library loaded to the end (it might be dlclose'd). */
HIDDEN bool osm_os_at_exit_last(void (*fn)(void *), bool pin);
/* Makes [addr, addr + len) (page-aligned) inaccessible (access false: a touch faults) or read/write again.
 * Returns false when the kernel refuses (the count of mappings is at its limit). Not counted in osm_os_calls. */
HIDDEN bool osm_os_protect(void *addr, size_t len, bool access);
/* len bytes of address space that fault on any access (PROT_NONE, no memory reserved), or NULL; at hint if that
 * range is free (a hint only: elsewhere otherwise; NULL for none). A heap mmap as far as the program can see
 * (malloc(0)'s addresses): counted in osm_os_calls, and OSMEM_FAIL=mmap fails it. */
HIDDEN void *osm_os_reserve(size_t len, void *hint);
/* The same at addr exactly (MAP_FIXED_NOREPLACE): false when anything is there or the kernel refuses. */
HIDDEN bool osm_os_reserve_at(void *addr, size_t len);

// ------------------------------------------------------------------
// Block helpers
// ------------------------------------------------------------------

/* The header's 4 padding bytes after `status` carry a tag. The ABI fields are untouched.
 *  - allocated and mapped blocks: a cookie derived from the block's address and the process secret, so a free of
 *    a foreign pointer is caught before anything changes;
 *  - free blocks: the number of the block's slot in the side storage below (the index or the pending list), or
 *    TAG_NOSLOT when the side storage was full. */
#define AUX_OFFSET (offsetof(struct block_meta, status) + sizeof(int))
#define TAG_NOSLOT 0xffffffffu

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
// Free-block slots: side storage for the best-fit index and the pending list
// ------------------------------------------------------------------

/* docs/CLASSIC.md: nothing writes into the payload of a free block (teaching checkers read freed bytes). So the
 * links of the index (a splay tree) and of the pending list live here, one 24-byte slot per free block (its links
 * and its size, the index's key), named by the block's tag. Slots come from a static array that the loader maps with
 * the library (.bss: no system call, and untouched pages cost nothing); the drop-in adds mapped chunks when it is
 * full. libosmem.so never maps one: past SLOT_CHUNK free blocks it falls back to the seed's walks (find_best_block,
 * a full coalescing pass), which give the same blocks, slower.
 * The drop-in's static chunk is small (16 Ki slots, 384 KiB) and it maps the others in both profiles: a program's
 * writable segments are what a conservative garbage collector scans for roots at every collection (Boehm's libgc,
 * under guile, w3m, inkscape), and the 24 MiB chunk made each collection of a program on libgc scan 31 MB of zeros
 * where glibc's process has 0.3 MB of roots: 65 times glibc's time for a loop of small collections, twice guile's
 * heap; and `mlockall` locked all of it (a real session-55 soak; tests/test_programs.py, libgc_roots_small). */
struct fslot {
	uintptr_t blk;   /* the free block's header | SLOT_TREE when it is in the index; 0 when the slot is unused */
	size_t size;     /* the block's size when it became free: the index's key, compared with the header before
			  * the block is trusted (a program that rewrote a free block's size cannot break the tree) */
	uint32_t l, r;   /* index: left and right children; pending list: prev and next; unused: next unused */
};
#define SLOT_TREE       ((uintptr_t)1)
#ifdef OSMEM_DROPIN
#define SLOT_CHUNK_BITS 14
#define SLOT_CHUNKS     4096 /* at most 64 Mi free blocks */
#else
#define SLOT_CHUNK_BITS 20   /* 24 MiB */
#define SLOT_CHUNKS     64   /* at most 64 Mi free blocks */
#endif
#define SLOT_CHUNK      ((uint32_t)1 << SLOT_CHUNK_BITS) /* slots per chunk */
#define SLOT_MAP_WAIT_NS 10000000u /* 10 ms: after a slot chunk's mmap failed, slots are refused, not tried for */
HIDDEN extern struct fslot *osm_slot_chunk[SLOT_CHUNKS];

static inline struct fslot *slot_at(uint32_t i)
{
	return &osm_slot_chunk[i >> SLOT_CHUNK_BITS][i & (SLOT_CHUNK - 1)];
}
static inline struct block_meta *slot_block(uint32_t i) { return (struct block_meta *)(slot_at(i)->blk & ~SLOT_TREE); }

// ------------------------------------------------------------------
// The heap (core)
// ------------------------------------------------------------------

enum bestfit_mode { BESTFIT_INDEX, BESTFIT_WALK, BESTFIT_VERIFY };

/* What the heap does beyond docs/CLASSIC.md. The classic API, and the drop-in with OSMEM_PROFILE=classic, set
 * none of it; the drop-in's default profile sets all of it. */
struct heap_policy {
	size_t align;            /* payload granule: 8 for the classic API, 16 for malloc */
	size_t mmap_threshold;   /* ALIGN(n) + META >= this: own mapping */
	size_t calloc_threshold; /* the same for calloc: the page size in docs/CLASSIC.md */
	bool eager_coalesce;     /* merge at free (no pending list), so the top can be trimmed at once */
	bool use_mremap;         /* mapped -> mapped realloc moves pages, not bytes */
	size_t grow_min;         /* 0: grow the break by exactly what is needed; else by at least this */
	size_t trim_threshold;   /* 0: the break never shrinks; else trim a free top larger than this */
	size_t trim_keep;        /* what a trim leaves at the top */
	bool fixed_threshold;    /* mallopt set a threshold, the top pad or a mapping limit: no dynamic threshold */
	size_t mmap_max;         /* 0: no limit; else at most this many mapped blocks live at once (M_MMAP_MAX) */
	bool map_cache;          /* keep big freed mappings for reuse (heap.c, "The mapping cache") */
	bool prefault;           /* fault in a fresh page a header goes to with one system call (heap.c, prefault) */
};

/* options.c: mallopt's settings (the default profile only: in the classic profile every setter returns false
 * and changes nothing). Each turns the dynamic mmap threshold off, as glibc does.
 *  OPT_MMAP_THRESHOLD: requests of at least value bytes (header included) get their own mapping (malloc and
 *                      calloc); OPT_TRIM_THRESHOLD: trim the top when more than value bytes are free at it (0:
 *                      never); OPT_TOP_PAD: grow the break by at least value bytes, and keep that much at a
 *                      trim; OPT_MMAP_MAX: 0 maps nothing (the thresholds go to SIZE_MAX), any other value gives
 *                      the thresholds back and caps the mapped blocks live at once (heap_threshold). */
enum osm_option { OPT_MMAP_THRESHOLD, OPT_TRIM_THRESHOLD, OPT_TOP_PAD, OPT_MMAP_MAX };
HIDDEN bool osm_option_set(enum osm_option opt, size_t value);
HIDDEN void osm_option_get(struct heap_policy *out, bool *classic);

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
	size_t kept_maps, kept_bytes;    /* the mapping cache: freed mappings kept for reuse */
	size_t reused_maps;              /* requests it served */
	size_t huge_bytes;               /* heap growth and front segments advised for huge pages (huge.c) */
	size_t fault_probe_ns;           /* a 4 KiB page fault's cost as huge.c measured it (0: not measured) */
	size_t decayed_bytes;            /* given back by the decay and the idle sweep (heap.c, discard_past) */
	size_t deferred_frees;           /* frees that found the lock taken and waited for its next holder */
};

#define HEAP_SEGS_MAX 32 /* segments of the heap after the first (foreign sbrk, mapped break): at most */
struct heap {
	/* Read without the lock (the medium caches' fast paths and realloc's keeps: medium_in_heap, medium_links_ok,
	 * block_cookie, align_up) and written rarely (start-up, a growth of the break, a threshold that adapts): lines
	 * of their own. Among the fields below, which the lock's holder writes at every operation (the counters,
	 * op at each call), every write took the line from the other cores' readers: 4 threads growing buffers by
	 * realloc spent a third of their time in the keep test's loads of base and end (session 31). */
	_Alignas(64) char *base;                     /* start of the first segment: index links are offsets from here */
	char *end;                      /* end of the last block: where the break is when nobody else moved it */
	bool gaps;                      /* someone else moved the break between two of our segments */
	bool classic;                   /* docs/CLASSIC.md to the letter */
	uint32_t secret;
	uint64_t key;                   /* odd, per process: keys block_cookie */
	struct heap_policy policy;
	/* one more at every mapped block's unlink (heap.c, mapped_unlink: freed, moved, remapped), written under the
	 * lock, read without it by realloc's keep of a mapped block (osm_mapkeep): a line of its own, as mapped
	 * blocks come and go while other threads read the lines around it */
	_Alignas(64) uint64_t mapped_gen;
	/* written under the lock */
	_Alignas(64) struct block_meta *head, *tail; /* heap blocks in address order */
	char *touched;                  /* pages below this were written once (heap.c, prefault); the break's frontier */
	size_t prefaults;               /* fresh header pages seen by prefault, up to PREFAULT_PROBE_AT */
	uint32_t pending;               /* free blocks not yet coalesced, doubly linked through their slots */
	uint32_t slot_top;              /* slots [1, slot_top) have been used; 0 is "none" */
	uint32_t slot_free;             /* unused slots below slot_top, linked through l */
	uint32_t slot_limit;            /* 0, or fewer slots than the storage has (tests of the fallback) */
	uint64_t slot_map_refused;      /* when a slot chunk's mmap was last refused (coarse clock + 1); 0: not since */
	uint32_t slots_used;            /* slots holding a free block */
	size_t unslotted;               /* free blocks without a slot: while any exists, best fit walks */
	struct block_meta *mapped;      /* mapped blocks, linked through prev/next */
	struct heap_counters count;
	const char *op;                 /* the API call being served, for reports ("malloc", "os_free", ...) */
	bool defer_move;                /* realloc: the caller copies outside the lock (osm_realloc_deferred) */
	struct block_meta *move_old;
	size_t move_len;
	bool move_grew;                 /* ... and whether it grew (heap.c, free_block's learn) */
	bool brk_refused;               /* default profile: the kernel refused to move the break and the heap went on
					 * in a mapped break (vbrk); a refusal nothing served leaves it false */
	/* the mapped break (heap.c, vbrk_grow): a reservation of address space (PROT_NONE) above the heap, made
	 * read/write from its start up to vbrk as the heap grows into it, as the break would be */
	char *vbrk, *vbrk_end;
	uint64_t vbrk_off_until;        /* no reservation could be made above the heap: map each block until then */
	size_t gap_bytes;               /* address space between the heap's segments: not the heap's (heap_bytes) */
	/* with gaps, the segments before the last ([lo, hi) each; the last is [seg_lo, end)): what lies between is not
	 * the heap's, and may be anything (other mappings, unmapped) when the heap went on in a mapped break */
	struct { char *lo, *hi; } segs[HEAP_SEGS_MAX];
	uint32_t n_segs;
	char *seg_lo;
	bool trim_watch;                /* a free trimmed the top: a growth of the break before the next trim raises
					 * the trim threshold (heap.c, brk_grow) */
	uint64_t trim_since;            /* default profile: when a free top above the trim threshold began to wait
					 * for its trim (osm_os_now_ns; 0: none waits; heap.c, trim_due) */
	const char *trim_high;          /* the highest block end the program used since (trim_used) */
	enum bestfit_mode bestfit;
	/* calloc's fresh pages (heap.c, calloc_populate): whether the program touches most of what it asks calloc for,
	 * as the last sample measured said; the samples (the whole pages of fresh blocks left lazy, and when) waiting to
	 * be measured; and how many fresh blocks calloc has had */
	bool zero_dense;
	struct {
		uintptr_t lo;
		size_t len, seen; /* seen: its pages touched at the last look that found its front filling (0: none) */
		uint64_t when;
		bool window; /* a block's end, not a whole block */
	} zero_sample[4];
	size_t zero_fresh;
};

HIDDEN extern struct heap osm_heap;
/* The bytes the heap's segments span: end - base, less the gaps between segments (a foreign sbrk's, or the
 * distance from the break to a mapped break). */
static inline size_t osm_heap_bytes(void)
{
	return osm_heap.head ? (size_t)(osm_heap.end - osm_heap.base) - osm_heap.gap_bytes : 0;
}

/* huge.c: transparent huge pages for what a program fills (default profile; heap lock held).
 * osm_huge_grown: the break grew by len from p (heap.c). The front's segments use the parts: osm_huge_env is
 * OSMEM_HUGEPAGE (no system call); osm_huge_kernel_ok whether the kernel honours madvise (read once);
 * osm_huge_dense whether 7/8 of the pages of [from, to) are resident (mincore; traced); osm_huge_advise asks for
 * huge pages for a range (counted in os_stats' huge_bytes; traced). */
/* OSMEM_HUGEPAGE: 0 off; unset, auto (the size and density tests, then the fault probe); dense (the tests, no
 * probe); 1 forced (neither). */
enum huge_mode { HUGE_MODE_OFF, HUGE_MODE_AUTO, HUGE_MODE_DENSE, HUGE_MODE_FORCED };
HIDDEN void osm_huge_grown(char *p, size_t len);
HIDDEN enum huge_mode osm_huge_env(void);
HIDDEN int osm_huge_kernel_ok(void); /* 1 yes, 0 no, -1 not known yet (asked again later) */
/* Whether huge pages pay on this machine: 1 unless the mode is auto and a 4 KiB page fault, measured once
 * (osm_os_fault_probe_ns, on the first call), costs less than HUGE_FAULT_NS (0); -1 when the probe could not
 * measure (its mapping refused): not known yet, asked again a second later, so not a verdict to keep. */
HIDDEN int osm_huge_pays(void);
/* Whether a 4 KiB page fault costs HUGE_FAULT_NS or more here (the probe, once; true when it measured nothing). */
HIDDEN bool osm_huge_faults_dear(void);
HIDDEN bool osm_huge_dense(const void *from, const void *to);
HIDDEN void osm_huge_advise(void *addr, size_t len);
/* p lies where the heap's growths are advised (every growth from the first advised one up; heap.c's prefault
 * leaves those pages to the huge page fault). No system call. */
HIDDEN bool osm_huge_heap_advised(const void *p);

static inline size_t align_up(size_t n) { return (n + osm_heap.policy.align - 1) & ~(osm_heap.policy.align - 1); }
/* realloc to s bytes (aligned) leaves block b as it is: the default profile keeps up to an eighth of a block
 * unused (heap.c, realloc_slack), the classic profile none. */
static inline bool osm_realloc_keeps(const struct block_meta *b, size_t s)
{
	return !osm_heap.classic && s <= b->size && b->size - s <= b->size / 8;
}

/* The cookie of an allocated or mapped header: a keyed hash of (address, size, status), so that a header the
 * program overwrote (its size, its status) or forged elsewhere does not pass, and one header leaked to an attacker
 * does not reveal the cookie of any other. Two multiplies. Every change of an allocated block's size or status
 * stamps it again (stamp_block in heap.c). */
static inline uint32_t block_cookie(const struct block_meta *b)
{
	uint64_t x = ((uint64_t)(uintptr_t)b ^ ((uint64_t)b->size << 19) ^ (uint64_t)(unsigned)b->status) * osm_heap.key;
	x ^= x >> 31;
	x *= 0x94D049BB133111EBull;
	return (uint32_t)(x >> 32) ^ osm_heap.secret;
}

/* A free block's slot, or 0 when its tag names none (TAG_NOSLOT, or a corrupted header). O(1). */
static inline uint32_t free_slot(const struct block_meta *b)
{
	uint32_t t = block_tag(b);
	return t && t < osm_heap.slot_top && slot_block(t) == b ? t : 0;
}

/* heap.c: the classic algorithm */
/* Sets the policy once, before the first allocation: dropin selects malloc's profile (OSMEM_PROFILE). */
HIDDEN void osm_init(bool dropin);
/* A block whose payload is aligned to `alignment` (a power of two above the granule). */
HIDDEN struct block_meta *osm_memalign(size_t alignment, size_t n);
/* Gives free memory back: the top of the heap beyond pad, and the pages inside large free blocks.
 * Returns true when anything went back. */
HIDDEN bool osm_trim(size_t pad);
/* The free top and the kept mappings back, for a request ENOMEM refused (heap.c); true when anything went. */
HIDDEN bool osm_trim_for_retry(void);
/* The largest free block on the heap, and the number and bytes of free blocks. */
HIDDEN void osm_free_summary(size_t *largest, size_t *count, size_t *bytes);
HIDDEN struct block_meta *osm_malloc(size_t n, size_t threshold);
/* The same for calloc: *dirty is how much of a mapped block's payload, from its start, the caller must zero (a kept
 * mapping's; 0 for a fresh mapping); a heap block is the caller's to zero whole. */
HIDDEN struct block_meta *osm_malloc_zero(size_t n, size_t threshold, size_t *dirty, size_t *populate);
HIDDEN void osm_free(struct block_meta *b);
/* Whether mapped block b may be one that took a kept mapping whole for a request of n bytes (heap.c, kept_whole):
 * up to twice its need, aligned or not (a sized delete's check of the block's size). */
HIDDEN bool osm_mapped_size_fits(const struct block_meta *b, size_t n);
/* The front's segments carved from the heap's free blocks (heap.c says why): a block of s bytes aligned to a, or
 * NULL when no free block holds one; and back. Lock held. */
HIDDEN struct block_meta *osm_heap_carve(size_t a, size_t s);
HIDDEN void osm_heap_uncarve(struct block_meta *b);
HIDDEN struct block_meta *osm_realloc(struct block_meta *b, size_t n);
/* osm_realloc, except that a move returns the new block with the old one still allocated, named in *old (*len
 * bytes to copy, *grew whether it grew; *old NULL when nothing moved): the caller copies without the lock, then
 * frees the old block with osm_realloc_finish(old, grew) under the lock. */
HIDDEN struct block_meta *osm_realloc_deferred(struct block_meta *b, size_t n, struct block_meta **old, size_t *len,
					       bool *grew);
HIDDEN void osm_realloc_finish(struct block_meta *old, bool grew);
/* Under the lock, for the layers above: the API call being served (the name the core's reports give), and the
 * bytes a request asked for (os_stats' bytes_requested). */
HIDDEN void osm_set_op(const char *op);
HIDDEN void osm_note_request(size_t n);
/* The mapping cache on or off (options.c; strict mode turns it off: a freed large block must be unmapped). */
HIDDEN void osm_policy_keep_mappings(bool on);
/* The header of a pointer handed to free/realloc, checked in O(1) before anything changes; aborts with a report
 * on a pointer osmem never returned, and on a double free unless allow_free (realloc's rule 3). */
HIDDEN struct block_meta *osm_user_block(void *ptr, const char *api, bool allow_free);
HIDDEN bool osm_in_heap(const void *p);
/* Frees that find the lock taken (heap.c, "Frees that find the lock taken"; default profile, not traced).
 * osm_defer_check: p's block when it is an allocated heap block of at least min bytes whose header and links hold,
 * read without the lock (heap_block_unlocked); else NULL (the lock's way decides and reports). osm_defer_push:
 * marks it freed and pushes it for the lock's next holder, without the lock (two compare-and-swaps); false when
 * it was freed already or too many wait: the caller frees it under the lock. osm_deferred_drain: under the lock,
 * frees what waits (osm_lock calls it). osm_deferred_marked: a heap block's payload p carries the mark. */
struct osm_deferred {
	_Alignas(64) uint64_t head; /* a line of its own: the freeing threads write it, the lock's holder drains it */
};
HIDDEN extern struct osm_deferred osm_deferred;
HIDDEN struct block_meta *osm_defer_check(void *p, size_t min);
HIDDEN bool osm_defer_push(struct block_meta *b);
HIDDEN void osm_deferred_drain(void);
/* The mark: the payload's address keyed by the heap's key and secret (a multiply). */
static inline uintptr_t osm_defer_mark(const void *q)
{
	return ((uintptr_t)q ^ osm_heap.key) * 0x9E3779B97F4A7C15ull ^ osm_heap.secret;
}
static inline bool osm_deferred_marked(const void *p) { return ((void *const *)p)[1] == (void *)osm_defer_mark(p); }
#ifdef OSMEM_DROPIN
#define OSM_DEFERS true
static inline bool osm_deferred_waiting(void) { return __atomic_load_n(&osm_deferred.head, __ATOMIC_RELAXED) != 0; }
#else /* libosmem.so: os_free always takes the lock */
#define OSM_DEFERS false
static inline bool osm_deferred_waiting(void) { return false; }
#endif
/* Reports "osmem: <op>(): <what> <payload>" and aborts: a header osmem was about to trust is not one it wrote. */
HIDDEN _Noreturn void osm_fatal_block(const struct block_meta *b, const char *what);
HIDDEN void osm_check_free_block(const struct block_meta *b);
/* b->next in a walk of the whole heap list, checked (in the heap, above b, pointing back); aborts with the report. */
HIDDEN struct block_meta *osm_walk_next(const struct block_meta *b);
/* Every heap block's next link, checked as osm_walk_next does; aborts with the report. Lock held. */
HIDDEN void osm_heap_links_check(void);

/* The seed's helpers keep their names and roles in the source; their linker symbols carry the osm_ prefix
 * (OSM_SYM), so a program that links libosmem.a and defines its own find_best_block does not clash. */
#define OSM_SYM(name) __asm__("osm_" #name)
HIDDEN struct block_meta *find_best_block(size_t size) OSM_SYM(find_best_block); /* reference: walks the list */
HIDDEN void split_blocks(struct block_meta *b, size_t size, bool to_index) OSM_SYM(split_blocks);
HIDDEN void coalesce_blocks(void) OSM_SYM(coalesce_blocks);
HIDDEN struct block_meta *find_last_block(void) OSM_SYM(find_last_block);
HIDDEN int heap_preallocation(void) OSM_SYM(heap_preallocation);

/* mapset.c: the live mapped blocks, found from a header address in O(1) without reading it */
enum mapset_answer { MAPSET_UNKNOWN, MAPSET_LIVE, MAPSET_GONE /* unmapped recently: a double free */ };
HIDDEN void osm_mapset_add(const struct block_meta *b);
HIDDEN void osm_mapset_del(const struct block_meta *b, bool unmapped);
HIDDEN void osm_mapset_moved(const struct block_meta *b);
HIDDEN enum mapset_answer osm_mapset_find(const struct block_meta *b, size_t *size);

/* index.c: the free-block index (exact best fit, lowest address among equal sizes), over slots */
HIDDEN void osm_index_insert(uint32_t slot);
HIDDEN void osm_index_remove(uint32_t slot);
/* slot's block, in the index, was split: the rest r takes its slot and place, in O(1) when the order allows */
HIDDEN void osm_index_rekey(uint32_t slot, struct block_meta *r);
HIDDEN struct block_meta *osm_index_best_fit(size_t size);
HIDDEN bool osm_index_empty(void); /* no free block in the index */
/* In-order visit without recursion (the tree may be deep); returns the number of nodes or stops at a callback
 * that returns false. */
HIDDEN size_t osm_index_walk(bool (*visit)(struct block_meta *b, void *arg), void *arg);
/* The same for the blocks of at least min bytes only (the visit must not change the index). */
HIDDEN size_t osm_index_walk_from(size_t min, bool (*visit)(struct block_meta *b, void *arg), void *arg);

/* trace.c: the decision recorder (OSMEM_TRACE); see docs/TRACE.md. Events are recorded under the heap lock
 * into memory only; the file is written after the lock is released. */
HIDDEN extern int osm_trace_on;
#ifdef OSMEM_NO_TRACE
#define TRACING 0
#else
#define TRACING __builtin_expect(osm_trace_on, 0)
#endif
HIDDEN void osm_trace_start(const char *path, const char *const *base, const char *const *end, const char *header);
/* From the library's constructor: a relative OSMEM_TRACE is made absolute where the process starts (trace.c). */
HIDDEN void osm_trace_note_start(const char *path);
HIDDEN void osm_trace_event(const char *fmt, ...);
HIDDEN void osm_trace_idle_begin(void); /* a pass outside any request follows (heap lock held) */
/* Writes what filled up while the heap lock was held; called with no lock held, right after releasing it. */
HIDDEN void osm_trace_after_unlock(void);
/* At exit: seal what was recorded so far (the caller holds the heap lock), then write it out (the caller has let
 * the heap lock go; takes the recorder's own). osmem.c's trace_at_exit calls both. */
HIDDEN void osm_trace_seal_at_exit(void);
HIDDEN void osm_trace_drain_at_exit(void);
HIDDEN void osm_trace_fork_child(void);
/* The report of a bad pointer, from the layers above os: writes the trace first (the events before a crash are
 * the useful ones), then osm_os_fatal_pointer. Called under the heap lock. */
HIDDEN _Noreturn void osm_fatal_pointer(const char *api, const char *what, const void *ptr);

/* check.c: every invariant of the heap, walked (tests); NULL when all hold, else what broke. Lock held. */
HIDDEN const char *osm_heap_check(void);

/* Test and benchmark hooks (reachable by linking libosmem.a). */
HIDDEN void osm_set_bestfit_mode(enum bestfit_mode mode);
/* Caps the side storage at n slots (0: no cap), so tests can reach the classic fallback. */
HIDDEN void osm_set_slot_limit(uint32_t n);

/* lock.c (core): the core's lock, taken by every layer above around the core */
HIDDEN void osm_lock(void);
/* osm_lock, or false at once when another thread holds the lock (a free that need not wait: osm_defer_push). */
HIDDEN bool osm_lock_try(void);
HIDDEN void osm_unlock(void);
/* Whether the calling thread holds the heap lock (exact, also from a signal handler); a test hook too. */
HIDDEN bool osm_lock_held_by_self(void);
HIDDEN int osm_lock_self_id(void); /* this thread's kernel id, read once (the owner a lock word holds) */
/* fork (the handlers are osmem.c's): prepare asks skip (this thread holds the lock: leave it), else takes it
 * (take) after the front's; parent lets it go unless skipped (returns whether it did); the child resets it (a
 * free word, the new thread id), then, after the front's reset, ends the fork (done). */
HIDDEN bool osm_lock_fork_skip(void);
HIDDEN void osm_lock_fork_take(void);
HIDDEN bool osm_lock_fork_parent(void);
HIDDEN void osm_lock_fork_child(void);
HIDDEN void osm_lock_fork_child_done(void);

/* stats.c (record layer): the text of os_stats' figures, which the API gathers (osmem.c) and hands down.
 * OSMEM_STATS is opened at start (osm_stats_open returns whether it is on) and printed at the very end. */
struct os_stats;
struct osm_stats_extra {
	bool classic;                                /* which profile's heading */
	size_t kept_maps, kept_bytes, reused_maps;   /* the mapping cache's lines (also in front_cached_*) */
	size_t front_carved_bytes;                   /* of front_bytes: segments carved from the heap (in heap_size) */
	bool background;                             /* OSMEM_BACKGROUND's thread runs (background.c) */
	size_t background_wakes;
	size_t streamed_moves;                       /* realloc's copies written with streaming stores (override.c) */
};
/* The statistics as os_stats gives them, and the extra figures (osmem.c; API layer: takes the locks itself). */
HIDDEN void osm_stats_gather(struct os_stats *st, struct osm_stats_extra *x);
#ifdef OSMEM_DROPIN
HIDDEN extern size_t osm_streamed_moves; /* override.c, move_copy */
#endif

HIDDEN bool osm_stats_open(void);
HIDDEN bool osm_stats_wanted(void);
HIDDEN void osm_stats_print(int fd, const struct os_stats *st, const struct osm_stats_extra *x);
HIDDEN void osm_stats_at_exit(const struct os_stats *st, const struct osm_stats_extra *x);
/* dump.c (record layer): os_heap_dump's text, built under the lock the API holds, written after it lets go. */
struct osm_dump { char *buf; size_t len, size; };
HIDDEN bool osm_dump_build(bool json, struct osm_dump *d); /* false: no memory for the buffer */
HIDDEN void osm_dump_write(int fd, struct osm_dump *d);     /* and gives the buffer back */

// ------------------------------------------------------------------
// The front layer (front.c): per-thread caches of small slots, libosmem-malloc.so's default profile only
// ------------------------------------------------------------------
#ifdef OSMEM_DROPIN

/* Small requests (up to FRONT_MAX bytes) are served from 64 KiB pages of equal slots with no header, carved
 * from 4 MiB segments aligned to 4 MiB. Each thread owns a heap: per size class a current page whose free list
 * it pops and pushes without a lock or an atomic operation. A slot freed by another thread goes onto its page's
 * thread-free list (one CAS); the owner collects it in its slow path. front.c explains the whole design. */
#define FRONT_MAX        ((size_t)2048)
#define FRONT_CLASSES    29
#define FRONT_SEG_SHIFT  22                          /* segments: 4 MiB, aligned to 4 MiB */
#define FRONT_PAGE_SHIFT 16                          /* pages: 64 KiB */
#define FRONT_SEG_SIZE   ((size_t)1 << FRONT_SEG_SHIFT)
#define FRONT_PAGE_SIZE  ((size_t)1 << FRONT_PAGE_SHIFT)
#define FRONT_PAGES      (FRONT_SEG_SIZE / FRONT_PAGE_SIZE) /* page 0 holds the segment's metadata */

/* Medium requests (FRONT_MAX < n <= MEDIUM_MAX) are core blocks, headers and all (32 bytes cost little at these
 * sizes), rounded up to an eighth of their power of two (medium_round), and kept per thread after free in a small
 * stack per bin (glibc's tcache, for the sizes where threads would otherwise meet on the core's lock). A bin holds
 * the blocks of sizes between two bounds, four per power of two (2048, 2560, 3072, 3584, 4096, 5120, ..., 57344),
 * and the last those of MEDIUM_MAX up to MEDIUM_END_BLOCK: a request looks in its own size's bin for the smallest
 * block at least as large, so a program that frees and asks again for one size gets its block back. A block in a
 * cache stays allocated to the core; its payload's second word carries the freed mark.
 * Why 64 KiB (session 33; 32 KiB before): 32-64 KiB buffers that one thread allocates and another frees took the
 * core's lock at every call (200,000 through a ring of 64: 0.19-0.45 s, now 0.03-0.10; mimalloc 0.09, tcmalloc
 * 0.27), and 64 KiB is a common buffer size. The bins above 32 KiB refill one block at a time (medium.c,
 * MEDIUM_BATCH_MAX). Not 128 KiB: blocks held in caches are allocated in the core's eyes, so the larger blocks
 * around them cannot merge through them: 64-256 KiB handed between threads then took 2.6 times the memory and up
 * to 45% more time, mixed-realloc (8 B-512 KiB) 6% more time and 5% more memory.
 * Why the last bin ends 64 bytes past MEDIUM_MAX (it ended an eighth past): the blocks medium requests get are at
 * most their rounded size plus a remainder too small to split (under 48 bytes); a core block between that and an
 * eighth more came from a larger request, and sat in a cache where no request of its size would look
 * (medium/above_medium_not_cached). */
#define MEDIUM_MAX       ((size_t)65536)
#define MEDIUM_CLASSES   21                       /* bins: [2048, 2560), ..., [57344, 65536), [65536, 65600) */
/* Blocks a bin holds at most: MEDIUM_DEPTH while the process has one thread, MEDIUM_DEPTH_THREADED once it has more
 * (medium.c, medium_depth). */
#define MEDIUM_DEPTH          64
#define MEDIUM_DEPTH_THREADED 16
#define MEDIUM_MIN_BLOCK (FRONT_MAX + 16)         /* blocks of [MEDIUM_MIN_BLOCK, MEDIUM_END_BLOCK) are cached */
#define MEDIUM_END_BLOCK (MEDIUM_MAX + 64)
/* The largest request malloc, calloc and operator new take to the medium caches: MEDIUM_MAX, and the few just above
 * it, whose blocks lie in the last bin too. Until session 52 those went to the core while their blocks, freed,
 * went into the last bin, where no request of their size looked: python3 reads files 64 KiB at a time, a bytes
 * object of 65,569 bytes, and a thread of http.server sending a 20 MB file filled its bin and the transfer cache
 * with 80 such blocks, each next read carved anew (5.8 MB more at the peak than glibc's;
 * medium/just_above_medium_max_reused). Their blocks are carved exactly (medium.c, osm_front_medium_refill). */
#define MEDIUM_REQ_MAX   (MEDIUM_END_BLOCK - 16)
_Static_assert(MEDIUM_END_BLOCK - 1 < ((size_t)5 << (63 - __builtin_clzll(MEDIUM_MAX) - 2)) &&
		       MEDIUM_CLASSES == (63 - __builtin_clzll(MEDIUM_MAX) - 11) * 4 + 1,
	       "MEDIUM_MAX starts the last bin, and every block below MEDIUM_END_BLOCK lies in it (medium_bin)");
/* Bytes a thread's medium cache holds at most, all bins: MEDIUM_BUDGET while at most 8 threads have caches (the
 * first 17 bins, to 40 KiB, hold about 2.4 MiB full; all 21 about 7 MiB, so the larger ones share it), then
 * MEDIUM_BUDGET_ALL shared among the threads, at least MEDIUM_BUDGET_MIN (set when the thread's cache is made):
 * 100 threads keep at most 124 MiB, not 240. */
#define MEDIUM_BUDGET     ((size_t)4 << 20)
#define MEDIUM_BUDGET_ALL ((size_t)32 << 20)
#define MEDIUM_BUDGET_MIN ((size_t)1 << 20)

/* PG_POOL is 0: the descriptor of a page its segment has never handed out is all zeros, and reads as free. */
enum { PG_POOL, PG_CUR, PG_PARTIAL, PG_FULL, PG_EMPTY, PG_ABANDONED };

struct front_heap;
struct front_seg;

/* One page of slots, described in its segment's first page: three cache lines used, so that the frees of other
 * threads (which read the second and push on the third) never touch the line the owner writes on every malloc
 * and local free (the first), and a fourth left empty: at 256 bytes a slot's descriptor is a mask, a shift and an
 * or of the slot's address (front_page_of), where 192 took a multiply by 3 and a shift, two cycles longer on the
 * chain that free's every check waits on (pairs 0.328 -> 0.313 s over 21 runs, larson-1 -2%). 64 descriptors
 * take 16 KiB of the segment's first page; only those of pages in use are ever touched. */
struct front_page {
	/* the owner's: written by its fast paths */
	void *free;                /* the owner's free list: encoded links (front_enc) */
	uint32_t used;             /* slots handed out, minus the frees the owner has seen (local or collected) */
	uint8_t state;             /* PG_*: the list that holds the page; the fast free path only tests PG_CUR */
	uint8_t unused_[3];
	struct front_page *next, *prev;
	/* read by every free of a slot of the page; written when the page is formatted, carved or changes owner */
	_Alignas(64) uintptr_t start; /* address of slot 0 */
	uintptr_t span;            /* bytes of slots carved so far: a valid slot lies in [start, start + span) */
	uint64_t magic;            /* slot_magic(slot_size): off is a multiple of the slot size iff off * magic < magic */
	struct front_heap *heap;   /* owner (atomic access: remote frees read it); NULL when abandoned or unused */
	uint32_t slot_size, capacity, reserved; /* slot bytes, slots carved, slots that fit */
	/* capacity * (slot_size * magic mod 2^64): front_is_page_slot's one compare; 0 while `parked` is set, so that
	 * every free of the page's slots takes the slow way */
	uint32_t limit;
	uint8_t cls;
	/* bit j: the page's 4 KiB number j went back to the kernel at malloc_trim and its free slots are set aside
	 * (front.c, page_trim); `limit` is 0 meanwhile. Read by every free's slow path, another thread's too (atomic
	 * access): on this line, which those frees read anyway, not on the owner's first one, which its every malloc
	 * writes (there, every remote free of every page read a line the owner had just written: session 41's
	 * review) */
	uint16_t parked;
	/* bit j: the page's 4 KiB number j, past what is carved (`span`), went back at a malloc_trim since the page was
	 * formatted: the next trim does not give it back again (front.c, page_trim). Owner's. */
	uint16_t bare;
	/* frees by other threads: an atomic LIFO of slots (encoded links): the head in the low TF_SHIFT bits, how
	 * many slots it holds above (a page holds at most 4096) */
	_Alignas(64) uintptr_t thread_free;
	/* in pages 1..63, while the page is in the pool, when it went there (front.c, pool_decay); in page 0, which has
	 * no slots, its segment's own fields (front.c, seg_links): with them here, a segment whose first pages are in
	 * use has one page of metadata resident, not five */
	_Alignas(64) union {
		char spare_[64];
		struct front_pool_note {
			uint64_t since; /* when the page entered the pool (the coarse clock) */
			bool cold;      /* on the cold pool: its memory given back */
		} pooled;
		struct front_seg_links {
			struct front_seg *next, *prev; /* the list of segments */
			uint32_t free_pages; /* pages in the pool or never handed out */
			uint32_t fresh;      /* pages never handed out: the last `fresh` of the segment */
			uint32_t carved;     /* a block of the heap's (front.c, seg_carve), not a mapping */
		} seg;
	};
};
_Static_assert(sizeof(struct front_page) == 256, "a page descriptor is four cache lines (front_page_of)");

#define TF_SHIFT 48
#define TF_PTR   (((uintptr_t)1 << TF_SHIFT) - 1)

struct front_list { struct front_page *first, *last; };

#define TC_DEPTH 63 /* the deepest thread cache stack (front.c, tc_max) */
#define TC_ROW   64 /* a class's row of the stacks: up to TC_DEPTH slots and the NULL below them; 512 bytes */

/* A thread's heap. cur[] is what the fast path reads; the rest belongs to its slow path. */
struct front_heap {
	struct front_page *cur[FRONT_CLASSES];
	/* the thread cache: per class a stack of slots this thread freed into its own pages, marked, still
	 * counted as used by their pages. Each class's stack ends at the end of its row of front_stacks.tc, so that
	 * free finds it full by the address of its top alone (no count, no limit to load); below its first entry sits
	 * an entry that is always NULL (tc_base). tc_sp[cls] points to the top entry (tc_base when empty);
	 * tc_top[cls] is that entry's value, kept here so that malloc's hit returns after one load of what the last
	 * free stored, not two chained ones (session 20's profile of pairs put half of malloc's samples on the
	 * second). */
	void **tc_top[FRONT_CLASSES];
	void ***tc_sp[FRONT_CLASSES];
	uint32_t used_classes; /* bit cls: cur[cls] has held a page (only then can tc_top[cls] or a page's list be set) */
	/* slow start for pages (front.c, starter_core): set at the heap's birth when many threads have heaps; then per
	 * class, the requests the core served while the thread had no page of the class */
	bool slow_start;
	uint8_t starter[FRONT_CLASSES];
	size_t hits, misses, frees;       /* plain increments by the owner; summed under the front lock */
	size_t remote_freed, collected;   /* bytes freed into other threads' pages / collected from its own */
	struct front_list partial[FRONT_CLASSES], full[FRONT_CLASSES];
	struct front_list empty;          /* fully free pages kept for any class */
	size_t n_empty;
	struct front_heap *next, *prev;   /* the live heaps (front lock) */
	/* per class, frees into one page of another thread, gathered and pushed with one CAS (front.c,
	 * remote_batch); rb_any: some class has a batch */
	struct { struct front_page *page; void **head, **tail; size_t count; } rb[FRONT_CLASSES];
	bool rb_any;
	/* the malloc_trim calls this heap has answered, twice (front.c, heap_trim_late); bit 0: a pass of the decay asks
	 * this busy thread to collect the frees on its pages but its current ones (steal_idle). Atomic access: the
	 * owner stores it, a pass sets the bit */
	uint32_t trim_seen;
	/* the owner's kernel thread id, and whether a reaper is giving the heap back because that thread is gone
	 * without its exit having run (front.c, heaps_reap) */
	int tid;
	bool reaping;
	/* the medium cache: per class a LIFO of core blocks (mc_count of at most mc_limit, 0 in empty_heap; the limit
	 * starts at 2 and grows by 2 with each miss or full bin, up to medium_depth: tcmalloc's slow start; above it
	 * only where the bin filled while the process had one thread, until the thread's next scavenge) */
	/* another thread's pass may give the bins of a thread idle a second back to the core (front.c,
	 * steal_idle): the owner marks its uses of them (mc_busy: how many are in progress, a signal handler's
	 * nested in the thread's; mc_enter) and leaves them alone while a pass has mc_steal set */
	uint8_t mc_busy, mc_steal;
	bool mc_shared; /* a block came from the transfer cache: its misses are rounded (medium.c, refill) */
	uint8_t mc_count[MEDIUM_CLASSES], mc_limit[MEDIUM_CLASSES];
	/* per class the low-water mark of mc_count since medium_scavenge last looked (tcmalloc's lowater): the
	 * blocks below it have not been used since */
	uint8_t mc_low[MEDIUM_CLASSES];
	/* per class the size of the last miss (bytes, a multiple of 16): a miss of that size again carves it exactly
	 * (medium.c, osm_front_medium_refill) */
	uint32_t mc_last[MEDIUM_CLASSES];
	size_t mc_hits, mc_frees, mc_refills; /* plain increments by the owner, like hits */
	size_t mc_flushed;                    /* blocks given back */
	size_t mc_bytes;                      /* payload bytes of the blocks held */
	size_t mc_budget;                     /* at most (MEDIUM_BUDGET); 0 in empty_heap */
	size_t mc_scavenged;                  /* blocks given back unused (medium.c, medium_scavenge) */
	uint64_t mc_look_ns;                  /* when medium_scavenge last looked */
	/* steal_idle's own (front lock): the owner's count of requests and frees (medium and small) at its last pass,
	 * and whether that pass saw the heap (a heap is idle when two passes a second apart find the same count) */
	size_t mc_seen, sm_seen;
	bool mc_seen_set;
};

/* The stacks of a thread's caches: 30.5 KiB of a heap's 36 (the heap itself a page: struct front_heap_mem), so they sit
 * just below their heap (stacks_of) rather than in it. The empty heap (front.c) is then 2.8 KiB of initialised data,
 * not 20 KiB: it needs no stacks, since its counts are all 0 and nothing reads a stack whose count is 0. Those 20 KiB
 * of .data were resident, file-backed pages in every process: the library's writable segment went from 24 to 8 KiB
 * resident (smaps of pairs at exit). Same cost on the fast paths: a heap's stacks are at a constant offset from it, now
 * negative. */
struct front_stacks {
	/* the medium bins (16 KiB): a threaded process uses the first 16 entries of each row (medium_depth), so a
	 * thread's bins touch 4 pages at most, where rows of 16 took 1 */
	struct block_meta *mc[MEDIUM_CLASSES][MEDIUM_DEPTH];
	uint32_t mc_size[MEDIUM_CLASSES][MEDIUM_DEPTH]; /* their sizes: a scan for one that fits reads no header */
	/* the thread cache's stacks: class cls uses tc[cls][TC_ROW - osm_front_tc_max[cls] .. TC_ROW - 1], and the
	 * entry below them (tc_base) stays NULL: the top a pop of the last slot leaves (front_malloc_with). Rows are
	 * aligned to their size: a push that would pass a row's end finds it at (top + 1) % 512 == 0. */
	_Alignas(TC_ROW * sizeof(void *)) void **tc[FRONT_CLASSES][TC_ROW];
};
/* How a heap is laid out in memory: its stacks, then the heap (front.c, heap_alloc). The heap (2.7 KiB) starts a
 * page: right after the stacks (18.5 KiB then) it straddled two, both resident in every thread (smaps of pairs: the
 * thread's heap 16 KiB resident, now 12, the two pages of the classes it uses and the heap's one). */
struct front_heap_mem {
	struct front_stacks stacks;
	_Alignas(4096) struct front_heap heap;
};
static inline struct front_stacks *stacks_of(struct front_heap *h)
{
	return (struct front_stacks *)((char *)h - offsetof(struct front_heap_mem, heap));
}

HIDDEN extern __thread struct front_heap *osm_front_tl_heap __attribute__((tls_model("initial-exec")));
/* The mapped blocks this thread's reallocs last kept or remapped under the lock (the last MAPKEEP_WAYS), valid
 * while no mapped block anywhere has been unlinked since (gen == osm_heap.mapped_gen): then each is still live
 * and its header is osmem's to read without the lock, where finding it otherwise takes the lock and the mapping
 * set (osm_user_block). A string grown a byte at a time past the mmap threshold: override.c, mapped_keeps.
 * Filled under the lock (osm_mapkeep_note), by the default profile untraced. */
#define MAPKEEP_WAYS 4
struct osm_mapkeep {
	uint64_t gen;
	void *p[MAPKEEP_WAYS];
	unsigned next; /* the entry the next new block replaces */
};
HIDDEN extern __thread struct osm_mapkeep osm_front_tl_mapkeep __attribute__((tls_model("initial-exec")));
/* p is one of them (NULL never is asked: realloc(NULL) is malloc's). Four compares of one line. */
_Static_assert(MAPKEEP_WAYS == 4, "osm_mapkeep_has compares four entries");
static inline bool osm_mapkeep_has(const struct osm_mapkeep *k, const void *p)
{
	return (k->p[0] == p) | (k->p[1] == p) | (k->p[2] == p) | (k->p[3] == p);
}
static inline void osm_mapkeep_note(void *p, uint64_t gen)
{
	struct osm_mapkeep *k = &osm_front_tl_mapkeep;
	if (k->gen != gen) {
		for (size_t i = 0; i < MAPKEEP_WAYS; i++)
			k->p[i] = NULL;
		k->gen = gen;
	}
	if (!osm_mapkeep_has(k, p))
		k->p[k->next++ % MAPKEEP_WAYS] = p;
}
/* One bit per 4 MiB of the 47-bit address space: 1 where a front segment is. In two levels: 64 leaves of 64 KiB
 * (2^19 bits, 2 TiB of address space each), each mapped when a segment first lies in its part (front.c,
 * segmap_set; a spare is mapped ahead, so that setting a bit never fails), and only the page or two around the
 * segments' addresses ever written. Until session 55 one 4 MiB table in .lbss: a conservative collector (Boehm's
 * libgc) scans every writable segment of every library at each collection, and mlockall locks them (internal.h,
 * struct fslot). A byte per segment would save free two instructions, at 32 MiB of address space that RLIMIT_DATA
 * counts: a program limited to 64 MiB could not fill its heap (medium/enomem_reclaims_cached_blocks). */
#define FRONT_SEGMAP_SIZE ((size_t)1 << (47 - FRONT_SEG_SHIFT))
#define SEGMAP_LEAF_BITS  19
#define SEGMAP_LEAF_MASK  (((size_t)1 << SEGMAP_LEAF_BITS) - 1)
#define SEGMAP_LEAF_BYTES (((size_t)1 << SEGMAP_LEAF_BITS) / 8)
HIDDEN extern uint64_t *osm_front_segmap[FRONT_SEGMAP_SIZE >> SEGMAP_LEAF_BITS];
HIDDEN extern size_t osm_front_segmap_lo, osm_front_segmap_hi; /* the lowest and highest index ever set */
HIDDEN extern const uint8_t osm_front_class_of[FRONT_MAX / 16 + 1]; /* (n + 15) / 16 -> size class */
HIDDEN extern const uint32_t osm_front_class_size[FRONT_CLASSES];    /* size class -> slot bytes */
/* The slot bytes of a request of 1 to FRONT_MAX bytes: what malloc_usable_size says of its slot. */
static inline size_t osm_front_slot_bytes(size_t n) { return osm_front_class_size[osm_front_class_of[(n + 15) >> 4]]; }
/* Row k, class c: the first class from c up whose slots are multiples of 32 << k bytes, and so aligned to that
 * (a page's slots start at its 64 KiB boundary). */
HIDDEN extern const uint8_t osm_front_align_up[7][FRONT_CLASSES];
/* The class of an aligned request: n <= FRONT_MAX bytes aligned to a, a power of two with 16 < a <= FRONT_MAX. The
 * smallest class that holds n and a and whose size a divides: aligned_alloc(64, 320) takes a 320-byte slot, where
 * the next power of two (512, as until session 75) cost 60% more memory and a loop whose length varied with n (its
 * mispredicted exit was most of aligned_alloc's time against tcmalloc's). Two loads. */
static inline size_t osm_front_aligned_class(size_t n, size_t a)
{
	size_t m = n > a ? n : a;
	return osm_front_align_up[__builtin_ctzll(a) - 5][osm_front_class_of[(m + 15) >> 4]];
}
HIDDEN extern uintptr_t osm_front_key;   /* per-process secret of the free-list links */
HIDDEN extern uintptr_t osm_front_dfkey; /* per-process secret of the freed-slot mark */

/* Links inside free slots: next ^ (slot >> 12) ^ key (glibc's safe-linking, plus a per-process secret). */
static inline void *front_dec(void *slot, uintptr_t enc)
{
	return (void *)(enc ^ ((uintptr_t)slot >> 12) ^ osm_front_key);
}
static inline uintptr_t front_enc(void *slot, void *next)
{
	return (uintptr_t)next ^ ((uintptr_t)slot >> 12) ^ osm_front_key;
}
/* A freed slot's second word holds this mark (glibc's tcache key, bound to the address): a free that finds it
 * is a double free, in O(1). malloc clears it. */
static inline uintptr_t front_mark(void *slot) { return (uintptr_t)slot ^ osm_front_dfkey; }
/* A cached medium block's mark (medium.c): the slots' mark with bit 3 flipped, so that it never equals the mark of
 * any slot (slots are 16-byte aligned, and so is a payload: q ^ 8 is no slot's address). A segment carved from the
 * heap (front.c, seg_carve) goes back to it with its freed slots' marks in place; a medium block whose payload
 * lands on such a slot, and whose second word the program never writes, read as cached at its free: a double free
 * reported for a block freed once (medium/medium_block_over_released_segment_is_not_cached). */
static inline uintptr_t medium_mark(void *q) { return front_mark(q) ^ 8; }

/* The multiplier of a page's slot test: floor(2^64 / d) + 1, so that d * magic = 2^64 + e with 1 <= e <= d
 * (e = d for a power of two, where UINT64_MAX / d + 1 alone would leave e = 0). For an offset off below 2^16,
 * off = k * d + r: off * magic mod 2^64 = k * e + r * magic, which is below 2^23 when r = 0 and at least
 * magic >= 2^53 (d <= 2048) otherwise, with no wrap: a multiple of d iff the product is below magic, and slot k
 * of the first `capacity` iff it is below capacity * e. */
static inline uint64_t slot_magic(uint32_t d)
{
	return UINT64_MAX / d + 1 + (UINT64_MAX % d == d - 1);
}

/* p is a slot of page pg: inside what was carved, at a slot boundary. False for pages without slots. Any p. */
static inline bool front_is_slot(const struct front_page *pg, uintptr_t p)
{
	uintptr_t off = p - pg->start;
	return off < pg->span && off * pg->magic < pg->magic;
}

/* The same for p in pg's own 64 KiB (pg == front_page_of(p), slot 0 at the page's start): its offset is its low
 * 16 bits, and one multiply and one compare decide both questions (slot_magic). Free's fast path: two instructions
 * and a branch fewer than front_is_slot, and no load of `start` before the multiply. A page without slots has
 * limit 0; so do page 0 of a segment (its metadata), the zeros of a released segment's descriptors, and a page
 * whose free slots malloc_trim set aside (front.c, page_trim: its pointers take the slow ways, which know them). */
static inline bool front_is_page_slot(const struct front_page *pg, uintptr_t p)
{
	return (p & (FRONT_PAGE_SIZE - 1)) * pg->magic < pg->limit;
}

/* Segment number seg's bit in the map (seg < FRONT_SEGMAP_SIZE), loaded with memory order `order`: its leaf, then
 * its word (a leaf is zero when it is published). */
static inline bool osm_front_segmap_test(size_t seg, int order)
{
	const uint64_t *leaf = __atomic_load_n(&osm_front_segmap[seg >> SEGMAP_LEAF_BITS], order);
	size_t i = seg & SEGMAP_LEAF_MASK;
	return leaf && ((__atomic_load_n(&leaf[i >> 6], order) >> (i & 63)) & 1);
}

/* The front's range (front.c, range_segment): segments mapped one after another, [lo, lo + span), and every
 * address there has readable descriptors (a released segment's read as zeros: no slot there), so free and delete
 * tell a slot from anything else with a subtraction and a compare (osm_front_in_range), four instructions where
 * the segment map's test takes ten. Segments mapped elsewhere (something else was mapped where the range would
 * grow) are found through the map (osm_front_owns), on the paths that follow a miss. Written under the front
 * lock. */
struct osm_front_range {
	uintptr_t lo, span;
};
#define RANGE_UNSET ((uintptr_t)1 << 63) /* lo before the first segment */
HIDDEN extern struct osm_front_range osm_front_range;
/* p lies in a segment of the front's range (NULL never does: the range starts far above 0; nothing does before
 * the first segment, span 0). Plain loads, so that both fold into the subtraction and the compare: the
 * words are written under the front lock with atomic stores, and a pointer of a segment reaches free only through
 * the program's own synchronisation with the malloc that carved it, which follows the store. The drop-in is
 * never built with TSan (it brings its own malloc). */
static inline bool osm_front_in_range(const void *p)
{
	return (uintptr_t)p - osm_front_range.lo < osm_front_range.span;
}

/* Whether p lies in a front segment: a compare and a bit test of a word in .lbss, no system call. NULL is in
 * segment 0, which no segment can be (mmap does not return address 0), so free needs no test of its own for it. */
static inline bool osm_front_owns(const void *p)
{
	uintptr_t seg = (uintptr_t)p >> FRONT_SEG_SHIFT;
	return seg < FRONT_SEGMAP_SIZE && osm_front_segmap_test(seg, __ATOMIC_RELAXED);
}

/* The descriptor of the page that holds p: its segment's start, or'ed with the page's index times 256 (the
 * descriptors are pages[0..63] at the segment's start, 256 bytes each). */
static inline struct front_page *front_page_of(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	return (struct front_page *)((a & ~(FRONT_SEG_SIZE - 1)) |
				     ((a >> (FRONT_PAGE_SHIFT - 8)) & ((uintptr_t)(FRONT_PAGES - 1) << 8)));
}

/* A slot's first two words, written as two 8-byte stores. Written `s[0] = s[1] = v`, GCC merges them into one
 * 16-byte vector store (a movq and a punpcklqdq into an xmm register for free's mark, a pxor for malloc's clear),
 * and the next operation on the slot reads a word of it into a general register: the program's own read or
 * write of its first bytes after malloc, the mark test of free and of the next malloc. Relaxed atomic stores,
 * because GCC does not merge those. Session 32, with front_is_page_slot: pairs 0.909 of the time before (40
 * paired runs, 31 faster, p 0.002), larson-1, larson-2, threads-8 and prodcon level (docs/TRADEOFFS.md, pairs). */
static inline __attribute__((always_inline)) void slot_words(void **s, void *v)
{
	__atomic_store_n(&s[0], v, __ATOMIC_RELAXED);
	__atomic_store_n(&s[1], v, __ATOMIC_RELAXED);
}

/* A slot in a thread cache carries its freed mark in both of its first two words: free reads the second (a double
 * free), malloc the first when it takes the slot back, so a write after free into the first word is reported then.
 * A double free after the second word was overwritten puts the slot twice on the stack; the first pop clears both
 * words, and the second finds the first word cleared and reports: the slot is never handed out twice
 * (front/corrupted_free_list/double_free_after_mark_overwritten). Checking the second word as well cost pairs 3%
 * (session 21, 25 paired runs: 1.07 -> 1.04 of tcmalloc's time with one word). One mark, not two secrets: a
 * program that could read a cached slot would read both words anyway, and free writes one register twice. The
 * cache's stacks live in the heap struct, not in the slots, so nothing a program writes into a freed slot can send
 * malloc elsewhere. */
static inline bool tc_slot_marked(void **t)
{
	return (uintptr_t)t[0] == front_mark(t);
}
HIDDEN extern uint8_t osm_front_tc_max[FRONT_CLASSES]; /* set at start-up (front.c, global_init) */
/* The NULL entry below class cls's stack (its tc_sp when the stack is empty), and how many slots the stack holds. */
static inline void ***tc_base(struct front_heap *h, size_t cls)
{
	return &stacks_of(h)->tc[cls][TC_ROW - 1 - osm_front_tc_max[cls]];
}
static inline size_t tc_count(struct front_heap *h, size_t cls) { return (size_t)(h->tc_sp[cls] - tc_base(h, cls)); }

HIDDEN void *osm_front_malloc_slow(size_t cls);
HIDDEN void osm_front_tc_overflow(struct front_heap *h, size_t cls, void **s);
HIDDEN _Noreturn void osm_front_corrupt(void *slot);
/* The same, for malloc's fast path: declared as returning, so that the report is a jump (a tail call), not a call
 * that makes the hit path set up a stack frame. It never returns. */
HIDDEN __attribute__((returns_nonnull)) void *osm_front_corrupt_jump(void *slot);
/* Checks the head link of this thread's current free list and the top of its cache, of every class it has had a
 * page of; aborts on a corrupted one. A large request runs it (core_malloc), as glibc's consolidation checks its
 * fast bins at one (tst-safe-linking). */
HIDDEN void osm_front_check_heads(void);
/* After a request the core served (neither lock held): the pool's pages idle a second go back (front.c,
 * pool_decay). A coarse clock read and a compare, but once a second. */
HIDDEN void osm_front_idle_tick(void);
/* Before a request of n bytes to the core, which may grow its heap (neither lock held): as many fully free front
 * segments kept past the first four as the request needs (n / 4 MiB + 1) go back, so that what the front's small
 * objects left does not stay resident under the heap's growth, and a round of small objects keeps the rest
 * (front.c, SEGS_HOLD). A load and a compare when there are none. */
HIDDEN void osm_front_release_spare(size_t n);
/* The decay's passes for a program whose requests no longer reach the core: every FRONT_TICK frees the caches
 * take (front.c, osm_front_tick; heap.c, osm_heap_idle_tick). */
#define FRONT_TICK 1024
HIDDEN void osm_front_tick(void);
HIDDEN void osm_heap_idle_tick(void);
HIDDEN void osm_heap_background_tick(void); /* the same from background.c's thread (front.c) */
HIDDEN bool osm_heap_idle_sweeping(void); /* the sweep of idle holes is under way (heap.c) */
/* The heap's one-thread rules with OSMEM_BACKGROUND's thread (heap.c, alone_check): the program's thread named
 * before that thread starts (0: no claim), that thread's once it runs, and a fork's child's (its lock's new id,
 * where the parent's claim still held; after osm_lock_fork_child). */
#ifdef OSMEM_DROPIN /* background.c's */
HIDDEN void osm_heap_alone_claim(int program_tid);
HIDDEN void osm_heap_alone_helper(int tid);
HIDDEN bool osm_heap_alone_fork_child(void);
#endif
HIDDEN void osm_front_free_slow(void *p, struct front_page *pg, const char *api);

/* malloc's fast path for n <= FRONT_MAX; NULL when the front cannot serve (off, thread exiting, no memory):
 * the caller then asks the core.
 * Cost on a hit, no lock, no atomic read-modify-write, no system call, about 25 instructions: TLS heap -> the
 * class's thread cache (its top, then the entry below it; the slot's first word compared with its mark) or else
 * its current page (pop its free list, the popped link checked to be a slot of the same page: a subtract, a
 * multiply, two compares); the slot's first two words cleared. */
static inline __attribute__((always_inline)) void *front_malloc_with(size_t n, bool slow)
{
	size_t cls = osm_front_class_of[(n + 15) >> 4];
	struct front_heap *h = osm_front_tl_heap;
	void **t = h->tc_top[cls];
	if (__builtin_expect(t != NULL, 1)) {
		void ***sp = h->tc_sp[cls];
		h->tc_top[cls] = sp[-1]; /* NULL below the stack's first entry */
		h->tc_sp[cls] = sp - 1;
		if (__builtin_expect(!tc_slot_marked(t), 0))
			return osm_front_corrupt_jump(t);
		slot_words(t, NULL);
		h->hits++;
		return t;
	}
	struct front_page *pg = h->cur[cls];
	void **s = pg->free;
	if (__builtin_expect(s == NULL, 0))
		return slow ? osm_front_malloc_slow(cls) : NULL;
	void *next = front_dec(s, (uintptr_t)s[0]);
	if (__builtin_expect(!front_is_slot(pg, (uintptr_t)next), 0) && next)
		return osm_front_corrupt_jump(s);
	pg->free = next;
	__builtin_prefetch(next, 1); /* the next pop reads and writes its line: a slot another core freed is a miss */
	pg->used++;
	slot_words(s, NULL); /* the link (it would show the secret to a program reading fresh memory) and the freed mark */
	h->hits++;
	return s;
}
static inline __attribute__((always_inline)) void *osm_front_malloc(size_t n) { return front_malloc_with(n, true); }
/* The fast path alone: NULL when the current page has no free slot (then the caller takes osm_front_malloc's
 * way, out of line, so that its own fast path saves no register). */
static inline __attribute__((always_inline)) void *osm_front_malloc_hit(size_t n) { return front_malloc_with(n, false); }

/* free's fast path for a pointer of the front's range (osm_front_in_range) or of a segment outside it
 * (osm_front_owns). Cost for a slot of a page this thread owns and allocates from: about 41 instructions with
 * free's range test (callgrind, session 32), no lock, no atomic read-modify-write, no system call: the page from
 * the address (mask, shift), the slot check (front_is_page_slot: a multiply, a compare), the mark written twice,
 * a push on the class's thread cache (a full one, found by its top's address, gives its older half back out of
 * line). Other threads' pages (one CAS), double frees and bad pointers: slow path. */
static inline void osm_front_free(void *p, const char *api)
{
	struct front_page *pg = front_page_of(p);
	void **s = p;
	struct front_heap *h = osm_front_tl_heap;
	uintptr_t m = front_mark(p);
	if (__builtin_expect(!front_is_page_slot(pg, (uintptr_t)p) || (uintptr_t)s[1] == m ||
			     __atomic_load_n(&pg->heap, __ATOMIC_RELAXED) != h, 0)) {
		osm_front_free_slow(p, pg, api);
		return;
	}
	size_t cls = pg->cls;
	void ***sp = h->tc_sp[cls];
	slot_words(s, (void *)m); /* tc_slot_marked */
	size_t f = ++h->frees;
	if (__builtin_expect(((uintptr_t)(sp + 1) & (sizeof stacks_of(h)->tc[0] - 1)) == 0, 0)) { /* row's end */
		osm_front_tc_overflow(h, cls, s);
		return;
	}
	sp[1] = s;
	h->tc_sp[cls] = sp + 1;
	h->tc_top[cls] = s;
	if (__builtin_expect((f & (FRONT_TICK - 1)) == 0, 0))
		osm_front_tick();
}

// ---- the medium cache (medium.c) ----

/* A size in [2048, MEDIUM_END_BLOCK) -> its bin (the bounds: four per power of two); a bin -> its lower bound.
 * A count of leading zeros and two shifts. */
static inline size_t medium_bin(size_t s)
{
	unsigned m = 63u - (unsigned)__builtin_clzll((unsigned long long)s);
	return (size_t)(m - 11) * 4 + ((s >> (m - 2)) & 3);
}
static inline size_t medium_size(size_t c) { return (size_t)(4 + (c & 3)) << ((c >> 2) + 9); }
/* A request rounded up to an eighth of its power of two (2304, 2560, ..., 65536: at most 12.5% more, about 6%
 * on average): its bin, and the size of the core's block for it unless the bin's misses repeat its size (medium.c,
 * osm_front_medium_refill), so that blocks of a bin come in two sizes and serve each other's requests. */
static inline size_t medium_round(size_t n)
{
	unsigned m = 63u - (unsigned)__builtin_clzll((unsigned long long)(n - 1));
	size_t step = (size_t)1 << (m - 3);
	return (n + step - 1) & ~(step - 1);
}

/* A block the core hands out for s bytes holds at most this much more: a remainder smaller than a header and a
 * granule is not split off (heap.c, split_blocks). */
#define MEDIUM_UNSPLIT (META_SIZE + 16)
/* Aligned medium requests are sized to tile the heap up to this alignment (a page): beyond it, the rounding would
 * cost more than the fragment it saves. */
#define MEDIUM_TILE_ALIGN ((size_t)4096)

/* The block size an aligned medium request asks the core for (osm_front_medium_memalign): n rounded as
 * medium_round rounds it (a request of FRONT_MAX or less as the smallest medium one), then, for an alignment up to
 * MEDIUM_TILE_ALIGN, up to a size whose block ends a header before a multiple of the alignment: blocks of such
 * sizes tile the heap, so that each one the core carves after another starts aligned, and a block given back keeps
 * its payload aligned for the next request of its bin. A page-aligned request costs up to a page more (tcmalloc
 * and jemalloc give it whole pages too). A block of this size may hold up to MEDIUM_UNSPLIT - 1 bytes more, so it
 * lies in the bin of the size or the one after (medium_aligned_bin_hi). */
static inline size_t medium_aligned_round(size_t a, size_t n)
{
	size_t r = medium_round(n > FRONT_MAX ? n : FRONT_MAX + 1);
	if (a > MEDIUM_TILE_ALIGN)
		return r;
	size_t t = ((r + META_SIZE + a - 1) & ~(a - 1)) - META_SIZE;
	return t + MEDIUM_UNSPLIT <= MEDIUM_END_BLOCK ? t : r;
}
/* The last bin a block the core gave for r bytes may lie in. */
static inline size_t medium_aligned_bin_hi(size_t r) { return medium_bin(r + MEDIUM_UNSPLIT - 1); }

/* The heap's range and whether it has gaps, as the cache reads them without the lock (the core stores them with
 * atomic stores). A pointer outside, or a heap with gaps, goes the core's way. */
static inline bool medium_in_heap(const void *p)
{
	const char *base = __atomic_load_n(&osm_heap.base, __ATOMIC_RELAXED);
	const char *end = __atomic_load_n(&osm_heap.end, __ATOMIC_RELAXED);
	/* in integers, and p below the top: p + MEDIUM_MIN_BLOCK wrapped for a pointer in the last 2 KiB below 2^64,
	 * which then read as inside, and free((void *)-16) read a header there (SIGSEGV; found by a review in session
	 * 51, death/free_at_top_of_address_space) */
	uintptr_t a = (uintptr_t)p;
	return !(a & 15) && base && a >= (uintptr_t)base + META_SIZE && a < UINTPTR_MAX - MEDIUM_MIN_BLOCK &&
	       a + MEDIUM_MIN_BLOCK <= (uintptr_t)end && !__atomic_load_n(&osm_heap.gaps, __ATOMIC_RELAXED);
}

/* A cached or cacheable block's links, without the lock: blocks tile the heap (no gaps here), so `next` is the
 * block's end, or NULL for the last block, which ends where the heap does; `prev` lies below. The core rewrites
 * them under its lock while the block sits in a cache (its neighbours split, merge, grow, shrink), so a check
 * that fails here is not yet a verdict: the caller asks the core, which checks again under the lock.
 * What it does not read is the previous block's header (does prev->next point back?): that header is another
 * cache line, most often last written by another thread, and the load was a quarter of medium free's time and a
 * tenth of medium malloc's in threads-8 (0.143 -> 0.130 s in a 15-run A/B, 0.114 -> 0.112 s in an 11-run one an
 * hour later: what a miss on another core's line costs varies with the host). Nothing here follows `prev`: a
 * block leaves the caches only through the core (osm_user_block, heap_links_ok), which checks both neighbours
 * before it uses a link, so a prev link the program overwrote is reported there
 * (`medium/header_prev_written_while_cached`). */
#if defined(__SANITIZE_THREAD__)
#define MEDIUM_NO_TSAN __attribute__((no_sanitize("thread"), noinline))
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MEDIUM_NO_TSAN __attribute__((no_sanitize("thread"), noinline))
#endif
#endif
#ifndef MEDIUM_NO_TSAN
#define MEDIUM_NO_TSAN
#endif
static inline MEDIUM_NO_TSAN bool medium_links_ok(const struct block_meta *b)
{
	const char *end = __atomic_load_n(&osm_heap.end, __ATOMIC_ACQUIRE);
	const char *base = __atomic_load_n(&osm_heap.base, __ATOMIC_RELAXED);
	const struct block_meta *n = *(struct block_meta *const volatile *)&b->next;
	const struct block_meta *p = *(struct block_meta *const volatile *)&b->prev;
	/* a `next` must also lie below the heap's end: the last block's `next` overwritten with its own end passed,
	 * and realloc's look at the neighbour (medium_next_free_holds) read a header past the heap (session 42's
	 * review: SIGSEGV where the core reports a corrupted header; medium/last_block_next_written_then_realloc) */
	if (n ? (const char *)n != block_end(b) || (const char *)n >= end : block_end(b) != end)
		return false;
	if (!p)
		return (const char *)b == base;
	return p < b && (const char *)p >= base && !((uintptr_t)p & 15);
}

/* The medium cache's pop: b's `next`, the header's last word (the payload's word -1, on the payload's first line
 * unless the payload starts a line), agrees with the size the cache keeps beside the pointer: the block after,
 * or the heap's end. Read without the lock, as medium_links_ok reads it (a thread may append a block after b
 * meanwhile: NULL becomes the block end). */
static inline MEDIUM_NO_TSAN bool medium_next_ok(const struct block_meta *b, size_t size)
{
	const char *n = (const char *)*(struct block_meta *const volatile *)&b->next;
	const char *end = (const char *)b + META_SIZE + size;
	return n == end || (!n && end == __atomic_load_n(&osm_heap.end, __ATOMIC_ACQUIRE));
}

/* Whether the block after b is free in the core and the two hold s bytes: realloc's growth of a medium block
 * then goes the core's way, which takes the neighbour in (docs/CLASSIC.md's rule 8) instead of a copy. Read without
 * the lock, as medium_links_ok reads: a hint, which the core decides again under its lock (the neighbour may have
 * been taken or split meanwhile; then the core moves the block). A block in a medium cache is allocated to the
 * core, so only blocks the caches gave back, and what splits left, count. */
static inline MEDIUM_NO_TSAN bool medium_next_free_holds(const struct block_meta *b, size_t s)
{
	const struct block_meta *n = *(struct block_meta *const volatile *)&b->next;
	if ((const char *)n != block_end(b) || /* the last block (NULL), or links the core checks */
	    (const char *)n + META_SIZE > __atomic_load_n(&osm_heap.end, __ATOMIC_ACQUIRE))
		return false;
	int status = *(const volatile int *)&n->status;
	size_t size = *(const volatile size_t *)&n->size;
	return status == STATUS_FREE && size + META_SIZE >= s - b->size; /* s > b->size: a growth */
}

/* An allocated heap block whose header osmem wrote: status and keyed cookie (covers the size). */
static inline bool medium_header_ok(const struct block_meta *b)
{
	return b->status == STATUS_ALLOC && block_tag(b) == block_cookie(b);
}

HIDDEN void *osm_front_medium_refill(struct front_heap *began, size_t cls, size_t n);
/* the slow paths of a use of the bins begun with mc_enter, which they end (mc_leave) */
HIDDEN bool osm_front_medium_free_slow(struct block_meta *b, size_t cls, const char *api, struct front_heap *began);
HIDDEN _Noreturn void osm_front_medium_bad(void *p, const char *api, const char *what);
HIDDEN void osm_front_medium_recheck(struct block_meta *b);
HIDDEN void osm_front_medium_steal(struct front_heap *h); /* all of an idle thread's bins to the core (front lock) */
/* The core is out of memory: the transfer cache and this thread's medium cache go back to it, and the range's
 * released segments give their address space back. True when any of that happened and the request has not been
 * retried yet (the caller tries once more, then calls osm_front_reclaim_end). */
HIDDEN bool osm_front_reclaim(void);
HIDDEN void osm_front_reclaim_end(void); /* after the one retry that osm_front_reclaim allowed */

HIDDEN void *osm_front_medium_pick(struct front_heap *h, size_t c, size_t n);
/* An aligned request of 0 < *n <= MEDIUM_MAX, alignment a (a power of two above 16; above FRONT_MAX when *n is
 * at most FRONT_MAX): a cached block so aligned, else NULL with *n rounded for the core's memalign when the
 * thread has a cache (medium.c). */
HIDDEN void *osm_front_medium_memalign(size_t a, size_t *n);

/* The owner's side of giving an idle thread's medium cache back (front.c, steal_idle). Before it reads or
 * writes its bins a thread counts itself in h->mc_busy, then reads h->mc_steal: set, a pass of another thread is
 * giving the bins back, and the thread goes to the core as if it had no cache (false). The pass sets mc_steal,
 * makes every thread of the process run a full barrier (osm_os_membarrier) and then reads mc_busy: so either
 * the owner's count was visible to it (it leaves the bins alone) or the owner's read of mc_steal comes after the
 * barrier and finds it set. The owner's side needs no fence and no atomic read-modify-write (liburcu's and
 * folly's asymmetric fences): two stores and a load of the heap's line, and a compare, since the empty heap (no
 * cache, shared by the threads that have none) is never counted in. Its mc_steal is never set. */
HIDDEN extern struct front_heap osm_front_empty_heap;
static inline __attribute__((always_inline)) bool mc_enter(struct front_heap *h)
{
	if (h == &osm_front_empty_heap)
		return true;
	__atomic_store_n(&h->mc_busy, (uint8_t)(__atomic_load_n(&h->mc_busy, __ATOMIC_RELAXED) + 1), __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST); /* the store before the load, for the compiler; the barrier does the rest */
	if (__builtin_expect(__atomic_load_n(&h->mc_steal, __ATOMIC_ACQUIRE) != 0, 0)) {
		__atomic_store_n(&h->mc_busy, (uint8_t)(h->mc_busy - 1), __ATOMIC_RELEASE);
		return false;
	}
	return true;
}
/* The end of a use of h's bins begun with mc_enter(h). A use begun on the empty heap counted itself in only if it
 * reached medium.c's cache_heap, which counts it into the thread's heap (one it made, or one a signal handler made
 * meanwhile); it leaves that heap. Whether it did: the heap's count, 1 or 0, since a handler's uses within this one
 * have ended (and no use further down this thread's stack can be counted in a heap that did not exist when this one
 * began). Before, it counted out of whatever heap the thread had by then: a handler that made the heap within a
 * first medium request took the count from 0 to 255, and the passes then gave the bins back while the owner used
 * them (protect_signal/handler_makes_heap_within_first_medium_malloc). */
static inline __attribute__((always_inline)) void mc_leave(struct front_heap *h)
{
	if (__builtin_expect(h == &osm_front_empty_heap, 0)) {
		h = osm_front_tl_heap;
		if (h == &osm_front_empty_heap || __atomic_load_n(&h->mc_busy, __ATOMIC_RELAXED) == 0)
			return;
	}
	__atomic_store_n(&h->mc_busy, (uint8_t)(h->mc_busy - 1), __ATOMIC_RELEASE);
}
/* The same where h is known to be a thread's own heap (the fast paths, past a bin that holds a block or has room:
 * the empty heap's hold none and have none). */
static inline __attribute__((always_inline)) void mc_leave_own(struct front_heap *h)
{
	__atomic_store_n(&h->mc_busy, (uint8_t)(h->mc_busy - 1), __ATOMIC_RELEASE);
}

/* The top block of h's bin c, which holds k blocks (k > 0, the top one large enough): popped, its freed mark and
 * `next` checked (osm_front_medium_malloc's hit, and medium.c's once it has put the block it chose on top). */
static inline __attribute__((always_inline)) void *medium_pop(struct front_heap *h, size_t c, size_t k)
{
	struct block_meta *b = stacks_of(h)->mc[c][k - 1];
	size_t size = stacks_of(h)->mc_size[c][k - 1];
	void **q = payload(b);
	if (__builtin_expect(q[1] != (void *)medium_mark(q) || !medium_next_ok(b, size), 0))
		osm_front_medium_recheck(b); /* under the core's lock: aborts on a header or mark overwritten */
	h->mc_count[c] = (uint8_t)(k - 1);
	if (k - 1 < h->mc_low[c])
		h->mc_low[c] = (uint8_t)(k - 1);
	q[1] = NULL;
	h->mc_bytes -= size;
	h->mc_hits++;
	return q;
}

/* malloc's fast path for FRONT_MAX < n <= MEDIUM_MAX; NULL: ask the core. Cost on a hit at the top of the bin
 * (the block this size freed last): about 25 instructions, no lock, no atomic read-modify-write, no system call:
 * bin, pop, the freed mark checked and cleared (the payload's second word, on the line the program writes
 * first), the header's last word (`next`, the word before the payload) checked against the size the cache keeps
 * beside the pointer, the bin's low-water mark kept. A block whose mark or `next` the program overwrote while it
 * was cached is reported here (glibc's tst-malloc-backtrace writes that word after free and wants the abort at
 * the next malloc). The rest of the header is not read: nothing here acts on it, and a size, status, cookie or
 * `prev` overwritten while the block was cached is reported, with the pointer, where osmem next reads it (the
 * block's free, realloc or malloc_usable_size, the cache giving it back to the core, os_heap_check), as for a
 * block in use, whose header a program can overwrite at any time. Checking the whole header here cost threads-8
 * 4.3% against this (21 interleaved runs; 6-8% against reading no header at all, session 25): the header's first
 * word lies on the line before the payload's whenever the payload starts in the first half of a line, and that
 * line is cold by the time the block is asked for again; `next` is off the payload's line only when the payload
 * starts a line. A top block too small: the first that fits below it (a
 * scan of their sizes); a miss goes to medium.c (osm_front_medium_refill: the transfer cache, else the core's
 * lock for this block). */
static inline __attribute__((always_inline)) void *osm_front_medium_malloc(size_t n)
{
	size_t c = medium_bin(medium_round(n));
	n = (n + 15) & ~(size_t)15; /* what a block must hold: its bin is the rounded size's, the fit is exact */
	struct front_heap *h = osm_front_tl_heap;
	if (__builtin_expect(!mc_enter(h), 0))
		return NULL; /* another thread is giving this idle cache back: the core serves */
	size_t k = h->mc_count[c];
	if (__builtin_expect(k == 0 || stacks_of(h)->mc_size[c][k - 1] < n, 0))
		return osm_front_medium_pick(h, c, n); /* which ends the use: a tail call */
	void *p = medium_pop(h, c, k);
	mc_leave_own(h);
	return p;
}


/* p's block when it is an allocated heap block of lo <= size < hi whose header and links hold, read without the
 * lock; else NULL (the core's way decides, and reports what is wrong). The size first: the cheapest test. Always
 * inlined: medium free's fast path, where an out-of-line copy was a call more. */
static inline __attribute__((always_inline)) struct block_meta *
heap_block_unlocked(void *p, size_t lo, size_t hi)
{
	if (!medium_in_heap(p))
		return NULL;
	struct block_meta *b = block_of(p);
	if (b->size - lo >= hi - lo || !medium_header_ok(b) || !medium_links_ok(b))
		return NULL;
	return b;
}

/* The same for a block of a cached size: free's and realloc's fast paths. */
static inline struct block_meta *medium_block(void *p)
{
	return heap_block_unlocked(p, MEDIUM_MIN_BLOCK, MEDIUM_END_BLOCK);
}

/* p's block when it is a medium block the program holds (medium_block, and no freed mark: not in a cache); else
 * NULL, for the core's way to decide. realloc's and malloc_usable_size's fast paths. */
static inline struct block_meta *medium_user_block(void *p)
{
	struct block_meta *b = medium_block(p);
	return b && ((void **)p)[1] != (void *)medium_mark(p) ? b : NULL;
}

/* free's fast path for a pointer the front does not own: true when the medium cache took it. A pointer it does
 * not recognise (outside the heap, not an allocated block of a medium size, a header that fails) goes the core's
 * way, which reports it; a block that carries the freed mark is a double free. Cost: about 25 instructions, no
 * lock, no atomic read-modify-write, no system call. */
static inline bool osm_front_medium_free(void *p, const char *api)
{
	struct block_meta *b = medium_block(p);
	if (!b)
		return false;
	size_t s = b->size, c = medium_bin(s);
	struct front_heap *h = osm_front_tl_heap;
	if (__builtin_expect(!mc_enter(h), 0))
		return false; /* another thread is giving this idle cache back: the core frees b */
	size_t k = h->mc_count[c];
	/* full, or no cache (empty_heap: limits 0) */
	if (__builtin_expect(k >= h->mc_limit[c] || h->mc_bytes + s > h->mc_budget, 0))
		return osm_front_medium_free_slow(b, c, api, h); /* which ends the use: a tail call */
	void **q = p;
	if (__builtin_expect(q[1] == (void *)medium_mark(q), 0))
		osm_front_medium_bad(p, api, "double free");
	q[1] = (void *)medium_mark(q);
	stacks_of(h)->mc[c][k] = b;
	stacks_of(h)->mc_size[c][k] = (uint32_t)s;
	h->mc_count[c] = (uint8_t)(k + 1);
	h->mc_bytes += s;
	bool tick = (++h->mc_frees & (FRONT_TICK - 1)) == 0;
	mc_leave_own(h);
	if (__builtin_expect(tick, 0))
		osm_front_tick();
	return true;
}

/* Whether core block b (checked by osm_user_block) sits in a thread's medium cache: its freed mark. A realloc,
 * malloc_usable_size or free that reaches the core with such a block is given a freed pointer. */
static inline bool osm_front_medium_cached(struct block_meta *b)
{
	return osm_front_dfkey && b->status == STATUS_ALLOC && b->size - MEDIUM_MIN_BLOCK < MEDIUM_END_BLOCK - MEDIUM_MIN_BLOCK &&
	       ((void **)payload(b))[1] == (void *)medium_mark(payload(b));
}

/* The slot size of a front pointer, after the same checks as free (aborts on a bad or freed pointer). */
HIDDEN size_t osm_front_usable(void *p, const char *api);
/* A front slot aligned to `alignment` (a power of two up to FRONT_MAX) for n bytes, or NULL (ask the core). */
HIDDEN void *osm_front_memalign(size_t alignment, size_t n);
/* Whether a front slot of usable size u stays in place for n bytes (the same size class). */
HIDDEN bool osm_front_keeps(size_t u, size_t n);
/* os_realloc on a front slot: docs/CLASSIC.md's rules 2 and 3 (a free slot: NULL, nothing changes), then realloc's. A
 * slot that must move: NULL with *move the bytes to copy, for the API to move it (os_malloc, the copy, the slot
 * freed with osm_front_free); otherwise *move is 0. */
HIDDEN void *osm_front_os_realloc(void *p, size_t n, size_t *move);
/* Gives cached free pages back (malloc_trim); true when anything went back. */
HIDDEN bool osm_front_trim(void);
/* Gives this thread's medium cache back to the core (malloc_trim, before the core trims). */
HIDDEN void osm_front_medium_trim(void);
struct front_stats {
	size_t hits, misses, frees, segment_bytes, page_bytes, in_use, free_bytes, threads;
	size_t mc_hits, mc_frees, mc_refills, mc_flushed, mc_bytes, mc_blocks; /* the medium caches */
	size_t mc_scavenged; /* of mc_flushed: given back after sitting unused (medium_scavenge) */
	size_t carved_bytes; /* of segment_bytes: segments carved from the heap's free blocks */
	size_t tc_slots, tc_bytes; /* the thread caches of small slots */
	size_t pool_discarded; /* bytes of pool pages given back after sitting idle (pool_decay) */
};
HIDDEN void osm_front_stats(struct front_stats *fs);

/* The front layer is two files: front.c (small slots, pages, segments, the thread heaps, the front lock) and
 * medium.c (the medium caches and the transfer cache). What each asks of the other: */
HIDDEN extern struct front_heap osm_front_empty_heap; /* the heap of a thread that has none: every count 0 */
HIDDEN void osm_front_lock(void);          /* the front lock (no-ops inside a traced request, which holds both) */
HIDDEN void osm_front_unlock(void);
HIDDEN void osm_front_core_lock(void);     /* the core's lock, taken from the front (front lock held or not) */
HIDDEN void osm_front_core_unlock(void);
HIDDEN struct front_heap *osm_front_heap_init(void); /* this thread's heap, made if need be; NULL: it has none */
HIDDEN bool osm_front_lock_busy(void);
HIDDEN bool osm_front_thread_active(void); /* this thread has a heap of its own (not traced, not exiting) */
HIDDEN size_t osm_front_threads(void);     /* the threads that have a heap now; front lock held */
HIDDEN bool osm_front_range_release(void); /* ENOMEM: released segments of the range unmapped; whether any were */
HIDDEN void osm_front_medium_flush_all(struct front_heap *h); /* every cached block of h back to the core */
HIDDEN void osm_front_medium_stats(struct front_stats *fs);   /* adds the transfer cache's; front lock held */
HIDDEN void osm_front_xfer_decay(void); /* pool_decay's pass, once a second: the transfer cache's idle blocks back */
/* fork: called from osmem.c's handlers, after stdio's lock and before the heap lock (order: front, heap). */
HIDDEN void osm_front_fork_prepare(void);
HIDDEN void osm_front_fork_parent(void);
HIDDEN void osm_front_fork_child(void);
/* The background thread (background.c, OSMEM_BACKGROUND=1): started from the constructor, stopped at exit, gone in
 * a fork's child; its wake runs osm_front_background_tick (front.c). */
HIDDEN void osm_background_start(const char *setting);
HIDDEN extern bool osm_background_stop;
static inline bool osm_background_stopping(void)
{
	return __atomic_load_n(&osm_background_stop, __ATOMIC_ACQUIRE);
}
HIDDEN void osm_background_fork_child(void);
HIDDEN bool osm_background_running(size_t *wakes);
HIDDEN void osm_front_background_tick(void);
/* Whether the program runs one thread: glibc's flag says so, or OSMEM_BACKGROUND's thread is the other one and at
 * most one heap lives (that thread holds none). background.c sets osm_front_alone_bg before the thread starts, a
 * second live heap clears it as it is made, and the thread's wake sets it again once one heap is left (front.c).
 * The medium caches size their bins by it (medium.c: medium_depth, medium_scavenge): with the thread counted as a
 * program's, patterns' `batch` took 1.25 of its time (10 pairs, p 0.01): 16 blocks a bin, and a scavenge every
 * 10 ms. Cost: a load of glibc's flag; with threads, one more. Slow paths only. */
HIDDEN extern bool osm_front_alone_bg;
static inline bool osm_front_program_alone(void)
{
	return osm_os_single_threaded() || __atomic_load_n(&osm_front_alone_bg, __ATOMIC_RELAXED);
}


// ------------------------------------------------------------------
// The strict layer (strict.c): OSMEM_CHECK=strict, a debugging mode between the API and the core
// ------------------------------------------------------------------

/* -1 until the first call of the malloc family reads OSMEM_CHECK, then 0 (off) or 1 (strict). The API's entry
 * points test it first with osm_strict_first(): one load and a branch that is not taken once the setting is known
 * to be off; the first call of all takes the other way once, to read it. malloc's, free's, calloc's,
 * malloc_usable_size's and operator new's and delete's hit paths do not test it at all: the front is off in strict
 * mode, so their hits miss and their slow paths test it. docs/STRICT.md describes every check, its report and its
 * cost. */
HIDDEN extern int osm_strict;
HIDDEN bool osm_strict_init(void);
static inline bool osm_strict_on(void)
{
	int s = __atomic_load_n(&osm_strict, __ATOMIC_RELAXED);
	return s > 0 || (s < 0 && osm_strict_init());
}
static inline bool osm_strict_first(void) { return __builtin_expect(osm_strict != 0, 0) && osm_strict_on(); }
/* In strict mode every request comes here (the front layer is never used); each takes the heap lock. `api`
 * names the call in reports. alignment: 0 or up to 16 for malloc's, else a power of two. */
HIDDEN void *osm_strict_alloc(size_t n, size_t alignment, bool zero, const char *api);
HIDDEN void osm_strict_free(void *p, const char *api);
HIDDEN void *osm_strict_realloc(void *p, size_t n);
/* The size p was asked for, after free's checks (a freed or bad pointer is reported for api). */
HIDDEN size_t osm_strict_usable(void *p, const char *api);
/* operator delete(p, n): n must be the size new was given, exactly. */
HIDDEN void osm_strict_free_sized(void *p, size_t n, const char *api);
/* Empties the quarantine (each block's fill pattern verified), as malloc_trim asks. */
HIDDEN void osm_strict_flush(const char *api);

/* malloc(0)'s addresses (strict.c): strict mode's, and the default profile's (not the classic profile's, whose
 * malloc(0) is a block of its own). Each is a unique, 16-aligned address in a 4 MiB PROT_NONE reservation, so a
 * read or write through it faults at once; a bit per address says it is live, so a second free is reported.
 * 229,376 live addresses at most; past that (or if the reservation cannot be had) osm_zero_alloc returns NULL and
 * the caller serves a block instead. None takes a lock (atomics on the reservation's bitmap, strict.c);
 * osm_zero_owns is a load and a compare. */
#define ZERO_STEP  ((size_t)16)
#define ZERO_SLOTS ((size_t)1 << 18)
HIDDEN extern char *osm_zero_zone;
static inline bool osm_zero_owns(const void *p)
{
	char *z = __atomic_load_n(&osm_zero_zone, __ATOMIC_ACQUIRE);
	return z && (uintptr_t)p - (uintptr_t)z < ZERO_SLOTS * ZERO_STEP;
}
HIDDEN void *osm_zero_alloc(void);
/* p must be a live address of the reservation (else `invalid pointer` or `double free` for api); `release`
 * frees it. */
HIDDEN void osm_zero_check(void *p, const char *api, bool release);
/* p in the reservation: live (true) or freed (false); an address never handed out is reported for api. */
HIDDEN bool osm_zero_live(const void *p, const char *api);
/* os_stats: adds the malloc(0)s served and their frees to *allocs and *frees. */
HIDDEN void osm_zero_counts(size_t *allocs, size_t *frees);

#endif /* OSMEM_DROPIN */

#endif
