/* strict: OSMEM_CHECK=strict, a debugging mode for a program that misbehaves (jemalloc's junk and redzones,
 * glibc's MALLOC_CHECK_, mimalloc's debug build). Read once, at the first call of the malloc family.
 *
 * The layer sits between the API (override.c, cxx.c) and the core (heap.c); the front layer is never used. Every
 * request takes the heap lock. What it adds, each reported as `osmem: <api>(): <what> 0x<pointer>` and an abort
 * (docs/STRICT.md lists the checks, their reports and their costs):
 *  - the exact size asked for, kept in a side table (open addressing, keyed by the pointer), so nothing of it
 *    lives where the program can overwrite it. Unknown pointers go to the core's checks (invalid, double free);
 *  - canaries: the bytes after the n requested ones, to the end of the block (at least 8), checked at free,
 *    realloc and delete (`buffer overflow`). A write before a heap block hits its header, which the core checks
 *    (`corrupted header`);
 *  - large blocks (at least 128 KiB with the header) get a mapping of their own that ends in a PROT_NONE guard
 *    page, the block placed right against it: an overflow past the 16-byte granule faults at once;
 *  - malloc(0) returns a unique address in a PROT_NONE reservation: a touch faults, a second free is reported;
 *  - a freed block is filled with 0xDF and held in a quarantine (FIFO, at most 1024 blocks or 16 MiB) before the
 *    core gets it back; the fill is verified when it leaves (`write after free`), and at exit for the blocks still
 *    held. A freed large block is sealed instead (PROT_NONE past its header page, its pages discarded): a write
 *    after free faults at once. A second free while a block is held is a `double free`;
 *  - realloc always moves (the old block goes to the quarantine, so a stale pointer is caught);
 *  - operator delete(p, n) must be given exactly the n that new was (`size mismatch`).
 *
 * What it must never do: change the default paths (the API tests osm_strict first, one branch), or read the
 * memory of a pointer before the side table or the core's checks have vouched for it. */
#include <errno.h>

#include "internal.h"

#define CANARY_BYTE  0xCB          /* after the requested bytes, and before a large block's payload */
#define FREED_BYTE   0xDF          /* a freed block's payload while it is in the quarantine */
#define CANARY_MIN   ((size_t)8)   /* every block has at least this many canary bytes after its n bytes */
#define PAD_CANARY   ((size_t)64)  /* large blocks: canary bytes checked right before the payload */
#define TAIL_CANARY  ((size_t)4096) /* large blocks aligned above a page: canary bytes checked after n */
#define QUAR_BLOCKS  1024
#define QUAR_BYTES   ((size_t)16 << 20)

int osm_strict = -1;

/* OSMEM_CHECK set: its mode, and a value that is not one said. Out of line: a program's start, which runs
 * osm_strict_init, mostly has no OSMEM_CHECK, and the hot text has no room for this (tests/test_footprint.py). */
static __attribute__((noinline)) void strict_setting(const char *v)
{
	int on = strcmp(v, "strict") == 0, unknown = -1;
	if (__atomic_compare_exchange_n(&osm_strict, &unknown, on, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED) && !on &&
	    strcmp(v, "default") != 0) {
		osm_os_write_err("osmem: OSMEM_CHECK="); /* once: only the thread that set the mode writes */
		osm_os_write_err(v);
		osm_os_write_err(" is not a mode (default or strict); using default\n");
	}
}

