/* test_protect_cancel_trace: a thread cancelled while osmem records a trace does not take the heap with it.
 *
 * write(2) is a cancellation point. The recorder used to write its buffer while holding the heap lock, so a
 * deferred pthread_cancel acted on at that write ended the thread with the lock held, and the next allocation
 * anywhere waited forever. Now the file is written after the lock is released, with cancellation disabled
 * around osmem's own writes (as glibc's malloc_stats does).
 *
 * The program re-executes itself with OSMEM_TRACE set (to a file in /tmp, removed at the end). ROUNDS times: a
 * thread allocates and frees in a loop (the trace fills a buffer every thousand calls or so) and calls
 * pthread_testcancel() every TESTCANCEL_EVERY calls; the main thread waits until it has made some calls (a count,
 * not a time), cancels and joins it, then allocates. alarm() turns a hang into a FAIL line: a round that has not
 * ended ALARM seconds after it began (each round sets it anew: until session 52 the ten rounds shared one minute,
 * and under ThreadSanitizer on a host with a load of 17 round 9 came after it, a FAIL for slowness, not a hang).
 * Uses the os_* API only (also built under ThreadSanitizer).
 * Prints `PASS protect_cancel/...` or `FAIL protect_cancel/...: why`. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "osmem.h"

#define ROUNDS 10
#define TESTCANCEL_EVERY 50000
#define ALARM 60

static atomic_long calls;

static void *tracer(void *arg)
{
	(void)arg;
	unsigned s = 5;
	void *slot[16] = { 0 };
	for (long n = 1;; n++) {
		s = s * 1103515245u + 12345u;
		unsigned i = (s >> 8) % 16;
		os_free(slot[i]);
		slot[i] = os_malloc((s >> 12) % 3000 + 1);
		atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
		if (n % TESTCANCEL_EVERY == 0)
			pthread_testcancel();
	}
	return NULL;
}

static int round_no;

static void on_alarm(int sig)
{
	(void)sig;
	char msg[240];
	int n = snprintf(msg, sizeof msg,
			 "FAIL protect_cancel/heap_usable_after_cancel: round %d did not end within %d s: an allocation "
			 "after the tracing thread was cancelled hung (the thread died holding the heap lock?)\n", round_no,
			 ALARM);
	write(1, msg, (size_t)n);
	_exit(1);
}

int main(int argc, char **argv)
{
	(void)argc;
	if (!getenv("OSMEM_TRACE")) {
		char path[64];
		snprintf(path, sizeof path, "/tmp/osmem-protect-cancel-%d.trace", (int)getpid());
		setenv("OSMEM_TRACE", path, 1);
		execv("/proc/self/exe", argv);
		printf("FAIL protect_cancel/setup: cannot re-execute with OSMEM_TRACE set\n");
		return 1;
	}
	signal(SIGALRM, on_alarm);
	for (round_no = 0; round_no < ROUNDS; round_no++) {
		alarm(ALARM); /* per round: a hang, not a slow host */
		pthread_t t;
		long start = atomic_load(&calls);
		pthread_create(&t, NULL, tracer, NULL);
		while (atomic_load(&calls) < start + 20000)
			sched_yield();
		pthread_cancel(t);
		void *res;
		pthread_join(t, &res);
		void *p = os_malloc(100), *q = os_malloc(300000);
		if (res != PTHREAD_CANCELED || !p || !q) {
			printf("FAIL protect_cancel/heap_usable_after_cancel: round %d: %s\n", round_no,
			       res != PTHREAD_CANCELED ? "the thread was not cancelled" : "allocation failed");
			return 1;
		}
		os_free(p);
		os_free(q);
	}
	alarm(0);
	unlink(getenv("OSMEM_TRACE"));
	int ok = os_heap_check() == 0;
	printf(ok ? "PASS protect_cancel/heap_usable_after_cancel (%d threads cancelled while tracing)\n"
		  : "FAIL protect_cancel/heap_usable_after_cancel: the heap failed os_heap_check (%d rounds)\n",
	       ROUNDS);
	return !ok;
}
