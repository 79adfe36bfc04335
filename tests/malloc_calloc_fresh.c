/* malloc_calloc_fresh: calloc's fresh pages (src/heap.c, calloc_populate). A fresh mapping reads as zeros from the
 * kernel's zero page; a program that reads its zeros before it writes them takes two faults a page, and in a process
 * with threads the second one interrupts every other CPU to flush its TLB (this machine: two thirds of the time of
 * four threads each checking and writing callocs of 4-64 MiB). So once calloc has seen the program touch most of a
 * fresh block it left lazy (a sample, measured when it is 1 ms old or freed), it populates the next ones at once;
 * a program that uses its callocs sparsely keeps them lazy. Each case runs in a child of its own, with a second
 * thread alive, so that the samples and verdicts of one do not reach another. Prints `PASS calloc_fresh/<case>` or
 * `FAIL calloc_fresh/<case>: why`. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

#define MiB ((size_t)1 << 20)
#define PAGE 4096

static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void (*volatile v_free)(void *) = free;

static long minor_faults(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Every `stride`-th page of [p, p + n): read (it must be zero), then written. Returns the first page that was not
 * zero, or SIZE_MAX. */
static size_t read_then_write(char *p, size_t n, size_t stride)
{
	size_t bad = SIZE_MAX;
	for (size_t i = 0; i < n; i += PAGE * stride) {
		if (p[i] != 0 && bad == SIZE_MAX)
			bad = i / PAGE;
		p[i] = 1;
	}
	return bad;
}

/* A second thread, alive through the case: the process is a threaded one, as where the faults cost most. */
static pthread_barrier_t gate;
static void *idler(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&gate);
	return NULL;
}

static bool threaded_case(bool (*fn)(char *why, size_t len), const char *name)
{
	char why[400] = "";
	pthread_t t;
	pthread_barrier_init(&gate, NULL, 2);
	pthread_create(&t, NULL, idler, NULL);
	bool ok = fn(why, sizeof why);
	pthread_barrier_wait(&gate);
	pthread_join(t, NULL);
	if (ok && os_heap_check() == 0) {
		printf("PASS calloc_fresh/%s\n", name);
		return true;
	}
	printf("FAIL calloc_fresh/%s: %s%s\n", name, ok ? "os_heap_check failed after: " : "", why);
	return false;
}

/* A calloc of n bytes read then written whole, with the page faults that took and the first page that was not
 * zero (SIZE_MAX: none). */
struct use { char *p; long faults; size_t bad; };
static struct use calloc_dense(size_t n)
{
	struct use u = { v_calloc(1, n), 0, 0 };
	long f0 = minor_faults();
	u.bad = u.p ? read_then_write(u.p, n, 1) : 0;
	u.faults = minor_faults() - f0;
	return u;
}

/* A program that reads and writes all of each calloc: after the first (the sample), the next fresh block is
 * populated, and reading then writing its 2,048 pages takes almost no fault. Before: 2 faults a page, 4,096. */
static bool dense(char *why, size_t len)
{
	struct use a = calloc_dense(8 * MiB);
	sleep_ms(3); /* the sample is old enough to be measured at the next fresh calloc */
	struct use b = calloc_dense(8 * MiB);
	snprintf(why, len, "two callocs of 8 MiB, each read then written whole, the second 3 ms after the first: the "
		 "second took %ld page faults (want fewer than 256 of its 2,048 pages: populated at once), non-zero page "
		 "%zd in the first, %zd in the second (want none: -1)", b.faults, a.bad == SIZE_MAX ? -1 : (ssize_t)a.bad,
		 b.bad == SIZE_MAX ? -1 : (ssize_t)b.bad);
	bool ok = a.p && b.p && b.faults < 256 && a.bad == SIZE_MAX && b.bad == SIZE_MAX;
	v_free(a.p);
	v_free(b.p);
	return ok;
}

/* A program that touches one page in 16 of each calloc: its next callocs stay lazy, and asking for 32 MiB more
 * makes almost none of it resident (populated, all 32 MiB would be). */
static bool sparse(char *why, size_t len)
{
	char *a = v_calloc(1, 32 * MiB);
	size_t bad = a ? read_then_write(a, 32 * MiB, 16) : 0;
	sleep_ms(3);
	long r0 = tu_rss_kib();
	char *b = v_calloc(1, 32 * MiB);
	long grown = tu_rss_kib() - r0;
	snprintf(why, len, "a calloc of 32 MiB touched one page in 16, then 3 ms later another of 32 MiB: the resident "
		 "set grew by %ld KiB at the second (want less than 1,024: left lazy), non-zero page %zd (want none: -1)",
		 grown, bad == SIZE_MAX ? -1 : (ssize_t)bad);
	bool ok = a && b && grown < 1024 && bad == SIZE_MAX;
	v_free(a);
	v_free(b);
	return ok;
}

