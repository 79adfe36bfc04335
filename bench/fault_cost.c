/* fault_cost: what this machine charges for a page fault, the fact behind src/huge.c and most of
 * docs/TRADEOFFS.md. Maps 64 MiB three times (each mapping aligned to 2 MiB), writes one byte per 4 KiB page, and
 * prints the microseconds per 4 KiB page: with 4 KiB pages, then with madvise(MADV_HUGEPAGE) (a fault per 2 MiB).
 * The first pass of each kind may include the host backing fresh memory; the minimum of the three is the steady
 * price. `make bench` records it in bench/results/latest.md.
 * Then the same 64 MiB with each page first faulted in by madvise(MADV_POPULATE_WRITE) of that page alone (Linux
 * 5.14), as the default profile does for a header's fresh page (src/heap.c, prefault), and written after.
 * Output: `fault_cost small_us=S huge_us=H huge_first_us=F populate_us=P populated_write_us=W`: the best of three
 * passes with 4 KiB pages, with huge pages, and the first pass with huge pages (H and F are -1 when the kernel gave
 * no huge pages); the best of three of the populate calls and of the writes after them (-1: the kernel does not
 * know the advice). */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define LEN ((size_t)64 << 20)
#define HUGE ((size_t)2 << 20)

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* us per 4 KiB page for one pass, or -1 when huge pages were asked for and none came */
static double pass(int huge)
{
	char *raw = mmap(NULL, LEN + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return -1;
	char *p = (char *)(((unsigned long)raw + HUGE - 1) & ~(HUGE - 1));
	if (huge && madvise(p, LEN, MADV_HUGEPAGE) != 0) {
		munmap(raw, LEN + HUGE);
		return -1;
	}
	double t = now();
	for (size_t i = 0; i < LEN; i += 4096)
		p[i] = 1;
	double us = (now() - t) * 1e6 / (double)(LEN / 4096);
	if (huge) { /* did the kernel give huge pages? */
		FILE *f = fopen("/proc/self/smaps_rollup", "r");
		char line[256];
		long kb = 0;
		while (f && fgets(line, sizeof line, f))
			if (strncmp(line, "AnonHugePages:", 14) == 0)
				sscanf(line + 14, "%ld", &kb);
		if (f)
			fclose(f);
		if (kb < 2048)
			us = -1;
	}
	munmap(raw, LEN + HUGE);
	return us;
}

/* us per 4 KiB page for one populate call per page (*pop), and for the writes that follow (*wr); -1 when refused */
static void populate_pass(double *pop, double *wr)
{
	*pop = *wr = -1;
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	madvise(p, LEN, MADV_NOHUGEPAGE);
	double t = now();
	for (size_t i = 0; i < LEN; i += 4096)
		if (madvise(p + i, 4096, MADV_POPULATE_WRITE) != 0) {
			munmap(p, LEN);
			return;
		}
	double t2 = now();
	for (size_t i = 0; i < LEN; i += 4096)
		p[i] = 1;
	double t3 = now();
	*pop = (t2 - t) * 1e6 / (double)(LEN / 4096);
	*wr = (t3 - t2) * 1e6 / (double)(LEN / 4096);
	munmap(p, LEN);
}

int main(void)
{
	double small = 1e9, huge = 1e9, huge_first = -1;
	for (int r = 0; r < 3; r++) {
		double s = pass(0), h = pass(1);
		if (!r)
			huge_first = h;
		if (s >= 0 && s < small)
			small = s;
		if (h < 0 || huge < 0)
			huge = -1;
		else if (h < huge)
			huge = h;
	}
	double pop = 1e9, wr = 1e9;
	for (int r = 0; r < 3; r++) {
		double a, b;
		populate_pass(&a, &b);
		if (a < 0) {
			pop = wr = -1;
			break;
		}
		if (a < pop)
			pop = a;
		if (b < wr)
			wr = b;
	}
	printf("fault_cost small_us=%.2f huge_us=%.2f huge_first_us=%.2f populate_us=%.2f populated_write_us=%.2f\n",
	       small, huge, huge_first, pop, wr);
	return 0;
}
