/* malloc_front_stats_enomem: os_stats when the front layer cannot get memory and the core serves its requests.
 *   - miss_served_by_core_counted_once: with every mmap after the first failing (OSMEM_FAIL=mmap:2+: the front
 *     gets no segment, the core's break still grows), 100 mallocs of 100 bytes and their frees. Each request went
 *     through the front's slow path, which counted a miss before it found no page, and then to the core, which
 *     counted the allocation again: os_stats said 200 allocations for 100 (and 100 cache misses for requests no
 *     cache served), and allocations - frees stayed at 100 with nothing in use. A miss now counts only when the
 *     front serves it.
 * Runs itself again with OSMEM_FAIL set (read at the process's start). Prints `PASS front/stats/...` or
 * `FAIL ...: why`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osmem.h"

#define N 100

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

int main(int argc, char **argv)
{
	(void)argc;
	const char *fail = getenv("OSMEM_FAIL");
	if (!fail || strcmp(fail, "mmap:2+") != 0) {
		setenv("OSMEM_FAIL", "mmap:2+", 1);
		execv("/proc/self/exe", argv);
		printf("FAIL front/stats/miss_served_by_core_counted_once: cannot run itself again (test setup)\n");
		return 1;
	}
	struct os_stats s0, s1;
	static void *p[N];
	os_stats(&s0);
	for (int i = 0; i < N; i++) {
		p[i] = v_malloc(100);
		if (!p[i]) {
			printf("FAIL front/stats/miss_served_by_core_counted_once: malloc(100) returned NULL with only mmap "
			       "failing (the core's break should serve it)\n");
			return 1;
		}
		memset(p[i], i, 100);
	}
	for (int i = 0; i < N; i++)
		v_free(p[i]);
	os_stats(&s1);
	size_t allocs = s1.allocations - s0.allocations, frees = s1.frees - s0.frees;
	size_t misses = s1.cache_misses - s0.cache_misses, hits = s1.cache_hits - s0.cache_hits;
	if (allocs != N || frees != N || misses + hits > 0 || s1.bytes_in_use != s0.bytes_in_use) {
		printf("FAIL front/stats/miss_served_by_core_counted_once: with the front unable to map a segment, %d "
		       "mallocs of 100 bytes and their frees counted %zu allocations, %zu frees, %zu cache misses and %zu "
		       "hits, %zu bytes in use after (%zu before; want %d, %d, 0, 0 and no change: the core served "
		       "every request)\n", N, allocs, frees, misses, hits, s1.bytes_in_use, s0.bytes_in_use, N, N);
		return 1;
	}
	printf("PASS front/stats/miss_served_by_core_counted_once\n");
	return 0;
}
