/* fault_cost: what this machine charges for a page fault, the fact behind src/huge.c and most of
 * docs/TRADEOFFS.md. Maps 64 MiB three times (each mapping aligned to 2 MiB), writes one byte per 4 KiB page, and
 * prints the microseconds per 4 KiB page: with 4 KiB pages, then with madvise(MADV_HUGEPAGE) (a fault per 2 MiB).
 * The first pass of each kind may include the host backing fresh memory; the minimum of the three is the steady
 * price. `make bench` records it in bench/results/latest.md.
 * Output: `fault_cost small_us=S huge_us=H huge_first_us=F`: the best of three passes with 4 KiB pages, with huge
 * pages, and the first pass with huge pages (H and F are -1 when the kernel gave no huge pages). */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

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
	printf("fault_cost small_us=%.2f huge_us=%.2f huge_first_us=%.2f\n", small, huge, huge_first);
	return 0;
}
