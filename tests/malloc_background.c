/* malloc_background: OSMEM_BACKGROUND=1, the opt-in thread that gives an idle process's memory back
 * (src/background.c).
 *
 * The hazard it was built for (session 71, by hand): every pass that gives memory back ran on the program's own
 * calls, so a process that freed most of its memory and then waited kept it resident for as long as it waited
 * (a redis-server after FLUSHALL: 64 MiB). The hazards it brings: a second thread in every such process, which must
 * not take the program's signals, must not be copied into a fork's child, must not hold up exit, and whose passes
 * take the caches of idle program threads while their owners may wake at any moment.
 *
 * Each case runs in a child made by re-executing this program with the environment it needs (the setting is read
 * in the library's constructor, before main):
 *   - idle_process_gives_memory_back: 64 MiB of small and medium objects made and freed, then only sleeps: within
 *     20 s the resident set comes back within 4 MiB of where it was before, and the caches hold under 512 KiB: the
 *     pass, in a thread without a heap, takes the caches of the program's only thread once it is idle (they kept
 *     1 MiB when it took only those of a second program thread's). Without the thread nothing comes back
 *     (idle_process_keeps_memory_without_thread: the first cannot pass by accident);
 *   - idle_heap_holes_swept_to_the_end: a heap of 45,000 blocks, three in four freed at random, then idle: the
 *     holes' pages go back within 6 s (0.8 s here; with the sweep carried a step a wake, 256 headers, not in 6 s);
 *   - off_by_default: no setting, or 0: one thread;
 *   - thread_named_and_signals_blocked: a thread named osmem-bg, with SIGINT, SIGTERM, SIGUSR1, SIGCHLD, SIGALRM
 *     and SIGPIPE blocked, while the main thread's own mask is as it was; a SIGUSR1 sent to the process runs its
 *     handler in the main thread;
 *   - fork_child_has_no_thread: a fork's child has one thread and allocates; the parent keeps its two;
 *   - classic_profile_makes_no_thread, bad_setting_named: no thread, and a line on standard error that says why;
 *   - stats_count_wakes: OSMEM_STATS prints "background wakes" with the thread, and no such line without it;
 *   - one_thread_rules_kept_beside_the_thread, second_program_thread_ends_one_thread_rules: the heap's rules for a
 *     program of one thread (a big block freed lifts the mmap threshold past 1 MiB) hold beside the thread, in a
 *     fork's child too, and end when a second program thread comes to the heap (with the thread counted as the
 *     program's, large took 1.08 of its time and mixed-realloc 1.13);
 *   - idle_threads_caches_taken_while_owners_wake: four threads keep 3,000 objects each, written, and sleep 2.5 s
 *     (two passes apart: the pass takes their bins and pages) then check every byte, free and make them again,
 *     three rounds, the main thread too; os_heap_check clean at the end;
 *   - trace_passes_under_their_own_line: with OSMEM_TRACE, what the thread gives back while the program sleeps
 *     (the core's madvises, the front's page lines) comes under an `idle t=T` line of the thread's own, not under
 *     the program's last free (docs/TRACE.md);
 *   - exit_while_threads_churn: four threads churn while main returns, ten times, with statistics: every run ends
 *     within its time and prints them.
 * Prints `PASS background/<name>` or `FAIL background/<name>: why`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "osmem.h"

static const char *self_path;

static long rss_kib(void)
{
	char b[128];
	int fd = open("/proc/self/statm", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, b, sizeof b - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	b[n] = 0;
	long size, res;
	return sscanf(b, "%ld %ld", &size, &res) == 2 ? res * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

static int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// ------------------------------------------------------------------------------------------- the children's cases

/* 64 MiB made of 16..600-byte and 3,000..12,000-byte objects, written, freed; then sleeps only. Exit 0 when the
 * resident set came back within 4 MiB of where it was before (the array of pointers, 0.9 MiB, stays) and the caches
 * hold under 512 KiB (the medium bins of the only thread, about 1 MiB, were taken), 1 when not within limit_ms; what
 * it saw on standard output. */