/* A program dense at first that turns sparse: one fresh block in eight is still a sample, so the verdict turns, and
 * the callocs after it stay lazy. The blocks are held, not freed: a freed mapped block would raise the dynamic mmap
 * threshold, and the next callocs would come from the heap, zeroed by writing. */
static bool dense_then_sparse(char *why, size_t len)
{
	char *held[12] = { 0 };
	for (int i = 0; i < 12; i++) { /* two dense, then ten that touch one page in 64 */
		held[i] = v_calloc(1, 8 * MiB);
		if (held[i])
			read_then_write(held[i], 8 * MiB, i < 2 ? 1 : 64);
		sleep_ms(2); /* each sample is measured at the next calloc */
	}
	long r0 = tu_rss_kib();
	char *b = v_calloc(1, 32 * MiB);
	long grown = tu_rss_kib() - r0;
	snprintf(why, len, "two callocs of 8 MiB used whole, then ten touched one page in 64, then one of 32 MiB: the "
		 "resident set grew by %ld KiB at it (want less than 1,024: a sample among the ten said sparse)", grown);
	v_free(b);
	for (int i = 0; i < 12; i++)
		v_free(held[i]);
	return b && grown < 1024;
}

/* While the verdict is dense, the one fresh block in eight that is the next sample keeps only its last sixteenth
 * lazy, the rest populated: ten callocs of 8 MiB after the first, each read then written whole, take fewer than
 * 1,024 page faults in all. Before session 47 the sample was the whole block, 4,096 faults (two a page) each
 * eighth block (bench/apis.py, calloc of 4-64 MiB in 4 threads: a third of its bytes were such samples). */
static bool dense_window(char *why, size_t len)
{
	struct use first = calloc_dense(8 * MiB);
	long faults = 0;
	size_t bad = first.bad;
	char *held[10] = { 0 };
	for (int i = 0; i < 10; i++) { /* held: a freed mapped block would raise the threshold (dense_then_sparse) */
		sleep_ms(2);
		struct use u = calloc_dense(8 * MiB);
		held[i] = u.p;
		faults += u.faults;
		bad = bad != SIZE_MAX ? bad : u.bad;
	}
	snprintf(why, len, "ten callocs of 8 MiB read then written whole, after a first: %ld page faults in all (want "
		 "fewer than 1,024: the sample among them is its block's last sixteenth), non-zero page %zd (want none: "
		 "-1)", faults, bad == SIZE_MAX ? -1 : (ssize_t)bad);
	bool ok = first.p && held[9] && faults < 1024 && bad == SIZE_MAX;
	v_free(first.p);
	for (int i = 0; i < 10; i++)
		v_free(held[i]);
	return ok;
}

/* Pages [from, to) of p: read (zero), then written. */
static size_t fill_range(char *p, size_t from, size_t to)
{
	size_t bad = read_then_write(p + from * PAGE, (to - from) * PAGE, 1);
	return bad == SIZE_MAX ? SIZE_MAX : from + bad;
}

/* A program that fills its callocs from the front, slowly: a sample looked at while its first pages only are
 * touched is looked at again at the next fresh calloc, and its front has grown: dense, and the next fresh block is
 * populated. Before, a 50 MB block read then written page by page was at its 73rd page when measured 1 ms after its
 * calloc (a host that charged 10 us a fault) and read as sparse, and the blocks after it stayed lazy. */
static bool front_filling(char *why, size_t len)
{
	char *a = v_calloc(1, 32 * MiB), *b = NULL, *c = NULL;
	size_t bad = a ? fill_range(a, 0, 1024) : 0;
	sleep_ms(2);
	b = v_calloc(1, 32 * MiB); /* looks at a: its front, 1,024 of 8,192 pages */
	if (a && b) {
		bad = bad != SIZE_MAX ? bad : fill_range(a, 1024, 2048);
		bad = bad != SIZE_MAX ? bad : fill_range(b, 0, 1024);
	}
	sleep_ms(2);
	struct use u = calloc_dense(8 * MiB); /* looks at a again: grown to 2,048 */
	c = u.p;
	snprintf(why, len, "a calloc of 32 MiB filled from its front, 1,024 pages, then 2,048 by the next fresh calloc: "
		 "the calloc of 8 MiB after that took %ld page faults read then written whole (want fewer than 256: "
		 "populated), non-zero page %zd (want none: -1)", u.faults, bad == SIZE_MAX ? -1 : (ssize_t)bad);
	bool ok = a && b && c && u.faults < 256 && bad == SIZE_MAX && u.bad == SIZE_MAX;
	v_free(a);
	v_free(b);
	v_free(c);
	return ok;
}

