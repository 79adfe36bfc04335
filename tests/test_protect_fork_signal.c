/* test_protect_fork_signal: fork from a signal handler, what the child may rely on (README, "fork").
 *
 * The promise: when the thread that a signal handler interrupted did not hold the heap lock (it was outside
 * the allocator, or inside it but only waiting for the lock), fork waits for the lock like any fork, and the
 * child's heap is whole: os_heap_check() passes and the child can allocate. When the interrupted thread held the
 * lock, the child may only call async-signal-safe functions (as with glibc), so such children only _exit.
 * The hazard: "in the allocator" used to be a flag set before the lock was taken, so a thread that was merely
 * waiting skipped the lock and the child copied a heap another thread was changing.
 *
 * Two threads allocate and free without pause (so the main thread often waits for the lock); the main thread
 * does the same; a fourth thread sends the main thread SIGUSR1 ROUNDS times, one at a time. The handler asks
 * osmem whether this thread holds the lock (osm_lock_held_by_self, a test hook of libosmem.a), forks and waits
 * for the child. Every child of a thread that did not hold the lock must pass os_heap_check() and allocate.
 * Nothing depends on timing: how often each case happens is printed, not asserted. alarm() turns a hang into a
 * FAIL line: no fork handled for ALARM seconds (a watchdog of progress: until session 52 the whole run had 240 s,
 * which ASan's 3000 forks overran on a host with a load of 17, a FAIL for slowness, not a deadlock). Uses the
 * os_* API only (also built under ThreadSanitizer).
 * Prints `PASS protect_fork_signal/...` or `FAIL protect_fork_signal/...: why`. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "osmem.h"

#ifndef ROUNDS
#ifdef __SANITIZE_THREAD__
/* each fork copies ThreadSanitizer's shadow memory: 3000 rounds took 61 s of CI's 15 minutes (plain and ASan
 * builds: 11-17 s). 1000 still bring both cases (a run: 892 children of a thread without the lock checked, 108 of
 * a holder); the other builds keep 3000. */
#define ROUNDS 1000
#else
#define ROUNDS 3000
#endif
#endif
#define ALARM 60 /* seconds without one fork handled: a round takes milliseconds, even on a loaded machine */

static atomic_int stop, handled;
static atomic_int not_owned, owned, child_bad, child_lost;
static int last_bad_status;

static void churn(unsigned *s, void **slot, unsigned nslot)
{
	*s = *s * 1103515245u + 12345u;
	unsigned i = (*s >> 8) % nslot;
	os_free(slot[i]);
	size_t n = (*s >> 20) % 16 == 0 ? 140000 : (*s >> 12) % 2000 + 1;
	slot[i] = os_malloc(n);
	if (slot[i])
		memset(slot[i], 0x33, 8);
}

static void *worker(void *arg)
{
	unsigned s = (unsigned)(size_t)arg + 7;
	void *slot[64] = { 0 };
	while (!atomic_load(&stop))
		churn(&s, slot, 64);
	for (int i = 0; i < 64; i++)
		os_free(slot[i]);
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
	int saved = errno;
	bool held = osm_lock_held_by_self();
	pid_t pid = fork();
	if (pid == 0) {
		if (held)
			_exit(0); /* only async-signal-safe functions: nothing to check */
		void *p = os_malloc(3000), *q = os_malloc(200000);
		_exit(os_heap_check() == 0 && p && q ? 0 : 1);
	}
	if (pid > 0) {
		int st;
		atomic_fetch_add(held ? &owned : &not_owned, 1);
		if (waitpid(pid, &st, 0) != pid)
			atomic_fetch_add(&child_lost, 1);
		else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			last_bad_status = st;
			atomic_fetch_add(&child_bad, 1);
		}
	} else {
		atomic_fetch_add(&child_lost, 1);
	}
	atomic_fetch_add(&handled, 1);
	errno = saved;
}

static pthread_t main_thread;

static void *signaller(void *arg)
{
	(void)arg;
	for (int r = 0; r < ROUNDS; r++) {
		pthread_kill(main_thread, SIGUSR1);
		while (atomic_load(&handled) <= r)
			sched_yield();
	}
	atomic_store(&stop, 1);
	return NULL;
}

static void on_alarm(int sig)
{
	(void)sig;
	static int seen = -1; /* the rounds handled at the last alarm */
	int now = atomic_load(&handled);
	if (now != seen) { /* progress: look again later */
		seen = now;
		alarm(ALARM);
		return;
	}
	char msg[200];
	int n = snprintf(msg, sizeof msg, "FAIL protect_fork_signal/interrupted_thread: no fork handled for %d s after "
			 "round %d of %d (deadlock)\n", ALARM, now, ROUNDS);
	write(1, msg, (size_t)n);
	_exit(1);
}

int main(void)
{
	signal(SIGALRM, on_alarm);
	alarm(ALARM);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	main_thread = pthread_self();
	pthread_t w[2], sg;
	for (size_t i = 0; i < 2; i++)
		pthread_create(&w[i], NULL, worker, (void *)i);
	pthread_create(&sg, NULL, signaller, NULL);
	unsigned s = 99;
	void *slot[64] = { 0 };
	while (!atomic_load(&stop))
		churn(&s, slot, 64);
	pthread_join(sg, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(w[i], NULL);
	for (int i = 0; i < 64; i++)
		os_free(slot[i]);
	alarm(0);
	int fails = 0;
	if (child_bad || child_lost) {
		printf("FAIL protect_fork_signal/child_heap_whole: %d of %d children of a thread that did not hold the "
		       "lock failed os_heap_check() or could not allocate (last wait status 0x%x), %d lost\n",
		       (int)child_bad, (int)not_owned, last_bad_status, (int)child_lost);
		fails++;
	} else {
		printf("PASS protect_fork_signal/child_heap_whole (%d forks: %d children checked, %d of a thread "
		       "holding the lock only exited)\n", ROUNDS, (int)not_owned, (int)owned);
	}
	if (os_heap_check() != 0) {
		printf("FAIL protect_fork_signal/parent_heap_whole: the parent's heap failed os_heap_check()\n");
		fails++;
	} else {
		printf("PASS protect_fork_signal/parent_heap_whole\n");
	}
	return fails != 0;
}
