/* malloc_hugepage: the default profile asks for transparent huge pages for its heap once the program is seen to
 * fill it (src/huge.c), because this machine charges about 11 us per 4 KiB page fault and a 2 MiB page is one
 * fault. What must hold, each guarded here: a heap the program writes whole gets huge pages, and so do the front's
 * segments from the eighth on when they are full; a heap it touches sparsely keeps 4 KiB pages (a huge page is resident whole, so its
 * RSS would grow); so does a small heap; OSMEM_HUGEPAGE=0 is obeyed; the classic profile never advises anything.
 * Since session 24 the default also measures what a 4 KiB fault costs and advises nothing where it is under 4 us:
 * the density cases run with OSMEM_HUGEPAGE=dense (the tests without the probe), and
 * auto_advises_only_where_faults_are_dear checks the probe's verdict against what was advised.
 * Where the kernel's mode is not "madvise" (never, or always: nothing to ask), no case may advise either.
 *
 * The decision is made once per process, so main runs each case in a process of its own (itself, re-executed
 * with the case's name and environment).
 * Prints `PASS hugepage/<case>` or `FAIL hugepage/<case>: why`. */
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

#define MiB ((size_t)1 << 20)
#define SEG ((size_t)4 << 20) /* a front segment */
#define BLOCK ((size_t)64 << 10) /* heap blocks: above the medium caches, below the mmap threshold */

static void *(*volatile v_malloc)(size_t) = malloc;

/* The kernel's transparent huge page mode: 1 when it honours madvise(MADV_HUGEPAGE) and osmem should ask. */
static int kernel_madvise_mode(void)
{
	char buf[128];
	tu_read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf);
	return strstr(buf, "[madvise]") != NULL;
}

/* What /proc/self/smaps says about huge pages: AnonHugePages of the mappings named [heap] (the break's) and of all
 * the others, in KiB; and the mappings other than [heap] that carry madvise(MADV_HUGEPAGE) (VmFlags "hg"), with
 * how many of them start elsewhere than 2 MiB into a 4 MiB-aligned segment (the front advises a segment's upper
 * half only). */
struct smaps_view { size_t heap_kib, other_kib; int advised, misplaced; };

static struct smaps_view smaps_view(void)
{
	static char buf[4 << 20];
	tu_read_file("/proc/self/smaps", buf, sizeof buf);
	struct smaps_view v = { 0, 0, 0, 0 };
	unsigned long lo = 0, a, b;
	int in_heap = 0;
	for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2) { /* a header (sscanf may write a of "AnonHugePages:" too) */
			lo = a;
			in_heap = len >= 6 && memcmp(line + len - 6, "[heap]", 6) == 0;
		} else if (strncmp(line, "AnonHugePages:", 14) == 0) {
			*(in_heap ? &v.heap_kib : &v.other_kib) += strtoul(line + 14, NULL, 10);
		} else if (!in_heap && strncmp(line, "VmFlags:", 8) == 0) {
			char flags[256];
			size_t fl = len < sizeof flags - 1 ? len : sizeof flags - 1;
			memcpy(flags, line, fl);
			flags[fl] = 0;
			if (strstr(flags, " hg")) {
				v.advised++;
				v.misplaced += lo % (4 * MiB) != 2 * MiB;
			}
		}
	}
	return v;
}

static size_t heap_huge_kib(void) { return smaps_view().heap_kib; }
static size_t other_huge_kib(void) { return smaps_view().other_kib; }

/* mib MiB of heap blocks; `stride` bytes apart the program writes one byte (1: every byte). */
static void fill(size_t mib, size_t stride)
{
	for (size_t done = 0; done < mib * MiB; done += BLOCK) {
		char *p = v_malloc(BLOCK);
		if (!p) {
			printf("FAIL hugepage/setup: malloc(%zu) returned NULL\n", BLOCK);
			exit(1);
		}
		if (stride == 1)
			memset(p, 0x5a, BLOCK);
		else
			for (size_t i = 0; i < BLOCK; i += stride)
				p[i] = 1;
	}
}