bool osm_strict_init(void)
{
	const char *v = osm_os_getenv("OSMEM_CHECK");
	int unknown = -1;
	if (v && *v)
		strict_setting(v);
	else
		__atomic_compare_exchange_n(&osm_strict, &unknown, 0, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	return __atomic_load_n(&osm_strict, __ATOMIC_RELAXED) > 0;
}

static inline size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* The first byte of [s, s + len) that is not c, or NULL: eight bytes per compare. */
static const unsigned char *mismatch(const void *from, size_t len, unsigned char c)
{
	const unsigned char *s = from;
	uint64_t w = 0x0101010101010101ull * c, v;
	for (; len && ((uintptr_t)s & 7); s++, len--)
		if (*s != c)
			return s;
	for (; len >= 8; s += 8, len -= 8) {
		memcpy(&v, s, 8);
		if (v != w)
			break;
	}
	for (; len; s++, len--)
		if (*s != c)
			return s;
	return NULL;
}

// ------------------------------------------------------------------
// The side table: every block this layer handed out, live or in the quarantine
// ------------------------------------------------------------------

enum { E_LIVE = 1, E_FREED = 2, E_LARGE = 4, E_GUARD = 8, E_SEALED = 16 };

struct sentry {
	uintptr_t p;            /* the pointer the program holds; 0: an empty slot */
	size_t n;               /* the size it asked for */
	struct block_meta *b;   /* the core's block */
	uint32_t flags;
	uint32_t unused_;
};

/* Linear probing at most half full: a lookup reads one or two entries on average. Memory from osmem's own
 * buffers (not the heap), doubled when half full: 32 bytes per live block. Under the heap lock. */
static struct sentry *tab;
static size_t tab_mask, tab_used; /* tab_mask + 1 entries */
static unsigned tab_shift;

static inline size_t home(uintptr_t p) { return (size_t)(((p >> 4) * 0x9E3779B97F4A7C15ull) >> tab_shift); }

static struct sentry *find(uintptr_t p)
{
	if (!tab)
		return NULL;
	for (size_t i = home(p);; i = (i + 1) & tab_mask) {
		if (tab[i].p == p)
			return &tab[i];
		if (!tab[i].p)
			return NULL;
	}
}

static bool grow(void)
{
	size_t old_n = tab ? tab_mask + 1 : 0, n = old_n ? 2 * old_n : 4096;
	struct sentry *old = tab, *t = osm_os_map_buffer(n * sizeof *t); /* zero: every slot empty */
	if (!t)
		return false;
	tab = t;
	tab_mask = n - 1;
	tab_shift = 64 - (unsigned)__builtin_ctzll(n);
	for (size_t j = 0; j < old_n; j++) {
		if (!old[j].p)
			continue;
		size_t i = home(old[j].p);
		while (tab[i].p)
			i = (i + 1) & tab_mask;
		tab[i] = old[j];
	}
	if (old)
		osm_os_unmap_buffer(old, old_n * sizeof *old);
	return true;
}

/* A new entry for p (an entry left for the same address by a block the os_* API freed is taken over). */
static struct sentry *insert(uintptr_t p)
{
	if ((!tab || 2 * (tab_used + 1) > tab_mask + 1) && !grow())
		return NULL;
	size_t i = home(p);
	while (tab[i].p && tab[i].p != p)
		i = (i + 1) & tab_mask;
	if (!tab[i].p)
		tab_used++;
	tab[i].p = p;
	return &tab[i];
}

/* Backward-shift deletion: no tombstones, so lookups stay short however many blocks come and go. */
static void erase(struct sentry *e)
{
	size_t i = (size_t)(e - tab), j = i;
	for (;;) {
		j = (j + 1) & tab_mask;
		if (!tab[j].p)
			break;
		size_t k = home(tab[j].p);
		/* tab[j] may move into the hole at i unless its home lies cyclically in (i, j] */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			tab[i] = tab[j];
			i = j;
		}
	}
	tab[i].p = 0;
	tab_used--;
}

// ------------------------------------------------------------------
// malloc(0): unique addresses in a PROT_NONE reservation (strict mode, and the default profile's malloc(0))
// ------------------------------------------------------------------

/* No lock: the default profile's malloc(0) and its free come here straight from the API (override.c), strict mode
 * under its lock. Until session 66 every malloc(0) and its free took the heap lock for a bitmap: a loop where a
 * third of the requests were malloc(0) ran 1.8x glibc's time in one thread and 12x in four
 * (zero/threads_do_not_take_the_heap_lock). Now the reservation is read in lines of ZERO_LINE addresses, a cache
 * line of state each (struct zero_line): seven words of bits, one per address (set: live), and a count of frees
 * for os_stats. A thread takes addresses from a line of its own (tl_zero_next), in order, with a compare-and-swap
 * of one word, and moves on to the next line of the round (zone_next) at the line's end; any thread's free clears its
 * bit with one atomic AND, which also tells a second free (the bit was clear) before anything changes. So a freed
 * address is mostly handed out again once the round comes back to its line, after ZERO_LINES lines, and a stale
 * pointer freed twice in between is reported; but a thread that stopped inside a line goes on where it stopped,
 * and may take an address freed there just before (the old next fit under the lock kept 262,144 requests between
 * reuses: the second free of a stale pointer is caught at best effort either way). Two threads share a line only
 * when the round comes round while one is still in it: the compare-and-swap keeps that correct. Costs: a
 * malloc(0) is a compare-and-swap on a line no other thread writes in the common case, and one atomic add on a
 * shared word per 448 of them; a free an atomic AND and an atomic add on the address's line. */
