/* malloc_hostile: what a program that misuses memory, or asks odd things of malloc_trim, gets from the drop-in.
 *
 * Each hazard is a named case. Death cases run in a forked child with standard error on a pipe: the child must
 * die of SIGABRT after writing `osmem: <api>(): <what> 0x<ptr>` (never SIGSEGV/SIGBUS inside osmem, never a
 * silent success; the malloc(0) cases instead fault at the program's own access, with no report). Survival cases run in a child too (a crash is a FAIL line, not the end of the test) and must
 * exit 0 with os_heap_check() passing. Run in the profile the environment chooses (run_tests.py runs this
 * binary as it is: the default profile; the classic cases re-run it with OSMEM_PROFILE=classic).
 * Prints `PASS hostile/<case>` or `FAIL hostile/<case>: why`. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"
#include "test_util.h"

#define KiB ((size_t)1024)
#define MiB (KiB * KiB)

/* Blocks the core carves in order, one after the other: above MEDIUM_MAX (64 KiB). The default profile serves up
 * to 2 KiB from header-less slots (there, a write before a block lands in the program's own neighbouring slot,
 * and free is right to ignore it), and up to 64 KiB from a thread's medium cache, whose blocks are core blocks
 * with headers but come in the order the cache holds them, so `q` would not always follow `p`. */
#define CORE_SIZE 70000

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static int (*volatile v_trim)(size_t) = malloc_trim;
static int n_fail;
static const char *prefix = "";

/* want_what for a child that must die of SIGSEGV or SIGBUS at its own access, with nothing from osmem on stderr */
#define FAULTS TU_FAULTS

static void run_case(const char *name, void (*fn)(void), const char *want_api, const char *want_what)
{
	n_fail += !tu_death_case("hostile", prefix, name, fn, want_api, want_what);
}

#define say_addr tu_say_addr

// ------------------------------------------------------------------
// Pointers osmem must reject without reading them
// ------------------------------------------------------------------

