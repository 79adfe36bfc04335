/* test_faults.h: the workload that the fault-injection tests run (tests/test_faults.c on the os_* API,
 * tests/malloc_faults.c on the malloc family), with an injected system-call failure somewhere inside it.
 *
 * A few thousand random operations over 160 live blocks: every front size class (1..2048 bytes), heap blocks up
 * to 126 KiB, mapped blocks up to 600 KiB (both sides of the 128 KiB threshold), calloc, realloc growth and
 * shrink (crossing the threshold both ways), memalign when the API has it, frees. Each block holds a content
 * pattern of its own (test_util.h) in its first and last KiB (all of it when smaller): checked before every
 * free and realloc, and what realloc kept is checked in the new block. Touching only those bytes keeps page
 * faults, which this VM charges tens of microseconds each, to a few per operation.
 *
 * What every operation must do, injected failure or not: return a block whose pattern survives, or NULL with
 * errno == ENOMEM (a failed realloc keeps the old block intact). With errno_kept (the malloc family), a success
 * leaves errno as it was. Header-only: each test includes it once. */
#ifndef OSMEM_TEST_FAULTS_H
#define OSMEM_TEST_FAULTS_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "osmem.h"
#include "test_util.h"

struct fw_api {
	void *(*alloc)(size_t n);
	void *(*zalloc)(size_t nmemb, size_t size);
	void *(*resize)(void *p, size_t n);
	void (*release)(void *p);
	void *(*aligned)(size_t alignment, size_t n); /* NULL: the API has none */
	bool errno_kept;                              /* a success leaves errno as it was */
	bool huge;                                    /* blocks above 32 MiB too (mremap; not for the classic
							 profile, whose realloc copies them) */
};

/* Not every test uses every part (the rlimit tests run their own threads). */
#define FW_UNUSED __attribute__((unused))

#define FW_SLOTS 160
/* Above 32 MiB, where the default profile's dynamic mmap threshold stops rising: always mapped, and realloc
 * moves them with mremap there. Address space only: the pattern touches two pages of each. */
#define FW_HUGE  ((size_t)33 << 20)
#define FW_EDGE  1024 /* bytes with the pattern at each end of a block */

struct fw_block {
	unsigned char *p;
	size_t n;
	uint64_t seed;
};

struct fw_state {
	const struct fw_api *api;
	struct fw_block b[FW_SLOTS];
	uint64_t rng;
	long op;          /* operations done (the crash handler reports it) */
	size_t nulls;     /* operations that returned NULL (each with errno ENOMEM, or `why` says otherwise) */
	char nulls_at[120]; /* the first of them, for the report: "op:call(size) ..." */
	char why[256];    /* the first thing that went wrong; empty when all held */
};

static void fw_fail(struct fw_state *s, const char *fmt, ...)
{
	if (s->why[0])
		return;
	int k = snprintf(s->why, sizeof s->why, "op %ld: ", s->op);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->why + k, sizeof s->why - (size_t)k, fmt, ap);
	va_end(ap);
}

/* The ranges of a block of n bytes that hold its pattern: [0, h) and [n - h, n). */
static inline size_t fw_edge(size_t n) { return n < FW_EDGE ? n : FW_EDGE; }

static void fw_fill(unsigned char *p, size_t n, uint64_t seed)
{
	size_t h = fw_edge(n);
	pat_fill(p, seed, 0, h);
	pat_fill(p, seed, n - h, n);
}

/* Checks the pattern of a block of n bytes in the ranges a block of `was` bytes had filled (clipped to n). */
static bool fw_check(struct fw_state *s, const unsigned char *p, size_t n, size_t was, uint64_t seed, const char *what)
{
	size_t h = fw_edge(was), lim = n < was ? n : was;
	size_t a = pat_check(p, seed, 0, h < lim ? h : lim);
	if (a != (h < lim ? h : lim)) {
		fw_fail(s, "%s: byte %zu of a %zu-byte block %p lost its content", what, a, n, (void *)p);
		return false;
	}
	if (was - h < lim) {
		size_t b = pat_check(p, seed, was - h, lim);
		if (b != lim) {
			fw_fail(s, "%s: byte %zu of a %zu-byte block %p lost its content", what, b, n, (void *)p);
			return false;
		}
	}
	return true;
}

