/* mapset: which mapped blocks are alive, found from a pointer in O(1) without reading the pointer's memory.
 *
 * free() of a pointer that is not on the heap must tell one of osmem's mappings from anything else (a block
 * already unmapped, a wild pointer, a pointer into a PROT_NONE or file mapping) BEFORE it reads a header there:
 * reading could fault. A system call (mincore) per free would cost microseconds and still cannot tell a
 * PROT_NONE page from a readable one. So every live mapped block's header address is kept in an open-addressing
 * hash table (linear probing, backward-shift deletion: no tombstones), with the size its header had when it
 * was mapped, so that a header overwritten by the program is seen as corrupted instead of trusted.
 *
 * The table starts in .lbss (zero-initialised, mapped by the loader: no system call; 64 Ki entries, 1 MiB, in
 * libosmem.so, 4 Ki, 64 KiB, in the drop-in) and a larger one is mapped when it is 3/4 full, in both of the
 * drop-in's profiles. libosmem.so makes the system calls of docs/CLASSIC.md and no others, so past that (49,152
 * live mappings) it stops adding and answers "maybe" for pointers it does not hold, and the caller walks the list
 * of mappings (O(n) a lookup, and it follows each header's `next`, which a program that overwrote one has forged);
 * the drop-in walks only when the larger table cannot be mapped. Until session 56 the drop-in's classic profile
 * did not grow its (by then 4 Ki-entry) table either: past 3,072 live mappings every free walked the list, 40,000
 * live 200 KB blocks took 380 s to free in random order instead of 0.8, and a free after a header's `next` was
 * overwritten followed it into a SIGSEGV (hostile/classic/many_mappings_header_underwrite).
 * A ring remembers the last 64 headers unmapped, so that a second free of a mapped block is reported as a
 * double free rather than an invalid pointer. Callers hold the heap lock. */
#include "internal.h"

struct mentry {
	uintptr_t key; /* header address; 0: empty */
	size_t size;   /* the header's size field when the block was linked */
};

#ifdef OSMEM_DROPIN
#define MAPSET_BITS0 12 /* 64 KiB: the drop-in keeps its writable segments small (internal.h, struct fslot) */
#else
#define MAPSET_BITS0 16
#endif
static struct mentry table0[(size_t)1 << MAPSET_BITS0] LARGE_BSS;

static struct {
	struct mentry *t;
	unsigned bits;
	size_t count;
	size_t overflow;           /* live blocks the table could not take (libosmem.so, or no memory for a larger) */
	uintptr_t gone[64];        /* recently unmapped headers */
	unsigned gone_next;
} ms = { table0, MAPSET_BITS0, 0, 0, { 0 }, 0 };

static inline size_t slot_of(uintptr_t key, unsigned bits)
{
	return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

static void put(struct mentry *t, unsigned bits, uintptr_t key, size_t size)
{
	size_t mask = ((size_t)1 << bits) - 1, i = slot_of(key, bits);
	while (t[i].key && t[i].key != key)
		i = (i + 1) & mask;
	t[i].key = key;
	t[i].size = size;
}

/* Doubles the table (the drop-in only). Returns false when it cannot. */
static bool grow(void)
{
#ifndef OSMEM_DROPIN
	if (osm_heap.classic) /* libosmem.so: docs/CLASSIC.md's system calls, no others */
		return false;
#endif
	if (ms.bits >= 40)
		return false;
	unsigned bits = ms.bits + 1;
	struct mentry *t = osm_os_map(sizeof(struct mentry) << bits); /* zero-filled: all empty */
	if (!t)
		return false;
	for (size_t i = 0; i < (size_t)1 << ms.bits; i++)
		if (ms.t[i].key)
			put(t, bits, ms.t[i].key, ms.t[i].size);
	if (ms.t != table0)
		osm_os_unmap(ms.t, sizeof(struct mentry) << ms.bits);
	ms.t = t;
	ms.bits = bits;
	return true;
}

void osm_mapset_add(const struct block_meta *b)
{
	uintptr_t key = (uintptr_t)b;
	/* A new mapping at the address of a gone one leaves the ring as it is: the table, asked first, says it is
	 * live. Once it leaves the table again it was unmapped (the ring takes its address anyway) or moved by
	 * mremap (realloc let the old address go: a free of it is a double free, as the ring says). Clearing the
	 * address from the ring here took a compare and branch on each of its 64 entries, 360 instructions a mapped
	 * malloc, a fifth of a large malloc's (callgrind, bench's large). */
	if ((ms.count + 1) * 4 > ((size_t)3 << ms.bits) && !grow()) {
		ms.overflow++;
		return;
	}
	put(ms.t, ms.bits, key, b->size);
	ms.count++;
}

static bool find_index(uintptr_t key, size_t *at)
{
	size_t mask = ((size_t)1 << ms.bits) - 1;
	for (size_t i = slot_of(key, ms.bits); ms.t[i].key; i = (i + 1) & mask)
		if (ms.t[i].key == key) {
			*at = i;
			return true;
		}
	return false;
}

void osm_mapset_del(const struct block_meta *b, bool unmapped)
{
	size_t i, mask = ((size_t)1 << ms.bits) - 1;
	if (unmapped) {
		ms.gone[ms.gone_next++ & 63] = (uintptr_t)b;
	}
	if (!find_index((uintptr_t)b, &i)) {
		if (ms.overflow)
			ms.overflow--;
		return;
	}
	ms.count--;
	/* backward-shift deletion: move up every later entry of the probe run that may sit in the hole */
	for (size_t j = (i + 1) & mask; ms.t[j].key; j = (j + 1) & mask) {
		size_t home = slot_of(ms.t[j].key, ms.bits);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			ms.t[i] = ms.t[j];
			i = j;
		}
	}
	ms.t[i].key = 0;
}

/* b's address was let go by a mapping that moved (mremap): a free of it is a double free, as after an unmap. */
void osm_mapset_moved(const struct block_meta *b)
{
	ms.gone[ms.gone_next++ & 63] = (uintptr_t)b;
}

enum mapset_answer osm_mapset_find(const struct block_meta *b, size_t *size)
{
	size_t i;
	if (find_index((uintptr_t)b, &i)) {
		*size = ms.t[i].size;
		return MAPSET_LIVE;
	}
	if (ms.overflow) {
		/* past the table: the list of mappings is exact (unless a program overwrote a header's `next`) */
		for (const struct block_meta *m = osm_heap.mapped; m; m = m->next)
			if (m == b) {
				*size = m->size;
				return MAPSET_LIVE;
			}
	}
	/* b != NULL: the ring's unused entries are 0, and free((void *)32), whose header would be at 0, was reported
	 * as a double free (session 58's review: death/free_never_allocated_low_address, strict/free_low_address) */
	for (unsigned k = 0; b && k < 64; k++)
		if (ms.gone[k] == (uintptr_t)b)
			return MAPSET_GONE;
	return MAPSET_UNKNOWN;
}