/* The same program that stops at its front (a buffer sized for the most it could hold): the second look finds the
 * front as it was, sparse, and a calloc of 32 MiB after it stays lazy. */
static bool front_only(char *why, size_t len)
{
	char *a = v_calloc(1, 32 * MiB);
	size_t bad = a ? fill_range(a, 0, 1024) : 0;
	sleep_ms(2);
	char *b = v_calloc(1, 32 * MiB); /* looks at a: its front, 1,024 of 8,192 pages */
	if (b)
		bad = bad != SIZE_MAX ? bad : fill_range(b, 0, 1024);
	sleep_ms(2);
	long r0 = tu_rss_kib();
	char *c = v_calloc(1, 32 * MiB); /* looks at a again: still 1,024 */
	long grown = tu_rss_kib() - r0;
	snprintf(why, len, "two callocs of 32 MiB of which only the first 1,024 pages are used, then one more: the "
		 "resident set grew by %ld KiB at it (want less than 1,024: left lazy), non-zero page %zd (want none: "
		 "-1)", grown, bad == SIZE_MAX ? -1 : (ssize_t)bad);
	bool ok = a && b && c && grown < 1024 && bad == SIZE_MAX;
	v_free(a);
	v_free(b);
	v_free(c);
	return ok;
}

/* The classic profile populates nothing (docs/CLASSIC.md: its system calls are exact): the dense program's second
 * calloc makes no madvise call. */
static bool classic_dense(char *why, size_t len)
{
	struct os_stats s0, s1;
	char *a = v_calloc(1, 8 * MiB);
	if (a)
		read_then_write(a, 8 * MiB, 1);
	sleep_ms(3);
	os_stats(&s0);
	char *b = v_calloc(1, 8 * MiB);
	os_stats(&s1);
	size_t bad = b ? read_then_write(b, 8 * MiB, 1) : 0;
	snprintf(why, len, "classic profile, two dense callocs of 8 MiB: %zu madvise calls at the second (want 0), "
		 "non-zero page %zd (want none: -1)", s1.madvise_calls - s0.madvise_calls,
		 bad == SIZE_MAX ? -1 : (ssize_t)bad);
	bool ok = a && b && s1.madvise_calls == s0.madvise_calls && bad == SIZE_MAX;
	v_free(a);
	v_free(b);
	return ok;
}

static int case_dense(void) { return !threaded_case(dense, "dense_use_populated_after_a_sample"); }
static int case_sparse(void) { return !threaded_case(sparse, "sparse_use_stays_lazy"); }
static int case_turns(void) { return !threaded_case(dense_then_sparse, "dense_then_sparse_turns_lazy"); }
static int case_window(void) { return !threaded_case(dense_window, "dense_sample_is_a_window"); }
static int case_filling(void) { return !threaded_case(front_filling, "front_filling_reads_dense"); }
static int case_front_only(void) { return !threaded_case(front_only, "front_only_use_reads_sparse"); }
static int case_classic(void) { return !threaded_case(classic_dense, "classic_populates_nothing"); }

int main(void)
{
	const char *profile = getenv("OSMEM_PROFILE");
	int failures = 0;
	if (profile && strcmp(profile, "classic") == 0) { /* the second run, after the exec below */
		failures += tu_in_child("calloc_fresh", "classic_populates_nothing", case_classic) != 0;
		return failures || getenv("CALLOC_FRESH_FAILED") ? 1 : 0;
	}
	failures += tu_in_child("calloc_fresh", "dense_use_populated_after_a_sample", case_dense) != 0;
	failures += tu_in_child("calloc_fresh", "sparse_use_stays_lazy", case_sparse) != 0;
	failures += tu_in_child("calloc_fresh", "dense_then_sparse_turns_lazy", case_turns) != 0;
	failures += tu_in_child("calloc_fresh", "dense_sample_is_a_window", case_window) != 0;
	failures += tu_in_child("calloc_fresh", "front_filling_reads_dense", case_filling) != 0;
	failures += tu_in_child("calloc_fresh", "front_only_use_reads_sparse", case_front_only) != 0;
	fflush(stdout);
	if (failures)
		setenv("CALLOC_FRESH_FAILED", "1", 1);
	setenv("OSMEM_PROFILE", "classic", 1);
	execl("/proc/self/exe", "malloc_calloc_fresh", (char *)NULL);
	printf("FAIL calloc_fresh/classic_populates_nothing: exec failed\n");
	return 1;
}
