/* stats: the text form of os_stats' figures, and the summary at exit (OSMEM_STATS=1).
 *
 * Record layer: formats figures the API gathered (osmem.c, os_stats: the front's and the core's, each under its
 * own lock) without stdio or allocation, and writes them through the OS seam. It takes no lock and calls no
 * layer above it. */
#include "internal.h"
#include "osmem.h"

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

static void stats_text(struct text *t, const struct os_stats *sp, const struct osm_stats_extra *x)
{
	const struct os_stats st = *sp;
	put(t, x->classic ? "osmem: statistics (classic profile)\n" : "osmem: statistics (default profile)\n");
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
	if (x->streamed_moves) /* OSMEM_STREAM, or an AMD processor (os.c, osm_os_copy_streams) */
		line(t, "streamed moves", x->streamed_moves);
	if (!x->classic) { /* the mapping cache (heap.c), also in front_cached_*: listed apart here */
		line(t, "kept mappings", x->kept_maps);
		line(t, "kept mapping bytes", x->kept_bytes);
		line(t, "kept mappings reused", x->reused_maps);
		line(t, "huge page bytes", st.huge_bytes);
		line(t, "populate calls", st.populate_calls);
		line(t, "fault probe ns", st.fault_probe_ns);
		line(t, "idle bytes given back", st.idle_released);
		line(t, "frees deferred", st.deferred_frees);
		if (x->background)
			line(t, "background wakes", x->background_wakes);
	}
	/* the caches' lines wherever they served or hold anything: a program of medium blocks alone maps no
	 * segment, and malloc_trim unmaps them all, and the lines vanished with front_bytes (the review of session
	 * 56; observe/stats_text_shows_medium_caches) */
	if (st.front_bytes || st.cache_hits || st.cache_misses || st.front_cached_blocks || st.front_threads) {
		line(t, "cache hits", st.cache_hits);
		line(t, "cache misses", st.cache_misses);
		line(t, "front bytes", st.front_bytes);
		line(t, "front page bytes", st.front_page_bytes);
		line(t, "front bytes in use", st.front_in_use);
		line(t, "front free bytes", st.front_free);
		line(t, "front threads", st.front_threads);
		line(t, "front cached blocks", st.front_cached_blocks);
		line(t, "front cached bytes", st.front_cached_bytes);
		line(t, "front scavenged", st.front_scavenged); /* medium blocks given back unused */
	}
}

void osm_stats_print(int fd, const struct os_stats *st, const struct osm_stats_extra *x)
{
	struct text t = { .len = 0 };
	stats_text(&t, st, x);
	osm_os_write_fd(fd, t.buf, t.len);
}

/* OSMEM_STATS=1 prints to standard error at exit, OSMEM_STATS=PATH appends to a file. Standard error is
 * duplicated at start, since some programs (coreutils) close theirs before the end; the copy sits at a high
 * number that the program does not reuse by accident, and is checked before the write (os.c). Printed at the
 * very end of exit() (osmem.c), so frees made by destructors that run after osmem's count. */
static struct os_file stats_file = { .fd = -1 };

ONCE_PATH bool osm_stats_open(void)
{
	const char *v = osm_os_getenv("OSMEM_STATS");
	if (!v || !*v || strcmp(v, "0") == 0)
		return false;
	if (osm_os_open_stats(&stats_file, v))
		return true;
	/* said once, as OSMEM_TRACE's path is: until session 60 a path that could not be opened gave no statistics
	 * and no word (observe/stats/unwritable_path_said) */
	const char *why = osm_os_open_failure(v, stats_file.err);
	osm_os_write_err("osmem: OSMEM_STATS names ");
	osm_os_write_err(v);
	osm_os_write_err(", ");
	osm_os_write_err(why ? why : "which could not be opened");
	osm_os_write_err(": no statistics\n");
	return false;
}

bool osm_stats_wanted(void)
{
	return stats_file.fd >= 0;
}

void osm_stats_at_exit(const struct os_stats *st, const struct osm_stats_extra *x)
{
	if (stats_file.fd < 0)
		return;
	struct text t = { .len = 0 };
	stats_text(&t, st, x);
	/* a write that failed is said (OSMEM_STATS=/dev/full, a full disk): until session 61 it lost them in silence */
	if (!osm_os_file_write(&stats_file, t.buf, t.len) && stats_file.err) {
		osm_os_write_err("osmem: OSMEM_STATS: the statistics could not be written: ");
		osm_os_write_err(osm_os_error_text(stats_file.err));
		osm_os_write_err("\n");
	}
	stats_file.fd = -1; /* once */
}
