/* malloc_death: bad pointers given to the drop-in free/realloc are reported and abort (docs/CLASSIC.md, "Bad
 * pointers", and Part 2).
 *
 * Each case runs in a forked child: the child makes the one bad call with its standard error on a pipe; the parent
 * reads the pipe and requires that the child died of SIGABRT and wrote `osmem: <api>(): <what> 0x<ptr>` with the
 * exact pointer (printed with %lx). The blocks involved are allocated in the parent before the fork, so the
 * parent's heap holds them too: the parent frees each of them exactly once afterwards, and its heap must pass
 * os_heap_check() after every case and at the end (detection in a child never touches the parent, and nothing in
 * the parent is freed twice).
 * Prints `PASS death/<case>` or `FAIL death/<case>: why`; exits non-zero on any failure. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"
#include "test_util.h"

#define MiB ((size_t)1024 * 1024)

/* Behind volatile pointers: the compiler must not see (or warn about, or drop) the deliberate misuse. */
static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void (*volatile v_os_free)(void *) = os_free;

static int n_fail;

static void *launder(void *p)
{
	void *volatile v = p;
	return v;
}

// ------------------------------------------------------------------
// The cases: what the child does, and what it must print
// ------------------------------------------------------------------

struct ctx {
	void *p;     /* the pointer the bad call is made with */
	void *other; /* scratch */
};

static _Alignas(64) unsigned char static_array[4096];

/* A fake header in static memory, shaped like an allocated block and like a mapped one (no valid cookie). */
static _Alignas(64) unsigned char forged[256];

static void do_double_free(struct ctx *c) { v_free(c->p); v_free(c->p); }
/* an underwrite of a mapped block's last header byte (its `next` link), then a dump: the dump follows the links */
static void dump_to_null(void)
{
	FILE *f = fopen("/dev/null", "w");
	os_heap_dump(f ? fileno(f) : 2, OS_DUMP_TEXT);
}
/* past the mmap threshold's cap (32 MiB): mapped whatever the earlier cases taught it (1 MiB is not, by then) */
static void setup_mapped_40MiB(struct ctx *c)
{
	c->p = v_malloc(40 * MiB);
	memset(c->p, 0x45, 4096);
}
static void do_dump_forged_link(struct ctx *c) { ((unsigned char *)c->p)[-1] = 0x55; dump_to_null(); }
static void do_dump_self_link(struct ctx *c)
{
	((struct block_meta **)c->p)[-1] = (struct block_meta *)((char *)c->p - sizeof(struct block_meta));
	dump_to_null();
}
static void do_free(struct ctx *c) { v_free(c->p); }
static void do_free_then_realloc(struct ctx *c) { v_free(c->p); (void)v_realloc(c->p, 200); }
static void do_realloc(struct ctx *c) { (void)v_realloc(c->p, 200); }
static void do_realloc_grow_big(struct ctx *c) { (void)v_realloc(c->p, 2 * MiB); }
static void do_realloc_medium(struct ctx *c) { (void)v_realloc(c->p, 5000); }
static void do_os_double_free(struct ctx *c) { v_os_free(c->p); v_os_free(c->p); }
/* a size no request can have: the pointer is still checked first, as glibc checks it (session 58's review: NULL and
 * ENOMEM came back, the bad pointer unreported) */
static void do_realloc_too_large(struct ctx *c) { (void)v_realloc(c->p, SIZE_MAX); }
static void do_free_then_realloc_too_large(struct ctx *c) { v_free(c->p); (void)v_realloc(c->p, SIZE_MAX); }
static void *(*volatile v_reallocarray)(void *, size_t, size_t) = reallocarray;
static void do_reallocarray_overflow(struct ctx *c) { (void)v_reallocarray(c->p, SIZE_MAX / 2, 4); }
static void setup_low_address(struct ctx *c) { c->p = launder((void *)32); } /* its header would be at 0 */
static void do_free_stack(struct ctx *c)
{
	(void)c;
	_Alignas(64) unsigned char buf[512];
	memset(buf, 0, sizeof buf);
	void *p = launder(buf + 128);
	char msg[64];
	/* tell the parent the address first: it is only known here */
	snprintf(msg, sizeof msg, "ADDR 0x%lx\n", (unsigned long)(uintptr_t)p);
	if (write(2, msg, strlen(msg)) < 0)
		_exit(99);
	v_free(p);
}
static void do_realloc_stack(struct ctx *c)
{
	(void)c;
	_Alignas(64) unsigned char buf[512];
	memset(buf, 0, sizeof buf);
	void *p = launder(buf + 128);
	char msg[64];
	snprintf(msg, sizeof msg, "ADDR 0x%lx\n", (unsigned long)(uintptr_t)p);
	if (write(2, msg, strlen(msg)) < 0)
		_exit(99);
	(void)v_realloc(p, 100);
}

