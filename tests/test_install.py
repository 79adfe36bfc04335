#!/usr/bin/env python3
"""osmem as a user gets it: a clean clone, `make install`, and programs built against the installed copy.

    python3 tests/test_install.py [--build DIR] [--rev REV] [--keep]

1. `git clone` of this repository's committed HEAD (or --rev) into a scratch folder, then
   `make install PREFIX=<scratch>/prefix` there: it must build everything it installs by itself
   (a clean clone has no build/), and every file the README promises must be in the prefix.
2. The os_* API through `pkg-config --cflags --libs osmem`: os_malloc and os_stats work and the
   program keeps glibc's malloc.
3. osmem as the program's malloc, linked (not preloaded), with a program whose own code calls no
   allocation function: only libc's strdup allocates. Debian's gcc links with --as-needed, which drops
   a library the program's objects do not call; the library must still be loaded, serve malloc and
   count the allocation (os_stats found with dlsym). Linked through `pkg-config --libs osmem-malloc`
   and through the README's spelled-out line; plain `-losmem-malloc` is reported as a note.
4. Static linking: a program that defines its own trace_event, index_insert and find_best_block
   (names osmem's static libraries once exported) links libosmem.a, and libosmem-malloc.a, and runs;
   every global symbol the installed archives define is os_*, osm_* or a malloc-family name.
5. The installed osmem-run finds the installed library (../lib) and runs a program on it.

Prints `PASS install/NAME` or `FAIL install/NAME: why`, then `N passed, N failed`; exits 1 on a failure.
--build is accepted (tests/run_tests.py passes it) and not used: everything is built from the clone.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CC = os.environ.get("CC") or "cc"

# The README's linked form, spelled out (what osmem-malloc.pc's Libs line says).
LINKED = ["-Wl,--push-state,--no-as-needed", "-losmem-malloc", "-Wl,--pop-state"]
# Static: nothing else pulls libosmem-malloc.a's malloc into a program whose own code calls none.
STATIC_MALLOC = ["-Wl,-u,malloc"]

# What `make install` puts in the prefix (README: libraries, headers, pkg-config files, tools).
INSTALLED = ["lib/libosmem.so", "lib/libosmem.a", "lib/libosmem-malloc.so", "lib/libosmem-malloc.a",
             "lib/pkgconfig/osmem.pc", "lib/pkgconfig/osmem-malloc.pc", "include/osmem.h",
             "include/block_meta.h", "bin/osmem-run", "bin/osmem-replay", "bin/osmem-heapmap",
             "share/osmem/osmem-heapmap"]

# The malloc family libosmem-malloc exports (README); any other global a static archive defines must
# carry osmem's prefixes, or it can collide with a name of the program's.
MALLOC_FAMILY = {"malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
                 "free_sized", "free_aligned_sized",
                 "memalign", "valloc", "pvalloc", "malloc_usable_size", "malloc_trim", "mallinfo",
                 "mallinfo2", "malloc_stats", "mallopt", "malloc_info",
                 # glibc's second names for the same functions, exported as tcmalloc and mimalloc do (override.c)
                 "__libc_malloc", "__libc_free", "cfree", "__libc_calloc", "__libc_realloc", "__libc_memalign",
                 "__libc_valloc", "__libc_pvalloc", "__libc_mallinfo", "__libc_mallopt"}
# C++ operator new and delete in all their forms (Itanium-mangled), exported as tcmalloc and mimalloc do.
CXX_OPERATORS = {"_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
                 "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
                 "_ZdlPv", "_ZdaPv", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t", "_ZdlPvm", "_ZdaPvm",
                 "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
                 "_ZdaPvSt11align_val_tRKSt9nothrow_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t"}
ALLOC_CALLS = {"malloc", "calloc", "realloc", "free", "reallocarray", "posix_memalign", "aligned_alloc",
               "memalign", "valloc", "pvalloc", "strdup"}

# The os_* API on the shared library, with glibc's malloc left alone.
OS_API_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <osmem.h>

int main(void)
{
	char *p = os_malloc(100);
	if (!p) { puts("os_malloc(100) returned NULL"); return 1; }
	memset(p, 7, 100);
	struct os_stats st;
	os_stats(&st);
	if (st.allocations != 1 || st.bytes_in_use < 100) {
		printf("os_stats after one os_malloc(100): allocations %zu, bytes in use %zu\n",
		       st.allocations, st.bytes_in_use);
		return 1;
	}
	os_free(p);
	Dl_info info;
	void *m = dlsym(RTLD_DEFAULT, "malloc");
	if (!m || !dladdr(m, &info) || !info.dli_fname || !strstr(info.dli_fname, "libc.so")) {
		printf("malloc comes from %s, not glibc: linking -losmem must not replace it\n",
		       m && info.dli_fname ? info.dli_fname : "nowhere");
		return 1;
	}
	if (os_heap_check() != 0) { puts("os_heap_check failed"); return 1; }
	puts("ok");
	return 0;
}
"""

