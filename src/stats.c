/* stats: os_stats(), its text form, and the summary at exit (OSMEM_STATS=1).
 *
 * Tools layer: reads the core's counters under the lock and formats them without stdio or allocation. */
#include "internal.h"
#include "osmem.h"

void os_stats(struct os_stats *st)
{
#ifdef OSMEM_DROPIN
	struct front_stats fs;
	osm_front_stats(&fs); /* its own lock, taken before the heap lock and not nested in it */
#endif
	osm_lock();
	const struct heap_counters *c = &osm_heap.count;
	memset(st, 0, sizeof *st);
	st->bytes_requested = c->requested;
	st->bytes_in_use = c->heap_in_use + c->mapped_bytes;
	st->peak_in_use = c->peak_in_use;
	st->heap_size = osm_heap.head ? (size_t)(osm_heap.end - osm_heap.base) : 0;
	st->mapped_bytes = c->mapped_bytes;
	st->mapped_count = c->mapped_count;
	st->mapped_peak_bytes = c->mapped_peak_bytes;
	st->mapped_peak_count = c->mapped_peak_count;
	osm_free_summary(&st->largest_free, &st->free_blocks, &st->free_bytes);
	st->fragmentation = st->free_bytes ? 1.0 - (double)st->largest_free / (double)st->free_bytes : 0.0;
	st->allocations = c->allocations;
	st->frees = c->frees;
	st->brk_calls = osm_os_calls.brk;
	st->mmap_calls = osm_os_calls.mmap;
	st->munmap_calls = osm_os_calls.munmap;
	st->mremap_calls = osm_os_calls.mremap;
	st->madvise_calls = osm_os_calls.madvise;
	st->splits = c->splits;
	st->coalesces = c->coalesces;
	st->inplace_reallocs = c->inplace_reallocs;
	st->moved_reallocs = c->moved_reallocs;
	st->trims = c->trims;
	st->front_cached_blocks = c->kept_maps; /* the kept mappings; the front's caches are added below */
	st->front_cached_bytes = c->kept_bytes;
	osm_unlock();
#ifdef OSMEM_DROPIN
	st->cache_hits = fs.hits;
	st->cache_misses = fs.misses;
	st->front_bytes = fs.segment_bytes;
	st->front_page_bytes = fs.page_bytes;
	st->front_in_use = fs.in_use; /* the thread caches' slots are in neither front_in_use nor front_free */
	st->front_free = fs.free_bytes;
	st->front_threads = fs.threads;
	st->bytes_in_use += fs.in_use;
	st->allocations += fs.hits + fs.misses; /* every request the front served (a miss is served in its slow path) */
	st->frees += fs.frees;
	/* medium caches: the program's requests are the core's, minus the blocks a refill took ahead and the
	 * blocks a cache gave back, plus the ones the caches served; what they hold is free, not in use */
	st->cache_hits += fs.mc_hits;
	st->cache_misses += fs.mc_refills;
	st->allocations = st->allocations - fs.mc_extra + fs.mc_hits;
	st->frees = st->frees - fs.mc_flushed + fs.mc_frees;
	/* read under the front lock, before the core's figures: a cache that gave blocks back since is counted twice */
	st->bytes_in_use = st->bytes_in_use > fs.mc_bytes ? st->bytes_in_use - fs.mc_bytes : 0;
	st->front_cached_blocks += fs.mc_blocks + fs.tc_slots;
	st->front_cached_bytes += fs.mc_bytes + fs.tc_bytes;
	/* the core's peak plus the front's slots now: the front does not track its own peak on the fast path */
	if (st->peak_in_use < st->bytes_in_use)
		st->peak_in_use = st->bytes_in_use;
#endif
}

// ------------------------------------------------------------------
// Text without stdio
// ------------------------------------------------------------------

struct text { char buf[2048]; size_t len; };

static void put(struct text *t, const char *s)
{
	while (*s && t->len < sizeof t->buf - 1)
		t->buf[t->len++] = *s++;
}

