/* malloc_cxx: C++'s operator new and delete, in all 20 forms, exported by libosmem-malloc.so (src/cxx.c).
 *
 * Built twice from this file: malloc_cxx links libosmem-malloc.so; malloc_cxx_preload (-DPRELOAD_RUN) is a plain
 * binary (libstdc++ and glibc only) that re-runs itself with LD_PRELOAD=<build>/libosmem-malloc.so. Both run the
 * same cases, named cxx/<case> and cxx_preload/<case>; the sweeps and the workload run again in children with the
 * front off (OSMEM_FRONT=0: every block a core block) and with OSMEM_PROFILE=classic (<prefix>/front_off/...,
 * <prefix>/classic/...).
 *
 * What must hold:
 *  - every form is osmem's: its symbol resolves into libosmem-malloc.so, and what it returns is counted by os_stats
 *    (bytes in use grow by malloc_usable_size) and given back by the matching delete;
 *  - a huge request: nothrow forms return nullptr; throwing forms call the installed new_handler until it is
 *    removed (counted) and then throw std::bad_alloc; a handler's own exception reaches the caller (through osmem's
 *    C frames), and nothrow forms turn it into nullptr; a handler that makes room lets the retry succeed;
 *  - aligned forms honour alignments from 8 to 1 MiB;
 *  - sized delete with the size given to new works for every size 0..4096 and some big ones, also aligned;
 *  - death: a sized delete with a size that does not fit the block, an aligned delete of a pointer not aligned as
 *    said, a double or invalid delete: `osmem: operator delete(): <what> 0x<ptr>` exactly, and SIGABRT;
 *  - std::vector/std::string/std::map/std::unordered_map/std::shared_ptr across threads, over-aligned types:
 *    contents intact, and everything back (bytes in use as before, os_heap_check clean).
 * Prints `PASS <prefix>/<case>` or `FAIL <prefix>/<case>: why`; exits non-zero on any failure. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include "osmem.h"
#include "test_util.h"

#ifdef PRELOAD_RUN
static const char *prefix = "cxx_preload";
#else
static const char *prefix = "cxx";
#endif

static int n_fail;
static char why[512];
static char self_exe[4096];

#define CHECK(cond, ...)                                        \
	do {                                                    \
		if (!(cond)) {                                  \
			snprintf(why, sizeof why, __VA_ARGS__); \
			return false;                           \
		}                                               \
	} while (0)

static void run(const char *name, bool (*fn)())
{
	char full[256];
	snprintf(full, sizeof full, "%s/%s", prefix, name);
	tu_test_name = full;
	why[0] = 0;
	if (fn()) {
		printf("PASS %s\n", full);
	} else {
		printf("FAIL %s: %s\n", full, why);
		n_fail++;
	}
	fflush(stdout);
	tu_test_name = "between tests";
}

// ------------------------------------------------------------------
// osmem, reached by name (linked or preloaded alike)
// ------------------------------------------------------------------

static void (*osm_stats)(struct os_stats *);
static int (*osm_heap_check)(void);

static size_t in_use()
{
	struct os_stats st;
	osm_stats(&st);
	return st.bytes_in_use;
}

/* Whether addr lies in libosmem-malloc.so. */
static bool in_osmem(const void *addr)
{
	Dl_info info;
	if (!addr || !dladdr(addr, &info) || !info.dli_fname)
		return false;
	const char *base = strrchr(info.dli_fname, '/');
	return strcmp(base ? base + 1 : info.dli_fname, "libosmem-malloc.so") == 0;
}

static void escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

// ------------------------------------------------------------------
// The forms, behind volatile pointers (the compiler must not fold or drop a call)
// ------------------------------------------------------------------

using std::align_val_t;
using std::nothrow_t;
using std::size_t;

static void *(*volatile v_new)(size_t) = ::operator new;
static void *(*volatile v_new_arr)(size_t) = ::operator new[];
static void *(*volatile v_new_nt)(size_t, const nothrow_t &) noexcept = ::operator new;
static void *(*volatile v_new_arr_nt)(size_t, const nothrow_t &) noexcept = ::operator new[];
static void *(*volatile v_new_al)(size_t, align_val_t) = ::operator new;
static void *(*volatile v_new_arr_al)(size_t, align_val_t) = ::operator new[];
static void *(*volatile v_new_al_nt)(size_t, align_val_t, const nothrow_t &) noexcept = ::operator new;
static void *(*volatile v_new_arr_al_nt)(size_t, align_val_t, const nothrow_t &) noexcept = ::operator new[];
static void (*volatile v_del)(void *) noexcept = ::operator delete;
static void (*volatile v_del_arr)(void *) noexcept = ::operator delete[];
static void (*volatile v_del_nt)(void *, const nothrow_t &) noexcept = ::operator delete;
static void (*volatile v_del_arr_nt)(void *, const nothrow_t &) noexcept = ::operator delete[];
static void (*volatile v_del_sz)(void *, size_t) noexcept = ::operator delete;
static void (*volatile v_del_arr_sz)(void *, size_t) noexcept = ::operator delete[];
static void (*volatile v_del_al)(void *, align_val_t) noexcept = ::operator delete;
static void (*volatile v_del_arr_al)(void *, align_val_t) noexcept = ::operator delete[];
static void (*volatile v_del_al_nt)(void *, align_val_t, const nothrow_t &) noexcept = ::operator delete;
static void (*volatile v_del_arr_al_nt)(void *, align_val_t, const nothrow_t &) noexcept = ::operator delete[];
static void (*volatile v_del_sz_al)(void *, size_t, align_val_t) noexcept = ::operator delete;
static void (*volatile v_del_arr_sz_al)(void *, size_t, align_val_t) noexcept = ::operator delete[];

