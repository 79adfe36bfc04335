/* spec_prog: a tiny script interpreter over the classic osmem API, for the byte-exact specification tests
 * (tests/test_spec.py runs it under strace and compares its trace with docs/CLASSIC.md).
 *
 * Usage: spec_prog 'a=m 1986; d; b=m 100; f a; c=r b 300; e=c 10 4; k'
 *
 * Statements, separated by ';' (variables are the letters a-z and hold pointers):
 *   X=m N        os_malloc(N)
 *   X=c N M      os_calloc(N, M)
 *   X=r P N      os_realloc(P, N)
 *   X=s          X = the address of a buffer on this program's stack (for invalid-free tests)
 *   f P / F P    os_free(P)
 *   d            dump the heap: one line "blk 0x<addr> <size> <status>" per block, walking `next` from the
 *                heap start, then "end 0x<end of the last block>"
 *   h P          the 32 bytes at P - 32 read as a header, whether or not a block starts there any more (an
 *                absorbed header keeps its bytes): "hdr 0x<addr> size=<dec> status=<dec> prev=0x<..> next=0x<..>"
 *                (a NULL link prints as '-'; header bytes 12..15, osmem's spare bytes, are not shown)
 *   k            os_heap_check(): "check 0" / "check -1"
 *   S            os_stats(): one line "stats name=value ..." (fragmentation in parts per million)
 *   z P N        the first N bytes at P are zero: "zero ok" / "zero BAD"
 *   w P N B      memset(P, B, N)
 *   v P N B      the first N bytes at P equal B: "pat ok" / "pat BAD"
 *   L N          RLIMIT_DATA soft limit = N bytes
 *   U            RLIMIT_DATA soft limit = hard limit
 * An operand P is '-' (NULL), a variable with an optional byte offset (a, a+64, a-8), or an address (0x...).
 * Numbers are decimal or 0x-hex and may be as large as SIZE_MAX.
 *
 * Output (fd 1): "@ <statement>" before each statement; after a statement that returns a pointer,
 * "= 0x<hex> size=<dec> status=<dec>" or "= NULL errno=<name>".
 *
 * With OSMEM_SPEC_GHOSTS=1 (test_spec.py sets it for every scenario) it also checks docs/CLASSIC.md's "freed bytes
 * stay as they were": the payload of each heap block it frees (or that a realloc moves away from) is copied aside, and
 * after every statement those bytes must still be there, except where a block has been handed out again (its
 * payload and the 32 bytes on either side, where headers may be written). A change prints
 * "ghost BAD 0x<addr> freed 0x<block>", which no expected trace contains.
 *
 * This program must not disturb the trace: no stdio, no malloc, nothing in libc that may allocate or move the
 * break. Every output line is a single write(2). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "block_meta.h"
#include "osmem.h"

// ------------------------------------------------------------------
// Output: one write per line, no stdio
// ------------------------------------------------------------------

static char out[4096];
static size_t out_len;

static void put_str(const char *s)
{
	while (*s && out_len < sizeof out - 1)
		out[out_len++] = *s++;
}

static void put_mem(const char *s, size_t n)
{
	while (n-- && out_len < sizeof out - 1)
		out[out_len++] = *s++;
}

static void put_dec(uint64_t v)
{
	char d[24];
	int n = 0;
	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		put_mem(&d[--n], 1);
}

static void put_sdec(int64_t v)
{
	if (v < 0) {
		put_str("-");
		put_dec((uint64_t)0 - (uint64_t)v);
	} else {
		put_dec((uint64_t)v);
	}
}

static void put_hex(uintptr_t v)
{
	char d[20];
	int n = 0;
	do {
		d[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	put_str("0x");
	while (n)
		put_mem(&d[--n], 1);
}

static void flush_line(void)
{
	out[out_len++] = '\n';
	const char *p = out;
	size_t len = out_len;
	while (len) {
		ssize_t w = write(1, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		len -= (size_t)w;
	}
	out_len = 0;
}

static const char *errno_name(int e)
{
	switch (e) {
	case 0: return "0";
	case ENOMEM: return "ENOMEM";
	case EINVAL: return "EINVAL";
	case EAGAIN: return "EAGAIN";
	case ENOSPC: return "ENOSPC";
	case EFAULT: return "EFAULT";
	case EBADF: return "EBADF";
	case EOVERFLOW: return "EOVERFLOW";
	case ERANGE: return "ERANGE";
	case EPERM: return "EPERM";
	default: return NULL;
	}
}

static _Noreturn void die(const char *what, const char *stmt, size_t len)
{
	put_str("error: ");
	put_str(what);
	put_str(": ");
	put_mem(stmt, len);
	flush_line();
	_exit(2);
}

// ------------------------------------------------------------------
// State
// ------------------------------------------------------------------

static void *vars[26];
static uintptr_t heap_start; /* lowest heap block header seen (0: none yet) */

