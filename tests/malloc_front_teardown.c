/* malloc_front_teardown: threads exit while objects they allocated are still alive.
 *
 * Hazard: at thread exit the front layer gives the thread's cache back (a pthread key destructor): pages with
 * live slots are abandoned, not freed, and must stay valid for the threads that free those slots later (remote
 * frees into an abandoned page); the pages must then be reclaimed (adopted or swept back to the pool), so that
 * memory is reused instead of growing with every generation of threads. A thread that allocates in another
 * key destructor after the front's own has run must still be served.
 * Each round: 8 threads allocate objects of every size class, free half of them, allocate again from a key
 * destructor and exit; main verifies and frees the rest. Prints `PASS front/teardown/...` or `FAIL ...: why`. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "osmem.h"

#define THREADS 8
#define PER_THREAD 3000
#define ROUNDS 24
#define FRONT_SEG_SIZE ((size_t)4 << 20) /* src/internal.h: one segment */

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

struct work { unsigned char *p[PER_THREAD]; size_t n[PER_THREAD]; unsigned seed; void *late; };
static struct work works[THREADS];
static pthread_key_t key;
static pthread_barrier_t all_allocated;

static unsigned char pat(uintptr_t p, size_t i) { return (unsigned char)((p >> 4) * 13 + i); }

static void late_destructor(void *arg)
{
	/* glibc may run this after the front's own destructor: the thread has no cache any more */
	struct work *w = arg;
	w->late = v_malloc(100);
	memset(w->late, 0x77, 100);
}

static void *worker(void *arg)
{
	struct work *w = arg;
	pthread_setspecific(key, w);
	unsigned r = w->seed;
	for (int i = 0; i < PER_THREAD; i++) {
		r = r * 1103515245u + 12345u;
		size_t n = 1 + (r >> 8) % 2048;
		w->p[i] = v_malloc(n);
		w->n[i] = n;
		for (size_t k = 0; k < n; k += 64)
			w->p[i][k] = pat((uintptr_t)w->p[i], k);
	}
	/* every round the same demand: all eight threads' objects live at once, however they were scheduled */
	pthread_barrier_wait(&all_allocated);
	for (int i = 0; i < PER_THREAD; i += 2) {
		v_free(w->p[i]);
		w->p[i] = NULL;
	}
	return NULL;
}

static void *nothing(void *arg) { return arg; }

int main(void)
{
	int failures = 0, bad = 0;
	pthread_t t[THREADS];
	pthread_key_create(&key, late_destructor);
	pthread_barrier_init(&all_allocated, NULL, THREADS);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, nothing, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	struct os_stats st;
	os_stats(&st);
	if (!st.front_bytes) {
		printf("FAIL front/teardown/front_on: the front layer is off\n");
		return 1;
	}
	size_t base = st.front_in_use, bytes[ROUNDS];
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < THREADS; i++) {
			works[i].seed = (unsigned)(round * 100 + i);
			pthread_create(&t[i], NULL, worker, &works[i]);
		}
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		/* the threads are gone; their objects are freed here, into abandoned pages */
		for (int i = 0; i < THREADS; i++) {
			struct work *w = &works[i];
			for (int j = 0; j < PER_THREAD; j++) {
				if (!w->p[j])
					continue;
				for (size_t k = 0; k < w->n[j]; k += 64)
					bad += w->p[j][k] != pat((uintptr_t)w->p[j], k);
				v_free(w->p[j]);
			}
			unsigned char *l = w->late;
			bad += !l || l[0] != 0x77 || l[99] != 0x77;
			v_free(l);
		}
		os_stats(&st);
		bytes[round] = st.front_bytes;
		if (st.front_in_use != base) {
			printf("FAIL front/teardown/in_use_round_%d: front_in_use %zu, %zu before\n", round,
			       st.front_in_use, base);
			failures++;
		}
	}
	printf(bad ? "FAIL front/teardown/patterns: %d objects of exited threads changed\n"
		   : "PASS front/teardown/patterns\n", bad);
	failures += bad != 0;
	/* Every round asks for the same memory (the barrier: all threads' objects live at once), so reuse shows as a
	 * plateau. It is measured against the largest figure of the first half, not of the first rounds: whether the
	 * pages that the last exiting threads abandoned were swept back before the next round asked for pages
	 * depends on how the threads were scheduled, and on a busy machine the plateau came later (20 MiB after round
	 * 2, 28 MiB after round 24, reused from then on). One segment of slack on top: the pool keeps a fully free
	 * segment mapped (SEGS_KEEP). A leak grows with every round and passes both. */
	size_t early = 0;
	for (int r = 0; r < ROUNDS / 2; r++)
		early = bytes[r] > early ? bytes[r] : early;
	if (bytes[ROUNDS - 1] > early + FRONT_SEG_SIZE) {
		printf("FAIL front/teardown/memory_reused: front bytes at most %zu in rounds 1-%d, %zu after round %d: the "
		       "pages of exited threads are not reused (more than one segment of growth)\n", early, ROUNDS / 2,
		       bytes[ROUNDS - 1], ROUNDS);
		failures++;
	} else {
		printf("PASS front/teardown/memory_reused (%zu KiB of segments)\n", bytes[ROUNDS - 1] >> 10);
	}
	if (st.front_threads != 1) {
		printf("FAIL front/teardown/caches_returned: %zu thread caches alive with only main running\n",
		       st.front_threads);
		failures++;
	} else {
		printf("PASS front/teardown/caches_returned\n");
	}
	return failures != 0;
}
