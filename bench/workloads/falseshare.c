/* falseshare: does the allocator put two threads' objects on one cache line? (after Hoard's cache-scratch)
 * The main thread allocates one small object per worker, back to back, as a program that builds its work
 * items before starting its threads would. Each worker frees its item (a remote free) and then, round after
 * round, mallocs an object of 8 bytes, writes it many times, and frees it. An allocator that serves the
 * worker from what it just freed, or carves the threads' objects from one shared run, hands out neighbouring
 * 8-byte objects: the writes then bounce a cache line between the cores and the loop runs several times
 * slower. One that gives each thread its own lines runs at the speed of the writes.
 *
 * Usage: falseshare SCALE [THREADS]   (THREADS default 2: the machine's cores)
 * Checksum: the sum of the values the workers read back from their objects. */
#include <pthread.h>

#include "common.h"

#define OBJ_SIZE   8
#define WRITES     2000       /* writes per object per round */
#define BASE_ROUNDS 100000.0  /* per thread, at scale 1 */

struct worker {
	_Alignas(64) pthread_t id;
	int index;
	long rounds;
	char *first;          /* the object the main thread allocated for this worker */
	uint64_t sum;
};

static void *run(void *arg)
{
	struct worker *w = arg;
	volatile unsigned char *p = (volatile unsigned char *)w->first;
	for (long r = -1; r < w->rounds; r++) {
		if (r >= 0) {
			p = xmalloc(OBJ_SIZE);
			memset((void *)p, 0, OBJ_SIZE);
		}
		for (int k = 0; k < WRITES; k++)
			for (int b = 0; b < OBJ_SIZE; b++)
				p[b] = (unsigned char)(p[b] + 1 + w->index);
		for (int b = 0; b < OBJ_SIZE; b++)
			w->sum += p[b];
		free((void *)p);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	double scale = scale_arg(argc, argv);
	int n = argc > 2 ? atoi(argv[2]) : 2;
	if (n < 1 || n > 64)
		return fprintf(stderr, "usage: falseshare SCALE [THREADS(1..64)]\n"), 2;
	struct worker *w = aligned_alloc(64, sizeof *w * (size_t)n);
	memset(w, 0, sizeof *w * (size_t)n);
	for (int i = 0; i < n; i++) {
		w[i].index = i;
		w[i].rounds = (long)(BASE_ROUNDS * scale);
		w[i].first = xmalloc(OBJ_SIZE);
		memset(w[i].first, 0, OBJ_SIZE);
	}
	double t0 = now_s();
	for (int i = 0; i < n; i++)
		pthread_create(&w[i].id, NULL, run, &w[i]);
	uint64_t sum = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].id, NULL);
		sum += w[i].sum;
	}
	double secs = now_s() - t0;
	print_checksum(sum);
	printf("metric writes_per_s %.0f\n", (double)n * (double)(w[0].rounds + 1) * WRITES * OBJ_SIZE / secs);
	free(w);
	return 0;
}
