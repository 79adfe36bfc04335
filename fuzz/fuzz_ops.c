/* fuzz_ops: libFuzzer reads its input as a sequence of allocator operations, and a shadow model checks each one.
 *
 * Builds (Makefile, `make fuzz-build`):
 *   fuzz_ops                 the os_* API on libosmem.a's objects (classic), with ASan and UBSan
 *   fuzz_ops_malloc          the drop-in's malloc family, default profile (front layer on); no ASan: malloc is ours
 *   fuzz_ops_malloc_classic  the same, OSMEM_PROFILE=classic (the harness re-executes itself with it set: libFuzzer
 *                            allocates before LLVMFuzzerInitialize, and the profile is fixed at the first allocation)
 *   fuzz_bestfit             the os_* API with osm_set_bestfit_mode(BESTFIT_VERIFY): every best-fit decision of the
 *                            index is checked against the reference walk, which traps on a mismatch; sizes drawn
 *                            from few values (ties), and the side storage capped now and then (the walks' fallback)
 *
 * The model, after every operation:
 *   - alignment (8 classic API, 16 drop-in; memalign's own), malloc_usable_size / the header's size >= n;
 *   - no overlap between live blocks (payload plus the 32-byte header of core blocks);
 *   - contents: every block holds its pattern until it is freed (verified before each free and realloc, and for
 *     all blocks at the end of each input); realloc keeps min(old, new) bytes; calloc reads zero;
 *   - requests nobody can serve (sizes near SIZE_MAX, calloc overflow) give NULL and ENOMEM and change nothing;
 *   - os_realloc of a block just freed gives NULL and changes nothing (docs/CLASSIC.md rule 3);
 *   - classic API and classic profile: the header says ALLOC or MAPPED as the thresholds decide, with the size
 *     docs/CLASSIC.md gives, and freed bytes stay as the program left them (ghosts, fuzz_common.h) until handed out
 *     again;
 *   - os_heap_check() == 0 after every operation.
 * Each input ends by verifying and freeing every block, so inputs do not pile up. */
#include "fuzz_common.h"

#ifdef FUZZ_BESTFIT
#define SLOTS 96
#else
#define SLOTS 48
#endif
#define MAX_OPS 1500

struct slot {
	unsigned char *p;
	size_t n;      /* bytes requested, all of them patterned */
	uint64_t seed; /* pattern */
};

static struct slot table[SLOTS];
static uint64_t gen;
static bool classic; /* docs/CLASSIC.md's exact headers and ghosts: the os_* API, or OSMEM_PROFILE=classic */

static uint64_t new_seed(int s)
{
	gen++;
	return ((uint64_t)s << 48) ^ (gen * 0x9E3779B97F4A7C15ULL) ^ 0x5bd1e995u;
}

// ------------------------------------------------------------------
// The allocator under test
// ------------------------------------------------------------------

#ifdef FUZZ_DROPIN
/* No header before p: a front slot, or malloc(0)'s address in the default profile (a PROT_NONE reservation) */
static bool is_front(const void *p) { return osm_front_owns(p) || osm_zero_owns(p); }
static size_t usable_of(void *p) { return malloc_usable_size(p); }
#else
static bool is_front(const void *p) { (void)p; return false; }
static size_t usable_of(void *p) { return block_of(p)->size; }
#endif

static void do_heap_check(const char *after)
{
	if (os_heap_check() != 0)
		fz_fail("os_heap_check() failed after %s (what broke is on stderr above)", after);
}

/* The extent a live block owns: its payload, and its header unless it is a front slot. */
static void extent(void *p, const unsigned char **lo, const unsigned char **hi)
{
	*lo = (const unsigned char *)p - (is_front(p) ? 0 : META_SIZE);
	*hi = (const unsigned char *)p + usable_of(p);
}

/* Everything a freshly returned block must satisfy: p for n bytes from `api`, `align` its alignment. self: the
 * slot it goes to (skipped in the overlap check). exact: docs/CLASSIC.md's header rules apply, with `threshold`. */
