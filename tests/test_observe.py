#!/usr/bin/env python3
"""Statistics and the decision trace agree with what was done.

- os_stats after a known classic sequence gives the numbers worked out by hand from docs/CLASSIC.md;
- the system-call counts in os_stats equal what strace saw (an outside witness);
- the trace of a known classic sequence is exactly as expected, line for line (docs/TRACE.md);
- a request past the largest one osmem serves ends with its result, on every entry point;
- the default profile's malloc(0) and calloc of 0 bytes, and their frees, are in the trace.
Prints PASS/FAIL lines and 'N passed, N failed'."""
import argparse, os, random, re, select, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
results = []


def check(name, ok, why=""):
    results.append(ok)
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    return ok


def stats_line(out):
    lines = [l for l in out.splitlines() if l.startswith("stats ")]
    return [dict(kv.split("=") for kv in l.split()[1:]) for l in lines]


# a=m 1986: preallocation (brk 1), fit + split: a 1992, rest 129016            splits 1
# b=m 100:  fit rest, split: b 104 at H+0x7e8, rest 128880                      splits 2
# f b:      b is marked free only (pending)                                      frees 1
# c=m 200000: mmap of 200032; a mapped allocation does not coalesce             mmap 1
# in use = 1992 + 200000; free = 104 + 128880 in 2 blocks, the largest 128880;
# fragmentation = 1 - 128880/128984 = 0.000806 (806 ppm); requested 1986+100+200000
# d=m 50:   coalesce b with the rest: 104 + 32 + 128880 = 129016 (coalesces 1), fit, split 56 + 128928
# f c:      munmap 200032; in use 1992 + 56
STATS_SCRIPT = "a=m 1986; b=m 100; f b; c=m 200000; S; d=m 50; S; f c; S"
STATS_EXPECTED = [
    dict(requested=202086, in_use=201992, peak=201992, heap=131072, mapped=200000, mapped_count=1, free=128984,
         free_blocks=2, largest_free=128880, frag_ppm=806, allocs=3, frees=1, brk=1, mmap=1, munmap=0, splits=2,
         coalesces=0, inplace=0, moved=0),
    dict(requested=202136, in_use=202048, peak=202048, heap=131072, mapped=200000, mapped_count=1, free=128928,
         free_blocks=1, largest_free=128928, frag_ppm=0, allocs=4, frees=1, brk=1, mmap=1, munmap=0, splits=3,
         coalesces=1, inplace=0, moved=0),
    dict(requested=202136, in_use=2048, peak=202048, heap=131072, mapped=0, mapped_count=0, free=128928,
         free_blocks=1, largest_free=128928, frag_ppm=0, allocs=4, frees=2, brk=1, mmap=1, munmap=1, splits=3,
         coalesces=1, inplace=0, moved=0),
]

# The trace of a known sequence (offsets from docs/CLASSIC.md's worked example):
# a=m 1986 -> H+0x20 (block H+0x0 1992, rest H+0x7e8 129016); b=m 100 -> block H+0x7e8 104, rest H+0x870 128880;
# c=m 300 -> block H+0x870 304, rest H+0x9c0 128544; f b; f a (both only marked free);
# c=r c 5000: case 8, absorbs H+0x9c0 (304 + 32 + 128544 = 128880), splits 5000 + (128880-5000-32 = 123848) at
#   H+0x870 + 32 + 5000 = H+0x1c18; stays at H+0x890;
# m=m 200000: mmap 200032; f m: munmap;
# e=m 3000: coalesce a (H+0x0) with b (H+0x7e8): 1992 + 32 + 104 = 2128 < 3000, so the best fit is the rest
#   H+0x1c18 (123848), split 3000 + 120816 at H+0x1c18 + 32 + 3000 = H+0x27f0; e = H+0x1c38.
# x=r e 0: case 2 frees e; y=r e 10: case 3 (a free block): NULL, nothing changes.
TRACE_SCRIPT = "a=m 1986; b=m 100; c=m 300; f b; f a; c=r c 5000; m=m 200000; f m; e=m 3000; x=r e 0; y=r e 10"
TRACE_EXPECTED = """\
osmem-trace 1 profile=classic align=8
os_malloc 1986 t=1
  brk +131072
  prealloc H+0x0 131040
  fit H+0x0 131040
  split H+0x0 1992 H+0x7e8 129016
= H+0x20
os_malloc 100 t=1
  fit H+0x7e8 129016
  split H+0x7e8 104 H+0x870 128880
= H+0x808
os_malloc 300 t=1
  fit H+0x870 128880
  split H+0x870 304 H+0x9c0 128544
= H+0x890
os_free H+0x808 t=1
  free H+0x7e8 104
os_free H+0x20 t=1
  free H+0x0 1992
os_realloc H+0x890 5000 t=1
  case 8
  coalesce H+0x870 H+0x9c0 128880
  split H+0x870 5000 H+0x1c18 123848
= H+0x890
os_malloc 200000 t=1
  mmap 200032 M
= M+0x20
os_free M+0x20 t=1
  munmap M 200032
os_malloc 3000 t=1
  coalesce H+0x0 H+0x7e8 2128
  fit H+0x1c18 123848
  split H+0x1c18 3000 H+0x27f0 120816
= H+0x1c38
os_realloc H+0x1c38 0 t=1
  case 2
  free H+0x1c18 3000
= NULL
os_realloc H+0x1c38 10 t=1
  case 3
= NULL
"""


