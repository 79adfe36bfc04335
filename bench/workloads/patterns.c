/* patterns: a program's life over time, one pattern a run, for bench/patterns.py, which times each under the five
 * allocators and reports time and peak RSS. The ranked suite times steady churn and bench/apis.py every entry
 * point at every size; neither frees a big buffer and grows the next, calls calloc in a loop, goes idle, or starts
 * and ends threads by the thousand. Session 43 found the mapping cache holding up to five times glibc's memory
 * with three of these (vecgrow, growmalloc, callocbig), each fixed and guarded by tests/malloc_mapcache.c.
 *
 * Every block is written (a tag in its pages) and checked before it is freed, calloc's pages are checked zero, and
 * a failure prints `FAIL` and exits 1 (common.h). Metrics: `secs` (the pattern's time, idle waits excluded), and
 * for some `rss_*_kb` (the resident set at a named moment). Checksum: the sum of what the pattern checked, which
 * depends on the seed and the scale alone.
 *
 * Usage: patterns SCALE NAME; NAME one of the table below (`patterns 1 list` prints them). */
#include <pthread.h>

#include "common.h"

#define MiB ((size_t)1 << 20)

static double scale;
static uint64_t sum;
static double idle_s; /* time spent sleeping on purpose: not the allocator's */

/* The counts of a pattern, scaled, never below 1. */
static size_t scaled(double n)
{
	double v = n * scale;
	return v < 1 ? 1 : (size_t)v;
}

/* A block of n bytes: tag in its first 8 bytes (if it has them), one byte a page and its last byte. */
static char *make(size_t n, uint64_t tag)
{
	char *p = xmalloc(n);
	if (n >= 8)
		memcpy(p, &tag, 8);
	fill_pages(p, 8, n, tag);
	return p;
}

static void check(const char *p, size_t n)
{
	sum += n >= 8 ? check_pages(p, n) : n;
}

/* Idle as a program between bursts: the allocator sees a few calls a second (a request and a free of a small and
 * of a big block: what reaches its time-driven give-back, as a program's next calls would). */
static void idle(double secs)
{
	void *(*volatile m)(size_t) = malloc;
	double t0 = now_s();
	for (int k = 0; k < 3; k++) {
		usleep((useconds_t)(secs / 3 * 1e6));
		free(m(100));
		free(m(100000));
	}
	idle_s += now_s() - t0;
}

static void metric_rss(const char *name)
{
	printf("metric rss_%s_kb %ld\n", name, rss_kb());
}

// ---------------------------------------------------------------------------------------------- big blocks

/* A buffer doubled by realloc from 16 bytes to top, one byte a page written as it grows, checked, freed. */
static void grow_to(size_t top)
{
	size_t cap = 16;
	char *p = xmalloc(cap);
	for (size_t n = 0; n < top; n += 4096) {
		while (n + 1 > cap) /* one realloc a doubling */
			if (!(p = realloc(p, cap *= 2)))
				fail("realloc returned NULL", NULL, cap, 0);
		p[n] = (char)(n >> 12);
	}
	for (size_t n = 0; n < top; n += 4096)
		if (p[n] != (char)(n >> 12))
			fail("realloc lost a byte", p + n, (unsigned char)(n >> 12), (unsigned char)p[n]);
	free(p);
}

/* A buffer grown to 256 MiB, 8 rounds. */
static void vecgrow(void)
{
	for (size_t r = 0; r < scaled(8); r++) {
		grow_to(256 * MiB);
		sum += 256 * MiB;
	}
}

/* A buffer grown as a std::vector grows by push_back: a new block twice the size, the contents copied, the old block
 * freed (no realloc), every byte written, from 1 KiB to 240 MB; 4 rounds. Each doubling's old block, kept, would sit
 * resident beside the one being filled (session 67). */
static void vecpush(void)
{
	for (size_t r = 0; r < scaled(4); r++) {
		size_t cap = 1024, top = 240000000;
		char *p = xmalloc(cap);
		for (size_t n = 0; n < top; n += 4096) {
			while (n + 4096 > cap) {
				char *q = xmalloc(cap * 2);
				memcpy(q, p, n);
				free(p);
				p = q;
				cap *= 2;
			}
			memset(p + n, (int)(n >> 12), 4096);
		}
		for (size_t n = 0; n < top; n += 4096)
			if (p[n + 4095] != (char)(n >> 12))
				fail("a copy lost a byte", p + n + 4095, (unsigned char)(n >> 12), (unsigned char)p[n + 4095]);
		free(p);
		sum += top;
	}
}