# No allocation call and no osmem symbol in this file: only libc's strdup allocates (the test checks
# the object's undefined symbols to be sure the compiler did not turn strdup into malloc).
LIBC_ONLY_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <osmem.h>

int main(int argc, char **argv)
{
	(void)argc;
	char *s = strdup(argv[0]);
	if (!s || strcmp(s, argv[0]) != 0) { puts("strdup failed"); return 1; }
	Dl_info info;
	void *m = dlsym(RTLD_DEFAULT, "malloc");
	const char *from = m && dladdr(m, &info) && info.dli_fname ? info.dli_fname : "nowhere";
	if (!strstr(from, "libosmem-malloc.so")) {
		printf("malloc comes from %s, not libosmem-malloc.so: the library was not loaded\n", from);
		return 1;
	}
	void (*stats)(struct os_stats *) = (void (*)(struct os_stats *))dlsym(RTLD_DEFAULT, "os_stats");
	if (!stats) { puts("os_stats is not in the process"); return 1; }
	struct os_stats st;
	stats(&st);
	if (st.allocations < 1 || st.bytes_in_use < strlen(s) + 1) {
		printf("strdup's block is not osmem's: allocations %zu, bytes in use %zu\n",
		       st.allocations, st.bytes_in_use);
		return 1;
	}
	printf("ok: malloc from %s, %zu allocation(s)\n", from, st.allocations);
	return 0;
}
"""

# Names that osmem's static libraries once defined as globals: the program's own must win, and link.
OWN_NAMES_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <osmem.h>

int trace_event(int x) { return x + 1; }
int index_insert(int x) { return 2 * x; }
const char *find_best_block(void) { return "the program's own"; }

int main(int argc, char **argv)
{
	(void)argc;
	if (trace_event(1) != 2 || index_insert(3) != 6 || strcmp(find_best_block(), "the program's own")) {
		puts("the program's own trace_event/index_insert/find_best_block were not called");
		return 1;
	}
	char *p = os_malloc(100);
	if (!p) { puts("os_malloc(100) returned NULL"); return 1; }
	os_free(p);
	struct os_stats st;
	os_stats(&st);
	size_t before = st.allocations;
	if (before < 1) { puts("os_stats counts no allocation after os_malloc"); return 1; }
#ifdef WITH_MALLOC
	/* libosmem-malloc.a: libc's strdup must be served by osmem's malloc, linked into the program */
	char *s = strdup(argv[0]);
	os_stats(&st);
	if (!s || st.allocations != before + 1) {
		printf("strdup did not allocate from osmem: allocations %zu before, %zu after\n",
		       before, st.allocations);
		return 1;
	}
#else
	(void)argv;
#endif
	if (os_heap_check() != 0) { puts("os_heap_check failed"); return 1; }
	puts("ok");
	return 0;
}
"""

results = []


def report(name, ok, why=""):
    results.append(ok)
    if ok:
        print("PASS install/%s" % name, flush=True)
    else:
        print("FAIL install/%s: %s" % (name, why.rstrip()), flush=True)


def run(args, timeout=600, **kw):
    try:
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout, **kw)
        return r.returncode, r.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return "timeout after %ds" % timeout, out
    except OSError as e:
        return "could not run: %s" % e, ""


def tail(out, n=12):
    return "\n".join("    | " + l[:300] for l in out.rstrip("\n").splitlines()[-n:])


