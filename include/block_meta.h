/* The block header: part of osmem's ABI (docs/CLASSIC.md).
 * Every block, on the heap or mapped, starts with this header; the payload follows it at +META_SIZE.
 * Programs and graders read it there, so the layout, the meaning of `size` and the status values never change. */
#ifndef OSMEM_BLOCK_META_H
#define OSMEM_BLOCK_META_H

#include <stddef.h>

struct block_meta {
	size_t size;              /* payload bytes, already aligned; the header is not counted */
	int status;               /* STATUS_FREE, STATUS_ALLOC or STATUS_MAPPED */
	struct block_meta *prev;  /* heap blocks: address order; mapped blocks: the list of mappings */
	struct block_meta *next;
};

#define STATUS_FREE   0
#define STATUS_ALLOC  1
#define STATUS_MAPPED 2

#define META_SIZE sizeof(struct block_meta) /* 32 on x86-64 */

#endif