static int child_idle(long limit_ms)
{
	long before = rss_kib();
	enum { N = 120000 };
	static char *v[N];
	uint64_t x = 88172645463325252ull;
	size_t total = 0, n = 0;
	while (total < (size_t)64 << 20 && n < N) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t len = n % 3 ? 16 + x % 585 : 3000 + x % 9001;
		v[n] = malloc(len);
		if (!v[n])
			return 2;
		memset(v[n], (int)n, len);
		total += len;
		n++;
	}
	long full = rss_kib();
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	long after = rss_kib(), last = after;
	struct os_stats st;
	bool back = false;
	double t0 = now_s();
	while (!back && (now_s() - t0) * 1000 < (double)limit_ms) {
		sleep_ms(100);
		last = rss_kib();
		os_stats(&st); /* reads the figures: no tick, and not the caches' counts a pass compares */
		back = last <= before + 4 * 1024 && st.front_cached_bytes < 512 * 1024;
	}
	printf("before %ld KiB, full %ld, after the frees %ld, after %.1f s idle %ld; the caches hold %zu blocks, %zu "
	       "bytes\n", before, full, after, now_s() - t0, last, (size_t)st.front_cached_blocks,
	       (size_t)st.front_cached_bytes);
	return back ? 0 : 1;
}

/* 45,000 blocks of 2,100..2,500 bytes (the core's: the medium caches hold few), written, three in four freed at
 * random: the heap is holed, no free block reaches the decay's 1 MiB, and only the sweep of idle holes gives their
 * pages back (OSMEM_IDLE_MS=300: a period of 300 ms). Exit 0 when the resident set fell by 24 MiB within limit_ms. */
static int child_holes(long limit_ms)
{
	enum { H = 45000 };
	static char *v[H];
	for (size_t i = 0; i < H; i++) {
		size_t len = 2100 + (i * 2654435761u) % 401;
		v[i] = malloc(len);
		if (!v[i])
			return 2;
		memset(v[i], (int)i, len);
	}
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < H; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (x % 4) {
			free(v[i]);
			v[i] = NULL;
		}
	}
	long after = rss_kib(), last = after;
	double t0 = now_s();
	while (last > after - 24 * 1024 && (now_s() - t0) * 1000 < (double)limit_ms) {
		sleep_ms(100);
		last = rss_kib();
	}
	printf("after the frees %ld KiB, after %.1f s idle %ld\n", after, now_s() - t0, last);
	return last <= after - 24 * 1024 ? 0 : 1;
}

/* 3,000 medium blocks (26 MiB) made and freed, then 2.5 s of sleep: the thread's decay gives the heap back while
 * the trace's last request is the main thread's last free. */
static int child_trace(void)
{
	enum { T = 3000 };
	static char *v[T];
	for (size_t i = 0; i < T; i++) {
		v[i] = malloc(2048 + (i * 2654435761u) % 14000);
		if (!v[i])
			return 2;
		memset(v[i], 1, 2048);
	}
	for (size_t i = 0; i < T; i++)
		free(v[i]);
	sleep_ms(2500);
	return 0;
}

static int child_tasks(void)
{
	void *p = malloc(100);
	free(p);
	printf("%d\n", count_tasks());
	return 0;
}

static volatile pid_t handler_tid;
static void on_usr1(int sig)
{
	(void)sig;
	handler_tid = (pid_t)syscall(SYS_gettid);
}

