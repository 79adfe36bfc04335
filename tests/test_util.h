/* test_util.h: what the C test programs share: a crash handler that still prints a FAIL line, content patterns
 * that any byte range can be filled or checked with alone, and a small random generator.
 * Header-only (static functions): each test program includes it once. */
#ifndef OSMEM_TEST_UTIL_H
#define OSMEM_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// ------------------------------------------------------------------
// Reading what a child wrote (its stderr on a pipe, a file it left)
// ------------------------------------------------------------------

/* Reads fd to its end (or until buf is full), retrying on EINTR; buf is NUL-terminated. Returns the length. */
static __attribute__((unused)) size_t tu_read_all(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	while (len < cap - 1) {
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = 0;
	return len;
}

/* Runs argv (argv[0] looked up in PATH) in a child, with env ("NAME=value", or NULL) added to its environment and
 * its standard output, and standard error too when err, on a pipe read into out (cap bytes, NUL-terminated).
 * Returns the child's wait status, or -1 when the pipe or the fork failed. An exec that fails exits 127. */
static __attribute__((unused)) int tu_spawn(char *const argv[], const char *env, int err, char *out, size_t cap)
{
	int fds[2], st;
	out[0] = 0;
	if (pipe(fds) != 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 1);
		if (err)
			dup2(fds[1], 2);
		if (env)
			putenv((char *)env);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	tu_read_all(fds[0], out, cap);
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

/* The file at path, as tu_read_all reads it ("" when it cannot be opened). */
static __attribute__((unused)) size_t tu_read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	buf[0] = 0;
	if (fd < 0)
		return 0;
	size_t len = tu_read_all(fd, buf, cap);
	close(fd);
	return len;
}

/* The address space the process has mapped now (the first field of /proc/self/statm), in bytes; 0 when unreadable. */
static __attribute__((unused)) size_t tu_vm_bytes(void)
{
	char buf[128];
	tu_read_file("/proc/self/statm", buf, sizeof buf);
	return (size_t)strtoul(buf, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE);
}

/* The resident set now (the second field of /proc/self/statm), in KiB; 0 when unreadable. */
static __attribute__((unused)) long tu_rss_kib(void)
{
	char buf[128], *p = buf;
	tu_read_file("/proc/self/statm", buf, sizeof buf);
	strtoul(buf, &p, 10);
	return (long)strtoul(p, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Runs fn in a forked child and returns the child's exit status, fn's result; a child that could not be forked
 * or did not exit prints `FAIL GROUP/CASES: ...` (CASES: the cases fn reports) and counts as 1. The child's
 * heap starts as the parent's, and whatever fn leaves behind (threads, memory) goes with it. */
static __attribute__((unused)) int tu_in_child(const char *group, const char *cases, int (*fn)(void))
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int r = fn();
		fflush(stdout);
		_exit(r);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) {
		printf("FAIL %s/%s: the case's child %s%s (osmem's report, if any, is on standard error)\n", group,
		       cases, pid < 0 ? "could not be forked" : "died of ",
		       pid >= 0 && WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "");
		return 1;
	}
	return WEXITSTATUS(st);
}

// ------------------------------------------------------------------
// Crashes: a FAIL line even for a signal (a bad-pointer report is SIGABRT)
// ------------------------------------------------------------------

/* What the FAIL line names, and the operation counter it reports (both may change as the test runs). */
static const char *volatile tu_test_name = "startup";
static const volatile long *tu_op_counter;
static struct sigaction tu_old_actions[NSIG];

static char *tu_put(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static char *tu_put_num(char *p, unsigned long v)
{
	char num[24];
	int k = 0;
	do
		num[k++] = (char)('0' + v % 10);
	while (v /= 10);
	while (k)
		*p++ = num[--k];
	return p;
}

/* Written with write(2) only (the allocator may be what broke); the previous action is then restored, so the
 * fault repeats under it (or under a sanitizer's handler) as if this one were not there. */
static __attribute__((unused)) void tu_crash_handler(int sig)
{
	char buf[256], *p = buf;
	p = tu_put(p, "FAIL ");
	p = tu_put(p, tu_test_name);
	p = tu_put(p, ": killed by signal ");
	p = tu_put_num(p, (unsigned long)sig);
	if (tu_op_counter) {
		p = tu_put(p, " at op ");
		p = tu_put_num(p, (unsigned long)*tu_op_counter);
	}
	*p++ = '\n';
	ssize_t w = write(STDOUT_FILENO, buf, (size_t)(p - buf));
	(void)w;
	sigaction(sig, &tu_old_actions[sig], NULL);
	if (sig == SIGABRT)
		raise(sig);
}

static __attribute__((unused)) void tu_catch_crashes(void)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = tu_crash_handler;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, &tu_old_actions[sigs[i]]);
}

