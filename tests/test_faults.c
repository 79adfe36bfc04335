/* test_faults: the os_* API (libosmem.a: the classic algorithm, docs/CLASSIC.md) with its system calls failing,
 * through the os layer's test hook osm_os_fail_after: the workload of test_faults.h in a forked child, with the
 * Nth brk or the Nth mmap failing (once: N = 1, 2, ... up to every call the workload makes, every N up to a
 * bound, then a stride), and with every call from the Nth on failing (the hook turns the failures off again
 * before the child's second round: the program goes on).
 *
 * Each child must never crash; every NULL comes with errno ENOMEM and only where a failure happened (one failed
 * call, at most one failed operation); no block loses its content; after everything is freed the bytes and
 * mappings in use are what they were at the start (os_stats) and os_heap_check() passes; then it allocates again.
 * A child that makes no operation for 30 s is a hang (test_faults.h's watchdog of progress; until session 52
 * SIGALRM killed it after 30 s of work, too few on a loaded machine).
 * Also: OSMEM_FAIL, the same settings from the environment, parsed by os.c (faults/env_*).
 * Prints `PASS faults/<config>/<kind> (...)` or `FAIL faults/<config>/<kind>: failing call N of M: why`. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test_faults.h"
#include "test_util.h"

static const struct fw_api os_api = { os_malloc, os_calloc, os_realloc, os_free, NULL, false, false };

static void disarm(void)
{
	for (int k = 0; k < OS_FAULT_KINDS; k++)
		osm_os_fail_after((enum os_fault)k, 0, false);
}

static int run_child(int fd, int kind, size_t n, bool sticky)
{
	tu_test_name = "faults/child";
	tu_catch_crashes();
	fw_watch("faults/child", 30, NULL, 0, "a deadlock?"); /* until session 52: killed after 30 s of work */
	if (n)
		osm_os_fail_after(kind == FW_BRK ? OS_FAULT_BRK : kind == FW_MMAP ? OS_FAULT_MMAP : OS_FAULT_MREMAP, n,
				  sticky);
	fw_child(&os_api, kind, n, disarm, fd);
	return 0;
}

static int spawn(const char *config, int kind, size_t n, bool sticky, char *out, size_t cap)
{
	(void)config;
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		_exit(run_child(fds[1], kind, n, sticky));
	}
	close(fds[1]);
	tu_read_all(fds[0], out, cap);
	close(fds[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	return status;
}

/* The child of env_case: a fresh process (os.c reads OSMEM_FAIL once, at start) that reports which calls failed. */
static int env_child(void)
{
	/* 131000 bytes: a heap block (ALIGN(n) + 32 < 128 KiB) that fills the preallocation (docs/CLASSIC.md: no split, 8
	 * bytes short of 40) or a new block appended at the break: brk call i+1 serves block i. Then mmap calls
	 * 1..4 (256 KiB blocks). */
	size_t fb = 0, fm = 0, i;
	for (i = 0; i < 5; i++) {
		errno = 0;
		if (!os_malloc(131000)) {
			fb += (size_t)1 << i; /* bit i: the i+1th brk failed */
			if (errno != ENOMEM)
				fb |= (size_t)1 << 31;
		}
	}
	for (i = 0; i < 4; i++) {
		errno = 0;
		void *p = os_malloc(256 * 1024);
		if (!p)
			fm += (size_t)1 << i;
		os_free(p);
	}
	printf("ENV %zu %zu %zu\n", fb, fm, osm_os_faults_injected());
	return 0;
}

/* OSMEM_FAIL: a child with the variable set gets its failures from os.c's parser, never from the hook. */
static void env_case(const char *name, const char *spec, size_t want_fail_brk, size_t want_fail_mmap, bool bad)
{
	int fds[2];
	if (pipe(fds) != 0)
		return;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		char var[96];
		snprintf(var, sizeof var, "OSMEM_FAIL=%s", spec);
		char *env[] = { var, "FW_ENV_CHILD=1", NULL };
		execve("/proc/self/exe", (char *[]){ "test_faults", NULL }, env);
		_exit(127);
	}
	close(fds[1]);
	char out[1024];
	tu_read_all(fds[0], out, sizeof out);
	close(fds[0]);
	int status;
	waitpid(pid, &status, 0);
	size_t fb, fm, inj;
	const char *l = strstr(out, "ENV ");
	bool named = strstr(out, "OSMEM_FAIL=") && strstr(out, "is not understood");
	if (!l || sscanf(l, "ENV %zu %zu %zu", &fb, &fm, &inj) != 3)
		printf("FAIL faults/env_%s: the child gave no result (status %d): %s\n", name, status, out);
	else if (fb != want_fail_brk || fm != want_fail_mmap)
		printf("FAIL faults/env_%s: OSMEM_FAIL=%s failed the brk calls %#zx and the mmap calls %#zx (bit i: call "
		       "i+1), expected %#zx and %#zx\n", name, spec, fb, fm, want_fail_brk, want_fail_mmap);
	else if (bad != named)
		printf("FAIL faults/env_%s: OSMEM_FAIL=%s %s\n", name, spec,
		       bad ? "was not reported as not understood" : "was reported as not understood");
	else
		printf("PASS faults/env_%s\n", name);
}

