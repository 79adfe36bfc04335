/* malloc_defer: frees that find the core's lock taken (src/heap.c, "Frees that find the lock taken"). A free of a
 * heap block above the medium caches' sizes, by a thread that finds another thread holding the core's lock, does
 * not wait: the block is checked and marked without the lock and left for the lock's next holder to free.
 *
 * Hazards, each a named case:
 *  - the free must return while the other thread still holds the lock (it waited for it before), and the block
 *    must not be lost: the next holder frees it, os_stats counts it in deferred_frees, the heap checks out;
 *  - a block waiting is still freed: a second free of it, or a realloc of it (whose lock-free "the block stays"
 *    path must not hand it back), is reported as a double free;
 *  - a write into the block after its free (its first word links the waiting blocks, its second is the mark) is
 *    reported where the next holder would follow it, never followed;
 *  - a fork while a block waits: the child inherits it and frees it at its first request to the core, with a
 *    heap that checks out;
 *  - blocks one thread allocates and another frees, thousands of them while both threads take the lock, all
 *    come back (bytes in use return to where they were).
 * To hold the lock at a known moment, this program defines sbrk (the executable's definition comes first, so
 * osmem's growth of the break calls it): a thread armed for it stops inside its malloc's growth of the break, with
 * the core's lock held, until the main thread has done what the case needs. Default profile only. Prints
 * `PASS defer/...` or `FAIL defer/...: why`. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "osmem.h"
#include "test_util.h"

static void *(*volatile v_malloc)(size_t) = malloc;
static void (*volatile v_free)(void *) = free;
static void *(*volatile v_realloc)(void *, size_t) = realloc;

static int n_fail;

static void check(const char *name, int ok, const char *why)
{
	printf("%s defer/%s%s%s\n", ok ? "PASS" : "FAIL", name, ok ? "" : ": ", ok ? "" : why);
	n_fail += !ok;
}

/* A heap block above the medium caches' largest (64 KiB) and below the mmap threshold (128 KiB at start). */
#define BLOCK 100000

// ---- holding the core's lock: a thread stopped inside the growth of the break ----

extern void *__sbrk(intptr_t inc);
static pthread_t armed_thread;
static volatile int armed;
static sem_t entered, release;
static volatile int held_too_long; /* the main thread never released the holder: it waited for the lock */
#define HOLD_SECONDS 20

void *sbrk(intptr_t inc)
{
	if (inc > 0 && armed && pthread_equal(pthread_self(), armed_thread)) {
		armed = 0;
		sem_post(&entered);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += HOLD_SECONDS;
		while (sem_timedwait(&release, &ts) != 0)
			if (errno != EINTR) {
				held_too_long = 1;
				break;
			}
	}
	return __sbrk(inc);
}

static size_t grow_by;
static void *grown;

static void *holder(void *arg)
{
	(void)arg;
	armed_thread = pthread_self();
	armed = 1;
	grown = v_malloc(grow_by); /* larger than any free block: the break grows, under the lock */
	armed = 0;
	return NULL;
}

/* Starts a thread that stops with the core's lock held (inside the break's growth); false if it never got there. */
static bool hold_lock(pthread_t *t)
{
	sem_init(&entered, 0, 0);
	sem_init(&release, 0, 0);
	held_too_long = 0;
	v_free(v_malloc((size_t)8 << 20)); /* a mapped block's free raises the mmap threshold above grow_by */
	struct os_stats st;
	os_stats(&st);
	grow_by = st.largest_free + (256 << 10);
	if (pthread_create(t, NULL, holder, NULL) != 0)
		return false;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += HOLD_SECONDS;
	while (sem_timedwait(&entered, &ts) != 0)
		if (errno != EINTR)
			return false;
	return true;
}

static void let_go(pthread_t t)
{
	sem_post(&release);
	pthread_join(t, NULL);
	v_free(grown);
}

// ---- the cases ----

/* Three blocks side by side (x between two that stay allocated: x stays a block of its own after its free), the
 * statistics before, and a thread holding the lock; false (the case FAILs with the reason) if it never got there. */
static bool three_blocks_and_holder(const char *name, char **g, char **x, char **h, struct os_stats *s0, pthread_t *t)
{
	*g = v_malloc(BLOCK);
	*x = v_malloc(BLOCK);
	*h = v_malloc(BLOCK);
	os_stats(s0);
	if (hold_lock(t))
		return true;
	check(name, 0, "the holder thread never reached sbrk with the lock held");
	return false;
}

