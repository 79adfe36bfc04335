/* malloc_protect_fork_waiter: fork from a signal handler that interrupted a thread waiting for the front lock.
 *
 * The promise (README, "fork from a signal handler"): when the interrupted thread did not hold osmem's lock (it
 * was outside osmem, or inside but only waiting for the lock), the fork waits for the lock like any other, and the
 * child's heap is whole. The core's lock keeps it by its owner's thread id. Until session 50 the front's lock knew
 * only "this thread is in the lock", set before the wait: a thread merely waiting counted as holding it, so such a
 * fork skipped the front lock and copied a front that another thread was changing.
 *
 * Thread H takes the front lock (osm_front_lock: this program links libosmem-malloc.a, whose hidden symbols a
 * static link reaches) and keeps it 600 ms. Thread W then asks for it and waits. The main thread sends W SIGUSR1;
 * W's handler forks. The fork must wait until H lets the lock go: H's flag `released`, set just before its unlock,
 * must be set when fork returns in the parent. The child checks its heap and allocates, then exits 0.
 * Prints `PASS protect_fork_waiter/fork_waits_for_front_lock` or `FAIL ...: why`. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OSMEM_DROPIN /* the front's declarations */
#include "internal.h"
#include "osmem.h"

static _Atomic int released, h_has_lock, w_forked, child_status = -1;
static _Atomic int released_at_fork = -1;

static void on_usr1(int sig)
{
	(void)sig;
	pid_t pid = fork();
	if (pid == 0) {
		void *p = malloc(100); /* the child allocates: its heap and front must be whole */
		_exit(p && os_heap_check() == 0 ? 0 : 1);
	}
	released_at_fork = released;
	int st = 0;
	if (pid > 0)
		waitpid(pid, &st, 0);
	child_status = pid > 0 ? st : -2;
	w_forked = 1;
}

static void *holder(void *arg)
{
	(void)arg;
	osm_front_lock();
	h_has_lock = 1;
	usleep(600 * 1000);
	released = 1;
	osm_front_unlock();
	return NULL;
}

static void *waiter(void *arg)
{
	(void)arg;
	osm_front_lock(); /* waits for the holder; SIGUSR1 comes while it waits */
	osm_front_unlock();
	return NULL;
}

static void fail(const char *why)
{
	printf("FAIL protect_fork_waiter/fork_waits_for_front_lock: %s\n", why);
	exit(1);
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	alarm(60);
	free(malloc(100)); /* the front is on (its lock exists) */
	pthread_t h, w;
	if (pthread_create(&h, NULL, holder, NULL) != 0)
		fail("pthread_create failed (test setup)");
	while (!h_has_lock)
		usleep(1000);
	if (pthread_create(&w, NULL, waiter, NULL) != 0)
		fail("pthread_create failed (test setup)");
	usleep(150 * 1000); /* W reaches the lock and waits (if it does not yet, the fork waits anyway: no false FAIL) */
	pthread_kill(w, SIGUSR1);
	pthread_join(h, NULL);
	pthread_join(w, NULL);
	if (!w_forked)
		fail("the handler did not run (test setup)");
	if (released_at_fork != 1)
		fail("fork returned while another thread still held the front lock: a thread only waiting for it counted "
		     "as its holder, and the child copied a front that may have been half-changed");
	if (child_status != 0) {
		char why[120];
		snprintf(why, sizeof why, "the child ended with status 0x%x (want 0: heap check passed, malloc served)",
			 child_status);
		fail(why);
	}
	printf("PASS protect_fork_waiter/fork_waits_for_front_lock\n");
	return 0;
}
