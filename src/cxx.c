/* cxx: C++'s operator new and delete, every form libstdc++ exports, for libosmem-malloc.so only (as tcmalloc
 * and mimalloc export them). Written in C under their Itanium-mangled names (asm labels), so C++ programs get
 * osmem's fast paths directly, not through libstdc++'s operator new -> malloc.
 *
 * What it owns. The 20 replaceable forms: new and new[] (throwing, nothrow, aligned, aligned nothrow), delete and
 * delete[] (plain, nothrow, sized, aligned, sized aligned, aligned nothrow). Allocation and plain delete are
 * malloc and free: the front's fast path inline, the core under the lock otherwise (traced as `malloc`,
 * `memalign` and `free`, so a C++ program's trace replays). What C++ adds:
 *  - Failure. A throwing new calls the installed new_handler in a loop and throws std::bad_alloc when there is
 *    none. C cannot throw or catch, so the C++ runtime does both: std::get_new_handler and
 *    std::__throw_bad_alloc are weak references (resolved at load; NULL in a C program), or looked up in a
 *    libstdc++.so.6 / libc++.so.1 that was loaded later or privately (RTLD_LOCAL, as Python loads extensions).
 *    A nothrow new returns NULL at once when no handler is installed; with one, it hands the request to the
 *    runtime's own nothrow new, which calls our throwing new inside a try block (the standard's definition).
 *    A handler's exception passes through these C frames: they are built with -fexceptions.
 *  - Checked deletes (hardened_malloc's sized-deallocation checks). A sized delete whose size does not belong to
 *    the block, or an aligned delete of a pointer not aligned to the given alignment, is reported
 *    (`osmem: operator delete(): size mismatch 0x...`, `... alignment mismatch 0x...`) and aborts, before
 *    anything changes. "Belongs": a front slot must be the slot new would have chosen for that size (and
 *    alignment); a core block must hold the size and be less than one split's worth larger (a header and a
 *    granule: smaller rests stay in the block), or less than a page larger for an aligned mapping (those end at
 *    a page boundary), or, with threads, up to twice as large for a mapping below 32 MiB (a kept mapping taken
 *    whole: heap.c, kept_whole). A bad pointer or a double free is reported as such first.
 *
 * What it must never do: call the new_handler or the C++ runtime with the heap lock or the front lock held (a
 * handler may allocate, free or throw), or throw through a frame that holds a lock. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

#define EXPORT __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define API "operator delete"
#define MALLOC_ALIGN 16 /* malloc's alignment (__STDCPP_DEFAULT_NEW_ALIGNMENT__): new serves it without alignment */

static inline bool is_pow2(size_t a) { return a && !(a & (a - 1)); }

// ------------------------------------------------------------------
// The C++ runtime, reached from C
// ------------------------------------------------------------------

typedef void (*new_handler_fn)(void);
/* Weak: resolved when the library is loaded if a C++ runtime is loaded with it, else NULL. */
extern new_handler_fn rt_get_new_handler(void) __asm__("_ZSt15get_new_handlerv") __attribute__((weak));
extern void rt_throw_bad_alloc(void) __asm__("_ZSt17__throw_bad_allocv") __attribute__((weak, noreturn));

/* A symbol of the C++ runtime, wherever it was loaded (also privately, with RTLD_LOCAL): RTLD_NOLOAD only finds
 * a library that is already there, and dlsym on its handle finds that library's own definition. Failure paths
 * only: dlopen takes the loader's lock and may allocate (no lock of ours is held here). */
static void *runtime_sym(const char *name)
{
	static const char *const libs[] = { "libstdc++.so.6", "libc++.so.1" };
	for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
		void *h = dlopen(libs[i], RTLD_LAZY | RTLD_NOLOAD);
		if (!h)
			continue;
		void *s = dlsym(h, name);
		dlclose(h); /* drops the reference RTLD_NOLOAD took; the library stays loaded for its real user */
		if (s)
			return s;
	}
	return NULL;
}

static new_handler_fn current_new_handler(void)
{
	new_handler_fn (*get)(void) = rt_get_new_handler;
	if (!get)
		get = (new_handler_fn (*)(void))runtime_sym("_ZSt15get_new_handlerv");
	return get ? get() : NULL;
}