# Every entry point asked for more than the largest request (MAX_REQUEST), with a core block, a front slot and a heap
# block to reallocate. No stdio: the trace holds these calls only.
OVERFLOW_PROG = r"""
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include "osmem.h"
int main(void)
{
	volatile size_t v = SIZE_MAX - 10; /* not a constant: the compiler would warn of every call */
	size_t huge = v;
	void *core = os_malloc(100), *slot = malloc(100), *heap = malloc(100000), *q = NULL;
	void *r[] = { os_realloc(core, huge), os_realloc(slot, huge), realloc(slot, huge), realloc(heap, huge),
		      reallocarray(heap, huge, 2), malloc(huge), calloc(huge, 2), os_malloc(huge), os_calloc(huge, 2),
		      memalign(64, huge), aligned_alloc(64, huge), pvalloc(huge), valloc(huge) };
	int got = posix_memalign(&q, 64, huge) == 0;
	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
		got += r[i] != NULL;
	os_free(core);
	free(slot);
	free(heap);
	return got;
}
"""

# malloc(0), calloc of 0 bytes and what becomes of them (free, realloc that moves, realloc to 0, os_free, os_realloc
# that moves and of one already freed), in the default profile, where each is an address of a PROT_NONE reservation.
ZERO_PROG = r"""
#include <stdlib.h>
#include "osmem.h"
int main(void)
{
	void *a = malloc(0), *b = calloc(0, 8), *c = calloc(8, 0), *d = malloc(0), *e = malloc(0), *f = malloc(0);
	void *g = malloc(0);
	free(a);
	free(b);
	free(c);
	d = realloc(d, 100);
	e = realloc(e, 0);
	os_free(f);
	g = os_realloc(g, 50);
	void *h = os_realloc(a, 10); /* freed already: NULL (docs/CLASSIC.md, case 3) */
	free(d);
	os_free(g);
	return e || h;
}
"""
# Its requests and results (decision lines left out), each address named by its first appearance (A1, A2, ...).
ZERO_EXPECTED = """\
malloc 0 t=1
= A1
calloc 0 8 t=1
= A2
calloc 8 0 t=1
= A3
malloc 0 t=1
= A4
malloc 0 t=1
= A5
malloc 0 t=1
= A6
malloc 0 t=1
= A7
free A1 t=1
free A2 t=1
free A3 t=1
slot 112 t=1
= A8
free A4 t=1
free A5 t=1
os_free A6 t=1
os_malloc 50 t=1
= A9
os_free A7 t=1
os_realloc A1 10 t=1
= NULL
free A8 t=1
os_free A9 t=1
"""


def requests_named(text):
    """A trace's request and result lines, without its header and decisions, each address named by its first
    appearance."""
    names = {}

    def name(m):
        return names.setdefault(m.group(0), f"A{len(names) + 1}")
    lines = [l for l in text.splitlines()[1:] if not l.startswith(" ")]
    return "".join(re.sub(r"(?:H\+)?0x[0-9a-f]+", name, l) + "\n" for l in lines)


ALLOCATING = re.compile(r"^(malloc|calloc|realloc|memalign|slot|os_malloc|os_calloc|os_realloc) .* t=\d+$")


def unfinished_requests(text):
    """The allocating request lines of a trace that do not end with their result (an '= ...' line before the next
    request line)."""
    bad, pending = [], None
    for line in text.splitlines()[1:]:
        if line.startswith("= "):
            pending = None
        elif not line.startswith(" "):
            if pending:
                bad.append(pending)
            pending = line if ALLOCATING.match(line) else None
    return bad + ([pending] if pending else [])


