/* osmem-replay: re-run the allocation calls of a recorded decision trace (docs/TRACE.md) on osmem's classic
 * profile, osmem's default profile and glibc, each in a fresh process, and compare what they cost.
 *
 *   osmem-replay TRACE [--json] [--trace-out DIR] [--lib PATH] [--repeat N] [--no-strace] [--keep]
 *
 * The parent (never preloaded) parses the trace's request lines into a flat array of operations, where every
 * pointer is replaced by the number of the allocation that returned it, and writes that array to a file. Each
 * child is this same executable, exec'd with `--child OPS RESULT` and with LD_PRELOAD set (or not, for glibc):
 * it maps the file, calls malloc/calloc/realloc/free/memalign (or os_malloc... for a classic-API trace) in the
 * trace's order, and allocates nothing of its own, so the allocator sees exactly the recorded sequence. A
 * preloaded osmem's os_stats() is reached through a weak reference bound at load time (no dlsym).
 *
 * What is measured, and how:
 *  - system calls, peak and final heap: the child runs under strace; it writes two markers
 *    (write(-1, "osmem-replay:begin", ...) and "...:end") around the replay, and only the brk, mmap, munmap,
 *    mremap and madvise calls between them count. The heap footprint is (break - break at the start) + the
 *    page-rounded bytes of the anonymous mappings made since then, still mapped and accessible (a PROT_NONE
 *    reservation counts from the mprotect that opens it; a mapping laid over another replaces it); its maximum
 *    is the peak.
 *  - fragmentation: from mallinfo2() after the replay (see definitions in the output).
 *  - wall time: the replay loop only, in runs without strace or tracing (best of --repeat N).
 * Threads: the trace's requests are replayed in the single order in which they were recorded (they are written
 * under the heap lock), by one thread. Time: the calls follow each other with none of the program's pauses, so the
 * decisions that depend on time (timed_names) are not reproduced; a note says when the trace has any.
 * The default profile's front (docs/TRACE.md): `slot C` (a malloc or calloc of at most C bytes that the front
 * served; it knows the size class only) is replayed as malloc(C); `thread_exit`, `front_trim` and `idle` are the
 * allocator's own doings, not calls of the program: they are counted and skipped. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"

/* Present only when an osmem library is preloaded; NULL under glibc. Bound by the loader, not by dlsym. */
#pragma weak os_stats_get
#pragma weak os_malloc
#pragma weak os_calloc
#pragma weak os_realloc
#pragma weak os_free

extern char **environ;

// ------------------------------------------------------------------
// Operations: what the parent hands to the children
// ------------------------------------------------------------------

enum op_kind { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_FREE, OP_MEMALIGN, OP_REALLOC_FREED, OP_TRIM };
static const char *const op_names[] = { "malloc", "calloc", "realloc", "free", "memalign", "realloc-of-free",
					 "malloc_trim" };
#define OP_KINDS (sizeof op_names / sizeof op_names[0])

struct op {
	uint8_t kind;
	uint8_t classic_api; /* os_malloc & co. */
	uint16_t pad;
	uint32_t in;         /* the allocation passed in (realloc, free), 0 none */
	uint32_t out;        /* the allocation this call creates, 0 when it returned NULL */
	uint32_t line;       /* in the trace, for messages */
	uint64_t a, b;       /* malloc n; calloc n m; realloc - n; memalign align n */
};

#define OPS_MAGIC 0x53504f79616c7072ull /* "rplayOPS" */
struct ops_header { uint64_t magic, nops, nids; };

// ------------------------------------------------------------------
// The child's report
// ------------------------------------------------------------------

#define RESULT_MAGIC 0x544c5345527972ull
struct result {
	uint64_t magic;
	uint64_t replayed, skipped, mismatches; /* mismatch: NULL where the trace had a pointer, or the reverse */
	uint64_t brk0, brk1;
	uint64_t live_bytes, live_blocks;       /* requested bytes of the allocations live at the end */
	uint64_t ns;
	uint32_t has_osmem, classic_calls;      /* os_stats found; os_malloc & co. found */
	struct os_stats st0, st1;
	struct mallinfo2 mi;
};

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		len -= (size_t)w;
	}
}

