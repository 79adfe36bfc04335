/* malloc_protect_exit_signal: exit() from a signal handler that interrupted the allocator.
 *
 * Hazard: a program's SIGINT or SIGTERM handler that calls exit() runs the exit handlers on whatever thread the
 * signal interrupted, which may be inside osmem, holding its lock or writing the trace. osmem's own exit work
 * (the statistics, strict mode's last check of its quarantine, the trace's last buffer) then must not wait for a
 * lock its own thread holds. The trace's did not wait since session 37; until session 50 the others did, and the
 * trace writer's lock too: the process hung in exit instead of ending (found by a review; glibc's malloc does not
 * hang there). Each case runs in a child with its setting, a signal is raised where the lock is held, and the
 * handler calls exit(7); the child must end with status 7 within 20 s:
 *  - stats_at_exit_lock_held (OSMEM_STATS=1) and strict_at_exit_lock_held (OSMEM_CHECK=strict): SIGUSR1 raised
 *    while this thread holds the heap lock (osm_lock: this program links libosmem-malloc.a, whose hidden symbols
 *    a static link can reach);
 *  - trace_write_interrupted (OSMEM_TRACE): the trace file may not pass 100 KB (RLIMIT_FSIZE), so the trace
 *    writer's write raises SIGXFSZ while it holds the writer's lock.
 * Prints `PASS protect_exit_signal/<case>` or `FAIL protect_exit_signal/<case>: why`. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

static int n_fail;
static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

static void exit_7(int sig)
{
	(void)sig;
	exit(7);
}

static int child(const char *mode)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = exit_7;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGXFSZ, &sa, NULL);
	void *p = v_malloc(100); /* the allocator started, its exit work registered */
	v_free(p);
	if (strcmp(mode, "trace") == 0) {
		struct rlimit rl = { 100000, 100000 };
		setrlimit(RLIMIT_FSIZE, &rl);
		for (int i = 0; i < 2000000; i++) { /* megabytes of trace lines: a write passes 100 KB */
			void *volatile q = v_malloc(100 + (size_t)i % 5000);
			v_free(q);
		}
		return 3; /* never reached the limit */
	}
	osm_lock();
	raise(SIGUSR1);
	return 4; /* the handler did not exit */
}

static void run_case(const char *name, const char *mode, const char *env)
{
	fflush(stdout);
	char trace[64];
	snprintf(trace, sizeof trace, "/tmp/osmem-exit-signal-%d.trace", (int)getpid());
	pid_t pid = fork();
	if (pid == 0) {
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n <= 0)
			_exit(12);
		self[n] = 0;
		char tvar[96];
		snprintf(tvar, sizeof tvar, "OSMEM_TRACE=%s", trace);
		char *envp[] = { (char *)(strcmp(mode, "trace") == 0 ? tvar : env), NULL };
		int dn = open("/dev/null", O_WRONLY);
		if (dn >= 0)
			dup2(dn, 2); /* the statistics' text */
		execve(self, (char *[]){ self, (char *)mode, NULL }, envp);
		_exit(12);
	}
	int st = 0, waited = 0;
	while (waitpid(pid, &st, WNOHANG) == 0 && waited < 20000) {
		usleep(10000);
		waited += 10;
	}
	char why[200] = "";
	if (waited >= 20000) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		snprintf(why, sizeof why, "the process still ran 20 s after its handler called exit(): osmem's exit work "
			 "waits for a lock its own thread holds");
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 7) {
		snprintf(why, sizeof why, "the child ended with status 0x%x (want exit 7 from the handler; 3: no write "
			 "reached the limit, 4: no handler ran, 12: exec failed)", st);
	}
	unlink(trace);
	if (why[0]) {
		printf("FAIL protect_exit_signal/%s: %s\n", name, why);
		n_fail++;
	} else {
		printf("PASS protect_exit_signal/%s\n", name);
	}
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return child(argv[1]);
	run_case("stats_at_exit_lock_held", "lock", "OSMEM_STATS=1");
	run_case("strict_at_exit_lock_held", "lock", "OSMEM_CHECK=strict");
	run_case("trace_write_interrupted", "trace", NULL);
	return n_fail != 0;
}
