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
 *
 * heap_made_in_last_destructor_round_given_back: glibc runs the key destructors in at most 4 rounds. A thread whose
 * first small request comes in the last round, from a destructor of a key made after osmem's, registers its heap
 * after glibc looked at osmem's key for the last time: no exit runs for it. Until session 50 such a heap stayed
 * live for good (20 such threads: os_stats said 21 thread heaps with one thread alive), its pages and its cache
 * lost. malloc_trim now gives back the heaps of threads that are gone; the slots they left in use stay whole.
 * Prints `PASS front/keys/<case>` or `FAIL front/keys/<case>: why`. */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
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

enum { LATE_THREADS = 20 };
static pthread_key_t late_key;
static __thread int late_round;
static void *late_objs[LATE_THREADS];
static _Atomic int late_next;

static void late_dtor(void *v)
{
	if (++late_round < 4) { /* set again: glibc runs another round, up to its 4 */
		pthread_setspecific(late_key, v);
		return;
	}
	int i = late_next++;
	void *p = v_malloc(100); /* this thread's first request, in the last round: its heap is made now */
	if (p && i < LATE_THREADS) {
		memset(p, 0x40 + i, 100);
		late_objs[i] = p; /* still in use after the thread ends: a slot of its heap's page */
	}
}

static void *late_thread(void *arg)
{
	pthread_setspecific(late_key, (void *)1); /* nothing else: no request until the destructors */
	return arg;
}

static int last_round(void)
{
	const char *name = "front/keys/heap_made_in_last_destructor_round_given_back";
	void *p = v_malloc(16); /* osmem's key first, so that this test's key comes after it */
	v_free(p);
	if (pthread_key_create(&late_key, late_dtor) != 0) {
		printf("FAIL %s: pthread_key_create failed (test setup)\n", name);
		return 1;
	}
	struct os_stats st;
	os_stats(&st);
	size_t before = st.front_threads;
	for (int i = 0; i < LATE_THREADS; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, late_thread, NULL) != 0 || pthread_join(t, NULL) != 0) {
			printf("FAIL %s: pthread_create failed (test setup)\n", name);
			return 1;
		}
	}
	os_stats(&st);
	size_t after_joins = st.front_threads;
	malloc_trim(0);
	os_stats(&st);
	for (int i = 0; i < LATE_THREADS; i++) {
		if (!late_objs[i]) {
			printf("FAIL %s: thread %d's malloc(100) in its last destructor round returned NULL or never ran\n",
			       name, i);
			return 1;
		}
		for (int b = 0; b < 100; b++)
			if (((unsigned char *)late_objs[i])[b] != 0x40 + i) {
				printf("FAIL %s: thread %d's object %p changed at byte %d after its heap was given back\n",
				       name, i, late_objs[i], b);
				return 1;
			}
		v_free(late_objs[i]);
	}
	if (st.front_threads != before) {
		printf("FAIL %s: %d threads made their heaps in their last destructor round and ended: os_stats counts "
		       "%zu thread heaps after malloc_trim (%zu after the joins), %zu before them\n", name, LATE_THREADS,
		       st.front_threads, after_joins, before);
		return 1;
	}
	printf("PASS %s\n", name);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "keys") == 0)
		return keys_child();
	int failed = last_round();
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
	return WEXITSTATUS(status) || failed;
}
