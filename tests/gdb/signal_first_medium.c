/* signal_first_medium: a signal handler that allocates, run in the middle of a thread's first medium request.
 * tests/test_protect_signal_heap.py runs it under gdb, which stops the thread inside the request (after the use of
 * its medium bins has begun on the empty heap, before the request makes the thread's heap) and delivers SIGUSR1
 * there: the handler's malloc(64) makes the heap. Then gdb prints the heap's count of uses (mc_busy) at
 * after_first_request, where the thread is inside none: it must be 0.
 *
 * The program's own check, after that: the thread fills its medium cache (12 blocks of 3-13 KiB freed) and blocks;
 * another thread's passes must give that idle cache back (front.c, steal_idle_caches) within 20 s of wall-clock
 * time. Before the fix the count was 255 whenever the thread was idle, so no pass ever did.
 *
 * Usage: signal_first_medium malloc|free  (malloc: the first request is malloc(3000); free: the free of a 3000-byte
 * block the main thread allocated). Prints "given back" or "NOT given back: ..." and exits 0 or 1. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "osmem.h"

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

static pthread_barrier_t filled, wake;
static int by_free;
static void *given; /* the main thread's block, freed by the thread in free mode */

static void on_usr1(int sig)
{
	(void)sig;
	v_free(v_malloc(64));
}

/* gdb's stops: before the thread's first request, and after it */
__attribute__((noinline)) void before_first_request(void) { __asm__ volatile(""); }
__attribute__((noinline)) void after_first_request(void) { __asm__ volatile(""); }

static void *worker(void *arg)
{
	(void)arg;
	before_first_request();
	if (by_free)
		v_free(given);
	else
		v_free(v_malloc(3000));
	after_first_request();
	void *q[12];
	for (int i = 0; i < 12; i++)
		q[i] = v_malloc(3000 + 900 * (size_t)i);
	for (int i = 0; i < 12; i++)
		v_free(q[i]);
	pthread_barrier_wait(&filled);
	pthread_barrier_wait(&wake); /* blocked: idle, its cache is another thread's to give back */
	return NULL;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "malloc") && strcmp(argv[1], "free"))) {
		fprintf(stderr, "usage: signal_first_medium malloc|free\n");
		return 2;
	}
	by_free = !strcmp(argv[1], "free");
	signal(SIGUSR1, on_usr1);
	given = v_malloc(3000);
	pthread_barrier_init(&filled, NULL, 2);
	pthread_barrier_init(&wake, NULL, 2);
	pthread_t t;
	pthread_create(&t, NULL, worker, NULL);
	pthread_barrier_wait(&filled);
	struct os_stats s;
	os_stats(&s);
	size_t before = s.front_cached_bytes;
	/* the passes run once a second, at this thread's requests that reach the core (one of 200,000 bytes a round:
	 * mapped, and not kept, as a block of 1 MiB would be in a threaded process) */
	double t0 = now();
	while (now() - t0 < 20) {
		v_free(v_malloc(200000));
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		os_stats(&s);
		if (s.front_cached_bytes < 16384)
			break;
	}
	int ok = before >= 40000 && s.front_cached_bytes < 16384;
	if (ok)
		printf("given back: %zu cached bytes after the burst, %zu after %.1f s\n", before, s.front_cached_bytes,
		       now() - t0);
	else
		printf("NOT given back: %zu cached bytes after the burst (want 40,000 or more), %zu after %.1f s of the "
		       "thread blocked (want under 16,384)\n", before, s.front_cached_bytes, now() - t0);
	fflush(stdout);
	pthread_barrier_wait(&wake);
	pthread_join(t, NULL);
	return ok ? 0 : 1;
}
