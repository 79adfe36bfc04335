/* malloc_front_thread_keys: the front's thread heaps and the program's own pthread keys.
 *
 * Hazard: a thread's heap is made at its first small or medium request, and registered with pthread_setspecific
 * so that its exit gives the heap back. glibc keeps the first 32 keys' values in the thread itself; past them it
 * allocates a second-level array (calloc of 512 bytes) at a thread's first pthread_setspecific. osmem makes its
 * key at the process's first such request, so a program that made 32 keys before that gets a key past 32, and
 * every new thread's heap registration then allocates. Until session 50 that calloc, made before the heap was
 * the thread's, made a heap of its own, whose registration allocated again, to the end of the stack (SIGSEGV).
 *
 * heap_made_with_key_past_32 runs in a child process (re-executed, so that nothing allocated before its 40 keys):
 * 40 keys, then malloc(16) on the main thread and on 4 threads; a key made after them shows that osmem's came
 * between (past 40); os_stats must count the threads' heaps while they live and give them back at their exit.
 * Prints `PASS front/keys/<case>` or `FAIL front/keys/<case>: why`. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

enum { KEYS = 40, THREADS = 4 };
static pthread_barrier_t all_have_heaps;

static void *thread_main(void *arg)
{
	(void)arg;
	void *p = v_malloc(16); /* this thread's first request: its heap, registered under osmem's key */
	if (!p)
		return (void *)1;
	memset(p, 1, 16);
	pthread_barrier_wait(&all_have_heaps);
	pthread_barrier_wait(&all_have_heaps);
	v_free(p);
	return NULL;
}

/* The child: no output before its keys and its first request (stdio's buffer would be a request). */
static int keys_child(void)
{
	pthread_key_t k;
	for (int i = 0; i < KEYS; i++)
		if (pthread_key_create(&k, NULL) != 0)
			return 10;
	void *p = v_malloc(16); /* the process's first small request: osmem makes its key, past the 40 */
	if (!p)
		return 11;
	memset(p, 1, 16);
	pthread_key_t after;
	if (pthread_key_create(&after, NULL) != 0)
		return 10;
	pthread_barrier_init(&all_have_heaps, NULL, THREADS + 1);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, thread_main, NULL) != 0)
			return 10;
	pthread_barrier_wait(&all_have_heaps);
	struct os_stats st;
	os_stats(&st);
	size_t live = st.front_threads;
	pthread_barrier_wait(&all_have_heaps);
	for (int i = 0; i < THREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		if (r)
			return 11;
	}
	os_stats(&st);
	v_free(p);
	if ((unsigned)after <= KEYS) { /* osmem's key did not come between: the test tests nothing */
		printf("FAIL front/keys/heap_made_with_key_past_32: the key made after osmem's first request is %u: "
		       "osmem's key was made earlier (test setup)\n", (unsigned)after);
		return 1;
	}
	if (live != THREADS + 1 || st.front_threads != 1) {
		printf("FAIL front/keys/heap_made_with_key_past_32: os_stats counted %zu thread heaps with %d threads "
		       "alive (want %d) and %zu after they exited (want 1)\n", live, THREADS + 1, THREADS + 1,
		       st.front_threads);
		return 1;
	}
	printf("PASS front/keys/heap_made_with_key_past_32\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "keys") == 0)
		return keys_child();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", argv[0], "keys", (char *)NULL);
		_exit(12);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		printf("FAIL front/keys/heap_made_with_key_past_32: fork or waitpid failed (test setup)\n");
		return 1;
	}
	if (WIFSIGNALED(status)) {
		printf("FAIL front/keys/heap_made_with_key_past_32: the child died of signal %d (a thread heap's "
		       "registration allocated, and that request made another heap: recursion)\n", WTERMSIG(status));
		return 1;
	}
	if (WEXITSTATUS(status) >= 10) {
		printf("FAIL front/keys/heap_made_with_key_past_32: the child exited %d (%s)\n", WEXITSTATUS(status),
		       WEXITSTATUS(status) == 11 ? "malloc(16) returned NULL" : "test setup: a key, thread or exec");
		return 1;
	}
	return WEXITSTATUS(status);
}
