/* fuzz_corrupt: what a program that breaks the rules can do to osmem. The input is a sequence of allocator
 * operations mixed with corruptions:
 *   - random bytes, zeros, bit flips, small numbers or forged pointers written into the header of a live block,
 *     into the header (or, for a front slot, the first two words: the encoded link and the freed mark) of a freed
 *     block, and past the end of a live block (an overflow into the next header or slot);
 *   - bad pointers given to free, realloc, os_realloc and malloc_usable_size: misaligned, inside a block, freed
 *     already, on the stack, in .bss, past the heap, wild.
 * The requirement: each run ends either in a clean abort with osmem's message (`osmem: <fn>(): ...`) or in correct
 * behaviour; never a crash, a hang or a sanitizer report inside osmem.
 *
 * An abort ends a process, so every input runs in a forked child; the parent reads the child's stderr and its end.
 *   - exit 0 (ran to the end, the model held), or SIGABRT after an `osmem: <fn>(): ` line: fine;
 *   - anything else (SIGSEGV, SIGBUS, a hang (SIGALRM after $FUZZ_ALARM s, 20), a sanitizer report, a model failure before any corruption): a
 *     finding: the parent prints FINDING with the child's stderr and aborts, so libFuzzer keeps the input;
 *   - the model failing after a corruption that osmem did not notice ("silent": e.g. a free block's size made
 *     smaller, a bad pointer accepted): counted, printed as SILENT (the first few), and the input saved in
 *     $FUZZ_SILENT_DIR when set; with FUZZ_SILENT_FATAL=1 it is a finding too.
 * The child's coverage reaches libFuzzer: the child copies its 8-bit counters (the __sancov_cntrs section) into
 * shared memory as it ends, also from a signal handler, and the parent copies them back before returning.
 *
 * Builds: fuzz_corrupt (the drop-in, default profile: front slots and core headers), fuzz_corrupt_classic (the
 * os_* API on libosmem.a, with ASan and UBSan). */
#include "fuzz_common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>

#define SLOTS   24
#define RING    32
#define MAX_OPS 300

struct slot {
	unsigned char *p;
	size_t n;
	uint64_t seed;
	size_t usable; /* taken when it was handed out: its header may be corrupted since */
	bool front;
	bool dirty;    /* a corruption wrote into it: its pattern is not checked */
};

struct freed {
	unsigned char *p;
	size_t usable;
	bool front, mapped;
	bool tampered; /* a corruption wrote into its header or its first words: a double free may pass unseen */
};

static struct slot table[SLOTS];
static struct freed ring[RING];
static unsigned ring_n, ring_next;
static uint64_t gen;
static bool corrupted;      /* a corruption happened: a model failure from now on is "silent", not a bug */
static char what[256];      /* the last corruption, for reports */

#ifdef FUZZ_DROPIN
/* No header before p: a front slot, or malloc(0)'s address in the default profile (a PROT_NONE reservation) */
static bool is_front(const void *p) { return osm_front_owns(p) || osm_zero_owns(p); }
/* malloc(0)'s address: none of its bytes (nor those around it) can be written; the harness corrupts others */
static bool is_zero(const void *p) { return osm_zero_owns(p); }
static size_t usable_of(void *p) { return malloc_usable_size(p); }
#define A_MALLOC(n)     malloc(n)
#define A_CALLOC(a, b)  calloc(a, b)
#define A_REALLOC(p, n) realloc(p, n)
#define A_FREE(p)       free(p)
#else
static bool is_front(const void *p) { (void)p; return false; }
static bool is_zero(const void *p) { (void)p; return false; }
static size_t usable_of(void *p) { return block_of(p)->size; }
#define A_MALLOC(n)     os_malloc(n)
#define A_CALLOC(a, b)  os_calloc(a, b)
#define A_REALLOC(p, n) os_realloc(p, n)
#define A_FREE(p)       os_free(p)
#endif

// ------------------------------------------------------------------
// Coverage from the child, through shared memory
// ------------------------------------------------------------------

uint8_t *fz_cntrs_start(size_t *n); /* fuzz/cntrs.c */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));
extern char __executable_start[];
static uint8_t *shared_cntrs, *cntrs;
static size_t n_cntrs;

static void counters_out(void)
{
	if (shared_cntrs)
		memcpy(shared_cntrs, cntrs, n_cntrs);
}

// ------------------------------------------------------------------
// The child
// ------------------------------------------------------------------