static void child_die(const char *msg)
{
	write_all(2, "osmem-replay (child): ", 22);
	write_all(2, msg, strlen(msg));
	write_all(2, "\n", 1);
	_exit(3);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char MARK_BEGIN[] = "osmem-replay:begin";
static const char MARK_END[] = "osmem-replay:end";

/* A marker for strace: write(2) to fd -1 fails with EBADF and does nothing else. */
static void marker(const char *m, size_t len)
{
	ssize_t rc = write(-1, m, len);
	(void)rc;
}

/* The child: no stdio, no malloc of its own; everything it needs is mapped before the begin marker. */
static int child_main(const char *ops_path, const char *result_path)
{
	int fd = open(ops_path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || (size_t)sb.st_size < sizeof(struct ops_header))
		child_die("cannot open the operations file");
	const char *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		child_die("cannot map the operations file");
	close(fd);
	const struct ops_header *h = (const void *)map;
	if (h->magic != OPS_MAGIC || sizeof *h + h->nops * sizeof(struct op) > (size_t)sb.st_size)
		child_die("bad operations file");
	const struct op *ops = (const void *)(map + sizeof *h);
	void **tab = mmap(NULL, (h->nids + 1) * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	uint64_t *want = mmap(NULL, (h->nids + 1) * sizeof(uint64_t), PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *live = mmap(NULL, h->nids + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (tab == MAP_FAILED || want == MAP_FAILED || live == MAP_FAILED)
		child_die("cannot map the pointer table");
	int rfd = open(result_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (rfd < 0)
		child_die("cannot create the result file");

	static struct result r;
	r.magic = RESULT_MAGIC;
	r.has_osmem = os_stats_get != NULL;
	bool os_api = os_malloc && os_calloc && os_realloc && os_free;
	if (r.has_osmem)
		os_stats(&r.st0); /* also makes osmem read its settings (and open OSMEM_TRACE) before the replay */

	r.brk0 = (uint64_t)(uintptr_t)sbrk(0);
	marker(MARK_BEGIN, sizeof MARK_BEGIN - 1);
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < h->nops; i++) {
		const struct op *o = &ops[i];
		void *p = o->in ? tab[o->in] : NULL, *res = NULL;
		bool os = o->classic_api && os_api;
		if (o->in && !live[o->in] && o->kind != OP_REALLOC_FREED) { /* its allocation failed in this replay */
			r.skipped++;
			continue;
		}
		switch (o->kind) {
		case OP_MALLOC:
			res = os ? os_malloc(o->a) : malloc(o->a);
			break;
		case OP_CALLOC:
			res = os ? os_calloc(o->a, o->b) : calloc(o->a, o->b);
			break;
		case OP_MEMALIGN:
			res = memalign(o->a, o->b);
			break;
		case OP_REALLOC:
			if (o->b == 0) { /* os_realloc(p, 0): case 2 frees */
				if (os)
					os_realloc(p, 0);
				else
					free(p);
				live[o->in] = 0;
				break;
			}
			res = os ? os_realloc(p, o->b) : realloc(p, o->b);
			if (res) /* moved or resized: the old block is gone (a failed realloc keeps it) */
				live[o->in] = 0;
			break;
		case OP_FREE:
			if (os)
				os_free(p);
			else
				free(p);
			live[o->in] = 0;
			break;
		case OP_TRIM:
			malloc_trim(o->a);
			r.replayed++;
			continue;
		case OP_REALLOC_FREED:
			/* os_realloc of a block already free (docs/CLASSIC.md, realloc case 3): osmem returns NULL and
			 * changes nothing. The block is the one this replay freed under that address, if its header
			 * (docs/CLASSIC.md's ABI) inside the break still says free; other allocators cannot be
			 * asked. */
			if (!os || !p || (uintptr_t)p < r.brk0 + META_SIZE || p >= sbrk(0) ||
			    ((struct block_meta *)p - 1)->status != STATUS_FREE) {
				r.skipped++;
				continue;
			}
			res = os_realloc(p, o->b);
			break;
		}
		r.replayed++;
		if (o->kind == OP_FREE || o->kind == OP_REALLOC_FREED || (o->kind == OP_REALLOC && o->b == 0)) {
			if (o->kind == OP_REALLOC_FREED && res)
				r.mismatches++;
			continue;
		}
		if (!!res != !!o->out)
			r.mismatches++;
		if (!o->out && res) {
			/* the program got NULL (ENOMEM): it never had this block, and no line of the trace frees it. A
			 * request osmem tried again after its caches gave memory back is in the trace twice, the first
			 * with NULL (docs/TRACE.md): kept, that one leaked its 50 MB in the replay (the review of session
			 * 56, replay/null_result_block_not_kept) */
			if (os)
				os_free(res);
			else
				free(res);
			if (o->kind == OP_REALLOC) {
				/* a failed realloc leaves the program its old block, and its later requests name it (the
				 * retry `realloc P N`, `free P`), but this replay's realloc freed it: a block of the old
				 * size takes its place under the old id (after the free, so that the peak is not raised).
				 * Letting the new block stand in would keep N bytes where the program held the old size
				 * and make its retry a no-op; marking the id dead leaked the new block and skipped those
				 * requests (replay/failed_realloc_keeps_old_block_live). A memalign's alignment is not
				 * known here: malloc. */
				tab[o->in] = os ? os_malloc(want[o->in]) : malloc(want[o->in]);
				live[o->in] = tab[o->in] != NULL; /* NULL: its later requests are skipped */
			}
		}
		if (o->out && !res && o->kind == OP_REALLOC) {
			/* the reverse: the trace's realloc succeeded, this one failed and left the old block as it was.
			 * In the program the old allocation ended and the new one lives on: the old block stands in for
			 * the new one, so that the program's requests on it are replayed and its free frees it (else the
			 * old block stayed live to the end and those requests were skipped) */
			res = p;
			live[o->in] = 0;
		}
		if (o->out && res) {
			tab[o->out] = res;
			live[o->out] = 1;
			want[o->out] = o->kind == OP_CALLOC ? o->a * o->b : o->kind == OP_MALLOC ? o->a : o->b;
		}
	}
	r.ns = now_ns() - t0;
	marker(MARK_END, sizeof MARK_END - 1);
	r.brk1 = (uint64_t)(uintptr_t)sbrk(0);
	for (uint64_t id = 1; id <= h->nids; id++)
		if (live[id]) {
			r.live_blocks++;
			r.live_bytes += want[id];
		}
	if (r.has_osmem)
		os_stats(&r.st1);
	r.mi = mallinfo2();
	r.classic_calls = os_api;
	write_all(rfd, &r, sizeof r);
	close(rfd);
	exit(0); /* destructors run: osmem flushes its trace */
}

// ------------------------------------------------------------------
// The parent: small helpers
// ------------------------------------------------------------------

static const char *prog = "osmem-replay";

static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static unsigned warnings;
#define MAX_WARNINGS 10

static void warn(const char *fmt, ...)
{
	va_list ap;
	if (++warnings > MAX_WARNINGS)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "%s: warning: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		die("out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		die("out of memory");
	return d;
}

static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;
	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		die("out of memory");
	va_end(ap);
	return s;
}

// ------------------------------------------------------------------
// Trace addresses -> allocations (open addressing; an address keeps its latest allocation, live or not)
// ------------------------------------------------------------------

#define HEAP_BIT (1ull << 63) /* H+0x... offsets; absolute (mapped) addresses are below 2^63 */

struct slot { uint64_t key; uint32_t id; uint8_t live; };
static struct slot *slots;
static size_t nslots, nused;

static struct slot *lookup(uint64_t key, bool insert)
{
	if (insert && (nused + 1) * 2 > nslots) {
		struct slot *old = slots;
		size_t n = nslots;
		nslots = nslots ? nslots * 2 : 1024;
		slots = calloc(nslots, sizeof *slots);
		if (!slots)
			die("out of memory");
		nused = 0;
		for (size_t i = 0; i < n; i++)
			if (old[i].key)
				*lookup(old[i].key, true) = old[i];
		free(old);
	}
	if (!nslots)
		return NULL;
	size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (nslots - 1);
	while (slots[i].key && slots[i].key != key)
		i = (i + 1) & (nslots - 1);
	if (slots[i].key)
		return &slots[i];
	if (!insert)
		return NULL;
	slots[i].key = key;
	nused++;
	return &slots[i];
}

/* "H+0x7e8", "0x7f...", "NULL" -> key (0 for NULL); false when it is none of them. */
static bool parse_addr(const char *s, uint64_t *key)
{
	char *end;
	if (strcmp(s, "NULL") == 0 || strcmp(s, "(nil)") == 0) {
		*key = 0;
		return true;
	}
	bool heap = strncmp(s, "H+", 2) == 0;
	if (heap)
		s += 2;
	if (strncmp(s, "0x", 2) != 0)
		return false;
	errno = 0;
	uint64_t v = strtoull(s, &end, 16);
	if (errno || *end || (v & HEAP_BIT))
		return false;
	*key = heap ? v | HEAP_BIT : v;
	return *key != 0;
}

static bool parse_size(const char *s, uint64_t *v)
{
	char *end;
	if (!*s || *s == '-')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return !errno && !*end;
}

// ------------------------------------------------------------------
// Parsing the trace
// ------------------------------------------------------------------

/* Decisions that depend on time (docs/TRACE.md): a top's trim 100 ms after its trim_wait, the decay's madvise of
 * idle blocks and its doubled delay, a kept mapping released after a second unused, pool pages discarded after a
 * second. The replay makes its calls one after another, without the program's pauses, so the default column takes
 * them at other requests or not at all; its figures may differ from the trace's there. Under a malloc_trim (or
 * the front's part of it) the same lines come at once, and a release just before a reuse is the tail of the kept
 * mapping that serves the request: neither depends on time. A calloc's madvise after its reuse neither. */
enum { TIMED_TRIM_WAIT, TIMED_TRIM, TIMED_DECAY_NS, TIMED_MADVISE, TIMED_RELEASE, TIMED_PAGE_DISCARD, TIMED_KINDS };
static const char *const timed_names[] = { "trim_wait", "trim", "decay_ns", "madvise", "release", "page_discard" };

struct trace {
	struct op *ops;
	size_t nops, cap;
	uint32_t nids;
	char profile[32];
	unsigned align, threads;
	size_t counts[OP_KINDS]; /* by op kind */
	size_t unknown_ptr;     /* free/realloc of a pointer the trace never returned: not replayed */
	size_t trims;           /* decision lines outside any request: a trace older than malloc_trim's request line */
	size_t unfinished;
	size_t slots;           /* `slot C` lines (front-served malloc/calloc), replayed as malloc(C) */
	size_t front_skipped;   /* `thread_exit`, `front_trim`, `idle`: not requests of the program */
	size_t timed[TIMED_KINDS]; /* decisions that depend on time, by kind */
	bool classic_api, dropin_api;
	/* while parsing: the current request is a trim; it has had a reuse; a release not yet known for a tail */
	bool in_trim, reused, release_pending;
};

/* The request's release that no reuse followed: a kept mapping let go, a second unused (or one too many). */
static void timed_flush(struct trace *t)
{
	if (t->release_pending)
		t->timed[TIMED_RELEASE]++;
	t->release_pending = false;
}

static void timed_decision(struct trace *t, const char *line)
{
	const char *name = line + strspn(line, " ");
	size_t len = strcspn(name, " ");
	bool reuse = len == 5 && strncmp(name, "reuse", 5) == 0;
	if (reuse)
		t->release_pending = false; /* the tail of the kept mapping that serves this request */
	timed_flush(t);
	t->reused |= reuse;
	if (t->in_trim)
		return;
	for (size_t k = 0; k < TIMED_KINDS; k++)
		if (strlen(timed_names[k]) == len && strncmp(name, timed_names[k], len) == 0) {
			if (k == TIMED_RELEASE)
				t->release_pending = true;
			else if (k != TIMED_MADVISE || !t->reused)
				t->timed[k]++;
		}
}

static size_t timed_total(const struct trace *t)
{
	size_t n = 0;
	for (size_t k = 0; k < TIMED_KINDS; k++)
		n += t->timed[k];
	return n;
}

static void add_op(struct trace *t, struct op o)
{
	if (t->nops == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 4096;
		t->ops = xrealloc(t->ops, t->cap * sizeof *t->ops);
	}
	t->ops[t->nops++] = o;
	t->counts[o.kind]++;
}

/* A request waiting for its "= PTR" line; `drop`: it is not replayed, only its result line is consumed. */
struct pending { bool on, drop; struct op op; uint64_t in_key; };

static void finish(struct trace *t, struct pending *pd, uint64_t res)
{
	struct op o = pd->op;
	pd->on = false;
	if (pd->drop)
		return;
	/* realloc: case 2 (size 0) frees; a moved or resized block ends the old allocation; NULL otherwise is a
	 * failure that leaves it live. A realloc of a free block (case 3) changes nothing. */
	if (o.kind == OP_REALLOC && (o.b == 0 || res))
		lookup(pd->in_key, false)->live = 0;
	if (res) {
		struct slot *s = lookup(res, true);
		if (s->live)
			warn("line %u: %s returned an address that is still live; the old allocation is forgotten",
			     o.line, op_names[o.kind]);
		s->id = ++t->nids;
		s->live = 1;
		o.out = s->id;
	}
	add_op(t, o);
}

/* A line that cannot be read. A program killed while it traced leaves its last line cut short (its buffers are
 * written 64 KiB at a time, wherever a line ends: "= H+0x", "mallo"): that line is said once and dropped, the rest
 * replayed. Anywhere else the trace is not one, and it is refused. Returns (only for the last line) the text of
 * the warning, which parse_trace completes. */
static char *bad_line(bool last, const char *path, unsigned lineno, const char *fmt, ...)
{
	va_list ap;
	char *why;
	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	if (!last)
		die("%s:%u: %s", path, lineno, why);
	return why;
}

static void parse_trace(const char *path, struct trace *t)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	char *line = NULL, *cut = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned lineno = 0;
	struct pending pd = { .on = false };
	bool after_result = false;
	strcpy(t->profile, "?");
	while (!cut && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		int next = getc(f);
		bool last = next == EOF;
		if (!last)
			ungetc(next, f);
		if (last && len && line[len - 1] != '\n') {
			/* a line is written whole with its newline: one without it was cut, even where what is left
			 * reads as a line ("= H+0xfbea40" of "= H+0xfbea400": the observability review of session 56) */
			cut = bad_line(true, path, lineno, "no newline at its end");
			continue;
		}
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (!len)
			continue;
		if (line[0] == ' ') { /* a decision */
			/* Decisions after a result belong to no request: a trace older than malloc_trim's request line. */
			if (after_result)
				t->trims++;
			else
				timed_decision(t, line);
			continue;
		}
		after_result = false;
		timed_flush(t); /* a result or another request: the request's decisions are over */
		if (strncmp(line, "osmem-trace ", 12) == 0) {
			char *p = strstr(line, "profile="), *a = strstr(line, "align=");
			if (p)
				sscanf(p + 8, "%31s", t->profile);
			if (a)
				t->align = (unsigned)strtoul(a + 6, NULL, 10);
			continue;
		}
		char *tok[8];
		int n = 0;
		for (char *s = strtok(line, " "); s && n < 8; s = strtok(NULL, " "))
			tok[n++] = s;
		if (strcmp(tok[0], "=") == 0) {
			uint64_t res;
			if (!pd.on) {
				warn("line %u: a result with no request", lineno);
				continue;
			}
			if (n != 2 || !parse_addr(tok[1], &res)) {
				cut = bad_line(last, path, lineno, "bad result '%s'%s", n > 1 ? tok[1] : "",
					       n > 2 ? " and more" : "");
				continue;
			}
			finish(t, &pd, res);
			after_result = true;
			continue;
		}
		if (pd.on) {
			warn("line %u: the request of line %u has no result; dropped", lineno, pd.op.line);
			pd.on = false;
			t->unfinished++;
		}
		if (n < 2 || strncmp(tok[n - 1], "t=", 2) != 0) {
			cut = bad_line(last, path, lineno, "not a trace line (docs/TRACE.md)");
			continue;
		}
		unsigned tid = (unsigned)strtoul(tok[n - 1] + 2, NULL, 10);
		if (tid > t->threads)
			t->threads = tid;
		n--;
		const char *name = tok[0];
		t->in_trim = strcmp(name, "malloc_trim") == 0 || strcmp(name, "front_trim") == 0;
		t->reused = false;
		if (strcmp(name, "thread_exit") == 0 || strcmp(name, "front_trim") == 0 || strcmp(name, "idle") == 0) {
			t->front_skipped++;
			continue;
		}
		bool os = strncmp(name, "os_", 3) == 0;
		if (os)
			name += 3;
		struct op o = { .classic_api = os, .line = lineno };
		uint64_t key = 0;
		bool ok, allocating = true;
		if (strcmp(name, "malloc") == 0) {
			o.kind = OP_MALLOC;
			ok = n == 2 && parse_size(tok[1], &o.a);
		} else if (strcmp(name, "slot") == 0 && !os) { /* the front's size class: the most it can have been */
			o.kind = OP_MALLOC;
			ok = n == 2 && parse_size(tok[1], &o.a);
			t->slots++;
		} else if (strcmp(name, "calloc") == 0) {
			o.kind = OP_CALLOC;
			ok = n == 3 && parse_size(tok[1], &o.a) && parse_size(tok[2], &o.b);
		} else if (strcmp(name, "realloc") == 0) {
			o.kind = OP_REALLOC;
			ok = n == 3 && parse_addr(tok[1], &key) && key && parse_size(tok[2], &o.b);
		} else if (strcmp(name, "free") == 0) {
			o.kind = OP_FREE;
			allocating = false;
			ok = n == 2 && parse_addr(tok[1], &key) && key;
		} else if (strcmp(name, "malloc_trim") == 0 && !os) {
			o.kind = OP_TRIM;
			allocating = false;
			ok = n == 2 && parse_size(tok[1], &o.a);
		} else if (strcmp(name, "memalign") == 0 && !os) {
			o.kind = OP_MEMALIGN;
			ok = n == 3 && parse_size(tok[1], &o.a) && parse_size(tok[2], &o.b);
		} else {
			cut = bad_line(last, path, lineno, "unknown request '%s'", tok[0]);
			continue;
		}
		if (!ok) {
			cut = bad_line(last, path, lineno, "bad arguments to %s", tok[0]);
			continue;
		}
		if (os)
			t->classic_api = true;
		else
			t->dropin_api = true;
		if (key) {
			struct slot *s = lookup(key, false);
			if (s && s->live) {
				o.in = s->id;
			} else if (s && os && o.kind == OP_REALLOC) {
				o.kind = OP_REALLOC_FREED; /* case 3: the block that the replay freed under this address */
				o.in = s->id;
			} else {
				warn("line %u: %s of %s, which is not live in the trace (a forked child's trace, or a bad "
				     "pointer); not replayed", lineno, tok[0], tok[1]);
				t->unknown_ptr++;
				if (allocating) /* still consume its result line */
					pd = (struct pending){ .on = true, .drop = true, .op = o };
				continue;
			}
		}
		if (!allocating) {
			if (key)
				lookup(key, false)->live = 0;
			add_op(t, o);
			continue;
		}
		pd = (struct pending){ .on = true, .op = o, .in_key = key };
	}
	timed_flush(t);
	if (cut) /* one warning, also for the request whose result it was */
		warn("line %u, the trace's last, is cut short (%s): a program killed while it traced? Dropped%s", lineno,
		     cut, pd.on ? ", with the request it ends" : "");
	else if (pd.on)
		warn("the request of line %u has no result (a truncated trace?); dropped", pd.op.line);
	if (pd.on)
		t->unfinished++;
	free(cut);
	free(line);
	fclose(f);
}

// ------------------------------------------------------------------
// Running the children
// ------------------------------------------------------------------

struct column {
	const char *name;        /* classic, default, glibc */
	const char *lib;         /* preloaded library, NULL for glibc */
	const char *profile;     /* OSMEM_PROFILE */
	char *trace_out;
	bool ok;
	char *error;
	struct result r;         /* from the measured run */
	uint64_t best_ns;
	bool counted;            /* strace saw both markers */
	uint64_t brk, mmap, munmap, mremap, madvise;
	uint64_t peak, final_brk, final_mapped;
	char *strace_log;
};

static size_t page;

static uint64_t page_up(uint64_t n) { return (n + page - 1) & ~(uint64_t)(page - 1); }

/* The environment of a child: ours without LD_PRELOAD and OSMEM_*, plus `extra` (NULL-terminated). */
static char **child_env(char **extra)
{
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	for (char **e = extra; e && *e; e++)
		k++;
	char **env = xrealloc(NULL, (n + k + 1) * sizeof *env);
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0 && strncmp(environ[i], "OSMEM_", 6) != 0)
			env[m++] = environ[i];
	for (size_t i = 0; i < k; i++)
		env[m++] = extra[i];
	env[m] = NULL;
	return env;
}

static int run(char **argv, char **env, const char *out_path)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (!pid) {
		int fd = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			close(fd);
		}
		execve(argv[0], argv, env);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, argv[0], strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	return st;
}