/* The mask of signals blocked by task tid, from its status file (0 when unreadable); its name into name. */
static unsigned long long task_blocked(const char *tid, char *name, size_t name_len)
{
	char path[320], line[256];
	unsigned long long blk = 0;
	snprintf(path, sizeof path, "/proc/self/task/%s/comm", tid);
	FILE *f = fopen(path, "r");
	name[0] = 0;
	if (f) {
		if (fgets(name, (int)name_len, f))
			name[strcspn(name, "\n")] = 0;
		fclose(f);
	}
	snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "SigBlk:", 7) == 0)
			blk = strtoull(line + 7, NULL, 16);
	if (f)
		fclose(f);
	return blk;
}

static unsigned long long bit(int sig)
{
	return 1ull << (sig - 1);
}

static int child_signals(void)
{
	unsigned long long want = bit(SIGINT) | bit(SIGTERM) | bit(SIGUSR1) | bit(SIGCHLD) | bit(SIGALRM) | bit(SIGPIPE);
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int found = 0;
	char mine[16];
	snprintf(mine, sizeof mine, "%ld", (long)syscall(SYS_gettid));
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char name[64];
		unsigned long long blk = task_blocked(e->d_name, name, sizeof name);
		if (strcmp(e->d_name, mine) == 0) {
			if (blk & want) {
				printf("the main thread's mask changed: %llx\n", blk);
				return 1;
			}
		} else if (strcmp(name, "osmem-bg") == 0) {
			found = 1;
			if ((blk & want) != want) {
				printf("osmem-bg blocks %llx, not all of %llx\n", blk, want);
				return 1;
			}
		}
	}
	if (d)
		closedir(d);
	if (!found) {
		printf("no thread named osmem-bg\n");
		return 1;
	}
	signal(SIGUSR1, on_usr1);
	for (int i = 0; i < 20; i++) {
		handler_tid = 0;
		kill(getpid(), SIGUSR1);
		for (int k = 0; k < 1000 && !handler_tid; k++)
			sleep_ms(1);
		if (handler_tid != (pid_t)syscall(SYS_gettid)) {
			printf("SIGUSR1's handler ran in task %d, not the main thread\n", (int)handler_tid);
			return 1;
		}
	}
	return 0;
}