struct death_case {
	const char *name;
	void (*setup)(struct ctx *); /* in the parent, before the fork */
	void (*bad)(struct ctx *);   /* in the child */
	void (*cleanup)(struct ctx *); /* in the parent, after the child */
	const char *api;             /* "free", "realloc", ... */
	const char *what;            /* "double free" / "invalid pointer" */
	const char *what_alt;        /* also accepted (NULL: none) */
	bool addr_from_child;        /* the pointer is printed by the child first (a stack address) */
};

/* Blocks in the parent, allocated with live neighbours so that a free never merges them away. */
static void *guard_a, *guard_b;

static void setup_small(struct ctx *c)
{
	guard_a = v_malloc(64);
	c->p = v_malloc(64);
	guard_b = v_malloc(64);
	memset(c->p, 0x41, 64);
}
static void setup_mapped(struct ctx *c)
{
	c->p = v_malloc(MiB);
	memset(c->p, 0x42, MiB);
}
static void *(*volatile v_memalign)(size_t, size_t) = memalign;
static void setup_memalign_mapped(struct ctx *c)
{
	c->p = v_memalign(4096, 200000); /* mapped; its header is not at the start of its mapping */
	memset(c->p, 0x43, 200000);
}
static void setup_memalign_small(struct ctx *c)
{
	guard_a = v_malloc(64);
	c->p = v_memalign(256, 100);
	guard_b = v_malloc(64);
	memset(c->p, 0x44, 100);
}
static void setup_mid_small16(struct ctx *c)
{
	setup_small(c);
	c->other = c->p;
	c->p = (char *)c->p + 16;
}
static void setup_mid_small32(struct ctx *c)
{
	guard_a = v_malloc(64);
	c->other = v_malloc(256);
	guard_b = v_malloc(64);
	memset(c->other, 0, 256); /* what lies 32 bytes before the pointer: zeros */
	c->p = (char *)c->other + 64;
}
static void setup_mid_small1(struct ctx *c)
{
	setup_small(c);
	c->other = c->p;
	c->p = (char *)c->p + 1;
}
static void setup_mid_mapped(struct ctx *c)
{
	c->other = v_malloc(MiB);
	memset(c->other, 0, MiB);
	c->p = (char *)c->other + 4096;
}
static void setup_mid_mapped_hdr(struct ctx *c)
{
	/* the bytes before the pointer copy a real mapped header (status, cookie and links): only the address differs */
	c->other = v_malloc(MiB);
	memset(c->other, 0, MiB);
	c->p = (char *)c->other + 8192;
	memcpy((char *)c->p - META_SIZE, (char *)c->other - META_SIZE, META_SIZE);
}
static void setup_static(struct ctx *c) { c->p = launder(static_array + 256); }
static void setup_static_start(struct ctx *c) { c->p = launder(static_array); }
/* The last 16 bytes below 2^64: the medium caches' range check added a block's size to it and wrapped, so the
 * pointer read as inside the heap and its header was read (SIGSEGV, found by a review in session 51). */