/* The first byte in [from, to) that is not 0, or `to`. */
static size_t fw_nonzero(const unsigned char *p, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (p[i])
			return i;
	return to;
}

static size_t fw_size(struct fw_state *s)
{
	uint64_t r = tu_rng(&s->rng);
	unsigned kind = (unsigned)(r % 100);
	r >>= 8;
	if (kind < 45) /* the front's classes: exact class sizes and anything between */
		return kind & 1 ? 16 * (1 + r % 128) : 1 + r % 2048;
	if (kind < 70)
		return 2049 + r % (32 * 1024);
	if (kind < 85)
		return 32 * 1024 + r % (94 * 1024); /* up to 126 KiB: the heap */
	if (kind < 96 || !s->api->huge)
		return 126 * 1024 + r % (474 * 1024); /* around the 128 KiB threshold and above: mappings */
	return FW_HUGE + r % ((size_t)16 << 20);
}

/* Runs one operation's result through the rules. Returns whether p is a block. */
static bool fw_result(struct fw_state *s, void *p, int err, const char *what, size_t n)
{
	if (!p) {
		s->nulls++;
		size_t k = strlen(s->nulls_at);
		if (k + 40 < sizeof s->nulls_at)
			snprintf(s->nulls_at + k, sizeof s->nulls_at - k, "%s%ld:%s(%zu)", k ? "," : "", s->op, what, n);
		if (err != ENOMEM)
			fw_fail(s, "%s(%zu) returned NULL with errno %d, not ENOMEM", what, n, err);
		return false;
	}
	if (s->api->errno_kept && err != EDOM)
		fw_fail(s, "%s(%zu) succeeded but changed errno to %d", what, n, err);
	if ((uintptr_t)p % 8)
		fw_fail(s, "%s(%zu) returned %p, not aligned", what, n, p);
	return true;
}

static void fw_release(struct fw_state *s, struct fw_block *b)
{
	if (!b->p)
		return;
	fw_check(s, b->p, b->n, b->n, b->seed, "before free");
	s->api->release(b->p);
	b->p = NULL;
}

/* `ops` random operations. */
FW_UNUSED static void fw_run(struct fw_state *s, long ops)
{
	for (long end = s->op + ops; s->op < end && !s->why[0]; s->op++) {
		uint64_t r = tu_rng(&s->rng);
		struct fw_block *b = &s->b[r % FW_SLOTS];
		unsigned what = (unsigned)((r >> 16) % 100);
		uint64_t seed = tu_rng(&s->rng);
		if (what >= 70 || (b->p && (what < 50 || what >= 65))) { /* free (also to make room for a new block) */
			fw_release(s, b);
			continue;
		}
		size_t n = fw_size(s);
		void *p;
		int err;
		if (what < 35 || (what >= 65 && !s->api->aligned)) {
			errno = EDOM;
			p = s->api->alloc(n);
			err = errno;
			if (fw_result(s, p, err, "malloc", n)) {
				*b = (struct fw_block){ p, n, seed };
				fw_fill(b->p, n, seed);
			}
		} else if (what < 50) {
			size_t size = 1 + (r >> 40) % 16, nmemb = (n + size - 1) / size;
			errno = EDOM;
			p = s->api->zalloc(nmemb, size);
			err = errno;
			if (fw_result(s, p, err, "calloc", nmemb * size)) {
				n = nmemb * size;
				size_t h = fw_edge(n), z = fw_nonzero(p, 0, h);
				if (z == h && (z = fw_nonzero(p, n - h, n)) == n)
					z = SIZE_MAX; /* both ends are zero */
				if (z != SIZE_MAX)
					fw_fail(s, "calloc(%zu, %zu): byte %zu is %d, not 0", nmemb, size, z,
						((unsigned char *)p)[z]);
				*b = (struct fw_block){ p, n, seed };
				fw_fill(b->p, n, seed);
			}
		} else if (what < 65) { /* realloc of a live block: growth or shrink, often across the threshold */
			if (!b->p)
				continue;
			size_t m = (r >> 40) & 1 ? b->n + n : (b->n > 1 ? 1 + b->n / (2 + (r >> 41) % 8) : n);
			if (b->n >= FW_HUGE) /* huge blocks stay huge: only mremap moves them without a copy */
				m = (r >> 40) & 1 ? b->n + n : FW_HUGE + (b->n - FW_HUGE) / 2;
			errno = EDOM;
			p = s->api->resize(b->p, m);
			err = errno;
			if (fw_result(s, p, err, "realloc", m)) {
				fw_check(s, p, m, b->n, b->seed, "after realloc");
				b->p = p;
				b->n = m;
				fw_fill(b->p, m, b->seed);
			} else {
				fw_check(s, b->p, b->n, b->n, b->seed, "after a failed realloc");
			}
		} else { /* memalign */
			size_t a = (size_t)32 << ((r >> 40) % 9); /* 32 .. 8192 */
			errno = EDOM;
			p = s->api->aligned(a, n);
			err = errno;
			if (fw_result(s, p, err, "memalign", n)) {
				if ((uintptr_t)p % a)
					fw_fail(s, "memalign(%zu, %zu) returned %p, not aligned", a, n, p);
				*b = (struct fw_block){ p, n, seed };
				fw_fill(b->p, n, seed);
			}
		}
	}
}

