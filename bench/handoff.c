/* handoff: blocks one thread allocates and another frees, through a ring (I/O buffers a reader hands to a
 * worker). The producer mallocs N blocks of LO..HI bytes (a xorshift sequence), writes their first and last
 * byte, and posts each in the next slot of a ring of RING slots, waiting while that slot is taken; the consumer
 * takes them in order, checks both bytes and frees them. Every free is another thread's block.
 *
 * Usage: handoff N LO HI [RING]   (RING default 64; at most 4096). Run it with LD_PRELOAD, under /usr/bin/time:
 *   /usr/bin/time -f '%e s %M KiB' env LD_PRELOAD=build/libosmem-malloc.so build/bench/handoff 200000 33000 65536
 * With a large ring the peak RSS says how full the ring ran (which thread was faster) more than what the
 * allocator keeps: 64 is the size to compare allocators' memory with. Session 33 (docs/TRADEOFFS.md, "Medium
 * caches up to 64 KiB"): 200,000 blocks of 33,000-65,536 bytes, ring 64: 0.19-0.37 s before the medium caches
 * reached 64 KiB, 0.04-0.10 s after (mimalloc 0.09, tcmalloc 0.27). Session 34 (docs/TRADEOFFS.md, "Frees that
 * find the lock taken"): 200,000 blocks of 65,537-262,144 bytes (core blocks, above the medium caches), ring 64:
 * 0.155 s while each free waited for the core's lock, 0.084 s once a free that finds it taken leaves its block
 * for the lock's next holder (mimalloc 0.070, tcmalloc 0.13; 7 interleaved runs each, medians).
 * Prints the sum of the bytes the consumer read (the same under every allocator) and exits 1 if a block came
 * back damaged. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define RING_MAX 4096

static void *_Atomic ring[RING_MAX];
static size_t ring_n = 64, lo, hi;
static long n_blocks;

static size_t size_of(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return lo + *s % (hi - lo + 1);
}

static void *consumer(void *arg)
{
	(void)arg;
	uint64_t s = 1, sum = 0;
	long bad = 0;
	for (long k = 0; k < n_blocks; k++) {
		size_t i = (size_t)k % ring_n, n = size_of(&s);
		unsigned char *p;
		while (!(p = __atomic_exchange_n(&ring[i], NULL, __ATOMIC_ACQUIRE)))
			sched_yield();
		bad += p[0] != (unsigned char)k || p[n - 1] != (unsigned char)~k;
		sum += p[0];
		free(p);
	}
	printf("checksum %llu\n", (unsigned long long)sum);
	return (void *)(intptr_t)(bad != 0);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: handoff N LO HI [RING]\n");
		return 2;
	}
	n_blocks = atol(argv[1]);
	lo = (size_t)atol(argv[2]);
	hi = (size_t)atol(argv[3]);
	if (argc > 4)
		ring_n = (size_t)atol(argv[4]);
	if (n_blocks < 1 || lo < 1 || hi < lo || ring_n < 1 || ring_n > RING_MAX) {
		fprintf(stderr, "handoff: N >= 1, 1 <= LO <= HI, 1 <= RING <= %d\n", RING_MAX);
		return 2;
	}
	pthread_t t;
	if (pthread_create(&t, NULL, consumer, NULL) != 0)
		return 2;
	uint64_t s = 1;
	for (long k = 0; k < n_blocks; k++) {
		size_t i = (size_t)k % ring_n, n = size_of(&s);
		unsigned char *p = malloc(n);
		if (!p) {
			fprintf(stderr, "handoff: malloc(%zu) failed\n", n);
			return 1;
		}
		p[0] = (unsigned char)k;
		p[n - 1] = (unsigned char)~k;
		while (__atomic_load_n(&ring[i], __ATOMIC_ACQUIRE))
			sched_yield();
		__atomic_store_n(&ring[i], p, __ATOMIC_RELEASE);
	}
	void *r;
	pthread_join(t, &r);
	if (r)
		fprintf(stderr, "handoff: a block came back damaged\n");
	return r ? 1 : 0;
}