struct sym { const char *mangled; void *addr; };
#define SYM(name, ptr) { name, reinterpret_cast<void *>(ptr) }
static const sym *symbols()
{
	static const sym s[] = {
		SYM("_Znwm", v_new), SYM("_Znam", v_new_arr),
		SYM("_ZnwmRKSt9nothrow_t", v_new_nt), SYM("_ZnamRKSt9nothrow_t", v_new_arr_nt),
		SYM("_ZnwmSt11align_val_t", v_new_al), SYM("_ZnamSt11align_val_t", v_new_arr_al),
		SYM("_ZnwmSt11align_val_tRKSt9nothrow_t", v_new_al_nt),
		SYM("_ZnamSt11align_val_tRKSt9nothrow_t", v_new_arr_al_nt),
		SYM("_ZdlPv", v_del), SYM("_ZdaPv", v_del_arr),
		SYM("_ZdlPvRKSt9nothrow_t", v_del_nt), SYM("_ZdaPvRKSt9nothrow_t", v_del_arr_nt),
		SYM("_ZdlPvm", v_del_sz), SYM("_ZdaPvm", v_del_arr_sz),
		SYM("_ZdlPvSt11align_val_t", v_del_al), SYM("_ZdaPvSt11align_val_t", v_del_arr_al),
		SYM("_ZdlPvSt11align_val_tRKSt9nothrow_t", v_del_al_nt),
		SYM("_ZdaPvSt11align_val_tRKSt9nothrow_t", v_del_arr_al_nt),
		SYM("_ZdlPvmSt11align_val_t", v_del_sz_al), SYM("_ZdaPvmSt11align_val_t", v_del_arr_sz_al),
		{ nullptr, nullptr },
	};
	return s;
}

/* The 8 new forms: bit 0 array, bit 1 nothrow, bit 2 aligned. a is used by the aligned ones only. */
static const char *const new_names[8] = { "new", "new[]", "new(nothrow)", "new[](nothrow)", "new(align)",
					  "new[](align)", "new(align, nothrow)", "new[](align, nothrow)" };
static void *new_form(int f, size_t n, size_t a)
{
	align_val_t al = align_val_t(a);
	switch (f) {
	case 0: return v_new(n);
	case 1: return v_new_arr(n);
	case 2: return v_new_nt(n, std::nothrow);
	case 3: return v_new_arr_nt(n, std::nothrow);
	case 4: return v_new_al(n, al);
	case 5: return v_new_arr_al(n, al);
	case 6: return v_new_al_nt(n, al, std::nothrow);
	default: return v_new_arr_al_nt(n, al, std::nothrow);
	}
}

/* A delete form that matches new form f; k picks among them (plain, nothrow, sized). */
static void delete_form(int f, int k, void *p, size_t n, size_t a)
{
	bool arr = f & 1, aligned = f & 4;
	align_val_t al = align_val_t(a);
	switch ((aligned ? 3 : 0) + k % 3) {
	case 0: arr ? v_del_arr(p) : v_del(p); break;
	case 1: arr ? v_del_arr_nt(p, std::nothrow) : v_del_nt(p, std::nothrow); break;
	case 2: arr ? v_del_arr_sz(p, n) : v_del_sz(p, n); break;
	case 3: arr ? v_del_arr_al(p, al) : v_del_al(p, al); break;
	case 4: arr ? v_del_arr_al_nt(p, al, std::nothrow) : v_del_al_nt(p, al, std::nothrow); break;
	default: arr ? v_del_arr_sz_al(p, n, al) : v_del_sz_al(p, n, al); break;
	}
}

// ------------------------------------------------------------------
// Cases
// ------------------------------------------------------------------

static bool symbols_resolve_to_osmem()
{
	int k = 0;
	for (const sym *s = symbols(); s->mangled; s++, k++) {
		void *d = dlsym(RTLD_DEFAULT, s->mangled);
		CHECK(d, "%s is not defined in the process", s->mangled);
		CHECK(in_osmem(d), "%s resolves outside libosmem-malloc.so", s->mangled);
		CHECK(d == s->addr, "%s: the program's operator (%p) is not the process's definition (%p)", s->mangled,
		      s->addr, d);
	}
	CHECK(k == 20, "%d forms listed, expected 20", k);
	return true;
}

static const size_t form_sizes[] = { 0, 1, 100, 2048, 4000, 100000, (size_t)1 << 20, (size_t)40 << 20 };

static bool every_form_allocates_from_osmem()
{
	for (int f = 0; f < 8; f++) {
		for (size_t a : { (size_t)64, (size_t)4096 }) {
			if (!(f & 4) && a != 64)
				continue;
			for (size_t i = 0; i < sizeof form_sizes / sizeof form_sizes[0]; i++) {
				size_t n = form_sizes[i];
				size_t before = in_use();
				unsigned char *p = (unsigned char *)new_form(f, n, a);
				CHECK(p, "%s(%zu) returned nullptr", new_names[f], n);
				size_t u = malloc_usable_size(p), after = in_use();
				CHECK(u >= n, "%s(%zu): usable size %zu", new_names[f], n, u);
				CHECK(after - before == u, "%s(%zu): os_stats bytes in use grew by %zu, the block holds %zu",
				      new_names[f], n, after - before, u);
				CHECK((uintptr_t)p % ((f & 4) ? a : 16) == 0, "%s(%zu): %p misaligned", new_names[f], n,
				      (void *)p);
				/* the head and the tail: every page of 40 MiB would cost seconds of page faults here */
				size_t head = n < 8192 ? n : 8192, tail = n > head + 4096 ? n - 4096 : head;
				pat_fill(p, n ^ (size_t)f, 0, head);
				pat_fill(p, n ^ (size_t)f, tail, n);
				CHECK(pat_check(p, n ^ (size_t)f, 0, head) == head && pat_check(p, n ^ (size_t)f, tail, n) == n,
				      "%s(%zu): contents changed", new_names[f], n);
				delete_form(f, (int)i, p, n, a);
				CHECK(in_use() == before, "%s(%zu) then delete: bytes in use %zu, were %zu", new_names[f],
				      n, in_use(), before);
			}
		}
	}
	CHECK(osm_heap_check() == 0, "os_heap_check failed");
	return true;
}