static void free_while_lock_taken_does_not_wait(void)
{
	char *g1, *x, *g2;
	struct os_stats s0 = {0}, s1 = {0};
	pthread_t t;
	if (!three_blocks_and_holder("free_while_lock_taken_does_not_wait", &g1, &x, &g2, &s0, &t))
		return;
	memset(x, 0x5a, BLOCK);
	v_free(x); /* the lock is held: this returns at once, or waits for the holder's 20 s */
	int waited = held_too_long;
	let_go(t);
	waited |= held_too_long;
	os_stats(&s1); /* takes the lock: the waiting free is done by now */
	char why[300];
	snprintf(why, sizeof why,
		 "waited for the lock: %d; deferred_frees %zu -> %zu (want +1); frees %zu -> %zu (want +2 at least: x and "
		 "the holder's block); heap check: %s",
		 waited, s0.deferred_frees, s1.deferred_frees, s0.frees, s1.frees, os_heap_check() ? "failed" : "ok");
	check("free_while_lock_taken_does_not_wait",
	      !waited && s1.deferred_frees == s0.deferred_frees + 1 && s1.frees >= s0.frees + 2 && os_heap_check() == 0,
	      why);
	/* and its bytes are no longer in use (a few KiB of other requests may come between: stdio's buffer, the
	 * thread's start) */
	snprintf(why, sizeof why, "bytes in use %zu before the free, %zu after the holder let go (want %d fewer, "
		 "give or take 8 KiB of other requests)", s0.bytes_in_use, s1.bytes_in_use, BLOCK);
	check("waiting_block_counted_free", s1.bytes_in_use + BLOCK <= s0.bytes_in_use + 8192, why);
	v_free(g1);
	v_free(g2);
}

/* Traced, every free is a line of the trace where it happens: a free that finds the lock taken waits for it.
 * Run in a child started with OSMEM_TRACE (argv[1] "--traced"): a third thread lets the holder go after 0.3 s;
 * the free must return after that, and nothing is deferred. */
static volatile int released;
static sem_t go;
static void *release_later(void *arg)
{
	(void)arg;
	while (sem_wait(&go) != 0)
		;
	usleep(300 * 1000);
	released = 1;
	sem_post(&release);
	return NULL;
}

static int traced_child(void)
{
	char *x = v_malloc(BLOCK), *g = v_malloc(BLOCK);
	struct os_stats s0 = {0}, s1 = {0};
	os_stats(&s0);
	pthread_t t, r;
	sem_init(&go, 0, 0);
	/* started first: traced, a thread's start allocates under the lock the holder keeps */
	if (pthread_create(&r, NULL, release_later, NULL) != 0 || !hold_lock(&t))
		return 7;
	sem_post(&go);
	v_free(x);
	int waited = released;
	pthread_join(r, NULL);
	pthread_join(t, NULL);
	v_free(grown);
	v_free(g);
	os_stats(&s1);
	printf("waited %d deferred %zu\n", waited, s1.deferred_frees - s0.deferred_frees);
	return 0;
}

static void traced_free_waits(char *self)
{
	char out[4096], env[96], trace[64];
	snprintf(trace, sizeof trace, "/tmp/malloc_defer.%d.trace", (int)getpid());
	snprintf(env, sizeof env, "OSMEM_TRACE=%s", trace);
	char *argv[] = {self, "--traced", NULL};
	int st = tu_spawn(argv, env, 0, out, sizeof out);
	char buf[1 << 16];
	tu_read_file(trace, buf, sizeof buf);
	unlink(trace);
	char why[400];
	snprintf(why, sizeof why, "want \"waited 1 deferred 0\" from a traced child and a trace with free lines; it "
		 "said \"%.100s\" (status %d), trace of %zu bytes", out, st, strlen(buf));
	check("traced_free_waits", WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "waited 1 deferred 0\n") &&
	      strstr(buf, "\nfree "), why);
}

/* Death cases, in a child: the child says the address, then does what the case names. */
static char *g1, *g2;
static char *waiting_block(pthread_t *t)
{
	g1 = v_malloc(BLOCK);
	char *x = v_malloc(BLOCK);
	g2 = v_malloc(BLOCK); /* x's neighbours stay allocated: x stays a block of its own after its free */
	if (!hold_lock(t))
		_exit(7);
	tu_say_addr(x);
	v_free(x);
	return x;
}

static void double_free_while_waiting(void)
{
	pthread_t t;
	char *x = waiting_block(&t);
	sem_post(&release); /* the holder goes on: the second free finds the lock taken or free, reported either way */
	v_free(x);
	pthread_join(t, NULL);
}

static void realloc_of_waiting_block(void)
{
	pthread_t t;
	char *x = waiting_block(&t);
	sem_post(&release);
	/* the block holds it with room to spare: realloc's lock-free "the block stays" test must see the mark */
	char *r = v_realloc(x, BLOCK - 16);
	pthread_join(t, NULL);
	(void)r;
}

static void link_written_while_waiting(void)
{
	pthread_t t;
	char *x = waiting_block(&t);
	memset(x, 0x41, 8); /* a write after free, into the link */
	let_go(t);
	v_free(v_malloc(BLOCK)); /* the next holder of the lock follows the link: reported, not followed */
}

static void mark_written_while_waiting(void)
{
	pthread_t t;
	char *x = waiting_block(&t);
	memset(x + 8, 0, 8); /* a write after free, into the mark */
	let_go(t);
	v_free(v_malloc(BLOCK));
}

/* A fork while a free waits: fork's prepare handler takes the lock without freeing what waits, so the child
 * inherits the waiting block; the child's first request to the core frees it (os_stats takes the lock), its heap
 * checks out and it can allocate; the parent's too. */