FW_UNUSED static void fw_free_all(struct fw_state *s)
{
	for (size_t i = 0; i < FW_SLOTS; i++)
		fw_release(s, &s->b[i]);
}


// ------------------------------------------------------------------
// The watchdog: a hang becomes a FAIL line, a slow machine does not
// ------------------------------------------------------------------

/* A watchdog of progress: every fw_watch_secs seconds SIGALRM compares the operations done (the sum of the
 * counters given, or *tu_op_counter) with the count at the previous alarm. Progress arms the next alarm; none
 * (a deadlock: no thread gets through an operation) writes "FAIL <name>: no operation done for N s, at op K
 * (<why>)" and exits 3. Until session 52 these children had 30 s (the rlimit cases 60 s) of wall-clock time for
 * the whole workload, which a loaded 2-core machine overran without any hang. Async-signal-safe: loads of the
 * counters, write, alarm and _exit only. */
#define FW_WATCH_MAX 8
static const volatile long *fw_watch_ops[FW_WATCH_MAX];
static int fw_watch_n;
static unsigned fw_watch_secs;
static const char *fw_watch_name, *fw_watch_why;

static long fw_watch_count(void)
{
	long sum = 0;
	for (int i = 0; i < fw_watch_n; i++)
		sum += *fw_watch_ops[i];
	if (!fw_watch_n && tu_op_counter)
		sum = *tu_op_counter;
	return sum;
}

static void fw_watch_alarm(int sig)
{
	(void)sig;
	static long seen; /* 0: a child that never starts its first operation is a hang too */
	long now = fw_watch_count();
	if (now != seen) {
		seen = now;
		alarm(fw_watch_secs);
		return;
	}
	char buf[400], *p = buf;
	p = tu_put(p, "FAIL ");
	p = tu_put(p, fw_watch_name);
	p = tu_put(p, ": no operation done for ");
	p = tu_put_num(p, fw_watch_secs);
	p = tu_put(p, " s, at op ");
	p = tu_put_num(p, (unsigned long)now);
	p = tu_put(p, " (");
	p = tu_put(p, fw_watch_why);
	p = tu_put(p, ")\n");
	ssize_t w = write(STDOUT_FILENO, buf, (size_t)(p - buf));
	(void)w;
	_exit(3);
}

/* Arms the watchdog: name (at most 200 bytes) and why name the FAIL line; ops, n: the counters to sum (NULL, 0:
 * *tu_op_counter, which fw_child sets). The strings must outlive the process. */
