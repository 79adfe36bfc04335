/* demo: the classic allocator, one step at a time.
 *
 * Each step calls one os_* function, then shows the system calls it made (worked out from the program break and
 * from the block headers, which are osmem's ABI: strace shows the same) and a map of the heap. Offsets are the
 * headers', H+0x... as docs/CLASSIC.md and the trace write them; a payload starts 32 bytes after its header.
 * stdout gets a static buffer so that glibc's own malloc never runs and never moves the break under us. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"

static char *heap_start;
static char *last_brk;

static struct block_meta *meta(void *p) { return (struct block_meta *)((char *)p - META_SIZE); }

static void show_syscalls(const char *what, void *p, size_t mapped_freed)
{
	char *brk_now = sbrk(0);
	if (brk_now != last_brk)
		printf("    syscall: brk(+%td)\n", brk_now - last_brk);
	if (p && meta(p)->status == STATUS_MAPPED && strcmp(what, "free") != 0)
		printf("    syscall: mmap(NULL, %zu, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)\n",
		       meta(p)->size + META_SIZE);
	if (mapped_freed)
		printf("    syscall: munmap(%zu)\n", mapped_freed);
	if (brk_now == last_brk && !(p && meta(p)->status == STATUS_MAPPED) && !mapped_freed)
		printf("    syscall: none\n");
	last_brk = brk_now;
}

/* One line per block, and a bar where each character is 1/64 of the heap: '#' allocated, '.' free. */
static void show_heap(void)
{
	if (!heap_start)
		return;
	char bar[65];
	size_t total = (size_t)(last_brk - heap_start);
	memset(bar, ' ', 64);
	bar[64] = 0;
	for (int pass = 0; pass < 2; pass++) /* allocated blocks drawn last: a small one still shows */
		for (struct block_meta *b = (struct block_meta *)heap_start; b; b = b->next) {
			size_t off = (size_t)((char *)b - heap_start);
			if (pass)
				printf("    H+0x%06zx  %-5s %7zu bytes\n", off,
				       b->status == STATUS_FREE ? "free" : "alloc", b->size);
			if ((b->status == STATUS_FREE) != (pass == 0))
				continue;
			size_t from = off * 64 / total, to = (off + META_SIZE + b->size + total / 64 - 1) * 64 / total;
			for (size_t i = from; i < to && i < 64; i++)
				bar[i] = pass ? '#' : '.';
		}
	printf("    [%s] %zu bytes of heap\n", bar, total);
}

static void *step(const char *label, void *p)
{
	printf("%s -> ", label);
	if (!p)
		printf("NULL\n");
	else if (meta(p)->status == STATUS_MAPPED)
		printf("%p (own mapping, %zu bytes)\n", p, meta(p)->size);
	else {
		if (!heap_start || (char *)p - META_SIZE < heap_start)
			heap_start = (char *)p - META_SIZE;
		printf("block at H+0x%tx, payload at H+0x%tx (%zu bytes)\n", (char *)p - META_SIZE - heap_start,
		       (char *)p - heap_start, meta(p)->size);
	}
	show_syscalls(label, p, 0);
	show_heap();
	return p;
}

static void step_free(const char *label, void *p)
{
	size_t mapped = meta(p)->status == STATUS_MAPPED ? meta(p)->size + META_SIZE : 0;
	printf("%s\n", label);
	os_free(p);
	show_syscalls("free", NULL, mapped);
	show_heap();
}

int main(void)
{
	static char out[1 << 16];
	setvbuf(stdout, out, _IOLBF, sizeof out);
	last_brk = sbrk(0);

	puts("osmem demo: the classic allocator (docs/CLASSIC.md). H is the heap start.\n");
	void *a = step("os_malloc(1986)         first use: preallocate 128 KiB, split", os_malloc(1986));
	void *b = step("os_malloc(100)          best fit from the remainder", os_malloc(100));
	void *c = step("os_malloc(500)", os_malloc(500));
	step_free("os_free(b)              the block is marked free; merged at the next allocation", b);
	step_free("os_free(a)", a);
	void *d = step("os_malloc(1000)         coalesce a+b, best fit, split", os_malloc(1000));
	void *m = step("os_malloc(200000)       large: its own mapping", os_malloc(200000));
	step_free("os_free(m)              unmapped at once", m);
	c = step("os_realloc(c, 4000)     grows in place: absorbs the free block after it", os_realloc(c, 4000));
	void *z = step("os_calloc(1, 4064)      calloc maps from one page (4064 + 32 >= 4096)", os_calloc(1, 4064));
	step_free("os_free(z)", z);
	void *e = step("os_malloc(2000)         lands right after c", os_malloc(2000));
	c = step("os_realloc(c, 6000)     blocked by e: moves to a new block", os_realloc(c, 6000));
	step_free("os_free(e)", e);
	void *big = step("os_malloc(127000)       no fit: the free last block grows with the break", os_malloc(127000));
	step_free("os_free(d)", d);
	step_free("os_free(c)", c);
	step_free("os_free(big)", big);
	printf("\nos_heap_check() = %d\n", os_heap_check());
	return 0;
}