static void check_new(void *p, size_t n, size_t align, const char *api, int self, bool exact, size_t threshold)
{
	if (!p)
		fz_fail("%s(%zu) returned NULL (errno %d)", api, n, errno);
	if ((uintptr_t)p & (align - 1))
		fz_fail("%s(%zu) returned %p: not %zu-byte aligned", api, n, p, align);
	size_t u = usable_of(p);
	if (u < n)
		fz_fail("%s(%zu) = %p: usable size %zu is less than asked", api, n, p, u);
	if (!is_front(p)) {
		const struct block_meta *m = block_of(p);
		size_t s = ALIGNG(n ? n : 1);
		if (m->status != STATUS_ALLOC && m->status != STATUS_MAPPED)
			fz_fail("%s(%zu) = %p: header status %d", api, n, p, m->status);
		if (m->size != u)
			fz_fail("%s(%zu) = %p: malloc_usable_size %zu, header size %zu", api, n, p, u, m->size);
		if (m->size < s)
			fz_fail("%s(%zu) = %p: header size %zu < %zu", api, n, p, m->size, s);
		if (exact && classic) {
			bool mapped = s + META_SIZE >= threshold;
			if (mapped && (m->status != STATUS_MAPPED || m->size != s))
				fz_fail("%s(%zu) = %p: header status %d size %zu, want MAPPED size %zu", api, n, p,
					m->status, m->size, s);
			if (!mapped && (m->status != STATUS_ALLOC || m->size - s >= META_SIZE + GRANULE))
				fz_fail("%s(%zu) = %p: header status %d size %zu, want ALLOC size in [%zu, %zu]", api, n,
					p, m->status, m->size, s, s + META_SIZE + GRANULE - 1);
		}
	}
	const unsigned char *lo, *hi;
	extent(p, &lo, &hi);
	for (int i = 0; i < SLOTS; i++) {
		if (i == self || !table[i].p)
			continue;
		const unsigned char *lo2, *hi2;
		extent(table[i].p, &lo2, &hi2);
		if (lo < hi2 && lo2 < hi)
			fz_fail("%s(%zu) = %p [%p, %p) overlaps the live block %p [%p, %p) of slot %d", api, n, p,
				(const void *)lo, (const void *)hi, (void *)table[i].p, (const void *)lo2,
				(const void *)hi2, i);
	}
}

static void verify(int s, const char *when)
{
	struct slot *b = &table[s];
	size_t bad = fz_pat_check(b->p, b->seed, 0, b->n);
	if (bad != b->n)
		fz_fail("slot %d (%p, %zu B) %s: byte %zu is 0x%02x, pattern says 0x%02x", s, (void *)b->p, b->n, when,
			bad, b->p[bad], pat_byte(b->seed, bad));
}

/* The block of slot s is about to be freed: a heap block's bytes become a ghost (a mapping goes away; a front slot
 * holds links once free). */
static void ghost_of_slot(int s)
{
	const struct slot *b = &table[s];
	if (ghosts_on && !is_front(b->p) && block_of(b->p)->status == STATUS_ALLOC)
		ghost_add(b->p, b->n, b->seed);
}

static void give(int s, void *p, size_t n)
{
	table[s].p = p;
	table[s].n = n;
	table[s].seed = new_seed(s);
	fz_pat_fill(table[s].p, table[s].seed, 0, n);
}

/* The call that returned heap block p defined [def_from, def_to) of it; the rest must be what was there. */
static void reused(void *p, size_t def_from, size_t def_to, const char *api)
{
	if (ghosts_on && !is_front(p) && block_of(p)->status == STATUS_ALLOC)
		ghost_reused(p, block_of(p)->size, def_from, def_to, api);
}

// ------------------------------------------------------------------
// Operations
// ------------------------------------------------------------------

static void do_free(int s, struct fz_in *in)
{
	struct slot *b = &table[s];
	verify(s, "before free");
	ghost_of_slot(s);
#ifdef FUZZ_DROPIN
	if (in_u8(in) & 1)
		free(b->p);
	else
		os_free(b->p);
#else
	(void)in;
	os_free(b->p);
#endif
	b->p = NULL;
}

static void check_zero(const unsigned char *c, size_t n, const char *api)
{
	size_t i = fz_nonzero(c, n);
	if (i != n)
		fz_fail("%s of %zu bytes = %p: byte %zu is 0x%02x, not zero", api, n, (const void *)c, i, c[i]);
}