static void fork_with_free_waiting(void)
{
	char *g, *x, *h;
	struct os_stats s0 = {0}, s1 = {0};
	pthread_t t;
	if (!three_blocks_and_holder("fork_with_free_waiting", &g, &x, &h, &s0, &t))
		return;
	memset(x, 0, 16);
	v_free(x);
	sem_post(&release);
	pthread_join(t, NULL); /* the holder's malloc ends and lets the lock go; nothing took it since */
	/* a waiting block carries the mark in its second word; the drain clears it (a read of freed memory, which
	 * only a test of the allocator may make) */
	volatile uintptr_t *w = (volatile uintptr_t *)x;
	int waiting = w[1] != 0;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		os_stats(&s1);
		int drained = w[1] == 0;
		char *y = v_malloc(BLOCK);
		int ok = drained && s1.deferred_frees == s0.deferred_frees + 1 && y && os_heap_check() == 0;
		v_free(y);
		_exit(ok ? 0 : 1);
	}
	int st = -1;
	waitpid(pid, &st, 0);
	os_stats(&s1);
	v_free(grown);
	char why[300];
	snprintf(why, sizeof why,
		 "block waiting at the fork: %d (want 1); child status %d (want exit 0: the block freed by the child's "
		 "first lock, counted once, a malloc served, the heap checked); the parent counted %zu deferred frees "
		 "(want 1) and its heap check %s",
		 waiting, st, s1.deferred_frees - s0.deferred_frees, os_heap_check() ? "failed" : "passed");
	check("fork_with_free_waiting", waiting && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	      s1.deferred_frees == s0.deferred_frees + 1 && os_heap_check() == 0, why);
	v_free(g);
	v_free(h);
}

// ---- many blocks between two threads ----

#define RING 64
#define HANDOFFS 20000
static void *_Atomic ring[RING];

static void *consumer(void *arg)
{
	(void)arg;
	for (long k = 0; k < HANDOFFS; k++) {
		void *p;
		while (!(p = __atomic_exchange_n(&ring[k % RING], NULL, __ATOMIC_ACQUIRE)))
			sched_yield();
		if (((unsigned char *)p)[0] != (unsigned char)k) {
			fprintf(stderr, "block %ld came back damaged\n", k);
			abort();
		}
		v_free(p);
	}
	return NULL;
}

static void handoff_frees_not_lost(void)
{
	v_free(v_malloc((size_t)8 << 20)); /* blocks up to 256 KiB stay heap blocks */
	struct os_stats s0 = {0}, s1 = {0};
	os_stats(&s0);
	pthread_t t;
	if (pthread_create(&t, NULL, consumer, NULL) != 0) {
		check("handoff_frees_not_lost", 0, "pthread_create failed");
		return;
	}
	uint64_t r = 88172645463325252ull;
	for (long k = 0; k < HANDOFFS; k++) {
		r ^= r << 13;
		r ^= r >> 7;
		r ^= r << 17;
		size_t n = 70000 + (size_t)(r % 190000);
		unsigned char *p = v_malloc(n);
		if (!p) {
			check("handoff_frees_not_lost", 0, "malloc returned NULL");
			_exit(1);
		}
		p[0] = (unsigned char)k;
		p[n - 1] = 1;
		while (__atomic_load_n(&ring[k % RING], __ATOMIC_ACQUIRE))
			sched_yield();
		__atomic_store_n(&ring[k % RING], p, __ATOMIC_RELEASE);
	}
	pthread_join(t, NULL);
	os_stats(&s1);
	char why[300];
	snprintf(why, sizeof why,
		 "bytes in use %zu before, %zu after %d blocks freed by the other thread (%zu of the frees waited for "
		 "the lock's next holder); heap check %s",
		 s0.bytes_in_use, s1.bytes_in_use, HANDOFFS, s1.deferred_frees - s0.deferred_frees,
		 os_heap_check() ? "failed" : "ok");
	check("handoff_frees_not_lost", s1.bytes_in_use == s0.bytes_in_use && os_heap_check() == 0, why);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "--traced") == 0)
		return traced_child();
	const char *profile = getenv("OSMEM_PROFILE");
	if (profile && *profile) {
		check("profile", 0, "run without OSMEM_PROFILE: the default profile is the one that defers");
		return 1;
	}
	free_while_lock_taken_does_not_wait();
	traced_free_waits(argv[0]);
	n_fail += !tu_death_case("defer", "", "double_free_while_waiting", double_free_while_waiting, "free",
				 "double free");
	n_fail += !tu_death_case("defer", "", "realloc_of_waiting_block", realloc_of_waiting_block, "realloc",
				 "double free");
	n_fail += !tu_death_case("defer", "", "link_written_while_waiting", link_written_while_waiting, "free",
				 "corrupted list of frees waiting for the lock");
	n_fail += !tu_death_case("defer", "", "mark_written_while_waiting", mark_written_while_waiting, "free",
				 "corrupted list of frees waiting for the lock");
	fork_with_free_waiting();
	handoff_frees_not_lost();
	return n_fail != 0;
}