static char *status_text(int st)
{
	if (WIFSIGNALED(st))
		return fmt("killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	return fmt("exit status %d", WEXITSTATUS(st));
}

static bool read_result(const char *path, struct result *r)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, r, sizeof *r);
	close(fd);
	return n == (ssize_t)sizeof *r && r->magic == RESULT_MAGIC;
}

/* The anonymous mappings made during the replay, as the strace log shows them: sorted, disjoint ranges, each
 * accessible or not. Only accessible bytes are memory: a PROT_NONE mapping (the default profile's malloc(0)
 * reservation, a released front segment) is address space until an mprotect opens it, and a mapping laid over
 * another (MAP_FIXED: the front gives a segment's memory back by mapping PROT_NONE over it) replaces what was
 * there instead of adding to it. A plain byte count added every mmap and counted those twice or as memory. */
struct span { uint64_t lo, hi; bool acc; };
struct spans { struct span *v; size_t n, cap; uint64_t acc_bytes; };

/* The index of the first range that ends after addr. */
static size_t spans_find(const struct spans *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->v[mid].hi <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void spans_insert(struct spans *s, size_t i, struct span x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
	s->v[i] = x;
	s->n++;
	if (x.acc)
		s->acc_bytes += x.hi - x.lo;
}

/* A range that holds addr inside it becomes two that meet there, so that a change can start or end at addr. */
static void spans_split(struct spans *s, uint64_t addr)
{
	size_t i = spans_find(s, addr);
	if (i == s->n || s->v[i].lo >= addr)
		return;
	struct span tail = s->v[i];
	tail.lo = addr;
	s->v[i].hi = addr;
	if (tail.acc)
		s->acc_bytes -= tail.hi - tail.lo; /* spans_insert adds it back */
	spans_insert(s, i + 1, tail);
}

/* Forgets [lo, hi) (munmap, or the place of a new mapping); returns where a range from lo goes. */
static size_t spans_cut(struct spans *s, uint64_t lo, uint64_t hi)
{
	spans_split(s, lo);
	spans_split(s, hi);
	size_t i = spans_find(s, lo), j = i;
	for (; j < s->n && s->v[j].lo < hi; j++)
		if (s->v[j].acc)
			s->acc_bytes -= s->v[j].hi - s->v[j].lo;
	memmove(&s->v[i], &s->v[j], (s->n - j) * sizeof *s->v);
	s->n -= j - i;
	return i;
}

static void spans_map(struct spans *s, uint64_t lo, uint64_t hi, bool acc)
{
	if (lo < hi)
		spans_insert(s, spans_cut(s, lo, hi), (struct span){ lo, hi, acc });
}

/* mprotect: the known parts of [lo, hi) change; a mapping made before the replay stays uncounted. */
static void spans_protect(struct spans *s, uint64_t lo, uint64_t hi, bool acc)
{
	spans_split(s, lo);
	spans_split(s, hi);
	for (size_t i = spans_find(s, lo); i < s->n && s->v[i].lo < hi; i++)
		if (s->v[i].acc != acc) {
			s->v[i].acc = acc;
			if (acc)
				s->acc_bytes += s->v[i].hi - s->v[i].lo;
			else
				s->acc_bytes -= s->v[i].hi - s->v[i].lo;
		}
}

/* The range holding addr: 1 accessible, 0 PROT_NONE, -1 not made during the replay. */
static int spans_at(const struct spans *s, uint64_t addr)
{
	size_t i = spans_find(s, addr);
	return i < s->n && s->v[i].lo <= addr ? s->v[i].acc : -1;
}

/* The i-th argument of a strace line's call ("mmap(NULL, 4096, PROT_NONE, ..."), NULL past the last. */
static const char *strace_arg(const char *s, int i)
{
	s = strchr(s, '(');
	for (; s && i > 0; i--)
		s = strchr(s + 1, ',');
	if (!s)
		return NULL;
	s++;
	while (*s == ' ')
		s++;
	return s;
}

static uint64_t strace_num(const char *s, int i)
{
	const char *a = strace_arg(s, i);
	return a ? strtoull(a, NULL, 0) : 0; /* NULL reads as 0 */
}

/* The strace log: count the calls between the markers and follow the footprint. */
static bool parse_strace(struct column *c, const char *path, uint64_t brk0)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char *line = NULL;
	size_t cap = 0;
	int state = 0; /* 0 before begin, 1 inside, 2 after end */
	uint64_t cur = brk0;
	struct spans maps = { .v = NULL };
	while (getline(&line, &cap, f) >= 0 && state < 2) {
		char *s = line;
		while (*s >= '0' && *s <= '9') /* the pid column of -f */
			s++;
		while (*s == ' ')
			s++;
		if (strncmp(s, "write(", 6) == 0) {
			if (strstr(s, MARK_BEGIN))
				state = 1;
			else if (strstr(s, MARK_END))
				state = 2;
			continue;
		}
		if (state != 1)
			continue;
		char *eq = strrchr(s, '=');
		bool failed = !eq || strtoll(eq + 1, NULL, 0) == -1;
		unsigned long long ret = eq ? strtoull(eq + 1, NULL, 0) : 0;
		if (strncmp(s, "brk(", 4) == 0) {
			c->brk++;
			if (eq)
				cur = ret;
		} else if (strncmp(s, "mmap(", 5) == 0) {
			c->mmap++;
			const char *prot = strace_arg(s, 2), *flags = strace_arg(s, 3);
			if (!failed && flags) { /* whatever was there is replaced; only anonymous memory counts */
				uint64_t end = ret + page_up(strace_num(s, 1));
				if (strstr(flags, "MAP_ANONYMOUS"))
					spans_map(&maps, ret, end, strncmp(prot, "PROT_NONE", 9) != 0);
				else
					spans_cut(&maps, ret, end);
			}
		} else if (strncmp(s, "munmap(", 7) == 0) {
			c->munmap++;
			uint64_t a = strace_num(s, 0);
			if (!failed)
				spans_cut(&maps, a, a + page_up(strace_num(s, 1)));
		} else if (strncmp(s, "mprotect(", 9) == 0) { /* followed for the footprint, not counted as a call */
			uint64_t a = strace_num(s, 0);
			const char *prot = strace_arg(s, 2);
			if (!failed && prot)
				spans_protect(&maps, a, a + page_up(strace_num(s, 1)), strncmp(prot, "PROT_NONE", 9) != 0);
		} else if (strncmp(s, "mremap(", 7) == 0) {
			c->mremap++;
			uint64_t a = strace_num(s, 0);
			int acc = spans_at(&maps, a);
			if (!failed) {
				spans_cut(&maps, a, a + page_up(strace_num(s, 1)));
				if (acc >= 0) /* the pages keep their protection where they go */
					spans_map(&maps, ret, ret + page_up(strace_num(s, 2)), acc);
			}
		} else if (strncmp(s, "madvise(", 8) == 0) {
			c->madvise++;
		}
		uint64_t fp = (cur > brk0 ? cur - brk0 : 0) + maps.acc_bytes;
		if (fp > c->peak)
			c->peak = fp;
	}
	free(line);
	free(maps.v);
	fclose(f);
	c->final_brk = cur > brk0 ? cur - brk0 : 0;
	c->final_mapped = maps.acc_bytes;
	return state == 2;
}

