/* bench/peak/peak.c: the peak resident set of a process, counted page by page (bench/run.py preloads it after
 * the allocator, or alone for glibc).
 *
 * Why not ru_maxrss alone: on this kernel the resident-set counters behind it are per-CPU counters read without
 * their per-CPU parts (percpu_counter_read), which fold into the total only 32 pages at a time. ru_maxrss, taken
 * from them at exit, then moves in steps of 128 KiB and not even monotonically: a process that touched 4 more
 * pages read 456 KiB, one that touched 8 read 584, one that touched 12 read 456 again. On the suite's small
 * processes (1.5-4 MiB) that is 3-8% of the figure. /proc/self/status sums the per-CPU parts on this kernel
 * (6.18; older ones read it as approximately as ru_maxrss, and tests/test_bench_report.py's
 * peak_rss_counts_every_page then says so): VmHWM there is
 * the larger of the high-water mark the kernel kept (taken from the same approximate counters at each unmap, an
 * error of a step at most, small against a process whose peak is in the tens of MiB) and the exact resident set
 * now.
 *
 * At exit (a destructor: the process's last moments, where its resident set is at or near its peak for every
 * workload of the suite), VmHWM is appended as "PID KIB\n" to the file named by OSMEM_BENCH_PEAK. A process that
 * ends without running destructors (_exit, a signal) writes nothing; bench/run.py then keeps ru_maxrss (also
 * where ru_maxrss reads more than a MiB above every line written: such a process was the tree's largest). No
 * allocation, no stdio: system calls and a fixed buffer. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put_num(char **p, unsigned long v)
{
	char tmp[24];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n)
		*(*p)++ = tmp[--n];
}

__attribute__((destructor)) static void peak_at_exit(void)
{
	const char *path = getenv("OSMEM_BENCH_PEAK");
	if (!path || !*path)
		return;
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	const char *h = strstr(buf, "\nVmHWM:");
	if (!h)
		return;
	unsigned long kib = strtoul(h + 7, NULL, 10);
	char line[64], *p = line;
	put_num(&p, (unsigned long)getpid());
	*p++ = ' ';
	put_num(&p, kib);
	*p++ = '\n';
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	ssize_t w = write(fd, line, (size_t)(p - line)); /* one write under O_APPEND: lines of a process tree stay whole */
	(void)w;
	close(fd);
}