/* A PROT_NONE page: mincore calls it mapped, and reading it faults. */
static void free_prot_none_pointer(void)
{
	char *m = mmap(NULL, 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		_exit(98);
	say_addr(m + 4096 + 64);
	v_free(m + 4096 + 64);
}

/* A file mapping past the file's end: the page is mapped, and reading it is SIGBUS. */
static void free_file_mapping_past_end(void)
{
	char path[] = "/tmp/osmem-hostile-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, "x", 1) != 1)
		_exit(98);
	unlink(path);
	char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		_exit(98);
	say_addr(m + 2 * 4096 + 64);
	v_free(m + 2 * 4096 + 64);
}

/* A mapped block freed twice: its memory is gone after the first free; the second is named a double free. */
static void double_free_mapped(void)
{
	void *p = v_malloc(MiB);
	say_addr(p);
	v_free(p);
	v_free(p);
}

// ------------------------------------------------------------------
// Headers overwritten by the program
// ------------------------------------------------------------------

/* glibc's tst-malloc-backtrace: a freed block's last header word (`next`) overwritten, then malloc of the
 * same size must stop, not follow the link. */
static void freed_header_next_overwritten(void)
{
	char *a = v_malloc(CORE_SIZE), *b = v_malloc(CORE_SIZE);
	(void)b;
	v_free(a);
	((size_t *)a)[-1] = 1;
	say_addr(a);
	(void)v_malloc(CORE_SIZE);
}

/* 8 bytes written just before a 1 MiB mapped block: free must report, not crash following the list. */
static void mapped_header_underwrite(void)
{
	char *p = v_malloc(MiB);
	memset(p - 8, 0x41, 8);
	say_addr(p);
	v_free(p);
}

/* Past 3,072 live mappings (3/4 of the drop-in's first table of mappings, 4 Ki entries since session 55) the
 * classic profile did not map a larger table: a lookup of a pointer it did not hold walked the list of mappings
 * through each header's `next`, and with the newest header's `next` overwritten that walk read the forged address
 * (SIGSEGV inside free, where 100 mappings gave "corrupted header"; the review of session 56). The table now grows
 * in both profiles, so the walk is gone (and a free no longer costs a walk of the list: 40,000 live mappings took
 * 380 s to free in random order, 0.8 before session 55). MANY mapped blocks: their first page each, 12.5 MiB. */
#define MANY 3200
static char *many[MANY];
static void many_mappings(void)
{
	for (int i = 0; i < MANY; i++)
		if (!(many[i] = v_malloc(200000)))
			_exit(98);
	((size_t *)many[MANY - 1])[-1] = 0x4141414141414141ull; /* the newest: the head of the list */
}

static void many_mappings_header_underwrite(void)
{
	many_mappings();
	say_addr(many[MANY - 1]);
	v_free(many[MANY - 1]);
}

static void many_mappings_neighbour_freed(void)
{
	many_mappings();
	say_addr(many[MANY - 2]); /* its `prev` is the newest, whose `next` no longer points back */
	v_free(many[MANY - 2]);
}

static void many_mappings_wild_free(void)
{
	static char wild[64] __attribute__((aligned(16)));
	many_mappings();
	say_addr(wild + 32);
	v_free(wild + 32);
}

/* A live heap block's `prev` word overwritten, then free: reported before anything changes. */
static void heap_header_prev_overwritten(void)
{
	char *g = v_malloc(CORE_SIZE), *p = v_malloc(CORE_SIZE), *h = v_malloc(CORE_SIZE);
	(void)g, (void)h;
	((size_t *)p)[-2] = 0x4141414141414141ull;
	say_addr(p);
	v_free(p);
}

/* A live heap block's size overwritten with a plausible value (the cookie covers the size), then free. */
static void heap_header_size_overwritten(void)
{
	char *g = v_malloc(CORE_SIZE), *p = v_malloc(CORE_SIZE), *h = v_malloc(CORE_SIZE);
	(void)g, (void)h;
	((size_t *)p)[-4] -= 64;
	say_addr(p);
	v_free(p);
}

/* Hazard: the size of the block before a live one shrunk (an underwrite of that block's header, or a write past
 * the block before it): the free of the next block must not trust it. A size too large is caught by the room the
 * neighbours leave; a smaller one only by the rule that blocks tile the heap (heap.c, heap_links_ok: without gaps,
 * the block before must end exactly where this one starts). Passed over, the free goes through and the heap no
 * longer tiles: the 4 KiB after the shrunk block belong to no block, and the heap no longer checks out. */
static void heap_header_prev_size_shrunk(void)
{
	char *g = v_malloc(CORE_SIZE), *p = v_malloc(CORE_SIZE), *h = v_malloc(CORE_SIZE);
	(void)h;
	((size_t *)g)[-4] -= 4096;
	say_addr(p);
	v_free(p);
}

/* Hazard: a free block's size shrunk after its free, in a heap with a gap (the program moved the break itself and
 * the heap grew past it), where sizes need not tile and the room check alone lets a smaller size pass: the best
 * fit that takes the block must still see that its size is not the one the free index holds for it
 * (osm_check_free_block: the index slot's size). Passed over, the block is taken on the size the index holds and
 * its header no longer does, and the heap no longer checks out. */
static void free_size_shrunk_in_heap_with_gap(void)
{
	tu_heap_with_gap();
	char *g = v_malloc(CORE_SIZE), *p = v_malloc(CORE_SIZE), *h = v_malloc(CORE_SIZE);
	(void)g, (void)h;
	v_free(p);
	((size_t *)p)[-4] -= 4096;
	say_addr(p);
	(void)v_malloc(CORE_SIZE);
}

/* The row of issue 9's table where osmem used to hand out overlapping blocks: p[-1] = 0 (the header's `next`),
 * the neighbour freed, then malloc(131000). The neighbour's links no longer agree: it is reported when it is
 * checked, at its free (both profiles: free checks that the block's neighbours point back), never handed out. */
static void header_next_zeroed_then_big_malloc(void)
{
	char *p = v_malloc(CORE_SIZE), *q = v_malloc(CORE_SIZE), *r = v_malloc(CORE_SIZE);
	(void)r;
	((size_t *)p)[-1] = 0;
	say_addr(q);
	v_free(q);
	(void)v_malloc(131000);
}

/* A pointer into the heap planted in a header's `next`: free must not write through it. */
static uintptr_t victim[4];
static void heap_header_next_forged(void)
{
	char *g = v_malloc(CORE_SIZE), *p = v_malloc(CORE_SIZE), *h = v_malloc(CORE_SIZE);
	(void)g, (void)h;
	((uintptr_t *)p)[-1] = (uintptr_t)&victim[0];
	say_addr(p);
	v_free(p);
	if (victim[0] || victim[1] || victim[2] || victim[3])
		_exit(4);
}

/* An overflow that rewrote a live block's `next` with an unmapped address, then malloc_info: its walk over the
 * core's blocks (and the other whole-list walks: best fit's, the full coalescing pass, the free-block summary)
 * followed `next` unchecked and read the forged address (fuzz_corrupt, session 39, the full coalescing pass) */
static void walk_follows_forged_next(void)
{
	FILE *f = fopen("/dev/null", "w"); /* before the overflow: fopen allocates */
	char *p = v_malloc(CORE_SIZE), *q = v_malloc(CORE_SIZE);
	(void)q;
	((uintptr_t *)p)[-1] = (uintptr_t)0x414141414140;
	say_addr(p);
	malloc_info(0, f);
}

/* The same overflow, then os_heap_dump: the dump (src/dump.c) walks the list without checks of its own, so the
 * API checks the links first */
static void dump_follows_forged_next(void)
{
	int fd = open("/dev/null", O_WRONLY);
	char *p = v_malloc(CORE_SIZE), *q = v_malloc(CORE_SIZE);
	(void)q;
	((uintptr_t *)p)[-1] = (uintptr_t)0x414141414140;
	say_addr(p);
	os_heap_dump(fd, OS_DUMP_TEXT);
}

/* Hazard: links forged into a loop, each pointing back at the other (the last block's `next` at the first block,
 * whose `prev` at the last): every link is in the heap and agrees with its neighbour's, so only the rule that a
 * walk moves forward (heap.c, osm_walk_next: the next header lies above this one) stops the check before the dump.
 * Without it, os_heap_dump went round the heap for good with the lock held (the case's alarm: "hung"). */
static void dump_follows_backward_link(void)
{
	int fd = open("/dev/null", O_WRONLY);
	char *p = v_malloc(CORE_SIZE);
	struct block_meta *head = (struct block_meta *)(p - sizeof(struct block_meta)), *tail = head;
	while (head->prev)
		head = head->prev;
	while (tail->next)
		tail = tail->next;
	alarm(10);
	tail->next = head;
	head->prev = tail;
	say_addr(tail + 1);
	os_heap_dump(fd, OS_DUMP_TEXT);
}

// ------------------------------------------------------------------
// malloc_trim
// ------------------------------------------------------------------


/* A free top whose size is a whole number of pages: trimming it all would leave a block of size 0. */
static void trim_page_multiple_top(void)
{
	void *keep[600];
	int n = 0;
	/* step the top's size down by 16 bytes at a time until it is a multiple of the page size */
	for (; n < 600; n++) {
		size_t top = tu_free_top_size(), r = top % 4096;
		if (top && r == 0)
			break;
		/* a block of s bytes and its header, carved from the top, leave top - s - 32 (s above the sizes the
		 * front's slots and medium caches serve, so that the core carves it exactly; a top too small for it is
		 * used up, and the next one is larger) */
		size_t s = r + 17 * 4096 - 32, big = CORE_SIZE;
		keep[n] = v_malloc(top >= s + 32 + 64 ? s : top >= big + 32 ? top - 32 : big);
	}
	if (n == 600)
		_exit(5);
	(void)v_trim(0);
	if (os_heap_check() != 0)
		_exit(6);
	for (int i = 0; i < n; i++)
		v_free(keep[i]);
	void *p = v_malloc(100);
	if (!p)
		_exit(7);
}

/* malloc_trim(SIZE_MAX): a pad that wraps when rounded must keep everything, not trim everything. */
static void trim_pad_size_max(void)
{
	void *a = v_malloc(100), *b = v_malloc(100 * KiB), *c = v_malloc(100);
	v_free(b);
	struct os_stats before, after;
	os_stats(&before);
	(void)v_trim(SIZE_MAX); /* may still give back pages inside free blocks, as glibc's does */
	os_stats(&after);
	if (after.heap_size != before.heap_size)
		_exit(8);
	v_free(a);
	v_free(c);
	for (int i = 0; i < 100; i++)
		v_free(v_malloc((size_t)i * 1000 + 1));
}

/* Hazard: the program moved the break itself (sbrk: a page of its own, above the heap's end), and malloc_trim then
 * gave the heap's free top back with sbrk(-cut): from the break where the program had left it, so the cut took the
 * program's page with it. The trim must see that the break is not at the heap's end and leave the break alone
 * (heap.c, trim_top). Passed over, the program's next read of its own memory is SIGSEGV. */
static void trim_after_program_sbrk_keeps_its_page(void)
{
	char *blocks[20];
	for (int i = 0; i < 20; i++)
		memset(blocks[i] = v_malloc(100000), 0x42, 100000);
	char *mine = sbrk(4096);
	if (mine == (void *)-1)
		_exit(98);
	strcpy(mine, "x");
	for (int i = 0; i < 20; i++)
		v_free(blocks[i]);
	(void)v_trim(0);
	char *brk_now = sbrk(0);
	if (brk_now < mine + 4096) {
		fprintf(stderr, "malloc_trim moved the break below the program's own sbrk page at %p (the break is at "
			"%p): the page is gone\n", (void *)mine, (void *)brk_now);
		_exit(12);
	}
	if (strcmp(mine, "x") != 0) {
		fprintf(stderr, "the program's sbrk page no longer holds what it wrote\n");
		_exit(13);
	}
}

/* Hazards (the review of session 54): the trim and the decay read a free block's size to know what to give back,
 * and trusted it where every other path checks a free block against the index first (osm_check_free_block). A
 * program that ran 8 bytes past a live block into the free block after it rewrote that size: the trim moved the
 * break down under live blocks (SIGSEGV in osmem, at the top's own header), and the madvise of malloc_trim or of
 * the decay took the live block after a free one with it (its bytes read as zeros, nothing reported). Each is
 * now a `corrupted header` before anything changes. Default profile (the classic one gives nothing back). */
enum { FORGE_SZ = 100000 }; /* core blocks, carved in order (above the medium caches' sizes) */
static char *forge_p[64];

/* n blocks filled with 0x42, then forge_p[lo..hi] freed (one free block, or the free top when hi is n - 1), and
 * its size, the 8 bytes past forge_p[lo - 1]'s end, raised by `more`, as an overflow would; the report names the
 * free block's payload. */
static void forge_free_run(int n, int lo, int hi, size_t more)
{
	for (int i = 0; i < n; i++)
		memset(forge_p[i] = v_malloc(FORGE_SZ), 0x42, FORGE_SZ);
	for (int i = hi; i >= lo; i--)
		v_free(forge_p[i]);
	size_t *size = (size_t *)(forge_p[lo - 1] + malloc_usable_size(forge_p[lo - 1]));
	*size += more;
	say_addr((char *)size + sizeof(struct block_meta));
}

/* Whether block k still holds forge_free_run's bytes (a madvise that took it reads as zeros). */
static void forge_check(int k)
{
	for (size_t i = 0; i < FORGE_SZ; i++)
		if (forge_p[k][i] != 0x42)
			_exit(9);
}

static void trim_follows_forged_top_size(void)
{
	forge_free_run(64, 44, 63, (size_t)4 << 20); /* the free top, after forge_p[43] */
	(void)v_trim(0);
	forge_check(20); /* before: the break had moved below it (or osmem crashed first) */
}

static void trim_discard_follows_forged_free_size(void)
{
	forge_free_run(40, 1, 30, (size_t)1 << 20); /* about 3 MB after forge_p[0], live forge_p[31] after it */
	(void)v_trim(0);
	forge_check(31); /* before: the live block after it read as zeros */
}

static void *sleeper(void *arg)
{
	usleep(3000000); /* a second thread: the decay's delay is 10 ms */
	return arg;
}

static void decay_follows_forged_free_size(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, sleeper, NULL) != 0)
		_exit(10);
	forge_free_run(64, 9, 38, (size_t)1 << 20); /* about 3 MB after forge_p[8], live forge_p[39] after it */
	for (int k = 0; k < 8; k++) { /* frees that reach the core, below: the decay's passes */
		usleep(20000);
		v_free(forge_p[k]);
	}
	for (int k = 40; k < 64; k++) { /* and more, on a host slow enough that eight did not span its delay */
		usleep(20000);
		v_free(forge_p[k]);
	}
	forge_check(39); /* before: the live block after it read as zeros */
	_exit(11); /* no report: the decay never looked, or looked and trusted the size */
}

