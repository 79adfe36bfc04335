/* huge: transparent huge pages for the memory a program fills densely: its heap, and its front segments (the
 * drop-in's default profile).
 *
 * Core layer, beside heap.c, which calls it under the heap lock each time the break grows; front.c uses its parts
 * (osm_huge_env, osm_huge_kernel_ok, osm_huge_dense, osm_huge_advise) for each new segment from the eighth on,
 * under the same lock (front.c, seg_advise). The classic profile (libosmem.so, OSMEM_PROFILE=classic) never
 * comes here: its system calls are docs/CLASSIC.md's, to the call.
 *
 * Why. This machine's kernel charged about 11 us for each page fault in sessions 16-23, whatever the page (first
 * touch, again after munmap; bench/results and docs/TRADEOFFS.md): a program that writes 1 GiB of heap spent 2.8 s
 * faulting 262,144 pages in, most of frag's time under every allocator. A 2 MiB huge page is one fault that zeroes
 * 2 MiB, about 0.13 ms once the host has backed the memory: 40 times less per byte. In session 24 the host charged
 * 1.5 us for a 4 KiB fault and 0.4 us per 4 KiB of a backed huge page: they still pay (frag 0.82 s with them, 1.12
 * without). Inside an advised range heap.c populates nothing (prefault): one fault brings the 2 MiB. glibc (its glibc.malloc.hugetlb=1 tunable)
 * and tcmalloc's hugepage-aware allocator advise their heaps for the same reason.
 *
 * What it costs. A huge page is resident whole as soon as one byte of it is touched. A program that touches its
 * blocks sparsely (threads-8 writes a few bytes of each block; python3's buffers are larger than what it writes)
 * would pay for the untouched pages: advising every heap of 16 MiB or more cost threads-8 +6.4 MiB (17%) and
 * python3 with PYTHONMALLOC=malloc +7 MiB (10%) of peak RSS. So the heap is advised only once the kernel says
 * the program fills it: when the heap has grown to HUGE_FROM and again at every doubling, mincore counts the
 * resident pages of the part not measured before, below the free top (untouched by definition); at 7/8 or more
 * the heap is dense and every later growth is advised. A program that is sparse at 32 MiB may be dense at 64.
 *
 * A huge page must lie whole inside the heap's mapping, so the 2 MiB range the break stops in gets 4 KiB pages
 * until the break passes its end. Growing the break to 2 MiB boundaries instead made that range huge too, and a
 * huge page at the frontier is resident whole while the program has touched only its start: large +9 MiB and
 * mixed-realloc +7 MiB of peak RSS (their heaps swing: every regrowth after a trim paid it again), for no time.
 * What the heap gives back later (trims, the decay's madvise) splits huge pages and leaves RSS exact; the
 * kernel's khugepaged may later collapse a partly resident 2 MiB range of a long-lived process again, at most
 * the two ranges at the ends of each given-back block.
 *
 * Then, once, whether it pays here at all (osm_huge_pays): a probe maps 16 pages, times the first write to each
 * and unmaps them; where a 4 KiB fault costs less than 4 us nothing is advised (session 24's host: 1.5 us).
 *
 * OSMEM_HUGEPAGE=0 turns this off; =dense keeps the size and density tests and skips the probe; =1 advises every
 * growth past the first and every segment, without the size and density tests
 * (tests, or a program known to be dense). Without the kernel's "madvise" mode (never: nothing to ask; always:
 * the kernel already does it) no call is made.
 *
 * Cost: nothing per request. Per growth of the break, once dense: one madvise. Per doubling of the heap until
 * dense: one mincore per 16 MiB measured. Per new segment from the eighth: one mincore of 4 MiB until the front is
 * found dense, then one madvise. Once per process, when the heap or the front is first found dense, at the
 * heap's 64th fresh header page, or at the decay's first give-back (heap.c: how much of an idle block to keep):
 * the fault probe (an mmap, 16 page faults, a munmap; 30-200 us, under the lock; none when OSMEM_FAULT_NS sets
 * the cost). =dense above skips it for the huge-page decision only. */
#include "internal.h"

#define HUGE_FROM ((size_t)32 << 20) /* a heap smaller than this is not measured: its RSS is what it is */