static _Noreturn void throw_bad_alloc(void)
{
	void (*thr)(void) = rt_throw_bad_alloc;
	if (!thr)
		thr = (void (*)(void))runtime_sym("_ZSt17__throw_bad_allocv");
	if (thr)
		thr();
	osm_os_write_err("osmem: operator new(): out of memory, and no C++ runtime to throw std::bad_alloc\n");
	abort();
}

// ------------------------------------------------------------------
// Allocation
// ------------------------------------------------------------------

/* One attempt: the front (its fast path when it has a slot), else the core under the lock. a is 0 or a power of
 * two; 0 and up to 16 are malloc's alignment. */
static void *try_alloc(size_t n, size_t a)
{
	size_t asked = n; /* the out-of-memory retry asks again for this: n may be rounded below (medium_aligned_round) */
	if (n > MAX_REQUEST || a > MAX_REQUEST - n) {
		errno = ENOMEM;
		return NULL;
	}
	if (osm_strict_first()) /* OSMEM_CHECK=strict (strict.c) */
		return osm_strict_alloc(n, a, false, "operator new");
	if (n <= FRONT_MAX && a <= FRONT_MAX) {
		void *p = a <= MALLOC_ALIGN ? osm_front_malloc(n) : osm_front_memalign(a, n);
		if (p)
			return p;
	} else if (n <= MEDIUM_REQ_MAX && a <= MALLOC_ALIGN) {
		void *p = osm_front_medium_malloc(n);
		if (p)
			return p;
	} else if (n - 1 < MEDIUM_MAX) { /* aligned (up to FRONT_MAX: beyond FRONT_MAX): a cached block so aligned */
		void *p = osm_front_medium_memalign(a, &n);
		if (p)
			return p;
	}
	/* a core that fails on one way and succeeds on the next (the break refused, then a mapping) leaves ENOMEM
	 * behind: a new that succeeds keeps the caller's errno, as malloc does (cxx/new_keeps_errno_after_fallback) */
	int saved = errno;
	osm_front_release_spare(n);
	osm_lock();
	osm_set_op("operator new"); /* the name the core's reports give */
	struct block_meta *b;
	if (a <= MALLOC_ALIGN) {
		if (TRACING)
			osm_trace_event("malloc %z t=%t", n);
		osm_note_request(n);
		b = osm_malloc(n ? n : 1, osm_heap.policy.mmap_threshold);
	} else {
		if (TRACING)
			osm_trace_event("memalign %z %z t=%t", a, n);
		osm_note_request(n);
		b = osm_memalign(a, n ? n : 1);
	}
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	osm_unlock();
	/* out of memory: the medium caches and the released segments go back, then once more */
	if (!b && osm_front_reclaim()) {
		errno = saved;
		void *r = try_alloc(asked, a); /* not n, rounded already: rounded twice, its sized delete failed */
		osm_front_reclaim_end();
		return r;
	}
	if (!b) {
		errno = ENOMEM;
		return NULL;
	}
	errno = saved;
	return payload(b);
}

/* The standard's nothrow new is "the throwing new, and NULL if it throws": only C++ can catch, so the runtime's
 * own nothrow new (`name`) does it. It calls the throwing form that the process resolves (ours), which runs the
 * handler loop below and throws std::bad_alloc when the handler gives up; the runtime catches it. */
static void *nothrow_by_runtime(const char *name, size_t n, bool aligned, size_t a)
{
	static const char tag; /* the std::nothrow_t argument: an empty object, never read */
	void *f = runtime_sym(name);
	if (!f)
		return NULL;
	if (aligned)
		return ((void *(*)(size_t, size_t, const void *))f)(n, a, &tag);
	return ((void *(*)(size_t, const void *))f)(n, &tag);
}

/* What every form does when its first attempt failed (or could not be made): [new.delete.single] -
 * try again after each call of the installed new_handler; with none, throw std::bad_alloc (nothrow: NULL). */
