/* footprint_prog: an ordinary program's allocations, for tests/test_footprint.py and tools/hot-list. Linked with
 * nothing of osmem's: libosmem-malloc.so is preloaded. Small pairs, calloc, realloc growth across the mmap
 * threshold, medium and large blocks, the aligned family, a second thread that starts with a medium request, frees
 * the first one's blocks and exits. Then, with --pages, it prints one line per mapping of the preloaded library:
 *
 *     map PERMS FILE_OFFSET PAGES PRESENT FIRST_PRESENT LAST_PRESENT START
 *
 * where PRESENT counts the pages of the mapping that are in the process's page tables (/proc/self/pagemap, bit
 * 63), the pages that count in its resident set, FIRST/LAST_PRESENT are page indexes within the mapping (-1
 * when none), and START its address (hexadecimal); then `bss PAGES START INDEXES` for the anonymous mapping right
 * after the library's (its .bss and .lbss: which pages of its tables the program touched). With --small first, the
 * program makes only small requests of one thread (test_footprint's idle_tables_not_read); with --threaded, the same
 * in a second thread while main holds a block (test_footprint's threads_first_tick_maps_no_cold_text). Exit status
 * 0 when every block read back what was written. */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HANDED 256

static void *handed[HANDED];
static int bad;

static void check(const unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i += 97)
		if (p[i] != v)
			bad = 1;
}

static void *other(void *arg)
{
	(void)arg;
	unsigned char *m = malloc(3000); /* a thread whose first slow path is a medium request makes its heap there */
	memset(m, 9, 3000);
	check(m, 3000, 9);
	free(m);
	for (int i = 0; i < HANDED; i++) { /* remote frees: the blocks main allocated */
		check(handed[i], 16, (unsigned char)i);
		free(handed[i]);
	}
	for (int i = 0; i < 1000; i++) { /* a thread's own cache, given back at its exit */
		char *p = malloc(16 + (size_t)i % 500);
		memset(p, 1, 16);
		free(p);
	}
	return NULL;
}

static void work(void)
{
	for (int i = 0; i < 100000; i++) { /* pairs, and eight in flight */
		size_t n = 16 + (size_t)(i * 7919) % 241;
		unsigned char *p = malloc(n);
		memset(p, (unsigned char)i, n);
		check(p, n, (unsigned char)i);
		free(p);
	}
	for (int i = 0; i < 1000; i++) {
		void *q[8];
		for (int k = 0; k < 8; k++)
			q[k] = malloc(32 + (size_t)k * 40);
		for (int k = 7; k >= 0; k--)
			free(q[k]);
	}
	for (int i = 0; i < 200; i++) { /* calloc, medium blocks */
		unsigned char *z = calloc(1 + (size_t)i % 50, 64);
		check(z, (1 + (size_t)i % 50) * 64, 0);
		unsigned char *m = malloc(2500 + (size_t)i * 150);
		memset(m, 3, 2500);
		free(z);
		free(m);
	}
	unsigned char *g = NULL; /* realloc growth, from the small classes past the mmap threshold */
	size_t n = 16;
	for (; n <= (size_t)1 << 20; n = n * 3 / 2) {
		g = realloc(g, n);
		g[n - 1] = 7;
	}
	free(g);
	for (int i = 0; i < 20; i++) { /* large blocks */
		unsigned char *l = malloc((size_t)200000 + (size_t)i * 150000);
		memset(l, 5, 4096);
		check(l, 4096, 5);
		free(l);
	}
	void *a = NULL;
	if (posix_memalign(&a, 64, 100) == 0)
		free(a);
	free(aligned_alloc(4096, 8192));
	char *s = strdup("footprint");
	free(s);
	for (int i = 0; i < HANDED; i++) {
		handed[i] = malloc(16 + (size_t)i);
		memset(handed[i], i, 16);
	}
	pthread_t t;
	if (pthread_create(&t, NULL, other, NULL) == 0)
		pthread_join(t, NULL);
	else
		bad = 1;
}

/* The `bss` line: bss PAGES START INDEXES, INDEXES the present pages' indexes within the mapping, comma-separated
 * (a page only read is present too: the kernel's zero page), or - for none. */
