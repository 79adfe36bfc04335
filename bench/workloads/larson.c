/* larson: a server's churn (after Larson and Krishnan's benchmark). Each of T threads owns a table of slots;
 * an operation picks a random slot and replaces its object with a new one of 16..1000 bytes. One replaced
 * object in eight is not freed by its owner but handed to the next thread (posted in a batch every 64 operations), which frees
 * it on its next mailbox drain (also every 64 operations; at most 4096 waiting): the request that one thread builds and another retires.
 * The total operation count is fixed (split among the threads), so the wall time compares allocators and
 * thread counts alike.
 *
 * Usage: larson SCALE THREADS [HANDOFF]   (HANDOFF: one object in HANDOFF handed off, default 8; 0: none, for
 *                                          the scaling of the allocator alone: make bench always uses 8;
 *                                          r: Larson's own form, below)
 *
 * Larson's own form ("r", for rounds): no hand-offs while threads run. A thread that has done ROUND operations
 * starts a successor, which takes over its table, and exits; the successor's frees of its predecessor's objects
 * are the remote frees, and each thread's birth and death is the allocator's too (its caches set up and given
 * back). As in Larson and Krishnan's program, this form runs for a time (RUN_SECS x SCALE), not for a count:
 * main raises a flag when the time is up, each line ends the round it is in, and the throughput is every
 * operation done over the time until the last line ends. With a fixed count per line (sessions 21-23) the
 * lines finished 10-33% apart under every allocator, the no-op included, and a CPU idled meanwhile: T=2 over
 * T=1 measured the scheduler's unevenness more than the allocator (docs/TRADEOFFS.md). The hand-off form above
 * is the harder one: there one thread reads the lines another wrote while both run, which no allocator can
 * make cheaper (see bench/null/).
 * Checksum: the sum of the tags of every object freed (each verified first) must equal the sum of the tags
 * allocated. In the hand-off form the set of objects is fixed by the seeds, so the sum is printed; Larson's own
 * form does as many operations as its time allows, so it prints the difference, zero. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "common.h"

#define SLOTS     1000        /* per thread */
#define MIN_SIZE  16
#define MAX_SIZE  1000
#define HANDOFF   8           /* one replaced object in HANDOFF goes to the next thread (default) */
static unsigned handoff = HANDOFF;
static int rounds;            /* Larson's own form: threads replaced every ROUND operations */
static _Atomic int stop;      /* Larson's own form: set by main when the run's time is up */
#define RUN_SECS  0.5         /* Larson's own form: the run's length at scale 1 */
#define ROUND     (100 * SLOTS)
#define DRAIN     64          /* a thread empties its mailbox every DRAIN operations */
#define PENDING   4096        /* a sender waits (draining its own) while the next thread has this many unfreed */
#define BASE_OPS  12000000.0  /* all threads together, at scale 1 */

struct obj {
	struct obj *next;     /* bytes 0..7: the mailbox link */
	uint64_t tag;         /* bytes 8..15 (tag_set) */
};

struct thread {
	_Alignas(64) _Atomic(struct obj *) mailbox;   /* a Treiber stack, emptied whole: no ABA */
	_Atomic long pending;                         /* objects pushed and not yet drained */
	pthread_t id;
	pthread_t prev;       /* rounds: the predecessor, joined by its successor */
	int index, generation;
	long ops;             /* operations left to do (hand-off form), or done (Larson's own form) */
	struct obj *out, *out_tail; /* objects handed to the next thread, not yet posted */
	long out_n;
	uint64_t sum;         /* tags of the objects this thread freed */
	uint64_t made;        /* tags of the objects this thread allocated */
	unsigned long freed;
	uint16_t size[SLOTS];
	struct obj *slot[SLOTS];
};

static struct thread *threads;
static int nthreads;
static pthread_barrier_t start, done;
static _Atomic int finished;

static void release(struct thread *t, struct obj *o, size_t n)
{
	t->sum += tag_check(o, n);
	t->freed++;
	free(o);
}

