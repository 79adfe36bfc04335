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
 * rest's header page, 17 pages on, are the only fresh pages the call touches. Two page faults; three before.
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
	const size_t hdr = sizeof(struct block_meta);
	/* the same calls once before, so that the core's own tables (its index's slots) are touched already: the
	 * faults counted below are the heap's alone */
	for (int i = 0; i < 2; i++) {
		char *w1 = v_malloc(64), *w2 = v_malloc(5000), *w3 = v_malloc(70000);
		free(w3);
		free(w2);
		free(w1);
	}
	char *first = v_malloc(64);
	if (!first) {
		printf("FAIL carve/fresh_payload_page_faults_once: setup: malloc(64) refused\n");
		return 1;
	}
	/* the next block starts right after first's: its size takes the free top's header to a page's last bytes */
	uintptr_t next = (uintptr_t)first + malloc_usable_size(first);
	size_t n = (size_t)((4096 - hdr - (next + hdr) % 4096) % 4096) + 4096;
	char *a = v_malloc(n);
	uintptr_t top = (uintptr_t)a + malloc_usable_size(a);
	if (!a || (uintptr_t)a != next + hdr || (top + hdr) % 4096 != 0) {
		printf("FAIL carve/fresh_payload_page_faults_once: setup: malloc(%zu) = %p after %p; the top's header at "
		       "offset %zu of its page (want %zu)\n", n, (void *)a, (void *)first, (size_t)(top % 4096),
		       4096 - hdr);
		return 1;
	}
	long f0 = minor_faults();
	char *q = v_malloc(70000);
	long f1 = minor_faults();
	if (!q || (uintptr_t)q != top + hdr) {
		printf("FAIL carve/fresh_payload_page_faults_once: setup: malloc(70000) = %p, not the free top's payload %p\n",
		       (void *)q, (void *)(top + hdr));
		return 1;
	}
	if (f1 - f0 > 2) {
		printf("FAIL carve/fresh_payload_page_faults_once: malloc(70000), taking a free block whose payload page was "
		       "never touched, made %ld page faults (want at most 2: that page written once, and the rest's header "
		       "page; a read of the first word before its write maps the zero page and faults again)\n", f1 - f0);
		return 1;
	}
	printf("PASS carve/fresh_payload_page_faults_once (%ld page faults)\n", f1 - f0);
	return 0;
}
