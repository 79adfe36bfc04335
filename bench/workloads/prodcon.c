/* prodcon: every free is remote. P producers malloc objects of 16..1024 bytes and pass them through bounded
 * rings (one per producer/consumer pair, 1024 entries) to P consumers, which verify and free them: the
 * pipeline of a message queue or a network stack, where memory always dies in a thread other than its own.
 * A full or empty ring yields the processor (two cores run four threads).
 * Each pair's producer and consumer are pinned to different CPUs (producer i to the i-th CPU the process may use,
 * consumer i to the next): every free is remote and crosses cores, as in the pipeline above. Unpinned, the
 * scheduler decided from run to run whether a pair shared a core, and the time with it: in one 9-run make bench
 * glibc took 0.88-7.09 s and osmem 0.44-2.63 s, two modes each, so the medians compared placements, not
 * allocators. Pinned, 6 runs each: glibc 7.5-9.1 s, osmem 2.8-3.4, jemalloc 5.8-6.5, mimalloc 4.5-5.3, tcmalloc
 * 5.4-6.2. With one CPU every thread runs on it.
 *
 * Usage: prodcon SCALE [PAIRS]   (PAIRS default 2)
 * Checksum: the sum of the tags the consumers saw. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "common.h"

static cpu_set_t allowed;

/* Thread t onto the k-th CPU of those the process may use (modulo their number); nothing if there is none. */
static void pin(pthread_t t, int k)
{
	int n = CPU_COUNT(&allowed);
	if (n <= 0)
		return;
	k %= n;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &allowed) && k-- == 0) {
			cpu_set_t one;
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			pthread_setaffinity_np(t, sizeof one, &one);
			return;
		}
}

#define RING      1024
#define MIN_SIZE  16
#define MAX_SIZE  1024
#define BASE_ITEMS 24000000.0 /* all producers together, at scale 1 */

struct ring {
	_Alignas(64) _Atomic unsigned long head;   /* the consumer's */
	_Alignas(64) _Atomic unsigned long tail;   /* the producer's */
	_Alignas(64) void *item[RING];
	long items;
	int index;
	uint64_t sum;
	pthread_t prod, cons;
};

static void *produce(void *arg)
{
	struct ring *r = arg;
	uint64_t rng = 0xabcdef01ull * (uint64_t)(r->index + 1);
	unsigned long tail = 0;
	for (long k = 0; k < r->items; k++) {
		uint64_t x = rnd(&rng);
		size_t n = MIN_SIZE + (size_t)(x % (MAX_SIZE - MIN_SIZE + 1));
		void *p = xmalloc(n);
		tag_set(p, n, (x & ~0xffffull) | n);
		while (tail - atomic_load_explicit(&r->head, memory_order_acquire) == RING)
			sched_yield();
		r->item[tail % RING] = p;
		atomic_store_explicit(&r->tail, ++tail, memory_order_release);
	}
	return NULL;
}

static void *consume(void *arg)
{
	struct ring *r = arg;
	unsigned long head = 0;
	while (head < (unsigned long)r->items) {
		unsigned long tail;
		while ((tail = atomic_load_explicit(&r->tail, memory_order_acquire)) == head)
			sched_yield();
		for (; head < tail; head++) {     /* take all that is there, then publish the room at once */
			void *p = r->item[head % RING];
			uint64_t t;
			memcpy(&t, (char *)p + 8, 8);
			r->sum += tag_check(p, (size_t)(t & 0xffff));
			free(p);
		}
		atomic_store_explicit(&r->head, head, memory_order_release);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	double scale = scale_arg(argc, argv);
	int pairs = argc > 2 ? atoi(argv[2]) : 2;
	if (pairs < 1 || pairs > 32)
		return fprintf(stderr, "usage: prodcon SCALE [PAIRS(1..32)]\n"), 2;
	struct ring *rings = aligned_alloc(64, sizeof *rings * (size_t)pairs);
	memset(rings, 0, sizeof *rings * (size_t)pairs);
	long items = (long)(BASE_ITEMS * scale) / pairs;
	if (sched_getaffinity(0, sizeof allowed, &allowed))
		CPU_ZERO(&allowed);
	double t0 = now_s();
	for (int i = 0; i < pairs; i++) {
		rings[i].index = i;
		rings[i].items = items;
		pthread_create(&rings[i].cons, NULL, consume, &rings[i]);
		pin(rings[i].cons, i + 1);
		pthread_create(&rings[i].prod, NULL, produce, &rings[i]);
		pin(rings[i].prod, i);
	}
	uint64_t sum = 0;
	for (int i = 0; i < pairs; i++) {
		pthread_join(rings[i].prod, NULL);
		pthread_join(rings[i].cons, NULL);
		sum += rings[i].sum;
	}
	double secs = now_s() - t0;
	print_checksum(sum);
	printf("metric items_per_s %.0f\n", (double)(items * pairs) / secs);
	free(rings);
	return 0;
}
