/* trace: the decision recorder behind OSMEM_TRACE=path.
 *
 * The core tells it what it decided (osm_trace_event) and it writes one text line per event into a buffer that
 * goes to the file with write(2) when full, at fork and at exit. It sits below the core and above os: it knows
 * no blocks, only the heap's bounds, to print heap addresses as offsets (H+0x...) that are stable from run to
 * run. Calls are made under the heap lock. The format is docs/TRACE.md. With tracing off, each event site in the
 * core costs one predictable branch on osm_trace_fd. */
#include <stdarg.h>

#include "internal.h"

HIDDEN int osm_trace_fd = -1;

static struct {
	char buf[1 << 16];
	size_t len;
	const char *const *base, *const *end; /* the heap's bounds, owned by the core */
	unsigned next_tid;
	char path[4096], header[64];
} tr;

static __thread unsigned thread_id __attribute__((tls_model("initial-exec")));

void osm_trace_flush(void)
{
	if (osm_trace_fd >= 0 && tr.len)
		osm_os_write_fd(osm_trace_fd, tr.buf, tr.len);
	tr.len = 0;
}

static void put_char(char c)
{
	if (tr.len == sizeof tr.buf)
		osm_trace_flush();
	tr.buf[tr.len++] = c;
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

/* fmt: %s string, %z size_t, %d int, %p address (heap offsets as H+0x..), %t the calling thread's number. */
void osm_trace_event(const char *fmt, ...)
{
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

void osm_trace_start(const char *path, const char *const *base, const char *const *end, const char *header)
{
	tr.base = base;
	tr.end = end;
	size_t n = strlen(path), h = strlen(header);
	if (n >= sizeof tr.path || h >= sizeof tr.header)
		return;
	memcpy(tr.path, path, n + 1);
	memcpy(tr.header, header, h + 1);
	osm_trace_fd = osm_os_open_trace(path);
	if (osm_trace_fd >= 0)
		osm_trace_event("%s", header);
}

/* The child of a fork does not write into its parent's trace: it starts its own, PATH.PID. */
void osm_trace_fork_child(void)
{
	if (osm_trace_fd < 0)
		return;
	tr.len = 0;
	osm_trace_fd = osm_os_open_trace(tr.path);
	if (osm_trace_fd >= 0)
		osm_trace_event("%s", tr.header);
}

__attribute__((destructor)) static void trace_at_exit(void)
{
	osm_trace_flush();
}