static void put(const char *s) { ssize_t w = write(STDERR_FILENO, s, strlen(s)); (void)w; }

static _Noreturn __attribute__((format(printf, 1, 2))) void model_fail(const char *fmt, ...)
{
	char msg[640];
	int k = snprintf(msg, sizeof msg, "MODEL: op %ld: ", fz_op_no);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + k, sizeof msg - (size_t)k, fmt, ap);
	va_end(ap);
	put(msg);
	put(corrupted ? "\n  after the corruption: " : "\n  with no corruption before it\n");
	if (corrupted) {
		put(what);
		put("\n");
	}
	counters_out();
	_exit(corrupted ? 3 : 4);
}

static struct sigaction old_act[NSIG];

static void crash_handler(int sig, siginfo_t *si, void *ctx)
{
	char buf[256];
	const ucontext_t *uc = ctx;
	uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	snprintf(buf, sizeof buf, "CRASH: signal %d at address %p, pc %p (addr2line -e <harness> 0x%lx)\n", sig,
		 si->si_addr, (void *)pc, (unsigned long)(pc - (uintptr_t)__executable_start));
	if (sig != SIGABRT)
		put(buf);
	counters_out();
	if (old_act[sig].sa_flags & SA_SIGINFO && sig != SIGABRT) {
		sigaction(sig, &old_act[sig], NULL); /* ASan's handler: its report, with the stack */
		old_act[sig].sa_sigaction(sig, si, ctx);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void child_setup(void)
{
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(NULL); /* libFuzzer's would write an artifact from the child */
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP };
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = crash_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		struct sigaction old;
		sigaction(sigs[i], NULL, &old);
		/* keep a sanitizer's handler to chain to; libFuzzer's own (no sanitizer) would report from the child */
		old_act[sigs[i]] = old;
#ifdef FUZZ_DROPIN
		old_act[sigs[i]].sa_flags = 0;
#endif
		sigaction(sigs[i], &sa, NULL);
	}
	signal(SIGALRM, SIG_DFL); /* a hang ends the child; libFuzzer's timeout handler must not run here */
	const char *secs = getenv("FUZZ_ALARM");
	alarm(secs ? (unsigned)atoi(secs) : 20);
}

static uint64_t new_seed(int s)
{
	gen++;
	return ((uint64_t)s << 48) ^ (gen * 0x9E3779B97F4A7C15ULL) ^ 0x5bd1e995u;
}

static void extent(const unsigned char *p, bool front, size_t usable, const unsigned char **lo,
		   const unsigned char **hi)
{
	*lo = p - (front ? 0 : META_SIZE);
	*hi = p + usable;
}

static void check_new(void *p, size_t n, int self, const char *api)
{
	if (!p)
		model_fail("%s(%zu) returned NULL (errno %d)", api, n, errno);
	if ((uintptr_t)p & (GRANULE - 1))
		model_fail("%s(%zu) = %p: not aligned", api, n, p);
	if (usable_of(p) < n)
		model_fail("%s(%zu) = %p: usable %zu", api, n, p, usable_of(p));
	const unsigned char *lo, *hi;
	extent(p, is_front(p), usable_of(p), &lo, &hi);
	for (int i = 0; i < SLOTS; i++) {
		if (i == self || !table[i].p)
			continue;
		const unsigned char *lo2, *hi2;
		extent(table[i].p, table[i].front, table[i].usable, &lo2, &hi2);
		if (lo < hi2 && lo2 < hi)
			model_fail("%s(%zu) = %p overlaps the live block %p of slot %d", api, n, p, (void *)table[i].p, i);
	}
}

static void verify(int s, const char *when)
{
	struct slot *b = &table[s];
	if (b->dirty)
		return;
	size_t bad = fz_pat_check(b->p, b->seed, 0, b->n);
	if (bad != b->n)
		model_fail("slot %d (%p, %zu B) %s: byte %zu changed", s, (void *)b->p, b->n, when, bad);
}

static void give(int s, void *p, size_t n)
{
	table[s] = (struct slot){ p, n, new_seed(s), usable_of(p), is_front(p), false };
	fz_pat_fill(p, table[s].seed, 0, n);
	/* a freed entry at the same address is live again: it is no longer a double free */
	for (unsigned i = 0; i < ring_n; i++)
		if (ring[i].p == p)
			ring[i].p = NULL;
}