/* a handed-off object carries its size in its tag's low 16 bits */
static void drain(struct thread *t)
{
	struct obj *o = atomic_exchange_explicit(&t->mailbox, NULL, memory_order_acquire);
	long n = 0;
	for (; o; n++) {
		struct obj *next = o->next;
		release(t, o, (size_t)(o->tag & 0xffff));
		o = next;
	}
	atomic_fetch_sub_explicit(&t->pending, n, memory_order_relaxed);
}

/* Hand-offs are gathered and posted to the next thread's mailbox in one CAS every DRAIN operations, as a server
 * passes requests on in batches: one atomic per object would make the mailbox, not the allocator, the shared line
 * every thread waits on (no allocator scaled from 1 to 2 threads with it).
 * The mailbox is bounded: on a busy machine a preempted thread would otherwise collect the others' objects
 * for its whole time slice, and the peak RSS would measure the scheduler. Waiting, the sender drains its own
 * mailbox, so threads waiting on each other in a ring still make progress. */
static void hand_off(struct thread *from, struct obj *o)
{
	o->next = from->out;
	if (!from->out)
		from->out_tail = o;
	from->out = o;
	from->out_n++;
}

static void post(struct thread *from, struct thread *to)
{
	if (!from->out)
		return;
	while (atomic_load_explicit(&to->pending, memory_order_relaxed) >= PENDING && to != from) {
		drain(from);
		sched_yield();
	}
	atomic_fetch_add_explicit(&to->pending, from->out_n, memory_order_relaxed);
	from->out_tail->next = atomic_load_explicit(&to->mailbox, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&to->mailbox, &from->out_tail->next, from->out,
	                                              memory_order_release, memory_order_relaxed))
		;
	from->out = from->out_tail = NULL;
	from->out_n = 0;
}

/* A new object of n bytes in slot i; the tag keeps the object's size in its low 16 bits, for whoever frees it */
static void put(struct thread *t, int i, size_t n, uint64_t *seq)
{
	t->slot[i] = xmalloc(n);
	t->size[i] = (uint16_t)n;
	uint64_t tag = (mix64(((uint64_t)t->index << 40) | (*seq)++) << 16) | n;
	tag_set(t->slot[i], n, tag);
	t->made += tag;
}

static void *run(void *arg)
{
	struct thread *t = arg;
	struct thread *next = &threads[(t->index + 1) % nthreads];
	uint64_t rng = 0x1234567ull + (uint64_t)t->index * 0x9e3779b97f4a7c15ull, seq = 0;
	for (int i = 0; i < SLOTS; i++)
		put(t, i, rnd_range(&rng, MIN_SIZE, MAX_SIZE), &seq);
	pthread_barrier_wait(&start);
	for (long k = 0; k < t->ops; k++) {
		uint64_t r = rnd(&rng);
		int i = (int)(r % SLOTS);
		if (handoff && (r >> 32) % handoff == 0) {
			tag_check(t->slot[i], t->size[i]);
			hand_off(t, t->slot[i]);
		} else {
			release(t, t->slot[i], t->size[i]);
		}
		put(t, i, MIN_SIZE + (size_t)((r >> 40) % (MAX_SIZE - MIN_SIZE + 1)), &seq);
		if (k % DRAIN == DRAIN - 1) {
			post(t, next);
			drain(t);
		}
	}
	post(t, next);
	/* A thread done with its operations keeps emptying its mailbox until every thread is done (a sender may
	 * be waiting for room in it); then every hand-off has happened and the last drain finds them all. */
	atomic_fetch_add_explicit(&finished, 1, memory_order_acq_rel);
	while (atomic_load_explicit(&finished, memory_order_acquire) < nthreads) {
		drain(t);
		sched_yield();
	}
	drain(t);
	pthread_barrier_wait(&done);
	for (int i = 0; i < SLOTS; i++)
		release(t, t->slot[i], t->size[i]);
	return NULL;
}

/* Larson's own form: the table outlives its threads. The first thread of each table allocates it; each one does
 * up to ROUND operations, then starts its successor and exits; the last frees the table. */
