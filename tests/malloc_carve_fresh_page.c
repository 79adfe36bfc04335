/* A free block whose payload starts on a page the program never touched, taken by a request: the core reads the
 * block's first payload word (the decay's tag) and clears it. Read first, that word's page was mapped to the kernel's
 * zero page, and the store after it faulted again to copy it; in a process with threads that second fault
 * interrupts every other CPU running one of them to flush their TLBs (apis, aligned_alloc(4096) of 1-64 KiB in
 * four threads: 9% of the time in those interrupts, session 74). The tag is now read by a write (heap.c,
 * take_block_from): one fault for that page.
 *
 * The setting: one thread, the front off (OSMEM_FRONT=0: every request the core's), page faults declared cheap
 * (OSMEM_FAULT_NS=1500: the core populates no fresh header page, which would hide the faults counted here). A
 * block sized so that the free top's header ends exactly at a page boundary, its payload on the next page, which
 * nothing has touched; then malloc(70000), which takes the top and splits it: the top's payload page and the
 * rest's header page, 17 pages on, are the only fresh pages the call touches. Two page faults; three before. And
 * the same for malloc(2 MiB) from a free top of 6 MiB, which the decay's question (decay_reused) reads first:
 * two faults; three before it too read by a write.
 *
 * Run by itself: it executes itself again with the settings. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"

static void *(*volatile v_malloc)(size_t) = malloc;

static long minor_faults(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* first: a block of 64 bytes, then one sized so that the free top's header ends at a page boundary; then
 * malloc(want), which must take the top, its faults counted. 0: passed; 1: failed (said). */
static int fresh_top_case(const char *name, size_t want, long most)
{
	const size_t hdr = sizeof(struct block_meta);
	char *first = v_malloc(64);
	if (!first) {
		printf("FAIL carve/%s: setup: malloc(64) refused\n", name);
		return 1;
	}
	/* the next block starts right after first's: its size takes the free top's header to a page's last bytes */
	uintptr_t next = (uintptr_t)first + malloc_usable_size(first);
	size_t n = (size_t)((4096 - hdr - (next + hdr) % 4096) % 4096) + 4096;
	char *a = v_malloc(n);
	uintptr_t top = (uintptr_t)a + malloc_usable_size(a);
	if (!a || (uintptr_t)a != next + hdr || (top + hdr) % 4096 != 0) {
		printf("FAIL carve/%s: setup: malloc(%zu) = %p after %p; the top's header at offset %zu of its page (want "
		       "%zu)\n", name, n, (void *)a, (void *)first, (size_t)(top % 4096), 4096 - hdr);
		return 1;
	}
	long f0 = minor_faults();
	char *q = v_malloc(want);
	long f1 = minor_faults();
	if (!q || (uintptr_t)q != top + hdr) {
		printf("FAIL carve/%s: setup: malloc(%zu) = %p, not the free top's payload %p\n", name, want, (void *)q,
		       (void *)(top + hdr));
		return 1;
	}
	if (f1 - f0 > most) {
		printf("FAIL carve/%s: malloc(%zu), taking a free block whose payload page was never touched, made %ld page "
		       "faults (want at most %ld: that page written once, and the rest's header page; a read of the first "
		       "word before its write maps the zero page and faults again)\n", name, want, f1 - f0, most);
		return 1;
	}
	printf("PASS carve/%s (%ld page faults)\n", name, f1 - f0);
	return 0;
}

int main(int argc, char **argv)
{
	(void)argc;
	if (!getenv("OSMEM_FRONT") || strcmp(getenv("OSMEM_FRONT"), "0") != 0) {
		setenv("OSMEM_FRONT", "0", 1);
		setenv("OSMEM_FAULT_NS", "1500", 1);
		execv("/proc/self/exe", argv);
		printf("FAIL carve/fresh_payload_page_faults_once: exec failed\n");
		return 1;
	}
	/* the same calls once before, so that the core's own tables (its index's slots) are touched already: the
	 * faults counted below are the heap's alone */
	for (int i = 0; i < 2; i++) {
		char *w1 = v_malloc(64), *w2 = v_malloc(5000), *w3 = v_malloc(70000);
		free(w3);
		free(w2);
		free(w1);
	}
	int failed = fresh_top_case("fresh_payload_page_faults_once", 70000, 2);
	/* A request above 1 MiB that best fit serves from a free block asks the decay first whether that block was
	 * given back lately (heap.c, decay_reused), a read of the same word: a heap grown to 6 MiB and freed (kept: the
	 * trim threshold set high), then the same layout, then malloc(2 MiB) */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_MMAP_THRESHOLD, 16 << 20);
	char *big = v_malloc(6 << 20);
	free(big);
	failed |= fresh_top_case("fresh_payload_page_of_big_request_faults_once", 2 << 20, 2);
	return failed;
}