static const size_t huge_sizes[] = { SIZE_MAX, SIZE_MAX / 2, (size_t)1 << 62, SIZE_MAX - 4095 };

static bool nothrow_huge_returns_null()
{
	CHECK(std::get_new_handler() == nullptr, "a new_handler is installed");
	for (int f : { 2, 3, 6, 7 })
		for (size_t n : huge_sizes)
			for (size_t a : { (size_t)64, (size_t)1 << 20 }) {
				void *p = new_form(f, n, a);
				CHECK(p == nullptr, "%s(%#zx) returned %p", new_names[f], n, p);
			}
	return true;
}

static bool throwing_huge_throws_bad_alloc()
{
	for (int f : { 0, 1, 4, 5 })
		for (size_t n : huge_sizes) {
			bool caught = false;
			try {
				void *p = new_form(f, n, 256);
				CHECK(false, "%s(%#zx) returned %p", new_names[f], n, p);
			} catch (const std::bad_alloc &e) {
				CHECK(typeid(e) == typeid(std::bad_alloc), "%s(%#zx) threw %s, not std::bad_alloc",
				      new_names[f], n, typeid(e).name());
				caught = true;
			}
			CHECK(caught, "%s(%#zx): no exception", new_names[f], n);
		}
	return true;
}

/* The handler: counts its calls; removes itself at the `gives_up`-th call, or throws its own exception there. */
static int handler_calls, handler_gives_up;
static bool handler_throws;
struct handler_gave_up { int calls; };
static void counting_handler()
{
	if (++handler_calls < handler_gives_up)
		return;
	if (handler_throws)
		throw handler_gave_up{ handler_calls };
	std::set_new_handler(nullptr);
}

static bool new_handler_called_until_removed()
{
	for (int f = 0; f < 8; f++) {
		handler_calls = 0;
		handler_gives_up = 3;
		handler_throws = false;
		std::set_new_handler(counting_handler);
		bool nothrow = f & 2, threw = false;
		void *p = (void *)1;
		try {
			p = new_form(f, SIZE_MAX / 2, 128);
		} catch (const std::bad_alloc &) {
			threw = true;
		}
		std::set_new_handler(nullptr);
		if (nothrow)
			CHECK(!threw && p == nullptr, "%s: %s", new_names[f], threw ? "threw" : "did not return nullptr");
		else
			CHECK(threw, "%s: no std::bad_alloc", new_names[f]);
		CHECK(handler_calls == 3, "%s: the new_handler was called %d times, expected 3", new_names[f],
		      handler_calls);
	}
	return true;
}

static bool new_handler_exception_reaches_caller()
{
	for (int f = 0; f < 8; f++) {
		handler_calls = 0;
		handler_gives_up = 2;
		handler_throws = true;
		std::set_new_handler(counting_handler);
		bool nothrow = f & 2;
		int thrown_at = 0;
		void *p = (void *)1;
		try {
			p = new_form(f, SIZE_MAX / 2, 4096);
		} catch (const handler_gave_up &e) {
			thrown_at = e.calls;
		} catch (...) {
			thrown_at = -1;
		}
		std::set_new_handler(nullptr);
		if (nothrow)
			CHECK(thrown_at == 0 && p == nullptr, "%s: %s", new_names[f],
			      thrown_at ? "an exception escaped" : "did not return nullptr");
		else
			CHECK(thrown_at == 2, "%s: %s", new_names[f],
			      thrown_at < 0 ? "another exception" : "the handler's exception did not arrive");
		CHECK(handler_calls == 2, "%s: the new_handler was called %d times, expected 2", new_names[f],
		      handler_calls);
	}
	return true;
}

/* The address space is capped below a 256 MiB request; the handler lifts the cap, and the retry succeeds. */
static struct rlimit saved_as;
static void lifting_handler()
{
	handler_calls++;
	setrlimit(RLIMIT_AS, &saved_as);
}

static bool new_handler_makes_room()
{
	const size_t big = (size_t)256 << 20;
	CHECK(getrlimit(RLIMIT_AS, &saved_as) == 0, "getrlimit");
	for (int f = 0; f < 8; f++) {
		/* the previous form's 256 MiB went to the mapping cache (heap.c): given back, so that this form must
		 * map anew under the cap and fail */
		malloc_trim(0);
		size_t vm = tu_vm_bytes();
		CHECK(vm, "cannot read /proc/self/statm");
		struct rlimit cap = saved_as;
		cap.rlim_cur = vm + (64 << 20);
		CHECK(cap.rlim_cur < saved_as.rlim_cur, "RLIMIT_AS too low to test (%zu)", (size_t)saved_as.rlim_cur);
		handler_calls = 0;
		std::set_new_handler(lifting_handler);
		CHECK(setrlimit(RLIMIT_AS, &cap) == 0, "setrlimit");
		void *p = nullptr;
		try {
			p = new_form(f, big, 4096);
		} catch (...) {
			p = nullptr;
		}
		setrlimit(RLIMIT_AS, &saved_as);
		std::set_new_handler(nullptr);
		CHECK(p, "%s(256 MiB) failed although the handler made room", new_names[f]);
		CHECK(handler_calls == 1, "%s: the handler was called %d times, expected 1", new_names[f], handler_calls);
		CHECK(malloc_usable_size(p) >= big, "%s: usable size %zu", new_names[f], malloc_usable_size(p));
		delete_form(f, f, p, big, 4096);
	}
	return true;
}