FW_UNUSED static void fw_watch(const char *name, unsigned secs, const volatile long *const *ops, int n,
			       const char *why)
{
	fw_watch_name = name;
	fw_watch_why = why;
	fw_watch_secs = secs;
	fw_watch_n = n < FW_WATCH_MAX ? n : FW_WATCH_MAX;
	for (int i = 0; i < fw_watch_n; i++)
		fw_watch_ops[i] = ops[i];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fw_watch_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	alarm(secs);
}

// ------------------------------------------------------------------
// One run: the workload with a failure armed, then everything freed, then the workload again
// ------------------------------------------------------------------

#define FW_OPS1 3000
#define FW_OPS2 800

enum { FW_BRK, FW_MMAP, FW_MREMAP, FW_KINDS };
static const char *const fw_kind_name[FW_KINDS] = { "brk", "mmap", "mremap" };

static size_t fw_calls(const struct os_stats *st, int kind)
{
	return kind == FW_BRK ? st->brk_calls : kind == FW_MMAP ? st->mmap_calls : st->mremap_calls;
}

/* What the child reports on one line: RESULT nulls1 nulls2 brk mmap mremap fired why... */
struct fw_result {
	size_t nulls1, nulls2, calls[FW_KINDS];
	int fired;
	char nulls_at[128], why[300];
};

/* Leak and invariant checks after everything was freed. */
FW_UNUSED static void fw_check_empty(struct fw_state *s, const struct os_stats *st0, const char *when)
{
	struct os_stats st;
	os_stats(&st);
	if (st.bytes_in_use != st0->bytes_in_use || st.mapped_count != st0->mapped_count)
		fw_fail(s, "%s, everything freed: %zu bytes in use in %zu mappings, %zu in %zu at the start (a leak)",
			when, st.bytes_in_use, st.mapped_count, st0->bytes_in_use, st0->mapped_count);
	if (os_heap_check() != 0)
		fw_fail(s, "%s: os_heap_check failed (stderr says what)", when);
}

/* The child's side: runs the workload with the failure already armed (n counts the calls of `kind` from the
 * start of the process). disarm, when not NULL, turns the failure off before the second round. Writes the
 * RESULT line to fd. */
FW_UNUSED static void fw_child(const struct fw_api *api, int kind, size_t n, void (*disarm)(void), int fd)
{
	static struct fw_state s; /* static: a large array, and reachable from the crash report */
	struct os_stats st0, st1;
	memset(&s, 0, sizeof s);
	s.api = api;
	s.rng = 0x5eed0000u + 17;
	tu_op_counter = &s.op;
	os_stats(&st0);
	fw_run(&s, FW_OPS1);
	os_stats(&st1);
	size_t nulls1 = s.nulls;
	int fired = n && fw_calls(&st1, kind) >= n;
	fw_free_all(&s);
	fw_check_empty(&s, &st0, "after the first round");
	if (disarm)
		disarm();
	s.nulls = 0;
	s.rng ^= 0xabcdef;
	fw_run(&s, FW_OPS2); /* the program goes on: allocate again */
	size_t nulls2 = s.nulls;
	fw_free_all(&s);
	fw_check_empty(&s, &st0, "after the second round");
	os_stats(&st1);
	char line[512];
	int len = snprintf(line, sizeof line, "RESULT %zu %zu %zu %zu %zu %d %s %s\n", nulls1, nulls2,
			   fw_calls(&st1, FW_BRK), fw_calls(&st1, FW_MMAP), fw_calls(&st1, FW_MREMAP), fired,
			   s.nulls_at[0] ? s.nulls_at : "-", s.why[0] ? s.why : "-");
	ssize_t w = write(fd, line, (size_t)len);
	(void)w;
}

