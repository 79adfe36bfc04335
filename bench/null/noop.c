/* bench/null/noop.c: the least an allocator can do, as a yardstick for the workloads, not an allocator to use.
 *
 * Each thread keeps a free list per 16-byte size class and carves new objects from 64 MiB regions of its own;
 * free pushes onto the calling thread's list whoever allocated the object, so there is no owner, no lock, no
 * atomic operation and no system call after a region is mapped, and nothing is ever given back (a thread's lists
 * die with it). A 16-byte header holds the class. What a workload costs under this library is what it costs
 * whatever the allocator does: `make bench` runs larson's hand-off form on it to show how far that form can scale
 * on the machine (bench/results/latest.md, "Scaling").
 *
 * Built with -fno-builtin: GCC would otherwise turn calloc's malloc+memset into a call to calloc. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define CLASSES 4096                   /* 16-byte classes up to 64 KiB; larger: a mapping each */
#define REGION  ((size_t)64 << 20)
#define BIG     ((size_t)1 << 62)      /* header word of a mapped block: BIG | its mapping's size */

struct hdr { size_t word, pad; };
struct link { struct link *next; };

static __thread struct link *lists[CLASSES];
static __thread char *bump, *end;

static void *carve(size_t n)
{
	if (!bump || (size_t)(end - bump) < n) {
		char *r = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (r == MAP_FAILED)
			return NULL;
		bump = r, end = r + REGION;
	}
	void *p = bump;
	bump += n;
	return p;
}

void *malloc(size_t n)
{
	size_t c = n ? (n + 15) >> 4 : 1; /* malloc(0): a 16-byte slot, not the next object's header */
	if (n > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	if (c >= CLASSES) {
		size_t m = (n + sizeof(struct hdr) + 4095) & ~(size_t)4095;
		struct hdr *h = mmap(NULL, m, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (h == MAP_FAILED) {
			errno = ENOMEM;
			return NULL;
		}
		h->word = BIG | m;
		return h + 1;
	}
	struct link *f = lists[c];
	if (f) {
		lists[c] = f->next;
		return f;
	}
	struct hdr *h = carve(sizeof *h + c * 16);
	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	h->word = c;
	return h + 1;
}

/* a mapped block's mapping starts at its header's page (the header is at its start, or an aligned block's at
 * the end of its first page) */
static char *mapping(const struct hdr *h) { return (char *)((uintptr_t)h & ~(uintptr_t)4095); }

static size_t usable(const struct hdr *h)
{
	return h->word & BIG ? (h->word & ~BIG) - (size_t)((const char *)(h + 1) - mapping(h)) : h->word * 16;
}

void free(void *p)
{
	if (!p)
		return;
	struct hdr *h = (struct hdr *)p - 1;
	if (h->word & BIG) {
		munmap(mapping(h), h->word & ~BIG);
		return;
	}
	struct link *f = p;
	f->next = lists[h->word];
	lists[h->word] = f;
}

void *calloc(size_t a, size_t b)
{
	size_t n;
	if (__builtin_mul_overflow(a, b, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = malloc(n);
	if (p)
		memset(p, 0, n);
	return p;
}

void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	size_t old = usable((struct hdr *)p - 1);
	if (n <= old)
		return p;
	void *q = malloc(n);
	if (q) {
		memcpy(q, p, old);
		free(p);
	}
	return q;
}

/* aligned requests: a mapping of their own, the block at its second page (any alignment up to a page) */
void *aligned_alloc(size_t a, size_t n)
{
	if (a <= 16)
		return malloc(n);
	if (a > 4096 || n > SIZE_MAX / 2) {
		errno = a > 4096 ? EINVAL : ENOMEM;
		return NULL;
	}
	size_t m = (n + 2 * 4096 + 4095) & ~(size_t)4095;
	char *base = mmap(NULL, m, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	struct hdr *h = (struct hdr *)(base + 4096) - 1;
	h->word = BIG | m;
	return base + 4096;
}

void *memalign(size_t a, size_t n) { return aligned_alloc(a, n); }

int posix_memalign(void **r, size_t a, size_t n)
{
	void *p = aligned_alloc(a, n);
	if (!p)
		return errno;
	*r = p;
	return 0;
}

size_t malloc_usable_size(void *p) { return p ? usable((struct hdr *)p - 1) : 0; }