static enum { HUGE_UNKNOWN, HUGE_WATCH, HUGE_ON, HUGE_OFF } state; /* the heap's */
static size_t next_check = HUGE_FROM; /* heap size at which the next measure is taken */
static const char *measured;          /* heap bytes below this were measured (and found sparse) */
static bool found_dense;              /* measured dense; the fault probe's verdict not known yet */
/* the heap's growths in [advised_from, advised_to) are advised (NULL: none yet): a range, not a floor, since the
 * break can be trimmed below where the advice began and grow again from there (advised too), and the heap can go
 * on in a mapped break above it (heap.c, vbrk_grow), which is never advised */
static const char *advised_from, *advised_to;

bool osm_huge_heap_advised(const void *p)
{
	return advised_from && (const char *)p >= advised_from && (const char *)p < advised_to;
}

ONCE_PATH enum huge_mode osm_huge_env(void)
{
	static bool read;
	static enum huge_mode mode;
	if (!read) {
		const char *v = osm_os_getenv("OSMEM_HUGEPAGE");
		mode = v && v[0] == '0' && !v[1]	  ? HUGE_MODE_OFF
		       : v && v[0] == '1' && !v[1]	  ? HUGE_MODE_FORCED
		       : v && strcmp(v, "dense") == 0 ? HUGE_MODE_DENSE
						      : HUGE_MODE_AUTO;
		if (mode == HUGE_MODE_AUTO && v && *v) { /* named once: off, no or 2 ran the default in silence */
			osm_os_write_err("osmem: OSMEM_HUGEPAGE=");
			osm_os_write_err(v);
			osm_os_write_err(" is not a setting (0, 1 or dense); using default\n");
		}
		(void)osm_os_fault_ns_env(); /* the probe's setting, read and judged now too */
		read = true;
	}
	return mode;
}

/* A question that could not be answered for now (no descriptor, no memory for the probe's mapping) is asked again
 * after this long, not at every call, and not never: both verdicts were kept for good from one transient failure
 * (session 61's review: a probe refused under RLIMIT_AS made every later header page a madvise call). */
#define HUGE_ASK_AGAIN_NS 1000000000ull

static bool ask_later(uint64_t *after)
{
	uint64_t now = osm_os_coarse_ns();
	if (*after && now < *after)
		return true;
	*after = now + HUGE_ASK_AGAIN_NS;
	return false;
}

/* The kernel's mode is read when first needed (a heap of HUGE_FROM, the front's eighth segment, or
 * OSMEM_HUGEPAGE=1), so that the system calls of a small program are not touched. */
int osm_huge_kernel_ok(void)
{
	static int ok = -1;
	static uint64_t after;
	if (ok < 0) {
		if (ask_later(&after))
			return -1;
		enum os_thp m = osm_os_thp_mode();
		if (m == OS_THP_UNKNOWN)
			return -1; /* no madvise this time; asked again a second later */
		ok = m == OS_THP_MADVISE;
		if (TRACING)
			osm_trace_event("  hugepage %s", ok ? "madvise" : "unavailable");
	}
	return ok;
}

/* Huge pages pay where a 4 KiB fault costs this much or more. Measured (bench/fault_cost, docs/TRADEOFFS.md):
 * when the host already backs the memory a 2 MiB page costs 0.25-0.43 us per 4 KiB, and 7.6-11 us when it backs
 * it afresh, on every host seen; what changes from host to host is the 4 KiB fault: 10.5-13 us in sessions 16-23,
 * where huge pages won even at their dearest (frag 3.98 -> 1.46-3.07 s), and 1.5-1.6 us in session 24, where a
 * program that fills fresh memory lost with them (frag, interleaved with the other allocators as in make bench:
 * 2.85 s advised, 1.20 s not, glibc 1.20) and one that reuses its memory gained less (large 0.14 against 0.17 s).
 * Between the two, 4 us. */
#define HUGE_FAULT_NS 4000

static int dear = -1; /* the probe's verdict, once it measured */

bool osm_huge_faults_dear(void)
{
	static uint64_t after;
	if (dear < 0) {
		if (ask_later(&after))
			return true; /* nothing measured yet: as before the probe */
		uint64_t ns = osm_os_fault_probe_ns();
		osm_heap.count.fault_probe_ns = ns ? (size_t)ns : 1;
		if (TRACING)
			osm_trace_event("  hugepage probe %z ns a fault: %s", (size_t)ns, !ns ? "not measured" :
					ns >= HUGE_FAULT_NS ? "dear" : "cheap");
		if (!ns)
			return true; /* the probe's mapping refused (RLIMIT_AS): measured again a second later */
		dear = ns >= HUGE_FAULT_NS;
	}
	return dear;
}

