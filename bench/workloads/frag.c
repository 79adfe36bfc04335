/* frag: what a long-running program's heap costs in memory after its working set shrinks and changes shape.
 * Phase 1 allocates 1 GiB (at scale 1) of small and medium objects (70% of the requests of 16..512 bytes,
 * 30% of 512 bytes..16 KiB, log-uniform within each band), every byte written. Phase 2 frees 90% of them, at
 * random: the 10% that survive are scattered over every page. Phase 3 allocates 500 MiB more, of a different
 * shape (1..64 KiB), which fits the holes only if the allocator can merge or reuse what was freed.
 *
 * It prints the resident set (from /proc/self/statm) and the live bytes (what the program asked for and has
 * not freed) after each phase, and the peak resident set (VmHWM), in KiB:
 *   metric rss_peak_kb, rss_alloc_kb/live_alloc_kb, rss_freed_kb/live_freed_kb, rss_end_kb/live_end_kb
 * An allocator that gives freed pages back shows rss_freed far below rss_alloc; one that reuses the holes
 * keeps rss_end near rss_alloc rather than 1.5 GiB. A program keeps ~600 MiB live at the end: the judgement
 * "resident within 1.25x of live" is rss_end_kb / live_end_kb.
 *
 * Usage: frag SCALE
 * Checksum: the sum of the tags of everything freed. */
#include "common.h"

#define PHASE1    (1024.0 * 1024 * 1024)
#define PHASE3    (500.0 * 1024 * 1024)

struct obj {
	char *p;
	uint32_t n;
};

static uint64_t rng = 2024, seq, sum;

static char *make(size_t n)
{
	char *p = xmalloc(n);
	uint64_t tag = mix64(++seq);
	memset(p, (int)(tag & 0xff), n);
	tag_set(p, n, tag);
	return p;
}

static void drop(struct obj *o)
{
	uint64_t tag = tag_check(o->p, o->n);
	size_t mid = o->n / 2;
	if (mid >= 16 && mid < o->n - 1 && (unsigned char)o->p[mid] != (unsigned char)(tag & 0xff))
		fail("middle byte lost", o->p + mid, tag & 0xff, (unsigned char)o->p[mid]);
	sum += tag;
	free(o->p);
	o->p = NULL;
}

static struct obj *fill(size_t bytes, size_t *count, int phase)
{
	size_t cap = 1 << 16, n = 0, live = 0;
	struct obj *v = xmalloc(cap * sizeof *v);
	while (live < bytes) {
		if (n == cap)
			v = realloc(v, (cap *= 2) * sizeof *v);
		size_t sz = phase == 1 ? (rnd(&rng) % 10 < 7 ? rnd_log(&rng, 16, 512) : rnd_log(&rng, 513, 16 << 10))
		                       : rnd_log(&rng, 1 << 10, 64 << 10);
		v[n].p = make(sz);
		v[n].n = (uint32_t)sz;
		live += sz;
		n++;
	}
	*count = n;
	return v;
}

static void report(const char *phase, size_t live)
{
	printf("metric rss_%s_kb %ld\n", phase, rss_kb());
	printf("metric live_%s_kb %zu\n", phase, live / 1024);
}

int main(int argc, char **argv)
{
	double scale = scale_arg(argc, argv);
	size_t n1, n3, live = 0;
	struct obj *a = fill((size_t)(PHASE1 * scale), &n1, 1);
	for (size_t i = 0; i < n1; i++)
		live += a[i].n;
	report("alloc", live);
	for (size_t i = 0; i < n1; i++)
		if (rnd(&rng) % 10 != 0) {
			live -= a[i].n;
			drop(&a[i]);
		}
	report("freed", live);
	struct obj *b = fill((size_t)(PHASE3 * scale), &n3, 3);
	for (size_t i = 0; i < n3; i++)
		live += b[i].n;
	report("end", live);
	printf("metric rss_peak_kb %ld\n", hwm_kb());
	for (size_t i = 0; i < n1; i++)
		if (a[i].p)
			drop(&a[i]);
	for (size_t i = 0; i < n3; i++)
		drop(&b[i]);
	free(a);
	free(b);
	print_checksum(sum);
	return 0;
}