/* Requests from 40 MiB up by a tenth each, every page written, checked, freed: a buffer per file read, each file
 * larger. */
static void growmalloc(void)
{
	size_t n = 40 * MiB;
	for (size_t r = 0; r < scaled(20); r++, n += n / 10) {
		char *p = make(n, r + 1);
		check(p, n);
		free(p);
	}
}

/* Two temporaries of 64 and 48 MiB, asked for and freed in turn, every page written. */
static void alternate(void)
{
	for (size_t r = 0; r < scaled(40); r++) {
		size_t n = r & 1 ? 48 * MiB : 64 * MiB;
		char *p = make(n, r + 1);
		check(p, n);
		free(p);
	}
}

/* calloc of 64 MiB, checked zero and written (every page, or one in `stride`), freed; 40 rounds. */
static void callocbig_stride(size_t rounds, size_t stride)
{
	for (size_t r = 0; r < rounds; r++) {
		size_t n = 64 * MiB;
		char *p = calloc(1, n);
		if (!p)
			fail("calloc returned NULL", NULL, n, 0);
		for (size_t i = 0; i < n; i += 4096 * stride) {
			if (p[i])
				fail("calloc's page not zero", p + i, 0, (unsigned char)p[i]);
			p[i] = 1;
		}
		sum += n / stride;
		free(p);
	}
}

static void callocbig(void) { callocbig_stride(scaled(40), 1); }
static void callocbig_sparse(void) { callocbig_stride(scaled(40), 16); }

/* A 100 MiB block, every page written, shrunk to 60 MiB by realloc, a small block between, freed; 50 rounds. */
static void shrinkbig(void)
{
	for (size_t r = 0; r < scaled(50); r++) {
		char *p = make(100 * MiB, r + 1);
		p = realloc(p, 60 * MiB);
		if (!p)
			fail("realloc returned NULL", NULL, 60 * MiB, 0);
		free(make(1000, r));
		sum += 60 * MiB;
		free(p);
	}
}

/* A 16-byte buffer doubled to 4 KiB by realloc (a string builder), freed; 200,000 rounds. */
static void vecgrow_small(void)
{
	for (size_t r = 0; r < scaled(200000); r++) {
		size_t cap = 8;
		char *p = xmalloc(cap);
		for (size_t n = 0; n < 4096; n += 16) {
			if (n + 16 > cap) {
				p = realloc(p, cap *= 2);
				if (!p)
					fail("realloc returned NULL", NULL, cap, 0);
			}
			p[n] = (char)n;
		}
		for (size_t n = 0; n < 4096; n += 16)
			if (p[n] != (char)n)
				fail("realloc lost a byte", p + n, (unsigned char)n, (unsigned char)p[n]);
		sum += cap;
		free(p);
	}
}

// ---------------------------------------------------------------------------------------------- phases, idle

/* 2M objects of 32 bytes, freed, then 50,000 of 3,000, freed: 5 rounds. */
static void phases(void)
{
	size_t n = scaled(2000000);
	char **v = xmalloc(n * sizeof *v);
	for (int r = 0; r < 5; r++) {
		for (size_t i = 0; i < n; i++)
			v[i] = make(32, i);
		for (size_t i = 0; i < n; i++) {
			check(v[i], 32);
			free(v[i]);
		}
		for (size_t i = 0; i < n / 40; i++)
			v[i] = make(3000, i);
		for (size_t i = 0; i < n / 40; i++) {
			check(v[i], 3000);
			free(v[i]);
		}
	}
	free(v);
}

/* n objects of lo..hi bytes, freed in order, then an idle second and a half: what stays resident. */
static void idle_after(uint64_t seed, size_t n, size_t lo, size_t hi)
{
	char **v = xmalloc(n * sizeof *v);
	size_t *len = xmalloc(n * sizeof *len);
	for (size_t i = 0; i < n; i++)
		v[i] = make(len[i] = rnd_range(&seed, lo, hi), i);
	metric_rss("full");
	for (size_t i = 0; i < n; i++) {
		check(v[i], len[i]);
		free(v[i]);
	}
	free(v);
	free(len);
	metric_rss("after_free");
	idle(1.5);
	metric_rss("after_idle");
}