def cmdline(args):
    return shlex.join(args)


def build_and_run(name, work, source, cflags, objs_before, libs, env=None, expect_ok=True,
                  no_alloc_calls=False):
    """Compiles source, links it with libs, runs it. Returns (ok, why, output)."""
    c = os.path.join(work, name + ".c")
    o = os.path.join(work, name + ".o")
    exe = os.path.join(work, name)
    with open(c, "w") as f:
        f.write(source)
    steps = [[CC, "-std=c11", "-O2", "-Wall", "-Werror", "-c", c, "-o", o] + cflags,
             [CC, o, "-o", exe] + objs_before + libs]
    for args in steps:
        rc, out = run(args)
        if rc != 0:
            return False, "`%s` failed (%s):\n%s" % (cmdline(args), rc, tail(out)), out
        if args is steps[0] and no_alloc_calls:
            _, nm = run(["nm", "-u", o])
            called = sorted(set(nm.split()) & (ALLOC_CALLS - {"strdup"}))
            if called:
                return False, ("the test program itself calls %s (the compiler rewrote strdup?): it "
                               "would not test a program whose allocations all come from libc"
                               % ", ".join(called)), nm
    rc, out = run([exe], timeout=60, env=env)
    if rc != 0 or not out.startswith("ok"):
        return False, "%s exited %s:\n%s" % (exe, rc, tail(out)), out
    return True, "", out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", help="ignored: everything is built from a fresh clone")
    ap.add_argument("--rev", default="HEAD", help="the commit to clone (default: HEAD)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    opts = ap.parse_args()
    t0 = time.monotonic()

    tmp = tempfile.mkdtemp(prefix="osmem-install-")
    try:
        check_all(opts, tmp)
    except Exception as e:  # noqa: BLE001 - a broken check is a failed check
        report("harness", False, "the test itself raised %s: %s" % (type(e).__name__, e))
    finally:
        if opts.keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print("total %.1fs" % (time.monotonic() - t0))
        passed = sum(results)
        print("%d passed, %d failed" % (passed, len(results) - passed))


def check_all(opts, tmp):
    src = os.path.join(tmp, "src")
    prefix = os.path.join(tmp, "prefix")
    work = os.path.join(tmp, "work")
    os.makedirs(work)

    # 1. a clean clone and its `make install`
    # The commit is resolved here, in this worktree: a clone's own HEAD may be another branch.
    rc, out = run(["git", "-C", ROOT, "rev-parse", "--verify", opts.rev + "^{commit}"])
    sha = out.strip()
    if rc == 0:
        rc, out = run(["git", "clone", "--quiet", "--no-checkout", ROOT, src])
    if rc == 0:
        rc, out = run(["git", "-C", src, "checkout", "--quiet", "--detach", sha])
    if rc != 0:
        report("clone", False, "git clone of %s at %s failed (%s):\n%s" % (ROOT, opts.rev, rc, tail(out)))
        return 1
    print("info: %s at %s (%s), installed into %s" % (ROOT, opts.rev, sha[:12], prefix), flush=True)
    make = ["make", "-C", src, "-j2", "install", "PREFIX=" + prefix]
    rc, out = run(make, timeout=900)
    missing = [f for f in INSTALLED if not os.path.exists(os.path.join(prefix, f))]
    if rc != 0 or missing:
        report("make-install", False, "`%s` in a clean clone: exit %s%s\n%s" % (
            cmdline(make), rc, "; missing from the prefix: " + ", ".join(missing) if missing else "",
            tail(out)))
        if not os.path.exists(os.path.join(prefix, "lib", "libosmem-malloc.so")):
            return 1
    else:
        report("make-install", True)

    libdir = os.path.join(prefix, "lib")
    rpath = ["-Wl,-rpath," + libdir]
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
    env.pop("LD_PRELOAD", None)
    env.pop("LD_LIBRARY_PATH", None)

    def pkg_config(*args):
        rc, out = run(["pkg-config"] + list(args), env=env)
        return (shlex.split(out), None) if rc == 0 else (None, "`PKG_CONFIG_PATH=%s pkg-config %s` failed (%s): %s"
                                                         % (env["PKG_CONFIG_PATH"], " ".join(args), rc, out.strip()))

    # 2. the os_* API through pkg-config
    flags, err = pkg_config("--cflags", "--libs", "osmem")
    if err:
        report("pkg-config-osmem", False, err)
    else:
        cflags = [f for f in flags if f.startswith(("-I", "-D"))]
        libs = [f for f in flags if f not in cflags]
        ok, why, _ = build_and_run("os_api", work, OS_API_C, cflags, [], libs + rpath, env=env)
        report("pkg-config-osmem", ok, why + "\n    flags: " + " ".join(flags))

    # 3. the linked drop-in, with a program whose allocations all come from libc
    inc = ["-I" + os.path.join(prefix, "include")]
    flags, err = pkg_config("--cflags", "--libs", "osmem-malloc")
    if err:
        report("pkg-config-osmem-malloc", False, err)
    else:
        cflags = [f for f in flags if f.startswith(("-I", "-D"))]
        libs = [f for f in flags if f not in cflags]
        ok, why, _ = build_and_run("libc_only_pc", work, LIBC_ONLY_C, cflags, [], libs + rpath, env=env,
                                   no_alloc_calls=True)
        report("pkg-config-osmem-malloc", ok, why + "\n    flags: " + " ".join(flags))
    ok, why, _ = build_and_run("libc_only_linked", work, LIBC_ONLY_C, inc, [],
                               ["-L" + libdir] + LINKED + rpath, env=env, no_alloc_calls=True)
    report("linked-no-as-needed", ok, why)
    # The bare form, as a note: with Debian's --as-needed default the library is dropped.
    ok, why, out = build_and_run("libc_only_bare", work, LIBC_ONLY_C, inc, [],
                                 ["-L" + libdir, "-losmem-malloc"] + rpath, env=env, no_alloc_calls=True)
    print("note: plain `cc prog.c -losmem-malloc` for a program whose own code calls no malloc: %s" % (
        "osmem serves malloc" if ok else "glibc keeps malloc (" + (out.strip().splitlines() or ["?"])[0] + ")"))

    # 4. static archives, next to a program's own names
    ok, why, _ = build_and_run("own_names_osmem", work, OWN_NAMES_C, inc, [],
                               [os.path.join(libdir, "libosmem.a"), "-lpthread"], env=env)
    report("static-own-names-libosmem", ok, why)
    ok, why, _ = build_and_run("own_names_malloc", work, OWN_NAMES_C, inc + ["-DWITH_MALLOC"], [],
                               STATIC_MALLOC + [os.path.join(libdir, "libosmem-malloc.a"), "-lpthread"], env=env)
    report("static-own-names-libosmem-malloc", ok, why)
    bad = []
    for a in ("libosmem.a", "libosmem-malloc.a"):
        rc, out = run(["nm", "-g", "--defined-only", os.path.join(libdir, a)])
        if rc != 0:
            bad.append("nm %s failed: %s" % (a, out.strip()[:300]))
            continue
        names = {f[2] for f in (l.split() for l in out.splitlines()) if len(f) == 3}
        loose = sorted(n for n in names if not n.startswith(("os_", "osm_")) and
                       not (a == "libosmem-malloc.a" and n in MALLOC_FAMILY | CXX_OPERATORS))
        if loose:
            bad.append("%s defines %s" % (a, ", ".join(loose)))
    report("archive-symbols", not bad, "globals without the os_/osm_ prefix, which a program's own "
           "names can collide with: " + "; ".join(bad))

    # 5. the installed launcher
    run_env = dict(env)
    run_env.pop("OSMEM_STATS", None)
    rc, out = run([os.path.join(prefix, "bin", "osmem-run"), "--stats", "--", "ls", "-l", libdir], env=run_env)
    m = re.search(r"^osmem:\s+allocations\s+(\d+)", out, re.M)
    report("osmem-run", rc == 0 and m is not None and int(m.group(1)) > 0,
           "`%s/bin/osmem-run --stats -- ls -l %s` exit %s, allocations %s:\n%s" % (
               prefix, libdir, rc, m.group(1) if m else "not printed", tail(out)))
    return 0 if all(results) else 1


if __name__ == "__main__":
    main()
    sys.exit(0 if results and all(results) else 1)