#define ZERO_LINE       ((size_t)512)            /* addresses per line; ZERO_WORDS * 64 of them are handed out */
#define ZERO_WORDS      7
#define ZERO_LINES      (ZERO_SLOTS / ZERO_LINE)
#define ZERO_FULL_SKIP  1024u                    /* malloc(0)s a thread serves with a block after finding none */
struct zero_line {
	uint64_t live[ZERO_WORDS];
	uint64_t frees; /* os_stats' count; its allocations are these frees and the live bits (osm_zero_counts) */
};
_Static_assert(sizeof(struct zero_line) == 64, "a line's state is one cache line");
_Static_assert(ZERO_WORDS * 64 <= ZERO_LINE, "a line's bits cover its addresses");

char *osm_zero_zone;        /* ZERO_SLOTS * ZERO_STEP bytes that fault on any access; set once */
#define ZERO_RETRY_NS 1000000000ull
static uint64_t zone_refused; /* when the reservation was last refused (coarse clock, + 1), 0 if never */
static uint64_t zone_next;    /* the round: the next line a thread takes (modulo ZERO_LINES) */
static struct zero_line zone_lines[ZERO_LINES] LARGE_BSS __attribute__((aligned(64)));
/* which addresses were ever handed out (a free of one never handed out is an invalid pointer) */
static uint64_t zone_used[ZERO_LINES][ZERO_WORDS] LARGE_BSS;
/* this thread's next address to try, + 1 (0: no line; take the next of the round) */
static __thread uint32_t tl_zero_next __attribute__((tls_model("initial-exec")));
static __thread uint16_t tl_zero_skip __attribute__((tls_model("initial-exec")));

/* The reservation, made at the first malloc(0); a refused one (RLIMIT_AS) is asked for again a second later, not
 * at every malloc(0) and not never: one refusal served every later malloc(0) a block for good (session 61's review:
 * 10.9 MB for 200,000 live ones, and a write through one no longer faulted; growth/zero_reservation_asked_again).
 * Two threads may both map one: the first published stays, the other goes back. */