/* osm_os_map_at maps a front segment where the range ends (a few times per process) and cleared errno to 0 on the
 * way. Its callers restore errno, so no API call showed it; the os layer itself promises what osm_os_map does: a
 * success leaves errno as it was, a failure says ENOMEM. */
static void map_at_success_keeps_errno(void)
{
	const size_t len = 1 << 20;
	void *addr = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* an address known free */
	if (addr == MAP_FAILED) {
		printf("FAIL faults/map_at_success_keeps_errno: mmap of 1 MiB failed (test setup)\n");
		return;
	}
	munmap(addr, len);
	errno = EDOM;
	int got = osm_os_map_at(addr, len);
	int after = errno;
	errno = EDOM;
	int again = got == 1 ? osm_os_map_at(addr, len) : -2; /* taken now: 0, errno ENOMEM */
	int after_fail = errno;
	if (got == 1)
		munmap(addr, len);
	if (got != 1 || after != EDOM || again != 0 || after_fail != ENOMEM)
		printf("FAIL faults/map_at_success_keeps_errno: osm_os_map_at on a free address returned %d with errno %d "
		       "(want 1 and %d, as it was), on the same address again %d with errno %d (want 0 and ENOMEM %d)\n",
		       got, after, EDOM, again, after_fail, ENOMEM);
	else
		printf("PASS faults/map_at_success_keeps_errno\n");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getenv("FW_ENV_CHILD"))
		return env_child();
	static char out[65536];
	struct fw_result ref;
	int failed = 0;
	int status = spawn("classic_os_api", 0, 0, false, out, sizeof out);
	if (status != 0 || !fw_parse(out, &ref) || ref.why[0] || ref.nulls1 || ref.nulls2) {
		printf("FAIL faults/classic_os_api/reference: the workload without a failure did not pass: %s\n",
		       ref.why[0] ? ref.why : out);
		return 1;
	}
	for (int k = FW_BRK; k <= FW_MMAP; k++) {
		if (ref.calls[k] < 2) {
			printf("FAIL faults/classic_os_api/%s: the workload makes %zu %s calls: the sweep tests nothing\n",
			       fw_kind_name[k], ref.calls[k], fw_kind_name[k]);
			failed++;
			continue;
		}
		failed += !fw_sweep(spawn, "classic_os_api", k, ref.calls[k], false, 32, 32);
		failed += !fw_sweep(spawn, "classic_os_api", k, ref.calls[k], true, 8, 8);
	}
	env_case("one_brk", "brk:3", 0x4, 0, false);
	env_case("brk_from_4_on", "brk:4+", 0x18, 0, false);
	env_case("mmap_and_brk", "mmap:2,brk:1", 0x1, 0x2, false);
	env_case("mmap_from_3_on", "mmap:3+", 0, 0xc, false);
	env_case("garbage_ignored", "mmap:x", 0, 0, true);
	env_case("unknown_kind_ignored", "munmap:1", 0, 0, true);
	/* calls are counted from 1: a count of 0 is not understood, so nothing is injected and it is named (it armed
	 * nothing in silence, and mmap:1,mmap:0 undid the mmap:1) */
	env_case("count_zero_not_understood", "mmap:0", 0, 0, true);
	env_case("count_zero_sticky_not_understood", "brk:0+", 0, 0, true);
	env_case("count_zero_after_a_count_not_understood", "mmap:1,mmap:0", 0, 0, true);
	/* a kind named twice, and a comma that ends nothing, are not understood: mmap:1+,mmap:3 armed mmap:3+ and
	 * mmap:1, was taken, in silence (session 63's review) */
	env_case("kind_twice_not_understood", "brk:1+,brk:3", 0, 0, true);
	env_case("trailing_comma_not_understood", "brk:1,", 0, 0, true);
	/* a count past SIZE_MAX saturates (the SIZE_MAX-th call: none here); it wrapped to 1 (session 50) */
	env_case("count_saturates", "brk:18446744073709551617", 0, 0, false);
	map_at_success_keeps_errno();
	return failed != 0;
}
