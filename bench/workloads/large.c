/* large: churn of large blocks, 64 KiB to 4 MiB (log-uniform): image tiles, I/O buffers, the columns of a
 * query engine. A table of 64 slots; each operation frees a random slot's block and allocates a new one,
 * which is written once per page (its pages really are used). What it measures is what the allocator does
 * with memory of this size: a fresh mmap per block pays a system call and a page fault per page each time;
 * keeping freed blocks mapped for reuse avoids both, at a cost in resident memory (the RSS column).
 *
 * Usage: large SCALE
 * Checksum: the sum of the tags of the blocks freed (each checked on every page first). */
#include "common.h"

#define SLOTS     64
#define MIN_SIZE  (64u << 10)
#define MAX_SIZE  (4u << 20)
#define BASE_OPS  20000.0

int main(int argc, char **argv)
{
	long ops = (long)(BASE_OPS * scale_arg(argc, argv));
	static char *p[SLOTS];
	static size_t n[SLOTS];
	uint64_t rng = 7, sum = 0;
	for (long k = 0; k < ops; k++) {
		int i = (int)(rnd(&rng) % SLOTS);
		if (p[i]) {
			sum += check_pages(p[i], n[i]);
			free(p[i]);
		}
		n[i] = rnd_log(&rng, MIN_SIZE, MAX_SIZE);
		p[i] = xmalloc(n[i]);
		uint64_t tag = mix64((uint64_t)k);
		memcpy(p[i], &tag, 8);
		fill_pages(p[i], 8, n[i], tag);
	}
	for (int i = 0; i < SLOTS; i++)
		if (p[i]) {
			sum += check_pages(p[i], n[i]);
			free(p[i]);
		}
	print_checksum(sum);
	return 0;
}