static void do_calloc(int s, size_t n, uint8_t how, bool os_api)
{
	size_t nmemb = n, size = 1;
	if (how % 3 == 0)
		nmemb = 1, size = n;
	else if (how % 3 == 1 && n % 8 == 0)
		nmemb = n / 8, size = 8;
	size_t threshold = osm_heap.policy.calloc_threshold;
	void *p;
#ifdef FUZZ_DROPIN
	p = os_api ? os_calloc(nmemb, size) : calloc(nmemb, size);
#else
	(void)os_api;
	p = os_calloc(nmemb, size);
#endif
	if ((os_api || GRANULE == 8) && n == 0) {
		if (p)
			fz_fail("os_calloc(%zu, %zu) returned %p, want NULL", nmemb, size, p);
		return;
	}
	check_new(p, n, GRANULE, "calloc", s, true, threshold);
	reused(p, 0, is_front(p) ? 0 : block_of(p)->size, "calloc");
	check_zero(p, n, "calloc");
	give(s, p, n);
}

#ifdef FUZZ_DROPIN
/* memalign, aligned_alloc, posix_memalign, valloc, pvalloc: alignments from 1 to 64 KiB, also not powers of two. */
static void do_memalign(int s, size_t n, struct fz_in *in)
{
	uint8_t how = in_u8(in), k = in_u8(in) % 17;
	size_t a = (size_t)1 << k, page = osm_os_page_size();
	size_t want = a < 16 ? 16 : a;
	const char *api;
	void *p = NULL;
	switch (how % 6) {
	case 0:
		api = "memalign";
		p = memalign(a, n);
		break;
	case 1: /* not a power of two: glibc rounds up to one */
		api = "memalign (odd)";
		if (a > 2)
			p = memalign(a - 1, n), want = a < 16 ? 16 : a;
		else
			p = memalign(a, n);
		break;
	case 2:
		api = "aligned_alloc";
		if (how & 0x80) { /* not a power of two: EINVAL */
			volatile size_t odd = a * 3; /* opaque: clang folds a constant bad alignment to NULL */
			errno = 0;
			void *q = aligned_alloc(odd, n);
			if (q || errno != EINVAL)
				fz_fail("aligned_alloc(%zu, %zu) = %p, errno %d: want NULL and EINVAL", a * 3, n, q, errno);
			return;
		}
		p = aligned_alloc(a, n);
		break;
	case 3: {
		api = "posix_memalign";
		void *q = (void *)0x1234;
		if (how & 0x80) { /* below sizeof(void *) or not a power of two: EINVAL, *out untouched */
			volatile size_t bad = a < 8 ? a : a * 3;
			int r = posix_memalign(&q, bad, n);
			if (r != EINVAL || q != (void *)0x1234)
				fz_fail("posix_memalign(%zu, %zu) = %d, out %p: want EINVAL, out untouched", bad, n, r, q);
			return;
		}
		if (a < sizeof(void *))
			a = sizeof(void *), want = 16;
		int r = posix_memalign(&q, a, n);
		if (r)
			fz_fail("posix_memalign(%zu, %zu) = %d", a, n, r);
		p = q;
		break;
	}
	case 4:
		api = "valloc";
		p = valloc(n);
		want = page;
		break;
	default:
		api = "pvalloc";
		p = pvalloc(n);
		want = page;
		if (p && usable_of(p) < ((n + page - 1) & ~(page - 1)))
			fz_fail("pvalloc(%zu) = %p: usable %zu, less than whole pages", n, p, usable_of(p));
		break;
	}
	check_new(p, n, want, api, s, false, 0);
	/* The heap path carves the block out of a larger one: headers may have been written up to want + 96 bytes
	 * past its end (the first split of the larger block). Those ghost bytes are forgotten unverified. */
	if (ghosts_on && !is_front(p) && block_of(p)->status == STATUS_ALLOC && n_ghosts) {
		const unsigned char *q = p;
		ghost_forget(q, q + usable_of(p), q, q + usable_of(p), api);
		ghost_forget(q - META_SIZE, q + usable_of(p) + want + 96, NULL, NULL, api);
	}
	give(s, p, n);
}
#endif