static int child_fork(void)
{
	void *keep = malloc(5000);
	int parent_before = count_tasks();
	pid_t pid = fork();
	if (pid == 0) {
		int tasks = count_tasks();
		char *v[2000];
		for (int i = 0; i < 2000; i++) {
			v[i] = malloc((size_t)(i % 50) * 100 + 16);
			if (!v[i])
				_exit(90);
			memset(v[i], i, (size_t)(i % 50) * 100 + 16);
		}
		for (int i = 0; i < 2000; i++)
			free(v[i]);
		sleep_ms(300);
		_exit(tasks == 1 && os_heap_check() == 0 ? 0 : 10 + tasks);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	int parent_after = count_tasks();
	free(keep);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		printf("the child ended with status %d (10 + its threads when it had more than one; 90: no memory)\n",
		       WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
		return 1;
	}
	if (parent_before != 2 || parent_after != 2) {
		printf("the parent had %d threads before the fork and %d after, 2 expected\n", parent_before, parent_after);
		return 1;
	}
	return 0;
}

/* Whether a block of n bytes made now is a mapping of its own (os_stats' count of live mapped blocks moves). */
static int big_block_mapped(size_t n)
{
	struct os_stats s0, s1;
	os_stats(&s0);
	char *p = malloc(n);
	if (!p)
		return -1;
	memset(p, 1, n);
	os_stats(&s1);
	free(p);
	return s1.mapped_count > s0.mapped_count;
}

static void *thread_big(void *arg)
{
	*(int *)arg = big_block_mapped(5 << 20);
	return NULL;
}

/* The heap's one-thread rules beside the background thread. A block of 8 MiB is mapped at first and freed, which
 * lifts the dynamic threshold to 8 MiB: with one thread, the blocks of 3.6 MB, 5 and 6 MiB that come next are the
 * heap's (none fits a hole: each extends the top). With threads the threshold stops at 1 MiB (heap.c,
 * THREADED_MAX) and they are mapped. Exit bits: 1 the main thread's 3.6 MB block mapped, 2 a fork's child's 5 MiB
 * block mapped (both want the heap: the program has one thread), 4 a second program thread's 5 MiB block from the
 * heap, 8 the main thread's 6 MiB after that thread from the heap (both want a mapping: the program has two threads
 * now); 64 and more: the test could not run. */
static int child_rules(void)
{
	int bits = 0;
	if (big_block_mapped(8 << 20) != 1) /* mapped: above the threshold's start of 128 KiB */
		return 64;
	bits |= big_block_mapped(3600000) != 0;
	pid_t pid = fork();
	if (pid == 0)
		_exit(big_block_mapped(5 << 20) != 0);
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 65;
	bits |= WEXITSTATUS(st) ? 2 : 0;
	pthread_t t;
	int in_thread = -1;
	if (pthread_create(&t, NULL, thread_big, &in_thread) != 0 || pthread_join(t, NULL) != 0 || in_thread < 0)
		return 66;
	bits |= in_thread != 1 ? 4 : 0;
	bits |= big_block_mapped(6 << 20) != 1 ? 8 : 0;
	printf("main's 3.6 MB block %s, the fork child's 5 MiB %s, a second thread's 5 MiB %s, main's 6 MiB after it "
	       "%s\n", bits & 1 ? "mapped" : "in the heap", bits & 2 ? "mapped" : "in the heap",
	       bits & 4 ? "in the heap" : "mapped", bits & 8 ? "in the heap" : "mapped");
	return bits;
}

static int child_stats(void)
{
	void *p = malloc(100);
	free(p);
	sleep_ms(450);
	return 0;
}

// the four threads and main of idle_threads_caches_taken_while_owners_wake
enum { KEEP = 3000, ROUNDS = 3 };
static pthread_barrier_t round_barrier;

static size_t obj_len(size_t i, unsigned seed)
{
	return (i * 2654435761u + seed) % 3 ? 16 + (i * 7 + seed) % 1500 : 2100 + (i * 13 + seed) % 14000;
}

/* Makes KEEP objects, sleeps past two passes, checks and frees them: ROUNDS times. 0, or the round that failed + 1. */
static void *keeper(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	char **v = malloc(KEEP * sizeof *v);
	if (!v)
		return (void *)(uintptr_t)100;
	for (int r = 0; r < ROUNDS; r++) {
		for (size_t i = 0; i < KEEP; i++) {
			size_t len = obj_len(i, seed + (unsigned)r);
			v[i] = malloc(len);
			if (!v[i])
				return (void *)(uintptr_t)100;
			memset(v[i], (int)(i + seed + (unsigned)r), len);
		}
		pthread_barrier_wait(&round_barrier);
		sleep_ms(2500); /* idle: no call at all */
		for (size_t i = 0; i < KEEP; i++) {
			size_t len = obj_len(i, seed + (unsigned)r);
			for (size_t k = 0; k < len; k++)
				if (v[i][k] != (char)(i + seed + (unsigned)r))
					return (void *)(uintptr_t)(r + 1);
			free(v[i]);
		}
	}
	free(v);
	return NULL;
}

static int child_steal(int threads)
{
	pthread_t t[4];
	pthread_barrier_init(&round_barrier, NULL, (unsigned)threads + 1);
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, keeper, (void *)(uintptr_t)(i * 17 + 3));
	/* main is a keeper too, whose waits the barrier counts */
	void *mine = keeper((void *)(uintptr_t)101);
	int bad = 0;
	for (int i = 0; i < threads; i++) {
		void *r;
		pthread_join(t[i], &r);
		if (r) {
			printf("thread %d found an object changed in round %d (100: no memory)\n", i, (int)(uintptr_t)r);
			bad = 1;
		}
	}
	if (mine) {
		printf("the main thread found an object changed in round %d (100: no memory)\n", (int)(uintptr_t)mine);
		bad = 1;
	}
	if (os_heap_check() != 0) {
		printf("os_heap_check failed\n");
		bad = 1;
	}
	struct os_stats st;
	os_stats(&st);
	printf("front scavenged %zu\n", (size_t)st.front_scavenged);
	return bad;
}