static bool aligned_forms_honour_alignment()
{
	std::vector<std::pair<unsigned char *, size_t>> live;
	int k = 0;
	for (size_t a = 8; a <= ((size_t)1 << 20); a <<= 1) {
		const size_t sizes[] = { 1, 24, a / 2, a - 1, a, a + 1, 3000, 100000 };
		for (size_t n : sizes)
			for (int f = 4; f < 8; f++, k++) {
				size_t before = in_use();
				unsigned char *p = (unsigned char *)new_form(f, n, a);
				CHECK(p, "%s(%zu, %zu) returned nullptr", new_names[f], n, a);
				CHECK((uintptr_t)p % a == 0, "%s(%zu, %zu) = %p: misaligned", new_names[f], n, a, (void *)p);
				size_t u = malloc_usable_size(p);
				CHECK(u >= n && in_use() - before == u, "%s(%zu, %zu): usable %zu, bytes in use grew by %zu",
				      new_names[f], n, a, u, in_use() - before);
				pat_fill(p, (uint64_t)(uintptr_t)p, 0, n);
				if (k % 3 == 0) { /* keep some alive: later blocks are carved around them */
					live.push_back({ p, n });
					continue;
				}
				CHECK(pat_check(p, (uint64_t)(uintptr_t)p, 0, n) == n, "%s(%zu, %zu): contents changed",
				      new_names[f], n, a);
				delete_form(f, k, p, n, a);
			}
	}
	for (auto &b : live) {
		CHECK(pat_check(b.first, (uint64_t)(uintptr_t)b.first, 0, b.second) == b.second,
		      "a live aligned block of %zu changed", b.second);
		v_del_al(b.first, align_val_t(8));
	}
	CHECK(osm_heap_check() == 0, "os_heap_check failed");
	return true;
}

static const size_t big_sizes[] = { 4097, 8191, 65536, 100000, 131040, 131072, 1 << 20, (3 << 20) + 5, 40 << 20 };

/* Out of memory while this thread's medium cache holds blocks: operator new gives them back to the core and
 * tries again, as malloc does, instead of failing (or throwing) while they sit idle. In a child under RLIMIT_DATA:
 * the heap filled with 3000-byte objects, four neighbours deleted (they stay cached), then new(9000), which only
 * the four merged can serve. */
static bool new_reclaims_cached_blocks()
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit rl = { 64 << 20, 64 << 20 };
		setrlimit(RLIMIT_DATA, &rl);
		static char *p[1 << 16];
		size_t n = 0;
		while (n < (1 << 16) && (p[n] = (char *)v_new_nt(3000, std::nothrow)))
			n++;
		size_t i = tu_tiling_run(p, n, malloc_usable_size(p[0]) + 32); /* four that tile one run */
		if (n < 100 || i + 4 >= n)
			_exit(4);
		for (size_t k = 0; k < 4; k++)
			v_del_sz(p[i + k], 3000);
		_exit(v_new_nt(9000, std::nothrow) ? 0 : 3);
	}
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child ended with status 0x%x (4: setup; 3: new(9000) "
	      "failed while four deleted neighbours sat in the medium cache)", st);
	return true;
}

static bool sized_delete_every_size()
{
	size_t before = in_use();
	for (size_t n = 0; n <= 4096 + sizeof big_sizes / sizeof big_sizes[0]; n++) {
		size_t m = n <= 4096 ? n : big_sizes[n - 4097];
		tu_op_counter = (const volatile long *)&m;
		void *p = v_new(m), *q = v_new_arr(m);
		memset(p, 1, m < 64 ? m : 64);
		v_del_sz(p, m);
		v_del_arr_sz(q, m);
	}
	/* medium sizes, down and up: a thread's medium cache hands a request a larger cached block of its bin (the
	 * block the size above it freed), and the sized delete of the smaller size must still fit it */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i <= 32768 - 2049; i++) {
			size_t m = pass ? 2049 + i : 32768 - i;
			tu_op_counter = (const volatile long *)&m;
			void *p = v_new(m);
			memset(p, 1, 64);
			v_del_sz(p, m);
		}
	tu_op_counter = nullptr;
	CHECK(in_use() == before, "bytes in use %zu, were %zu", in_use(), before);
	return true;
}

static bool sized_aligned_delete_every_size()
{
	size_t before = in_use();
	for (size_t a = 8; a <= 65536; a <<= 1) {
		size_t step = a > 4096 ? 61 : 1; /* large alignments: every 61st size, their blocks are large */
		for (size_t n = 0; n <= 4096 + sizeof big_sizes / sizeof big_sizes[0]; n += (n < 4096 ? step : 1)) {
			size_t m = n <= 4096 ? n : big_sizes[n - 4097];
			void *p = v_new_al(m, align_val_t(a)), *q = v_new_arr_al(m, align_val_t(a));
			v_del_sz_al(p, m, align_val_t(a));
			v_del_arr_sz_al(q, m, align_val_t(a));
		}
	}
	CHECK(in_use() == before, "bytes in use %zu, were %zu", in_use(), before);
	return true;
}

// ------------------------------------------------------------------
// Death: a bad delete is reported with the pointer and aborts
// ------------------------------------------------------------------

struct death {
	const char *name;
	void *(*setup)(); /* in the parent: the block the bad delete is given */
	void (*bad)(void *p);
	void (*cleanup)(void *p); /* in the parent, after the child: the block's real delete */
	const char *what;
};