MALLINFO_PROG = r"""
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* the process's private writable anonymous mappings, the break's included: all that osmem can hold */
static size_t anon_rw(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	size_t total = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[8], path[256] = "";
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &lo, &hi, perms, path) >= 3 && perms[0] == 'r' &&
		    perms[1] == 'w' && (!path[0] || strcmp(path, "[heap]") == 0))
			total += hi - lo;
	}
	if (f)
		fclose(f);
	return total;
}
int main(void)
{
	enum { NM = 3200, NS = 300000 };
	static char *m[NM], *s[NS];
	for (int i = 0; i < NM; i++) /* 16 MB of medium blocks freed: the front's segments are carved from them */
		memset(m[i] = malloc(5000), 1, 5000);
	for (int i = 0; i < NM; i++)
		free(m[i]);
	for (int i = 0; i < NS; i++)
		memset(s[i] = malloc(48), 2, 48);
	struct mallinfo2 a = mallinfo2();
	printf("carved %zu %zu\n", a.arena, anon_rw());
	char *big = malloc((size_t)40 << 20); /* a big block freed: its mapping kept for the next one */
	memset(big, 3, (size_t)40 << 20);
	free(big);
	struct mallinfo2 b = mallinfo2();
	printf("kept %zu %zu %zu\n", b.arena, b.fordblks, anon_rw());
	return 0;
}
"""


PIPED_PROG = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
	for (int i = 0; i < 200000; i++) /* megabytes of trace: far past the pipe's 64 KiB */
		free(malloc(1 + (size_t)i % 5000));
	puts("done");
	return 0;
}
"""


CACHES_PROG = r"""
#include <stdio.h>
#include <stdlib.h>
#include "osmem.h"
int main(void)
{
	struct os_stats a, b;
	free(malloc(5000)); /* the thread's medium cache made */
	os_stats(&a);
	for (int i = 0; i < 1000; i++)
		free(aligned_alloc(64, 4096));
	os_stats(&b);
	printf("aligned %zu %zu %zu\n", b.allocations - a.allocations, b.cache_hits - a.cache_hits,
	       b.cache_misses - a.cache_misses);
	static void *small[10000]; /* 640,000 bytes of small slots, then freed: the peak stays */
	for (int i = 0; i < 10000; i++)
		small[i] = malloc(64);
	os_stats(&a);
	for (int i = 0; i < 10000; i++)
		free(small[i]);
	os_stats(&b);
	printf("peak %zu %zu %zu\n", a.bytes_in_use, a.peak_in_use, b.peak_in_use);
	for (int r = 0; r < 100; r++) { /* medium blocks only: no front segment is ever mapped */
		void *p[8];
		for (int i = 0; i < 8; i++)
			p[i] = malloc(5000 + (size_t)i * 1000);
		for (int i = 0; i < 8; i++)
			free(p[i]);
	}
	return 0;
}
"""


# Two threads of small requests, traced into a FIFO that nobody reads until this program says whether one of them
# finished within 30 s (trace/blocked_writer_stalls_no_other_thread). Its own output: write(2), no stdio.
STALL_PROG = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int finished;

static void *worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 20000; i++) {
		char *p = malloc(16 + (size_t)(i % 200));
		if (!p)
			abort();
		p[0] = 1;
		free(p);
	}
	finished++;
	return NULL;
}

int main(void)
{
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	struct timespec tick = {0, 10000000};
	for (int k = 0; k < 3000 && !finished; k++)
		nanosleep(&tick, NULL);
	const char *say = finished ? "one finished\n" : "none finished in 30 s\n";
	if (write(1, say, strlen(say)) < 0)
		return 2;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	return 0;
}
"""


