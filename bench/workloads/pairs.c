/* pairs: the fast path. One thread, malloc of 16..256 bytes followed at once by its free, the pattern of
 * temporaries (a formatted string, a small node that does not survive the function). Every allocator's
 * best case: what is left is the cost of the call itself, its locks and its bookkeeping. A second loop keeps
 * eight objects in flight (malloc eight, free them in reverse), so an allocator that only caches the last
 * freed block does not get it for free.
 *
 * Usage: pairs SCALE
 * Checksum: the sum of the tags read back before each free. */
#include "common.h"

#define BASE_PAIRS 40000000.0
#define BATCH      8

int main(int argc, char **argv)
{
	long ops = (long)(BASE_PAIRS * scale_arg(argc, argv));
	uint64_t rng = 99, sum = 0;
	double t0 = now_s();
	for (long k = 0; k < ops / 2; k++) {
		uint64_t r = rnd(&rng);
		size_t n = 16 + (size_t)(r % 241);
		char *p = xmalloc(n);
		tag_set(p, n, r);
		sum += tag_check(p, n);
		free(p);
	}
	for (long k = 0; k < ops / 2; k += BATCH) {
		char *p[BATCH];
		size_t n[BATCH];
		for (int i = 0; i < BATCH; i++) {
			uint64_t r = rnd(&rng);
			n[i] = 16 + (size_t)(r % 241);
			p[i] = xmalloc(n[i]);
			tag_set(p[i], n[i], r);
		}
		for (int i = BATCH - 1; i >= 0; i--) {
			sum += tag_check(p[i], n[i]);
			free(p[i]);
		}
	}
	double secs = now_s() - t0;
	print_checksum(sum);
	printf("metric ns_per_pair %.1f\n", secs * 1e9 / (double)ops);
	return 0;
}
