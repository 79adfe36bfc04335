/* malloc_protect_fork: pthread_atfork handlers of the program (or of a library loaded before osmem) allocate.
 *
 * fork runs prepare handlers in reverse order of registration and parent/child handlers in order. So a handler
 * set registered BEFORE osmem's (here from .preinit_array, which ld.so runs before any shared library's
 * constructor) has its prepare run after osmem's prepare took the heap lock, and its parent/child handlers run
 * before osmem's let it go (parent) or reset it (child); a set registered AFTER osmem's (an ordinary
 * constructor: osmem's, in a shared library, runs first) brackets osmem's. glibc's malloc serves all of them.
 * Every handler here mallocs, callocs, reallocs and frees. Three threads allocate throughout; the main thread
 * forks FORKS times; each child checks that both child handlers ran and allocated, allocates, runs
 * os_heap_check() and exits 0. A hang (the bug: a handler waiting for the lock its own thread holds) is turned
 * into a FAIL line by alarm(). Built linked with libosmem-malloc.so (make); test_protect_fork_preload.py builds
 * the same file unlinked and runs it with LD_PRELOAD.
 * Prints `PASS protect_fork/<variant>` or `FAIL protect_fork/<variant>: why`. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKS   200
#define WORKERS 3
#define ALARM   60 /* seconds for the whole program (a pass takes about one): generous on a loaded machine */

#ifdef PRELOADED
#define VARIANT "preload"
#else
#define VARIANT "linked"
#endif

static atomic_int handler_failures;
static atomic_int prepare_runs[2], parent_runs[2];
static int child_runs[2]; /* in the child: which child handlers ran and allocated */
static volatile pid_t current_child;

/* What a library's fork handler might do: a few allocations of different kinds, all freed. */
static bool handler_allocates(size_t salt)
{
	unsigned char *a = malloc(24 + salt % 200), *b = calloc(10, 100), *c = malloc(200000);
	if (!a || !b || !c)
		return false;
	memset(a, 0x5a, 24);
	c[0] = c[199999] = 1;
	bool zero = b[0] == 0 && b[999] == 0;
	unsigned char *a2 = realloc(a, 5000);
	if (!a2)
		return false;
	bool kept = a2[0] == 0x5a && a2[23] == 0x5a;
	free(a2);
	free(b);
	free(c);
	return zero && kept;
}

#define HANDLERS(name, idx)                                                                                     \
	static void name##_prepare(void)                                                                        \
	{                                                                                                       \
		if (!handler_allocates(idx * 7 + 1))                                                            \
			handler_failures++;                                                                     \
		prepare_runs[idx]++;                                                                            \
	}                                                                                                       \
	static void name##_parent(void)                                                                         \
	{                                                                                                       \
		if (!handler_allocates(idx * 7 + 2))                                                            \
			handler_failures++;                                                                     \
		parent_runs[idx]++;                                                                             \
	}                                                                                                       \
	static void name##_child(void)                                                                          \
	{                                                                                                       \
		child_runs[idx] = handler_allocates(idx * 7 + 3) ? 1 : -1;                                      \
	}

HANDLERS(before, 0) /* registered before osmem's */
HANDLERS(after, 1)  /* registered after osmem's */

static void register_before(void)
{
	pthread_atfork(before_prepare, before_parent, before_child);
}
/* ld.so runs the executable's preinit functions before the constructors of every shared library */
__attribute__((section(".preinit_array"), used)) static void (*preinit)(void) = register_before;

__attribute__((constructor)) static void register_after(void)
{
	pthread_atfork(after_prepare, after_parent, after_child);
}

static atomic_int stop;

static void *worker(void *arg)
{
	unsigned s = (unsigned)(size_t)arg * 2654435761u + 1;
	void *slot[32] = { 0 };
	while (!stop) {
		s = s * 1103515245u + 12345u;
		unsigned i = (s >> 8) % 32;
		free(slot[i]);
		size_t n = (s >> 20) % 8 == 0 ? 150000 : (s >> 12) % 3000 + 1;
		slot[i] = malloc(n);
		if (slot[i])
			memset(slot[i], 1, n < 16 ? n : 16); /* within the request (OSMEM_CHECK=strict caught 16 > n) */
	}
	for (int i = 0; i < 32; i++)
		free(slot[i]);
	return NULL;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "FAIL protect_fork/" VARIANT
				  ": no progress in time: a fork handler's allocation waited for the heap lock "
				  "its own thread holds (deadlock)\n";
	if (current_child > 0)
		kill(current_child, SIGKILL);
	write(1, msg, sizeof msg - 1);
	_exit(1);
}

int main(void)
{
	int (*heap_check)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "os_heap_check");
	if (!heap_check) {
		printf("FAIL protect_fork/" VARIANT ": osmem is not loaded (no os_heap_check)\n");
		return 1;
	}
	signal(SIGALRM, on_alarm);
	alarm(ALARM);
	pthread_t w[WORKERS];
	for (size_t i = 0; i < WORKERS; i++)
		pthread_create(&w[i], NULL, worker, (void *)i);
	int bad = 0;
	char why[200] = "";
	for (int f = 0; f < FORKS && !bad; f++) {
		pid_t pid = fork();
		if (pid < 0) {
			snprintf(why, sizeof why, "fork failed at %d", f);
			bad = 1;
			break;
		}
		if (pid == 0) {
			if (child_runs[0] != 1 || child_runs[1] != 1)
				_exit(10 + (child_runs[0] != 1) + 2 * (child_runs[1] != 1));
			if (!handler_allocates(99) || heap_check() != 0)
				_exit(20);
			_exit(0);
		}
		current_child = pid;
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			int code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
			snprintf(why, sizeof why, "child %d ended with %d (%s)", f, code,
				 code >= 10 && code < 20 ? "a child handler's allocation failed or did not run"
				 : code == 20 ? "the child could not allocate, or its heap failed os_heap_check"
					      : "crashed");
			bad = 1;
		}
		current_child = 0;
	}
	stop = 1;
	for (int i = 0; i < WORKERS; i++)
		pthread_join(w[i], NULL);
	alarm(0);
	if (!bad && handler_failures) {
		snprintf(why, sizeof why, "%d handler allocations failed in the parent", (int)handler_failures);
		bad = 1;
	}
	if (!bad && (prepare_runs[0] != FORKS || prepare_runs[1] != FORKS || parent_runs[0] != FORKS ||
		     parent_runs[1] != FORKS)) {
		snprintf(why, sizeof why, "handlers ran %d/%d prepare, %d/%d parent times, not %d",
			 (int)prepare_runs[0], (int)prepare_runs[1], (int)parent_runs[0], (int)parent_runs[1], FORKS);
		bad = 1;
	}
	if (!bad && heap_check() != 0) {
		snprintf(why, sizeof why, "the parent's heap failed os_heap_check");
		bad = 1;
	}
	if (bad)
		printf("FAIL protect_fork/" VARIANT ": %s\n", why);
	else
		printf("PASS protect_fork/" VARIANT " (%d forks, handlers registered before and after osmem's)\n",
		       FORKS);
	return bad;
}
