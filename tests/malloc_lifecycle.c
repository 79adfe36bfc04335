/* malloc_lifecycle: the drop-in is called before main, from thread-exit and process-exit handlers.
 *
 * Hazards: a constructor that runs before the allocator has read its settings, a thread-specific-data
 * destructor freeing what the thread allocated as the thread dies, atexit handlers and destructors that
 * allocate and free after main returned, and memory that crosses those phases. Each phase checks its
 * pointers and os_heap_check(); the process must exit 0, with the exit-time checks done in a child whose
 * status the parent reads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"

static char *early;          /* allocated in a constructor, freed in main */
static char *kept_for_exit;  /* allocated in main, freed in an atexit handler */
static pthread_key_t key;
static int failures;

static void fail(const char *what)
{
	printf("FAIL lifecycle/%s\n", what);
	failures++;
}

__attribute__((constructor)) static void before_main(void)
{
	early = malloc(1000);
	if (early)
		memset(early, 'c', 1000);
	void *big = malloc(300000); /* a mapping before main too */
	free(big);
}

static void tsd_destructor(void *p)
{
	/* runs as the thread exits: check, free, and allocate once more (glibc calls these during exit) */
	if (memcmp(p, "thread-data", 12) != 0)
		_exit(3);
	free(p);
	void *q = malloc(64);
	free(q);
}

static void *thread_main(void *arg)
{
	(void)arg;
	char *p = malloc(12);
	memcpy(p, "thread-data", 12);
	pthread_setspecific(key, p);
	return malloc(50); /* freed by main: a block that outlives its thread */
}

static void at_exit_handler(void)
{
	if (memcmp(kept_for_exit, "exit", 5) != 0 || os_heap_check() != 0)
		_exit(4);
	free(kept_for_exit);
	char *p = malloc(4096);
	free(p);
}

__attribute__((destructor)) static void after_main(void)
{
	char *p = calloc(10, 10);
	if (!p || p[99] != 0 || os_heap_check() != 0)
		_exit(5);
	free(p);
}

int main(int argc, char **argv)
{
	if (argc > 1) { /* the child: exits through every handler */
		kept_for_exit = malloc(5);
		memcpy(kept_for_exit, "exit", 5);
		atexit(at_exit_handler);
		return 0;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!early || early[0] != 'c' || early[999] != 'c')
		fail("constructor_allocation");
	else
		printf("PASS lifecycle/constructor_allocation\n");
	free(early);

	pthread_key_create(&key, tsd_destructor);
	int ok = 1;
	for (int i = 0; i < 50; i++) {
		pthread_t t;
		void *left;
		pthread_create(&t, NULL, thread_main, NULL);
		pthread_join(t, &left);
		if (!left)
			ok = 0;
		free(left);
	}
	if (ok && os_heap_check() == 0)
		printf("PASS lifecycle/thread_exit_destructors\n");
	else
		fail("thread_exit_destructors");

	pid_t pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", argv[0], "child", (char *)NULL);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		printf("PASS lifecycle/process_exit_handlers\n");
	else
		fail("process_exit_handlers");
	return failures != 0;
}
