/* malloc_protect_fds: osmem's own files (OSMEM_TRACE, OSMEM_STATS=PATH) never write into the program's.
 *
 * Programs close descriptors they did not open (daemons close 3..1023) and reuse the numbers; osmem used to hold
 * its trace and statistics files at the lowest free numbers and kept writing to whatever file the program opened
 * there next. Now they sit at 1000 and up, close-on-exec, and each write first checks that the descriptor still
 * refers to the file osmem opened.
 *
 * Each case runs the program again with OSMEM_TRACE and OSMEM_STATS=PATH set (files in /tmp, removed after):
 *   high_cloexec  osmem's two descriptors are >= 1000 (RLIMIT_NOFILE soft limit is at least 1024 here) and
 *                 close-on-exec;
 *   close_low     the program closes 3..1023, opens its own file, writes to it and allocates a lot (the trace
 *                 writes many buffers, the statistics print at exit): the file holds only the program's bytes;
 *   dup2_over     the program finds osmem's two descriptors (/proc/self/fd) and dup2()s its own file over both,
 *                 then does the same: its file holds only its bytes.
 * Prints `PASS protect_fds/<case>` or `FAIL protect_fds/<case>: why`. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "test_util.h"

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;

static const char own_bytes[] = "the program's own line\n";

/* osmem's descriptor for `path` (OSMEM_TRACE or OSMEM_STATS), or -1. */
static int osmem_fd(const char *path)
{
	for (int fd = 0; fd < 4096; fd++) {
		char link[64], target[PATH_MAX];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (strcmp(target, path) == 0)
			return fd;
	}
	return -1;
}

static void allocate_a_lot(void)
{
	void *slot[64] = { 0 };
	for (unsigned i = 0; i < 200000; i++) {
		v_free(slot[i % 64]);
		slot[i % 64] = v_malloc(i % 5000 + 1);
	}
	for (int i = 0; i < 64; i++)
		v_free(slot[i]);
}

/* The program's side, in the re-executed process. Exit codes: 0 fine, 2 setup, 3 descriptors not high or not
 * close-on-exec. */
static int child(const char *mode, const char *own)
{
	v_free(v_malloc(10)); /* osmem is running: its files are open */
	const char *tpath = getenv("OSMEM_TRACE"), *spath = getenv("OSMEM_STATS");
	int tfd = osmem_fd(tpath), sfd = osmem_fd(spath);
	if (strcmp(mode, "high_cloexec") == 0) {
		struct rlimit rl;
		getrlimit(RLIMIT_NOFILE, &rl);
		if (tfd < 0 || sfd < 0)
			return 2;
		if ((rl.rlim_cur >= 1024 && (tfd < 1000 || sfd < 1000)) || !(fcntl(tfd, F_GETFD) & FD_CLOEXEC) ||
		    !(fcntl(sfd, F_GETFD) & FD_CLOEXEC))
			return 3;
		return 0;
	}
	int fd;
	if (strcmp(mode, "close_low") == 0) {
		for (int i = 3; i < 1024; i++)
			close(i);
		fd = open(own, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	} else {
		fd = open(own, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || tfd < 0 || sfd < 0 || dup2(fd, tfd) != tfd || dup2(fd, sfd) != sfd)
			return 2;
	}
	if (fd < 0)
		return 2;
	if (write(fd, own_bytes, sizeof own_bytes - 1) != (ssize_t)(sizeof own_bytes - 1))
		return 2;
	allocate_a_lot();
	return 0; /* exit: the trace's last buffer and the statistics are written now */
}

static int run_case(const char *self, const char *mode)
{
	char tpath[96], spath[96], own[96], why[200] = "";
	int pid = (int)getpid();
	snprintf(tpath, sizeof tpath, "/tmp/osmem-protect-fds-%d-%s.trace", pid, mode);
	snprintf(spath, sizeof spath, "/tmp/osmem-protect-fds-%d-%s.stats", pid, mode);
	snprintf(own, sizeof own, "/tmp/osmem-protect-fds-%d-%s.own", pid, mode);
	pid_t c = fork();
	if (c == 0) {
		setenv("OSMEM_TRACE", tpath, 1);
		setenv("OSMEM_STATS", spath, 1);
		unsetenv("OSMEM_TRACE_PID");
		execl(self, self, mode, own, (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(c, &st, 0);
	char text[4096];
	size_t len = tu_read_file(own, text, sizeof text);
	if (!WIFEXITED(st) || WEXITSTATUS(st) == 2)
		snprintf(why, sizeof why, "the program failed to set up (status 0x%x)", st);
	else if (WEXITSTATUS(st) == 3)
		snprintf(why, sizeof why, "osmem's descriptors are below 1000 or not close-on-exec");
	else if (WEXITSTATUS(st) != 0)
		snprintf(why, sizeof why, "the program exited with %d", WEXITSTATUS(st));
	else if (strcmp(mode, "high_cloexec") != 0 && strcmp(text, own_bytes) != 0)
		snprintf(why, sizeof why, "the program's file holds %zu bytes, not its own %zu (osmem wrote into it: "
			 "\"%.40s...\")", len, sizeof own_bytes - 1, text);
	unlink(tpath);
	unlink(spath);
	unlink(own);
	if (why[0])
		printf("FAIL protect_fds/%s: %s\n", mode, why);
	else
		printf("PASS protect_fds/%s\n", mode);
	return why[0] != 0;
}

int main(int argc, char **argv)
{
	if (argc == 3)
		return child(argv[1], argv[2]);
	int fails = 0;
	fails += run_case(argv[0], "high_cloexec");
	fails += run_case(argv[0], "close_low");
	fails += run_case(argv[0], "dup2_over");
	return fails != 0;
}