__attribute__((noinline)) static void *new_slow(size_t n, bool aligned, size_t a, const char *nothrow_name)
{
	if (aligned && !is_pow2(a)) { /* not a valid alignment: libstdc++ throws bad_alloc at once, and so do we */
		if (nothrow_name)
			return NULL;
		throw_bad_alloc();
	}
	for (;;) {
		void *p = try_alloc(n, aligned ? a : 0);
		if (p)
			return p;
		new_handler_fn h = current_new_handler();
		if (!h) {
			if (nothrow_name)
				return NULL;
			throw_bad_alloc();
		}
		if (nothrow_name)
			return nothrow_by_runtime(nothrow_name, n, aligned, a);
		h(); /* may free memory, install another handler, throw, or terminate */
	}
}

/* The fast path of every form: malloc's. Cost when the thread's cache or current page of the size class has a free
 * slot: about 25 instructions, no lock, no atomic read-modify-write, no system call, no stack frame
 * (osm_front_malloc_hit, internal.h); strict mode has no front (its hit always misses). Anything else: new_slow,
 * out of line, whose first attempt (try_alloc) asks strict mode, then the front's slow path, then the core (a call
 * of osm_front_malloc from here with the frame it needed was 8 instructions more per new). */
static inline void *new_fast(size_t n, const char *nothrow_name)
{
	if (LIKELY(n - 1 < FRONT_MAX)) { /* 0 wraps round: new_slow */
		void *p = osm_front_malloc_hit(n);
		if (LIKELY(p != NULL))
			return p;
	}
	return new_slow(n, false, 0, nothrow_name);
}

/* Aligned forms: alignments up to 16 are malloc's; up to 2 KiB (with n up to 2 KiB) a front slot of a class the
 * alignment divides (one call into front.c, then malloc's fast path); larger: the core's memalign under the
 * lock. */
static inline void *new_aligned_fast(size_t n, size_t a, const char *nothrow_name)
{
	if (osm_strict_first())
		return new_slow(n, true, a, nothrow_name);
	if (LIKELY(is_pow2(a) && a <= FRONT_MAX && n <= FRONT_MAX)) {
		void *p = a <= MALLOC_ALIGN ? osm_front_malloc(n) : osm_front_memalign(a, n);
		if (LIKELY(p != NULL))
			return p;
	}
	return new_slow(n, true, a, nothrow_name);
}

#define NEW(name, mangled, nothrow_name) \
	EXPORT void *name(size_t n) __asm__(mangled); \
	void *name(size_t n) { return new_fast(n, nothrow_name); }
#define NEW_NOTHROW(name, mangled) \
	EXPORT void *name(size_t n, const void *nt) __asm__(mangled); \
	void *name(size_t n, const void *nt) { (void)nt; return new_fast(n, mangled); }
#define NEW_ALIGNED(name, mangled) \
	EXPORT void *name(size_t n, size_t a) __asm__(mangled); \
	void *name(size_t n, size_t a) { return new_aligned_fast(n, a, NULL); }
#define NEW_ALIGNED_NOTHROW(name, mangled) \
	EXPORT void *name(size_t n, size_t a, const void *nt) __asm__(mangled); \
	void *name(size_t n, size_t a, const void *nt) { (void)nt; return new_aligned_fast(n, a, mangled); }

/* operator new(size_t), new[](size_t): malloc's fast path (above); on failure the handler loop, then bad_alloc. */
NEW(cxx_new, "_Znwm", NULL)
NEW(cxx_new_array, "_Znam", NULL)
/* operator new(size_t, nothrow_t), new[]: the same fast path; NULL when it fails and no handler is installed. */
NEW_NOTHROW(cxx_new_nothrow, "_ZnwmRKSt9nothrow_t")
NEW_NOTHROW(cxx_new_array_nothrow, "_ZnamRKSt9nothrow_t")
/* operator new(size_t, align_val_t), new[], and their nothrow forms: new_aligned_fast's costs. */
NEW_ALIGNED(cxx_new_aligned, "_ZnwmSt11align_val_t")
NEW_ALIGNED(cxx_new_array_aligned, "_ZnamSt11align_val_t")
NEW_ALIGNED_NOTHROW(cxx_new_aligned_nothrow, "_ZnwmSt11align_val_tRKSt9nothrow_t")
NEW_ALIGNED_NOTHROW(cxx_new_array_aligned_nothrow, "_ZnamSt11align_val_tRKSt9nothrow_t")