static void setup_top(struct ctx *c) { c->p = launder((void *)(uintptr_t)-16); }
static void setup_forged_alloc(struct ctx *c)
{
	struct block_meta h = { .size = 128, .status = STATUS_ALLOC, .prev = NULL, .next = NULL };
	memcpy(forged + 64 - META_SIZE, &h, sizeof h);
	c->p = launder(forged + 64);
}
static void setup_forged_mapped(struct ctx *c)
{
	struct block_meta h = { .size = 4096, .status = STATUS_MAPPED, .prev = NULL, .next = NULL };
	memcpy(forged + 64 - META_SIZE, &h, sizeof h);
	c->p = launder(forged + 64);
}
static void setup_forged_free(struct ctx *c)
{
	struct block_meta h = { .size = 128, .status = STATUS_FREE, .prev = NULL, .next = NULL };
	memcpy(forged + 64 - META_SIZE, &h, sizeof h);
	c->p = launder(forged + 64);
}
static void setup_none(struct ctx *c) { c->p = NULL; }

/* Hazard: a slot-aligned address of a front page that the page has not carved yet (slot `slot` of a page of
 * n-byte slots, 64 KiB each), or past its last slot: never handed out, so never freeable, and a thread cache that
 * took it would hand it out twice once the page carved it. free's fast path decides "a slot of this page" with one
 * multiply and one compare (slot_magic, front_is_page_slot, session 32); a build whose compare tests divisibility
 * alone (off * magic < magic) survives all four calls. In the classic profile or with the front off the block is a
 * core block, and the pointer 16 bytes into it is as invalid. */
static bool front_on(void)
{
	const char *profile = getenv("OSMEM_PROFILE"), *front = getenv("OSMEM_FRONT");
	return !(profile && strcmp(profile, "classic") == 0) && !(front && strcmp(front, "0") == 0);
}
static void setup_page_slot(struct ctx *c, size_t n, size_t slot)
{
	c->other = v_malloc(n);
	memset(c->other, 0x45, n);
	uintptr_t page = (uintptr_t)c->other & ~(uintptr_t)0xffff;
	c->p = launder(front_on() ? (void *)(page + slot * n) : (char *)c->other + 16);
}
static void setup_uncarved_1040(struct ctx *c) { setup_page_slot(c, 1040, 62); }
static void setup_past_last_1040(struct ctx *c) { setup_page_slot(c, 1040, 63); }
static void setup_uncarved_256(struct ctx *c) { setup_page_slot(c, 256, 250); }
static void setup_uncarved_16(struct ctx *c) { setup_page_slot(c, 16, 4000); }

static void cleanup_small(struct ctx *c)
{
	v_free(c->p);
	v_free(guard_a);
	v_free(guard_b);
}
static void cleanup_mapped(struct ctx *c) { v_free(c->p); }
static void cleanup_other_guards(struct ctx *c)
{
	v_free(c->other);
	v_free(guard_a);
	v_free(guard_b);
}
static void cleanup_other(struct ctx *c) { v_free(c->other); }
static void cleanup_none(struct ctx *c) { (void)c; }

