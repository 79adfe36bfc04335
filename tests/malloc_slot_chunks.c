/* malloc_slot_chunks: the core's side storage of free blocks (src/heap.c, "Slots") when it cannot grow.
 *
 * Each free block of the core's heap has a slot (its key in the best-fit index). The drop-in holds 16 Ki slots in
 * .lbss and maps 384 KiB more for each further 16 Ki (session 55: the writable segments a garbage collector scans
 * were 30 MB). When that mmap is refused, a free block goes without a slot, and the core falls back to the seed's
 * walks until it has none: correct, slower. Hazard: nothing remembered the refusal. Every later ask tried the mmap
 * again, and each coalescing pass asks once for every block without a slot: 20,000 frees and mallocs of 64 bytes
 * under an RLIMIT_DATA made 6.5 million failing mmap calls (4.6 s against 0.01; the review of session 56). Now a
 * refusal holds the tries off for 10 ms.
 *
 * The case runs in a fresh process (this program again) for the default profile without the front
 * (OSMEM_FRONT=0: the core serves 64-byte blocks) and for the classic profile, with every mmap refused from the
 * first (OSMEM_FAIL=mmap:1+; the heap grows by brk). It frees every other one of 2 x 18,000 blocks (18,000 free
 * blocks that cannot merge, 1,616 more than the slots in .lbss), then makes 300 more requests: every one must
 * be served, every block keep its bytes, os_heap_check pass, and the mmap calls (os_stats counts the refused
 * ones) stay under 20 plus two for each 10 ms the phase took (a try may come every 10 ms, and a slow or busy
 * machine takes longer; before the fix: 441,867 in the classic profile, 1,751,939 in the default one).
 * Prints `PASS slots/<config>/chunk_refusal_not_retried_at_each_ask` or `FAIL ...: why`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

#define PAIRS 18000
#define MORE  300
#define MMAP_FIXED_PART 20 /* and one try per 10 ms the phase took, twice over: a slow machine tries more often */

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static unsigned char *blk[2 * PAIRS + MORE];

static int child(const char *config)
{
	struct os_stats s0, s1;
	for (size_t i = 0; i < 2 * PAIRS; i++) {
		if (!(blk[i] = v_malloc(64))) {
			printf("FAIL slots/%s/chunk_refusal_not_retried_at_each_ask: malloc(64) number %zu returned NULL "
			       "(errno %d) before any was freed\n", config, i, errno);
			return 1;
		}
		memset(blk[i], (int)(i & 0xff), 64);
	}
	os_stats(&s0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < 2 * PAIRS; i += 2) {
		v_free(blk[i]);
		blk[i] = NULL;
	}
	for (size_t i = 0; i < MORE; i++) {
		size_t at = 2 * PAIRS + i;
		if (!(blk[at] = v_malloc(48))) { /* a freed block holds it: no growth needed */
			printf("FAIL slots/%s/chunk_refusal_not_retried_at_each_ask: malloc(48) number %zu after the frees "
			       "returned NULL (errno %d), with 18,000 free blocks to take it from\n", config, i, errno);
			return 1;
		}
		memset(blk[at], 0x5a, 48);
	}
	os_stats(&s1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	size_t ms = (size_t)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	size_t allowed = MMAP_FIXED_PART + 2 * (ms / 10 + 1);
	for (size_t i = 1; i < 2 * PAIRS; i += 2)
		for (size_t k = 0; k < 64; k++)
			if (blk[i][k] != (unsigned char)(i & 0xff)) {
				printf("FAIL slots/%s/chunk_refusal_not_retried_at_each_ask: block %zu's byte %zu changed\n",
				       config, i, k);
				return 1;
			}
	if (os_heap_check() != 0) {
		printf("FAIL slots/%s/chunk_refusal_not_retried_at_each_ask: os_heap_check failed\n", config);
		return 1;
	}
	size_t maps = s1.mmap_calls - s0.mmap_calls;
	if (maps > allowed) {
		printf("FAIL slots/%s/chunk_refusal_not_retried_at_each_ask: %zu mmap calls (all refused) for %d frees "
		       "and %d mallocs of the core's heap in %zu ms (want at most %zu: a refused slot chunk is tried "
		       "again after 10 ms, not at every ask)\n", config, maps, PAIRS, MORE, ms, allowed);
		return 1;
	}
	printf("PASS slots/%s/chunk_refusal_not_retried_at_each_ask (%zu mmap calls tried in %zu ms)\n", config, maps,
	       ms);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "--child") == 0)
		return child(argv[2]);
	static const struct {
		const char *name, *env1, *env2;
	} configs[] = {
		{ "default_no_front", "OSMEM_FRONT=0", "OSMEM_PROFILE=default" },
		{ "classic", "OSMEM_FRONT=0", "OSMEM_PROFILE=classic" },
	};
	int failed = 0;
	for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			printf("FAIL slots/%s/chunk_refusal_not_retried_at_each_ask: fork: %s\n", configs[c].name,
			       strerror(errno));
			failed++;
			continue;
		}
		if (pid == 0) {
			putenv((char *)configs[c].env1); /* the rest of the environment stays (LD_LIBRARY_PATH) */
			putenv((char *)configs[c].env2);
			putenv("OSMEM_FAIL=mmap:1+");
			char *args[] = { argv[0], "--child", (char *)configs[c].name, NULL };
			execv("/proc/self/exe", args);
			printf("FAIL slots/%s/chunk_refusal_not_retried_at_each_ask: exec: %s\n", configs[c].name,
			       strerror(errno));
			_exit(1);
		}
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			if (WIFSIGNALED(st))
				printf("FAIL slots/%s/chunk_refusal_not_retried_at_each_ask: the child was killed by signal "
				       "%d\n", configs[c].name, WTERMSIG(st));
			failed++;
		}
	}
	return failed ? 1 : 0;
}
