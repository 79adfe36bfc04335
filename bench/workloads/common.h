/* common.h: what every workload of bench/run.py shares: a seeded PRNG, a clock, the resident set from /proc,
 * object tagging, and the output protocol.
 *
 * The workloads link nothing of osmem's: they call plain malloc and run.py preloads each allocator in turn.
 * Protocol (stdout, read by run.py):
 *   checksum HEX         a digest of what the program computed; it depends only on the seeds, never on timing
 *                        or addresses, so it must be the same under every allocator (run.py checks it)
 *   metric NAME VALUE    a figure of the workload's own (ops/s, resident and live kilobytes)
 * A verification failure (an object that does not hold what was written into it) prints `FAIL why` on stderr
 * and exits 1: a benchmark that ran on a corrupting allocator must not be reported as fast. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: one word of state per thread, good enough to spread sizes and slots, and it doubles as the
 * hash that turns (thread, sequence number) into an object's tag. */
static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix64(*s);
}

/* a size in [lo, hi] */
static inline size_t rnd_range(uint64_t *s, size_t lo, size_t hi)
{
	return lo + (size_t)(rnd(s) % (hi - lo + 1));
}

/* a size in [lo, hi], log-uniform: as many requests in 64..128 as in 64K..128K, the shape of real programs */
static inline size_t rnd_log(uint64_t *s, size_t lo, size_t hi)
{
	double a = __builtin_log((double)lo), b = __builtin_log((double)hi + 1);
	double u = (double)(rnd(s) >> 11) * (1.0 / 9007199254740992.0);
	size_t n = (size_t)__builtin_exp(a + (b - a) * u);
	return n < lo ? lo : n > hi ? hi : n;
}

static void fail(const char *why, const void *p, uint64_t want, uint64_t got)
{
	fprintf(stderr, "FAIL %s: object %p holds %#llx, expected %#llx\n", why, p, (unsigned long long)got,
	        (unsigned long long)want);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "FAIL malloc(%zu) returned NULL\n", n);
		exit(1);
	}
	return p;
}

/* An object of n >= 16 bytes carries its tag in bytes 8..15 (bytes 0..7 stay free for a list link) and the
 * tag's top byte in its last byte (for n = 16 that is the same byte): a block handed out twice or overlapping
 * another one shows up at free. */
static inline void tag_set(void *p, size_t n, uint64_t tag)
{
	memcpy((char *)p + 8, &tag, 8);
	((unsigned char *)p)[n - 1] = (unsigned char)(tag >> 56);
}

static inline uint64_t tag_check(const void *p, size_t n)
{
	uint64_t t;
	memcpy(&t, (const char *)p + 8, 8);
	if (((const unsigned char *)p)[n - 1] != (unsigned char)(t >> 56))
		fail("last byte overwritten", p, t >> 56, ((const unsigned char *)p)[n - 1]);
	return t;
}

/* Large objects and those that grow (n >= 8): the tag in bytes 0..7; beyond them, every page start and the last
 * byte hold page_byte(tag, offset), one function for all, so the bytes a growth writes never contradict those the
 * previous sizes wrote. One write per page is what faults the pages in, as a program filling them would. */
static inline char page_byte(uint64_t tag, size_t i)
{
	return (char)(tag ^ (i >> 12) ^ (i * 131));
}

static inline void fill_pages(char *p, size_t from, size_t to, uint64_t tag)
{
	for (size_t i = (from + 4095) & ~(size_t)4095; i < to; i += 4096)
		p[i] = page_byte(tag, i);
	if (to - 1 >= 8 && to - 1 >= from)
		p[to - 1] = page_byte(tag, to - 1);
}

static inline uint64_t check_pages(const char *p, size_t n)
{
	uint64_t tag;
	memcpy(&tag, p, 8);
	for (size_t i = 4096; i < n; i += 4096)
		if (p[i] != page_byte(tag, i))
			fail("page byte lost", p + i, (unsigned char)page_byte(tag, i), (unsigned char)p[i]);
	if (n - 1 >= 8 && p[n - 1] != page_byte(tag, n - 1))
		fail("last byte lost", p + n - 1, (unsigned char)page_byte(tag, n - 1), (unsigned char)p[n - 1]);
	return tag;
}

/* The resident set now, and its peak (VmHWM), in KiB. */
static inline long rss_kb(void)
{
	long pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static inline long hwm_kb(void)
{
	char line[256];
	long kb = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = atol(line + 6);
	fclose(f);
	return kb;
}

/* argv[1]: the scale (1 = the full run; run.py --quick passes less), multiplying every operation count */
static inline double scale_arg(int argc, char **argv)
{
	double s = argc > 1 ? atof(argv[1]) : 1.0;
	return s > 0 ? s : 1.0;
}

static inline void print_checksum(uint64_t sum)
{
	printf("checksum %016llx\n", (unsigned long long)sum);
}

#endif