static const struct death_case cases[] = {
	{ "double_free_small", setup_small, do_double_free, cleanup_small, "free", "double free", NULL, false },
	{ "double_free_mapped_1MiB", setup_mapped, do_double_free, cleanup_mapped, "free", "double free",
	  "invalid pointer", false },
	{ "double_free_memalign_mapped", setup_memalign_mapped, do_double_free, cleanup_mapped, "free", "double free",
	  "invalid pointer", false },
	{ "double_free_memalign_small", setup_memalign_small, do_double_free, cleanup_small, "free", "double free",
	  NULL, false },
	{ "free_middle_small_plus16", setup_mid_small16, do_free, cleanup_other_guards, "free", "invalid pointer",
	  NULL, false },
	{ "free_middle_small_plus64", setup_mid_small32, do_free, cleanup_other_guards, "free", "invalid pointer",
	  NULL, false },
	{ "free_middle_small_plus1", setup_mid_small1, do_free, cleanup_other_guards, "free", "invalid pointer", NULL,
	  false },
	{ "free_middle_mapped_plus4096", setup_mid_mapped, do_free, cleanup_other, "free", "invalid pointer", NULL,
	  false },
	{ "free_middle_mapped_copied_header", setup_mid_mapped_hdr, do_free, cleanup_other, "free", "invalid pointer",
	  NULL, false },
	{ "free_uncarved_slot_1040", setup_uncarved_1040, do_free, cleanup_other, "free", "invalid pointer", NULL,
	  false },
	{ "free_past_last_slot_1040", setup_past_last_1040, do_free, cleanup_other, "free", "invalid pointer", NULL,
	  false },
	{ "free_uncarved_slot_256", setup_uncarved_256, do_free, cleanup_other, "free", "invalid pointer", NULL,
	  false },
	{ "free_uncarved_slot_16", setup_uncarved_16, do_free, cleanup_other, "free", "invalid pointer", NULL,
	  false },
	{ "free_stack_address", setup_none, do_free_stack, cleanup_none, "free", "invalid pointer", NULL, true },
	{ "free_static_array", setup_static, do_free, cleanup_none, "free", "invalid pointer", NULL, false },
	{ "free_at_top_of_address_space", setup_top, do_free, cleanup_none, "free", "invalid pointer", NULL, false },
	{ "realloc_at_top_of_address_space", setup_top, do_realloc_medium, cleanup_none, "realloc", "invalid pointer",
	  NULL, false },
	{ "free_static_array_start", setup_static_start, do_free, cleanup_none, "free", "invalid pointer", NULL,
	  false },
	{ "free_forged_alloc_header", setup_forged_alloc, do_free, cleanup_none, "free", "invalid pointer", NULL,
	  false },
	{ "free_forged_mapped_header", setup_forged_mapped, do_free, cleanup_none, "free", "invalid pointer", NULL,
	  false },
	{ "free_forged_free_header", setup_forged_free, do_free, cleanup_none, "free", "invalid pointer",
	  "double free", false },
	{ "realloc_freed_small", setup_small, do_free_then_realloc, cleanup_small, "realloc", "double free",
	  "invalid pointer", false },
	{ "realloc_freed_mapped", setup_mapped, do_free_then_realloc, cleanup_mapped, "realloc", "double free",
	  "invalid pointer", false },
	{ "realloc_middle_small", setup_mid_small32, do_realloc, cleanup_other_guards, "realloc", "invalid pointer",
	  NULL, false },
	{ "realloc_middle_mapped", setup_mid_mapped, do_realloc_grow_big, cleanup_other, "realloc",
	  "invalid pointer", NULL, false },
	{ "realloc_static_array", setup_static, do_realloc, cleanup_none, "realloc", "invalid pointer", NULL, false },
	{ "realloc_stack_address", setup_none, do_realloc_stack, cleanup_none, "realloc", "invalid pointer", NULL,
	  true },
	{ "os_free_double_free", setup_small, do_os_double_free, cleanup_small, "os_free", "double free", NULL,
	  false },
	{ "realloc_too_large_static_array", setup_static, do_realloc_too_large, cleanup_none, "realloc",
	  "invalid pointer", NULL, false },
	{ "realloc_too_large_freed_small", setup_small, do_free_then_realloc_too_large, cleanup_small, "realloc",
	  "double free", NULL, false },
	{ "realloc_too_large_freed_mapped", setup_mapped, do_free_then_realloc_too_large, cleanup_mapped, "realloc",
	  "double free", "invalid pointer", false },
	{ "reallocarray_overflow_static_array", setup_static, do_reallocarray_overflow, cleanup_none, "realloc",
	  "invalid pointer", NULL, false },
	{ "free_never_allocated_low_address", setup_low_address, do_free, cleanup_none, "free", "invalid pointer", NULL,
	  false },
	{ "dump_forged_mapped_link", setup_mapped_40MiB, do_dump_forged_link, cleanup_mapped, "os_heap_dump",
	  "corrupted header", NULL, false },
	{ "dump_mapped_link_to_itself", setup_mapped_40MiB, do_dump_self_link, cleanup_mapped, "os_heap_dump",
	  "corrupted header", NULL, false },
};

// ------------------------------------------------------------------
// Running one case
// ------------------------------------------------------------------

static void report(const char *name, const char *why)
{
	if (why) {
		printf("FAIL death/%s: %s\n", name, why);
		n_fail++;
	} else {
		printf("PASS death/%s\n", name);
	}
	fflush(stdout);
}

