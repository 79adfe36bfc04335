/* malloc_front_enomem_backoff: a thread whose front memory cannot be mapped (ENOMEM) must not try the mapping
 * again at every small request.
 *   - heap_mapping_not_retried_every_request: every mmap fails (OSMEM_FAIL=mmap:1+): the thread's heap cannot be
 *     mapped, and the core serves its requests from the break. Before session 41 each malloc(64) tried the heap's
 *     mapping again: 100,000 mallocs, 100,000 mmap attempts (a failed system call each under a real ENOMEM).
 *   - segment_mapping_not_retried_every_request: every mmap after the first fails (mmap:2+): the heap exists, no
 *     segment can be mapped; each request took the front lock and tried a segment again.
 *   - front_used_again_after_a_failure: only the first mmap fails (mmap:1): after a while the thread tries again,
 *     gets its heap, and its caches serve (a backoff must not turn the front off for good).
 * Runs itself again once per case with OSMEM_FAIL set (read at the process's start). Prints `PASS front/enomem/...`
 * or `FAIL ...: why`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"

#define N 100000
#define MAX_ATTEMPTS (N / 64) /* a retry every 256 requests is about 400: the bound leaves room, not 100,000 */

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

static const struct { const char *name, *fail; } cases[] = {
	{ "heap_mapping_not_retried_every_request", "mmap:1+" },
	{ "segment_mapping_not_retried_every_request", "mmap:2+" },
	{ "front_used_again_after_a_failure", "mmap:1" },
};

static int child(int k)
{
	struct os_stats a, b;
	os_stats(&a);
	for (int i = 0; i < N; i++) {
		char *p = v_malloc(64);
		if (!p) {
			printf("FAIL front/enomem/%s: malloc(64) returned NULL at request %d with OSMEM_FAIL=%s (the core's "
			       "break should serve it)\n", cases[k].name, i, cases[k].fail);
			return 1;
		}
		memset(p, i, 64);
		v_free(p);
	}
	os_stats(&b);
	size_t attempts = b.mmap_calls - a.mmap_calls, hits = b.cache_hits - a.cache_hits;
	if (k < 2 && attempts > MAX_ATTEMPTS) {
		printf("FAIL front/enomem/%s: with OSMEM_FAIL=%s, %d mallocs of 64 bytes and their frees made %zu mmap "
		       "attempts (want at most %d: after a failed mapping the thread leaves it to the core for a while)\n",
		       cases[k].name, cases[k].fail, N, attempts, MAX_ATTEMPTS);
		return 1;
	}
	if (k == 2 && hits < N / 2) {
		printf("FAIL front/enomem/%s: with only the first mmap failing, %zu of %d mallocs of 64 bytes were cache "
		       "hits (want at least half: the thread must get its heap at a later try)\n", cases[k].name, hits, N);
		return 1;
	}
	printf("PASS front/enomem/%s (%zu mmap attempts, %zu cache hits)\n", cases[k].name, attempts, hits);
	return 0;
}

int main(int argc, char **argv)
{
	(void)argc;
	const char *which = getenv("ENOMEM_BACKOFF_CASE");
	if (which)
		return child(atoi(which));
	int failed = 0;
	for (int k = 0; k < 3; k++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			char num[8];
			snprintf(num, sizeof num, "%d", k);
			setenv("ENOMEM_BACKOFF_CASE", num, 1);
			setenv("OSMEM_FAIL", cases[k].fail, 1);
			execv("/proc/self/exe", argv);
			printf("FAIL front/enomem/%s: cannot run itself again (test setup)\n", cases[k].name);
			_exit(1);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			if (WIFSIGNALED(st))
				printf("FAIL front/enomem/%s: the child was killed by signal %d\n", cases[k].name, WTERMSIG(st));
			failed++;
		}
	}
	return failed != 0;
}