static void *run_rounds(void *arg)
{
	struct thread *t = arg;
	uint64_t rng = 0x1234567ull + (uint64_t)t->index * 0x9e3779b97f4a7c15ull + (uint64_t)t->generation * 0x51ull;
	uint64_t seq = (uint64_t)t->generation << 32;
	if (t->generation == 0) {
		for (int i = 0; i < SLOTS; i++)
			put(t, i, rnd_range(&rng, MIN_SIZE, MAX_SIZE), &seq);
		pthread_barrier_wait(&start);
	} else {
		pthread_join(t->prev, NULL);
	}
	for (long k = 0; k < ROUND; k++) {
		uint64_t r = rnd(&rng);
		int i = (int)(r % SLOTS);
		release(t, t->slot[i], t->size[i]);
		put(t, i, MIN_SIZE + (size_t)((r >> 40) % (MAX_SIZE - MIN_SIZE + 1)), &seq);
	}
	t->ops += ROUND;
	if (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		t->prev = pthread_self();
		t->generation++;
		pthread_t succ;
		if (pthread_create(&succ, NULL, run_rounds, t) != 0) {
			fprintf(stderr, "FAIL pthread_create\n");
			exit(1);
		}
		return NULL;
	}
	t->id = pthread_self();   /* the one main joins; written before the barrier main waits at */
	pthread_barrier_wait(&done);
	for (int i = 0; i < SLOTS; i++)
		release(t, t->slot[i], t->size[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	double scale = scale_arg(argc, argv);
	nthreads = argc > 2 ? atoi(argv[2]) : 1;
	if (argc > 3 && argv[3][0] == 'r')
		rounds = 1, handoff = 0;
	else if (argc > 3)
		handoff = (unsigned)atoi(argv[3]);
	if (nthreads < 1 || nthreads > 64)
		return fprintf(stderr, "usage: larson SCALE THREADS(1..64) [HANDOFF|r]\n"), 2;
	long total = (long)(BASE_OPS * scale);
	threads = aligned_alloc(64, sizeof *threads * (size_t)nthreads);
	memset(threads, 0, sizeof *threads * (size_t)nthreads);
	pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
	pthread_barrier_init(&done, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		threads[i].index = i;
		threads[i].ops = rounds ? 0 : total / nthreads;
		pthread_t id;
		pthread_create(&id, NULL, rounds ? run_rounds : run, &threads[i]);
		if (!rounds)
			threads[i].id = id;
	}
	pthread_barrier_wait(&start);
	double t0 = now_s();
	if (rounds) {
		double d = RUN_SECS * scale;
		struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
		while (nanosleep(&ts, &ts) != 0)
			;
		atomic_store_explicit(&stop, 1, memory_order_relaxed);
	}
	pthread_barrier_wait(&done);
	double secs = now_s() - t0;
	uint64_t sum = 0;
	unsigned long freed = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(threads[i].id, NULL);
		sum += threads[i].sum;
		freed += threads[i].freed;
	}
	long ops = total / nthreads * nthreads;
	if (rounds) {
		ops = 0;
		for (int i = 0; i < nthreads; i++)
			ops += threads[i].ops;
	}
	if (freed != (unsigned long)(ops + (long)nthreads * SLOTS)) {
		fprintf(stderr, "FAIL %lu objects freed, %ld allocated\n", freed, ops + (long)nthreads * SLOTS);
		return 1;
	}
	uint64_t made = 0;
	for (int i = 0; i < nthreads; i++)
		made += threads[i].made;
	if (sum != made) {
		fprintf(stderr, "FAIL the tags freed do not add up to those allocated\n");
		return 1;
	}
	/* Larson's own form runs for a time, so its set of objects is not fixed: its checksum is what the tags
	 * freed lack of those allocated, zero */
	print_checksum(rounds ? sum - made : sum);
	printf("metric ops_per_s %.0f\n", (double)ops / secs);
	free(threads);
	return 0;
}