static void do_alloc(int s, struct fz_in *in)
{
	uint8_t k = in_u8(in);
	size_t n;
#ifdef FUZZ_BESTFIT
	/* few sizes, so that free blocks tie: the lowest address must win */
	if (k & 0x80)
		n = in_size(in);
	else
		n = 8 * (1 + in_u8(in) % 40);
#else
	n = in_size(in);
#endif
	size_t mt = osm_heap.policy.mmap_threshold;
	void *p;
	switch (k % 8) {
	case 0:
	case 1:
	case 2:
#ifdef FUZZ_DROPIN
		if (k & 0x40) {
			p = os_malloc(n);
			if (!n) {
				if (p)
					fz_fail("os_malloc(0) returned %p, want NULL", p);
				return;
			}
		} else {
			p = malloc(n);
		}
#else
		p = os_malloc(n);
		if (!n) {
			if (p)
				fz_fail("os_malloc(0) returned %p, want NULL", p);
			return;
		}
#endif
		check_new(p, n, GRANULE, "malloc", s, true, mt);
		reused(p, 0, 0, "malloc");
		give(s, p, n);
		return;
	case 3:
	case 4:
		do_calloc(s, n, in_u8(in), k & 0x40);
		return;
	case 5:
#ifdef FUZZ_DROPIN
		if (!(k & 0x40)) {
			do_memalign(s, n, in);
			return;
		}
#endif
		/* fall through */
	default:
#ifdef FUZZ_DROPIN
		p = k & 0x20 ? os_realloc(NULL, n) : realloc(NULL, n);
		if (!n && (k & 0x20)) {
#else
		p = os_realloc(NULL, n);
		if (!n) {
#endif
			if (p)
				fz_fail("os_realloc(NULL, 0) returned %p, want NULL", p);
			return;
		}
		check_new(p, n, GRANULE, "realloc(NULL)", s, true, mt);
		reused(p, 0, 0, "realloc(NULL)");
		give(s, p, n);
		return;
	}
}

static void do_realloc_to_zero(int s, struct fz_in *in)
{
	struct slot *b = &table[s];
	verify(s, "before realloc(p, 0)");
	ghost_of_slot(s);
	void *q;
#ifdef FUZZ_DROPIN
	q = in_u8(in) & 1 ? realloc(b->p, 0) : os_realloc(b->p, 0);
#else
	(void)in;
	q = os_realloc(b->p, 0);
#endif
	if (q)
		fz_fail("realloc(%p, 0) returned %p, want NULL (it frees)", (void *)b->p, q);
	b->p = NULL;
}

static void do_realloc(int s, struct fz_in *in)
{
	struct slot *b = &table[s];
	uint8_t k = in_u8(in);
	size_t n;
	if (k % 3 == 0) /* small steps: the in-place rules (shrink, split, grow at the end, absorb) */
		n = b->n > 64 && (k & 8) ? b->n - 1 - in_u16(in) % (b->n < 512 ? b->n - 1 : 512)
					 : b->n + 1 + in_u16(in) % 512;
	else
		n = in_size(in);
	if (!n) {
		do_realloc_to_zero(s, in);
		return;
	}
	verify(s, "before realloc");
	void *old = b->p;
	bool front = is_front(old);
	const struct block_meta *om = front ? NULL : block_of(old);
	bool old_heap = om && om->status == STATUS_ALLOC;
	size_t old_size = om ? om->size : 0;
	void *q;
#ifdef FUZZ_DROPIN
	q = k & 0x80 ? os_realloc(old, n) : realloc(old, n);
#else
	q = os_realloc(old, n);
#endif
	check_new(q, n, GRANULE, "realloc", s, true, osm_heap.policy.mmap_threshold);
	if (ghosts_on) {
		/* osmem copies min(old size, new aligned size) bytes: the old block's slack past b->n comes along */
		size_t kept = old_size < ALIGNG(n) ? old_size : ALIGNG(n);
		if (q != old && old_heap) {
			/* moved: the old block is free now, with the program's bytes in it. Rule 8 may have grown it by
			 * free neighbours before it moved (its header says by how much), and osmem copied that much. */
			if (om->size > old_size)
				kept = om->size < ALIGNG(n) ? om->size : ALIGNG(n);
			ghost_add(old, b->n, b->seed);
			reused(q, 0, kept, "realloc (moved)");
		} else if (q == old && old_heap) {
			/* in place: what it absorbed was free (verified), what it split off is free again */
			reused(q, 0, kept, "realloc (in place)");
			const struct block_meta *nm = block_of(q);
			if (nm->size < b->n) { /* shrunk: the bytes past the new end are a free block's now */
				ghost_add(q, b->n, b->seed);
				ghost_forget(q, (const unsigned char *)q + nm->size + META_SIZE, NULL, NULL,
					     "realloc (shrink)");
			}
		} else {
			reused(q, 0, kept, "realloc (from a mapping)");
		}
	}
	b->p = q;
	size_t keep = n < b->n ? n : b->n;
	size_t bad = fz_pat_check(b->p, b->seed, 0, keep);
	if (bad != keep)
		fz_fail("realloc(%p, %zu -> %zu) = %p: preserved byte %zu is 0x%02x, was 0x%02x", old, b->n, n, q, bad,
			b->p[bad], pat_byte(b->seed, bad));
	if (n > b->n)
		fz_pat_fill(b->p, b->seed, b->n, n);
	b->n = n;
}

/* Frees a block, then os_realloc's it: docs/CLASSIC.md's rule 3 says NULL and no change. Only where the freed block is
 * still what osmem can recognise: a classic heap block (pending, its header intact) or a front slot. */
static void do_free_then_realloc(int s, struct fz_in *in)
{
	struct slot *b = &table[s];
	bool front = is_front(b->p);
	if (front ? classic : !(classic && block_of(b->p)->status == STATUS_ALLOC)) {
		do_free(s, in);
		return;
	}
	const struct block_meta *m = block_of(b->p);
	verify(s, "before free");
	ghost_of_slot(s);
	os_free(b->p);
	size_t size_before = front ? 0 : m->size;
	size_t n = 1 + in_u16(in) % 4096;
	void *q = os_realloc(b->p, n);
	if (q)
		fz_fail("os_realloc(%p, %zu) of a block just freed returned %p, want NULL", (void *)b->p, n, q);
	if (!front && (m->status != STATUS_FREE || m->size != size_before))
		fz_fail("os_realloc(%p) of a free block changed its header (status %d, size %zu -> %zu)",
			(void *)b->p, m->status, size_before, m->size);
	b->p = NULL;
}

/* What nobody can serve: NULL and ENOMEM, and a block given to realloc stays as it was. */
static void do_huge(int s, struct fz_in *in)
{
	uint8_t k = in_u8(in);
	size_t n = in_huge(in);
	void *q;
	const char *api;
	errno = 0;
	switch (k % 4) {
	case 0:
		api = "malloc";
#ifdef FUZZ_DROPIN
		q = k & 0x80 ? malloc(n) : os_malloc(n);
#else
		q = os_malloc(n);
#endif
		break;
	case 1:
		api = "calloc (overflow)";
		n = n / 2 + 3; /* times 2 or more overflows, or is beyond MAX_REQUEST */
#ifdef FUZZ_DROPIN
		q = k & 0x80 ? calloc(n, 2 + k % 7) : os_calloc(n, 2 + k % 7);
#else
		q = os_calloc(n, 2 + k % 7);
#endif
		break;
	case 2:
		api = "realloc";
		if (!table[s].p) {
			q = os_realloc(NULL, n);
			break;
		}
		verify(s, "before a huge realloc");
#ifdef FUZZ_DROPIN
		q = k & 0x80 ? realloc(table[s].p, n) : os_realloc(table[s].p, n);
#else
		q = os_realloc(table[s].p, n);
#endif
		if (!q)
			verify(s, "after a failed realloc");
		break;
	default:
#ifdef FUZZ_DROPIN
		api = "memalign";
		q = memalign((size_t)64 << (k % 8), n);
#else
		api = "os_realloc(NULL)";
		q = os_realloc(NULL, n);
#endif
		break;
	}
	if (q || errno != ENOMEM)
		fz_fail("%s(%zu) = %p, errno %d: want NULL and ENOMEM", api, n, q, errno);
}

#ifdef FUZZ_DROPIN
/* malloc_trim gives freed pages back (madvise, a lower break): the freed bytes may read zero or be gone, so the
 * ghosts are forgotten. */
static void do_trim(struct fz_in *in)
{
	size_t pad = (size_t)in_u16(in) * 64;
	malloc_trim(pad);
	n_ghosts = 0;
}
#endif

static void one_op(struct fz_in *in)
{
	uint8_t k = in_u8(in);
	int s = in_u8(in) % SLOTS;
	if (k % 16 == 15) { /* slot-independent operations */
#ifdef FUZZ_BESTFIT
		static const uint32_t limits[] = { 0, 0, 2, 8, 32, 64 };
		osm_set_slot_limit(limits[(k >> 4) % 6]); /* past it, free blocks have no slot: best fit walks */
		return;
#else
#ifdef FUZZ_DROPIN
		if (k & 0x10) {
			do_trim(in);
			return;
		}
#endif
		do_huge(s, in);
		return;
#endif
	}
	if (!table[s].p) {
		do_alloc(s, in);
		return;
	}
	switch (k % 16) {
	case 0:
	case 1:
	case 2:
	case 3:
	case 4:
		do_free(s, in);
		return;
	case 5:
		do_free_then_realloc(s, in);
		return;
	case 6:
		do_realloc_to_zero(s, in);
		return;
	case 7:
		do_huge(s, in);
		return;
	default:
		do_realloc(s, in);
		return;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
#ifdef FUZZ_DROPIN
	/* libFuzzer allocates before this runs, and the profile is fixed at the first allocation: so the profile is
	 * chosen by re-executing the harness with the environment it needs. */
#ifdef FUZZ_WANT_CLASSIC
	const bool want_classic = true;
	fz_harness = "fuzz_ops_malloc_classic";
#else
	const bool want_classic = false;
	fz_harness = "fuzz_ops_malloc";
#endif
	const char *have = getenv("OSMEM_PROFILE");
	bool is_classic = have && strcmp(have, "classic") == 0;
	if (is_classic != want_classic || getenv("OSMEM_TRACE") || getenv("OSMEM_FRONT")) {
		if (getenv("FUZZ_REEXECED"))
			fz_fail("the environment did not take after re-executing");
		if (want_classic)
			setenv("OSMEM_PROFILE", "classic", 1);
		else
			unsetenv("OSMEM_PROFILE");
		unsetenv("OSMEM_TRACE");
		unsetenv("OSMEM_FRONT");
		setenv("FUZZ_REEXECED", "1", 1);
		execv("/proc/self/exe", *argv);
		fz_fail("execv(/proc/self/exe) failed: errno %d", errno);
	}
	free(malloc(1)); /* osmem is initialised (it already was, by libFuzzer) */
	if (osm_heap.classic != want_classic)
		fz_fail("the heap's profile is %s, want %s", osm_heap.classic ? "classic" : "default",
			want_classic ? "classic" : "default");
	classic = want_classic;
#else
	(void)argv;
	classic = true;
#ifdef FUZZ_BESTFIT
	fz_harness = "fuzz_bestfit";
	osm_set_bestfit_mode(BESTFIT_VERIFY);
#else
	fz_harness = "fuzz_ops";
#endif
#endif
	ghosts_on = classic;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	n_ghosts = 0; /* freed blocks of earlier inputs may have been handed out to libFuzzer (drop-in) */
	for (fz_op_no = 0; in.n && fz_op_no < MAX_OPS; fz_op_no++) {
		one_op(&in);
		do_heap_check("the operation");
	}
	ghost_check_all();
	for (int s = 0; s < SLOTS; s++)
		if (table[s].p) {
			verify(s, "at the end of the input");
			ghost_of_slot(s);
			os_free(table[s].p); /* the os_* API frees malloc's blocks too in the drop-in */
			table[s].p = NULL;
		}
#ifdef FUZZ_BESTFIT
	osm_set_slot_limit(0);
#endif
	do_heap_check("freeing every block");
	n_ghosts = 0;
	return 0;
}