int osm_huge_pays(void)
{
	if (osm_huge_env() != HUGE_MODE_AUTO)
		return 1;
	bool yes = osm_huge_faults_dear();
	return dear < 0 ? -1 : yes; /* refused: "dear" for now (as before the probe), not a verdict to keep */
}

bool osm_huge_dense(const void *from, const void *to)
{
	size_t page = osm_os_page_size();
	uintptr_t lo = round_up((uintptr_t)from, page), hi = round_down((uintptr_t)to, page);
	if (hi <= lo)
		return false;
	size_t pages = (hi - lo) / page, resident = osm_os_resident((const void *)lo, hi - lo);
	bool yes = resident >= pages - pages / 8;
	if (TRACING)
		osm_trace_event("  hugepage measure %p %z resident %z of %z: %s", (void *)lo, (size_t)(hi - lo),
				resident, pages, yes ? "dense" : "sparse");
	return yes;
}

void osm_huge_advise(void *addr, size_t len)
{
	size_t page = osm_os_page_size();
	uintptr_t lo = round_down((uintptr_t)addr, page), hi = round_up((uintptr_t)addr + len, page);
	osm_os_advise_huge((void *)lo, hi - lo);
	osm_heap.count.huge_bytes += hi - lo;
	if (TRACING)
		osm_trace_event("  madvise_huge %p %z", (void *)lo, (size_t)(hi - lo));
}

/* The heap below old_end (the break before this growth) is dense when 7/8 of its pages not measured before are
 * resident, the free top left out. */
static bool heap_dense(const char *old_end)
{
	const char *from = measured > osm_heap.base ? measured : osm_heap.base;
	const char *to = old_end;
	struct block_meta *t = osm_heap.tail;
	if (t && t->status == STATUS_FREE && (const char *)t >= from && (const char *)t < to)
		to = (const char *)t;
	measured = old_end;
	return osm_huge_dense(from, to);
}

/* The heap is watched (HUGE_WATCH) and grew from p: whether it is advised from now on (HUGE_ON). Out of line: a
 * program's heap reaches it only past HUGE_FROM, and osm_huge_grown lies in the hot text (src/hot.list). */
static __attribute__((noinline)) bool watch(char *p)
{
	size_t size = (size_t)(p - osm_heap.base);
	if (!found_dense) {
		if (size < next_check)
			return false;
		next_check = size * 2;
		if (!heap_dense(p))
			return false;
		found_dense = true;
	}
	int pays = osm_huge_pays();
	if (!pays) /* faults are cheap here: small pages (osm_huge_pays) */
		state = HUGE_OFF;
	else if (pays > 0)
		state = HUGE_ON;
	/* else the probe could not measure (its mapping refused): asked again at a later growth */
	return state == HUGE_ON;
}

void osm_huge_grown(char *p, size_t len)
{
	/* a heap in segments (a foreign sbrk, a mapped break: heap.c, vbrk_grow) is not advised: its size and the
	 * density measure would span the gaps between them (a mincore sweep of the address space between the break
	 * and the mapped break) */
	if (state == HUGE_OFF || osm_heap.classic || !osm_heap.base || p < osm_heap.base || !len || osm_heap.gaps)
		return;
	if (state == HUGE_UNKNOWN) {
		enum huge_mode m = osm_huge_env();
		if (m == HUGE_MODE_OFF) {
			state = HUGE_OFF;
			return;
		}
		if (m != HUGE_MODE_FORCED && (size_t)(p - osm_heap.base) < next_check)
			return;
		int k = osm_huge_kernel_ok();
		if (k < 0)
			return; /* not known yet: asked again at a later growth */
		state = !k ? HUGE_OFF : m == HUGE_MODE_FORCED ? HUGE_ON : HUGE_WATCH;
	}
	if (state == HUGE_WATCH && !watch(p))
		return;
	if (state == HUGE_ON) {
		if (!advised_from || p < advised_from)
			advised_from = p;
		if (p + len > advised_to)
			advised_to = p + len;
		osm_huge_advise(p, len);
	}
}
