/* dump: os_heap_dump(), every block in address order, as text or JSON.
 *
 * Tools layer: reads the core's lists under the lock and writes with write(2) in chunks, never allocating.
 * Heap blocks are named by their offset from the heap start (as the trace does); mappings by address. */
#include "internal.h"
#include "osmem.h"

struct out { int fd; char buf[4096]; size_t len; };

static void flush(struct out *o)
{
	osm_os_write_fd(o->fd, o->buf, o->len);
	o->len = 0;
}

static void put(struct out *o, const char *s)
{
	for (; *s; s++) {
		if (o->len == sizeof o->buf)
			flush(o);
		o->buf[o->len++] = *s;
	}
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

int os_heap_dump(int fd, int format)
{
	if (format != OS_DUMP_TEXT && format != OS_DUMP_JSON)
		return -1;
	bool json = format == OS_DUMP_JSON;
	struct out o = { .fd = fd, .len = 0 };
	osm_lock();
	if (json) {
		put(&o, "{\"heap_start\": \"0x");
		put_uint(&o, (uintptr_t)osm_heap.base, 16);
		put(&o, "\", \"heap_size\": ");
		put_uint(&o, osm_heap.head ? (uintmax_t)(osm_heap.end - osm_heap.base) : 0, 10);
		put(&o, ", \"blocks\": [");
	}
	bool first = true;
	for (const struct block_meta *b = osm_heap.head; b; b = b->next, first = false)
		block(&o, b, json, first);
	for (const struct block_meta *b = osm_heap.mapped; b; b = b->next, first = false)
		block(&o, b, json, first);
	if (json)
		put(&o, "\n]}\n");
	flush(&o);
	osm_unlock();
	return 0;
}