/* 8M small objects (16..215 bytes); 100,000 medium ones (2..16 KiB). */
static void idle_small(void) { idle_after(1, scaled(8000000), 16, 215); }
static void idle_medium(void) { idle_after(2, scaled(100000), 2048, 16048); }

/* 64 blocks of 1-257 KiB, one replaced at random 300,000 times: a medium working set of about 8 MiB. */
static void medium_set(void)
{
	uint64_t s = 3;
	char *v[64] = { 0 };
	size_t len[64] = { 0 };
	for (size_t i = 0; i < scaled(300000); i++) {
		size_t k = rnd(&s) % 64;
		if (v[k]) {
			check(v[k], len[k]);
			free(v[k]);
		}
		v[k] = make(len[k] = rnd_range(&s, 1024, 257 * 1024), i);
	}
	for (int k = 0; k < 64; k++)
		free(v[k]);
}

// ---------------------------------------------------------------------------------------------- threads

static pthread_barrier_t bar;
static size_t holder_objects;

/* Holds its objects (16..3 KB) until every thread has made them. */
static void *holder(void *arg)
{
	char *p[40];
	size_t len[40];
	for (size_t i = 0; i < holder_objects; i++)
		p[i] = make(len[i] = 16 + (i * 53) % 3000, (uintptr_t)arg + i);
	pthread_barrier_wait(&bar);
	pthread_barrier_wait(&bar);
	for (size_t i = 0; i < holder_objects; i++) {
		check_pages(p[i], len[i]); /* not check(): sum is the main thread's */
		free(p[i]);
	}
	return NULL;
}

/* 500 threads alive at once, 40 objects each: the memory a thread costs. */
static void manythreads(void)
{
	size_t t = scaled(500);
	pthread_t *th = xmalloc(t * sizeof *th);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 65536);
	holder_objects = 40;
	pthread_barrier_init(&bar, NULL, (unsigned)t + 1);
	for (size_t j = 0; j < t; j++)
		if (pthread_create(&th[j], &at, holder, (void *)(uintptr_t)(j << 8)) != 0)
			fail("pthread_create failed", NULL, j, 0);
	pthread_barrier_wait(&bar);
	metric_rss("all_alive");
	pthread_barrier_wait(&bar);
	for (size_t j = 0; j < t; j++)
		pthread_join(th[j], NULL);
	sum += t * holder_objects;
	free(th);
}

static void *shortlived(void *arg)
{
	char *p[100];
	for (int i = 0; i < 100; i++)
		p[i] = make(16 + (i * 37) % 1000, (uintptr_t)arg + i);
	for (int i = 0; i < 100; i++)
		free(p[i]);
	return NULL;
}

/* 20,000 threads one after another, each making and freeing 100 objects. */
static void threadchurn(void)
{
	for (size_t i = 0; i < scaled(20000); i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, shortlived, (void *)(uintptr_t)i) != 0)
			fail("pthread_create failed", NULL, i, 0);
		pthread_join(t, NULL);
	}
	sum += scaled(20000);
}