// ------------------------------------------------------------------
// malloc(0) in the default profile: an address of a PROT_NONE reservation (hardened_malloc's read_zero_size and
// write_zero_size, tests/test_hardened.py)
// ------------------------------------------------------------------

static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;

/* A write through malloc(0)'s pointer faults at once (before: the 16 bytes of a front slot took it silently). */
static void zero_size_write_faults(void)
{
	volatile char *p = v_malloc(0);
	if (!p)
		_exit(5);
	p[0] = 5;
}

/* A read through calloc's pointer for 0 bytes faults too. */
static void zero_size_calloc_read_faults(void)
{
	volatile char *p = v_calloc(0, 16);
	if (!p)
		_exit(5);
	(void)p[0];
}

static void zero_size_double_free(void)
{
	char *p = v_malloc(0);
	say_addr(p);
	v_free(p);
	v_free(p);
}

static void zero_size_realloc_after_free(void)
{
	char *p = v_malloc(0);
	say_addr(p);
	v_free(p);
	(void)v_realloc(p, 32);
}

/* An address inside the reservation that malloc(0) never returned. */
static void zero_size_invalid_free(void)
{
	char *p = v_malloc(0);
	say_addr(p + 8);
	v_free(p + 8);
}

/* Legal use: unique, aligned pointers of 0 usable bytes from malloc(0), calloc and realloc(NULL, 0), freed by
 * free, realloc (to 0: NULL; to 32 bytes: a block that holds them) and os_free; os_realloc of one freed is NULL;
 * past the reservation's 262144 live addresses, blocks (still unique); everything freed, os_heap_check() passes. */