static char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/bin:/bin";
	char *copy = xstrdup(path);
	char *found = NULL;
	for (char *d = strtok(copy, ":"); d && !found; d = strtok(NULL, ":")) {
		char *cand = fmt("%s/%s", *d ? d : ".", name);
		if (access(cand, X_OK) == 0)
			found = cand;
		else
			free(cand);
	}
	free(copy);
	return found;
}

static char *absolute(const char *p)
{
	char *r = realpath(p, NULL);
	if (!r)
		die("%s: %s", p, strerror(errno));
	return r;
}

/* libosmem-malloc.so next to this executable, like tools/osmem-run: ../lib (installed), ../build, or here. */
static char *find_lib(const char *self_dir)
{
	const char *cands[] = { "%s/libosmem-malloc.so", "%s/../lib/libosmem-malloc.so", "%s/../build/libosmem-malloc.so" };
	for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
		char *c = fmt(cands[i], self_dir);
		if (access(c, R_OK) == 0)
			return absolute(c);
		free(c);
	}
	return NULL;
}

// ------------------------------------------------------------------
// The report
// ------------------------------------------------------------------

/* Fragmentation from mallinfo2: 1 - L / fordblks, with L = max(keepcost, fordblks / free chunks) a lower bound
 * on the largest free block. osmem's mallinfo2 reports its largest free block as keepcost: exact. glibc's
 * keepcost is its top chunk: an upper bound on the fragmentation. */
