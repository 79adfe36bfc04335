/* malloc_front_protect_fork_front: fork while other threads allocate and free through their caches.
 *
 * Hazard: the front lock (pages, segments, abandoned pages) may be held by another thread at the moment of the
 * fork; the child has only the forking thread, so it must get a usable lock (pthread_atfork handlers: front
 * lock before the heap lock) and a usable cache. The other threads' caches are lost to the child (accepted),
 * but the child must still free objects that those threads allocated before the fork (remote frees into pages
 * whose owner does not exist in the child), allocate every size class, and need new pages (front lock).
 * 4 threads churn (also freeing each other's objects) while main forks 200 times; each child checks and exits.
 * The child's os_stats count one thread with a cache, its own (child_counts_its_own_threads).
 * Prints `PASS front/protect_fork_front/...` or `FAIL ...: why`. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"

#define THREADS 4
#define SLOTS 512
#define FORKS 100

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

static int stop;
/* objects the threads hand to each other (and that the children free) */
static void *shared[THREADS][SLOTS];
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

static void *churn(void *arg)
{
	int id = (int)(uintptr_t)arg;
	unsigned r = (unsigned)id * 7919u + 1;
	void *mine[64] = { 0 };
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		r = r * 1103515245u + 12345u;
		int k = (int)(r >> 10) % 64;
		v_free(mine[k]);
		mine[k] = v_malloc(1 + (r >> 4) % 2048);
		if ((r & 15) == 0) { /* swap with another thread's: its object is freed here later */
			int o = (int)(r >> 20) % THREADS, s = (int)(r >> 8) % SLOTS;
			pthread_mutex_lock(&shared_lock);
			void *old = shared[o][s];
			shared[o][s] = mine[k];
			pthread_mutex_unlock(&shared_lock);
			mine[k] = old;
		}
	}
	for (int k = 0; k < 64; k++)
		v_free(mine[k]);
	return NULL;
}

/* The child: free what the parent's threads allocated, then allocate every class and enough to need pages. */
static int child(void)
{
	for (int o = 0; o < THREADS; o++)
		for (int s = 0; s < SLOTS; s++)
			v_free(shared[o][s]); /* no lock: the child has one thread; pthread's mutex may be held */
	static void *keep[1024];
	for (int i = 0; i < 1024; i++) {
		size_t n = 1 + (size_t)(i * 37) % 2048;
		keep[i] = v_malloc(n);
		if (!keep[i])
			return 2;
		memset(keep[i], i & 0xff, n);
	}
	for (int i = 0; i < 1024; i++) {
		size_t n = 1 + (size_t)(i * 37) % 2048;
		unsigned char *p = keep[i];
		if (p[0] != (i & 0xff) || p[n - 1] != (i & 0xff))
			return 3;
		v_free(p);
	}
	struct os_stats st;
	os_stats(&st);
	if (!st.front_bytes)
		return 4;
	/* only this thread lives in the child: the parent's other heaps are not the child's threads (until session 41
	 * front_threads said 5, and a new thread's medium budget was cut as if 5 shared it) */
	return st.front_threads == 1 ? 0 : 10 + (int)(st.front_threads < 100 ? st.front_threads : 99);
}

int main(void)
{
	pthread_t t[THREADS];
	void *warm = v_malloc(32);
	struct os_stats st;
	os_stats(&st);
	v_free(warm);
	if (!st.front_bytes) {
		printf("FAIL front/protect_fork_front/front_on: the front layer is off\n");
		return 1;
	}
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)i);
	int failed = 0, first_status = 0, miscounted = 0, threads_seen = 0;
	for (int f = 0; f < FORKS; f++) {
		pthread_mutex_lock(&shared_lock); /* the child's copy of `shared` is consistent */
		pid_t pid = fork();
		if (pid == 0) {
			alarm(20);
			_exit(child());
		}
		pthread_mutex_unlock(&shared_lock);
		int status = 0;
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) >= 10) { /* all else held: the thread count is wrong */
			miscounted++;
			threads_seen = WEXITSTATUS(status) - 10;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			if (!failed++)
				first_status = status;
		}
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int o = 0; o < THREADS; o++)
		for (int s = 0; s < SLOTS; s++)
			v_free(shared[o][s]);
	if (failed)
		printf("FAIL front/protect_fork_front/children: %d of %d children failed; the first: %s %d (exit 2: malloc "
		       "NULL, 3: pattern, 4: front off; SIGALRM: deadlock)\n", failed, FORKS,
		       WIFSIGNALED(first_status) ? "signal" : "exit",
		       WIFSIGNALED(first_status) ? WTERMSIG(first_status) : WEXITSTATUS(first_status));
	else
		printf("PASS front/protect_fork_front/children (%d forks while %d threads churn)\n", FORKS, THREADS);
	if (miscounted)
		printf("FAIL front/protect_fork_front/child_counts_its_own_threads: in %d of %d children os_stats' "
		       "front_threads was not 1 (the last: %d): the forking thread is the child's only thread\n",
		       miscounted, FORKS - failed, threads_seen);
	else
		printf("PASS front/protect_fork_front/child_counts_its_own_threads\n");
	return failed != 0 || miscounted != 0;
}