static void *bigthread(void *arg)
{
	(void)arg;
	size_t n = scaled(2000000);
	char **v = xmalloc(n * sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = make(16 + i % 300, i);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return NULL;
}

/* A thread builds 2M small objects, frees them and exits: what the process keeps after it, and after an idle
 * second and a half. */
static void threadexit(void)
{
	pthread_t t;
	pthread_create(&t, NULL, bigthread, NULL);
	pthread_join(t, NULL);
	metric_rss("after_join");
	idle(1.5);
	metric_rss("after_idle");
	sum += scaled(2000000);
}

/* The rounds of the four-thread patterns scale too (at least 2 and 3: a block used again, one of each size), so
 * that tests/test_bench_report.py's run at a twentieth costs glibc 7.5 s of faults where it cost 20 (session 49). */
static size_t rounds_at_least(double n, size_t least)
{
	size_t r = scaled(n);
	return r < least ? least : r;
}

static void *vecgrow_thread(void *arg)
{
	(void)arg;
	for (size_t r = 0, rounds = rounds_at_least(5, 2); r < rounds; r++)
		grow_to(64 * MiB);
	return NULL;
}

static void *callocbig_thread(void *arg)
{
	(void)arg;
	for (size_t r = 0, rounds = rounds_at_least(10, 3); r < rounds; r++) {
		size_t n = 40 * MiB + (r % 3) * 4 * MiB;
		char *p = calloc(1, n);
		if (!p)
			fail("calloc returned NULL", NULL, n, 0);
		for (size_t i = 0; i < n; i += 4096) {
			if (p[i])
				fail("calloc's page not zero", p + i, 0, (unsigned char)p[i]);
			p[i] = 1;
		}
		free(p);
	}
	return NULL;
}

static void four(void *(*fn)(void *))
{
	pthread_t t[4];
	for (int j = 0; j < 4; j++)
		pthread_create(&t[j], NULL, fn, NULL);
	for (int j = 0; j < 4; j++)
		pthread_join(t[j], NULL);
	sum += 4;
}

/* A worker thread reads "files" of random sizes (256 KiB-16 MiB) into a buffer grown by realloc from 4 KiB, doubling
 * (a slurp()), each page written, checked and freed, 300 times (session 67's hunt: 13.8x glibc's time and 21x its
 * peak before the cache's budget; what is left is in docs/TRADEOFFS.md). */
static void *growbuf_thread(void *arg)
{
	(void)arg;
	uint64_t s = 11;
	for (size_t r = 0, rounds = rounds_at_least(300, 20); r < rounds; r++) {
		size_t total = rnd_range(&s, 256 * 1024, 16 * MiB), cap = 4096;
		char *p = xmalloc(cap);
		for (size_t n = 0; n < total; n += 4096) {
			if (n + 4096 > cap && !(p = realloc(p, cap *= 2)))
				fail("realloc returned NULL", NULL, cap, 0);
			memset(p + n, (int)(r + (n >> 12)), 4096);
		}
		for (size_t n = 0; n < total; n += 4096)
			if (p[n + 4095] != (char)(r + (n >> 12)))
				fail("realloc lost a byte", p + n + 4095, (unsigned char)(r + (n >> 12)), (unsigned char)p[n + 4095]);
		sum += total;
		free(p);
	}
	return NULL;
}

static void growbuf(void)
{
	pthread_t t;
	pthread_create(&t, NULL, growbuf_thread, NULL);
	pthread_join(t, NULL);
}

/* A producer thread mallocs batches of 5,000 messages of 100 B-16 KiB, each written; a consumer checks and frees
 * each batch while the producer fills the next (two batches live at most); 200 batches (session 67's hunt: 1.6-2x
 * glibc's time, most medium requests missing the caches). */
static pthread_mutex_t hand_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hand_cv = PTHREAD_COND_INITIALIZER;
static char **hand_full;
static int hand_done;
#define HAND_B 5000

static void *handoff_consumer(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&hand_mu);
		while (!hand_full && !hand_done)
			pthread_cond_wait(&hand_cv, &hand_mu);
		char **batch = hand_full;
		hand_full = NULL;
		pthread_cond_broadcast(&hand_cv);
		pthread_mutex_unlock(&hand_mu);
		if (!batch)
			return NULL;
		for (int i = 0; i < HAND_B; i++) {
			if (batch[i][0] != (char)i)
				fail("a message changed", batch[i], (unsigned char)i, (unsigned char)batch[i][0]);
			free(batch[i]);
		}
		free(batch);
	}
}

static void handoff(void)
{
	pthread_t t;
	pthread_create(&t, NULL, handoff_consumer, NULL);
	uint64_t s = 13;
	for (size_t k = 0, n = scaled(200); k < n; k++) {
		char **batch = xmalloc(HAND_B * sizeof *batch);
		for (int i = 0; i < HAND_B; i++) {
			size_t len = rnd_range(&s, 100, 16384);
			batch[i] = xmalloc(len);
			memset(batch[i], (char)i, len);
			sum += len;
		}
		pthread_mutex_lock(&hand_mu);
		while (hand_full)
			pthread_cond_wait(&hand_cv, &hand_mu);
		hand_full = batch;
		pthread_cond_broadcast(&hand_cv);
		pthread_mutex_unlock(&hand_mu);
	}
	pthread_mutex_lock(&hand_mu);
	while (hand_full)
		pthread_cond_wait(&hand_cv, &hand_mu);
	hand_done = 1;
	pthread_cond_broadcast(&hand_cv);
	pthread_mutex_unlock(&hand_mu);
	pthread_join(t, NULL);
}