static double frag_mallinfo2(const struct mallinfo2 *mi)
{
	if (!mi->fordblks)
		return 0.0;
	double largest = (double)mi->keepcost;
	size_t chunks = mi->ordblks + mi->smblks;
	if (chunks && (double)mi->fordblks / (double)chunks > largest)
		largest = (double)mi->fordblks / (double)chunks;
	double f = 1.0 - largest / (double)mi->fordblks;
	return f < 0 ? 0 : f;
}

/* osmem: os_stats.fragmentation, which its mallinfo2 gives too (libosmem.so, which has no mallinfo2, only the
 * former). Others: the mallinfo2 bound. */
static double frag_of(const struct column *c)
{
	return c->r.has_osmem ? c->r.st1.fragmentation : frag_mallinfo2(&c->r.mi);
}

static bool frag_exact(const struct column *c) { return c->r.has_osmem; }

static const char *DEF_PEAK =
	"(program break - break when the replay began) + page-rounded bytes of the anonymous mappings made during "
	"the replay, still mapped and accessible, followed through strace (PROT_NONE is address space, not memory: "
	"it counts from the mprotect that opens it; a mapping laid over another replaces it); peak: its maximum over "
	"the replay, final: at its end";
static const char *DEF_FRAG =
	"1 - largest free block / free bytes, after the replay. osmem: os_stats.fragmentation, exact. glibc, which "
	"does not report its largest free chunk: from mallinfo2, 1 - max(keepcost, fordblks / (ordblks + smblks)) / "
	"fordblks, where keepcost is only the top chunk and the mean free chunk is another lower bound on the largest, "
	"so the value is an upper bound (marked <=); the same formula on osmem's mallinfo2 (whose keepcost is its "
	"largest free block) gives exactly os_stats.fragmentation, except that the default profile's fordblks also "
	"counts the free slots of its front (per-thread caches)";
static const char *DEF_SYS =
	"brk, mmap, munmap, and other = mremap + madvise, counted by strace between two marker write(2)s "
	"around the replay (the loader's and the replayer's own calls are not counted)";
