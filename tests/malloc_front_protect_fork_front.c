/* malloc_front_protect_fork_front: fork while other threads allocate and free through their caches.
 *
 * Hazard: the front lock (pages, segments, abandoned pages) may be held by another thread at the moment of the
 * fork; the child has only the forking thread, so it must get a usable lock (pthread_atfork handlers: front
 * lock before the heap lock) and a usable cache. The other threads' caches are lost to the child (accepted),
 * but the child must still free objects that those threads allocated before the fork (remote frees into pages
 * whose owner does not exist in the child), allocate every size class, and need new pages (front lock).
 * 4 threads churn (also freeing each other's objects) while main forks 200 times; each child checks and exits.
 * The child's os_stats count one thread with a cache, its own (child_counts_its_own_threads), and the same bytes in
 * use as the parent did at the fork (child_in_use_as_at_the_fork: the other threads' thread caches, which the child
 * no longer lists, hold slots that are cached, not in use; before the review of session 41 the child counted
 * them in use).
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

/* child_in_use_as_at_the_fork: threads that allocated 1040-byte objects and freed 9 in 10 (their thread caches
 * hold some), paused while the main thread forks */
#define HOLDERS 4
#define HELD 5000
static int held_ready, held_go;
static void *holder(void *arg)
{
	void **mine = arg;
	for (int i = 0; i < HELD; i++)
		mine[i] = v_malloc(1040);
	for (int i = 0; i < HELD; i++)
		if (i % 10) {
			v_free(mine[i]);
			mine[i] = NULL;
		}
	__atomic_add_fetch(&held_ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&held_go, __ATOMIC_ACQUIRE))
		usleep(1000);
	for (int i = 0; i < HELD; i++)
		v_free(mine[i]);
	return NULL;
}

static int in_use_at_fork(void)
{
	static void *held[HOLDERS][HELD];
	pthread_t t[HOLDERS];
	for (int i = 0; i < HOLDERS; i++)
		if (pthread_create(&t[i], NULL, holder, held[i]) != 0) {
			printf("FAIL front/protect_fork_front/child_in_use_as_at_the_fork: pthread_create (test setup)\n");
			return 1;
		}
	while (__atomic_load_n(&held_ready, __ATOMIC_ACQUIRE) < HOLDERS)
		usleep(1000);
	struct os_stats parent;
	os_stats(&parent);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct os_stats child;
		os_stats(&child);
		if (child.front_in_use != parent.front_in_use) {
			printf("FAIL front/protect_fork_front/child_in_use_as_at_the_fork: front_in_use %zu in the child, %zu "
			       "in the parent at the fork (front_cached_bytes %zu and %zu): the other threads' cached slots "
			       "are cached, not in use\n", child.front_in_use, parent.front_in_use, child.front_cached_bytes,
			       parent.front_cached_bytes);
			fflush(stdout); /* _exit does not */
			_exit(1);
		}
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	__atomic_store_n(&held_go, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < HOLDERS; i++)
		pthread_join(t[i], NULL);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		printf("PASS front/protect_fork_front/child_in_use_as_at_the_fork\n");
	else if (!WIFEXITED(st))
		printf("FAIL front/protect_fork_front/child_in_use_as_at_the_fork: the child was killed by signal %d\n",
		       WTERMSIG(st));
	else if (WEXITSTATUS(st) != 1) /* 1: the child said why */
		printf("FAIL front/protect_fork_front/child_in_use_as_at_the_fork: the child exited %d\n", WEXITSTATUS(st));
	return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
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
	int held_failed = in_use_at_fork();
	return failed != 0 || miscounted != 0 || held_failed;
}