// ------------------------------------------------------------------
// Deallocation
// ------------------------------------------------------------------

/* A delete that does not match its block. A bad pointer or a double free is what the report names, if that is
 * what p is (the same checks as free); else `what`. Aborts. */
__attribute__((noinline)) static _Noreturn void bad_delete(void *p, const char *what)
{
	if (osm_strict_first()) {
		osm_strict_usable(p, API); /* the strict layer's checks (bad pointer, double free, canaries) */
	} else if (osm_front_owns(p)) {
		osm_front_usable(p, API);
	} else {
		osm_lock(); /* held until the abort: nothing may change the heap under the report */
		/* a block in a thread's medium cache is allocated to the core, and freed: a second sized delete with
		 * another size is that, not a size mismatch (session 58's review; free says so too) */
		if (osm_front_medium_cached(osm_user_block(p, API, false)))
			osm_os_fatal_pointer(API, "double free", p);
	}
	osm_os_fatal_pointer(API, what, p);
}

/* An aligned medium request rounded for the medium caches (try_alloc, medium_aligned_round) that the core then
 * mapped (M_MMAP_THRESHOLD at 64 KiB or less, or no heap): the mapping holds the rounded size and up to a page.
 * Out of the hot text: only programs that set the threshold that low reach it. */
static __attribute__((noinline)) bool mapped_rounded_fits(const struct block_meta *b, size_t n, size_t a)
{
	size_t t = medium_aligned_round(a, n);
	return t <= b->size && b->size - t < osm_os_page_size();
}

/* A heap block of PAGE_ROUND_MIN or more fills whole pages (heap.c, page_round): up to a page more than n. */
static __attribute__((noinline)) bool heap_rounded_fits(const struct block_meta *b, size_t n)
{
	return b->status != STATUS_MAPPED && !osm_heap.classic && n <= b->size &&
	       b->size - n < osm_os_page_size() + META_SIZE + osm_heap.policy.align;
}

/* Whether a sized delete of n bytes (allocated with alignment a; 0: malloc's) fits core block b: b holds n,
 * and the split rule would have cut away anything more than a header and a granule; an aligned mapping ends at
 * a page boundary, so it may hold up to a page more, as may a heap block of PAGE_ROUND_MIN or more. */
static bool core_size_fits(const struct block_meta *b, size_t n, size_t a)
{
	size_t slack = META_SIZE + osm_heap.policy.align;
	if (b->status == STATUS_MAPPED && a > osm_heap.policy.align)
		slack = osm_os_page_size();
	if (n <= b->size && b->size - align_up(n ? n : 1) < slack)
		return true;
	if (b->status == STATUS_MAPPED && a > MALLOC_ALIGN && n - 1 < MEDIUM_MAX && mapped_rounded_fits(b, n, a))
		return true;
	if (osm_mapped_size_fits(b, n)) /* with threads, a kept mapping taken whole (heap.c, kept_whole) */
		return true;
	if (n >= PAGE_ROUND_MIN - MALLOC_ALIGN && heap_rounded_fits(b, n))
		return true;
	/* a medium request may get a larger cached block of its size's bin; an aligned one is rounded by
	 * medium_aligned_round and may get a block of the bin of that size or of that size and a remainder too small to
	 * split (medium.c, osm_front_medium_memalign), and a small one aligned beyond FRONT_MAX is a medium one */
	bool aligned = a > MALLOC_ALIGN;
	if ((n <= FRONT_MAX && !(aligned && a > FRONT_MAX)) || n > MEDIUM_MAX || n > b->size ||
	    b->size - MEDIUM_MIN_BLOCK >= MEDIUM_END_BLOCK - MEDIUM_MIN_BLOCK)
		return false;
	size_t r = aligned ? medium_aligned_round(a, n) : medium_round(n), bin = medium_bin(b->size);
	return bin == medium_bin(r) || (aligned && bin == medium_aligned_bin_hi(r));
}

