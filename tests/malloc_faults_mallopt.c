/* malloc_faults_mallopt: osmem's own mallopt and malloc_info (before, both fell through to glibc's, which tune
 * and describe an allocator the program no longer uses).
 *  - mallopt's return values: 1 for the options osmem honours or can ignore, 0 for unknown options and values
 *    it cannot honour (README, "mallopt"); in the classic profile, 0 for every option that would change
 *    docs/CLASSIC.md's rules;
 *  - M_MMAP_THRESHOLD moves the threshold and turns the dynamic one off (os_stats' mapped_count shows which
 *    requests got a mapping); M_TRIM_THRESHOLD -1 stops trimming; M_TOP_PAD sets the break's growth; M_MMAP_MAX 0
 *    maps nothing, n > 0 caps the mapped blocks live at once, and a large limit gives the thresholds back;
 *  - malloc_info: glibc's XML (checked here for its frame and numbers; tests/test_faults.py parses it), EINVAL and
 *    -1 for options != 0 and for no stream.
 * Runs the default profile, then itself again with OSMEM_PROFILE=classic. With --info it only prints
 * malloc_info after a workload of 4 threads, for test_faults.py. Prints `PASS mallopt/...` or `FAIL ...: why`. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osmem.h"

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static int failed;
static const char *profile = "default";

static void check(const char *name, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(const char *name, int ok, const char *fmt, ...)
{
	if (ok) {
		printf("PASS mallopt/%s/%s\n", profile, name);
		return;
	}
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	printf("FAIL mallopt/%s/%s: %s\n", profile, name, why);
	failed++;
}

static size_t mapped(void)
{
	struct os_stats st;
	os_stats(&st);
	return st.mapped_count;
}

/* Whether a fresh malloc(n) got a mapping of its own (freed again). */
static int is_mapped(size_t n)
{
	size_t before = mapped();
	void *p = v_malloc(n);
	int m = mapped() == before + 1;
	v_free(p);
	return p && m;
}

struct ret_case { const char *name; int param, value, want_default, want_classic; };

static const struct ret_case ret_cases[] = {
	{ "arena_max", M_ARENA_MAX, 1, 1, 1 },
	{ "arena_test", M_ARENA_TEST, 8, 1, 1 },
	{ "check_action", M_CHECK_ACTION, 1, 1, 1 },
	{ "perturb", M_PERTURB, 0xa5, 1, 1 },
	{ "mxfast_0", M_MXFAST, 0, 1, 1 },
	{ "mxfast_too_large", M_MXFAST, 1000, 0, 0 },
	{ "mmap_max_negative", M_MMAP_MAX, -1, 1, 0 },
	{ "mmap_max_65536", M_MMAP_MAX, 65536, 1, 1 },
	{ "mmap_max_10", M_MMAP_MAX, 10, 1, 0 },
	{ "mmap_max_65536_again", M_MMAP_MAX, 65536, 1, 1 }, /* the limit of 10 goes */
	{ "mmap_threshold_negative", M_MMAP_THRESHOLD, -1, 1, 0 },
	{ "mmap_threshold_above_32m", M_MMAP_THRESHOLD, 64 << 20, 1, 0 },
	{ "top_pad_negative", M_TOP_PAD, -1, 0, 0 },
	{ "unknown_option", 12345, 1, 0, 0 },
};

static void return_values(int classic)
{
	for (size_t i = 0; i < sizeof ret_cases / sizeof ret_cases[0]; i++) {
		const struct ret_case *c = &ret_cases[i];
		int want = classic ? c->want_classic : c->want_default, got = mallopt(c->param, c->value);
		char name[80];
		snprintf(name, sizeof name, "returns/%s", c->name);
		check(name, got == want, "mallopt(%d, %d) returned %d, expected %d", c->param, c->value, got, want);
	}
}