/* What a live block is, taken before it is freed (a freed mapping cannot be read). */
static struct freed describe(void *p)
{
	int s = 0;
	while (table[s].p != p)
		s++;
	return (struct freed){ p, table[s].usable, table[s].front,
			       !table[s].front && table[s].usable + META_SIZE >= MMAP_THRESHOLD, false };
}

static void remember_freed(struct freed f)
{
	ring[ring_next] = f;
	ring_next = (ring_next + 1) % RING;
	if (ring_n < RING)
		ring_n++;
}

/* Whether [a, a + len) may be written by the harness: its bytes go through a pipe and back into place, and the
 * kernel answers EFAULT (no signal) for a page that cannot be read or written. msync, used before, succeeds on
 * PROT_NONE and read-only pages: a write past a mapped block's end then hit a guard page of one of libFuzzer's
 * threads now and then (fuzz/crashes/fuzz_corrupt/guard_page_write-07fe2135). */
static bool mapped_range(void *a, size_t len)
{
	static int pfd[2] = { -1, -1 };
	if (pfd[0] < 0 && pipe(pfd) != 0)
		return false;
	unsigned char drain[256];
	if (len > sizeof drain)
		return false;
	if (write(pfd[1], a, len) != (ssize_t)len)
		return false;                      /* not readable: nothing went into the pipe */
	if (read(pfd[0], a, len) == (ssize_t)len)
		return true;                       /* the same bytes written back: writable */
	(void)!read(pfd[0], drain, len);           /* not writable: empty the pipe for the next test */
	return false;
}

static bool is_live(const void *p)
{
	for (int i = 0; i < SLOTS; i++)
		if (table[i].p == p)
			return true;
	return false;
}

static void do_free(int s)
{
	verify(s, "before free");
	remember_freed(describe(table[s].p));
	A_FREE(table[s].p);
	table[s].p = NULL;
}

static void do_alloc(int s, struct fz_in *in)
{
	uint8_t k = in_u8(in);
	size_t n = in_size(in);
	if (!n)
		n = 1;
	void *p;
	if (k % 4 == 0) {
		p = A_CALLOC(1, n);
		check_new(p, n, s, "calloc");
		size_t i = fz_nonzero(p, n);
		if (i != n)
			model_fail("calloc(%zu) = %p: byte %zu is not zero", n, p, i);
	} else {
		p = A_MALLOC(n);
		check_new(p, n, s, "malloc");
	}
	give(s, p, n);
}

static void do_realloc(int s, struct fz_in *in)
{
	struct slot *b = &table[s];
	size_t n = in_size(in);
	if (!n)
		n = 1;
	verify(s, "before realloc");
	struct freed old = describe(b->p);
	void *q = A_REALLOC(b->p, n);
	check_new(q, n, s, "realloc");
	if (!b->dirty) {
		size_t keep = n < b->n ? n : b->n, bad = fz_pat_check(q, b->seed, 0, keep);
		if (bad != keep)
			model_fail("realloc(%p, %zu -> %zu) = %p: byte %zu not kept", (void *)b->p, b->n, n, q, bad);
	}
	if (q != b->p)
		remember_freed(old); /* freed by the move */
	b->p = q;
	if (n > b->n)
		fz_pat_fill(q, b->seed, b->n, n);
	b->n = n;
	b->usable = usable_of(q);
	b->front = is_front(q);
}

/* The bytes a corruption writes: from the input, zeros, all ones, a bit flip, a small number, or a forged pointer
 * (another block's address, give or take a few granules). */