FW_UNUSED static bool fw_parse(const char *out, struct fw_result *r)
{
	const char *l = strstr(out, "RESULT ");
	memset(r, 0, sizeof *r);
	if (!l)
		return false;
	int at = 0;
	if (sscanf(l, "RESULT %zu %zu %zu %zu %zu %d %127s %n", &r->nulls1, &r->nulls2, &r->calls[0], &r->calls[1],
		   &r->calls[2], &r->fired, r->nulls_at, &at) < 7)
		return false;
	snprintf(r->why, sizeof r->why, "%.*s", (int)strcspn(l + at, "\n"), l + at);
	if (strcmp(r->why, "-") == 0)
		r->why[0] = 0;
	return true;
}

// ------------------------------------------------------------------
// The parent's side: the sweep
// ------------------------------------------------------------------

/* Runs one child: config (the test's own name for it), the failure of the nth call of kind (n 0: none). Fills
 * out with what the child printed and returns its wait status. */
typedef int (*fw_spawn_fn)(const char *config, int kind, size_t n, bool sticky, char *out, size_t cap);

/* The calls to fail among 1..count: every one up to `dense`, then about `strided` more spread evenly to count,
 * and one past it. */
FW_UNUSED static size_t fw_samples(size_t count, size_t dense, size_t strided, size_t *out, size_t cap)
{
	size_t k = 0;
	for (size_t n = 1; n <= count && n <= dense && k < cap; n++)
		out[k++] = n;
	if (count > dense) {
		size_t step = (count - dense + strided - 1) / strided;
		for (size_t n = dense + step; n < count && k < cap; n += step)
			out[k++] = n;
		if (k < cap)
			out[k++] = count;
	}
	if (k < cap)
		out[k++] = count + 1;
	return k;
}

/* Sweeps the failure of one kind of call over a config. ref: the calls the workload makes without a failure.
 * Prints one PASS or FAIL line; returns whether it passed. */
FW_UNUSED static bool fw_sweep(fw_spawn_fn spawn, const char *config, int kind, size_t count, bool sticky, size_t dense,
		     size_t strided)
{
	size_t ns[256], k = fw_samples(count, dense, strided, ns, 256), fired = 0, nulls = 0;
	static char out[65536];
	for (size_t i = 0; i < k; i++) {
		struct fw_result r;
		int status = spawn(config, kind, ns[i], sticky, out, sizeof out);
		const char *why = NULL;
		char buf[400];
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !fw_parse(out, &r)) {
			const char *fl = strstr(out, "FAIL ");
			snprintf(buf, sizeof buf, "the child %s %d without a result%s%.*s",
				 WIFEXITED(status) ? "exited with status" : "was killed by signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), fl ? ": " : "",
				 fl ? (int)strcspn(fl, "\n") : 0, fl ? fl : "");
			why = buf;
		} else if (r.why[0]) {
			why = r.why;
		} else if (!r.fired && r.nulls1) {
			snprintf(buf, sizeof buf, "%zu operations returned NULL, but the failure never happened (%s)",
				 r.nulls1 + r.nulls2, r.nulls_at);
			why = buf;
		} else if (!sticky && r.nulls1 > 1) {
			snprintf(buf, sizeof buf, "one failed %s made %zu operations return NULL (op:call(size) %s)",
				 fw_kind_name[kind], r.nulls1, r.nulls_at);
			why = buf;
		} else if (r.nulls2 > (sticky || r.fired ? 0u : 1u)) { /* disarmed, or the one failure is past */
			snprintf(buf, sizeof buf, "after the failure %zu operations of the second round returned NULL (%s)",
				 r.nulls2, r.nulls_at);
			why = buf;
		}
		if (why) {
			printf("FAIL faults/%s/%s%s: failing call %zu of %zu: %s\n", config, fw_kind_name[kind],
			       sticky ? "_from_n_on" : "", ns[i], count, why);
			return false;
		}
		fired += (size_t)r.fired;
		nulls += r.nulls1;
	}
	printf("PASS faults/%s/%s%s (%zu runs, failing call 1..%zu, %zu fired, %zu NULL results)\n", config,
	       fw_kind_name[kind], sticky ? "_from_n_on" : "", k, count + 1, fired, nulls);
	return true;
}

#endif
