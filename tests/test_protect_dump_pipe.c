/* test_protect_dump_pipe: os_heap_dump to a reader that does not read stalls only the dumping thread.
 *
 * The dump used to be written with the heap lock held: a full pipe (a reader that is slow, stopped or gone
 * away) then stopped every thread's malloc. Now the text is formatted under the lock into a buffer of its own
 * and written after the lock is released.
 *
 * BLOCKS blocks are allocated so the dump is far larger than the pipe (shrunk to one page). A thread dumps into
 * the pipe; the main thread waits until the pipe is full (FIONREAD: the dumper is now blocked in write), then it
 * and two other threads allocate and free ALLOCS times each: they must finish. Then the pipe is read to the end
 * and every line must be a whole block line, one per block. alarm() turns a hang into a FAIL line: a watchdog of
 * progress, which fails when no allocation was made (or, later, no byte of the dump read) for ALARM seconds. Until
 * session 52 the 300,000 allocations had ALARM seconds in all, which ThreadSanitizer's on a loaded 2-core machine
 * overran: a FAIL for slowness, not the hang it names. Uses the os_* API only (also built under ThreadSanitizer).
 * Prints `PASS protect_dump/...` or `FAIL protect_dump/...: why`. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h" /* tu_put, tu_put_num: async-signal-safe formatting */

#define BLOCKS 20000
#define ALLOCS 100000
#define ALARM  60 /* seconds without progress: an allocation takes microseconds, even under TSan on a busy host */

static int pipefd[2];
static int dump_rc = 1;
/* What the watchdog watches: the phase (0: waiting for the pipe to fill, 1: allocating, 2: reading the dump) and
 * its count of progress (allocations made, bytes read). */
static atomic_int phase;
static atomic_long progress;

static void *dumper(void *arg)
{
	(void)arg;
	dump_rc = os_heap_dump(pipefd[1], OS_DUMP_TEXT);
	close(pipefd[1]);
	return NULL;
}

static void *allocator(void *arg)
{
	unsigned s = (unsigned)(size_t)arg + 3;
	void *slot[32] = { 0 };
	for (int n = 0; n < ALLOCS; n++) {
		s = s * 1103515245u + 12345u;
		unsigned i = (s >> 8) % 32;
		os_free(slot[i]);
		slot[i] = os_malloc((s >> 12) % 1000 + 1);
		atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
	}
	for (int i = 0; i < 32; i++)
		os_free(slot[i]);
	return NULL;
}

/* Async-signal-safe (the lock-free atomics, write and alarm only): progress since the last alarm arms the next
 * one; none fails. A dump that kept the heap lock while blocked on the pipe stops every allocation for good. */
static void on_alarm(int sig)
{
	(void)sig;
	static int seen_phase; /* phase 0 with nothing counted: the first alarm fails when the pipe never filled */
	static long seen;
	int ph = atomic_load(&phase);
	long now = atomic_load(&progress);
	if (ph != seen_phase || now != seen) {
		seen_phase = ph;
		seen = now;
		alarm(ALARM);
		return;
	}
	static const char *const what[][2] = {
		{ "FAIL protect_dump/others_progress: the pipe was not full after ", " s (os_heap_dump wrote too little)" },
		{ "FAIL protect_dump/others_progress: allocations hung while os_heap_dump was blocked on a full pipe (the "
		  "dump held the heap lock): none for ", " s, after " },
		{ "FAIL protect_dump/whole_dump: reading the dump hung: no byte read for ", " s, after " },
	};
	char msg[300], *p = tu_put(msg, what[ph][0]);
	p = tu_put(tu_put_num(p, (unsigned long)ALARM), what[ph][1]);
	if (ph == 1)
		p = tu_put(tu_put_num(tu_put(tu_put_num(p, (unsigned long)now), " of "), 3UL * ALLOCS), " allocations");
	if (ph == 2)
		p = tu_put(tu_put_num(p, (unsigned long)now), " bytes");
	*p++ = '\n';
	ssize_t n = write(1, msg, (size_t)(p - msg));
	(void)n;
	_exit(1);
}

int main(void)
{
	static void *held[BLOCKS];
	for (int i = 0; i < BLOCKS; i++)
		held[i] = os_malloc(16 + (size_t)(i % 7) * 8);
	if (pipe(pipefd) != 0) {
		printf("FAIL protect_dump/setup: pipe\n");
		return 1;
	}
	int cap = fcntl(pipefd[1], F_SETPIPE_SZ, 4096);
	if (cap <= 0)
		cap = fcntl(pipefd[1], F_GETPIPE_SZ);
	signal(SIGALRM, on_alarm);
	alarm(ALARM);
	pthread_t d, a[2];
	pthread_create(&d, NULL, dumper, NULL);
	for (int queued = 0; queued < cap;) { /* the pipe is full: the dumper is blocked in write */
		if (ioctl(pipefd[0], FIONREAD, &queued) != 0) {
			printf("FAIL protect_dump/setup: FIONREAD failed, so the dumper was never seen blocked on the pipe\n");
			return 1;
		}
		sched_yield();
	}
	atomic_store(&phase, 1);
	for (size_t i = 0; i < 2; i++)
		pthread_create(&a[i], NULL, allocator, (void *)i);
	allocator((void *)9);
	for (int i = 0; i < 2; i++)
		pthread_join(a[i], NULL);
	alarm(0);
	printf("PASS protect_dump/others_progress (3 threads made %d allocations while the dump waited on a "
	       "full pipe)\n", 3 * ALLOCS);

	/* read it all: whole lines, one per block (the blocks held throughout at least) */
	size_t cap_text = (size_t)BLOCKS * 64 + (1 << 20), len = 0;
	char *text = os_malloc(cap_text);
	ssize_t r;
	atomic_store(&progress, 0);
	atomic_store(&phase, 2);
	alarm(ALARM);
	while (len < cap_text - 1 && (r = read(pipefd[0], text + len, cap_text - 1 - len)) > 0) {
		len += (size_t)r;
		atomic_fetch_add_explicit(&progress, r, memory_order_relaxed);
	}
	pthread_join(d, NULL);
	alarm(0);
	text[len] = 0;
	int lines = 0, bad = 0;
	for (char *l = text; *l;) {
		char *nl = strchr(l, '\n');
		if (!nl) {
			bad++;
			break;
		}
		*nl = 0;
		unsigned long long size;
		char addr[32], status[16], where[16];
		if (sscanf(l, "%31s %llu %15s %15s", addr, &size, status, where) != 4 ||
		    (strncmp(addr, "H+0x", 4) != 0 && strncmp(addr, "0x", 2) != 0))
			bad++;
		lines++;
		l = nl + 1;
	}
	int ok = dump_rc == 0 && !bad && lines >= BLOCKS;
	if (ok)
		printf("PASS protect_dump/whole_dump (%d block lines)\n", lines);
	else
		printf("FAIL protect_dump/whole_dump: os_heap_dump returned %d; %d lines, %d malformed (want at least "
		       "%d)\n", dump_rc, lines, bad, BLOCKS);
	os_free(text);
	for (int i = 0; i < BLOCKS; i++)
		os_free(held[i]);
	return !ok;
}
