/* malloc_protect_fork_spare: a fork handler's large allocation while the front holds spare free segments.
 *
 * Hazard: a request to the core first gives back the front's spare free segments (front.c,
 * osm_front_release_spare), which takes the front lock. A pthread_atfork prepare handler registered before
 * osmem's runs after osmem's prepare took the front and heap locks; its malloc of 1 MiB reached the core (which
 * lets a forking thread through) and then waited for the front lock its own thread held: the fork never returned.
 * The spare segments exist only once a program has built small objects in rounds (front.c, segs_hold), which
 * this test does first: five rounds of 40 MiB of 1 KiB objects, all freed. Then it forks three times, each
 * fork's prepare handler allocating 1 MiB and 100 KB; a watchdog (alarm) reports a hang.
 * Prints `PASS protect_fork/spare_segments` or `FAIL protect_fork/spare_segments: why`. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static volatile int handler_ok = 1;

static void prepare(void)
{
	void *a = v_malloc(1 << 20), *b = v_malloc(100000);
	if (!a || !b)
		handler_ok = 0;
	else
		memset(a, 1, 64);
	v_free(a);
	v_free(b);
}
static void nothing(void) {}

static void register_before(void)
{
	pthread_atfork(prepare, nothing, nothing);
}
/* ld.so runs the executable's preinit functions before the constructors of every shared library: this handler
 * is registered before osmem's, so its prepare runs after osmem's */
__attribute__((section(".preinit_array"), used)) static void (*preinit)(void) = register_before;

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "FAIL protect_fork/spare_segments: no progress in 20 s: the fork handler's 1 MiB "
				  "malloc waited for the front lock its own thread holds (deadlock)\n";
	write(1, msg, sizeof msg - 1);
	_exit(1);
}

int main(void)
{
	enum { OBJS = (40 << 20) / 1024 };
	static void *p[OBJS];
	for (int r = 0; r < 5; r++) {
		for (int i = 0; i < OBJS; i++) {
			p[i] = v_malloc(1024);
			if (!p[i]) {
				printf("FAIL protect_fork/spare_segments: malloc(1024) returned NULL (test setup)\n");
				return 1;
			}
			memset(p[i], r, 64);
		}
		for (int i = 0; i < OBJS; i++)
			v_free(p[i]);
	}
	struct os_stats st;
	os_stats(&st);
	size_t segs = st.front_bytes / ((size_t)4 << 20);
	if (segs < 8) {
		printf("FAIL protect_fork/spare_segments: after five rounds of 40 MiB of 1 KiB objects %zu segments stay "
		       "mapped (test setup: want 8 or more, the spare ones this test is about)\n", segs);
		return 1;
	}
	signal(SIGALRM, on_alarm);
	alarm(20);
	for (int f = 0; f < 3; f++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			printf("FAIL protect_fork/spare_segments: fork failed\n");
			return 1;
		}
		if (pid == 0) {
			void *q = v_malloc(1 << 20);
			_exit(q ? 0 : 2);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			printf("FAIL protect_fork/spare_segments: child %d ended with status 0x%x\n", f, status);
			return 1;
		}
	}
	alarm(0);
	if (!handler_ok) {
		printf("FAIL protect_fork/spare_segments: the prepare handler's malloc returned NULL\n");
		return 1;
	}
	printf("PASS protect_fork/spare_segments\n");
	return 0;
}