static void put_num(struct text *t, size_t v)
{
	char d[24];
	osm_os_utoa(d, v, 10);
	put(t, d);
}

static void line(struct text *t, const char *name, size_t v)
{
	put(t, "osmem:   ");
	put(t, name);
	for (size_t pad = strlen(name); pad < 22; pad++)
		put(t, " ");
	put_num(t, v);
	put(t, "\n");
}

static void stats_text(struct text *t)
{
	struct os_stats st;
	os_stats(&st);
	put(t, osm_heap.classic ? "osmem: statistics (classic profile)\n" : "osmem: statistics (default profile)\n");
	line(t, "bytes requested", st.bytes_requested);
	line(t, "bytes in use", st.bytes_in_use);
	line(t, "peak bytes in use", st.peak_in_use);
	line(t, "heap bytes", st.heap_size);
	line(t, "mapped bytes", st.mapped_bytes);
	line(t, "mapped blocks", st.mapped_count);
	line(t, "free bytes", st.free_bytes);
	line(t, "free blocks", st.free_blocks);
	line(t, "largest free block", st.largest_free);
	put(t, "osmem:   fragmentation         ");
	put_num(t, (size_t)(st.fragmentation * 100.0 + 0.5));
	put(t, "%\n");
	line(t, "allocations", st.allocations);
	line(t, "frees", st.frees);
	line(t, "brk calls", st.brk_calls);
	line(t, "mmap calls", st.mmap_calls);
	line(t, "munmap calls", st.munmap_calls);
	line(t, "mremap calls", st.mremap_calls);
	line(t, "madvise calls", st.madvise_calls);
	line(t, "splits", st.splits);
	line(t, "coalesces", st.coalesces);
	line(t, "in-place reallocs", st.inplace_reallocs);
	line(t, "moved reallocs", st.moved_reallocs);
	line(t, "trims", st.trims);
	if (!osm_heap.classic) { /* the mapping cache (heap.c), also in front_cached_*: listed apart here */
		osm_lock();
		size_t kept = osm_heap.count.kept_maps, bytes = osm_heap.count.kept_bytes;
		size_t reused = osm_heap.count.reused_maps;
		osm_unlock();
		line(t, "kept mappings", kept);
		line(t, "kept mapping bytes", bytes);
		line(t, "kept mappings reused", reused);
	}
	if (st.front_bytes) {
		line(t, "cache hits", st.cache_hits);
		line(t, "cache misses", st.cache_misses);
		line(t, "front bytes", st.front_bytes);
		line(t, "front page bytes", st.front_page_bytes);
		line(t, "front bytes in use", st.front_in_use);
		line(t, "front free bytes", st.front_free);
		line(t, "front threads", st.front_threads);
		line(t, "front cached blocks", st.front_cached_blocks);
		line(t, "front cached bytes", st.front_cached_bytes);
	}
}

void os_stats_print(int fd)
{
	struct text t = { .len = 0 };
	stats_text(&t);
	osm_os_write_fd(fd, t.buf, t.len);
}

/* OSMEM_STATS=1 prints to standard error at exit, OSMEM_STATS=PATH appends to a file. Standard error is
 * duplicated at start, since some programs (coreutils) close theirs before the end; the copy sits at a high
 * number that the program does not reuse by accident, and is checked before the write (os.c). Printed at the
 * very end of exit() (osmem.c), so frees made by destructors that run after osmem's count. */
static struct os_file stats_file = { .fd = -1 };

bool osm_stats_open(void)
{
	const char *v = osm_os_getenv("OSMEM_STATS");
	return v && *v && strcmp(v, "0") != 0 && osm_os_open_stats(&stats_file, v);
}

void osm_stats_at_exit(void)
{
	if (stats_file.fd < 0)
		return;
	struct text t = { .len = 0 };
	stats_text(&t);
	osm_os_file_write(&stats_file, t.buf, t.len);
	stats_file.fd = -1; /* once */
}
