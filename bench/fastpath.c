/* fastpath: the cost of malloc/free on the paths programs hit most, for any allocator (run it with LD_PRELOAD).
 *
 * Three loops, each printed as ns per malloc+free pair:
 *   pairs    malloc(n) then free at once, n cycling through 16..512: the same block comes back every time;
 *   window   a window of 1000 live blocks of random sizes 8..2048, the oldest freed as a new one comes;
 *   realloc  a buffer grown by 64 bytes up to 64 KiB, then freed (string building).
 * bench/run_fastpath.py runs it on glibc, osmem's profiles and the other allocators, and takes medians. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t state = 88172645463325252ull;
static inline uint64_t rnd(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

static void *volatile sink;

static double pairs(long ops)
{
	double t = now();
	for (long i = 0; i < ops; i++) {
		char *p = malloc(16 + (size_t)(i & 31) * 16);
		p[0] = (char)i;
		sink = p;
		free(p);
	}
	return (now() - t) * 1e9 / (double)ops;
}

static double window(long ops)
{
	enum { W = 1000 };
	static char *live[W];
	double t = now();
	for (long i = 0; i < ops; i++) {
		long k = i % W;
		free(live[k]);
		live[k] = malloc(8 + rnd() % 2041);
		live[k][0] = (char)i;
	}
	for (long k = 0; k < W; k++) {
		free(live[k]);
		live[k] = NULL;
	}
	return (now() - t) * 1e9 / (double)ops;
}

static double grow(long rounds)
{
	long ops = 0;
	double t = now();
	for (long r = 0; r < rounds; r++) {
		char *p = NULL;
		for (size_t n = 64; n <= 65536; n += 64, ops++) {
			p = realloc(p, n);
			p[n - 1] = 1;
		}
		free(p);
	}
	return (now() - t) * 1e9 / (double)ops;
}

int main(int argc, char **argv)
{
	long scale = argc > 1 ? atol(argv[1]) : 1;
	printf("pairs %.1f\n", pairs(4000000 * scale));
	printf("window %.1f\n", window(2000000 * scale));
	printf("realloc %.1f\n", grow(200 * scale));
	return 0;
}
