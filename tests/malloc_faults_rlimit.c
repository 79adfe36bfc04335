/* malloc_faults_rlimit: real out-of-memory, from the kernel. Four threads allocate (mixed sizes, from the front's
 * slots to 1 MiB blocks, plus calloc, realloc and memalign) under a lowered RLIMIT_AS, then under a lowered
 * RLIMIT_DATA, until each has seen 64 failures. Every failure must be NULL with errno ENOMEM, no call may crash
 * or hang, every block keeps its content, os_heap_check() passes, everything frees back to the bytes in use at
 * the start, and once the limit is raised again every thread allocates (up to 40 MiB blocks) without a failure.
 * A hang (a deadlock under memory pressure) is reported, not waited for: test_faults.h's watchdog fails a case in
 * which no thread finished an operation for 60 s (until session 52 the whole case had 60 s, which a loaded
 * machine could overrun without any hang).
 * Built twice: linked with libosmem-malloc.so (the malloc family; default profile, OSMEM_FRONT=0 and the classic
 * profile, each in a fresh process) and, as tests/test_faults_rlimit.c, with libosmem.a (the os_* API).
 * Prints `PASS rlimit/<config>/<limit>` or `FAIL rlimit/<config>/<limit>: why`. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_faults.h"

#ifdef USE_OS_API
#define API_NAME "os_api"
static void *t_memalign(size_t a, size_t n) { (void)a; return os_malloc(n); }
static const struct fw_api api = { os_malloc, os_calloc, os_realloc, os_free, t_memalign, false, false };
#else
#define API_NAME "malloc"
static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void (*volatile v_free)(void *) = free;
static void *t_malloc(size_t n) { return v_malloc(n); }
static void *t_calloc(size_t m, size_t n) { return v_calloc(m, n); }
static void *t_realloc(void *p, size_t n) { return v_realloc(p, n); }
static void t_free(void *p) { v_free(p); }
static void *t_memalign(size_t a, size_t n) { return memalign(a, n); }
static const struct fw_api api = { t_malloc, t_calloc, t_realloc, t_free, t_memalign, true, false };
#endif

#define THREADS 4
#define MAX_BLOCKS 20000
#define FAILURES 64

struct worker {
	pthread_t tid;
	struct fw_state s;              /* fw_check's report and the random state */
	struct fw_block blocks[MAX_BLOCKS];
	size_t n, failures;
	bool after;                     /* the limit was raised again: no failure allowed */
};

static struct worker workers[THREADS];
static pthread_barrier_t start, done, go_free, freed, go_again, again_done;
static const char *config = "?", *limit_name = "?";

static size_t pick_size(struct fw_state *s, bool huge)
{
	uint64_t r = tu_rng(&s->rng);
	switch (r % 10) {
	case 0: case 1: case 2: case 3:
		return 1 + (r >> 8) % 2048;
	case 4: case 5: case 6:
		return 2049 + (r >> 8) % (62 * 1024);
	case 7: case 8:
		return 64 * 1024 + (r >> 8) % (960 * 1024);
	default:
		return huge ? ((size_t)40 << 20) : 1 + (r >> 8) % 512;
	}
}