alignas(64) static unsigned char static_area[256];
static size_t bad_align(void *p) { return ((uintptr_t)p & -(uintptr_t)p) << 1; } /* twice its lowest set bit */

static void *new100() { return v_new(100); }
static void *new_arr1000() { return v_new_arr(1000); }
static void *new100000() { return v_new(100000); }
static void *new40m() { return v_new((size_t)40 << 20); }
static void *new100_al64() { return v_new_al(100, align_val_t(64)); }
static void *new256_al256() { return v_new_al(256, align_val_t(256)); }
static void *new40m_al4096() { return v_new_arr_al((size_t)40 << 20, align_val_t(4096)); }
static void *static_ptr() { return static_area + 64; }
static void del100(void *p) { v_del_sz(p, 100); }
static void del_arr1000(void *p) { v_del_arr_sz(p, 1000); }
static void del100000(void *p) { v_del_sz(p, 100000); }
static void del40m(void *p) { v_del_sz(p, (size_t)40 << 20); }
static void del100_al64(void *p) { v_del_sz_al(p, 100, align_val_t(64)); }
static void del256_al256(void *p) { v_del_al(p, align_val_t(256)); }
static void del40m_al4096(void *p) { v_del_arr_sz_al(p, (size_t)40 << 20, align_val_t(4096)); }
static void nothing(void *p) { (void)p; }

static void bad_larger(void *p) { v_del_sz(p, 200); }
static void bad_smaller(void *p) { v_del_sz(p, 96); } /* new(100) took a 112-byte slot; 96 has its own class */
static void bad_array(void *p) { v_del_arr_sz(p, 2000); }
/* from the block's real size: a best fit may have left up to a split's worth in it */
static void bad_core_smaller(void *p) { v_del_sz(p, malloc_usable_size(p) - 64); }
static void bad_core_larger(void *p) { v_del_sz(p, malloc_usable_size(p) + 1); }
static void bad_mapped_larger(void *p) { v_del_sz(p, ((size_t)40 << 20) + 4096); }
static void bad_mapped_smaller(void *p) { v_del_sz(p, ((size_t)40 << 20) - 4096); }
static void bad_aligned_size(void *p) { v_del_sz_al(p, 200, align_val_t(64)); }
static void bad_alignment(void *p) { v_del_al(p, align_val_t(bad_align(p))); }
static void bad_alignment_sized(void *p) { v_del_sz_al(p, 256, align_val_t(bad_align(p))); }
static void bad_alignment_nothrow(void *p) { v_del_arr_al_nt(p, align_val_t(bad_align(p)), std::nothrow); }
static void bad_alignment_mapped(void *p) { v_del_arr_sz_al(p, (size_t)40 << 20, align_val_t(bad_align(p))); }
static void bad_alignment_not_pow2(void *p) { v_del_al(p, align_val_t(96)); }
static void bad_double_sized(void *p) { v_del_sz(p, 100); v_del_sz(p, 100); }
static void bad_double_then_mismatch(void *p) { v_del_sz(p, 100); v_del_sz(p, 300); }
static void bad_double_mapped(void *p) { v_del_sz(p, (size_t)40 << 20); v_del_sz(p, (size_t)40 << 20); }
/* a medium block the first delete put in the thread's cache: the second, of another size, is a double free, not a
 * size mismatch (session 58's review) */
static void *new10000() { return v_new(10000); }
static void del10000(void *p) { v_del_sz(p, 10000); }
static void bad_double_medium_then_mismatch(void *p) { v_del_sz(p, 10000); v_del_sz(p, 5); }
static void bad_static_sized(void *p) { v_del_sz(p, 16); }
static void bad_static_aligned(void *p) { v_del_sz_al(p, 64, align_val_t(64)); }

static void *malloc_zero() { return malloc(0); }
static void bad_double_delete_zero(void *p) { v_del(p); v_del(p); }
static void bad_sized_delete_zero(void *p) { v_del_sz(p, 16); }
static void free_zero(void *p) { free(p); }

static const death deaths[] = {
	{ "size_mismatch_larger", new100, bad_larger, del100, "size mismatch" },
	{ "size_mismatch_smaller_class", new100, bad_smaller, del100, "size mismatch" },
	{ "size_mismatch_array", new_arr1000, bad_array, del_arr1000, "size mismatch" },
	{ "size_mismatch_core_smaller", new100000, bad_core_smaller, del100000, "size mismatch" },
	{ "size_mismatch_core_larger", new100000, bad_core_larger, del100000, "size mismatch" },
	{ "size_mismatch_mapped_larger", new40m, bad_mapped_larger, del40m, "size mismatch" },
	{ "size_mismatch_mapped_smaller", new40m, bad_mapped_smaller, del40m, "size mismatch" },
	{ "size_mismatch_aligned", new100_al64, bad_aligned_size, del100_al64, "size mismatch" },
	{ "alignment_mismatch", new256_al256, bad_alignment, del256_al256, "alignment mismatch" },
	{ "alignment_mismatch_sized", new256_al256, bad_alignment_sized, del256_al256, "alignment mismatch" },
	{ "alignment_mismatch_nothrow", new256_al256, bad_alignment_nothrow, del256_al256, "alignment mismatch" },
	{ "alignment_mismatch_mapped", new40m_al4096, bad_alignment_mapped, del40m_al4096, "alignment mismatch" },
	{ "alignment_not_power_of_two", new256_al256, bad_alignment_not_pow2, del256_al256, "alignment mismatch" },
	{ "double_sized_delete", new100, bad_double_sized, del100, "double free" },
	{ "double_delete_before_size_mismatch", new100, bad_double_then_mismatch, del100, "double free" },
	{ "double_sized_delete_mapped", new40m, bad_double_mapped, del40m, "double free" },
	{ "double_delete_of_cached_medium_before_size_mismatch", new10000, bad_double_medium_then_mismatch, del10000,
	  "double free" },
	{ "invalid_pointer_sized", static_ptr, bad_static_sized, nothing, "invalid pointer" },
	{ "invalid_pointer_sized_aligned", static_ptr, bad_static_aligned, nothing, "invalid pointer" },
	{ "double_delete_of_malloc_zero", malloc_zero, bad_double_delete_zero, nothing, "double free" },
	{ "size_mismatch_malloc_zero", malloc_zero, bad_sized_delete_zero, free_zero, "size mismatch" },
};

