/* malloc_lock_mode_switch: the locks' two modes meet (internal.h, osm_os_lock_take).
 *
 * Hazard: while the process has one thread, the heap and front locks are taken and given with plain stores (no
 * atomic read-modify-write, as glibc's SINGLE_THREAD_P); once pthread_create has run, with a compare-and-swap.
 * A program that allocates alone, then starts threads, then forks (the child is single-threaded again) crosses
 * both ways. If a lock were taken in one mode and given in the other, or the plain path were used while a second
 * thread runs, two threads would be inside the core at once: blocks overlap, contents are lost, the heap's
 * invariants break. Each case drives the core's locked paths (blocks of 40 KiB to 400 KiB, realloc growth, the
 * medium caches), checks every byte it wrote, and ends with os_heap_check and the bytes in use back where they
 * started.
 * Prints `PASS lock/mode_switch/...` or `FAIL ...: why`. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static void *(*volatile v_realloc)(void *, size_t) = realloc;

static int failures;

static void result(const char *name, const char *why)
{
	if (why) {
		printf("FAIL lock/mode_switch/%s: %s\n", name, why);
		failures++;
	} else {
		printf("PASS lock/mode_switch/%s\n", name);
	}
	fflush(stdout);
}

static size_t in_use(void)
{
	struct os_stats st;
	os_stats(&st);
	return st.bytes_in_use;
}

/* Churn through the core: 16 slots of 2 KiB to 400 KiB, half of them grown by realloc; every byte of an object
 * holds its tag, checked at growth and at free. Returns NULL or what went wrong. */
static const char *churn(uint64_t seed, int rounds)
{
	enum { SLOTS = 16 };
	unsigned char *p[SLOTS] = {0};
	size_t n[SLOTS] = {0};
	uint64_t x = seed;
	const char *why = NULL;
	for (int r = 0; r < rounds && !why; r++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		int i = (int)(x >> 60);
		unsigned char tag = (unsigned char)(i * 16 + 1 + (seed & 7));
		if (!p[i]) {
			n[i] = 2048 + (size_t)(x >> 20) % (400 << 10);
			p[i] = v_malloc(n[i]);
			if (!p[i])
				return "malloc returned NULL";
			memset(p[i], tag, n[i]);
		} else if ((x >> 8) & 1) {
			size_t m = n[i] + n[i] / 2;
			unsigned char *q = v_realloc(p[i], m);
			if (!q)
				return "realloc returned NULL";
			for (size_t k = 0; k < n[i]; k += 509)
				if (q[k] != tag)
					why = "realloc lost an object's contents (two threads in the core at once?)";
			memset(q, tag, m);
			p[i] = q;
			n[i] = m;
			if (m > (1 << 20)) {
				v_free(p[i]);
				p[i] = NULL;
			}
		} else {
			for (size_t k = 0; k < n[i]; k += 509)
				if (p[i][k] != tag)
					why = "an object's contents changed (two threads in the core at once?)";
			v_free(p[i]);
			p[i] = NULL;
		}
	}
	for (int i = 0; i < SLOTS; i++)
		v_free(p[i]);
	return why;
}

static void *worker(void *arg)
{
	return (void *)churn((uint64_t)(uintptr_t)arg, 20000);
}

/* Threads and the main thread churn at once; NULL or what went wrong. */
static const char *churn_threads(int nthreads)
{
	pthread_t t[4];
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 2)))
			return "pthread_create failed";
	const char *why = churn(1, 20000);
	for (int i = 0; i < nthreads; i++) {
		void *r;
		pthread_join(t[i], &r);
		if (r && !why)
			why = r;
	}
	return why;
}

int main(void)
{
	size_t base = in_use();

	/* 1: one thread, so the plain path */
	if (!__libc_single_threaded) {
		result("single_thread_first", "the C library says the process has a second thread already: this case "
					      "would not test the plain path");
	} else {
		const char *why = churn(7, 20000);
		if (!why && os_heap_check() != 0)
			why = "os_heap_check failed after the single-threaded churn";
		if (!why && in_use() != base)
			why = "bytes in use did not come back to where they started";
		result("single_thread_first", why);
	}

	/* 2: threads now; the locks' words were last given with plain stores */
	{
		const char *why = churn_threads(3);
		if (!why && __libc_single_threaded)
			why = "the C library still says single-threaded after pthread_create";
		if (!why && os_heap_check() != 0)
			why = "os_heap_check failed after the threads' churn";
		/* glibc keeps the exited threads' stacks and their TLS vectors (malloc'd) for its next threads: the
		 * figure to come back to is the one after the first round */
		size_t with_threads = in_use();
		if (!why)
			why = churn_threads(3);
		if (!why && os_heap_check() != 0)
			why = "os_heap_check failed after the threads' second churn";
		if (!why && in_use() != with_threads)
			why = "bytes in use did not come back to where they were after the first threads' round";
		result("threads_after_single", why);
	}

	/* 3: fork while a thread churns; the child is single-threaded again, then starts threads of its own */
	{
		pthread_t t;
		const char *why = NULL;
		bool started = pthread_create(&t, NULL, worker, (void *)(uintptr_t)9) == 0;
		if (!started)
			why = "pthread_create failed";
		pid_t pid = why ? -1 : fork();
		if (pid == 0) {
			int rc = 0;
			if (churn(11, 5000))
				rc = 2;
			else if (churn_threads(2))
				rc = 3;
			else if (os_heap_check() != 0)
				rc = 4;
			_exit(rc);
		}
		int st = 0;
		if (pid > 0 && waitpid(pid, &st, 0) != pid)
			why = "waitpid failed";
		else if (pid > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			why = WIFEXITED(st) && WEXITSTATUS(st) == 2   ? "the child's single-threaded churn failed"
			      : WIFEXITED(st) && WEXITSTATUS(st) == 3 ? "the child's threads' churn failed"
			      : WIFEXITED(st) && WEXITSTATUS(st) == 4 ? "os_heap_check failed in the child"
								      : "the child died (signal or abort)";
		else if (pid < 0 && !why)
			why = "fork failed";
		void *r = NULL;
		if (started)
			pthread_join(t, &r);
		if (r && !why)
			why = r;
		if (!why && os_heap_check() != 0)
			why = "os_heap_check failed in the parent after the fork";
		result("fork_child_single_again", why);
	}
	return failures != 0;
}