static void zero_size_lifecycle(void)
{
	enum { N = 1000 };
	static char *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = i % 3 == 0 ? v_malloc(0) : i % 3 == 1 ? v_calloc(i, 0) : v_realloc(NULL, 0);
		if (!p[i] || ((uintptr_t)p[i] & 15) || malloc_usable_size(p[i]) != 0)
			_exit(10);
	}
	for (int i = 1; i < N; i++)
		if (p[i] == p[i - 1])
			_exit(11);
	for (int i = 0; i < N; i += 4) {
		char *q = v_realloc(p[i], 32);
		if (!q || malloc_usable_size(q) < 32)
			_exit(12);
		memset(q, 0x5A, 32);
		p[i] = q;
	}
	for (int i = 1; i < N; i += 4)
		if (v_realloc(p[i], 0) != NULL)
			_exit(13);
	for (int i = 2; i < N; i += 4)
		os_free(p[i]);
	for (int i = 0; i < N; i += 4)
		v_free(p[i]);
	for (int i = 3; i < N; i += 4)
		v_free(p[i]);
	char *z = v_malloc(0); /* os_realloc of a freed block: NULL, nothing changes (docs/CLASSIC.md rule 3) */
	os_free(z);
	if (os_realloc(z, 16) != NULL)
		_exit(17);
	enum { FULL = (1 << 18) + 100 };
	char **many = v_malloc(FULL * sizeof *many);
	if (!many)
		_exit(14);
	for (int i = 0; i < FULL; i++)
		if (!(many[i] = v_malloc(0)))
			_exit(15);
	many[0] = v_realloc(many[0], 0); /* one address back, then taken again */
	many[0] = v_malloc(0);
	for (int i = FULL - 200; i < FULL; i++)
		for (int j = i + 1; j < FULL; j++)
			if (many[i] == many[j])
				_exit(16);
	for (int i = 0; i < FULL; i++)
		v_free(many[i]);
	v_free(many);
}