static bool run_death(const death &d)
{
	void *p = d.setup();
	CHECK(p, "setup failed");
	char expect[128];
	snprintf(expect, sizeof expect, "osmem: operator delete(): %s 0x%lx\n", d.what, (unsigned long)(uintptr_t)p);
	int fds[2];
	CHECK(pipe(fds) == 0, "pipe");
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		signal(SIGABRT, SIG_DFL); /* not the crash handler: the abort is the expected outcome */
		dup2(fds[1], 2);
		close(fds[0]);
		d.bad(p);
		_exit(0);
	}
	close(fds[1]);
	char out[1024];
	tu_read_all(fds[0], out, sizeof out);
	close(fds[0]);
	int status;
	waitpid(pid, &status, 0);
	d.cleanup(p);
	char *nl = strchr(out, '\n');
	if (nl && nl[1] == 0)
		*nl = 0;
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "the child %s (stderr: \"%.300s\")",
	      WIFSIGNALED(status) ? "died of another signal" : "did not abort", out);
	if (nl)
		*nl = '\n';
	CHECK(strcmp(out, expect) == 0, "stderr \"%.200s\", expected \"%.100s\"", out, expect);
	return true;
}

static void run_deaths()
{
	for (const death &d : deaths) {
		char full[256];
		snprintf(full, sizeof full, "%s/death/%s", prefix, d.name);
		tu_test_name = full;
		why[0] = 0;
		if (run_death(d)) {
			printf("PASS %s\n", full);
		} else {
			printf("FAIL %s: %s\n", full, why);
			n_fail++;
		}
		fflush(stdout);
	}
	tu_test_name = "after death tests";
}

// ------------------------------------------------------------------
// A workload of the standard library
// ------------------------------------------------------------------

struct alignas(256) over_aligned {
	unsigned char c[300];
	over_aligned() { memset(c, 0x5a, sizeof c); }
	~over_aligned() { c[0] = 0; } /* non-trivial: new[] stores a cookie, delete[] passes the size */
};

static uint64_t build_and_check(int seed, std::vector<std::string> *handoff)
{
	uint64_t sum = 0;
	std::vector<std::string> words;
	std::map<int, std::string> tree;
	std::unordered_map<std::string, std::vector<int>> table;
	for (int i = 0; i < 3000; i++) {
		std::string w = "w" + std::to_string(seed * 100000 + i) + std::string((size_t)(i % 97), 'x');
		words.push_back(w);
		tree[i * 7 % 3001] = w;
		table[w].assign((size_t)(i % 50), i);
		if (i % 10 == 0)
			handoff->push_back(w + w);
	}
	for (auto &kv : tree)
		sum += kv.first + kv.second.size();
	for (auto &kv : table)
		sum += kv.second.size();
	for (int i = 0; i < 3000; i += 2)
		table.erase(words[(size_t)i]);
	auto shared = std::make_shared<std::vector<over_aligned>>(5);
	std::unique_ptr<over_aligned[]> arr(new over_aligned[7]);
	over_aligned *one = new over_aligned;
	escape(one);
	if ((uintptr_t)one % 256 || (uintptr_t)arr.get() % 256 || (uintptr_t)shared->data() % 256)
		sum = 0; /* caught by the caller's comparison */
	delete one;
	return sum + table.size() + words.size() + shared->size();
}

static bool stl_workload()
{
	/* glibc keeps the stacks of exited threads, and with them their TLS blocks (malloc'ed): a first round of
	 * threads that do nothing leaves those behind before the count starts */
	std::vector<std::thread> warm;
	for (int t = 0; t < 4; t++)
		warm.emplace_back([] {});
	for (auto &th : warm)
		th.join();
	std::vector<std::thread>().swap(warm);
	size_t before = in_use();
	std::vector<std::string> handoff[4];
	uint64_t sums[4] = {};
	std::vector<std::thread> threads;
	for (int t = 0; t < 4; t++)
		threads.emplace_back([t, &handoff, &sums] { sums[t] = build_and_check(t, &handoff[t]); });
	for (auto &th : threads)
		th.join();
	for (int t = 0; t < 4; t++) {
		uint64_t want = build_and_check(t, &handoff[t]); /* the same work here, for reference */
		CHECK(sums[t] == want, "thread %d computed %llu, expected %llu", t, (unsigned long long)sums[t],
		      (unsigned long long)want);
		CHECK(handoff[t].size() == 600, "thread %d and main handed over %zu strings, expected 600", t,
		      handoff[t].size());
		for (size_t i = 0; i < 300; i++)
			CHECK(handoff[t][i] == handoff[t][i + 300], "thread %d's string %zu differs from main's", t, i);
	}
	size_t during = in_use();
	CHECK(during > before + 4 * 300 * 32, "bytes in use grew by %zu only: the strings are not osmem's",
	      during - before);
	for (auto &h : handoff) /* strings built by other threads, freed here */
		std::vector<std::string>().swap(h);
	threads.clear();
	threads.shrink_to_fit();
	CHECK(in_use() == before, "bytes in use %zu after the workload, %zu before", in_use(), before);
	CHECK(osm_heap_check() == 0, "os_heap_check failed");
	return true;
}