/* The core's delete (also the classic profile's and an exiting thread's): free under the lock, the size checked
 * first when there is one. Keeps errno, as free does. */
__attribute__((noinline)) static void core_delete(void *p, bool sized, size_t n, size_t a)
{
	int saved = errno;
	if (!osm_lock_try()) { /* another thread holds the lock: the block waits for its next holder (free's way) */
		struct block_meta *b = osm_defer_check(p, MEDIUM_END_BLOCK);
		if (b && (!sized || core_size_fits(b, n, a)) && osm_defer_push(b))
			return;
		osm_lock();
	}
	if (TRACING)
		osm_trace_event("free %p t=%t", p);
	/* malloc(0)'s address, as free takes it: an operator new replaced by a program with one that calls malloc
	 * hands the default delete what malloc(0) gave (cxx/delete_of_malloc_zero) */
	if (osm_zero_owns(p)) {
		osm_zero_check(p, API, false); /* a double free or a bad pointer is reported, before the size */
		if (sized && n)
			osm_os_fatal_pointer(API, "size mismatch", p);
		osm_zero_check(p, API, true);
		osm_unlock();
		errno = saved;
		return;
	}
	struct block_meta *b = osm_user_block(p, API, false);
	if (osm_front_medium_cached(b)) /* in a thread's medium cache: freed already */
		osm_os_fatal_pointer(API, "double free", p);
	if (sized && !core_size_fits(b, n, a))
		osm_os_fatal_pointer(API, "size mismatch", p);
	osm_free(b);
	osm_unlock();
	errno = saved;
}

/* The slot osm_front_memalign(a, n) takes for 16 < a <= FRONT_MAX (internal.h, osm_front_aligned_class);
 * tests/malloc_cxx.cpp deletes every size and alignment it serves. */
static inline size_t front_aligned_slot(size_t n, size_t a)
{
	return osm_front_class_size[osm_front_aligned_class(n, a)];
}

/* Whether front slot p is the one new(n) (a: 0 or up to 16) or new(n, align a) would have taken. */
static inline bool front_size_fits(const void *p, size_t n, size_t a)
{
	const struct front_page *pg = front_page_of(p);
	if (a <= MALLOC_ALIGN)
		return n <= FRONT_MAX && osm_front_class_of[(n + 15) >> 4] == pg->cls;
	return n <= FRONT_MAX && a <= FRONT_MAX && pg->slot_size == front_aligned_slot(n, a);
}

/* Plain delete of anything but a front slot: strict mode (which has no front segments), NULL, a medium block, the
 * core's. Out of line. */
__attribute__((noinline)) static void delete_rest(void *p)
{
	if (osm_strict_first()) {
		osm_strict_free(p, API);
		return;
	}
	if (osm_front_owns(p)) { /* a segment mapped outside the front's range (where it could not grow) */
		osm_front_free(p, API);
		return;
	}
	if (!p || osm_front_medium_free(p, API))
		return;
	core_delete(p, false, 0, 0);
}

/* Plain delete: free's paths. Cost for a front slot of the thread's own page: free's, about 38 instructions, no
 * lock, no atomic read-modify-write, no system call (osm_front_free, internal.h); NULL is in no front segment. */
static inline void delete_plain(void *p)
{
	if (LIKELY(osm_front_in_range(p))) {
		osm_front_free(p, API);
		return;
	}
	delete_rest(p);
}

/* Sized delete of anything but a front slot: strict mode (no front segments there), NULL, a medium block, the
 * core's. Out of line. */
__attribute__((noinline)) static void delete_sized_rest(void *p, size_t n, size_t a)
{
	if (osm_strict_first()) { /* the exact size asked for is known: n must be it */
		osm_strict_free_sized(p, n, API);
		return;
	}
	if (!p)
		return;
	if (osm_front_owns(p)) { /* a segment mapped outside the front's range (where it could not grow) */
		if (UNLIKELY(!front_size_fits(p, n, a)))
			bad_delete(p, "size mismatch");
		osm_front_free(p, API);
		return;
	}
	if (medium_in_heap(p) && medium_header_ok(block_of(p))) { /* checked here: the cache keeps no size */
		if (!core_size_fits(block_of(p), n, a))
			bad_delete(p, "size mismatch");
		if (osm_front_medium_free(p, API))
			return;
	}
	core_delete(p, true, n, a);
}