static volatile int churn_go = 1;
static void *churner(void *arg)
{
	unsigned s = (unsigned)(uintptr_t)arg;
	void *keep[64] = { 0 };
	while (churn_go) {
		s = s * 1103515245u + 12345u;
		size_t k = (s >> 8) % 64;
		free(keep[k]);
		keep[k] = malloc((s >> 16) % 20000 + 1);
	}
	return NULL;
}

static int child_exit(void)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, churner, (void *)(uintptr_t)(i + 1));
	sleep_ms(250);
	return 0; /* exit() while they churn */
}

// ------------------------------------------------------------------------------------------- the parent's side

/* Runs this program as `case` with the given environment additions (NAME=VALUE, or NAME= to remove), its output
 * (stdout and stderr) into out; the exit status, or -signal, or -1000 when it ran past limit_s (killed). */
static int run_case(const char *kase, const char *const env[], char *out, size_t out_len, int limit_s)
{
	int fd[2];
	if (pipe(fd) != 0)
		return -2000;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fd[1], 1);
		dup2(fd[1], 2);
		close(fd[0]);
		unsetenv("OSMEM_BACKGROUND");
		unsetenv("OSMEM_STATS");
		unsetenv("OSMEM_PROFILE");
		unsetenv("OSMEM_IDLE_MS");
		for (int i = 0; env[i]; i++) {
			char name[64];
			const char *eq = strchr(env[i], '=');
			snprintf(name, sizeof name, "%.*s", (int)(eq - env[i]), env[i]);
			if (eq[1])
				setenv(name, eq + 1, 1);
			else
				unsetenv(name);
		}
		execl(self_path, self_path, kase, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	fcntl(fd[0], F_SETFL, O_NONBLOCK);
	size_t got = 0;
	double t0 = now_s();
	int st = 0, done = 0;
	while (!done) {
		ssize_t n = read(fd[0], out + got, out_len - 1 - got);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (waitpid(pid, &st, WNOHANG) == pid)
			done = 1;
		else if (now_s() - t0 > limit_s) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			close(fd[0]);
			out[got] = 0;
			return -1000;
		} else {
			sleep_ms(20);
		}
	}
	ssize_t n;
	while ((n = read(fd[0], out + got, out_len - 1 - got)) > 0)
		got += (size_t)n;
	close(fd[0]);
	out[got] = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

static int failures;

static void result(const char *name, int ok, const char *why, const char *out)
{
	if (ok) {
		printf("PASS background/%s\n", name);
	} else {
		printf("FAIL background/%s: %s\n%s", name, why, out);
		failures++;
	}
}

static char out[65536];

static void case_tasks(const char *name, const char *const env[], int want, const char *say)
{
	int rc = run_case("tasks", env, out, sizeof out, 60);
	int tasks = 0;
	char *line = out;
	/* the count is the last line: a message may come before it */
	for (char *p = out; *p; p++)
		if (*p == '\n' && p[1])
			line = p + 1;
	tasks = atoi(line);
	char why[256];
	snprintf(why, sizeof why, "exit %d, %d threads (%d expected)%s%s", rc, tasks, want, say ? ", and no line saying " : "",
		 say ? say : "");
	result(name, rc == 0 && tasks == want && (!say || strstr(out, say)), why, out);
}