/* One allocation (malloc, calloc, memalign, or realloc of the last block) under the rules of test_faults.h. */
static void one_op(struct worker *w)
{
	struct fw_state *s = &w->s;
	size_t n = pick_size(s, w->after);
	uint64_t r = tu_rng(&s->rng), seed = tu_rng(&s->rng);
	void *p;
	int err;
	const char *what;
	if (r % 8 == 0 && w->n) { /* grow the last block */
		struct fw_block *b = &w->blocks[w->n - 1];
		size_t m = b->n + n;
		errno = EDOM;
		p = api.resize(b->p, m);
		err = errno;
		if (fw_result(s, p, err, "realloc", m)) {
			fw_check(s, p, m, b->n, b->seed, "after realloc");
			b->p = p;
			b->n = m;
			fw_fill(p, m, b->seed);
		} else {
			w->failures++;
			fw_check(s, b->p, b->n, b->n, b->seed, "after a failed realloc");
		}
		return;
	}
	errno = EDOM;
	if (r % 8 == 1) {
		what = "calloc";
		p = api.zalloc(1, n);
	} else if (r % 8 == 2) {
		what = "memalign";
		p = api.aligned(64, n);
	} else {
		what = "malloc";
		p = api.alloc(n);
	}
	err = errno;
	if (!fw_result(s, p, err, what, n)) {
		w->failures++;
		return;
	}
	if (w->n == MAX_BLOCKS) {
		fw_fail(s, "%zu blocks allocated and the limit still not reached (test setup)", (size_t)MAX_BLOCKS);
		api.release(p);
		return;
	}
	w->blocks[w->n++] = (struct fw_block){ p, n, seed };
	fw_fill(p, n, seed);
}

static void free_all(struct worker *w)
{
	for (size_t i = 0; i < w->n; i++)
		fw_release(&w->s, &w->blocks[i]);
	w->n = 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	pthread_barrier_wait(&start);
	/* until FAILURES failures: memory does not come back (nothing is freed), so each thread reaches them */
	while (w->failures < FAILURES && !w->s.why[0])
		one_op(w), w->s.op++;
	pthread_barrier_wait(&done);
	pthread_barrier_wait(&go_free);
	free_all(w);
	pthread_barrier_wait(&freed);
	pthread_barrier_wait(&go_again);
	w->after = true;
	w->s.nulls = 0;
	w->s.nulls_at[0] = 0;
	for (int i = 0; i < 200 && !w->s.why[0]; i++, w->s.op++)
		one_op(w);
	if (w->s.nulls)
		fw_fail(&w->s, "%zu allocations failed after the limit was raised (%s)", w->s.nulls, w->s.nulls_at);
	free_all(w);
	pthread_barrier_wait(&again_done);
	return NULL;
}

/* VmSize or VmData of this process, in bytes. */
static size_t vm_field(const char *name)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kb = 0, n = strlen(name);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, name, n) == 0 && line[n] == ':')
			kb = strtoul(line + n + 1, NULL, 10);
	if (f)
		fclose(f);
	return kb * 1024;
}

static const char *first_why(void)
{
	for (int i = 0; i < THREADS; i++)
		if (workers[i].s.why[0])
			return workers[i].s.why;
	return NULL;
}