static __attribute__((noinline)) char *zone_make(void)
{
	uint64_t refused = __atomic_load_n(&zone_refused, __ATOMIC_RELAXED);
	if (refused && osm_os_coarse_ns() + 1 - refused < ZERO_RETRY_NS)
		return NULL;
	char *z = osm_os_reserve(ZERO_SLOTS * ZERO_STEP, NULL), *none = NULL;
	if (!z) {
		__atomic_store_n(&zone_refused, osm_os_coarse_ns() + 1, __ATOMIC_RELAXED);
		return NULL;
	}
	if (!__atomic_compare_exchange_n(&osm_zero_zone, &none, z, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		osm_os_unmap(z, ZERO_SLOTS * ZERO_STEP);
		return none;
	}
	__atomic_store_n(&zone_refused, 0, __ATOMIC_RELAXED);
	return z;
}

/* A unique address, or NULL when the reservation cannot be had or has no free address (the caller serves a block
 * instead; this thread then does so for its next ZERO_FULL_SKIP malloc(0)s without looking again, as a full
 * reservation, 229,376 live addresses, is found by a look at every line). */
void *osm_zero_alloc(void)
{
	char *z = __atomic_load_n(&osm_zero_zone, __ATOMIC_ACQUIRE);
	if (!z && !(z = zone_make()))
		return NULL;
	if (tl_zero_skip) {
		tl_zero_skip--;
		return NULL;
	}
	size_t i = tl_zero_next, lines = 0;
	for (;;) {
		if (!i) { /* the next line of the round */
			if (lines < ZERO_LINES) {
				i = __atomic_fetch_add(&zone_next, 1, __ATOMIC_RELAXED) % ZERO_LINES * ZERO_LINE + 1;
			} else if (lines < 2 * ZERO_LINES) {
				/* ZERO_LINES takes of the round need not be every line: other threads take from it too,
				 * and a line one of them took may still hold free addresses. Before the reservation is
				 * called full, every line once, in order, not through the round */
				i = (lines - ZERO_LINES) * ZERO_LINE + 1;
			} else {
				tl_zero_skip = ZERO_FULL_SKIP;
				return NULL;
			}
			lines++;
		}
		size_t a = i - 1, line = a / ZERO_LINE, w = a % ZERO_LINE / 64;
		if (w >= ZERO_WORDS) { /* the line's last address was handed out last */
			i = 0;
			continue;
		}
		uint64_t *word = &zone_lines[line].live[w];
		uint64_t bits = __atomic_load_n(word, __ATOMIC_RELAXED), free_bits;
		do
			free_bits = ~bits & (~(uint64_t)0 << (a % 64));
		while (free_bits && !__atomic_compare_exchange_n(word, &bits, bits | (free_bits & -free_bits), true,
								 __ATOMIC_RELAXED, __ATOMIC_RELAXED));
		if (!free_bits) { /* the word's next; past the line's words, the next line */
			i = w + 1 < ZERO_WORDS ? line * ZERO_LINE + (w + 1) * 64 + 1 : 0;
			continue;
		}
		uint64_t bit = free_bits & -free_bits;
		a = line * ZERO_LINE + w * 64 + (size_t)__builtin_ctzll(bit);
		if (!(__atomic_load_n(&zone_used[line][w], __ATOMIC_RELAXED) & bit))
			__atomic_fetch_or(&zone_used[line][w], bit, __ATOMIC_RELAXED);
		tl_zero_next = (uint32_t)(a + 2); /* the line's end finds no free bit past it, and moves on */
		return z + a * ZERO_STEP;
	}
}

/* p is in the reservation: its line, word and bit; an address malloc(0) never returned is reported (`invalid
 * pointer` for api) and aborts. */
static uint64_t *zero_word(const void *p, const char *api, uint64_t *bit, size_t *line)
{
	size_t off = (size_t)((const char *)p - osm_zero_zone), a = off / ZERO_STEP, w = a % ZERO_LINE / 64;
	*line = a / ZERO_LINE;
	*bit = (uint64_t)1 << (a % 64);
	if (off % ZERO_STEP || w >= ZERO_WORDS || !(__atomic_load_n(&zone_used[*line][w], __ATOMIC_RELAXED) & *bit))
		osm_fatal_pointer(api, "invalid pointer", (void *)p);
	return &zone_lines[*line].live[w];
}

/* p is in the reservation: whether it is live (false: freed); an address malloc(0) never returned is reported
 * (`invalid pointer` for api) and aborts. */
bool osm_zero_live(const void *p, const char *api)
{
	uint64_t bit;
	size_t line;
	return __atomic_load_n(zero_word(p, api, &bit, &line), __ATOMIC_RELAXED) & bit;
}

/* p is in the reservation: it must be a live address of it (else `invalid pointer` or `double free` for api, and
 * abort, nothing changed). Clears it when `release`: one atomic AND, whose old value tells a second free. */
void osm_zero_check(void *p, const char *api, bool release)
{
	uint64_t bit;
	size_t line;
	uint64_t *word = zero_word(p, api, &bit, &line);
	if (!release) {
		if (!(__atomic_load_n(word, __ATOMIC_RELAXED) & bit))
			osm_fatal_pointer(api, "double free", p);
		return;
	}
	if (!(__atomic_fetch_and(word, ~bit, __ATOMIC_RELAXED) & bit))
		osm_fatal_pointer(api, "double free", p);
	__atomic_fetch_add(&zone_lines[line].frees, 1, __ATOMIC_RELAXED);
}

/* os_stats: the malloc(0)s served and their frees, added to *allocs and *frees. An allocation is not counted
 * as it is made (a second atomic operation on malloc(0)'s path): the allocations are the frees and the addresses
 * live now, a count of the live bits (28 KiB read). Each line's words move on their own while they are read: a
 * request made mid-way may be counted at the next call. */
void osm_zero_counts(size_t *allocs, size_t *frees)
{
	if (!__atomic_load_n(&osm_zero_zone, __ATOMIC_ACQUIRE))
		return;
	for (size_t l = 0; l < ZERO_LINES; l++) {
		size_t f = __atomic_load_n(&zone_lines[l].frees, __ATOMIC_RELAXED), live = 0;
		for (size_t w = 0; w < ZERO_WORDS; w++)
			live += (size_t)__builtin_popcountll(__atomic_load_n(&zone_lines[l].live[w], __ATOMIC_RELAXED));
		*frees += f;
		*allocs += f + live;
	}
}

// ------------------------------------------------------------------
// Allocation
// ------------------------------------------------------------------

/* A heap block (or, when the break cannot grow, a mapping of the core's) with room for n bytes and at least
 * CANARY_MIN more; the canary runs from p + n to the end of the block. */
static struct block_meta *alloc_small(size_t n, size_t a, char **out)
{
	size_t s = n + CANARY_MIN;
	struct block_meta *b;
	if (a > 16) {
		if (TRACING)
			osm_trace_event("memalign %z %z t=%t", a, s);
		b = osm_memalign(a, s);
	} else {
		if (TRACING)
			osm_trace_event("malloc %z t=%t", s);
		b = osm_malloc(s, SIZE_MAX); /* never the core's own mapping threshold: large blocks are ours */
	}
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	if (!b)
		return NULL;
	char *p = payload(b);
	memset(p + n, CANARY_BYTE, (size_t)(block_end(b) - p) - n);
	*out = p;
	return b;
}

/* The end of a large block's payload: its guard page. */
static inline char *large_guard(const struct block_meta *b)
{
	return (char *)round_down((uintptr_t)block_end(b) - 1, osm_os_page_size());
}

/* A mapping of its own: [header | pad | n bytes | canary to the granule | guard page]. The payload ends at the
 * guard (at the 16-byte granule; above an alignment of a page, as close as the alignment allows). */
static struct block_meta *alloc_large(size_t n, size_t a, char **out, uint32_t *flags)
{
	size_t page = osm_os_page_size(), body = round_up(n, 16);
	/* PAD_CANARY counted in: without it a body that filled the mapping to within 64 bytes of its header left the
	 * canary short or empty (malloc(1 MiB - 32): none; p[-1] was the header's link, which nothing checked, and the
	 * underwrite went unreported; strict/large_block_underwrite_at_every_pad, session 50) */
	size_t len = round_up(META_SIZE + PAD_CANARY + body + (a > 16 ? a : 0), page) + page;
	if (TRACING)
		osm_trace_event("malloc %z t=%t", len - META_SIZE);
	struct block_meta *b = osm_malloc(len - META_SIZE, 0); /* threshold 0: a mapping of exactly len bytes */
	if (TRACING)
		osm_trace_event("= %p", b ? payload(b) : NULL);
	if (!b)
		return NULL;
	char *guard = large_guard(b), *p = (char *)round_down((uintptr_t)(guard - body), a > 16 ? a : 16);
	size_t pad = min_size((size_t)(p - (char *)payload(b)), PAD_CANARY);
	memset(p - pad, CANARY_BYTE, pad);
	/* below the checked pad, the block's own pointer: check_gone tells a stale pointer at payload(b) for one of
	 * ours in O(1) (p - payload(b) is a multiple of 16: the word is all pad canary, or all below the pad) */
	if ((size_t)(p - (char *)payload(b)) >= PAD_CANARY + sizeof(uintptr_t))
		*(uintptr_t *)payload(b) = (uintptr_t)p;
	memset(p + n, CANARY_BYTE, min_size((size_t)(guard - p) - n, TAIL_CANARY));
	*flags |= E_LARGE;
	if (osm_os_protect(guard, page, false)) /* refused (too many mappings): the canary still checks */
		*flags |= E_GUARD;
	*out = p;
	return b;
}

static bool quarantine_release(const char *api);

void *osm_strict_alloc(size_t n, size_t a, bool zero, const char *api)
{
	if (a < 16)
		a = 16;
	if (n > MAX_REQUEST || a > MAX_REQUEST - n) {
		errno = ENOMEM;
		return NULL;
	}
	int saved = errno;
	uint32_t flags;
	char *p = NULL;
	/* Out of memory with blocks in the quarantine: they go back (each checked as it leaves, as malloc_trim's
	 * flush checks them), with the heap's waiting top, and the request is tried once more, as the default mode
	 * gives its caches back (medium.c, osm_front_reclaim). 63 MiB freed, then malloc(56 MiB) under RLIMIT_AS
	 * returned NULL where glibc and the default mode served it, and glibc's tst-dynarray-fail failed (a soak of
	 * session 60: strict/clean_enomem_empties_the_quarantine). */
	for (int tries = 0;; tries++) {
		flags = E_LIVE; /* what a try that failed set is not this block's */
		osm_lock();
		osm_set_op(api);
		osm_policy_keep_mappings(false); /* a freed large block must be unmapped (a touch then faults); at each
						  * request, since the first lock (osm_init) sets the profile's defaults */
		if (!tries)
			osm_note_request(n);
		if (n == 0 && a == 16)
			p = osm_zero_alloc();
		if (!p) {
			bool large = n + CANARY_MIN + META_SIZE >= MMAP_THRESHOLD;
			struct block_meta *b = large ? alloc_large(n, a, &p, &flags) : alloc_small(n, a, &p);
			struct sentry *e = b ? insert((uintptr_t)p) : NULL;
			if (e) {
				e->n = n;
				e->b = b;
				e->flags = flags;
			} else if (b) { /* no room for the side table: the block goes back */
				osm_free(b);
				p = NULL;
			}
		}
		bool retry = !p && !tries && quarantine_release(api);
		if (retry)
			osm_trim_for_retry();
		osm_unlock();
		if (!retry)
			break;
	}
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	if (zero && !(flags & E_LARGE)) /* a large block is a fresh mapping: zero already */
		memset(p, 0, n);
	errno = saved;
	return p;
}

// ------------------------------------------------------------------
// Checks of a live block: its header, then its canaries
// ------------------------------------------------------------------

/* The core's header of e: for a heap block the core's own O(1) check (a write before the payload breaks the
 * links or the cookie: `corrupted header`); for a large block, the same checks on the mapping's header, which
 * lies apart from the payload. */
static void check_header(const struct sentry *e, const char *api)
{
	void *p = (void *)e->p;
	if (!(e->flags & E_LARGE)) {
		osm_user_block(p, api, false);
		return;
	}
	size_t size;
	const struct block_meta *b = e->b;
	if (osm_mapset_find(b, &size) != MAPSET_LIVE || b->status != STATUS_MAPPED || b->size != size ||
	    block_tag(b) != block_cookie(b))
		osm_fatal_pointer(api, "corrupted header", p);
}

static void check_live(const struct sentry *e, const char *api)
{
	char *p = (char *)e->p;
	check_header(e, api);
	if (e->flags & E_LARGE) {
		char *guard = large_guard(e->b);
		size_t pad = min_size((size_t)(p - (char *)payload(e->b)), PAD_CANARY);
		if (mismatch(p - pad, pad, CANARY_BYTE))
			osm_fatal_pointer(api, "buffer underflow", p);
		if (mismatch(p + e->n, min_size((size_t)(guard - p) - e->n, TAIL_CANARY), CANARY_BYTE))
			osm_fatal_pointer(api, "buffer overflow", p);
	} else if (mismatch(p + e->n, (size_t)(block_end(e->b) - p) - e->n, CANARY_BYTE)) {
		osm_fatal_pointer(api, "buffer overflow", p);
	}
}

// ------------------------------------------------------------------
// The quarantine: freed blocks wait here, filled (or sealed), before the core gets them back
// ------------------------------------------------------------------

struct qent {
	uintptr_t p;
	size_t fill;  /* bytes from p that hold FREED_BYTE */
	size_t cost;  /* what the block holds: header and payload, or the whole mapping */
};

static struct qent ring[QUAR_BLOCKS] LARGE_BSS;
static size_t q_head, q_count, q_bytes;

/* The fill of a block in the quarantine is intact. */
static void verify_fill(const struct qent *q, const char *api)
{
	if (mismatch((const void *)q->p, q->fill, FREED_BYTE))
		osm_fatal_pointer(api, "write after free", (void *)q->p);
}

/* The oldest block leaves: fill verified, header checked again (a write before it after the free), then the
 * core frees it. */
/* The payloads of the last 64 large blocks given back to the core (unmapped): a second free of one is a double
 * free. The set of gone mappings alone knows their headers, which lie a page or more below the payload when it is
 * aligned to a page or more (posix_memalign(4096, 1 MiB): "invalid pointer" until session 50). */
static uintptr_t gone_large[64];
static unsigned gone_large_next;

static void note_gone(const struct sentry *e)
{
	if (e->flags & E_LARGE)
		gone_large[gone_large_next++ & 63] = e->p;
}

static void evict(const char *api)
{
	struct qent *q = &ring[q_head];
	struct sentry *e = find(q->p);
	verify_fill(q, api);
	q_head = (q_head + 1) % QUAR_BLOCKS;
	q_count--;
	q_bytes -= q->cost;
	if (!e) /* cannot be: a block in the quarantine is still allocated, so no other entry took its address */
		return;
	check_header(e, api);
	struct block_meta *b = e->b;
	note_gone(e);
	erase(e);
	if (TRACING)
		osm_trace_event("free %p t=%t", payload(b));
	osm_free(b);
}

/* e (live, checked) enters the quarantine. A heap block is filled to its end; a large block is sealed past its
 * header's page and its pages discarded (a touch faults; nothing to verify there), the first page filled. A block
 * larger than the whole quarantine goes straight back to the core, which unmaps it (a touch faults too). */
static void quarantine(struct sentry *e, const char *api)
{
	char *p = (char *)e->p;
	struct qent q = { e->p, 0, 0 };
	if (e->flags & E_LARGE) {
		size_t page = osm_os_page_size();
		char *start = (char *)e->b, *guard = large_guard(e->b), *seal = start + page;
		q.cost = (size_t)(block_end(e->b) - start);
		if (q.cost > QUAR_BYTES) {
			struct block_meta *b = e->b;
			note_gone(e);
			erase(e);
			if (TRACING)
				osm_trace_event("free %p t=%t", payload(b));
			osm_free(b);
			return;
		}
		q.fill = e->n;
		if (guard > seal && osm_os_protect(seal, (size_t)(guard - seal), false)) {
			osm_os_discard(seal, (size_t)(guard - seal));
			e->flags |= E_SEALED;
			q.fill = p < seal ? min_size((size_t)(seal - p), e->n) : 0;
		}
	} else {
		q.cost = META_SIZE + e->b->size;
		q.fill = (size_t)(block_end(e->b) - p);
	}
	memset(p, FREED_BYTE, q.fill);
	e->flags = (e->flags & ~(uint32_t)E_LIVE) | E_FREED;
	while (q_count == QUAR_BLOCKS || (q_count && q_bytes + q.cost > QUAR_BYTES))
		evict(api);
	ring[(q_head + q_count) % QUAR_BLOCKS] = q;
	q_count++;
	q_bytes += q.cost;
}

/* Lock held: every block of the quarantine leaves it (each checked); whether there were any. */
static bool quarantine_release(const char *api)
{
	bool any = q_count != 0;
	while (q_count)
		evict(api);
	return any;
}

void osm_strict_flush(const char *api)
{
	osm_lock();
	osm_set_op(api);
	quarantine_release(api);
	osm_unlock();
}

/* At the very end of exit: the blocks still in the quarantine keep their fill, and the live ones their
 * canaries (a block written past its end and never freed). Nothing is freed. */
static void strict_at_exit(void *arg)
{
	(void)arg;
	if (osm_lock_held_by_self()) /* exit() from a signal handler inside the allocator: the blocks may be half
				      * changed, and the lock is this thread's (it waited for itself until session 50) */
		return;
	osm_lock();
	osm_set_op("exit");
	for (size_t k = 0; k < q_count; k++)
		verify_fill(&ring[(q_head + k) % QUAR_BLOCKS], "exit");
	for (size_t i = 0; tab && i <= tab_mask; i++)
		if (tab[i].p && (tab[i].flags & E_LIVE))
			check_live(&tab[i], "exit");
	osm_unlock();
}

__attribute__((constructor)) static void strict_start(void)
{
	if (osm_strict_on())
		osm_os_at_exit_last(strict_at_exit, true);
}

// ------------------------------------------------------------------
// free, realloc, malloc_usable_size, operator delete
// ------------------------------------------------------------------

/* p is in no entry. A large block that already went back to the core (one larger than the quarantine, or one
 * that left it) was unmapped: its header, in the page before p's, is one the set of mappings saw go. Then p is
 * freed twice; else the core's checks say what it is. */
static void check_gone(void *p, const char *api)
{
	size_t size;
	/* p's header is a live mapping's: an os_malloc block (outside the side table) that the kernel may have mapped
	 * where one of our large blocks was unmapped (p is then live again, and the ring below is about the block that
	 * was there before), or one of our blocks, whose pointer is not p (a stale or forged one, which the core must
	 * not free behind the side table). Ours hold their own pointer at payload(b) (alloc_large), unless their pad is
	 * too short for it (then all canary there): only those cost a scan of the table. Scanning for every mapped
	 * os_malloc block made each of their frees cost 3 ms with a million live blocks (session 64's review). */
	bool mapped = p && !osm_in_heap(p) && osm_mapset_find(block_of(p), &size) == MAPSET_LIVE, mine = false;
	if (mapped) { /* the mapping's first page: its first payload word is readable */
		uintptr_t v;
		memcpy(&v, p, sizeof v);
		const struct sentry *o = v ? find(v) : NULL; /* find(0) would answer an empty entry */
		mine = o && o->b == block_of(p);
		for (size_t i = 0; !mine && v == 0x0101010101010101ull * CANARY_BYTE && tab && i <= tab_mask; i++)
			mine = tab[i].p && tab[i].b == block_of(p);
	}
	for (unsigned k = 0; p && k < 64; k++) /* the ring's unused entries are 0 */
		if (gone_large[k] == (uintptr_t)p && (!mapped || mine))
			osm_fatal_pointer(api, "double free", p);
	if (mine)
		osm_fatal_pointer(api, "invalid pointer", p);
	uintptr_t h = round_down((uintptr_t)p - META_SIZE, osm_os_page_size());
	if (!osm_in_heap(p) && osm_mapset_find((const struct block_meta *)h, &size) == MAPSET_GONE)
		osm_fatal_pointer(api, "double free", p);
}

/* Everything free does, for `api`; sized: operator delete(p, n), n checked against the size asked for. */
static void free_checked(void *p, const char *api, bool sized, size_t n)
{
	if (!p)
		return;
	int saved = errno; /* free keeps errno */
	osm_lock();
	osm_set_op(api);
	struct sentry *e;
	if (osm_zero_owns(p)) {
		osm_zero_check(p, api, false);
		if (sized && n)
			osm_fatal_pointer(api, "size mismatch", p);
		osm_zero_check(p, api, true);
	} else if ((e = find((uintptr_t)p))) {
		if (e->flags & E_FREED)
			osm_fatal_pointer(api, "double free", p);
		check_live(e, api);
		if (sized && n != e->n)
			osm_fatal_pointer(api, "size mismatch", p);
		quarantine(e, api);
	} else if (osm_front_owns(p)) { /* cannot be: the front is never used in strict mode; but be exact */
		osm_unlock();
		osm_front_free(p, api);
		errno = saved;
		return;
	} else { /* not ours: the core's checks report it, or it is an os_malloc block (freed at once) */
		check_gone(p, api);
		if (TRACING)
			osm_trace_event("free %p t=%t", p);
		osm_free(osm_user_block(p, api, false));
	}
	osm_unlock();
	errno = saved;
}

void osm_strict_free(void *p, const char *api)
{
	free_checked(p, api, false, 0);
}

void osm_strict_free_sized(void *p, size_t n, const char *api)
{
	free_checked(p, api, true, n);
}

/* The bytes p holds, after free's checks (a freed or bad pointer is reported for api); p is not NULL. */
static size_t live_size(void *p, const char *api)
{
	size_t n;
	osm_lock();
	osm_set_op(api);
	struct sentry *e;
	if (osm_zero_owns(p)) {
		osm_zero_check(p, api, false);
		n = 0;
	} else if ((e = find((uintptr_t)p))) {
		if (e->flags & E_FREED)
			osm_fatal_pointer(api, "double free", p);
		check_live(e, api);
		n = e->n;
	} else if (osm_front_owns(p)) {
		osm_unlock();
		return osm_front_usable(p, api);
	} else {
		check_gone(p, api);
		n = osm_user_block(p, api, false)->size;
	}
	osm_unlock();
	return n;
}

/* Always a new block: the old one goes to the quarantine, so a program that keeps using it is caught. */
void *osm_strict_realloc(void *p, size_t n)
{
	if (!p)
		return osm_strict_alloc(n, 0, false, "realloc");
	int saved = errno;
	size_t old = live_size(p, "realloc"); /* before the size: a bad pointer is reported, not ENOMEM */
	if (n > MAX_REQUEST) {
		errno = ENOMEM;
		return NULL;
	}
	void *q = NULL;
	if (n) { /* glibc: realloc(p, 0) frees p and returns NULL */
		q = osm_strict_alloc(n, 0, false, "realloc");
		if (!q)
			return NULL; /* ENOMEM, p untouched */
		memcpy(q, p, min_size(old, n));
	}
	free_checked(p, "realloc", false, 0);
	errno = saved;
	return q;
}

size_t osm_strict_usable(void *p, const char *api)
{
	return p ? live_size(p, api) : 0;
}
