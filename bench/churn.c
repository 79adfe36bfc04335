/* churn: a larson-like server workload: T threads each keep a window of live objects (16..256 bytes, some up to
 * 2 KiB) and replace a random one per step; every 64th object goes to the next thread, which frees it (remote
 * frees). Prints ns per replacement (malloc + free), for `churn [threads] [seconds]`. Run it with LD_PRELOAD. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define WINDOW 4096
#define XQ 1024

static int threads = 2;
static double seconds = 2.0;
static volatile int stop;

struct tq { pthread_mutex_t m; void *q[XQ]; int n; } qs[64];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *run(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t r = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1);
	static __thread void *win[WINDOW];
	long ops = 0;
	for (int i = 0; i < WINDOW; i++)
		win[i] = malloc(16 + i % 241);
	while (!stop) {
		for (int k = 0; k < 1024; k++, ops++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			int i = (int)(r % WINDOW);
			size_t n = (r >> 32) % 16 ? 16 + (r >> 40) % 241 : 16 + (r >> 40) % 2033;
			void *old = win[i];
			win[i] = malloc(n);
			*(char *)win[i] = 1;
			if ((r >> 20) % 64 == 0) { /* hand the old one to the next thread */
				struct tq *q = &qs[(id + 1) % threads];
				pthread_mutex_lock(&q->m);
				if (q->n < XQ) {
					q->q[q->n++] = old;
					old = NULL;
				}
				pthread_mutex_unlock(&q->m);
			}
			free(old);
		}
		struct tq *q = &qs[id];
		pthread_mutex_lock(&q->m);
		while (q->n)
			free(q->q[--q->n]);
		pthread_mutex_unlock(&q->m);
	}
	for (int i = 0; i < WINDOW; i++)
		free(win[i]);
	return (void *)ops;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		threads = atoi(argv[1]);
	if (argc > 2)
		seconds = atof(argv[2]);
	pthread_t t[64];
	for (int i = 0; i < threads; i++)
		pthread_mutex_init(&qs[i].m, NULL);
	double t0 = now();
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, run, (void *)(intptr_t)i);
	struct timespec d = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
	nanosleep(&d, NULL);
	stop = 1;
	long ops = 0;
	for (int i = 0; i < threads; i++) {
		void *o;
		pthread_join(t[i], &o);
		ops += (long)o;
	}
	double el = now() - t0;
	printf("churn threads=%d ops=%ld ns/op(wall, all threads)=%.1f Mops/s=%.2f\n", threads, ops, el * 1e9 / (double)ops,
	       (double)ops / el / 1e6);
	return 0;
}
