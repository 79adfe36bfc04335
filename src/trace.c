/* trace: the decision recorder behind OSMEM_TRACE=path.
 *
 * The core tells it what it decided (osm_trace_event) and it writes one text line per event into a buffer.
 * Events arrive under the heap lock, and the heap lock never waits for a disk: they go into memory only. A full
 * buffer is sealed and queued; the queue is written with write(2) by whichever thread next lets the heap lock go
 * (osm_trace_after_unlock), at exit, and before a fatal report. Two static 64 KiB buffers alternate; when the
 * writer falls behind (a slow disk), more buffers are mapped (256 KiB each) rather than making the allocator
 * wait. It sits below the core and above os: it knows no blocks, only the heap's bounds, to print heap
 * addresses as offsets (H+0x...) that are stable from run to run. The format is docs/TRACE.md. With tracing
 * off, each event site in the core costs one predictable branch on osm_trace_on.
 *
 * Locks, in the only order they nest: the heap lock, then q_lock (the queue's pointers; held for a few
 * instructions, never across a system call but the mapping of a new buffer); io_lock (the file; held across
 * write(2)) then q_lock. The heap lock is never taken under io_lock except at exit (sealing the last buffer,
 * before io_lock) and io_lock under the heap lock only on the fatal path, which ends the process. */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>

#include "internal.h"

HIDDEN int osm_trace_on;

struct chunk {
	struct chunk *next;   /* in the queue or the spare list */
	struct chunk *all;    /* every mapped chunk: a forked child takes them all back */
	size_t len, cap;
	char *data;
	bool mapped;
};

#define STATIC_CAP ((size_t)1 << 16)
#define MAPPED_SIZE ((size_t)1 << 18)

static char static_data[2][STATIC_CAP] LARGE_BSS;
static struct chunk static_chunk[2];

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER, io_lock = PTHREAD_MUTEX_INITIALIZER;
/* This thread holds (or waits for) q_lock / io_lock: exit() or a fatal report from a signal handler that
 * interrupted it there must not wait for them (it hung in exit until session 50;
 * protect_exit_signal/trace_write_interrupted). Set before the lock is taken, cleared after it is let go. */
static __thread bool tl_q __attribute__((tls_model("initial-exec")));
static __thread bool tl_io __attribute__((tls_model("initial-exec")));

static void q_take(void)
{
	tl_q = true;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pthread_mutex_lock(&q_lock);
}

