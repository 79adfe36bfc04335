/* classic_examples: the worked examples of docs/CLASSIC.md, one per process.
 *
 *   cc -std=c11 -Wall -Wextra -Iinclude docs/examples/classic_examples.c -o build/classic_examples \
 *      -Lbuild -losmem -Wl,-rpath,"$PWD/build"
 *   strace -e trace=brk,mmap,munmap build/classic_examples split_coalesce
 *
 * docs/examples/run_examples.py does both for every example, rewrites addresses as offsets from the heap start
 * H (and mappings as M1, M2, ...), and compares the result with docs/examples/expected/NAME.txt, the text that
 * CLASSIC.md shows.
 *
 * Each step prints "== call" before it runs, so under strace the system calls a call makes appear right after
 * its line, then the pointer it returned and every heap block: offset from H, `size` and `status` read from the
 * struct block_meta header (osmem's ABI). stdout is unbuffered and printf only formats numbers, so glibc's own
 * malloc never runs and never moves the break under osmem. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"

static char *H; /* the heap start: the break before osmem's first sbrk */

static struct block_meta *header(void *p) { return (struct block_meta *)((char *)p - META_SIZE); }

static const char *status_name(int s)
{
	return s == STATUS_FREE ? "FREE" : s == STATUS_ALLOC ? "ALLOC" : s == STATUS_MAPPED ? "MAPPED" : "?";
}

/* Prints the pointer a call returned and the header in front of it. */
static void *show(void *p)
{
	if (!p) {
		printf("   returned NULL\n");
		return p;
	}
	struct block_meta *b = header(p);
	if (b->status == STATUS_MAPPED)
		printf("   returned %p: header size=%zu status=%d (%s)\n", p, b->size, b->status, status_name(b->status));
	else
		printf("   returned H+0x%tx: header at H+0x%tx, size=%zu status=%d (%s)\n", (char *)p - H,
		       (char *)b - H, b->size, b->status, status_name(b->status));
	return p;
}

/* Every heap block in address order, by following `next` from the block at H. */
static void heap(void)
{
	if ((char *)sbrk(0) == H) {
		printf("   heap: none yet\n");
		return;
	}
	struct block_meta *b = (struct block_meta *)H, *last = b;
	for (; b; b = b->next) {
		printf("   heap: H+0x%-5tx size=%-6zu %s\n", (char *)b - H, b->size, status_name(b->status));
		last = b;
	}
	printf("   heap end: H+0x%tx\n", (char *)last + META_SIZE + last->size - H);
}

#define STEP(call) (printf("== " #call "\n"), show(call))

static void fill(void *p, int byte, size_t n) { memset(p, byte, n); }

/* Compares n bytes; prints where they first differ. */
static void same(const char *what, const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	size_t i = 0;
	while (i < n && x[i] == y[i])
		i++;
	if (i == n)
		printf("   %s: all %zu bytes equal\n", what, n);
	else
		printf("   %s: differ at byte %zu (0x%02x != 0x%02x)\n", what, i, x[i], y[i]);
}

// ------------------------------------------------------------------
// The four examples of the contract
// ------------------------------------------------------------------

static void ex_fresh_1986(void)
{
	STEP(os_malloc(1986));
	heap();
}

static void ex_nosplit_131032(void)
{
	STEP(os_malloc(131032));
	heap();
}

static void ex_mmap_131072(void)
{
	void *p = STEP(os_malloc(131072));
	heap();
	printf("== os_free(p)\n");
	os_free(p);
	heap();
}

static void ex_calloc_threshold(void)
{
	STEP(os_calloc(4080, 1));
	heap();
	STEP(os_calloc(1, 4000));
	heap();
}

// ------------------------------------------------------------------
// More worked examples
// ------------------------------------------------------------------

/* Split, free, and the coalescing that waits for the next heap allocation. */
static void ex_split_coalesce(void)
{
	void *a = STEP(os_malloc(100));
	void *b = STEP(os_malloc(100));
	STEP(os_malloc(100));
	heap();
	printf("== os_free(a)\n");
	os_free(a);
	printf("== os_free(b)\n");
	os_free(b);
	heap();
	STEP(os_malloc(200));
	heap();
}

/* realloc case 7: the last block grows with the break and stays where it is. */
static void ex_realloc7(void)
{
	STEP(os_malloc(131032));
	void *b = STEP(os_malloc(100));
	heap();
	char want[100];
	fill(want, 'B', 100);
	fill(b, 'B', 100);
	void *c = STEP(os_realloc(b, 1000));
	heap();
	printf("   c == b: %s, first 100 bytes still 'B': %s\n", c == b ? "yes" : "no",
	       memcmp(c, want, 100) == 0 ? "yes" : "no");
}

/* realloc case 8: the block absorbs its free right-hand neighbour, then splits what it does not need. */
static void ex_realloc8(void)
{
	void *a = STEP(os_malloc(100));
	void *b = STEP(os_malloc(100));
	STEP(os_malloc(100));
	printf("== os_free(b)\n");
	os_free(b);
	heap();
	fill(a, 'A', 100);
	void *d = STEP(os_realloc(a, 150));
	heap();
	printf("   d == a: %s\n", d == a ? "yes" : "no");
}

/* realloc case 9: no room in place, so the block moves; the old one is freed and keeps its bytes. */
static void ex_realloc9(void)
{
	void *a = STEP(os_malloc(100));
	STEP(os_malloc(100));
	heap();
	fill(a, 'A', 104);
	void *c = STEP(os_realloc(a, 1000));
	heap();
	/* What a teaching checker does after a moving realloc: the old block is free now, and its payload must
	 * still hold what the program wrote, byte for byte the same as the start of the new block. */
	same("new block vs old (freed) block", c, a, 104);
}

/* realloc of a block that is already free, with size 0: rule 3 (a free block: NULL, nothing changes) wins over
 * rule 2 (size 0: free it), so this is not a double free. */
static void ex_realloc_free_zero(void)
{
	void *a = STEP(os_malloc(100));
	printf("== os_free(a)\n");
	os_free(a);
	heap();
	STEP(os_realloc(a, 0));
	heap();
}

/* A double free: reported with the pointer, then abort (the heap is left as it was). */
static void ex_double_free(void)
{
	void *a = STEP(os_malloc(100));
	printf("== os_free(a)\n");
	os_free(a);
	printf("== os_free(a) again\n");
	os_free(a);
	printf("   not reached\n");
}

static const struct {
	const char *name;
	void (*run)(void);
} examples[] = {
	{ "fresh_1986", ex_fresh_1986 },
	{ "nosplit_131032", ex_nosplit_131032 },
	{ "mmap_131072", ex_mmap_131072 },
	{ "calloc_threshold", ex_calloc_threshold },
	{ "split_coalesce", ex_split_coalesce },
	{ "realloc7_grow_last", ex_realloc7 },
	{ "realloc8_absorb", ex_realloc8 },
	{ "realloc9_move", ex_realloc9 },
	{ "realloc_free_zero", ex_realloc_free_zero },
	{ "double_free", ex_double_free },
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	size_t n = sizeof examples / sizeof examples[0];
	for (size_t i = 0; argc == 2 && i < n; i++) {
		if (strcmp(argv[1], examples[i].name) == 0) {
			H = sbrk(0);
			printf("H = %p\n", (void *)H);
			examples[i].run();
			return 0;
		}
	}
	fprintf(stderr, "usage: %s EXAMPLE\nexamples:", argv[0]);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, " %s", examples[i].name);
	fprintf(stderr, "\n");
	return 2;
}