int main(int argc, char **argv)
{
	self_path = "/proc/self/exe";
	if (argc > 1) { /* a child */
		const char *c = argv[1];
		if (!strcmp(c, "idle"))
			return child_idle(20000);
		if (!strcmp(c, "idle_short"))
			return child_idle(3000);
		if (!strcmp(c, "holes"))
			return child_holes(6000);
		if (!strcmp(c, "trace"))
			return child_trace();
		if (!strcmp(c, "tasks"))
			return child_tasks();
		if (!strcmp(c, "signals"))
			return child_signals();
		if (!strcmp(c, "fork"))
			return child_fork();
		if (!strcmp(c, "stats"))
			return child_stats();
		if (!strcmp(c, "rules"))
			return child_rules();
		if (!strcmp(c, "steal"))
			return child_steal(4);
		if (!strcmp(c, "steal_main"))
			return child_steal(0);
		if (!strcmp(c, "exit"))
			return child_exit();
		return 99;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	char why[256];
	int rc;

	rc = run_case("idle", (const char *const[]){ "OSMEM_BACKGROUND=1", NULL }, out, sizeof out, 60);
	snprintf(why, sizeof why, "exit %d (1: in 20 s idle, the resident set did not come back within 4 MiB, or the "
				  "caches kept 512 KiB)", rc);
	result("idle_process_gives_memory_back", rc == 0, why, out);

	rc = run_case("idle_short", (const char *const[]){ NULL }, out, sizeof out, 60);
	snprintf(why, sizeof why, "exit %d (0: the memory came back in 3 s without the thread: the case above proves "
				  "nothing)", rc);
	result("idle_process_keeps_memory_without_thread", rc == 1, why, out);

	rc = run_case("holes", (const char *const[]){ "OSMEM_BACKGROUND=1", "OSMEM_IDLE_MS=300", NULL }, out, sizeof out, 60);
	snprintf(why, sizeof why, "exit %d (1: the holes' pages did not go back within 6 s: a sweep of the holes runs a "
				  "step a wake, not to its end)", rc);
	result("idle_heap_holes_swept_to_the_end", rc == 0, why, out);

	char trace_path[256], trace_env[300];
	snprintf(trace_path, sizeof trace_path, "%s/osmem_background_trace.%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		 (int)getpid());
	snprintf(trace_env, sizeof trace_env, "OSMEM_TRACE=%s", trace_path);
	unlink(trace_path);
	rc = run_case("trace", (const char *const[]){ "OSMEM_BACKGROUND=1", trace_env, NULL }, out, sizeof out, 60);
	/* after the program's last request (a free, which has no result line), the thread's give-backs must come under
	 * an idle line of its own (t=1 is the main thread): without that line they read as the free's. That free's own
	 * pass may give back under it too, which is no fault, so the test asks for madvises under the thread's line */
	FILE *tf = fopen(trace_path, "r");
	char tl[512];
	long line_no = 0, last_request = -1;
	while (tf && fgets(tl, sizeof tl, tf)) {
		line_no++;
		if (tl[0] != ' ' && strncmp(tl, "idle t=", 7) != 0)
			last_request = line_no;
	}
	int after = 0, under_thread = 0, idle_lines = 0, under_idle = 0;
	if (tf)
		rewind(tf);
	line_no = 0;
	while (tf && fgets(tl, sizeof tl, tf)) {
		line_no++;
		if (line_no <= last_request)
			continue;
		if (tl[0] != ' ') {
			under_idle = strncmp(tl, "idle t=", 7) == 0 && atoi(tl + 7) != 1;
			idle_lines += under_idle;
		} else if (!strncmp(tl, "  madvise ", 10)) {
			after++;
			under_thread += under_idle;
		}
	}
	if (tf)
		fclose(tf);
	unlink(trace_path);
	snprintf(why, sizeof why, "exit %d, %d madvise lines after the program's last request, %d of them under the "
				  "thread's own idle line (%d such lines)", rc, after, under_thread, idle_lines);
	result("trace_passes_under_their_own_line", rc == 0 && under_thread > 0, why, out);

	case_tasks("off_by_default", (const char *const[]){ NULL }, 1, NULL);
	case_tasks("off_when_0", (const char *const[]){ "OSMEM_BACKGROUND=0", NULL }, 1, NULL);
	case_tasks("on_when_1", (const char *const[]){ "OSMEM_BACKGROUND=1", NULL }, 2, NULL);
	case_tasks("classic_profile_makes_no_thread",
		   (const char *const[]){ "OSMEM_BACKGROUND=1", "OSMEM_PROFILE=classic", NULL }, 1,
		   "OSMEM_BACKGROUND=1 ignored");
	case_tasks("bad_setting_named", (const char *const[]){ "OSMEM_BACKGROUND=yes", NULL }, 1,
		   "OSMEM_BACKGROUND=yes is not 0 or 1");

	rc = run_case("signals", (const char *const[]){ "OSMEM_BACKGROUND=1", NULL }, out, sizeof out, 60);
	result("thread_named_and_signals_blocked", rc == 0, "see below", out);

	rc = run_case("fork", (const char *const[]){ "OSMEM_BACKGROUND=1", NULL }, out, sizeof out, 60);
	result("fork_child_has_no_thread", rc == 0, "see below", out);

	rc = run_case("rules", (const char *const[]){ "OSMEM_BACKGROUND=1", NULL }, out, sizeof out, 60);
	snprintf(why, sizeof why, "exit %d (1: the main thread's 3.6 MB block was mapped, 2: a fork child's 5 MiB one was; "
				  "the thread counted as the program's: large took 1.08 of its time; 64+: set-up)", rc);
	result("one_thread_rules_kept_beside_the_thread", rc >= 0 && (rc & ~12) == 0, why, out);
	snprintf(why, sizeof why, "exit %d (4: a second program thread's 5 MiB block came from the shared heap, 8: the "
				  "main thread's 6 MiB one after it did; 64+: set-up)", rc);
	result("second_program_thread_ends_one_thread_rules", rc >= 0 && (rc & ~3) == 0, why, out);

	rc = run_case("stats", (const char *const[]){ "OSMEM_BACKGROUND=1", "OSMEM_STATS=1", NULL }, out, sizeof out, 60);
	const char *w = strstr(out, "background wakes");
	long wakes = w ? strtol(w + strlen("background wakes"), NULL, 10) : -1;
	snprintf(why, sizeof why, "exit %d, background wakes %ld (at least 2 expected after 450 ms)", rc, wakes);
	result("stats_count_wakes", rc == 0 && wakes >= 2, why, out);
	rc = run_case("stats", (const char *const[]){ "OSMEM_STATS=1", NULL }, out, sizeof out, 60);
	result("stats_without_thread_say_nothing_of_it", rc == 0 && strstr(out, "osmem: statistics") &&
							  !strstr(out, "background wakes"),
	       "a \"background wakes\" line (or no statistics) without the setting", out);

	rc = run_case("steal", (const char *const[]){ "OSMEM_BACKGROUND=1", NULL }, out, sizeof out, 120);
	snprintf(why, sizeof why, "exit %d", rc);
	result("idle_threads_caches_taken_while_owners_wake", rc == 0, why, out);
	rc = run_case("steal_main", (const char *const[]){ "OSMEM_BACKGROUND=1", NULL }, out, sizeof out, 120);
	snprintf(why, sizeof why, "exit %d", rc);
	result("only_threads_caches_taken_while_it_wakes", rc == 0, why, out);

	int bad = 0;
	for (int i = 0; i < 10 && !bad; i++) {
		rc = run_case("exit", (const char *const[]){ "OSMEM_BACKGROUND=1", "OSMEM_STATS=1", NULL }, out, sizeof out,
			      60);
		if (rc != 0 || !strstr(out, "background wakes")) {
			snprintf(why, sizeof why, "run %d: exit %d (-1000: still running after 60 s), or no statistics", i, rc);
			bad = 1;
		}
	}
	result("exit_while_threads_churn", !bad, why, out);
	return failures != 0;
}