static const char *DEF_TIME = "the replay loop only, in runs without strace or tracing: the fastest of N";
static const char *DEF_LIVE = "bytes requested by the allocations still live after the replay";

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void print_json(const char *trace_path, const struct trace *t, struct column *cols, int ncols, int repeat)
{
	printf("{\n  \"trace\": ");
	json_str(trace_path);
	printf(",\n  \"profile\": ");
	json_str(t->profile);
	printf(", \"align\": %u, \"threads\": %u,\n", t->align, t->threads);
	printf("  \"requests\": {\"total\": %zu", t->nops);
	for (size_t k = 0; k < OP_KINDS; k++)
		printf(", \"%s\": %zu", op_names[k], t->counts[k]);
	printf(", \"not_replayable\": %zu, \"malloc_trim_events\": %zu, \"front_slots\": %zu, \"front_skipped\": %zu"
	       ", \"time_dependent_decisions\": %zu},\n",
	       t->unknown_ptr + t->unfinished, t->trims, t->slots, t->front_skipped, timed_total(t));
	printf("  \"replay\": \"single-threaded, in the trace's order, one fresh process per allocator\",\n");
	printf("  \"timing_runs\": %d,\n  \"columns\": {\n", repeat);
	for (int i = 0; i < ncols; i++) {
		struct column *c = &cols[i];
		printf("    \"%s\": {\"ok\": %s", c->name, c->ok ? "true" : "false");
		if (!c->ok) {
			printf(", \"error\": ");
			json_str(c->error ? c->error : "?");
			printf("}%s\n", i + 1 < ncols ? "," : "");
			continue;
		}
		printf(", \"library\": ");
		if (c->lib)
			json_str(c->lib);
		else
			printf("null");
		printf(", \"classic_api_calls\": %s", c->r.classic_calls ? "true" : "false");
		printf(",\n      \"requests_replayed\": %" PRIu64 ", \"requests_skipped\": %" PRIu64
		       ", \"result_mismatches\": %" PRIu64 ",\n",
		       c->r.replayed, c->r.skipped, c->r.mismatches);
		if (c->counted)
			printf("      \"peak_heap_bytes\": %" PRIu64 ", \"final_heap_bytes\": %" PRIu64
			       ", \"final_brk_bytes\": %" PRIu64 ", \"final_mapped_bytes\": %" PRIu64 ",\n",
			       c->peak, c->final_brk + c->final_mapped, c->final_brk, c->final_mapped);
		else
			printf("      \"peak_heap_bytes\": null, \"final_heap_bytes\": null, \"final_brk_bytes\": %" PRIu64
			       ", \"final_mapped_bytes\": null,\n", c->r.brk1 - c->r.brk0);
		printf("      \"live_bytes\": %" PRIu64 ", \"live_blocks\": %" PRIu64 ",\n", c->r.live_bytes,
		       c->r.live_blocks);
		printf("      \"fragmentation\": %.6f, \"fragmentation_exact\": %s, \"fragmentation_mallinfo2\": %.6f,\n",
		       frag_of(c), frag_exact(c) ? "true" : "false", frag_mallinfo2(&c->r.mi));
		if (c->counted)
			printf("      \"syscalls\": {\"brk\": %" PRIu64 ", \"mmap\": %" PRIu64 ", \"munmap\": %" PRIu64
			       ", \"mremap\": %" PRIu64 ", \"madvise\": %" PRIu64 ", \"other\": %" PRIu64 "},\n",
			       c->brk, c->mmap, c->munmap, c->mremap, c->madvise, c->mremap + c->madvise);
		else
			printf("      \"syscalls\": null,\n");
		printf("      \"wall_time_ns\": %" PRIu64 ",\n", c->best_ns);
		const struct mallinfo2 *m = &c->r.mi;
		printf("      \"mallinfo2\": {\"arena\": %zu, \"ordblks\": %zu, \"smblks\": %zu, \"hblks\": %zu, "
		       "\"hblkhd\": %zu, \"uordblks\": %zu, \"fsmblks\": %zu, \"fordblks\": %zu, \"keepcost\": %zu},\n",
		       m->arena, m->ordblks, m->smblks, m->hblks, m->hblkhd, m->uordblks, m->fsmblks, m->fordblks,
		       m->keepcost);
		if (c->r.has_osmem) {
			const struct os_stats *a = &c->r.st0, *b = &c->r.st1;
			printf("      \"os_stats\": {\"peak_in_use\": %zu, \"bytes_in_use\": %zu, \"heap_size\": %zu, "
			       "\"mapped_bytes\": %zu, \"mapped_count\": %zu, \"free_bytes\": %zu, \"free_blocks\": %zu, "
			       "\"largest_free\": %zu, \"fragmentation\": %.6f, \"allocations\": %zu, \"frees\": %zu,\n"
			       "        \"brk_calls\": %zu, \"mmap_calls\": %zu, \"munmap_calls\": %zu, \"mremap_calls\": %zu, "
			       "\"madvise_calls\": %zu, \"splits\": %zu, \"coalesces\": %zu, \"trims\": %zu},\n",
			       b->peak_in_use, b->bytes_in_use, b->heap_size, b->mapped_bytes, b->mapped_count, b->free_bytes,
			       b->free_blocks, b->largest_free, b->fragmentation, b->allocations - a->allocations,
			       b->frees - a->frees, b->brk_calls - a->brk_calls, b->mmap_calls - a->mmap_calls,
			       b->munmap_calls - a->munmap_calls, b->mremap_calls - a->mremap_calls,
			       b->madvise_calls - a->madvise_calls, b->splits - a->splits, b->coalesces - a->coalesces,
			       b->trims - a->trims);
		} else {
			printf("      \"os_stats\": null,\n");
		}
		printf("      \"trace_out\": ");
		if (c->trace_out)
			json_str(c->trace_out);
		else
			printf("null");
		printf("}%s\n", i + 1 < ncols ? "," : "");
	}
	printf("  },\n  \"definitions\": {\"heap_bytes\": ");
	json_str(DEF_PEAK);
	printf(",\n    \"fragmentation\": ");
	json_str(DEF_FRAG);
	printf(",\n    \"syscalls\": ");
	json_str(DEF_SYS);
	printf(",\n    \"wall_time\": ");
	json_str(DEF_TIME);
	printf(",\n    \"live_bytes\": ");
	json_str(DEF_LIVE);
	printf("}\n}\n");
}

static void row(const char *label, struct column *cols, int ncols, char *(*cell)(struct column *))
{
	printf("%-30s", label);
	for (int i = 0; i < ncols; i++) {
		char *s = cols[i].ok ? cell(&cols[i]) : xstrdup("FAILED");
		printf(" %14s", s);
		free(s);
	}
	putchar('\n');
}

#define U64 "%" PRIu64
static char *c_replayed(struct column *c) { return fmt(U64, c->r.replayed); }
static char *c_skipped(struct column *c) { return fmt(U64, c->r.skipped); }
static char *c_mismatch(struct column *c) { return fmt(U64, c->r.mismatches); }
static char *c_peak(struct column *c) { return c->counted ? fmt(U64, c->peak) : xstrdup("n/a"); }
static char *c_final(struct column *c)
{
	return c->counted ? fmt(U64, c->final_brk + c->final_mapped) : xstrdup("n/a");
}
static char *c_live(struct column *c) { return fmt(U64, c->r.live_bytes); }
static char *c_frag(struct column *c)
{
	return fmt("%s%.2f%%", frag_exact(c) ? "" : "<=", 100.0 * frag_of(c));
}
static char *c_brk(struct column *c) { return c->counted ? fmt(U64, c->brk) : xstrdup("n/a"); }
static char *c_mmap(struct column *c) { return c->counted ? fmt(U64, c->mmap) : xstrdup("n/a"); }
static char *c_munmap(struct column *c) { return c->counted ? fmt(U64, c->munmap) : xstrdup("n/a"); }
static char *c_other(struct column *c)
{
	return c->counted ? fmt(U64 " (" U64 "+" U64 ")", c->mremap + c->madvise, c->mremap, c->madvise)
			  : xstrdup("n/a");
}
static char *c_time(struct column *c) { return fmt("%.3f", (double)c->best_ns / 1e6); }