// ------------------------------------------------------------------
// Patterns: byte i of a block is byte (i & 7) of word(seed, i >> 3), so any range can be filled or checked alone
// ------------------------------------------------------------------

static inline __attribute__((unused)) uint64_t pat_word(uint64_t seed, size_t w)
{
	return seed ^ ((uint64_t)w * 0xD6E8FEB86659FD93ULL);
}

static inline __attribute__((unused)) unsigned char pat_byte(uint64_t seed, size_t i)
{
	return (unsigned char)(pat_word(seed, i >> 3) >> (8 * (i & 7)));
}

static inline __attribute__((unused)) void pat_fill(unsigned char *p, uint64_t seed, size_t from, size_t to)
{
	size_t i = from;
	for (; i < to && (i & 7); i++)
		p[i] = pat_byte(seed, i);
	for (; i + 8 <= to; i += 8) {
		uint64_t w = pat_word(seed, i >> 3);
		memcpy(p + i, &w, 8);
	}
	for (; i < to; i++)
		p[i] = pat_byte(seed, i);
}

/* The first offset in [from, to) that does not hold the pattern, or `to`. */
static inline __attribute__((unused)) size_t pat_check(const unsigned char *p, uint64_t seed, size_t from, size_t to)
{
	size_t i = from;
	for (; i < to && (i & 7); i++)
		if (p[i] != pat_byte(seed, i))
			return i;
	for (; i + 8 <= to; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w != pat_word(seed, i >> 3))
			break;
	}
	for (; i < to; i++)
		if (p[i] != pat_byte(seed, i))
			return i;
	return to;
}

// ------------------------------------------------------------------
// Random numbers: splitmix64 over a caller's state
// ------------------------------------------------------------------