static void bss_line(int pm, unsigned long lo, unsigned long hi)
{
	printf("bss %lu %lx ", (hi - lo) / 4096, lo);
	const char *sep = "";
	for (unsigned long a = lo; a < hi; a += 4096) {
		uint64_t e = 0;
		if (pread(pm, &e, sizeof e, (off_t)(a / 4096 * sizeof e)) == (ssize_t)sizeof e && e >> 63) {
			printf("%s%lu", sep, (a - lo) / 4096);
			sep = ",";
		}
	}
	printf("%s\n", *sep ? "" : "-");
}

/* One line per mapping of the preloaded library (its path contains libosmem-malloc), and a `bss` line for the
 * anonymous mapping that follows the last of them without a gap (the rest of its .bss, and its .lbss). */
static void pages(void)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	int pm = open("/proc/self/pagemap", O_RDONLY);
	if (!maps || pm < 0) {
		printf("error cannot read /proc/self/maps or pagemap\n");
		bad = 1;
		return;
	}
	static char buf[8192]; /* stdio's own buffer would be a medium request, which reads the medium tables */
	setvbuf(maps, buf, _IOFBF, sizeof buf);
	char line[4096];
	unsigned long lib_end = 0;
	while (fgets(line, sizeof line, maps)) {
		unsigned long lo, hi, off;
		char perms[8], path[8] = "";
		if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %7s", &lo, &hi, perms, &off, path) < 4)
			continue;
		bool bss = false;
		if (strstr(line, "libosmem-malloc"))
			lib_end = hi;
		else if (lib_end && lo == lib_end && !path[0])
			bss = true, lib_end = 0;
		else {
			lib_end = 0;
			continue;
		}
		if (bss) {
			bss_line(pm, lo, hi);
			continue;
		}
		long present = 0, first = -1, last = -1;
		for (unsigned long a = lo; a < hi; a += 4096) {
			uint64_t e = 0;
			if (pread(pm, &e, sizeof e, (off_t)(a / 4096 * sizeof e)) != (ssize_t)sizeof e)
				continue;
			if (e >> 63) {
				long i = (long)((a - lo) / 4096);
				present++;
				if (first < 0)
					first = i;
				last = i;
			}
		}
		printf("map %s %lx %lu %ld %ld %ld %lx\n", perms, off, (hi - lo) / 4096, present, first, last, lo);
	}
	fclose(maps);
	close(pm);
}

/* count pairs of small requests, each block written and read back */
static void small_pairs(int count)
{
	for (int i = 0; i < count; i++) {
		size_t n = 16 + (size_t)i * 7919 % 241;
		unsigned char *p = malloc(n);
		memset(p, (unsigned char)i, n);
		check(p, n, (unsigned char)i);
		free(p);
	}
}

/* --small: only small requests of one thread (pairs, eight in flight), past the first tick of the idle decay */
static void work_small(void)
{
	small_pairs(300000);
}

/* 4,096 pairs: four free ticks (FRONT_TICK, 1,024 frees), the first of which makes the decay's first pass, all well
 * within the second after which a second pass would look for idle threads (steal_idle, cold text) even on a busy
 * host, where work_small's 300,000 could take that long */
static void *small_thread(void *arg)
{
	(void)arg;
	small_pairs(4096);
	return NULL;
}

/* --threaded: a short program with threads (larson, prodcon): main holds a small block, so it has a cache, while a
 * second thread's small requests reach the first tick of the idle decay: a pass with two threads that have caches */
static void work_threaded(void)
{
	char *keep = malloc(32);
	memset(keep, 5, 32);
	pthread_t t;
	if (pthread_create(&t, NULL, small_thread, NULL) == 0)
		pthread_join(t, NULL);
	else
		bad = 1;
	check((unsigned char *)keep, 32, 5);
	free(keep);
}

int main(int argc, char **argv)
{
	static char out[8192]; /* as pages' buffer: stdout's own would be a medium request */
	setvbuf(stdout, out, _IOFBF, sizeof out);
	bool small = argc > 1 && strcmp(argv[1], "--small") == 0;
	bool threaded = argc > 1 && strcmp(argv[1], "--threaded") == 0;
	if (small)
		work_small();
	else if (threaded)
		work_threaded();
	else
		work();
	small |= threaded;
	if (argc > 1 + small && strcmp(argv[1 + small], "--pages") == 0)
		pages();
	printf("footprint_prog %s\n", bad ? "bad" : "ok");
	return bad;
}