static void print_table(const char *trace_path, const struct trace *t, struct column *cols, int ncols, int repeat)
{
	printf("osmem-replay: %s\n", trace_path);
	/* every kind of op_names, so that the parts add up to the total */
	printf("  trace: profile=%s align=%u, %zu requests (%zu malloc, %zu calloc, %zu realloc, %zu free, %zu memalign, "
	       "%zu malloc_trim", t->profile, t->align, t->nops, t->counts[OP_MALLOC], t->counts[OP_CALLOC],
	       t->counts[OP_REALLOC], t->counts[OP_FREE], t->counts[OP_MEMALIGN], t->counts[OP_TRIM]);
	if (t->counts[OP_REALLOC_FREED])
		printf(", %zu realloc of a free block", t->counts[OP_REALLOC_FREED]);
	if (t->unknown_ptr + t->unfinished)
		printf("; %zu not replayable", t->unknown_ptr + t->unfinished);
	if (t->slots)
		printf("; %zu of the mallocs are front `slot C` lines, replayed as malloc(C)", t->slots);
	printf("), %u thread%s%s\n", t->threads, t->threads == 1 ? "" : "s",
	       t->classic_api ? (t->dropin_api ? ", classic and drop-in API" : ", classic API (os_*)") : "");
	printf("  replay: single-threaded, in the trace's order, each allocator in a fresh process\n\n");
	printf("%-30s", "");
	for (int i = 0; i < ncols; i++)
		printf(" %14s", cols[i].name);
	putchar('\n');
	row("requests replayed", cols, ncols, c_replayed);
	bool any_skip = false, any_mis = false;
	for (int i = 0; i < ncols; i++) {
		any_skip |= cols[i].ok && cols[i].r.skipped;
		any_mis |= cols[i].ok && cols[i].r.mismatches;
	}
	if (any_skip)
		row("requests skipped", cols, ncols, c_skipped);
	if (any_mis)
		row("results unlike the trace's", cols, ncols, c_mismatch);
	row("peak heap bytes", cols, ncols, c_peak);
	row("final heap bytes", cols, ncols, c_final);
	row("live bytes at the end", cols, ncols, c_live);
	row("fragmentation", cols, ncols, c_frag);
	row("brk calls", cols, ncols, c_brk);
	row("mmap calls", cols, ncols, c_mmap);
	row("munmap calls", cols, ncols, c_munmap);
	row("other calls (mremap+madvise)", cols, ncols, c_other);
	row("wall time (ms)", cols, ncols, c_time);
	int notes = 0;
	for (int i = 0; i < ncols; i++) {
		if (!cols[i].ok || cols[i].trace_out)
			printf("%s", notes++ ? "" : "\n");
		if (!cols[i].ok)
			printf("%s: FAILED: %s\n", cols[i].name, cols[i].error ? cols[i].error : "?");
		else if (cols[i].trace_out)
			printf("%s: its decision trace is %s\n", cols[i].name, cols[i].trace_out);
	}
	printf("\ndefinitions:\n  heap bytes: %s\n  fragmentation: %s\n  system calls: %s\n  wall time: %s, N = %d\n"
	       "  live bytes: %s\n", DEF_PEAK, DEF_FRAG, DEF_SYS, DEF_TIME, repeat, DEF_LIVE);
}

// ------------------------------------------------------------------
// main
// ------------------------------------------------------------------

