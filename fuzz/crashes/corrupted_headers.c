/* Reproducer of fuzz_corrupt_classic's findings (fuzz/crashes/README.md): pointer arithmetic on a header value
 * that a program overwrote, in the checks that are there to catch exactly that.
 *
 *  corrupted_prev_near_top: a live block's prev link overwritten with an address in the last 32 bytes of the
 *    address space (on the heap's 8-byte grid). hdr_in_heap() computes p + META_SIZE, which wraps to a small
 *    value <= osm_heap.end, so the forged link passes; heap_links_ok() then reads p->next: SIGSEGV inside osmem
 *    instead of `osmem: os_free(): corrupted header 0x...`.
 *  corrupted_size_wraps: the allocated block before a free block gets size SIZE_MAX; taking the free block runs
 *    heap_links_ok(), whose block_end(prev) (prev + 32 + size) overflows the pointer: undefined behaviour (UBSan:
 *    "addition of unsigned offset ... overflowed", src/internal.h block_end, from heap.c heap_links_ok). Unsanitised
 *    builds wrap and let the header pass here; it is caught later, when the block itself is freed.
 *  corrupted_tail_next: the last block of the heap, allocated, gets its next link overwritten. The next request
 *    that appends a block at the break (heap_append -> new_block -> list_insert_after(tail, b)) copies tail->next
 *    into the new block and writes b through it (b->next->prev = b): a write to the forged address, SIGSEGV
 *    inside osmem (or a silent write into the program's memory for a forged address that is mapped).
 *  corrupted_free_size_in_index: a free block in the best-fit index gets a smaller size in its header (small
 *    enough to pass heap_links_ok). The index is a splay tree keyed by (size, address) read from the headers, so
 *    its order no longer holds: osm_index_remove splays for the new key, finds another node, and releases the
 *    slot while it is still linked in the tree. The next coalescing pass crashes in splay() (SIGSEGV, index.c)
 *    or loops for ever (fuzz_corrupt found the hang: splay <- osm_index_insert <- merge_run <- free).
 *  corrupted_last_size_moves_break: the heap's last block, free, gets a smaller size that is not a multiple of 8.
 *    heap_alloc() grows the break by (request - last->size) before it checks that block, so the break moves by
 *    an odd amount; the block passes the later check (the size fits its room), and the next block appended at
 *    the break starts on an unaligned address: malloc returns a misaligned pointer (UBSan: misaligned access in
 *    new_block), and the heap is off its 8-byte grid for good.
 *  forged_noslot_tag: a free block's slot tag overwritten with 0xffffffff (TAG_NOSLOT, "the side storage had no
 *    slot for it"). The check accepted it with no slotless block in the heap: the block's real slot stayed in the
 *    index, the count of slotless blocks wrapped to SIZE_MAX, and every later coalescing walked the whole list,
 *    following links that nothing checked (fuzz_corrupt, session 39: SIGSEGV in osm_coalesce_blocks).
 *
 * Build: cc -std=c11 -D_GNU_SOURCE -Iinclude -Isrc fuzz/crashes/corrupted_headers.c build/libosmem.a -lpthread
 * (the second case shows its UB with the sanitised objects: add -fsanitize=undefined -fno-sanitize-recover=all and
 * link build-asan/libosmem.a after `make test-asan`, or build-fuzz/obj/\*.o).
 * Each case runs in a child; PASS when it ends in osmem's report (SIGABRT and `osmem: <fn>(): ...`). */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"

static void corrupted_prev_near_top(void)
{
	char *a = os_malloc(100), *b = os_malloc(100);
	(void)a;
	struct block_meta *m = (struct block_meta *)(b - META_SIZE);
	/* on the grid of the heap's headers (hdr_in_heap checks the offset from the heap start modulo 8) */
	m->prev = (struct block_meta *)(uintptr_t)(-(uintptr_t)META_SIZE + ((uintptr_t)m & 7));
	os_free(b);
}