int main(int argc, char **argv)
{
	const char *profile = getenv("OSMEM_PROFILE");
	if (profile && strcmp(profile, "classic") == 0)
		prefix = "classic/";
	run_case("free_prot_none_pointer", free_prot_none_pointer, "free", "invalid pointer");
	run_case("free_file_mapping_past_end", free_file_mapping_past_end, "free", "invalid pointer");
	run_case("double_free_mapped", double_free_mapped, "free", "double free");
	run_case("freed_header_next_overwritten", freed_header_next_overwritten, "malloc", "corrupted header");
	run_case("mapped_header_underwrite", mapped_header_underwrite, "free", "corrupted header");
	run_case("many_mappings_header_underwrite", many_mappings_header_underwrite, "free", "corrupted header");
	run_case("many_mappings_neighbour_freed", many_mappings_neighbour_freed, "free", "corrupted header");
	run_case("many_mappings_wild_free", many_mappings_wild_free, "free", "invalid pointer");
	run_case("heap_header_prev_overwritten", heap_header_prev_overwritten, "free", "corrupted header");
	run_case("heap_header_next_forged", heap_header_next_forged, "free", "corrupted header");
	run_case("heap_header_size_overwritten", heap_header_size_overwritten, "free", "corrupted header");
	run_case("heap_header_prev_size_shrunk", heap_header_prev_size_shrunk, "free", "corrupted header");
	run_case("free_size_shrunk_in_heap_with_gap", free_size_shrunk_in_heap_with_gap, "malloc", "corrupted header");
	run_case("walk_follows_forged_next", walk_follows_forged_next, "malloc_info", "corrupted header");
	run_case("dump_follows_forged_next", dump_follows_forged_next, "os_heap_dump", "corrupted header");
	run_case("dump_follows_backward_link", dump_follows_backward_link, "os_heap_dump", "corrupted header");
	run_case("header_next_zeroed_then_big_malloc", header_next_zeroed_then_big_malloc, "free",
		 "corrupted header");
	run_case("trim_page_multiple_top", trim_page_multiple_top, NULL, NULL);
	run_case("trim_pad_size_max", trim_pad_size_max, NULL, NULL);
	run_case("trim_after_program_sbrk_keeps_its_page", trim_after_program_sbrk_keeps_its_page, NULL, NULL);
	if (!*prefix) { /* the classic profile gives nothing back: no trim, no decay */
		run_case("trim_follows_forged_top_size", trim_follows_forged_top_size, "malloc_trim", "corrupted header");
		run_case("trim_discard_follows_forged_free_size", trim_discard_follows_forged_free_size, "malloc_trim",
			 "corrupted header");
		run_case("decay_follows_forged_free_size", decay_follows_forged_free_size, "free", "corrupted header");
	}
	if (!*prefix) { /* the classic profile's malloc(0) is a block of its own (CLASSIC.md) */
		run_case("zero_size_write_faults", zero_size_write_faults, NULL, FAULTS);
		run_case("zero_size_calloc_read_faults", zero_size_calloc_read_faults, NULL, FAULTS);
		run_case("zero_size_double_free", zero_size_double_free, "free", "double free");
		run_case("zero_size_realloc_after_free", zero_size_realloc_after_free, "realloc", "double free");
		run_case("zero_size_invalid_free", zero_size_invalid_free, "free", "invalid pointer");
		run_case("zero_size_lifecycle", zero_size_lifecycle, NULL, NULL);
	}
	if (!*prefix) {
		/* and all of it again in the classic profile, in a fresh process */
		fflush(stdout);
		setenv("OSMEM_PROFILE", "classic", 1);
		execv("/proc/self/exe", argv);
		printf("FAIL hostile/classic: execv: %s\n", strerror(errno));
		return 1;
	}
	(void)argc;
	return n_fail ? 1 : 0;
}
