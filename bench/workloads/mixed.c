/* mixed: one thread, sizes from 8 bytes to 512 KiB, and buffers that grow by realloc across the 128 KiB line
 * where most allocators switch from their heap to mmap (a parser's tokens, a document's strings, its growing
 * output buffers, all at once).
 *
 * A table of 1024 slots. Each operation picks a slot: an empty slot gets a new object (80% of 8..1024 bytes,
 * 15% of 1..64 KiB, 5% of 64..512 KiB, log-uniform within each band); a slot holding a growable buffer is
 * grown by realloc to 1.25..2 times its size, until it passes 1 MiB, when it is freed; any other object is
 * freed. One new object in sixteen is a growable buffer (starting at 1..8 KiB). Every new byte range is written
 * once per page, as a program filling its buffers would fault it in; realloc must keep the old contents,
 * checked at each growth and at free.
 *
 * Usage: mixed SCALE
 * Checksum: the sum of the tags of the objects freed, and the number of growths. */
#include "common.h"

#define SLOTS     1024
#define BASE_OPS  400000.0
#define GROW_LIMIT (1u << 20)

struct slot {
	char *p;
	size_t n;
	int growable;
};

static size_t pick_size(uint64_t *rng)
{
	uint64_t band = rnd(rng) % 100;
	if (band < 80)
		return rnd_log(rng, 8, 1024);
	if (band < 95)
		return rnd_log(rng, 1025, 64 << 10);
	return rnd_log(rng, (64 << 10) + 1, 512 << 10);
}

int main(int argc, char **argv)
{
	long ops = (long)(BASE_OPS * scale_arg(argc, argv));
	static struct slot s[SLOTS];
	uint64_t rng = 42, sum = 0, seq = 0, growths = 0;
	for (long k = 0; k < ops; k++) {
		struct slot *e = &s[rnd(&rng) % SLOTS];
		if (!e->p) {
			e->growable = rnd(&rng) % 16 == 0;
			e->n = e->growable ? rnd_range(&rng, 1024, 8192) : pick_size(&rng);
			e->p = xmalloc(e->n);
			uint64_t tag = mix64(++seq);
			memcpy(e->p, &tag, 8);
			fill_pages(e->p, 8, e->n, tag);
		} else if (e->growable && e->n < GROW_LIMIT) {
			uint64_t tag = check_pages(e->p, e->n);
			size_t m = e->n + e->n * (size_t)rnd_range(&rng, 25, 100) / 100;
			char *q = realloc(e->p, m);
			if (!q)
				fail("realloc returned NULL", e->p, m, 0);
			if (check_pages(q, e->n) != tag)
				fail("realloc lost the tag", q, tag, check_pages(q, e->n));
			fill_pages(q, e->n, m, tag);
			e->p = q;
			e->n = m;
			growths++;
		} else {
			sum += check_pages(e->p, e->n);
			free(e->p);
			e->p = NULL;
		}
	}
	for (int i = 0; i < SLOTS; i++)
		free(s[i].p);
	print_checksum(sum ^ (growths << 40));
	return 0;
}