# A process that changes to a directory it cannot write (/proc) and then forks: the child's trace is PATH.PID, which
# must land beside PATH as the process named it at its start, not in /proc. Prints the child's pid.
CHDIR_FORK_PROG = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void)
{
    free(malloc(100));
    if (chdir("/proc") != 0)
        return 2;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 100; i++)
            free(malloc(200 + i));
        exit(0); /* not _exit: that drops the lines still buffered (docs/TRACE.md) */
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("%d\n", (int)pid);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
"""


# Threads free their pages to the pool, then the main thread idles a second and makes a request that reaches the core:
# its idle pass (front.c, osm_front_idle_tick) gives the pool's pages back after the request's result line.
IDLE_PROG = r"""
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define N 4000
static void *blks[3][N];
static void *worker(void *a)
{
    void **blk = a;
    for (int i = 0; i < N; i++) {
        blk[i] = malloc(64 + (i % 16) * 64);
        memset(blk[i], 1, 64);
    }
    for (int i = 0; i < N; i++)
        free(blk[i]);
    for (int i = 0; i < N; i++)
        blk[i] = malloc(48);
    return NULL;
}
int main(void)
{
    for (int round = 0; round < 2; round++) {
        pthread_t t[2], keep;
        for (int k = 0; k < 2; k++)
            pthread_create(&t[k], NULL, worker, blks[k]);
        for (int k = 0; k < 2; k++)
            pthread_join(t[k], NULL);
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < N; i += 2) {
                free(blks[k][i]);
                blks[k][i] = NULL;
            }
        pthread_create(&keep, NULL, worker, blks[2]);
        usleep(1200 * 1000);
        free(malloc(300000));
        pthread_join(keep, NULL);
    }
    return 0;
}
"""


def dropin_program(build, tmp, name, source, asan):
    """source built against the drop-in (libosmem-malloc.so), or None: under AddressSanitizer, which owns malloc
    (a note says so), or when it does not compile (a failure)."""
    if asan:
        print(f"note: {name}: the drop-in's checks are skipped under AddressSanitizer (it owns malloc)")
        return None
    exe, src, build = os.path.join(tmp, name), os.path.join(tmp, name + ".c"), os.path.abspath(build)
    open(src, "w").write(source)
    r = subprocess.run(["cc", "-O2", "-fno-builtin", "-std=c11", "-I" + os.path.join(ROOT, "include"), src, "-o", exe,
                        "-L" + build, "-Wl,--no-as-needed", "-losmem-malloc", "-Wl,-rpath," + build],
                       capture_output=True, text=True)
    return exe if check(f"trace/{name}_program_builds", r.returncode == 0, r.stderr[-500:]) else None


def normalise_mapped(text):
    """Mapped blocks have kernel-chosen addresses: name them M (the header) and M+0x20 (the payload)."""
    maps = {}
    for m in re.finditer(r"  mmap \d+ (0x[0-9a-f]+)", text):
        maps[int(m.group(1), 16)] = True

    def sub(m):
        v = int(m.group(0), 16)
        if v in maps:
            return "M"
        if v - 0x20 in maps:
            return "M+0x20"
        return m.group(0)
    return re.sub(r"0x[0-9a-f]{9,}", sub, text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    prog = os.path.join(a.build, "tests", "spec_prog")

    # 1. stats of a known sequence
    out = subprocess.run([prog, STATS_SCRIPT], capture_output=True, text=True, timeout=60).stdout
    got = [{k: int(v) for k, v in d.items()} for d in stats_line(out)]
    for i, (g, e) in enumerate(zip(got, STATS_EXPECTED)):
        diff = {k: (g.get(k), v) for k, v in e.items() if g.get(k) != v}
        check(f"stats/known_sequence_{i + 1}", not diff, f"(got, expected) {diff}")
    check("stats/known_sequence_count", len(got) == len(STATS_EXPECTED), f"{len(got)} stats lines")

    # 2. system-call counts against strace, over a random workload across all thresholds
    rng = random.Random(7)
    stmts, live = [], []
    for i in range(3000):
        v = "abcdefghijklmnopqrstuvwxyz"[i % 26]
        if v in live and rng.random() < 0.5:
            stmts.append(f"f {v}")
            live.remove(v)
        elif v in live:
            stmts.append(f"{v}=r {v} {rng.choice([rng.randint(1, 5000), rng.randint(100000, 300000)])}")
        else:
            size = rng.choice([rng.randint(1, 4000), rng.randint(4000, 140000), rng.randint(130000, 400000)])
            stmts.append(f"{v}=m {size}" if rng.random() < 0.5 else f"{v}=c {size} 1")
            live.append(v)
    stmts.append("S")
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "strace.log")
        # Under AddressSanitizer its runtime maps memory inside the process too: there, strace's stack traces
        # (-k) attribute each call, and only those made from libosmem count.
        asan = "libasan" in subprocess.run(["ldd", prog], capture_output=True, text=True).stdout
        r = subprocess.run(["strace", "-qq", "-e", "signal=none", "-e", "trace=brk,mmap,munmap,write", "-o", log]
                           + (["-k"] if asan else []) + [prog, "; ".join(stmts)],
                           capture_output=True, text=True, timeout=300)
        counts = {"brk": 0, "mmap": 0, "munmap": 0}
        seen_marker = False
        calls = []  # (name, first argument, stack lines)
        for line in open(log):
            if line.startswith(" > "):
                if calls:
                    calls[-1][2].append(line)
                continue
            if line.startswith("write(1, \"@"):
                seen_marker = True
                continue
            m = re.match(r"(brk|mmap|munmap)\((.*?)[,)]", line)
            if seen_marker and m and not (m.group(1) == "brk" and m.group(2) == "NULL"):
                calls.append((m.group(1), m.group(2), []))
        for name, _, stack in calls:
            if not asan or any("libosmem" in l for l in stack):
                counts[name] += 1
        st = {k: int(v) for k, v in stats_line(r.stdout)[-1].items()}
        for k in counts:
            check(f"stats/{k}_calls_match_strace", st[k] == counts[k] and counts[k] > 0,
                  f"os_stats {st[k]}, strace {counts[k]}")

        # 3. the trace of a known sequence, line for line
        path = os.path.join(tmp, "t.trace")
        subprocess.run([prog, TRACE_SCRIPT], capture_output=True, env=dict(os.environ, OSMEM_TRACE=path),
                       timeout=60)
        got = normalise_mapped(open(path).read())
        ok = got == TRACE_EXPECTED
        if not ok:
            import difflib
            sys.stdout.writelines(difflib.unified_diff(TRACE_EXPECTED.splitlines(True), got.splitlines(True),
                                                       "expected", "trace"))
        check("trace/known_classic_sequence", ok, "the trace differs (diff above)")

        # 4. the same trace into a pipe (a FIFO that a reader drains), and into /dev/null: written as they are. Until
        # session 50 the truncate a regular file gets failed there, and the trace went to a new file PATH.PID
        # (/dev/null.PID, fifo.PID) or, for a user who may not create one, nowhere.
        import threading
        fifo = os.path.join(tmp, "trace.fifo")
        os.mkfifo(fifo)
        got = []
        reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
        reader.start()
        subprocess.run([prog, TRACE_SCRIPT], capture_output=True, env=dict(os.environ, OSMEM_TRACE=fifo),
                       timeout=60)
        reader.join(30)
        if reader.is_alive():  # the program never opened the FIFO: unblock the reader
            open(fifo, "w").close()
            reader.join(5)
        text = normalise_mapped(got[0]) if got else ""
        strays = [f for f in os.listdir(tmp) if f.startswith("trace.fifo.")]
        check("trace/into_a_fifo", text == TRACE_EXPECTED and not strays,
              f"the reader got {len(text)} bytes ({'as expected' if text == TRACE_EXPECTED else 'not the trace'}), "
              f"files beside the FIFO: {strays}")
        before = set(f for f in os.listdir("/dev") if f.startswith("null."))
        subprocess.run([prog, TRACE_SCRIPT], capture_output=True, env=dict(os.environ, OSMEM_TRACE="/dev/null"),
                       timeout=60)
        made = set(f for f in os.listdir("/dev") if f.startswith("null.")) - before
        for f in made:
            try:
                os.unlink(os.path.join("/dev", f))
            except OSError:
                pass
        check("trace/into_dev_null", not made, f"the trace made {sorted(made)} in /dev")

        # 5. a path too long for the trace (4,072 bytes at most: room for ".PID") is said once on stderr, and the
        # program runs untraced; until session 50 4,073-4,095 bytes turned tracing on and wrote nothing, and a
        # longer one was dropped in silence
        for n in (4080, 5000):
            long_path = os.path.join(tmp, "x" * (n - len(tmp) - 1))
            r = subprocess.run([prog, TRACE_SCRIPT], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, OSMEM_TRACE=long_path))
            said = r.stderr.count(f"OSMEM_TRACE names a path of {n} bytes")
            check(f"trace/path_too_long_said_{n}", r.returncode == 0 and said == 1,
                  f"exit {r.returncode}, said {said} times (want 1): {r.stderr[-300:]!r}")

        # 5b. a path that cannot be written (no such directory, a directory itself) is said once on stderr and the
        # program runs untraced; until session 59 tracing stayed on (every small request serialised, 12x the
        # time) and wrote nothing, and a directory's trace went to a new file DIR.PID beside it
        for what, bad in (("no_directory", os.path.join(tmp, "no-such-dir", "x.trace")),
                          ("a_directory", os.path.join(tmp, "tracedir"))):
            if what == "a_directory":
                os.makedirs(bad, exist_ok=True)
            before = set(os.listdir(tmp))
            r = subprocess.run([prog, TRACE_SCRIPT], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, OSMEM_TRACE=bad))
            said = r.stderr.count(f"osmem: OSMEM_TRACE names {bad}, ")
            made = sorted(set(os.listdir(tmp)) - before)
            check(f"trace/unwritable_path_said_{what}", r.returncode == 0 and said == 1 and not made,
                  f"exit {r.returncode}, said {said} times (want 1), files made beside it {made}: "
                  f"{r.stderr[-300:]!r}")

        # 5b (and the statistics). A relative path in a working directory that was removed (its stat still says a
        # writable directory, but no file can be made in it) is said once, with why; until session 62 the trace was
        # lost in silence (the statistics were said as a path "which could not be opened")
        for var, noun in (("OSMEM_TRACE", "no trace"), ("OSMEM_STATS", "no statistics")):
            gone = os.path.join(tmp, "gone")
            r = subprocess.run(["sh", "-c", 'mkdir "$1" && cd "$1" && rmdir "$1" && exec "$2" "$3"', "sh", gone,
                                os.path.abspath(prog), TRACE_SCRIPT], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, **{var: "x.out"}))
            said = r.stderr.count(f"osmem: {var} names x.out, in a directory that was removed: {noun}")
            check(f"{var[6:].lower()}/removed_working_directory_said", r.returncode == 0 and said == 1,
                  f"exit {r.returncode}, said {said} times (want 1): {r.stderr[-300:]!r}")

        # 5b'. a relative OSMEM_TRACE, and a process that changes directory before it forks: the child writes
        # PATH.PID beside PATH as named at the start; until session 60 it opened it in its new directory (/proc
        # here, where it cannot write), and the trace was lost without a word
        exe = dropin_program(a.build, tmp, "chdir_fork", CHDIR_FORK_PROG, asan)
        if exe:
            r = subprocess.run([exe], capture_output=True, text=True, timeout=60, cwd=tmp,
                               env=dict(os.environ, OSMEM_TRACE="rel.trace"))
            child = r.stdout.strip()
            want = os.path.join(tmp, f"rel.trace.{child}")
            ok = r.returncode == 0 and child.isdigit() and os.path.exists(want) and \
                len(open(want).read().splitlines()) > 100
            check("trace/relative_path_kept_after_chdir", ok,
                  f"exit {r.returncode}, child {child!r}: {want} {'exists' if os.path.exists(want) else 'missing'}, "
                  f"files beside it {sorted(f for f in os.listdir(tmp) if f.startswith('rel.trace'))}; "
                  f"{r.stderr[-300:]!r}")

        # and a relative path in a directory whose own path is long: the absolute one would pass the 4,072 bytes a
        # trace path may have, and the relative one is kept (a review of the change found it refused)
        deep = tmp
        while len(deep) < 4070 - 201:
            deep = os.path.join(deep, "d" * 200)
        deep = os.path.join(deep, "e" * (4070 - len(deep) - 1))
        os.makedirs(deep, exist_ok=True)
        r = subprocess.run([os.path.abspath(prog), TRACE_SCRIPT], capture_output=True, text=True, timeout=60,
                           cwd=deep, env=dict(os.environ, OSMEM_TRACE="t.trace"))
        made = os.path.exists(os.path.join(deep, "t.trace"))
        check("trace/relative_path_in_a_deep_directory", r.returncode == 0 and made and "osmem:" not in r.stderr,
              f"exit {r.returncode}, trace in the {len(deep)}-byte directory {'made' if made else 'missing'}: "
              f"{r.stderr[-300:]!r}")

        # 5b''. OSMEM_STATS naming a path that cannot be opened is said once, as OSMEM_TRACE's is; until session 60
        # there were no statistics and no word
        for what, bad in (("no_directory", os.path.join(tmp, "no-such-dir", "x.stats")),
                          ("a_directory", os.path.join(tmp, "statsdir"))):
            if what == "a_directory":
                os.makedirs(bad, exist_ok=True)
            r = subprocess.run([prog, TRACE_SCRIPT], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, OSMEM_STATS=bad))
            said = r.stderr.count(f"osmem: OSMEM_STATS names {bad}, ")
            check(f"stats/unwritable_path_said_{what}", r.returncode == 0 and said == 1,
                  f"exit {r.returncode}, said {said} times (want 1): {r.stderr[-300:]!r}")

        # 5b'''. a write that fails (a full disk: /dev/full) is said once, for the statistics and for the trace (which
        # then ends there); until session 61 both were lost in silence
        if os.path.exists("/dev/full"):
            for what, var, want in (("stats", "OSMEM_STATS", "osmem: OSMEM_STATS: the statistics could not be written"),
                                    ("trace", "OSMEM_TRACE", "osmem: OSMEM_TRACE: writing the trace failed")):
                r = subprocess.run([prog, TRACE_SCRIPT], capture_output=True, text=True, timeout=60,
                                   env=dict(os.environ, **{var: "/dev/full"}))
                said = r.stderr.count(want)
                check(f"{what}/write_failure_said", r.returncode == 0 and said == 1,
                      f"{var}=/dev/full: exit {r.returncode}, said {said} times (want 1): {r.stderr[-300:]!r}")

        # 5b'''. the decisions of a pass that runs after a request ended (the idle pass) come under a line of their
        # own, `idle t=T`: a request ends with its result (docs/TRACE.md). Until session 60 they followed the result
        # of the request before, and osmem-replay warned of a malloc_trim the program never called
        exe = dropin_program(a.build, tmp, "idle_pass", IDLE_PROG, asan)
        if exe:
            trace = os.path.join(tmp, "idle.trace")
            r = subprocess.run([exe], capture_output=True, text=True, timeout=120,
                               env=dict(os.environ, OSMEM_TRACE=trace))
            lines = open(trace).read().splitlines() if os.path.exists(trace) else []
            orphans = [f"{i + 1}: {l}" for i, l in enumerate(lines)
                       if i and l.startswith("  ") and lines[i - 1].startswith("= ")]
            idles = sum(1 for l in lines if l.startswith("idle t="))
            rp = subprocess.run([os.path.join(a.build, "osmem-replay"), trace, "--no-strace"], capture_output=True,
                                text=True, timeout=300)
            check("trace/idle_pass_has_its_line",
                  r.returncode == 0 and lines and not orphans and idles >= 1 and "malloc_trim" not in rp.stderr,
                  f"exit {r.returncode}, {len(lines)} lines, {idles} idle lines (want at least 1: the pass ran), "
                  f"decisions right after a result: {orphans[:3]}; osmem-replay: {rp.stderr[-300:]!r}")

        # 5c. a trace writer that blocks (a pipe nobody reads) stalls its own thread only: two threads make small
        # requests into a FIFO that is not read; one blocks in the write, the other must finish. Until session 59
        # the writer held the front lock through the write, and the other thread waited for it as long
        exe = dropin_program(a.build, tmp, "stall", STALL_PROG, asan)
        if exe:
            fifo = os.path.join(tmp, "stall.fifo")
            os.mkfifo(fifo)
            rd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so that the library's open does not wait
            proc = subprocess.Popen([exe], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=dict(os.environ, OSMEM_TRACE=fifo))
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            line = proc.stdout.readline().decode() if ready else "(nothing in 120 s)"
            # now read the FIFO, so that the blocked thread finishes too
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                r_, _, _ = select.select([rd], [], [], 0.2)
                if r_:
                    try:
                        os.read(rd, 1 << 16)
                    except BlockingIOError:
                        pass
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            os.close(rd)
            check("trace/blocked_writer_stalls_no_other_thread",
                  line.startswith("one finished") and proc.returncode == 0,
                  f"with the trace's reader stopped, {line.strip()!r} (want: one of the two threads finished within "
                  f"30 s); exit {proc.returncode}: {proc.stderr.read().decode()[-300:]!r}")

        # 6. a request larger than the largest one osmem serves ends with its result too: os_realloc's line was
        # written before the size was checked, and its `= NULL` never came (docs/TRACE.md: every allocating request
        # ends with its result). The classic API exactly, then every entry point of the drop-in in each profile.
        path = os.path.join(tmp, "overflow.trace")
        subprocess.run([prog, "a=m 100; b=r a 18446744073709551605"], capture_output=True, timeout=60,
                       env=dict(os.environ, OSMEM_TRACE=path))
        text = open(path).read() if os.path.exists(path) else ""
        want = "os_realloc H+0x20 18446744073709551605 t=1\n= NULL\n"
        check("trace/request_past_largest_ends_with_result", text.endswith(want),
              f"the trace ends {text[-200:]!r}, not with {want!r}")
        exe = dropin_program(a.build, tmp, "overflow", OVERFLOW_PROG, asan)
        settings = (("default", "OSMEM_PROFILE", "default"), ("front_off", "OSMEM_FRONT", "0"),
                    ("classic", "OSMEM_PROFILE", "classic"), ("strict", "OSMEM_CHECK", "strict"))
        for name, var, value in settings if exe else ():
            path = os.path.join(tmp, f"overflow-{name}.trace")
            run = subprocess.run([exe], capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, OSMEM_TRACE=path, **{var: value}))
            text = open(path).read() if os.path.exists(path) else ""
            bad = unfinished_requests(text)
            check(f"trace/request_past_largest_ends_with_result_{name}",
                  run.returncode == 0 and text.count("\n") > 2 and not bad,
                  f"exit {run.returncode} (the calls that returned a block), {len(bad)} requests without a result: "
                  f"{bad[:4]}; {run.stderr[-200:]!r}")


        # 7. the default profile's malloc(0) and calloc of 0 bytes are requests like any other: they returned before
        # their line, so neither they nor their frees were in the trace (nor in a heap map or a replay of it)
        exe = dropin_program(a.build, tmp, "zero", ZERO_PROG, asan)
        if exe:
            path = os.path.join(tmp, "zero.trace")
            run = subprocess.run([exe], capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, OSMEM_TRACE=path, OSMEM_PROFILE="default"))
            got = requests_named(open(path).read()) if os.path.exists(path) else ""
            ok = run.returncode == 0 and got == ZERO_EXPECTED
            if not ok:
                import difflib
                sys.stdout.writelines(difflib.unified_diff(ZERO_EXPECTED.splitlines(True), got.splitlines(True),
                                                           "expected", "trace"))
            check("trace/zero_byte_requests_recorded", ok,
                  f"exit {run.returncode}; the requests and results differ (diff above) {run.stderr[-200:]!r}")

        # 8. the medium caches in the statistics (the observability review of session 56): an aligned request the
        # caches could not serve was counted as neither a hit nor a miss (medium.c, medium_memalign), and the
        # printout at exit left the caches' lines out whenever no front segment was mapped (stats.c), as in a
        # program of medium blocks alone
        exe = dropin_program(a.build, tmp, "caches", CACHES_PROG, asan)
        if exe:
            run = subprocess.run([exe], capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, OSMEM_PROFILE="default", OSMEM_STATS="1"))
            m = re.search(r"aligned (\d+) (\d+) (\d+)", run.stdout)
            check("stats/aligned_medium_requests_counted_as_hits_or_misses",
                  run.returncode == 0 and m and int(m.group(2)) + int(m.group(3)) == int(m.group(1)) == 1000,
                  f"exit {run.returncode}: 1,000 aligned_alloc(64, 4096) gave (allocations, cache hits, cache "
                  f"misses) {m.groups() if m else run.stdout!r}: want hits + misses = allocations = 1000")
            pk = re.search(r"peak (\d+) (\d+) (\d+)", run.stdout)
            check("stats/peak_never_falls",
                  run.returncode == 0 and pk and int(pk.group(2)) >= int(pk.group(1)) >= 640000 and
                  int(pk.group(3)) >= int(pk.group(2)),
                  f"exit {run.returncode}: with 10,000 slots of 64 bytes live (bytes in use, peak) then, after they "
                  f"were freed, the peak: {pk.groups() if pk else run.stdout!r} (want the peak at least the bytes "
                  f"in use, and never lower at a later call)")
            hits = re.search(r"osmem:\s+cache hits\s+(\d+)", run.stderr)
            check("stats/printout_shows_medium_caches_without_segments",
                  run.returncode == 0 and hits and int(hits.group(1)) > 0,
                  f"exit {run.returncode}: a program of medium blocks alone printed no 'cache hits' line "
                  f"(OSMEM_STATS=1): {run.stderr[-600:]!r}")

        # 10. mallinfo2's arena is the memory osmem holds, each byte once: the front's segments carved from the
        # heap were counted in both (46.7 MB for 34 MB of mappings), and a kept mapping was in fordblks but in
        # neither arena nor hblkhd, so the free bytes exceeded the arena (the observability review of session 56)
        exe = dropin_program(a.build, tmp, "mallinfo", MALLINFO_PROG, asan)
        if exe:
            run = subprocess.run([exe], capture_output=True, text=True, timeout=120,
                                 env=dict(os.environ, OSMEM_PROFILE="default"))
            c = re.search(r"carved (\d+) (\d+)", run.stdout)
            k = re.search(r"kept (\d+) (\d+) (\d+)", run.stdout)
            check("stats/mallinfo2_system_bytes_each_once",
                  run.returncode == 0 and c and k and int(c.group(1)) <= int(c.group(2)) and
                  int(k.group(2)) <= int(k.group(1)) <= int(k.group(3)),
                  f"exit {run.returncode}: (arena, the process's writable anonymous mappings) with carved segments "
                  f"{c.groups() if c else None}, and (arena, fordblks, mappings) after a 40 MiB block was freed "
                  f"{k.groups() if k else None}: want arena within the mappings and fordblks within arena; "
                  f"{run.stdout[-200:]!r} {run.stderr[-200:]!r}")

        # 9. a trace into a pipe whose reader stopped reading: the write's SIGPIPE killed the program (exit 141),
        # which ran to its end untraced (the observability review of session 56)
        exe = dropin_program(a.build, tmp, "piped", PIPED_PROG, asan)
        if exe:
            fifo = os.path.join(tmp, "trace.fifo")
            if os.path.lexists(fifo):
                os.unlink(fifo)
            os.mkfifo(fifo)
            reader = subprocess.Popen(["sh", "-c", f"head -c 100 < '{fifo}' > /dev/null"])
            try:
                run = subprocess.run([exe], capture_output=True, text=True, timeout=120,
                                     env=dict(os.environ, OSMEM_TRACE=fifo, OSMEM_PROFILE="default"))
                check("trace/trace_into_closed_pipe_spares_program", run.returncode == 0 and "done" in run.stdout,
                      f"exit {run.returncode} (want 0; -13 is SIGPIPE from the trace's write to the pipe whose "
                      f"reader left after 100 bytes), output {run.stdout[-100:]!r} {run.stderr[-200:]!r}")
            except subprocess.TimeoutExpired:
                check("trace/trace_into_closed_pipe_spares_program", False,
                      "the traced program did not end in 120 s (blocked opening or writing the FIFO?)")
            finally:
                reader.kill()
                reader.wait()

    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
