/* background: an opt-in thread of osmem's own (OSMEM_BACKGROUND=1, libosmem-malloc.so's default profile) that runs
 * the passes which give idle memory back, for a process that has stopped calling the allocator.
 *
 * Why: every pass that gives memory back (the core's decay of big free blocks and its sweep of idle holes, heap.c;
 * the front's pool decay and its taking of idle threads' caches, front.c) runs on the program's own calls: a
 * request that reaches the core, or one in FRONT_TICK of the frees the caches take. So a process that frees most
 * of its memory and then waits keeps it resident until its next calls: a redis-server after FLUSHALL kept 64 MiB
 * for as long as it stayed idle (docs/TRADEOFFS.md, session 71), where the same passes driven by light traffic took
 * it to 25 MiB within 2 s. jemalloc's answer is the same opt-in thread (`background_thread`); glibc has none.
 *
 * What it does: it sleeps BG_PERIOD_NS, then makes the ticks a free tick makes (osm_front_background_tick): each
 * pass runs only when due, by the clocks and rules it has without this thread, so the thread adds passes to an
 * idle process and none to a busy one, whose calls make them first. It never allocates, and it holds no heap of
 * the front's, so the front's pass may take the caches of the program's only thread once it has been idle for two
 * passes (front.c, steal_idle), as a second program thread's pass would.
 *
 * What it costs (docs/DEFAULT.md): the process has a second thread from its start. Its locks then take an atomic
 * compare-and-swap where a one-thread process stores (internal.h, osm_os_lock_take). The rules made for a program
 * of one thread do not count this thread: the heap's (the decay's second, the mmap threshold's rise, the mapping
 * cache's band, the top taken last: heap.c, alone_check) and the medium caches' (internal.h,
 * osm_front_program_alone). Counted, large took 1.08 of its time and mixed-realloc 1.13 (session 73). Both are
 * named before the thread starts, so that the program's first requests meet them too. A wake every 100 ms: a
 * clock read and a compare or two when nothing is due.
 * Where it is not: libosmem.so, the classic profile (which gives nothing back), and a fork's child (as jemalloc's
 * background threads: a child that execs needs none, and making one in every child would tax fork-then-exec
 * programs). The child's passes run on its calls. glibc counts the child as threaded still; the child of a
 * program of one thread keeps the one-thread rules all the same (osm_heap_alone_fork_child).
 * What it breaks: a program of one thread that forks from a signal handler (glibc's tst-mallocfork2). glibc's fork
 * takes its own locks once the process has a second thread, and a handler's fork then waits for the one it
 * interrupted: any second thread does so, one that blocks every signal and never allocates included (session 72's
 * review: the same hang with glibc's malloc and an idle thread).
 *
 * Front layer: it calls the front (and, for the profile, the core's options); the API starts it from its
 * constructor, where no lock of osmem's is held (pthread_create may call malloc). */
#include <string.h>

#include "internal.h"

#define BG_PERIOD_NS 100000000ull /* 100 ms: the core's decay waits 10 ms at least, the front's passes a second */

static bool bg_on; /* the thread exists in this process (not in a fork's child); set before it starts */
HIDDEN bool osm_background_stop; /* the process is exiting (osmem.c's destructor): no pass from now on */
static size_t bg_wakes;

static void *bg_main(void *arg)
{
	(void)arg;
	osm_heap_alone_helper(osm_lock_self_id()); /* before its first pass, which asks the heap's rules */
	for (;;) {
		osm_os_sleep_ns(BG_PERIOD_NS);
		if (osm_background_stopping())
			continue; /* exiting: it sleeps until the process ends */
		__atomic_store_n(&bg_wakes, __atomic_load_n(&bg_wakes, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
		osm_front_background_tick();
	}
	return NULL;
}

/* From the constructor (osmem.c), where OSMEM_BACKGROUND is set and not empty: 1 starts the thread, 0 does not;
 * anything else is said once, and no thread. The profile is read first (the heap lock runs osm_init): the classic
 * one gets none. Out of the hot text: only processes with the setting run it. */
void osm_background_start(const char *v)
{
	if (strcmp(v, "0") == 0)
		return;
	if (strcmp(v, "1") != 0) {
		osm_os_write_err("osmem: OSMEM_BACKGROUND=");
		osm_os_write_err(v);
		osm_os_write_err(" is not 0 or 1; no background thread\n");
		return;
	}
	struct heap_policy p;
	bool classic;
	osm_option_get(&p, &classic);
	if (classic) {
		osm_os_write_err("osmem: OSMEM_BACKGROUND=1 ignored: the classic profile gives no memory back\n");
		return;
	}
	/* a program of one thread keeps its one-thread rules: the heap's (heap.c, alone_check) and the medium caches'
	 * (osm_front_alone_bg), both named before the thread exists, while glibc's flag still says one thread */
	bool alone = osm_os_single_threaded();
	if (alone) {
		osm_heap_alone_claim(osm_os_thread_id());
		__atomic_store_n(&osm_front_alone_bg, true, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&bg_on, true, __ATOMIC_RELAXED);
	if (!osm_os_thread_start(bg_main, "osmem-bg")) {
		__atomic_store_n(&bg_on, false, __ATOMIC_RELAXED);
		osm_heap_alone_claim(0);
		__atomic_store_n(&osm_front_alone_bg, false, __ATOMIC_RELAXED);
		osm_os_write_err("osmem: OSMEM_BACKGROUND=1: no background thread could be made\n");
	}
}

/* A fork's child has no such thread (fork copies the calling thread alone). */
void osm_background_fork_child(void)
{
	__atomic_store_n(&bg_on, false, __ATOMIC_RELAXED);
	/* one thread; glibc's flag stays clear in it: the one-thread rules where the parent's program had one thread
	 * (a second live heap in the child clears the medium caches' flag as it is made, front.c) */
	__atomic_store_n(&osm_front_alone_bg, osm_heap_alone_fork_child(), __ATOMIC_RELAXED);
}

/* For the statistics: whether the thread runs in this process, and how often it woke. */
bool osm_background_running(size_t *wakes)
{
	*wakes = __atomic_load_n(&bg_wakes, __ATOMIC_RELAXED);
	return __atomic_load_n(&bg_on, __ATOMIC_RELAXED);
}
