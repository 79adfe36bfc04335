/* os: the only file that talks to the kernel (brk, mmap, munmap, the auxiliary vector, standard error).
 *
 * Every primitive states its contract once so that callers never re-check: a failed call returns NULL and
 * leaves errno = ENOMEM. Nothing here allocates, uses stdio or moves the break on its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

HIDDEN struct os_calls osm_os_calls;

// ------------------------------------------------------------------
// The program break
// ------------------------------------------------------------------

void *osm_os_brk_current(void)
{
	return sbrk(0);
}

void *osm_os_brk_grow(size_t len)
{
	if (len > (size_t)INTPTR_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	void *old = sbrk((intptr_t)len);
	osm_os_calls.brk++;
	if (old == (void *)-1) {
		errno = ENOMEM;
		return NULL;
	}
	return old;
}

// ------------------------------------------------------------------
// Mappings
// ------------------------------------------------------------------

void *osm_os_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	osm_os_calls.mmap++;
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

void osm_os_unmap(void *addr, size_t len)
{
	int saved = errno; /* free() must keep errno */
	munmap(addr, len);
	osm_os_calls.munmap++;
	errno = saved;
}

bool osm_os_is_mapped(const void *addr, size_t len)
{
	int saved = errno;
	uintptr_t page = osm_os_page_size(), from = (uintptr_t)addr & ~(page - 1);
	unsigned char vec[2];
	bool ok = (uintptr_t)addr + len - from <= 2 * page &&
		  mincore((void *)from, (uintptr_t)addr + len - from, vec) == 0;
	errno = saved;
	return ok;
}

size_t osm_os_page_size(void)
{
	static size_t page;
	if (!page)
		page = (size_t)sysconf(_SC_PAGESIZE);
	return page;
}

uint32_t osm_os_random32(void)
{
	/* The kernel puts 16 random bytes on every process's stack at exec (AT_RANDOM): no syscall needed. */
	const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
	uint32_t v = 0x6f736d65u; /* "osme" when the vector has none */
	if (r)
		memcpy(&v, r + 8, sizeof v); /* bytes 0..7 are glibc's stack guard; use the others */
	return v;
}

// ------------------------------------------------------------------
// Reporting: write(2) only, since stdio may allocate
// ------------------------------------------------------------------

void osm_os_write_err(const char *msg)
{
	osm_os_write_fd(STDERR_FILENO, msg, strlen(msg));
}

void osm_os_write_fd(int fd, const char *msg, size_t len)
{
	int saved = errno;
	while (len) {
		ssize_t w = write(fd, msg, len);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			break;
		}
		msg += w;
		len -= (size_t)w;
	}
	errno = saved;
}

int osm_os_open_trace(const char *path)
{
	int saved = errno;
	char name[4096];
	size_t n = strlen(path);
	const char *owner = osm_os_getenv("OSMEM_TRACE_PID");
	long pid = (long)getpid();
	if (n + 24 > sizeof name)
		return -1;
	memcpy(name, path, n + 1);
	if (owner && strtol(owner, NULL, 10) != pid) { /* strtol does not allocate */
		name[n++] = '.';
		osm_os_utoa(name + n, (uintmax_t)pid, 10);
	}
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	errno = saved;
	return fd;
}

int osm_os_stats_fd(const char *spec)
{
	int saved = errno, fd;
	if (strcmp(spec, "1") == 0)
		fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
	else
		fd = open(spec, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	errno = saved;
	return fd;
}

size_t osm_os_utoa(char *out, uintmax_t v, unsigned base)
{
	char d[24];
	size_t n = 0, i = 0;
	do {
		d[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n)
		out[i++] = d[--n];
	out[i] = 0;
	return i;
}

static char *append(char *dst, const char *src)
{
	while (*src)
		*dst++ = *src++;
	return dst;
}

void osm_os_fatal_pointer(const char *api, const char *what, const void *ptr)
{
	char buf[160], hex[2 + 24] = "0x", *p = buf;
	osm_os_utoa(hex + 2, (uintptr_t)ptr, 16);
	p = append(p, "osmem: ");
	p = append(p, api);
	p = append(p, "(): ");
	p = append(p, what);
	p = append(p, " ");
	p = append(p, hex);
	p = append(p, "\n");
	*p = 0;
	osm_os_write_err(buf);
	abort();
}

// ------------------------------------------------------------------
// More of the break and of mappings (the drop-in's default profile)
// ------------------------------------------------------------------

bool osm_os_brk_shrink(size_t len)
{
	int saved = errno;
	bool ok = len <= (size_t)INTPTR_MAX && sbrk(-(intptr_t)len) != (void *)-1;
	osm_os_calls.brk++;
	errno = saved;
	return ok;
}

void *osm_os_remap(void *addr, size_t old_len, size_t new_len)
{
	osm_os_calls.mremap++;
	void *p = mremap(addr, old_len, new_len, MREMAP_MAYMOVE);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

void osm_os_discard(void *addr, size_t len)
{
	int saved = errno;
	osm_os_calls.madvise++;
	madvise(addr, len, MADV_DONTNEED);
	errno = saved;
}

// ------------------------------------------------------------------
// The environment
// ------------------------------------------------------------------

extern char **environ;
extern void *__libc_stack_end;

/* environ is set by libc's initialisation; a preloaded allocator can be called before that (by ld.so), so
 * fall back to the initial stack: argc, argv[], NULL, envp[], NULL. */
static char **initial_environ(void)
{
	if (environ)
		return environ;
	if (!__libc_stack_end)
		return NULL;
	long *sp = __libc_stack_end;
	long argc = sp[0];
	return (char **)(sp + 1 + argc + 1);
}

const char *osm_os_getenv(const char *name)
{
	char **env = initial_environ();
	size_t n = strlen(name);
	for (; env && *env; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}