/* mib MiB of small objects (the front's slots), each written whole. */
static void fill_small(size_t mib)
{
	enum { SMALL = 240 };
	for (size_t done = 0; done < mib * MiB; done += SMALL) {
		char *p = v_malloc(SMALL);
		if (!p) {
			printf("FAIL hugepage/setup: malloc(%d) returned NULL\n", SMALL);
			exit(1);
		}
		memset(p, 0x5a, SMALL);
	}
}

/* mib MiB of heap blocks written whole, kept in blk[] (freed by the caller); returns how many. */
static char *blk[4096];
static int fill_kept(size_t mib)
{
	int n = 0;
	for (size_t done = 0; done < mib * MiB && n < 4096; done += BLOCK, n++) {
		blk[n] = v_malloc(BLOCK);
		if (!blk[n]) {
			printf("FAIL hugepage/setup: malloc(%zu) returned NULL\n", BLOCK);
			exit(1);
		}
		memset(blk[n], 0x5a, BLOCK);
	}
	return n;
}

static struct os_stats stats_now(void)
{
	struct os_stats st = { 0 };
	os_stats(&st);
	return st;
}

static size_t vm_size(void)
{
	char buf[8192];
	tu_read_file("/proc/self/status", buf, sizeof buf);
	const char *v = strstr(buf, "VmSize:");
	return v ? strtoul(v + 7, NULL, 10) << 10 : 0;
}

/* Small objects written whole until the front holds `bytes` of segments (or a request fails: returns false). */
static bool fill_segments(size_t bytes)
{
	while (stats_now().front_bytes < bytes)
		for (int i = 0; i < 1000; i++) {
			char *p = v_malloc(1024);
			if (!p)
				return false;
			memset(p, 1, 1024);
		}
	return true;
}

static int report(const char *name, int ok, const char *want)
{
	struct os_stats st = { 0 };
	os_stats(&st);
	size_t kib = heap_huge_kib();
	if (ok && os_heap_check() == 0) {
		printf("PASS hugepage/%s\n", name);
		return 0;
	}
	printf("FAIL hugepage/%s: want %s; got %zu bytes advised, %zu KiB of the heap and %zu KiB elsewhere in huge "
	       "pages, %zu madvise calls, heap %zu MiB, front %zu MiB, kernel mode %s%s\n",
	       name, want, st.huge_bytes, kib, other_huge_kib(), st.madvise_calls, st.heap_size >> 20, st.front_bytes >> 20,
	       kernel_madvise_mode() ? "madvise" : "not madvise", ok ? " (os_heap_check failed)" : "");
	return 1;
}