/* CLOCK_MONOTONIC in nanoseconds. */
static inline __attribute__((unused)) uint64_t tu_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline __attribute__((unused)) uint64_t tu_rng(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

// ------------------------------------------------------------------
// The heap as os_heap_dump shows it (programs that include osmem.h first)
// ------------------------------------------------------------------

#ifdef OSMEM_H
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>

/* The size of the free block at the top of the heap (0 if the last block is not free or the dump failed). The
 * dump goes through a pipe: keep the heap small (a pipe holds 64 KiB before its writer waits). */
static __attribute__((unused)) size_t tu_free_top_size(void)
{
	static char buf[1 << 16];
	int fds[2];
	if (pipe(fds) != 0)
		return 0;
	int rc = os_heap_dump(fds[1], OS_DUMP_TEXT);
	close(fds[1]);
	tu_read_all(fds[0], buf, sizeof buf);
	close(fds[0]);
	size_t top = 0;
	for (char *line = strtok(buf, "\n"); rc == 0 && line; line = strtok(NULL, "\n")) {
		char off[64], status[16], where[16];
		size_t size;
		if (sscanf(line, "%63s %zu %15s %15s", off, &size, status, where) == 4 && strcmp(where, "heap") == 0)
			top = strcmp(status, "free") == 0 ? size : 0;
	}
	return top;
}
/* A heap with a gap (the core's gaps: its blocks no longer tile one range): the program moves the break itself, a
 * page of its own past the heap's end, then the heap grows past that page, by blocks of 100,000 bytes (above the
 * medium caches' sizes, below the mmap threshold) allocated and kept until heap_size grows. From then on the medium
 * caches leave the blocks to the core (internal.h, medium_in_heap), and the core's checks of a header may no longer
 * ask for sizes that tile. Returns the program's page; exits 98 when the break would not move or the heap never
 * grew. */
static __attribute__((unused)) char *tu_heap_with_gap(void)
{
	static void *volatile kept; /* the blocks stay allocated: the compiler must not drop the requests */
	char *mine = (char *)sbrk(4096);
	struct os_stats s0, s;
	os_stats(&s0);
	for (int i = 0; mine != (void *)-1 && i < 100000; i++) {
		if (!(kept = malloc(100000)))
			break;
		os_stats(&s);
		if (s.heap_size > s0.heap_size)
			return mine;
	}
	_exit(98);
}

// ------------------------------------------------------------------
// Death cases (programs that include osmem.h first): a hazard run in a forked child, its end checked
// ------------------------------------------------------------------

/* want_what for a child that must die of SIGSEGV or SIGBUS at its own access, with nothing from osmem on stderr */
static const char TU_FAULTS[] = "(faults)";

/* Writes "ADDR 0x..." to standard error: the child names the pointer the report must name. */
static __attribute__((unused)) void tu_say_addr(const void *p)
{
	char msg[64];
	snprintf(msg, sizeof msg, "ADDR 0x%lx\n", (unsigned long)(uintptr_t)p);
	if (write(2, msg, strlen(msg)) < 0)
		_exit(99);
}

/* The first i >= n / 2 at which p[i .. i + 4) are four blocks that tile one run of the heap, `step` bytes apart
 * (usable size + header), in either order (a cache hands a refill's blocks out from its top); n when there is
 * none. */
static __attribute__((unused)) size_t tu_tiling_run(char *const *p, size_t n, size_t step)
{
	for (size_t i = n / 2; i + 4 < n; i++) {
		char *lo = p[i];
		for (size_t k = 1; k < 4; k++)
			lo = p[i + k] < lo ? p[i + k] : lo;
		unsigned seen = 0;
		for (size_t k = 0; k < 4; k++) {
			size_t d = (size_t)(p[i + k] - lo);
			if (d % step == 0 && d / step < 4)
				seen |= 1u << (d / step);
		}
		if (seen == 15)
			return i;
	}
	return n;
}

/* Runs fn in a child, its standard error on a pipe, and prints `PASS group/prefixname` or `FAIL ...: why`.
 * want_what NULL: the child must exit 0 with os_heap_check() passing; TU_FAULTS: it must fault; else it must die
 * of SIGABRT after "osmem: <want_api>(): <want_what> <ADDR>" (ADDR: what the child said with tu_say_addr).
 * Returns whether it passed. A hang is a failure with a name (alarm), not a stuck suite. */
static __attribute__((unused)) bool tu_death_case(const char *group, const char *prefix, const char *name,
						  void (*fn)(void), const char *want_api, const char *want_what)
{
	int fds[2];
	if (pipe(fds) != 0) {
		printf("FAIL %s/%s%s: pipe failed\n", group, prefix, name);
		return false;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 2);
		alarm(60);
		fn();
		_exit(os_heap_check() == 0 ? 0 : 3);
	}
	close(fds[1]);
	char buf[4096];
	tu_read_all(fds[0], buf, sizeof buf);
	close(fds[0]);
	int st;
	waitpid(pid, &st, 0);
	char why[600] = "";
	/* SIGALRM: the alarm above (or a shorter one of the case's own) ended a child that hung */
	const char *how = WIFEXITED(st) ? "exited" : WTERMSIG(st) == SIGALRM ? "hung (SIGALRM), signal" :
			  "was killed by signal";
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st);
	if (!want_what) {
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			snprintf(why, sizeof why, "the child %s %d (stderr: %.300s)", how, code, buf);
	} else if (want_what == TU_FAULTS) {
		if (!WIFSIGNALED(st) || (WTERMSIG(st) != SIGSEGV && WTERMSIG(st) != SIGBUS))
			snprintf(why, sizeof why, "want SIGSEGV or SIGBUS at the access, the child %s %d (stderr: %.300s)",
				 how, code, buf);
		else if (strstr(buf, "osmem: "))
			snprintf(why, sizeof why, "the fault came after a report: %.300s", buf);
	} else {
		char want[200], hex[40] = "";
		const char *addr = strstr(buf, "ADDR ");
		if (addr)
			sscanf(addr + 5, "%39s", hex);
		snprintf(want, sizeof want, "osmem: %s(): %s %s", want_api, want_what, hex);
		if (!hex[0]) /* the report must carry the pointer: the child names it first */
			snprintf(why, sizeof why, "the child never said which pointer the report must name (stderr: %.300s)",
				 buf);
		else if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
			snprintf(why, sizeof why, "want SIGABRT with \"%s\", the child %s %d (stderr: %.300s)", want, how,
				 code, buf);
		else if (!strstr(buf, want))
			snprintf(why, sizeof why, "want \"%s\" on stderr, got: %.300s", want, buf);
	}
	if (why[0])
		printf("FAIL %s/%s%s: %s\n", group, prefix, name, why);
	else
		printf("PASS %s/%s%s\n", group, prefix, name);
	return !why[0];
}
#endif

#endif