static void forge(unsigned char *dst, size_t len, struct fz_in *in)
{
	uint8_t mode = in_u8(in);
	switch (mode % 6) {
	case 0:
		for (size_t i = 0; i < len; i++)
			dst[i] = in_u8(in);
		snprintf(what + strlen(what), sizeof what - strlen(what), " (input bytes)");
		break;
	case 1:
		memset(dst, 0, len);
		snprintf(what + strlen(what), sizeof what - strlen(what), " (zeros)");
		break;
	case 2:
		memset(dst, 0xff, len);
		snprintf(what + strlen(what), sizeof what - strlen(what), " (0xff)");
		break;
	case 3: {
		size_t bit = in_u8(in) % (8 * len);
		dst[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		snprintf(what + strlen(what), sizeof what - strlen(what), " (bit %zu flipped)", bit);
		break;
	}
	case 4: {
		uint64_t v = in_u16(in);
		memcpy(dst, &v, len < 8 ? len : 8);
		snprintf(what + strlen(what), sizeof what - strlen(what), " (small number %llu)", (unsigned long long)v);
		break;
	}
	default: {
		const unsigned char *base = table[in_u8(in) % SLOTS].p;
		if (!base && ring_n)
			base = ring[in_u8(in) % ring_n].p;
		uintptr_t v = (uintptr_t)base + (uintptr_t)(intptr_t)(int8_t)in_u8(in) * GRANULE;
		memcpy(dst, &v, len < 8 ? len : 8);
		snprintf(what + strlen(what), sizeof what - strlen(what), " (pointer %p)", (void *)v);
		break;
	}
	}
}

/* Marks the live blocks whose bytes [a, a + len) touches (their patterns are no longer the program's). */
static void dirty_range(const unsigned char *a, size_t len)
{
	for (int i = 0; i < SLOTS; i++)
		if (table[i].p && a < table[i].p + table[i].n && table[i].p < a + len)
			table[i].dirty = true;
}

static void corrupt_at(unsigned char *t, size_t len, struct fz_in *in, const char *kind, const void *blk)
{
	if (!len || !mapped_range(t, len))
		return;
	snprintf(what, sizeof what, "%s: %zu bytes at %p (block %p)", kind, len, (void *)t, blk);
	dirty_range(t, len);
	for (unsigned i = 0; i < ring_n; i++) {
		const unsigned char *f = ring[i].p;
		if (f && t < f + 16 && f - META_SIZE < t + len)
			ring[i].tampered = true;
	}
	forge(t, len, in);
	corrupted = true;
	if (getenv("FUZZ_TRACE")) { /* triage: every corruption, as it happens */
		char line[320];
		snprintf(line, sizeof line, "op %ld: %s\n", fz_op_no, what);
		put(line);
	}
}

static void do_corrupt(struct fz_in *in)
{
	uint8_t k = in_u8(in);
	int s = in_u8(in) % SLOTS;
	uint8_t off = in_u8(in), len = in_u8(in);
	unsigned char *p = table[s].p;
	switch (k % 3) {
	case 0: /* a live block's header; a front slot has none: its neighbour's first words instead */
		if (!p || is_zero(p))
			return;
		if (table[s].front) {
			size_t u = table[s].usable; /* not the header's: it may be corrupted already */
			corrupt_at(p + u + off % 16, 1 + len % 16, in, "front: overflow into the next slot", p);
		} else {
			off %= META_SIZE;
			corrupt_at(p - META_SIZE + off, 1 + len % (META_SIZE - off), in, "live header", p);
		}
		return;
	case 1: /* past the end of a live block: the next header, or the next slot's link and mark */
		if (!p || is_zero(p))
			return;
		corrupt_at(p + table[s].usable + off % 16, 1 + len % 40, in, "overflow past the end", p);
		return;
	default: { /* a freed block: its header, or a front slot's link and freed mark */
		if (!ring_n)
			return;
		struct freed *f = &ring[s % ring_n];
		if (!f->p || f->mapped || is_zero(f->p))
			return; /* reused, unmapped, or malloc(0)'s address */
		if (f->front) {
			off %= 16;
			corrupt_at(f->p + off, 1 + len % (16 - off), in, "freed front slot", f->p);
		} else {
			off %= META_SIZE + 16;
			corrupt_at(f->p - META_SIZE + off, 1 + len % 32, in, "freed block's header", f->p);
		}
		return;
	}
	}
}

/* A pointer osmem never handed out (or took back): free, realloc and malloc_usable_size must report it and
 * abort. os_realloc of a block already free may instead return NULL (docs/CLASSIC.md rule 3). */
static void do_bad_pointer(struct fz_in *in)
{
	uint8_t k = in_u8(in), how = in_u8(in);
	int s = in_u8(in) % SLOTS;
	unsigned char *p = table[s].p, *bad = NULL;
	static unsigned char some_global[64];
	int local;
	bool may_return = false, tampered = false;
	const char *kind;
	switch (k % 7) {
	case 0:
		if (!p)
			return;
		bad = p + 1 + in_u8(in) % (GRANULE - 1);
		kind = "misaligned";
		break;
	case 1: {
		if (!p || table[s].front)
			return; /* inside a front page, a granule step can be the next slot */
		size_t steps = table[s].usable / GRANULE;
		if (steps < 2)
			return;
		bad = p + GRANULE * (1 + in_u16(in) % (steps - 1));
		kind = "inside a block";
		break;
	}
	case 2:
		if (!ring_n || !ring[s % ring_n].p || is_live(ring[s % ring_n].p))
			return;
		bad = ring[s % ring_n].p;
		kind = ring[s % ring_n].tampered ? "freed already, its first words or header overwritten" : "freed already";
		/* os_realloc: rule 3 (in the classic build, realloc is os_realloc too) */
		may_return = how % 4 == 1 || (GRANULE == 8 && how % 4 != 0);
		tampered = ring[s % ring_n].tampered; /* its mark or header overwritten: it may pass for a live block */
		break;
	case 3:
		bad = (unsigned char *)&local;
		kind = "on the stack";
		break;
	case 4:
		bad = some_global + 16;
		kind = "in .bss";
		break;
	case 5:
		bad = (unsigned char *)sbrk(0) + 4096 * (1 + in_u8(in) % 4);
		kind = "past the heap";
		break;
	default:
		bad = (unsigned char *)(uintptr_t)(0x100000000000ULL + ((uintptr_t)in_u16(in) << 20));
		kind = "wild";
		break;
	}
	snprintf(what, sizeof what, "bad pointer (%s) %p", kind, (void *)bad);
	corrupted = true;
	const char *api;
	void *r = NULL;
	switch (how % 4) {
	case 0:
		api = "free";
		A_FREE(bad);
		break;
	case 1:
		api = "os_realloc";
		r = os_realloc(bad, 64);
		break;
	case 2:
#ifdef FUZZ_DROPIN
		api = "malloc_usable_size";
		r = (void *)malloc_usable_size(bad);
		break;
#endif
	default:
		api = "realloc";
		r = A_REALLOC(bad, 64);
		break;
	}
	if (tampered) {
		/* A freed block whose mark or header a corruption overwrote passes for a live one, and osmem may have taken
		 * the call as one on a live block: freed it again, or (os_realloc, realloc) moved it into a block the
		 * model never sees handed out. Nothing after can be modelled: the run ends here. It went on until session
		 * 70, and the block such a realloc handed out (a cached slot of the model's freed ones) was later given to
		 * os_realloc as "freed already" and accepted: the 47 silent results of a 150 s run were all of this kind
		 * (42 such os_reallocs, 2 malloc_usable_size, 3 heap checks that found a block outside the heap). */
		counters_out();
		_exit(0);
	}
	if (may_return && !r)
		return;
	model_fail("%s(%p) returned (%p): a bad pointer (%s) accepted", api, (void *)bad, r, kind);
}

static int child_main(const uint8_t *data, size_t size)
{
	child_setup();
	struct fz_in in = { data, size };
	for (fz_op_no = 0; in.n && fz_op_no < MAX_OPS; fz_op_no++) {
		uint8_t k = in_u8(&in);
		int s = in_u8(&in) % SLOTS;
		switch (k % 16) {
		case 0:
		case 1:
			do_corrupt(&in);
			break;
		case 2:
			if (k & 0x30)
				break; /* bad pointers rarely: each ends the run */
			do_bad_pointer(&in);
			break;
		case 3:
			if (os_heap_check() != 0 && !corrupted)
				model_fail("os_heap_check() failed with no corruption");
			break;
		case 4:
		case 5:
		case 6:
		case 7:
			if (table[s].p)
				do_free(s);
			else
				do_alloc(s, &in);
			break;
		case 8:
		case 9:
		case 10:
			if (table[s].p)
				do_realloc(s, &in);
			else
				do_alloc(s, &in);
			break;
		default:
			if (table[s].p)
				verify(s, "between operations");
			else
				do_alloc(s, &in);
			break;
		}
	}
	for (int s = 0; s < SLOTS; s++)
		if (table[s].p)
			do_free(s);
	if (os_heap_check() != 0 && !corrupted)
		model_fail("os_heap_check() failed at the end with no corruption");
	counters_out();
	_exit(0);
}

// ------------------------------------------------------------------
// The parent
// ------------------------------------------------------------------

static unsigned long n_runs, n_ok, n_clean, n_silent, n_known;
static char errbuf[65536];

static void print_stats(void)
{
	char buf[256];
	snprintf(buf, sizeof buf, "corrupt stats: children=%lu ran_clean=%lu osmem_aborts=%lu silent=%lu known=%lu\n",
		 n_runs, n_ok, n_clean, n_silent, n_known);
	put(buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
#ifdef FUZZ_DROPIN
	fz_harness = "fuzz_corrupt";
	const char *have = getenv("OSMEM_PROFILE");
	if ((have && strcmp(have, "classic") == 0) || getenv("OSMEM_TRACE") || getenv("OSMEM_FRONT")) {
		if (getenv("FUZZ_REEXECED"))
			fz_fail("the environment did not take after re-executing");
		unsetenv("OSMEM_PROFILE");
		unsetenv("OSMEM_TRACE");
		unsetenv("OSMEM_FRONT");
		setenv("FUZZ_REEXECED", "1", 1);
		execv("/proc/self/exe", *argv);
		fz_fail("execv(/proc/self/exe) failed: errno %d", errno);
	}
#else
	(void)argv;
	fz_harness = "fuzz_corrupt_classic";
#endif
	cntrs = fz_cntrs_start(&n_cntrs);
	if (n_cntrs) {
		shared_cntrs = mmap(NULL, n_cntrs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shared_cntrs == MAP_FAILED)
			fz_fail("mmap of %zu shared bytes failed", n_cntrs);
	}
	atexit(print_stats);
	return 0;
}

static void save_silent(const uint8_t *data, size_t size)
{
	const char *dir = getenv("FUZZ_SILENT_DIR");
	if (!dir)
		return;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 0x100000001b3ULL;
	char path[512];
	snprintf(path, sizeof path, "%s/silent-%016llx", dir, (unsigned long long)h);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return;
	ssize_t w = write(fd, data, size);
	(void)w;
	close(fd);
}

/* A line `osmem: <fn>(): <what>` (osm_os_fatal_pointer's report) in the child's stderr. */
static bool osmem_report(const char *s)
{
	for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, "osmem: ", 7) != 0)
			continue;
		const char *f = l + 7;
		while ((*f >= 'a' && *f <= 'z') || *f == '_' || (*f >= '0' && *f <= '9'))
			f++;
		if (f > l + 7 && strncmp(f, "(): ", 4) == 0)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[2];
	if (pipe(fds) != 0)
		fz_fail("pipe: errno %d", errno);
	if (shared_cntrs)
		memcpy(shared_cntrs, cntrs, n_cntrs);
	pid_t pid = fork();
	if (pid < 0)
		fz_fail("fork: errno %d", errno);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		close(fds[1]);
		child_main(data, size);
	}
	close(fds[1]);
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fds[0], errbuf + got, sizeof errbuf - 1 - got);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r == 0 || got == sizeof errbuf - 1)
				break;
			break;
		}
		got += (size_t)r;
		if (got == sizeof errbuf - 1) { /* drain the rest */
			char sink[4096];
			while (read(fds[0], sink, sizeof sink) > 0)
				;
			break;
		}
	}
	errbuf[got] = 0;
	close(fds[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			fz_fail("waitpid: errno %d", errno);
	if (shared_cntrs)
		memcpy(cntrs, shared_cntrs, n_cntrs);
	n_runs++;
	bool osmem_msg = osmem_report(errbuf);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) { /* os_heap_check may have said what a corruption broke */
		n_ok++;
		return 0;
	}
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && osmem_msg && !strstr(errbuf, "CRASH:") &&
	    !strstr(errbuf, "Sanitizer") && !strstr(errbuf, "runtime error")) {
		n_clean++;
		return 0;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
		n_silent++;
		save_silent(data, size);
		if (n_silent <= 10) {
			put("SILENT: ");
			put(errbuf);
		}
		if (!getenv("FUZZ_SILENT_FATAL") || strcmp(getenv("FUZZ_SILENT_FATAL"), "1") != 0)
			return 0;
	}
	/* FUZZ_KNOWN: ';'-separated strings of findings already reported (e.g. "heap.c:891"): counted, not fatal,
	 * so a long run goes on looking for new ones */
	const char *known = getenv("FUZZ_KNOWN");
	while (known && *known) {
		const char *e = strchr(known, ';');
		size_t len = e ? (size_t)(e - known) : strlen(known);
		char pat[128];
		if (len && len < sizeof pat) {
			memcpy(pat, known, len);
			pat[len] = 0;
			if (strstr(errbuf, pat)) {
				n_known++;
				return 0;
			}
		}
		known = e ? e + 1 : NULL;
	}
	char head[160];
	if (WIFSIGNALED(st))
		snprintf(head, sizeof head, "FINDING: the child died of signal %d; its stderr:\n", WTERMSIG(st));
	else
		snprintf(head, sizeof head, "FINDING: the child exited with status %d; its stderr:\n", WEXITSTATUS(st));
	put(head);
	put(errbuf);
	put("\n");
	abort();
}