static void usage(FILE *f)
{
	fprintf(f,
		"usage: osmem-replay TRACE [--json] [--trace-out DIR] [--lib PATH] [--repeat N] [--no-strace] [--keep]\n"
		"\n"
		"Re-runs the allocation requests of an osmem decision trace (OSMEM_TRACE=path, docs/TRACE.md) three\n"
		"times, each in a fresh process: on osmem's classic profile, on osmem's default profile and on glibc's\n"
		"malloc, and prints a side-by-side table: requests replayed, peak and final heap bytes, fragmentation,\n"
		"brk/mmap/munmap/other system calls and wall time.\n"
		"\n"
		"Only the request lines are read (the indented decision lines are ignored). Every pointer is mapped to\n"
		"the allocation that returned it (live from its '= PTR' until its free or realloc), and the same calls\n"
		"are made with the same sizes, in the same order. Threads: the requests of all threads are replayed by\n"
		"one thread, in the single order in which the trace recorded them. A trace of the classic API\n"
		"(os_malloc...; align=8) is replayed with os_* on libosmem.so for the classic column, with os_* on\n"
		"libosmem-malloc.so for the default column, and with malloc/calloc/realloc/free on glibc (where an\n"
		"os_realloc of a free block, docs/CLASSIC.md's case 3, cannot be asked and is skipped). `malloc_trim\n"
		"PAD` is replayed as malloc_trim(PAD) (a trace older than that line has only its decisions, which are\n"
		"not: a warning says so). Not replayed: frees of pointers the trace never returned (a forked child's\n"
		"trace PATH.PID frees its parent's blocks). A default-profile trace has the front's lines too:\n"
		"`slot C` (a malloc or calloc of at most C bytes, served from the size class C) is replayed as\n"
		"malloc(C); `thread_exit`, `front_trim` and `idle` are not calls of the program and are skipped. A last line\n"
		"cut short (a program killed while it traced) is dropped with a warning; an unreadable line anywhere\n"
		"else is refused. The replay has none of the program's pauses: decisions that depend on time (a\n"
		"trim after its 100 ms wait, the decay, kept mappings or pool pages let go after a second) come at\n"
		"other requests or not at all, and a note says when the trace has any.\n"
		"\n"
		"  --json           print the same report as JSON\n"
		"  --trace-out DIR  the osmem children record DIR/classic.trace and DIR/default.trace\n"
		"  --lib PATH       libosmem-malloc.so to preload (default: next to this program, ../lib, ../build)\n"
		"  --repeat N       time N runs per allocator and report the fastest (default 1)\n"
		"  --no-strace      do not run strace: no system-call counts and no peak\n"
		"  --keep           keep the temporary directory (operations, strace logs) and print its name\n");
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--child") == 0)
		return child_main(argv[2], argv[3]);
	page = (size_t)sysconf(_SC_PAGESIZE);

	const char *trace_path = NULL, *trace_out = NULL, *lib = NULL;
	bool json = false, use_strace = true, keep = false;
	int repeat = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0)
			json = true;
		else if (strcmp(a, "--no-strace") == 0)
			use_strace = false;
		else if (strcmp(a, "--keep") == 0)
			keep = true;
		else if (strcmp(a, "--trace-out") == 0 && i + 1 < argc)
			trace_out = argv[++i];
		else if (strcmp(a, "--lib") == 0 && i + 1 < argc)
			lib = argv[++i];
		else if (strcmp(a, "--repeat") == 0 && i + 1 < argc)
			repeat = atoi(argv[++i]);
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (a[0] == '-' && a[1]) {
			usage(stderr);
			return 2;
		} else if (!trace_path)
			trace_path = a;
		else {
			usage(stderr);
			return 2;
		}
	}
	if (!trace_path || repeat < 1) {
		usage(stderr);
		return 2;
	}

	char *self = realpath("/proc/self/exe", NULL);
	if (!self)
		die("cannot find this executable: %s", strerror(errno));
	char *self_dir = xstrdup(self);
	*strrchr(self_dir, '/') = 0;
	char *malloc_lib = lib ? absolute(lib) : find_lib(self_dir);
	if (!malloc_lib)
		die("libosmem-malloc.so not found next to %s (build it with make, or pass --lib)", self);
	char *lib_dir = xstrdup(malloc_lib);
	*strrchr(lib_dir, '/') = 0;

	struct trace t = { .ops = NULL };
	parse_trace(trace_path, &t);
	if (warnings > MAX_WARNINGS)
		fprintf(stderr, "%s: ... %u more warnings\n", prog, warnings - MAX_WARNINGS);
	if (!t.nops)
		die("%s: no requests to replay", trace_path);
	if (t.trims)
		warn("the trace has %zu decision lines of malloc_trim (madvise, or a trim outside any request), which "
		     "the trace does not record as a request: the replay cannot call it, and may diverge after it",
		     t.trims);
	if (timed_total(&t)) { /* a note, once: the trace is fine, only its replay cannot follow it there */
		fprintf(stderr, "%s: note: the trace has %zu decision%s that depend%s on time (", prog, timed_total(&t),
			timed_total(&t) == 1 ? "" : "s", timed_total(&t) == 1 ? "s" : "");
		for (size_t k = 0, first = 1; k < TIMED_KINDS; k++)
			if (t.timed[k]) {
				fprintf(stderr, "%s%zu %s", first ? "" : ", ", t.timed[k], timed_names[k]);
				first = 0;
			}
		fprintf(stderr, "): the replay runs without the program's pauses, so the default column may take such "
			"decisions at other requests or not at all, and its figures may differ from the trace's there "
			"(docs/TRACE.md)\n");
	}

	/* A classic-API trace recorded with libosmem.so (align=8): its classic column preloads libosmem.so. */
	char *classic_lib = malloc_lib;
	if (t.classic_api && !t.dropin_api && t.align == 8) {
		classic_lib = fmt("%s/libosmem.so", lib_dir);
		if (access(classic_lib, R_OK) != 0)
			die("%s: not found (needed for a trace of libosmem.so)", classic_lib);
	}

	const char *tmpbase = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *tmp = fmt("%s/osmem-replay.XXXXXX", tmpbase);
	if (!mkdtemp(tmp))
		die("mkdtemp: %s", strerror(errno));
	char *ops_path = fmt("%s/ops", tmp);
	FILE *of = fopen(ops_path, "wb");
	struct ops_header oh = { OPS_MAGIC, t.nops, t.nids };
	if (!of || fwrite(&oh, sizeof oh, 1, of) != 1 || fwrite(t.ops, sizeof *t.ops, t.nops, of) != t.nops ||
	    fclose(of) != 0)
		die("%s: cannot write", ops_path);

	char *strace = use_strace ? find_in_path("strace") : NULL;
	if (use_strace && !strace)
		warn("strace not found (apt-get install strace): no system-call counts and no peak");
	if (trace_out) {
		mkdir(trace_out, 0755);
		char *d = realpath(trace_out, NULL);
		if (!d)
			die("%s: %s", trace_out, strerror(errno));
		trace_out = d;
	}

	struct column cols[3] = {
		{ .name = "classic", .lib = classic_lib, .profile = "classic" },
		{ .name = "default", .lib = malloc_lib, .profile = "default" },
		{ .name = "glibc" },
	};
	int failed = 0;
	for (int i = 0; i < 3; i++) {
		struct column *c = &cols[i];
		if (trace_out && c->lib)
			c->trace_out = fmt("%s/%s.trace", trace_out, c->name);
		char *res_path = fmt("%s/%s.result", tmp, c->name);
		char *preload = c->lib ? fmt("LD_PRELOAD=%s", c->lib) : NULL;
		char *profile = c->lib ? fmt("OSMEM_PROFILE=%s", c->profile) : NULL;
		char *trace_env = c->trace_out ? fmt("OSMEM_TRACE=%s", c->trace_out) : NULL;
		char *vars[4] = { NULL }, *timed_vars[3] = { NULL };
		int nv = 0;
		if (preload) {
			vars[nv] = timed_vars[nv] = preload;
			nv++;
			vars[nv] = timed_vars[nv] = profile;
			nv++;
		}
		if (trace_env)
			vars[nv++] = trace_env;

		/* 1. the measured run: under strace, with OSMEM_TRACE when asked */
		char *child_argv[] = { self, "--child", ops_path, res_path, NULL };
		int st;
		if (strace) {
			c->strace_log = fmt("%s/%s.strace", tmp, c->name);
			char *sv[32];
			int k = 0;
			sv[k++] = strace;
			sv[k++] = "-f";
			sv[k++] = "-qq";
			sv[k++] = "-e";
			sv[k++] = "signal=none";
			sv[k++] = "-e";
			sv[k++] = "trace=brk,mmap,munmap,mremap,madvise,mprotect,write";
			sv[k++] = "-s";
			sv[k++] = "48";
			sv[k++] = "-o";
			sv[k++] = c->strace_log;
			for (int v = 0; v < nv; v++) {
				sv[k++] = "-E";
				sv[k++] = vars[v];
			}
			sv[k++] = "--";
			for (char **a = child_argv; *a; a++)
				sv[k++] = *a;
			sv[k] = NULL;
			st = run(sv, child_env(NULL), NULL);
		} else {
			st = run(child_argv, child_env(vars), NULL);
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !read_result(res_path, &c->r)) {
			c->error = fmt("the replay process failed (%s)%s", status_text(st),
				       c->trace_out ? "; its trace so far is in the trace-out file" : "");
			failed++;
			continue;
		}
		if (c->lib && !c->r.has_osmem) {
			c->error = fmt("LD_PRELOAD=%s did not take effect (no os_stats in the process)", c->lib);
			failed++;
			continue;
		}
		if (strace) {
			c->counted = parse_strace(c, c->strace_log, c->r.brk0);
			if (!c->counted)
				warn("%s: the strace log has no replay markers", c->name);
		}
		/* 2. the timed runs: no strace, no tracing */
		c->best_ns = UINT64_MAX;
		for (int rep = 0; rep < repeat; rep++) {
			struct result tr;
			st = run(child_argv, child_env(timed_vars), NULL);
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !read_result(res_path, &tr)) {
				c->error = fmt("a timed replay failed (%s)", status_text(st));
				break;
			}
			if (tr.ns < c->best_ns)
				c->best_ns = tr.ns;
		}
		if (c->error) {
			failed++;
			continue;
		}
		c->ok = true;
	}

	if (json)
		print_json(trace_path, &t, cols, 3, repeat);
	else
		print_table(trace_path, &t, cols, 3, repeat);

	if (keep) {
		fprintf(stderr, "%s: kept %s\n", prog, tmp);
	} else {
		unlink(ops_path);
		for (int i = 0; i < 3; i++) {
			char *r = fmt("%s/%s.result", tmp, cols[i].name);
			unlink(r);
			free(r);
			if (cols[i].strace_log)
				unlink(cols[i].strace_log);
		}
		rmdir(tmp);
	}
	return failed ? 1 : 0;
}