static const char *signame(int sig)
{
	static char buf[32];
	switch (sig) {
	case SIGABRT: return "SIGABRT";
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGALRM: return "SIGALRM (the child hung)";
	case SIGTRAP: return "SIGTRAP";
	case SIGILL: return "SIGILL";
	default:
		snprintf(buf, sizeof buf, "signal %d", sig);
		return buf;
	}
}

static void run_case(const struct death_case *dc)
{
	struct ctx c = { NULL, NULL };
	char why[800];
	dc->setup(&c);
	int fds[2];
	if (pipe(fds) != 0) {
		report(dc->name, "pipe failed");
		return;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		report(dc->name, "fork failed");
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 2);
		close(fds[1]);
		signal(SIGABRT, SIG_DFL);
		alarm(10);
		dc->bad(&c);
		static const char survived[] = "CHILD SURVIVED THE BAD CALL\n";
		if (write(2, survived, sizeof survived - 1) < 0)
			_exit(98);
		_exit(97);
	}
	close(fds[1]);
	char out[4096];
	tu_read_all(fds[0], out, sizeof out);
	close(fds[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;

	/* the pointer the message must carry */
	unsigned long ptr = (unsigned long)(uintptr_t)c.p;
	if (dc->addr_from_child) {
		const char *a = strstr(out, "ADDR 0x");
		ptr = a ? strtoul(a + 7, NULL, 16) : 0;
	}
	char want[160], want_alt[160];
	snprintf(want, sizeof want, "osmem: %s(): %s 0x%lx\n", dc->api, dc->what, ptr);
	want_alt[0] = 0;
	if (dc->what_alt)
		snprintf(want_alt, sizeof want_alt, "osmem: %s(): %s 0x%lx\n", dc->api, dc->what_alt, ptr);
	/* the output without the ADDR line, for the failure text */
	const char *shown = out;
	if (dc->addr_from_child && strchr(out, '\n'))
		shown = strchr(out, '\n') + 1;

	const char *bad = NULL;
	if (!WIFSIGNALED(st)) {
		snprintf(why, sizeof why, "the child exited with status %d instead of dying of SIGABRT; stderr: \"%.300s\"",
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1, shown);
		bad = why;
	} else if (WTERMSIG(st) != SIGABRT) {
		snprintf(why, sizeof why, "the child died of %s, not SIGABRT; stderr: \"%.*s\"",
			 signame(WTERMSIG(st)), (int)strcspn(shown, "\n"), shown);
		bad = why;
	} else if (!strstr(out, want) && !(want_alt[0] && strstr(out, want_alt))) {
		int wl = (int)strcspn(want, "\n");
		snprintf(why, sizeof why, "stderr \"%.*s\" lacks \"%.*s\"%s", (int)strcspn(shown, "\n"), shown, wl,
			 want, want_alt[0] ? " (or the alternative wording)" : "");
		bad = why;
	}

	/* the parent frees each of its blocks once; its heap is intact */
	dc->cleanup(&c);
	if (!bad && os_heap_check() != 0)
		bad = "the parent's os_heap_check() failed after the case";
	report(dc->name, bad);
}

int main(void)
{
	/* a parent heap with some life in it: blocks of every kind that stay allocated across all the cases */
	enum { KEEP = 64 };
	void *keep[KEEP];
	for (int i = 0; i < KEEP; i++) {
		size_t n = (i % 8 == 7) ? 300000 : (size_t)(16 + i * 40);
		keep[i] = v_malloc(n);
		memset(keep[i], i, n);
	}
	for (int i = 0; i < KEEP; i += 3) {
		v_free(keep[i]);
		keep[i] = NULL;
	}
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_case(&cases[i]);
	for (int i = 0; i < KEEP; i++)
		v_free(keep[i]);
	int rc = os_heap_check();
	report("parent_heap_intact", rc == 0 ? NULL : "os_heap_check() failed in the parent at the end");
	const char *profile = getenv("OSMEM_PROFILE");
	fprintf(stderr, "malloc_death (%s profile): %d failed\n", profile && *profile ? profile : "default", n_fail);
	return n_fail ? 1 : 0;
}