static int run_case(int resource)
{
	tu_test_name = "rlimit";
	tu_catch_crashes();
	/* no operation by any thread for 60 s fails (until session 52: 60 s for the whole case) */
	static char name[160];
	static const volatile long *ops[THREADS];
	snprintf(name, sizeof name, "rlimit/%s/%s", config, limit_name);
	for (int i = 0; i < THREADS; i++)
		ops[i] = &workers[i].s.op;
	fw_watch(name, 60, ops, THREADS, "a deadlock under memory pressure?");
	pthread_barrier_init(&start, NULL, THREADS + 1);
	pthread_barrier_init(&done, NULL, THREADS + 1);
	pthread_barrier_init(&go_free, NULL, THREADS + 1);
	pthread_barrier_init(&freed, NULL, THREADS + 1);
	pthread_barrier_init(&go_again, NULL, THREADS + 1);
	pthread_barrier_init(&again_done, NULL, THREADS + 1);
	for (int i = 0; i < THREADS; i++) {
		workers[i].s.api = &api;
		workers[i].s.rng = 0x1234567u * (uint64_t)(i + 1);
		if (pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]) != 0) {
			printf("FAIL rlimit/%s/%s: pthread_create failed (test setup)\n", config, limit_name);
			return 1;
		}
	}
	struct os_stats st0, st;
	os_stats(&st0);
	struct rlimit old, low;
	getrlimit(resource, &old);
	size_t used = vm_field(resource == RLIMIT_AS ? "VmSize" : "VmData");
	low = old;
	low.rlim_cur = used + ((size_t)96 << 20); /* 96 MiB more than the process has now (stacks included) */
	if (setrlimit(resource, &low) != 0) {
		printf("FAIL rlimit/%s/%s: setrlimit failed (test setup)\n", config, limit_name);
		return 1;
	}
	pthread_barrier_wait(&start);
	pthread_barrier_wait(&done);
	/* everything still allocated: the heap holds together under pressure */
	int check = os_heap_check();
	size_t held = 0;
	for (int i = 0; i < THREADS; i++)
		held += workers[i].n;
	pthread_barrier_wait(&go_free);
	pthread_barrier_wait(&freed);
	os_stats(&st);
	int check_freed = os_heap_check();
	setrlimit(resource, &old);
	pthread_barrier_wait(&go_again);
	pthread_barrier_wait(&again_done);
	for (int i = 0; i < THREADS; i++)
		pthread_join(workers[i].tid, NULL);
	int check_end = os_heap_check();
	size_t failures = 0;
	for (int i = 0; i < THREADS; i++)
		failures += workers[i].failures;
	const char *why = first_why();
	if (why)
		printf("FAIL rlimit/%s/%s: %s\n", config, limit_name, why);
	else if (check || check_freed || check_end)
		printf("FAIL rlimit/%s/%s: os_heap_check failed %s (stderr says what)\n", config, limit_name,
		       check ? "at the limit" : check_freed ? "after everything was freed" : "at the end");
	else if (st.bytes_in_use != st0.bytes_in_use || st.mapped_count != st0.mapped_count)
		printf("FAIL rlimit/%s/%s: after every block was freed %zu bytes are in use in %zu mappings, %zu in %zu "
		       "at the start (a leak)\n", config, limit_name, st.bytes_in_use, st.mapped_count,
		       st0.bytes_in_use, st0.mapped_count);
	else
		printf("PASS rlimit/%s/%s (%zu failures, all NULL with ENOMEM; %zu blocks at the limit)\n", config,
		       limit_name, failures, held);
	return why || check || check_freed || check_end;
}

/* Each case in a fresh process: the limits, the heap's state and the profile are the process's own. */
static int spawn_case(const char *profile, const char *front, const char *name, const char *limit)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char child[96];
		snprintf(child, sizeof child, "RL_CHILD=%s:%s", name, limit);
		char p[64], f[32];
		snprintf(p, sizeof p, "OSMEM_PROFILE=%s", profile);
		snprintf(f, sizeof f, "OSMEM_FRONT=%s", front);
		char *env[] = { child, p, f, NULL };
		execve("/proc/self/exe", (char *[]){ "rlimit", NULL }, env);
		_exit(127);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 127 || WEXITSTATUS(status) > 3) {
		printf("FAIL rlimit/%s/%s: the child %s %d\n", name, limit, WIFEXITED(status) ? "exited with" : "was killed by signal",
		       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return 1;
	}
	return WEXITSTATUS(status) != 0;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *child = getenv("RL_CHILD");
	if (child) {
		static char name[64], limit[16];
		if (sscanf(child, "%63[^:]:%15s", name, limit) != 2)
			return 2;
		config = name;
		limit_name = limit;
		return run_case(strcmp(limit, "as") == 0 ? RLIMIT_AS : RLIMIT_DATA);
	}
	static const char *const cfg[][3] = {
#ifdef USE_OS_API
		{ "classic", "1", "classic_" API_NAME },
#else
		{ "default", "1", "default" },
		{ "default", "0", "default_front_off" },
		{ "classic", "1", "classic" },
#endif
	};
	int failed = 0;
	for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
		failed += spawn_case(cfg[i][0], cfg[i][1], cfg[i][2], "as");
		failed += spawn_case(cfg[i][0], cfg[i][1], cfg[i][2], "data");
	}
	return failed != 0;
}