static void corrupted_size_wraps(void)
{
	char *a = os_malloc(100), *b = os_malloc(100), *c = os_malloc(100);
	(void)c;
	os_free(b);
	struct block_meta *m = (struct block_meta *)(a - META_SIZE);
	m->size = SIZE_MAX;
	os_malloc(64); /* the coalescing pass checks b: heap_links_ok(b) computes block_end(a) */
	os_free(a);
}

static void corrupted_tail_next(void)
{
	char *a = os_malloc(131032); /* the whole first 128 KiB of the heap: the last block */
	struct block_meta *m = (struct block_meta *)(a - META_SIZE);
	m->next = (struct block_meta *)(uintptr_t)0x200000000000; /* nothing mapped there */
	os_malloc(100);  /* appended after it */
}

static void corrupted_free_size_in_index(void)
{
	char *p[16];
	for (int i = 0; i < 16; i++)
		p[i] = os_malloc(64 + 64 * (size_t)i);
	for (int i = 0; i < 16; i += 2)
		os_free(p[i]);
	os_malloc(5000); /* the coalescing pass puts the 8 free blocks in the index */
	((struct block_meta *)(p[14] - META_SIZE))->size = 56; /* was 960 */
	os_free(p[9]);
	os_free(p[3]);
	os_free(p[1]);
	os_free(p[15]);
	alarm(10); /* a hang ends as SIGALRM */
	os_malloc(500);
}

static void corrupted_last_size_moves_break(void)
{
	char *a = os_malloc(100); /* after it: the rest of the first 128 KiB, free, the last block */
	struct block_meta *last = (struct block_meta *)(a + 104);
	last->size = 18171; /* was 130904 */
	os_malloc(20000);   /* no fit in the index: the last block grows by 20000 - 18171 = 1829 bytes */
	os_malloc(150000 / 2); /* appended at the break */
	char *c = os_malloc(100000);
	if ((uintptr_t)c & 7) {
		fprintf(stderr, "os_malloc returned %p: not 8-byte aligned\n", (void *)c);
		_exit(2);
	}
}

static int run(const char *name, void (*fn)(void))
{
	int fds[2];
	if (pipe(fds))
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 2);
		fn();
		_exit(0);
	}
	close(fds[1]);
	char err[4096] = "";
	size_t got = 0;
	ssize_t r;
	while (got < sizeof err - 1 && (r = read(fds[0], err + got, sizeof err - 1 - got)) > 0)
		got += (size_t)r;
	err[got] = 0;
	int st;
	waitpid(pid, &st, 0);
	char *nl = strchr(err, '\n');
	if (nl)
		*nl = 0;
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strncmp(err, "osmem: ", 7) == 0 && !strstr(err, "runtime error")) {
		printf("PASS %s (%s)\n", name, err);
		return 0;
	}
	if (WIFSIGNALED(st))
		printf("FAIL %s: killed by signal %d, want osmem's report and SIGABRT; stderr: %s\n", name, WTERMSIG(st), err);
	else
		printf("FAIL %s: exit status %d, want osmem's report and SIGABRT; stderr: %s\n", name, WEXITSTATUS(st), err);
	return 1;
}

static void forged_noslot_tag(void)
{
	char *a = os_malloc(100);
	os_malloc(100);
	os_free(a);
	memset(a - META_SIZE + offsetof(struct block_meta, status) + sizeof(int), 0xff, 4);
	os_malloc(100);
}

int main(void)
{
	int bad = run("corrupted_prev_near_top", corrupted_prev_near_top);
	bad += run("corrupted_size_wraps", corrupted_size_wraps);
	bad += run("corrupted_tail_next", corrupted_tail_next);
	bad += run("corrupted_free_size_in_index", corrupted_free_size_in_index);
	bad += run("corrupted_last_size_moves_break", corrupted_last_size_moves_break);
	bad += run("forged_noslot_tag", forged_noslot_tag);
	return bad ? 1 : 0;
}