// ------------------------------------------------------------------
// main
// ------------------------------------------------------------------

#ifdef PRELOAD_RUN
/* A plain binary: run again with osmem preloaded, once. */
static void preload_self(char **argv)
{
	if (getenv("OSMEM_CXX_PRELOADED"))
		return;
	char lib[4200];
	strcpy(lib, self_exe);
	char *slash = strrchr(lib, '/');
	strcpy(slash ? slash : lib, "/../libosmem-malloc.so");
	setenv("LD_PRELOAD", lib, 1);
	setenv("OSMEM_CXX_PRELOADED", "1", 1);
	execv(self_exe, argv);
	printf("FAIL %s/preload: cannot run %s again: %s\n", prefix, self_exe, strerror(errno));
	exit(1);
}
#endif

/* The sweeps and the workload again in a child with `env` set (its profile is read at start-up). */
static void run_child(const char *label, const char *env)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		putenv((char *)env);
		execl(self_exe, self_exe, "--child", label, (char *)nullptr);
		_exit(127);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL %s/%s: the child run exited with status %#x\n", prefix, label, status);
		n_fail++;
	}
}

/* Hazard: aligned operator new above the small classes went to the core each time (its lock, its index), and
 * so did its delete once the bin was full: new of 4096 bytes aligned to 4096 (alignas(4096) objects) cost 2x
 * glibc's time in a program made of them. Now a cached block so aligned serves it (front.c,
 * osm_front_medium_memalign): after a first round, 1,000 rounds ask the core for nothing. */
static bool aligned_new_served_by_cache()
{
	struct os_stats s0, s1;
	for (int round = 0; round < 1001; round++) {
		if (round == 1)
			osm_stats(&s0);
		void *p = v_new_al(4096, align_val_t(4096));
		CHECK(p && !((uintptr_t)p & 4095), "operator new(4096, align_val_t(4096)) gave %p", p);
		memset(p, 0x3c, 4096);
		v_del_al(p, align_val_t(4096));
	}
	osm_stats(&s1);
	CHECK(s1.bytes_requested == s0.bytes_requested && s1.cache_hits - s0.cache_hits >= 1000,
	      "1,000 rounds of operator new(4096, align_val_t(4096)) and delete asked the core for %zu bytes and hit "
	      "the caches %zu times (want 0 bytes and 1,000 hits)", s1.bytes_requested - s0.bytes_requested,
	      s1.cache_hits - s0.cache_hits);
	return true;
}

/* Hazard: the default operator delete refused malloc(0)'s address ("invalid pointer" and abort; session 54's
 * review), where free takes it. A program may replace operator new alone with one that calls malloc and keep the
 * default delete, which must then take what malloc(0) gave ([new.delete.single]); glibc's does. */
static bool delete_of_malloc_zero()
{
	size_t before = in_use();
	for (int i = 0; i < 100; i++) {
		void *p = malloc(0), *q = malloc(0), *r = malloc(0);
		CHECK(p && q && r, "malloc(0) returned NULL");
		v_del(p);
		v_del_sz(q, 0); /* the size operator new(0) was given */
		v_del_arr(r);
	}
	CHECK(in_use() == before && osm_heap_check() == 0, "300 deletes of malloc(0)'s addresses left %zu bytes in "
	      "use (was %zu) or a heap that fails its check", in_use(), before);
	return true;
}

/* Runs fn in a child process (a setting it makes, mallopt's or a limit, stays there) and checks that it exits 0;
 * what names the outcome of each other status. */
static bool in_child(int (*fn)(), const char *what)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGABRT, SIG_DFL);
		_exit(fn());
	}
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child %s %d (%s)", WIFSIGNALED(st) ? "died of signal" :
	      "exited", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), what);
	return true;
}

static int aligned_sizes_after_threshold()
{
	static const size_t thresholds[] = { 4096, 8192, 32768, 65536 };
	static const size_t aligns[] = { 32, 64, 256, 4096 };
	for (size_t t : thresholds) {
		const char *profile = getenv("OSMEM_PROFILE");
		bool classic = profile && !strcmp(profile, "classic"); /* whose mallopt changes nothing: the sizes all the same */
		if (mallopt(M_MMAP_THRESHOLD, (int)t) != (classic ? 0 : 1))
			return 2;
		for (size_t a : aligns)
			for (size_t n = 1; n <= 70000; n += n < 2048 ? 509 : 1013) {
				size_t m = n == 62313 ? 63040 : n == 3559 ? 4000 : n; /* the review's sizes */
				void *p = v_new_al(m, align_val_t(a));
				memset(p, 0x6b, m);
				v_del_sz_al(p, m, align_val_t(a)); /* aborts on a false size mismatch */
				void *q = v_new_arr_al(m, align_val_t(a));
				v_del_arr_sz_al(q, m, align_val_t(a));
			}
	}
	return 0;
}

/* Hazard: an aligned medium request is rounded for the medium caches (medium_aligned_round) before the core
 * serves it; where the core maps it (M_MMAP_THRESHOLD at 64 KiB or less), the mapping held up to a page more than
 * the rounded size, past the page of slack the sized delete allowed from the size asked: a correct
 * `delete` of an alignas(64) type of 63,040 bytes aborted with "size mismatch" (session 54's review). */
static bool sized_aligned_delete_after_low_mmap_threshold()
{
	return in_child(aligned_sizes_after_threshold, "2: mallopt's answer; SIGABRT: a sized aligned delete was "
			"refused, its message above");
}

