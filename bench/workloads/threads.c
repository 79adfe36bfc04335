/* threads: many threads allocating at once, each its own objects (after glibc's bench-malloc-thread): more
 * threads than cores (8 on 2), each with a working set of 1024 slots, replacing a random slot per operation
 * with a new object of 16 bytes to 32 KiB, small sizes far more frequent (the density falls as 1/size). No
 * object crosses threads: what is measured is how the allocator scales when every thread calls it at once,
 * and how it copes with threads preempted while inside it.
 *
 * Usage: threads SCALE [THREADS]   (THREADS default 8)
 * Checksum: the sum of the tags freed. */
#include <pthread.h>

#include "common.h"

#define SLOTS     1024
#define MIN_SIZE  16
#define MAX_SIZE  (32u << 10)
#define BASE_OPS  6000000.0   /* all threads together, at scale 1 */

struct worker {
	_Alignas(64) pthread_t id;
	int index;
	long ops;
	uint64_t sum;
};

static void *run(void *arg)
{
	struct worker *w = arg;
	char *p[SLOTS] = {0};
	uint32_t n[SLOTS] = {0};
	uint64_t rng = 0x5eed0000ull + (uint64_t)w->index;
	for (long k = 0; k < w->ops; k++) {
		int i = (int)(rnd(&rng) % SLOTS);
		if (p[i]) {
			w->sum += tag_check(p[i], n[i]);
			free(p[i]);
		}
		n[i] = (uint32_t)rnd_log(&rng, MIN_SIZE, MAX_SIZE);
		p[i] = xmalloc(n[i]);
		tag_set(p[i], n[i], mix64(((uint64_t)w->index << 48) | (uint64_t)k));
	}
	for (int i = 0; i < SLOTS; i++)
		if (p[i]) {
			w->sum += tag_check(p[i], n[i]);
			free(p[i]);
		}
	return NULL;
}

int main(int argc, char **argv)
{
	double scale = scale_arg(argc, argv);
	int nt = argc > 2 ? atoi(argv[2]) : 8;
	if (nt < 1 || nt > 256)
		return fprintf(stderr, "usage: threads SCALE [THREADS(1..256)]\n"), 2;
	struct worker *w = aligned_alloc(64, sizeof *w * (size_t)nt);
	memset(w, 0, sizeof *w * (size_t)nt);
	double t0 = now_s();
	for (int i = 0; i < nt; i++) {
		w[i].index = i;
		w[i].ops = (long)(BASE_OPS * scale) / nt;
		pthread_create(&w[i].id, NULL, run, &w[i]);
	}
	uint64_t sum = 0;
	for (int i = 0; i < nt; i++) {
		pthread_join(w[i].id, NULL);
		sum += w[i].sum;
	}
	double secs = now_s() - t0;
	print_checksum(sum);
	printf("metric ops_per_s %.0f\n", (double)(w[0].ops * nt) / secs);
	free(w);
	return 0;
}
