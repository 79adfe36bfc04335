/* dump: the text of os_heap_dump(), every block in address order, as text or JSON.
 *
 * Record layer: the API (osmem.c) holds the lock while osm_dump_build formats the core's lists into a buffer
 * mapped for the purpose (not malloc's, so never the heap being dumped), and calls osm_dump_write after letting
 * the lock go: a reader that is slow or absent (a full pipe) stalls the dumping thread only. Heap blocks are
 * named by their offset from the heap start (as the trace does); mappings by address. No lock is taken here. */
#include "internal.h"
#include "osmem.h"

struct out { char *buf; size_t len, cap; };

/* The longest line block() writes (a JSON mapping with 20-digit numbers) is under LINE_MAX_BYTES. */
#define LINE_MAX_BYTES 160

static void put(struct out *o, const char *s)
{
	for (; *s && o->len < o->cap; s++)
		o->buf[o->len++] = *s;
}

static void put_uint(struct out *o, uintmax_t v, unsigned base)
{
	char d[24];
	osm_os_utoa(d, v, base);
	put(o, d);
}

static const char *status_name(int status)
{
	return status == STATUS_FREE ? "free" : status == STATUS_ALLOC ? "alloc" : "mapped";
}

static void block(struct out *o, const struct block_meta *b, bool json, bool first)
{
	bool heap = b->status != STATUS_MAPPED;
	if (json) {
		put(o, first ? "\n  {\"offset\": " : ",\n  {\"offset\": ");
		put_uint(o, heap ? (uintmax_t)((const char *)b - osm_heap.base) : 0, 10);
		put(o, ", \"address\": \"0x");
		put_uint(o, (uintptr_t)b, 16);
		put(o, "\", \"size\": ");
		put_uint(o, b->size, 10);
		put(o, ", \"status\": \"");
		put(o, status_name(b->status));
		put(o, heap ? "\", \"where\": \"heap\"}" : "\", \"where\": \"mapped\"}");
		return;
	}
	if (heap) {
		put(o, "H+0x");
		put_uint(o, (uintmax_t)((const char *)b - osm_heap.base), 16);
	} else {
		put(o, "0x");
		put_uint(o, (uintptr_t)b, 16);
	}
	put(o, " ");
	put_uint(o, b->size, 10);
	put(o, " ");
	put(o, status_name(b->status));
	put(o, heap ? " heap\n" : " mapped\n");
}

bool osm_dump_build(bool json, struct osm_dump *d)
{
	struct out o = { .buf = NULL, .len = 0, .cap = 0 };
	size_t blocks = 0;
	for (const struct block_meta *b = osm_heap.head; b; b = b->next)
		blocks++;
	for (const struct block_meta *b = osm_heap.mapped; b; b = b->next)
		blocks++;
	size_t page = osm_os_page_size(), size = ((blocks + 2) * LINE_MAX_BYTES + page - 1) & ~(page - 1);
	o.buf = osm_os_map_buffer(size);
	if (!o.buf)
		return false;
	o.cap = size;
	if (json) {
		put(&o, "{\"heap_start\": \"0x");
		put_uint(&o, (uintptr_t)osm_heap.base, 16);
		put(&o, "\", \"heap_size\": ");
		put_uint(&o, (uintmax_t)osm_heap_bytes(), 10);
		put(&o, ", \"blocks\": [");
	}
	bool first = true;
	for (const struct block_meta *b = osm_heap.head; b; b = b->next, first = false)
		block(&o, b, json, first);
	for (const struct block_meta *b = osm_heap.mapped; b; b = b->next, first = false)
		block(&o, b, json, first);
	if (json)
		put(&o, "\n]}\n");
	d->buf = o.buf;
	d->len = o.len;
	d->size = size;
	return true;
}

void osm_dump_write(int fd, struct osm_dump *d)
{
	osm_os_write_fd(fd, d->buf, d->len);
	osm_os_unmap_buffer(d->buf, d->size);
}
