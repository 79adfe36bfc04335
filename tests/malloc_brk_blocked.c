/* malloc_brk_blocked: the break cannot grow because another mapping sits right above it (a JIT, a library, a
 * program's own MAP_FIXED). The default profile must keep serving every request from mappings, as glibc does;
 * before, 90% of malloc(64) calls returned NULL. Requests of every kind: small, medium (the core's heap sizes),
 * calloc, realloc growth; contents checked, all freed, then allocated again.
 * Prints `PASS brk_blocked/<case>` or `FAIL brk_blocked/<case>: why`. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "osmem.h"

#define N 20000

static void *(*volatile v_malloc)(size_t) = malloc;
static void *(*volatile v_calloc)(size_t, size_t) = calloc;
static void *(*volatile v_realloc)(void *, size_t) = realloc;
static void (*volatile v_free)(void *) = free;
static unsigned char *blocks[N];
static size_t sizes[N];

static int fail(const char *what, size_t i, size_t n)
{
	printf("FAIL brk_blocked/every_request_served: %s (request %zu of %zu bytes, errno %d)\n", what, i, n, errno);
	return 1;
}

int main(void)
{
	/* the break as it is now (osmem may have preallocated already), and a page mapped right above it */
	uintptr_t brk_now = (uintptr_t)sbrk(0), page = (uintptr_t)sysconf(_SC_PAGESIZE);
	void *wall = mmap((void *)((brk_now + page - 1) & ~(page - 1)), page, PROT_READ,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (wall == MAP_FAILED) {
		printf("FAIL brk_blocked/setup: cannot map above the break: %s\n", strerror(errno));
		return 1;
	}
	if (sbrk(4096) != (void *)-1) {
		printf("FAIL brk_blocked/setup: the break still grows past the wall\n");
		return 1;
	}
	for (size_t round = 0; round < 2; round++) {
		for (size_t i = 0; i < N; i++) {
			size_t n = i % 3 == 0 ? 64 : i % 3 == 1 ? 100 + (i * 37) % 8000 : 16 + (i * 101) % 60000;
			unsigned char *p = i % 5 == 0 ? v_calloc(1, n) : v_malloc(n);
			if (!p)
				return fail("NULL", i, n);
			if (i % 5 == 0)
				for (size_t k = 0; k < n; k++)
					if (p[k])
						return fail("calloc memory not zero", i, n);
			memset(p, (int)(i & 0xff), n);
			blocks[i] = p;
			sizes[i] = n;
		}
		for (size_t i = 0; i < N; i += 7) { /* realloc growth keeps the contents */
			unsigned char *q = v_realloc(blocks[i], sizes[i] * 2 + 1000);
			if (!q)
				return fail("realloc NULL", i, sizes[i] * 2 + 1000);
			for (size_t k = 0; k < sizes[i]; k++)
				if (q[k] != (unsigned char)(i & 0xff))
					return fail("realloc lost contents", i, sizes[i]);
			blocks[i] = q;
			memset(q, (int)(i & 0xff), sizes[i] = sizes[i] * 2 + 1000);
		}
		for (size_t i = 0; i < N; i++) {
			for (size_t k = 0; k < sizes[i]; k += 61)
				if (blocks[i][k] != (unsigned char)(i & 0xff))
					return fail("contents changed", i, sizes[i]);
			v_free(blocks[i]);
		}
	}
	if (os_heap_check() != 0)
		return fail("os_heap_check failed", 0, 0);
	printf("PASS brk_blocked/every_request_served\n");
	return 0;
}
