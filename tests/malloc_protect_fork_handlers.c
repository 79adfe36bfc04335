/* malloc_protect_fork_handlers: pthread_atfork handlers registered before osmem's that allocate.
 *
 * Hazard: osmem's prepare handler takes the front lock, then the core's, so that the child's heap is whole.
 * Handlers registered before osmem's (here from .preinit_array, which ld.so runs before any library's
 * constructor; likewise a library preloaded after osmem, or a static link) run after osmem's prepare and before
 * its parent and child handlers: on this thread, with both locks held. The core's lock lets such a thread through
 * (lock.c, `forking`); until session 50 the front's did not, and every request that needed it waited forever for
 * the lock its own thread held: a thread's first request (its heap is made under the lock), a request that needs
 * a new page. Three cases, each in a child process of its own, which a watchdog ends after 20 s:
 *  - first_request_in_prepare: a thread that never allocated forks; the prepare handler's malloc(24) is its
 *    first request;
 *  - prepare_allocates_pages: the prepare handler makes 4,000 requests of 1,000 bytes (new pages), the parent
 *    handler frees them;
 *  - child_allocates_pages: the child handler makes the 4,000 requests in the child.
 * Prints `PASS protect_fork/handlers/<case>` or `FAIL protect_fork/handlers/<case>: why`. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

enum { NONE, FIRST, PREPARE_PAGES, CHILD_PAGES };
static volatile int mode;
static volatile int handler_failed;
enum { OBJS = 4000, OBJ_SIZE = 1000 };
static void *objs[OBJS];

static void take_pages(void)
{
	for (int i = 0; i < OBJS; i++) {
		objs[i] = v_malloc(OBJ_SIZE);
		if (!objs[i]) {
			handler_failed = 1;
			return;
		}
		memset(objs[i], i, 16);
	}
}

static void give_pages(void)
{
	for (int i = 0; i < OBJS; i++)
		v_free(objs[i]);
}

static void prepare(void)
{
	if (mode == FIRST) {
		void *p = v_malloc(24);
		if (!p)
			handler_failed = 1;
		v_free(p);
	} else if (mode == PREPARE_PAGES) {
		take_pages();
	}
}

static void parent(void)
{
	if (mode == PREPARE_PAGES && !handler_failed)
		give_pages();
}

static void child(void)
{
	if (mode == CHILD_PAGES)
		take_pages();
}

static void register_before(void)
{
	pthread_atfork(prepare, parent, child);
}
/* ld.so runs the executable's preinit functions before the constructors of every shared library: these handlers
 * are registered before osmem's */
__attribute__((section(".preinit_array"), used)) static void (*preinit)(void) = register_before;

static const char *case_name;

static void on_alarm(int sig)
{
	(void)sig;
	char msg[256];
	int n = snprintf(msg, sizeof msg, "FAIL protect_fork/handlers/%s: no progress in 20 s: a fork handler's "
			 "request waits for the front lock its own thread holds (deadlock)\n", case_name);
	write(1, msg, (size_t)n);
	_exit(1);
}

/* Forks; returns 0 when the child exited 0. Runs on the thread that is to fork. */
static void *fork_once(void *arg)
{
	(void)arg;
	pid_t pid = fork(); /* on a fresh thread (FIRST): its very first call into the allocator is the handler's */
	if (pid < 0)
		return (void *)1;
	if (pid == 0)
		_exit(handler_failed ? 3 : 0);
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return (void *)2;
	return NULL;
}

/* One case, in a process of its own (the watchdog's _exit ends only it). */
static int run_case(int m, const char *name)
{
	fflush(stdout);
	pid_t pid = fork(); /* mode is still NONE: the handlers do nothing for this fork */
	if (pid == 0) {
		case_name = name;
		signal(SIGALRM, on_alarm);
		alarm(20);
		mode = m;
		void *r;
		pthread_t t;
		if (pthread_create(&t, NULL, fork_once, NULL) != 0 || pthread_join(t, &r) != 0) {
			printf("FAIL protect_fork/handlers/%s: pthread_create or pthread_join failed (test setup)\n", name);
			fflush(stdout);
			_exit(1);
		}
		mode = NONE;
		if (r || handler_failed) {
			printf("FAIL protect_fork/handlers/%s: %s\n", name,
			       handler_failed ? "a handler's malloc returned NULL"
			       : r == (void *)1 ? "fork failed" : "the forked child did not exit 0");
			fflush(stdout);
			_exit(1);
		}
		printf("PASS protect_fork/handlers/%s\n", name);
		fflush(stdout);
		_exit(0);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		printf("FAIL protect_fork/handlers/%s: fork or waitpid failed (test setup)\n", name);
		return 1;
	}
	if (WIFSIGNALED(status)) {
		printf("FAIL protect_fork/handlers/%s: the process died of signal %d\n", name, WTERMSIG(status));
		return 1;
	}
	return WEXITSTATUS(status) != 0;
}

int main(void)
{
	void *p = v_malloc(100); /* the main thread has a heap: the front is on */
	v_free(p);
	int failed = 0;
	failed += run_case(FIRST, "first_request_in_prepare");
	failed += run_case(PREPARE_PAGES, "prepare_allocates_pages");
	failed += run_case(CHILD_PAGES, "child_allocates_pages");
	return failed ? 1 : 0;
}