static int run_case(const char *name)
{
	int km = kernel_madvise_mode();
	struct os_stats st = { 0 };
	if (strcmp(name, "dense_heap_faults_in_huge_pages") == 0) {
		/* 48 MiB written whole: measured dense at 32 MiB, advised from there; 16 MiB more lands in huge pages */
		fill(48, 1);
		fill(16, 1);
		os_stats(&st);
		int ok = km ? st.huge_bytes >= 8 * MiB && heap_huge_kib() >= 2048
			    : st.huge_bytes == 0;
		return report(name, ok, km ? "at least 8 MiB advised, huge pages in the heap"
					   : "nothing advised (the kernel would not honour it)");
	}
	if (strcmp(name, "kernel_mode_read_again_after_emfile") == 0) {
		/* huge.c reads the kernel's mode (a file in /sys) when the heap first reaches 32 MiB. Hazard (session
		 * 61's review): an open refused for want of a descriptor (RLIMIT_NOFILE) was taken for "never", for good.
		 * Now it is read again a second later: 30 MiB, the limit at 3 while the heap passes 32 MiB, lifted, 1.1 s,
		 * then 16 MiB more must be advised where the kernel honours it */
		struct rlimit saved, low;
		getrlimit(RLIMIT_NOFILE, &saved);
		fill(30, 1);
		low = saved;
		low.rlim_cur = 3;
		if (setrlimit(RLIMIT_NOFILE, &low) != 0)
			return report(name, 0, "setrlimit(RLIMIT_NOFILE, 3) to work (test setup)");
		fill(6, 1);
		setrlimit(RLIMIT_NOFILE, &saved);
		usleep(1100 * 1000);
		fill(16, 1);
		os_stats(&st);
		return report(name, km ? st.huge_bytes >= 8 * MiB : st.huge_bytes == 0,
			      km ? "at least 8 MiB advised once descriptors came back"
				 : "nothing advised (the kernel would not honour it)");
	}
	if (strcmp(name, "advised_heap_not_populated_per_page") == 0) {
		/* heap.c faults a fresh header page in with MADV_POPULATE_WRITE; where the heap is advised, one fault
		 * brings 2 MiB and a populate per 4 KiB was a system call each that made the huge fault dearer (frag:
		 * 0.69 s without them, 1.71 s with; session 24). 16 MiB of 64 KiB blocks past the advised 48: none. */
		fill(48, 1);
		struct os_stats s0 = { 0 };
		os_stats(&s0);
		fill(16, 1);
		os_stats(&st);
		size_t pops = st.populate_calls - s0.populate_calls;
		if (km ? pops != 0 : pops == 0)
			printf("  (%zu populate calls for 256 blocks past the first 48 MiB)\n", pops);
		return report(name, km ? st.huge_bytes >= 8 * MiB && pops == 0 : st.huge_bytes == 0 && pops > 0,
			      km ? "the heap advised and no populate call in it"
				 : "nothing advised, and the fresh header pages populated");
	}
	if (strcmp(name, "regrowth_after_trim_not_populated") == 0) {
		/* huge.c kept the advised part of the heap as a floor (from its first advised growth up). A heap trimmed
		 * below that floor grows again advised, yet heap.c took the regrowth for small pages and populated each
		 * fresh header page in it (session 64's review: 246 populate calls in 24 MiB of regrowth). Faults taken
		 * as dear (OSMEM_FAULT_NS=20000): 96 MiB dense, all freed and trimmed, 24 MiB again */
		int n = fill_kept(96);
		for (int i = n - 1; i >= 0; i--)
			free(blk[i]);
		malloc_trim(0);
		struct os_stats s0 = stats_now();
		fill_kept(24);
		st = stats_now();
		size_t pops = st.populate_calls - s0.populate_calls, adv = st.huge_bytes - s0.huge_bytes;
		if (km && (pops || !adv))
			printf("  (regrowth of 24 MiB: %zu bytes advised, %zu populate calls; heap trimmed to %zu MiB)\n",
			       adv, pops, s0.heap_size >> 20);
		return report(name, km ? adv >= 8 * MiB && pops == 0 : st.huge_bytes == 0,
			      km ? "the regrowth advised, and no populate call in it"
				 : "nothing advised (the kernel would not honour it)");
	}
	if (strcmp(name, "refused_probe_asked_again") == 0) {
		/* The fault probe maps 16 pages of its own. Refused (a tight RLIMIT_AS) when the front's eighth segment
		 * is found dense, it answers "dear" for the moment; front.c kept that answer for good and advised every
		 * later segment, on a host whose faults are cheap (session 64's review: 18 MiB advised, fault_probe_ns
		 * 1 to the end). Now the probe runs again at a later segment, a second on, and its verdict decides.
		 * A child per limit tried: the limit must let the eighth segment be mapped and refuse the probe. */
		if (!fill_segments(7 * SEG))
			return report(name, 0, "7 segments of small objects (setup)");
		for (size_t d = 0; d < 512 * 1024; d += 4096) {
			fflush(stdout);
			pid_t pid = fork();
			if (pid == 0) {
				struct rlimit rl = { vm_size() + SEG + d, RLIM_INFINITY };
				if (setrlimit(RLIMIT_AS, &rl) != 0)
					_exit(2);
				for (int i = 0; i < 200000 && stats_now().front_bytes < 8 * SEG; i++) {
					char *p = v_malloc(1024);
					if (!p)
						break;
					memset(p, 1, 1024);
				}
				if (stats_now().front_bytes < 8 * SEG || stats_now().fault_probe_ns != 1)
					_exit(3); /* not this limit: the segment refused, or the probe not refused */
				rl.rlim_cur = RLIM_INFINITY;
				setrlimit(RLIMIT_AS, &rl);
				usleep(1200 * 1000); /* the probe is asked again a second after a refusal */
				if (!fill_segments(16 * SEG))
					_exit(4);
				st = stats_now();
				size_t ns = st.fault_probe_ns;
				int dear = ns >= 4000;
				printf("  (probe refused at the eighth segment; at the sixteenth it measured %zu ns: %s)\n", ns,
				       ns == 1 ? "never measured again" : dear ? "dear" : "cheap");
				int r = report(name, ns != 1 && (dear ? st.huge_bytes > 0 : st.huge_bytes == 0),
					       "the probe run again, and segments advised if and only if it found faults dear");
				fflush(stdout);
				_exit(r);
			}
			int status = 0;
			if (pid < 0 || waitpid(pid, &status, 0) != pid)
				return report(name, 0, "a child to try a limit in (setup)");
			if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 1))
				return WEXITSTATUS(status);
			if (!WIFEXITED(status) || WEXITSTATUS(status) == 4)
				return report(name, 0, "16 segments once the limit was lifted (the child died or malloc "
						       "failed)");
		}
		/* no limit refused the probe: where the kernel does not take the advice, it is never run for segments */
		st = stats_now();
		return report(name, !km && st.huge_bytes == 0,
			      km ? "a limit that refuses the probe and not the eighth segment (setup)"
				 : "nothing advised (the kernel would not honour it)");
	}
	if (strcmp(name, "auto_advises_only_where_faults_are_dear") == 0) {
		/* the default: the density tests, then huge.c's probe of what a 4 KiB fault costs; at 4 us or more the
		 * dense heap and segments are advised, under it nothing (session 24's host, 1.5 us: frag 2.85 s with
		 * huge pages, 1.20 s without, interleaved with the other allocators) */
		fill(48, 1);
		fill(16, 1);
		fill_small(48);
		os_stats(&st);
		size_t ns = st.fault_probe_ns;
		int dear = ns >= 4000 || ns == 1;
		printf("  (a 4 KiB fault measured %zu ns: %s)\n", ns, dear ? "dear" : "cheap");
		int ok = !km ? st.huge_bytes == 0 : ns == 0 ? 0 : dear ? st.huge_bytes >= 8 * MiB : st.huge_bytes == 0;
		return report(name, ok, !km ? "nothing advised (kernel mode)"
				: "the fault measured, and the heap advised if and only if it cost 4 us or more");
	}
	if (strcmp(name, "sparse_heap_keeps_small_pages") == 0) {
		/* one byte per 64 KiB block: 1 page in 17 resident; huge pages would make all 17 resident */
		fill(48, BLOCK);
		fill(16, BLOCK);
		os_stats(&st);
		return report(name, st.huge_bytes == 0 && heap_huge_kib() == 0, "nothing advised, no huge page in the heap");
	}
	if (strcmp(name, "small_heap_keeps_small_pages") == 0) {
		/* 24 MiB written whole: below the size at which the heap is measured, its RSS stays exact */
		fill(24, 1);
		os_stats(&st);
		return report(name, st.huge_bytes == 0 && heap_huge_kib() == 0, "nothing advised below 32 MiB of heap");
	}
	if (strcmp(name, "dense_small_objects_in_huge_pages") == 0) {
		/* 48 MiB of small objects written whole: 12 segments; from the eighth on, the front's are advised */
		fill_small(48);
		os_stats(&st);
		int ok = km ? st.huge_bytes >= 4 * MiB && other_huge_kib() >= 2048 : st.huge_bytes == 0;
		return report(name, ok, km ? "segments advised, huge pages outside the heap" : "nothing advised (kernel mode)");
	}
	if (strcmp(name, "segment_first_half_keeps_small_pages") == 0) {
		/* a segment's first 2 MiB holds its descriptors, written at its birth: advised, it would be resident
		 * whole before the program used a page of it (sqlite3: +2.1 MiB of peak RSS) */
		fill_small(48);
		os_stats(&st);
		struct smaps_view v = smaps_view();
		int ok = km ? v.advised > 0 && v.misplaced == 0 : v.advised == 0;
		if (!ok)
			printf("  (%d advised mappings outside the heap, %d of them not starting 2 MiB into a segment)\n",
			       v.advised, v.misplaced);
		return report(name, ok, km ? "only the upper 2 MiB of each advised segment" : "nothing advised (kernel mode)");
	}
	if (strcmp(name, "few_segments_keep_small_pages") == 0) {
		/* 20 MiB of small objects: 5 segments, below the eighth */
		fill_small(20);
		os_stats(&st);
		return report(name, st.huge_bytes == 0 && other_huge_kib() == 0 && heap_huge_kib() == 0,
			      "nothing advised with 5 segments");
	}
	if (strcmp(name, "env_off_respected") == 0) {
		fill(48, 1);
		fill(16, 1);
		fill_small(48);
		os_stats(&st);
		return report(name, st.huge_bytes == 0 && heap_huge_kib() == 0 && other_huge_kib() == 0,
			      "nothing advised with OSMEM_HUGEPAGE=0");
	}
	if (strcmp(name, "env_on_advises_small_heap") == 0) {
		fill(12, 1);
		os_stats(&st);
		return report(name, km ? st.huge_bytes > 0 : st.huge_bytes == 0,
			      km ? "growth advised from the first with OSMEM_HUGEPAGE=1" : "nothing advised (kernel mode)");
	}
	if (strcmp(name, "classic_profile_never_advises") == 0) {
		fill(48, 1);
		fill(16, 1);
		os_stats(&st);
		return report(name, st.huge_bytes == 0 && st.madvise_calls == 0 && heap_huge_kib() == 0,
			      "no madvise in the classic profile (docs/CLASSIC.md's system calls only)");
	}
	printf("FAIL hugepage/%s: no such case\n", name);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return run_case(argv[1]);
	static const struct { const char *name, *env, *value; } cases[] = {
		{ "dense_heap_faults_in_huge_pages", "OSMEM_HUGEPAGE", "dense" },
		{ "advised_heap_not_populated_per_page", "OSMEM_HUGEPAGE", "dense" },
		{ "kernel_mode_read_again_after_emfile", "OSMEM_HUGEPAGE", "dense" },
		{ "auto_advises_only_where_faults_are_dear", NULL, NULL },
		{ "regrowth_after_trim_not_populated", "OSMEM_FAULT_NS", "20000" },
		{ "refused_probe_asked_again", NULL, NULL },
		{ "sparse_heap_keeps_small_pages", "OSMEM_HUGEPAGE", "dense" },
		{ "small_heap_keeps_small_pages", "OSMEM_HUGEPAGE", "dense" },
		{ "dense_small_objects_in_huge_pages", "OSMEM_HUGEPAGE", "dense" },
		{ "segment_first_half_keeps_small_pages", "OSMEM_HUGEPAGE", "dense" },
		{ "few_segments_keep_small_pages", "OSMEM_HUGEPAGE", "dense" },
		{ "env_off_respected", "OSMEM_HUGEPAGE", "0" },
		{ "env_on_advises_small_heap", "OSMEM_HUGEPAGE", "1" },
		{ "classic_profile_never_advises", "OSMEM_PROFILE", "classic" },
	};
	int failed = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			unsetenv("OSMEM_HUGEPAGE");
			unsetenv("OSMEM_PROFILE");
			unsetenv("OSMEM_FAULT_NS");
			if (cases[i].env)
				setenv(cases[i].env, cases[i].value, 1);
			execl("/proc/self/exe", "malloc_hugepage", cases[i].name, (char *)NULL);
			printf("FAIL hugepage/%s: exec failed\n", cases[i].name);
			_exit(1);
		}
		int status = 0;
		if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
			printf("FAIL hugepage/%s: the case's process %s\n", cases[i].name,
			       pid < 0 ? "could not be started" : "died of a signal");
			failed++;
		} else if (WEXITSTATUS(status)) {
			failed++;
		}
	}
	return failed ? 1 : 0;
}