/* One thread, 200 rounds: 5,000 blocks of 100 B-16 KiB made and written, then all freed (a request's or a frame's
 * objects; session 67's hunt: 1.3-1.4x glibc's time, the core's index). */
static void batch(void)
{
	uint64_t s = 17;
	char **v = xmalloc(HAND_B * sizeof *v);
	size_t *len = xmalloc(HAND_B * sizeof *len);
	for (size_t r = 0, n = scaled(200); r < n; r++) {
		for (int i = 0; i < HAND_B; i++)
			v[i] = make(len[i] = rnd_range(&s, 100, 16384), r + i);
		for (int i = 0; i < HAND_B; i++) {
			check(v[i], len[i]);
			free(v[i]);
		}
	}
	free(v);
	free(len);
}

/* 4 threads, each a buffer doubled by realloc to 64 MiB five times; 4 threads, each ten callocs of 40-48 MiB. */
static void vecgrow4(void) { four(vecgrow_thread); }
static void callocbig4(void) { four(callocbig_thread); }

/* A thread's 64 slots, each step one replaced: a third of the new objects are malloc(0) (an empty string's or
 * array's buffer; a unique pointer each, and never written), the rest 16..216 bytes. Until session 66 osmem's
 * malloc(0) took its heap lock: 10-14x glibc's time in four threads (1.8x in one). */
static void *zero_thread(void *arg)
{
	uint64_t x = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1, tags = 0;
	char *p[64] = { 0 };
	size_t n[64] = { 0 };
	for (size_t i = 0, steps = scaled(2500000); i < steps; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		int k = (int)(x >> 58);
		if (p[k] && n[k] && *p[k] != (char)n[k])
			fail("object changed", p[k], n[k], (unsigned char)*p[k]);
		free(p[k]);
		n[k] = (x >> 40) % 3 == 0 ? 0 : 16 + (x >> 45) % 200;
		p[k] = xmalloc(n[k]);
		if (n[k])
			*p[k] = (char)n[k];
		tags += n[k];
	}
	for (int k = 0; k < 64; k++)
		free(p[k]);
	__atomic_add_fetch(&sum, tags, __ATOMIC_RELAXED);
	return NULL;
}

/* 4 threads of zero_thread. */
static void zero4(void) { four(zero_thread); }

// ---------------------------------------------------------------------------------------------- the table

static const struct { const char *name; void (*fn)(void); } PATTERNS[] = {
	{ "vecgrow", vecgrow },           { "vecpush", vecpush },         { "growmalloc", growmalloc },
	{ "alternate", alternate },       { "callocbig", callocbig },     { "callocbig_sparse", callocbig_sparse },
	{ "shrinkbig", shrinkbig },       { "vecgrow_small", vecgrow_small }, { "phases", phases },
	{ "idle_small", idle_small },     { "idle_medium", idle_medium }, { "medium_set", medium_set },
	{ "manythreads", manythreads },   { "threadchurn", threadchurn }, { "threadexit", threadexit },
	{ "vecgrow4", vecgrow4 },         { "callocbig4", callocbig4 },   { "zero4", zero4 },
	{ "growbuf", growbuf },           { "handoff", handoff },         { "batch", batch },
};

int main(int argc, char **argv)
{
	scale = scale_arg(argc, argv);
	const char *name = argc > 2 ? argv[2] : "list";
	for (size_t i = 0; i < sizeof PATTERNS / sizeof PATTERNS[0]; i++) {
		if (!strcmp(name, "list")) {
			printf("%s\n", PATTERNS[i].name);
			continue;
		}
		if (strcmp(name, PATTERNS[i].name))
			continue;
		double t0 = now_s();
		PATTERNS[i].fn();
		printf("metric secs %.6f\n", now_s() - t0 - idle_s);
		printf("metric hwm_kb %ld\n", hwm_kb());
		print_checksum(sum);
		return 0;
	}
	if (strcmp(name, "list")) {
		fprintf(stderr, "patterns: no pattern %s (patterns 1 list)\n", name);
		return 2;
	}
	return 0;
}