static void report(void *p, int err)
{
	put_str("= ");
	if (!p) {
		const char *name = errno_name(err);
		put_str("NULL errno=");
		if (name)
			put_str(name);
		else
			put_sdec(err);
		flush_line();
		return;
	}
	struct block_meta *b = (struct block_meta *)((char *)p - META_SIZE);
	put_hex((uintptr_t)p);
	put_str(" size=");
	put_dec(b->size);
	put_str(" status=");
	put_sdec(b->status);
	flush_line();
	if (b->status == STATUS_ALLOC && (!heap_start || (uintptr_t)b < heap_start))
		heap_start = (uintptr_t)b;
}

// ------------------------------------------------------------------
// Parsing
// ------------------------------------------------------------------

struct cursor {
	const char *s, *end;  /* the statement */
	const char *stmt;
	size_t stmt_len;
};

static void skip_ws(struct cursor *c)
{
	while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n'))
		c->s++;
}

static bool at_end(struct cursor *c)
{
	skip_ws(c);
	return c->s == c->end;
}

static uint64_t parse_num(struct cursor *c)
{
	skip_ws(c);
	uint64_t v = 0;
	int base = 10, digits = 0;
	if (c->end - c->s > 2 && c->s[0] == '0' && (c->s[1] == 'x' || c->s[1] == 'X')) {
		base = 16;
		c->s += 2;
	}
	while (c->s < c->end) {
		char ch = *c->s;
		unsigned d;
		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (base == 16 && ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else if (base == 16 && ch >= 'A' && ch <= 'F')
			d = (unsigned)(ch - 'A' + 10);
		else
			break;
		if (v > (UINT64_MAX - d) / (uint64_t)base)
			die("number too large", c->stmt, c->stmt_len);
		v = v * (uint64_t)base + d;
		digits++;
		c->s++;
	}
	if (!digits)
		die("number expected", c->stmt, c->stmt_len);
	return v;
}

static int parse_var(struct cursor *c)
{
	skip_ws(c);
	if (c->s < c->end && *c->s >= 'a' && *c->s <= 'z')
		return *c->s++ - 'a';
	die("variable expected", c->stmt, c->stmt_len);
}

/* '-' | var [(+|-) num] | num */
static void *parse_ptr(struct cursor *c)
{
	skip_ws(c);
	if (c->s < c->end && *c->s == '-') {
		c->s++;
		return NULL;
	}
	if (c->s < c->end && *c->s >= 'a' && *c->s <= 'z') {
		uintptr_t base = (uintptr_t)vars[parse_var(c)];
		skip_ws(c);
		if (c->s < c->end && (*c->s == '+' || *c->s == '-')) {
			char sign = *c->s++;
			uint64_t off = parse_num(c);
			return (void *)(sign == '+' ? base + (uintptr_t)off : base - (uintptr_t)off);
		}
		return (void *)base;
	}
	return (void *)(uintptr_t)parse_num(c);
}

static void expect_end(struct cursor *c)
{
	if (!at_end(c))
		die("trailing text", c->stmt, c->stmt_len);
}

// ------------------------------------------------------------------
// Ghosts: copies of freed payloads (static storage: nothing here may allocate)
// ------------------------------------------------------------------

#define MAX_GHOSTS 512
#define MAX_LIVE   512
static struct { uintptr_t at; size_t len, off; uintptr_t block; } ghosts[MAX_GHOSTS];
static size_t n_ghosts, arena_used;
static unsigned char arena[8 << 20];
static uintptr_t live[MAX_LIVE]; /* heap payloads this program was handed and has not freed */
static size_t n_live;
static bool ghost_mode;

static bool is_live(const void *p)
{
	for (size_t i = 0; i < n_live; i++)
		if (live[i] == (uintptr_t)p)
			return true;
	return false;
}

static void live_drop(const void *p)
{
	for (size_t i = 0; i < n_live; i++)
		if (live[i] == (uintptr_t)p) {
			live[i] = live[--n_live];
			return;
		}
}

/* p is a live heap payload about to be freed: copy its bytes aside. */
static void ghost_take(const void *p)
{
	if (!ghost_mode || !p || !is_live(p))
		return;
	const struct block_meta *b = (const struct block_meta *)((const char *)p - META_SIZE);
	if (b->status != STATUS_ALLOC || n_ghosts == MAX_GHOSTS ||
	    arena_used + b->size > sizeof arena)
		return;
	ghosts[n_ghosts].at = (uintptr_t)p;
	ghosts[n_ghosts].len = b->size;
	ghosts[n_ghosts].off = arena_used;
	ghosts[n_ghosts].block = (uintptr_t)p;
	memcpy(arena + arena_used, p, b->size);
	arena_used += b->size;
	n_ghosts++;
}

/* Forgets ghost bytes in [a, e): the memory was handed out again (or holds a header now). */
static void ghost_forget(uintptr_t a, uintptr_t e)
{
	for (size_t i = 0; i < n_ghosts; i++) {
		uintptr_t ga = ghosts[i].at, ge = ga + ghosts[i].len;
		if (ge <= a || ga >= e)
			continue;
		if (ga < a && ge > e && n_ghosts < MAX_GHOSTS) { /* split: keep both sides */
			ghosts[n_ghosts] = ghosts[i];
			ghosts[n_ghosts].at = e;
			ghosts[n_ghosts].len = ge - e;
			ghosts[n_ghosts].off = ghosts[i].off + (e - ga);
			n_ghosts++;
		}
		if (ga < a) {
			ghosts[i].len = a - ga;
		} else {
			size_t cut = (ge < e ? ge : e) - ga;
			ghosts[i].at += cut;
			ghosts[i].off += cut;
			ghosts[i].len -= cut;
		}
	}
}

/* A call returned p: it is live, and its payload and the headers around it are no longer freed bytes. */
static void ghost_handed_out(void *p)
{
	if (!ghost_mode || !p)
		return;
	const struct block_meta *b = (const struct block_meta *)((const char *)p - META_SIZE);
	if (b->status != STATUS_ALLOC)
		return;
	ghost_forget((uintptr_t)b, (uintptr_t)p + b->size + META_SIZE);
	if (!is_live(p) && n_live < MAX_LIVE)
		live[n_live++] = (uintptr_t)p;
}

static void ghost_verify(void)
{
	for (size_t i = 0; i < n_ghosts; i++) {
		const unsigned char *m = (const unsigned char *)ghosts[i].at, *c = arena + ghosts[i].off;
		for (size_t k = 0; k < ghosts[i].len; k++)
			if (m[k] != c[k]) {
				put_str("ghost BAD ");
				put_hex(ghosts[i].at + k);
				put_str(" freed ");
				put_hex(ghosts[i].block);
				flush_line();
				ghosts[i].len = k; /* report each change once */
				break;
			}
	}
}

// ------------------------------------------------------------------
// Statements
// ------------------------------------------------------------------

static void dump(void)
{
	if (!heap_start) {
		put_str("heap none");
		flush_line();
		return;
	}
	struct block_meta *b = (struct block_meta *)heap_start, *prev = NULL;
	uintptr_t end = heap_start;
	unsigned long n = 0;
	while (b) {
		put_str("blk ");
		put_hex((uintptr_t)b);
		put_str(" ");
		put_dec(b->size);
		put_str(" ");
		put_sdec(b->status);
		if (b->prev != prev) {
			put_str(" BADPREV ");
			put_hex((uintptr_t)b->prev);
		}
		flush_line();
		end = (uintptr_t)b + META_SIZE + b->size;
		prev = b;
		b = b->next;
		if (++n > 1000000) {
			put_str("LOOP");
			flush_line();
			return;
		}
	}
	put_str("end ");
	put_hex(end);
	flush_line();
}

static void set_data_limit(bool restore, uint64_t n)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_DATA, &rl) == 0) {
		rl.rlim_cur = restore ? rl.rlim_max : (rlim_t)n;
		if (setrlimit(RLIMIT_DATA, &rl) == 0)
			return;
	}
	put_str("rlimit failed errno=");
	put_sdec(errno);
	flush_line();
}

