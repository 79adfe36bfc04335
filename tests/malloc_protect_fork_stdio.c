/* malloc_protect_fork_stdio: osmem's fork handlers take stdio's list lock only while the process has threads, as
 * glibc's fork does.
 *
 * The hazard (session 71: glibc's tst-mallocfork2 hung once in `make check`, "process seems to be stuck"). A
 * one-thread program whose signal handler forks (glibc's fork is async-signal-safe there: it skips its own locks
 * while the process has one thread, "to make fork safer to use in signal handlers"). osmem's prepare handler took
 * _IO_list_lock in every process. That lock is recursive by owner, but not at every instruction: between taking
 * its low-level lock and writing its owner (and between clearing the owner and letting the lock go) a signal
 * whose handler forks finds a lock held and not owned by this thread, and waits for itself forever. The lock is
 * there for threads (one holding a FILE's lock while it waits for osmem's: glibc bug 19431,
 * tst-malloc-fork-deadlock); a process of one thread has nobody to wait for.
 *
 * The window is a few instructions wide, so the test does not wait for a signal to land in it: it defines
 * _IO_list_lock, _IO_list_unlock and _IO_list_resetlock itself (the executable's definitions come first in symbol
 * lookup, so osmem's calls reach them; glibc calls its own internal ones) and counts what osmem's handlers call:
 *   - one_thread_fork_takes_no_stdio_lock: a fork before any thread: no call, in parent or child;
 *   - threaded_fork_takes_stdio_lock: a fork once a thread exists: one lock and one unlock in the parent, one reset
 *     in the child, as before (tst-malloc-fork-deadlock's rule).
 * Prints `PASS protect_fork_stdio/<name>` or `FAIL protect_fork_stdio/<name>: why`. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void (*real_lock)(void), (*real_unlock)(void), (*real_reset)(void);
static volatile int locks, unlocks, resets;

/* before main, before any fork: dlsym may allocate */
__attribute__((constructor)) static void find_real(void)
{
	real_lock = (void (*)(void))dlsym(RTLD_NEXT, "_IO_list_lock");
	real_unlock = (void (*)(void))dlsym(RTLD_NEXT, "_IO_list_unlock");
	real_reset = (void (*)(void))dlsym(RTLD_NEXT, "_IO_list_resetlock");
}

void _IO_list_lock(void)
{
	locks++;
	if (real_lock)
		real_lock();
}

void _IO_list_unlock(void)
{
	unlocks++;
	if (real_unlock)
		real_unlock();
}

void _IO_list_resetlock(void)
{
	resets++;
	if (real_reset)
		real_reset();
}

static void *idle(void *arg)
{
	return arg;
}

/* One fork with the counters at zero; the child exits with what its handlers called (locks, then resets * 10, both
 * as seen in the child). Returns false and says why on a failure. */
static int fork_counts(const char *name, int want_lock, int want_unlock, int want_reset)
{
	locks = unlocks = resets = 0;
	void *keep = malloc(100); /* the heap exists, as in any program */
	pid_t pid = fork();
	if (pid < 0) {
		printf("FAIL protect_fork_stdio/%s: fork failed\n", name);
		return 0;
	}
	if (pid == 0)
		_exit(locks + 10 * resets);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) {
		printf("FAIL protect_fork_stdio/%s: the child did not exit normally\n", name);
		return 0;
	}
	free(keep);
	int child_resets = WEXITSTATUS(st) / 10;
	if (locks != want_lock || unlocks != want_unlock || child_resets != want_reset) {
		printf("FAIL protect_fork_stdio/%s: osmem's fork handlers called _IO_list_lock %d, _IO_list_unlock %d "
		       "times in the parent and _IO_list_resetlock %d in the child; want %d, %d and %d%s\n",
		       name, locks, unlocks, child_resets, want_lock, want_unlock, want_reset,
		       want_lock ? "" : " (a one-thread process whose signal handler forks can wait for itself there)");
		return 0;
	}
	printf("PASS protect_fork_stdio/%s\n", name);
	return 1;
}

int main(void)
{
	if (!dlsym(RTLD_DEFAULT, "os_heap_check")) {
		printf("FAIL protect_fork_stdio/one_thread_fork_takes_no_stdio_lock: osmem is not loaded\n");
		return 1;
	}
	int ok = fork_counts("one_thread_fork_takes_no_stdio_lock", 0, 0, 0);
	pthread_t t; /* from here the process counts as threaded (__libc_single_threaded stays false) */
	if (pthread_create(&t, NULL, idle, NULL) != 0 || pthread_join(t, NULL) != 0) {
		printf("FAIL protect_fork_stdio/threaded_fork_takes_stdio_lock: no thread\n");
		return 1;
	}
	ok &= fork_counts("threaded_fork_takes_stdio_lock", 1, 1, 1);
	return ok ? 0 : 1;
}