static void default_profile(void)
{
	/* before any setting: the dynamic threshold rises to a freed mapped block's size */
	check("dynamic_threshold_before", is_mapped(1 << 20) && !is_mapped(1 << 20),
	      "a 1 MiB block was not mapped once and then served from the heap (glibc's dynamic threshold)");
	int r = mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	check("mmap_threshold/returns_1", r == 1, "mallopt(M_MMAP_THRESHOLD, 64 KiB) returned %d", r);
	check("mmap_threshold/above_is_mapped", is_mapped(100 * 1024),
	      "a 100 KiB request was not mapped with the threshold at 64 KiB");
	check("mmap_threshold/dynamic_off", is_mapped(100 * 1024) && is_mapped(2 << 20) && is_mapped(2 << 20),
	      "a request above the threshold came from the heap after a mapped block of its size was freed (the "
	      "dynamic threshold should be off)");
	check("mmap_threshold/below_is_not", !is_mapped(60 * 1024), "a 60 KiB request was mapped");
	r = mallopt(M_MMAP_THRESHOLD, 1 << 20);
	check("mmap_threshold/raised", r == 1 && !is_mapped(512 * 1024) && is_mapped(2 << 20),
	      "with the threshold at 1 MiB (returned %d), 512 KiB must come from the heap and 2 MiB be mapped", r);

	/* M_TRIM_THRESHOLD -1: the top is never given back; then 128 KiB: it is */
	struct os_stats a, b;
	void *blk[64];
	r = mallopt(M_TRIM_THRESHOLD, -1);
	os_stats(&a);
	for (int i = 0; i < 64; i++)
		blk[i] = v_malloc(100 * 1024);
	for (int i = 63; i >= 0; i--)
		v_free(blk[i]);
	os_stats(&b);
	check("trim_threshold/never", r == 1 && b.trims == a.trims,
	      "mallopt(M_TRIM_THRESHOLD, -1) returned %d, and freeing 6.4 MiB at the top trimmed %zu times", r,
	      b.trims - a.trims);
	r = mallopt(M_TRIM_THRESHOLD, 128 * 1024);
	for (int i = 0; i < 64; i++)
		blk[i] = v_malloc(100 * 1024);
	for (int i = 63; i >= 0; i--)
		v_free(blk[i]);
	os_stats(&a);
	check("trim_threshold/128k", r == 1 && a.trims > b.trims,
	      "mallopt(M_TRIM_THRESHOLD, 128 KiB) returned %d, and freeing 6.4 MiB at the top did not trim", r);

	/* M_TOP_PAD 16 MiB: the next growth of the break is at least that */
	r = mallopt(M_TOP_PAD, 16 << 20);
	os_stats(&a);
	size_t grew = 0;
	for (int i = 0; i < 64 && !grew; i++) {
		blk[i] = v_malloc(200 * 1024);
		os_stats(&b);
		if (b.brk_calls > a.brk_calls)
			grew = b.heap_size - a.heap_size;
		a = b;
	}
	check("top_pad/growth", r == 1 && grew >= (16u << 20),
	      "mallopt(M_TOP_PAD, 16 MiB) returned %d, and the break grew by %zu bytes", r, grew);

	/* M_MMAP_MAX 0: nothing is mapped; 65536: the thresholds come back (1 MiB, set above) */
	r = mallopt(M_MMAP_MAX, 0);
	check("mmap_max/0_maps_nothing", r == 1 && !is_mapped(4 << 20),
	      "mallopt(M_MMAP_MAX, 0) returned %d, or a 4 MiB request was still mapped", r);
	r = mallopt(M_MMAP_MAX, 65536);
	check("mmap_max/65536_maps_again", r == 1 && is_mapped(4 << 20),
	      "mallopt(M_MMAP_MAX, 65536) returned %d, or a 4 MiB request was not mapped", r);
	/* a negative limit: glibc maps nothing (its count is never below it); then the thresholds come back again */
	r = mallopt(M_MMAP_MAX, -1);
	check("mmap_max/negative_maps_nothing", r == 1 && !is_mapped(4 << 20),
	      "mallopt(M_MMAP_MAX, -1) returned %d, or a 4 MiB request was still mapped", r);
	mallopt(M_MMAP_MAX, 65536);

	/* M_MMAP_MAX n: at most n mapped blocks live; the next request above the threshold comes from the heap, and a
	 * mapped block freed makes room again (until session 62 osmem refused any n below 65536) */
	struct os_stats m0, m1;
	os_stats(&m0);
	r = mallopt(M_MMAP_MAX, (int)m0.mapped_count + 2);
	void *big[4];
	for (int i = 0; i < 4; i++)
		big[i] = v_malloc(4 << 20);
	os_stats(&m1);
	check("mmap_max/limit_counts_live_mappings", r == 1 && big[2] && big[3] && m1.mapped_count == m0.mapped_count + 2,
	      "mallopt(M_MMAP_MAX, %zu) returned %d, and 4 requests of 4 MiB made %zu mapped blocks (want 2; the "
	      "others from the heap)", m0.mapped_count + 2, r, m1.mapped_count - m0.mapped_count);
	v_free(big[0]);
	check("mmap_max/freed_mapping_makes_room", is_mapped(4 << 20),
	      "with one of the limit's mapped blocks freed, a 4 MiB request was not mapped");
	for (int i = 1; i < 4; i++)
		v_free(big[i]);

	/* ... and a mapped block at the limit grows where it is (mremap), as glibc's does: the limit counted the block
	 * itself, so each growth copied it into the heap and the next mapped it again (a review of session 62: 50
	 * moves for 255 growths by 1 MiB, 2.7 s; glibc 8 moves) */
	os_stats(&m0);
	mallopt(M_MMAP_MAX, (int)m0.mapped_count + 1);
	char *g = v_malloc(1 << 20);
	int moves = 0, steps = 63;
	if (g)
		g[0] = 7;
	for (int i = 2; g && i <= steps + 1; i++) {
		char *ng = realloc(g, (size_t)i << 20);
		if (!ng) {
			v_free(g);
			g = NULL;
			break;
		}
		moves += ng != g;
		g = ng;
		g[((size_t)i << 20) - 1] = 7;
	}
	os_stats(&m1);
	check("mmap_max/mapped_growth_stays_mapped", g && g[0] == 7 && moves <= steps / 4 &&
	      m1.mapped_count <= m0.mapped_count + 1,
	      "a mapped block grown by 1 MiB %d times at a limit of one more mapping moved %d times (want at most %d), "
	      "%zu mapped blocks more (want at most 1)%s", steps, moves, steps / 4, m1.mapped_count - m0.mapped_count,
	      g ? "" : ", or a realloc failed");
	v_free(g);
	mallopt(M_MMAP_MAX, 65536);

	/* thresholds glibc 2.36 takes and osmem refused until session 41: above 32 MiB, and negative (SIZE_MAX) */
	r = mallopt(M_MMAP_THRESHOLD, 64 << 20);
	check("mmap_threshold/above_32m_honoured", r == 1 && !is_mapped(40 << 20) && is_mapped(80 << 20),
	      "with mallopt(M_MMAP_THRESHOLD, 64 MiB) (returned %d), a 40 MiB request must come from the heap and an "
	      "80 MiB one be mapped", r);
	r = mallopt(M_MMAP_THRESHOLD, -1);
	check("mmap_threshold/negative_maps_nothing_for_its_size", r == 1 && !is_mapped(80 << 20),
	      "with mallopt(M_MMAP_THRESHOLD, -1) (returned %d: glibc reads it as SIZE_MAX), an 80 MiB request must come "
	      "from the heap", r);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

static void classic_profile(void)
{
	int r = mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	check("mmap_threshold/refused", r == 0 && !is_mapped(100 * 1024) && is_mapped(128 * 1024),
	      "mallopt(M_MMAP_THRESHOLD) returned %d, or the threshold moved from docs/CLASSIC.md's 128 KiB", r);
	check("trim_threshold/refused", mallopt(M_TRIM_THRESHOLD, 0) == 0, "mallopt(M_TRIM_THRESHOLD) did not return 0");
	check("top_pad/refused", mallopt(M_TOP_PAD, 1 << 20) == 0, "mallopt(M_TOP_PAD) did not return 0");
	check("mmap_max_0/refused", mallopt(M_MMAP_MAX, 0) == 0 && is_mapped(200 * 1024),
	      "mallopt(M_MMAP_MAX, 0) did not return 0, or a 200 KiB request was not mapped");
}

static void info_checks(void)
{
	errno = 0;
	int r = malloc_info(1, stdout);
	check("info/options_einval", r == -1 && errno == EINVAL, "malloc_info(1, stdout) returned %d, errno %d", r, errno);
	errno = 0;
	r = malloc_info(0, NULL);
	check("info/no_stream_einval", r == -1 && errno == EINVAL, "malloc_info(0, NULL) returned %d, errno %d", r, errno);
	void *big = v_malloc(8 << 20), *small[100];
	for (int i = 0; i < 100; i++)
		small[i] = v_malloc(48);
	for (int i = 0; i < 100; i += 2)
		v_free(small[i]);
	/* a file whose stdio buffer exists before the count is taken (an open_memstream buffer can be a mapping) */
	FILE *f = tmpfile();
	fputs("x", f);
	fflush(f);
	rewind(f);
	char want[80];
	snprintf(want, sizeof want, "<total type=\"mmap\" count=\"%zu\"", mapped());
	errno = 0;
	r = malloc_info(0, f);
	int err = errno;
	fflush(f);
	static char buf[65536];
	rewind(f);
	size_t len = fread(buf, 1, sizeof buf - 1, f);
	buf[len] = 0;
	fclose(f);
	const char *tail = "</heap>\n<total type=\"fast\"";
	check("info/frame", r == 0 && err == 0 && strncmp(buf, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", 42) == 0 &&
				len > 10 && strcmp(buf + len - 10, "</malloc>\n") == 0 && strstr(buf, tail) &&
				strstr(buf, "<total type=\"rest\"") && strstr(buf, "<system type=\"current\""),
	      "malloc_info returned %d (errno %d) and wrote %zu bytes not in glibc's frame: %.200s", r, err, len, buf);
	const char *tot = strstr(buf, "<total type=\"mmap\"");
	check("info/mmap_count", strstr(buf, want) != NULL, "no '%s' (os_stats' count) in: %.80s", want, tot ? tot : buf);
	check("info/free_slots_listed", strstr(buf, "<size from=") != NULL,
	      "with 50 free 48-byte blocks no <size> element lists a free size: %.400s", buf);
	for (int i = 1; i < 100; i += 2)
		v_free(small[i]);
	v_free(big);
}

/* --info: four threads hold blocks of every kind, some freed; then malloc_info(0, stdout) and one line
 * "MAPPED n" with os_stats' mapped_count. */
static void *info_thread(void *arg)
{
	void **keep = arg;
	for (int i = 0; i < 2000; i++)
		keep[i] = v_malloc((size_t)(i % 7 == 0 ? 3000 + i * 10 : 16 + (i * 37) % 2000));
	for (int i = 0; i < 2000; i += 3) {
		v_free(keep[i]);
		keep[i] = NULL;
	}
	return NULL;
}

static int info_mode(void)
{
	static void *keep[4][2000];
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, info_thread, keep[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	void *big[3] = { v_malloc(1 << 20), v_malloc(3 << 20), v_malloc(40 << 20) };
	fflush(stdout);
	if (malloc_info(0, stdout) != 0)
		return 1;
	fflush(stdout);
	printf("MAPPED %zu\n", mapped());
	for (int i = 0; i < 3; i++)
		v_free(big[i]);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "--info") == 0)
		return info_mode();
	const char *p = getenv("OSMEM_PROFILE");
	int classic = p && strcmp(p, "classic") == 0;
	profile = classic ? "classic" : "default";
	if (classic)
		classic_profile();
	else
		default_profile(); /* first: it sees the dynamic threshold before any mallopt */
	return_values(classic);
	info_checks();
	if (!classic) { /* the same binary in the classic profile */
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			setenv("OSMEM_PROFILE", "classic", 1);
			execv("/proc/self/exe", argv);
			_exit(127);
		}
		int status;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) == 127) {
			printf("FAIL mallopt/classic: the child did not run (status %d)\n", status);
			failed++;
		} else if (WEXITSTATUS(status)) {
			failed++;
		}
	}
	return failed != 0;
}