/* Sized delete: plain delete's cost plus, for a front slot, one table load and a compare (the size's class
 * against the page's; an aligned size: a count of leading zeros and a compare against the slot size); for a
 * core block, two compares under the lock it takes anyway. */
static inline void delete_sized(void *p, size_t n, size_t a)
{
	if (LIKELY(osm_front_in_range(p))) {
		if (UNLIKELY(!front_size_fits(p, n, a)))
			bad_delete(p, "size mismatch");
		osm_front_free(p, API);
		return;
	}
	delete_sized_rest(p, n, a);
}

/* Aligned delete: the pointer must be aligned to a (a test and a branch), then as above. */
static inline void check_aligned(void *p, size_t a)
{
	if (UNLIKELY(!is_pow2(a) || ((uintptr_t)p & (a - 1))) && p)
		bad_delete(p, "alignment mismatch");
}

#define DELETE(name, mangled) \
	EXPORT void name(void *p) __asm__(mangled); \
	void name(void *p) { delete_plain(p); }
#define DELETE_NOTHROW(name, mangled) \
	EXPORT void name(void *p, const void *nt) __asm__(mangled); \
	void name(void *p, const void *nt) { (void)nt; delete_plain(p); }
#define DELETE_SIZED(name, mangled) \
	EXPORT void name(void *p, size_t n) __asm__(mangled); \
	void name(void *p, size_t n) { delete_sized(p, n, 0); }
#define DELETE_ALIGNED(name, mangled) \
	EXPORT void name(void *p, size_t a) __asm__(mangled); \
	void name(void *p, size_t a) { check_aligned(p, a); delete_plain(p); }
#define DELETE_ALIGNED_NOTHROW(name, mangled) \
	EXPORT void name(void *p, size_t a, const void *nt) __asm__(mangled); \
	void name(void *p, size_t a, const void *nt) { (void)nt; check_aligned(p, a); delete_plain(p); }
#define DELETE_SIZED_ALIGNED(name, mangled) \
	EXPORT void name(void *p, size_t n, size_t a) __asm__(mangled); \
	void name(void *p, size_t n, size_t a) { check_aligned(p, a); delete_sized(p, n, a); }

/* operator delete(void *), delete[], and their nothrow forms: free's cost (delete_plain). */
DELETE(cxx_delete, "_ZdlPv")
DELETE(cxx_delete_array, "_ZdaPv")
DELETE_NOTHROW(cxx_delete_nothrow, "_ZdlPvRKSt9nothrow_t")
DELETE_NOTHROW(cxx_delete_array_nothrow, "_ZdaPvRKSt9nothrow_t")
/* operator delete(void *, size_t), delete[]: free's cost plus the size check (delete_sized). */
DELETE_SIZED(cxx_delete_sized, "_ZdlPvm")
DELETE_SIZED(cxx_delete_array_sized, "_ZdaPvm")
/* operator delete(void *, align_val_t), delete[], nothrow forms: the alignment check, then free's cost. */
DELETE_ALIGNED(cxx_delete_aligned, "_ZdlPvSt11align_val_t")
DELETE_ALIGNED(cxx_delete_array_aligned, "_ZdaPvSt11align_val_t")
DELETE_ALIGNED_NOTHROW(cxx_delete_aligned_nothrow, "_ZdlPvSt11align_val_tRKSt9nothrow_t")
DELETE_ALIGNED_NOTHROW(cxx_delete_array_aligned_nothrow, "_ZdaPvSt11align_val_tRKSt9nothrow_t")
/* operator delete(void *, size_t, align_val_t), delete[]: the alignment check, then the sized delete's cost. */
DELETE_SIZED_ALIGNED(cxx_delete_sized_aligned, "_ZdlPvmSt11align_val_t")
DELETE_SIZED_ALIGNED(cxx_delete_array_sized_aligned, "_ZdaPvmSt11align_val_t")
