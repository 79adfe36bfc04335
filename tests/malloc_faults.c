/* malloc_faults: the malloc family (libosmem-malloc.so) with one system call failing, swept over the workload of
 * test_faults.h: the Nth brk, the Nth mmap or the Nth mremap fails (OSMEM_FAIL=kind:N, which os.c reads at the
 * heap's first system call), for N = 1, 2, ... up to every such call the workload makes (every N up to a bound,
 * then a stride). Three configurations: the default profile with the front layer, the default profile with
 * OSMEM_FRONT=0, the classic profile (OSMEM_PROFILE=classic), plus the os_* API on the drop-in's default heap.
 *
 * Each run is a fresh process (this program, executed again with the failure in its environment). It must
 * never crash; every NULL comes with errno ENOMEM and only where the failure happened (one failed call, at most
 * one failed operation); a success leaves errno alone; no block loses its content; after everything is freed,
 * the bytes and mappings in use are what they were at the start (os_stats) and os_heap_check() passes; and
 * the program then allocates again without a failure. A child that makes no operation for 30 s is a hang
 * (test_faults.h's watchdog of progress; until session 52 it had 30 s for the whole workload, too few on a
 * loaded machine).
 * Prints `PASS faults/<config>/<kind> (...)` or `FAIL faults/<config>/<kind>: failing call N of M: why`. */
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_faults.h"

/* Through volatile pointers: the compiler may not fold or drop a call whose result looks unused. */
static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void (*volatile v_free)(void *) = free;
static void *do_malloc(size_t n) { return v_malloc(n); }
static void *do_calloc(size_t m, size_t n) { return v_calloc(m, n); }
static void *do_realloc(void *p, size_t n) { return v_realloc(p, n); }
static void do_free(void *p) { v_free(p); }

/* The aligned family in turn: memalign, posix_memalign (whose error must be ENOMEM and leave errno ENOMEM, as
 * glibc's does), aligned_alloc. */
static void *any_memalign(size_t a, size_t n)
{
	static unsigned turn;
	switch (turn++ % 3) {
	case 0:
		return memalign(a, n);
	case 1: {
		void *p = NULL;
		int rc = posix_memalign(&p, a, n);
		if (rc && rc != ENOMEM)
			errno = rc; /* the report then names it */
		else if (rc && errno != ENOMEM)
			errno = 1000 + errno; /* posix_memalign said ENOMEM but left errno otherwise */
		return rc ? NULL : p;
	}
	default:
		return aligned_alloc(a, (n + a - 1) / a * a);
	}
}

static const struct fw_api malloc_api = { do_malloc, do_calloc, do_realloc, do_free, any_memalign, true, true };
static const struct fw_api classic_api = { do_malloc, do_calloc, do_realloc, do_free, any_memalign, true, false };
static const struct fw_api os_api = { os_malloc, os_calloc, os_realloc, os_free, NULL, false, true };

struct config {
	const char *name, *profile, *front;
	const struct fw_api *api;
	bool kinds[FW_KINDS]; /* the system calls this configuration makes */
};

static const struct config configs[] = {
	{ "default", "default", "1", &malloc_api, { true, true, true } },
	{ "default_front_off", "default", "0", &malloc_api, { true, true, true } },
	{ "classic", "classic", "1", &classic_api, { true, true, false } },
	{ "default_os_api", "default", "1", &os_api, { true, true, true } },
};

static const struct config *config_named(const char *name)
{
	for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
		if (strcmp(configs[i].name, name) == 0)
			return &configs[i];
	return NULL;
}

static int spawn(const char *config, int kind, size_t n, bool sticky, char *out, size_t cap)
{
	const struct config *c = config_named(config);
	char fail[64], child[96], profile[64], front[32];
	snprintf(fail, sizeof fail, "OSMEM_FAIL=%s:%zu%s", fw_kind_name[kind], n, sticky ? "+" : "");
	snprintf(child, sizeof child, "FW_CHILD=%s:%d:%zu", config, kind, n);
	snprintf(profile, sizeof profile, "OSMEM_PROFILE=%s", c->profile);
	snprintf(front, sizeof front, "OSMEM_FRONT=%s", c->front);
	char *env[] = { child, profile, front, n ? fail : "OSMEM_FAIL=", NULL };
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execve("/proc/self/exe", (char *[]){ "malloc_faults", NULL }, env);
		_exit(127);
	}
	close(fds[1]);
	size_t len = 0;
	ssize_t r;
	while ((r = read(fds[0], out + len, cap - 1 - len)) > 0 && len + (size_t)r < cap - 1)
		len += (size_t)r;
	if (r > 0)
		len += (size_t)r;
	out[len] = 0;
	close(fds[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	return status;
}

static int child_main(const char *spec)
{
	char name[64];
	int kind;
	size_t n;
	if (sscanf(spec, "%63[^:]:%d:%zu", name, &kind, &n) != 3 || !config_named(name))
		return 2;
	tu_test_name = "faults/child";
	tu_catch_crashes();
	fw_watch("faults/child", 30, NULL, 0, "a deadlock?"); /* until session 52: 30 s for the whole workload */
	fw_child(config_named(name)->api, kind, n, NULL, 1);
	return 0;
}

int main(void)
{
	const char *spec = getenv("FW_CHILD");
	if (spec)
		return child_main(spec);
	setvbuf(stdout, NULL, _IOLBF, 0);
	static char out[65536];
	int failed = 0;
	for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
		const struct config *c = &configs[i];
		struct fw_result ref;
		int status = spawn(c->name, 0, 0, false, out, sizeof out);
		if (status != 0 || !fw_parse(out, &ref) || ref.why[0] || ref.nulls1 || ref.nulls2) {
			printf("FAIL faults/%s/reference: the workload without a failure did not pass: %s\n", c->name,
			       ref.why[0] ? ref.why : out);
			failed++;
			continue;
		}
		for (int k = 0; k < FW_KINDS; k++) {
			if (c->kinds[k] && ref.calls[k] == 0) {
				printf("FAIL faults/%s/%s: the workload makes no %s call, so the sweep tests nothing\n",
				       c->name, fw_kind_name[k], fw_kind_name[k]);
				failed++;
				continue;
			}
			if (c->kinds[k])
				failed += !fw_sweep(spawn, c->name, k, ref.calls[k], false, 24, 24);
		}
	}
	return failed != 0;
}