static size_t vm_data()
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmData:", 7))
			kb = strtoul(line + 7, NULL, 10);
	if (f)
		fclose(f);
	return kb * 1024;
}

static int aligned_new_on_enomem_retry()
{
	void *keep[16];
	for (int i = 0; i < 16; i++)
		keep[i] = malloc(5000); /* medium blocks, carved from the heap */
	struct rlimit rl = { vm_data() + (1 << 20), vm_data() + (1 << 20) };
	if (setrlimit(RLIMIT_DATA, &rl) != 0)
		return 2;
	static const size_t fill[] = { 100000, 20000, 9000, 3000 };
	for (size_t n : fill) /* no free core block left to hold 4 KiB aligned (leaked: the child ends here) */
		while (v_new_nt(n, std::nothrow))
			;
	for (int i = 0; i < 16; i++)
		free(keep[i]); /* into this thread's medium cache, which the retry gives back to the core */
	void *p = v_new_al_nt(2049, align_val_t(4096), std::nothrow);
	if (!p)
		return 3;
	if (malloc_usable_size(p) > 6144) /* rounded once: 4,064 usable bytes; twice: 8,160 */
		return 4;
	v_del_sz_al(p, 2049, align_val_t(4096));
	return 0;
}

/* Hazard: operator new's retry after the core's ENOMEM (the medium caches given back, then once more) asked for
 * the size it had already rounded for the caches, rounded again: 2049 bytes aligned to 4096 took 8,160 usable
 * bytes, and the sized delete of 2049 aborted with "size mismatch" (session 54's review; malloc's memalign had
 * the same bug, fixed in session 51). */
static bool aligned_new_retry_rounds_once()
{
	return in_child(aligned_new_on_enomem_retry, "2: setrlimit; 3: new(2049, align 4096) failed; 4: it took over 6 KiB "
			"(rounded twice); SIGABRT: its sized delete was refused");
}

/* Hazard: a core that fails one way and then succeeds another (the break refused, then a mapping: the child run
 * brk_refused, OSMEM_FAIL=brk:2+) left ENOMEM in errno behind a successful operator new, where malloc keeps the
 * caller's errno (session 50's review). Every run checks it; brk_refused makes the fallback happen. */
static bool new_keeps_errno_after_fallback()
{
	for (int i = 0; i < 40; i++) {
		errno = 0;
		void *p = v_new(120000);
		int e = errno;
		CHECK(p, "operator new(120000) #%d returned NULL", i);
		memset(p, 0x5c, 120000);
		v_del(p);
		CHECK(e == 0, "operator new(120000) #%d succeeded and left errno %d (%s)", i, e, strerror(e));
	}
	return true;
}

int main(int argc, char **argv)
{
	ssize_t k = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
	if (k <= 0) {
		printf("FAIL %s/start: cannot read /proc/self/exe\n", prefix);
		return 1;
	}
	self_exe[k] = 0;
#ifdef PRELOAD_RUN
	preload_self(argv);
#endif
	tu_catch_crashes();
	static char child_prefix[128];
	bool child = argc == 3 && strcmp(argv[1], "--child") == 0;
	if (child) {
		snprintf(child_prefix, sizeof child_prefix, "%s/%s", prefix, argv[2]);
		prefix = child_prefix;
	}
	osm_stats = (void (*)(struct os_stats *))dlsym(RTLD_DEFAULT, "os_stats");
	osm_heap_check = (int (*)(void))dlsym(RTLD_DEFAULT, "os_heap_check");
	if (!osm_stats || !osm_heap_check || !in_osmem((void *)osm_stats)) {
		printf("FAIL %s/start: libosmem-malloc.so is not loaded\n", prefix);
		return 1;
	}

	if (!child) {
		run("symbols_resolve_to_osmem", symbols_resolve_to_osmem);
		run("nothrow_huge_returns_null", nothrow_huge_returns_null);
		run("throwing_huge_throws_bad_alloc", throwing_huge_throws_bad_alloc);
		run("new_handler_called_until_removed", new_handler_called_until_removed);
		run("new_handler_exception_reaches_caller", new_handler_exception_reaches_caller);
		run("new_handler_makes_room", new_handler_makes_room);
	}
	run("new_keeps_errno_after_fallback", new_keeps_errno_after_fallback); /* first: brk_refused's fallback */
	if (child && strcmp(argv[2], "brk_refused") == 0) /* the sweeps' counts assume a break (strict mode's too) */
		return n_fail ? 1 : 0;
	run("every_form_allocates_from_osmem", every_form_allocates_from_osmem);
	run("aligned_forms_honour_alignment", aligned_forms_honour_alignment);
	run("new_reclaims_cached_blocks", new_reclaims_cached_blocks);
	run("sized_delete_every_size", sized_delete_every_size);
	run("sized_aligned_delete_every_size", sized_aligned_delete_every_size);
	run("stl_workload", stl_workload);
	run("delete_of_malloc_zero", delete_of_malloc_zero);
	run("sized_aligned_delete_after_low_mmap_threshold", sized_aligned_delete_after_low_mmap_threshold);
	if (!child)
		run("aligned_new_retry_rounds_once", aligned_new_retry_rounds_once); /* the default profile's caches */
	if (!child) {
		run("aligned_new_served_by_cache", aligned_new_served_by_cache); /* the default profile's caches */
		run_deaths();
		run_child("front_off", "OSMEM_FRONT=0");
		run_child("classic", "OSMEM_PROFILE=classic");
		run_child("brk_refused", "OSMEM_FAIL=brk:2+");
	}
	return n_fail ? 1 : 0;
}