static void q_give(void)
{
	pthread_mutex_unlock(&q_lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	tl_q = false;
}

static void io_take(void)
{
	tl_io = true;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pthread_mutex_lock(&io_lock);
}

static bool io_try(void)
{
	if (tl_io) /* this thread holds it: a signal handler's request inside its write */
		return false;
	tl_io = true;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (pthread_mutex_trylock(&io_lock) == 0)
		return true;
	tl_io = false;
	return false;
}

static void io_give(void)
{
	pthread_mutex_unlock(&io_lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	tl_io = false;
}

static struct {
	struct chunk *cur;                  /* being filled: under the heap lock */
	struct chunk *head, *tail;          /* sealed, in order: under q_lock */
	struct chunk *spare;                /* empty: under q_lock */
	size_t spares;
	struct chunk *mapped;               /* every mapped chunk (list through `all`): under q_lock */
	struct os_file file;                /* under io_lock */
	bool opened;                        /* under io_lock: the open was tried */
	const char *const *base, *const *end; /* the heap's bounds, owned by the core */
	unsigned next_tid;                  /* under the heap lock */
	bool after_result;                  /* under the heap lock: the last line written was a result (`= ...`) */
	long owner;                         /* the pid that owns `path` (OSMEM_TRACE_PID), or 0: not named */
	long started;                       /* the pid that started this trace (a forked child's is its parent's) */
	char path[4096], header[64];
} tr LARGE_BSS; /* path[] makes it 4 KiB: with the big tables (internal.h) */

/* Work for the writer: a sealed chunk, or the file still to open. Read without a lock after each unlock. */
static int io_pending;

static __thread unsigned thread_id __attribute__((tls_model("initial-exec")));

// ------------------------------------------------------------------
// Buffers
// ------------------------------------------------------------------

static struct chunk *map_chunk(void)
{
	struct chunk *c = osm_os_map_buffer(MAPPED_SIZE);
	if (!c)
		return NULL;
	c->data = (char *)(c + 1);
	c->cap = MAPPED_SIZE - sizeof *c;
	c->mapped = true;
	c->len = 0;
	q_take();
	c->all = tr.mapped;
	tr.mapped = c;
	q_give();
	return c;
}

static void drain(void);

/* Queues the current chunk and takes an empty one. Under the heap lock: memory only, unless no buffer can be
 * had at all (no memory to map one): then this thread writes the queue itself, as the old recorder did. */
static void seal(void)
{
	struct chunk *c = tr.cur, *n;
	q_take();
	if (c->len) {
		c->next = NULL;
		if (tr.tail)
			tr.tail->next = c;
		else
			tr.head = c;
		tr.tail = c;
		__atomic_store_n(&io_pending, 1, __ATOMIC_RELAXED);
	} else {
		c->next = tr.spare; /* nothing in it: back to the spares */
		tr.spare = c;
		tr.spares++;
	}
	n = tr.spare;
	if (n) {
		tr.spare = n->next;
		tr.spares--;
	}
	q_give();
	if (!n)
		n = map_chunk();
	if (!n) {
		io_take();
		drain();
		io_give();
		q_take();
		n = tr.spare; /* the drain gave every written chunk back, and at least c was queued */
		tr.spare = n->next;
		tr.spares--;
		q_give();
	}
	n->len = 0;
	tr.cur = n;
}

/* Writes the queue in order. io_lock held: one writer at a time keeps the file in order. */
static void drain(void)
{
	if (!tr.opened) {
		tr.opened = true;
		long pid = osm_os_pid();
		/* A forked child never writes path: its parent does. A process that exec'd with OSMEM_TRACE inherited
		 * (a shell's command) writes path only if no other process holds it, unless osmem-run named the
		 * owner (OSMEM_TRACE_PID) */
		enum os_trace_name how = tr.owner ? (pid == tr.owner ? TRACE_PATH : TRACE_PATH_PID)
					: pid == tr.started ? TRACE_PATH_IF_FREE : TRACE_PATH_PID;
		osm_os_open_trace(&tr.file, tr.path, how); /* on failure fd is -1: chunks are dropped */
	}
	for (;;) {
		q_take();
		struct chunk *c = tr.head;
		if (!c) {
			__atomic_store_n(&io_pending, 0, __ATOMIC_RELAXED);
			q_give();
			return;
		}
		tr.head = c->next;
		if (!tr.head)
			tr.tail = NULL;
		q_give();
		/* a write that failed (a full disk) ends the trace where it is, said once: a trace with a hole in it would
		 * mislead the heap map and replay more than one cut short (until session 61 the loss was silent) */
		if (tr.file.fd >= 0 && !osm_os_file_write(&tr.file, c->data, c->len) && tr.file.err) {
			osm_os_write_err("osmem: OSMEM_TRACE: writing the trace failed (");
			osm_os_write_err(osm_os_error_text(tr.file.err));
			osm_os_write_err("): it ends here\n");
			osm_os_file_close(&tr.file);
		}
		q_take();
		bool unmap = c->mapped && tr.spares >= 2; /* the backlog is gone: keep two spares, no more */
		if (unmap) {
			struct chunk **p = &tr.mapped;
			while (*p != c)
				p = &(*p)->all;
			*p = c->all;
		} else {
			c->next = tr.spare;
			tr.spare = c;
			tr.spares++;
		}
		q_give();
		if (unmap)
			osm_os_unmap_buffer(c, MAPPED_SIZE);
	}
}

void osm_trace_after_unlock(void)
{
	if (!__atomic_load_n(&io_pending, __ATOMIC_RELAXED))
		return;
	/* one writer at a time; the others go on (a chunk queued while the writer finishes waits for the next
	 * unlock, at the latest for exit) */
	if (!io_try())
		return;
	drain();
	io_give();
}

void osm_trace_seal_at_exit(void)
{
	if (osm_trace_on && !tl_q)
		seal();
}

void osm_trace_drain_at_exit(void)
{
	if (!osm_trace_on || tl_io || tl_q) /* a handler's exit() that interrupted this thread's write: end */
		return;
	io_take();
	drain();
	io_give();
}

_Noreturn void osm_fatal_pointer(const char *api, const char *what, const void *ptr)
{
	/* the events just before the report are the ones worth having: write them first (under the heap lock,
	 * waiting for a writer that is busy: the process ends here) */
	if (osm_trace_on && !tl_io && !tl_q) {
		seal();
		io_take();
		drain();
	}
	osm_os_fatal_pointer(api, what, ptr);
}

// ------------------------------------------------------------------
// Events
// ------------------------------------------------------------------

static void put_char(char c)
{
	if (tr.cur->len == tr.cur->cap)
		seal();
	tr.cur->data[tr.cur->len++] = c;
}

static void put_str(const char *s)
{
	while (*s)
		put_char(*s++);
}

static void put_uint(uintmax_t v, unsigned base)
{
	char d[24];
	osm_os_utoa(d, v, base);
	put_str(d);
}

static void put_addr(const void *p)
{
	const char *c = p;
	if (!p) {
		put_str("NULL");
		return;
	}
	if (*tr.base && c >= *tr.base && c < *tr.end) {
		put_str("H+0x");
		put_uint((uintmax_t)(c - *tr.base), 16);
	} else {
		put_str("0x");
		put_uint((uintptr_t)c, 16);
	}
}

static unsigned trace_thread(void)
{
	if (!thread_id)
		thread_id = ++tr.next_tid; /* under the heap lock */
	return thread_id;
}

/* The decisions that follow, until the next request line, are a pass of a thread that makes no request
 * (background.c's): they get an `idle t=T` line of their own, where they would otherwise come under whatever
 * request another thread wrote last, a free with no result line (and the tools would take them for its). Heap lock
 * held. */
void osm_trace_idle_begin(void)
{
	tr.after_result = true;
}

/* fmt: %s string, %z size_t, %d int, %p address (heap offsets as H+0x..), %t the calling thread's number. */
void osm_trace_event(const char *fmt, ...)
{
	/* A decision after a result belongs to no request: a pass that runs after a request has ended, outside its
	 * lock section (the front's and the medium caches' idle passes: front.c, osm_front_idle_tick). It gets a line
	 * of its own first, `idle t=T`, so that a request ends with its result (docs/TRACE.md) and the tools do not
	 * take its lines for malloc_trim's: until session 60 they followed the result of whatever request came
	 * before, and osmem-replay warned of a malloc_trim the program never called (observe/trace/idle_pass_has_its_line). */
	if (fmt[0] != ' ') {
		tr.after_result = fmt[0] == '=';
	} else if (tr.after_result) {
		tr.after_result = false;
		put_str("idle t=");
		put_uint(trace_thread(), 10);
		put_char('\n');
	}
	va_list ap;
	va_start(ap, fmt);
	for (const char *f = fmt; *f; f++) {
		if (*f != '%') {
			put_char(*f);
			continue;
		}
		switch (*++f) {
		case 's': put_str(va_arg(ap, const char *)); break;
		case 'z': put_uint(va_arg(ap, size_t), 10); break;
		case 'd': {
			int v = va_arg(ap, int);
			if (v < 0) {
				put_char('-');
				v = -v;
			}
			put_uint((unsigned)v, 10);
			break;
		}
		case 'p': put_addr(va_arg(ap, const void *)); break;
		case 't': put_uint(trace_thread(), 10); break;
		default: put_char('%'); put_char(*f); break;
		}
	}
	put_char('\n');
	va_end(ap);
}

// ------------------------------------------------------------------
// Start, fork
// ------------------------------------------------------------------

/* OSMEM_TRACE_PID: a process id, or 0 (none named). Anything else is said once and ignored: trailing text
 * (1x named pid 1), a value past a long (it wrapped, and could name the running process), or none at all (taken
 * as unset) were all taken in silence (the review of session 63; env/trace_pid_not_understood_said). */
static long parse_pid(const char *s)
{
	size_t v;
	if (osm_os_parse_count(s, &v) && v > 0 && v <= (size_t)INT_MAX)
		return (long)v;
	osm_os_write_err("osmem: OSMEM_TRACE_PID=");
	osm_os_write_err(s);
	osm_os_write_err(" is not understood (a process id); the first process to write the trace owns it\n");
	return 0;
}

/* A relative OSMEM_TRACE as the library's constructor found it, and made absolute there: the first allocation
 * may come after the program changed directory (a daemon's chdir("/") in main), and the trace then went where it
 * had gone, not where the process started, as OSMEM_STATS does (the review of session 63;
 * env/relative_trace_path_from_start_directory). In .lbss: 8 KiB that only a traced process touches, out of the
 * library's .bss, whose small globals every process shares a few pages of (malloc_front_footprint, bss_small). */
static char start_rel[sizeof tr.path] LARGE_BSS, start_abs[sizeof tr.path] LARGE_BSS;

void osm_trace_note_start(const char *path)
{
	size_t n = path ? strlen(path) : 0;
	if (n && path[0] != '/' && n < sizeof start_rel && osm_os_absolute(start_abs, sizeof tr.path - 24, path))
		memcpy(start_rel, path, n + 1);
}

/* Under the heap lock, at the first allocation: memory only. The file is opened by the first writer, after
 * the lock is released. */
void osm_trace_start(const char *path, const char *const *base, const char *const *end, const char *header)
{
	tr.base = base;
	tr.end = end;
	/* a relative path is taken from the directory the process starts in (above, or now if this comes first): a
	 * forked child opens PATH.PID at its first write, and one that had changed directory first (to one it cannot
	 * write) lost its trace in silence (a soak of session 60: observe/trace/relative_path_kept_after_chdir) */
	static char abs_path[sizeof tr.path] LARGE_BSS;
	if (path[0] != '/' && start_rel[0] && strcmp(path, start_rel) == 0)
		path = start_abs;
	else if (path[0] != '/' && osm_os_absolute(abs_path, sizeof tr.path - 24, path)) /* else kept relative */
		path = abs_path;
	size_t n = strlen(path), h = strlen(header);
	/* room for ".PID" (os.c, osm_os_open_trace) or no trace, said once: until session 50 a path of 4,073 to
	 * 4,095 bytes turned tracing on (every front request serialised) and was never written, a longer one was
	 * dropped in silence (observe/trace/path_too_long_said) */
	if (n + 24 > sizeof tr.path) {
		char num[24];
		osm_os_write_err("osmem: OSMEM_TRACE names a path of ");
		osm_os_utoa(num, (uintmax_t)n, 10);
		osm_os_write_err(num);
		osm_os_write_err(" bytes, longer than the 4072 it may have: no trace\n");
		return;
	}
	if (h >= sizeof tr.header)
		return;
	/* a path that cannot be written, said once, and no trace: until session 59 tracing went on (every front
	 * request serialised and formatted, 12x the time) and the open failed at the first write in silence
	 * (observe/trace/unwritable_path_said) */
	const char *why = osm_os_path_unwritable(path);
	if (why) {
		osm_os_write_err("osmem: OSMEM_TRACE names ");
		osm_os_write_err(path);
		osm_os_write_err(", ");
		osm_os_write_err(why);
		osm_os_write_err(": no trace\n");
		return;
	}
	memcpy(tr.path, path, n + 1);
	memcpy(tr.header, header, h + 1);
	/* osmem-run names the owner (its pid, which exec keeps); else the first process to hold path owns it, and
	 * its children, forked or exec'd with OSMEM_TRACE inherited, write path.PID instead of truncating it */
	const char *owner = osm_os_getenv("OSMEM_TRACE_PID");
	tr.owner = owner && *owner ? parse_pid(owner) : 0;
	tr.started = osm_os_pid();
	for (int i = 0; i < 2; i++) {
		static_chunk[i].data = static_data[i];
		static_chunk[i].cap = STATIC_CAP;
	}
	tr.cur = &static_chunk[0];
	tr.spare = &static_chunk[1];
	tr.spares = 1;
	tr.file.fd = -1;
	osm_trace_on = 1;
	__atomic_store_n(&io_pending, 1, __ATOMIC_RELAXED); /* the open */
	osm_trace_event("%s", tr.header);
}

/* The child of a fork does not write into its parent's trace: it starts its own, PATH.PID. Its one thread
 * holds nothing: every lock starts free, every buffer empty (what was buffered is the parent's to write). */
void osm_trace_fork_child(void)
{
	if (!osm_trace_on)
		return;
	pthread_mutex_init(&q_lock, NULL);
	pthread_mutex_init(&io_lock, NULL);
	tl_q = tl_io = false;
	osm_os_file_close(&tr.file);
	tr.opened = false;
	tr.head = tr.tail = NULL;
	tr.spare = NULL;
	tr.spares = 0;
	for (struct chunk *c = tr.mapped; c; c = c->all) {
		c->next = tr.spare;
		tr.spare = c;
		tr.spares++;
	}
	static_chunk[1].next = tr.spare;
	tr.spare = &static_chunk[1];
	tr.spares++;
	tr.cur = &static_chunk[0];
	tr.cur->len = 0;
	__atomic_store_n(&io_pending, 1, __ATOMIC_RELAXED);
	osm_trace_event("%s", tr.header);
}