static void run(const char *stmt, size_t len, char *stack_buf)
{
	struct cursor c = {stmt, stmt + len, stmt, len};

	put_str("@ ");
	put_mem(stmt, len);
	flush_line();

	skip_ws(&c);
	char op = *c.s;
	/* an assignment: X=... */
	if (len >= 2 && op >= 'a' && op <= 'z' && c.s + 1 < c.end && c.s[1] == '=') {
		int x = op - 'a';
		c.s += 2;
		skip_ws(&c);
		if (c.s == c.end)
			die("operation expected", stmt, len);
		char what = *c.s++;
		void *p;
		int err;
		switch (what) {
		case 'm': {
			uint64_t n = parse_num(&c);
			expect_end(&c);
			errno = 0;
			p = os_malloc((size_t)n);
			err = errno;
			break;
		}
		case 'c': {
			uint64_t n = parse_num(&c);
			uint64_t m = parse_num(&c);
			expect_end(&c);
			errno = 0;
			p = os_calloc((size_t)n, (size_t)m);
			err = errno;
			break;
		}
		case 'r': {
			void *old = parse_ptr(&c);
			uint64_t n = parse_num(&c);
			expect_end(&c);
			bool was_live = old && is_live(old) &&
					((const struct block_meta *)((const char *)old - META_SIZE))->status == STATUS_ALLOC;
			size_t g0 = n_ghosts, a0 = arena_used;
			if (was_live)
				ghost_take(old);
			errno = 0;
			p = os_realloc(old, (size_t)n);
			err = errno;
			if (was_live && (p == old || (!p && n))) { /* in place, or failed: the old block is still live */
				n_ghosts = g0;
				arena_used = a0;
			} else if (was_live) {
				live_drop(old);
			}
			break;
		}
		case 's':
			expect_end(&c);
			vars[x] = stack_buf;
			put_str("= ");
			put_hex((uintptr_t)stack_buf);
			put_str(" stack");
			flush_line();
			return;
		default:
			die("unknown operation", stmt, len);
		}
		vars[x] = p;
		report(p, err);
		ghost_handed_out(p);
		return;
	}

	c.s++;
	switch (op) {
	case 'f':
	case 'F': {
		void *p = parse_ptr(&c);
		expect_end(&c);
		ghost_take(p);
		live_drop(p);
		os_free(p);
		return;
	}
	case 'd':
		expect_end(&c);
		dump();
		return;
	case 'h': {
		const struct block_meta *b = (const struct block_meta *)((const char *)parse_ptr(&c) - META_SIZE);
		expect_end(&c);
		put_str("hdr ");
		put_hex((uintptr_t)b);
		put_str(" size=");
		put_dec(b->size);
		put_str(" status=");
		put_sdec(b->status);
		const struct block_meta *link[2] = { b->prev, b->next };
		for (int i = 0; i < 2; i++) {
			put_str(i ? " next=" : " prev=");
			if (link[i])
				put_hex((uintptr_t)link[i]);
			else
				put_str("-");
		}
		flush_line();
		return;
	}
	case 'S': {
		expect_end(&c);
		struct os_stats st;
		os_stats(&st);
		const struct { const char *name; size_t v; } f[] = {
			{ "requested", st.bytes_requested }, { "in_use", st.bytes_in_use }, { "peak", st.peak_in_use },
			{ "heap", st.heap_size }, { "mapped", st.mapped_bytes }, { "mapped_count", st.mapped_count },
			{ "free", st.free_bytes }, { "free_blocks", st.free_blocks }, { "largest_free", st.largest_free },
			{ "frag_ppm", (size_t)(st.fragmentation * 1e6 + 0.5) }, { "allocs", st.allocations },
			{ "frees", st.frees }, { "brk", st.brk_calls }, { "mmap", st.mmap_calls },
			{ "munmap", st.munmap_calls }, { "splits", st.splits }, { "coalesces", st.coalesces },
			{ "inplace", st.inplace_reallocs }, { "moved", st.moved_reallocs },
		};
		put_str("stats");
		for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
			put_str(" ");
			put_str(f[i].name);
			put_str("=");
			put_dec(f[i].v);
		}
		flush_line();
		return;
	}
	case 'k': {
		expect_end(&c);
		int r = os_heap_check();
		put_str("check ");
		put_sdec(r);
		flush_line();
		return;
	}
	case 'z':
	case 'v': {
		const unsigned char *p = parse_ptr(&c);
		uint64_t n = parse_num(&c);
		unsigned char want = 0;
		if (op == 'v')
			want = (unsigned char)parse_num(&c);
		expect_end(&c);
		bool ok = true;
		for (uint64_t i = 0; i < n; i++) {
			if (p[i] != want) {
				ok = false;
				break;
			}
		}
		put_str(op == 'z' ? "zero " : "pat ");
		put_str(ok ? "ok" : "BAD");
		flush_line();
		return;
	}
	case 'w': {
		void *p = parse_ptr(&c);
		uint64_t n = parse_num(&c);
		uint64_t b = parse_num(&c);
		expect_end(&c);
		memset(p, (int)(unsigned char)b, (size_t)n);
		ghost_forget((uintptr_t)p, (uintptr_t)p + n); /* the program's own write (a use after free, say) */
		return;
	}
	case 'L': {
		uint64_t n = parse_num(&c);
		expect_end(&c);
		set_data_limit(false, n);
		return;
	}
	case 'U':
		expect_end(&c);
		set_data_limit(true, 0);
		return;
	default:
		die("unknown statement", stmt, len);
	}
}

int main(int argc, char **argv)
{
	/* A pretend block on the stack for invalid-free tests: zeroed, with room for a header below the pointer. */
	_Alignas(16) char stack_area[256];
	memset(stack_area, 0, sizeof stack_area);

	if (argc != 2) {
		put_str("usage: spec_prog 'statement; statement; ...'");
		flush_line();
		return 2;
	}

	/* glibc's sbrk() reads the break from the kernel (brk(NULL)) on its first call in a process. Do that here,
	 * before the first statement, so that the trace after it shows only the break moves osmem asks for. */
	(void)sbrk(0);
	const char *g = getenv("OSMEM_SPEC_GHOSTS");
	ghost_mode = g && g[0] == '1';

	const char *s = argv[1];
	while (*s) {
		const char *e = s;
		while (*e && *e != ';')
			e++;
		const char *a = s, *b = e;
		while (a < b && (*a == ' ' || *a == '\t' || *a == '\n'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\n'))
			b--;
		if (b > a) {
			run(a, (size_t)(b - a), stack_area + 128);
			if (ghost_mode)
				ghost_verify();
		}
		s = *e ? e + 1 : e;
	}
	return 0;
}
