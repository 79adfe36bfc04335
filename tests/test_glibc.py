#!/usr/bin/env python3
"""glibc's own malloc tests, run against libosmem-malloc.so.

    python3 tests/test_glibc.py --build build

1. Finds Debian's glibc-source tarball (/usr/src/glibc/glibc-*.tar.xz), installing the package
   with apt-get when it is missing, and unpacks the parts the tests need into a scratch folder
   ($OSMEM_GLIBC_DIR, else $TMPDIR/osmem-glibc), reused while the tarball is the same.
2. Builds glibc's malloc tests that check the public contract OUTSIDE glibc's build system: each
   test with glibc's own test driver (support/test-driver.c, support/support_test_main.c) and the
   support/*.c files the tests use, compiled by the system gcc against the installed glibc headers
   with tests/glibc/config.h standing in for glibc's config.h. The binaries are cached in the
   scratch folder, keyed on the tarball and on this recipe, so a second run only runs them.
   No glibc source is copied into the repository: it stays in the scratch folder.
3. Runs each test with LD_PRELOAD=<abs BUILD>/libosmem-malloc.so (counted), and each that
   fails there once more on plain glibc (the baseline: printed, not counted), honouring the
   driver's exit codes (0 pass, 77 unsupported, which counts as a failure unless documented in UNSUPPORTED_OK),
   each under the driver's own timeout scaled by TIMEOUTFACTOR (default 3 here) and a backstop.
   A baseline that passed is kept beside the binaries (keyed on the installed libc as well) and
   not run again: --rebaseline runs it anyway (for every test, passed with osmem or not),
   --no-baseline skips it, --glibc-only counts it.
   Before that, `nm -u` on each test's own objects lists the allocator functions it calls: each
   must be one osmem serves (INTERPOSED) or one of glibc's own that osmem does not replace
   (GLIBC_OWN: printed as a note naming the tests), and tests/glibc/interpose_probe.c checks that
   the preloaded library serves every INTERPOSED function.

Prints `PASS glibc/<name>` or `FAIL glibc/<name>: <reason>` (plus the output's last lines), then
`N passed, N failed`; exits 1 on any failure. Every change made to a test is in PATCHES below,
with its reason; docs/COMPATIBILITY.md lists them.
"""

import argparse
import concurrent.futures
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_DIR = os.path.join(HERE, "glibc")  # our own small files: config.h, interpose_probe.c
TARBALL_GLOB = "/usr/src/glibc/glibc-*.tar.xz"

# The tests, all in glibc's malloc/ directory. `driver`: built on support/test-driver.c (takes
# --test-dir); `est`: seconds on glibc on a 2-core machine, to start the long ones first.
TESTS = [
    dict(name="mallocbug", driver=False, est=0.1),
    dict(name="tst-malloc", est=0.1),
    dict(name="tst-calloc", est=0.2),
    dict(name="tst-realloc", est=0.1),
    dict(name="tst-valloc", est=0.1),
    dict(name="tst-pvalloc", est=0.1),
    dict(name="tst-memalign", est=0.1),
    dict(name="tst-posix_memalign", est=0.1),
    dict(name="tst-reallocarray", est=0.1),
    dict(name="tst-malloc-too-large", est=15),
    dict(name="tst-mallocalign1", est=0.1),
    dict(name="tst-free-errno", est=1),
    dict(name="tst-trim1", est=2),
    dict(name="tst-malloc-thread-exit", est=3.1),
    dict(name="tst-malloc-thread-fail", est=30),
    dict(name="tst-mallocfork", est=0.1),
    dict(name="tst-mallocfork3", est=12),
    dict(name="tst-malloc-fork-deadlock", est=3.3),
    dict(name="tst-mallocfork2", est=10),
    dict(name="tst-mallinfo2", est=0.1),
    dict(name="tst-malloc-stats-cancellation", est=1),
    dict(name="tst-obstack", est=0.1),
    # glibc runs it with MALLOC_CHECK_=3 and LD_PRELOAD=libc_malloc_debug.so (malloc/Makefile): the
    # baseline does the same; the osmem run keeps MALLOC_CHECK_=3, which osmem ignores.
    dict(name="tst-malloc-check", est=0.1, env={"MALLOC_CHECK_": "3"},
         glibc_preload=["libc_malloc_debug.so.0"]),
    dict(name="tst-pvalloc-fortify", est=0.1),
    dict(name="tst-mallopt", est=0.1),
    dict(name="tst-malloc-tcache-leak", est=20),
    dict(name="tst-malloc_info", est=10),
    dict(name="tst-tcfree1", est=0.1),
    dict(name="tst-tcfree2", est=0.1),
    dict(name="tst-tcfree3", est=0.1),
    dict(name="tst-compathooks-off", est=0.1),
    # The program defines malloc and the rest itself (tst-interpose-aux.c, linked in): see docs/COMPATIBILITY.md.
    dict(name="tst-interpose-nothread", est=0.1,
         extra=["tst-interpose-aux-nothread.c"]),
    dict(name="tst-interpose-thread", est=0.5,
         extra=["tst-interpose-aux-thread.c"]),
    dict(name="tst-malloc-backtrace", est=0.1),
    dict(name="tst-safe-linking", est=0.5),
    # glibc's "tests-internal": they call libc's GLIBC_PRIVATE helpers (__libc_alloc_buffer_*,
    # __libc_scratch_buffer_*, __libc_dynarray_*), which the installed libc.so.6 exports and which
    # call malloc, realloc and free through the PLT, so the preloaded malloc serves them.
    dict(name="tst-alloc_buffer", est=0.1),
    dict(name="tst-scratch_buffer", est=0.1),
    dict(name="tst-dynarray", est=0.5),
    dict(name="tst-dynarray-fail", est=5),
    dict(name="tst-dynarray-at-fail", est=0.2),
]
# Tests of newer glibc releases: built and run when the installed glibc-source has them
# (Debian 12 ships glibc 2.36, which has none of them), otherwise named in a note.
OPTIONAL_TESTS = {
    "tst-aligned-alloc": "added after glibc 2.36",
    "tst-aligned-alloc-random": "added after glibc 2.36",
    "tst-aligned-alloc-random-thread": "added after glibc 2.36",
    "tst-aligned-alloc-random-thread-cross": "added after glibc 2.36",
}

# Output that means failure although the program exits 0: these two tests predate the test
# driver and report some failures only in what they print.
FAIL_PATTERNS = {
    # mallocbug prints "FAIL: malloc expands info table" and still returns 0.
    "mallocbug": re.compile(r"^FAIL", re.M),
    # tst-trim1 prints "not enough memory" and returns 0 when malloc (< 16 KiB) returns NULL.
    "tst-trim1": re.compile(r"not enough memory"),
}

# Exit 77 (unsupported) counts as a failure unless its reason is documented here.
UNSUPPORTED_OK = {}

# Build-time changes to glibc's tests, each for a check of a glibc-internal detail that is not
# part of the public contract. (test, why, regex, replacement, expected number of matches).
# None is needed now: osmem exports mallopt (M_ARENA_MAX returns 1: one heap plus per-thread caches,
# whatever the limit), which tst-malloc-thread-exit, tst-malloc-thread-fail and
# tst-malloc-fork-deadlock check, and its posix_memalign leaves errno = ENOMEM on failure as glibc's
# does, which tst-malloc-thread-fail reads. Every test runs as upstream wrote it.
PATCHES = []

# support/*.c files the tests link with (glibc 2.36's libsupport routines they reference).
SUPPORT_FILES = """
    check oom_error support_paths support_record_failure support_test_compare_failure
    support_test_main support_test_verify_impl temp_file write_message xasprintf xcalloc
    xchdir xfopen xmalloc xmmap xopen xsignal xpthread_barrier_destroy xpthread_barrier_init
    xpthread_barrier_wait xpthread_check_return xpthread_create xpthread_join xpthread_kill
    xfork support_shared_allocate xpthread_barrierattr_destroy xpthread_barrierattr_init
    xpthread_barrierattr_setpshared xmunmap xwaitpid
    ignore_stderr xstrdup xsysconf support_test_compare_blob support_quote_blob
    support_capture_subprocess support_subprocess xmemstream xpoll xfclose support_copy_file
    xdup2 xpipe xclose xposix_spawn xposix_spawn_file_actions_addclose
    xposix_spawn_file_actions_adddup2 xwrite support-xstat support_copy_file_range
""".split()

# Headers glibc keeps outside support/ that the tests include; copied from the unpacked source
# into the scratch folder's shim include directory (never into the repository).
# alloc_buffer.h and scratch_buffer.h declare the GLIBC_PRIVATE helpers that tst-alloc_buffer and
# tst-scratch_buffer test (their only internal detail, libc_hidden_proto, is empty outside libc: config.h).
GLIBC_HEADERS = ["include/libc-diag.h", "include/array_length.h",
                 "sysdeps/generic/malloc-size.h", "sysdeps/generic/malloc-alignment.h",
                 "include/alloc_buffer.h", "include/scratch_buffer.h"]
TAR_MEMBERS = ["malloc", "support", "test-skeleton.c", "version.h"] + GLIBC_HEADERS

# The flags of glibc's own test build that matter here (-std=gnu11, _GNU_SOURCE, -O2, and
# -DTEST_NO_MALLOPT, which malloc/Makefile sets for every malloc test so the driver does not
# call mallopt (M_PERTURB, 42): kept because it is upstream's recipe, so the glibc baseline runs
# exactly as glibc's own `make check` does; osmem does not need it, its mallopt accepts and ignores
# M_PERTURB), plus -fno-builtin-* for the allocation functions so that gcc
# cannot fold or drop a call (say an unused calloc (0, 0)): every call reaches the allocator.
CFLAGS = ["-std=gnu11", "-O2", "-g", "-D_GNU_SOURCE", "-DTEST_NO_MALLOPT", "-Wall",
          "-Wno-unused-result", "-fno-builtin-malloc", "-fno-builtin-calloc",
          "-fno-builtin-realloc", "-fno-builtin-free", "-fno-builtin-aligned_alloc",
          "-fno-builtin-posix_memalign", "-fno-builtin-strdup"]
LIBS = ["-lpthread", "-ldl"]

# The allocation functions the tests call: all must be served by libosmem-malloc.so.
INTERPOSED = ["malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
              "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
              "malloc_trim", "mallinfo", "mallinfo2", "malloc_stats", "mallopt", "malloc_info",
              # glibc's second names, osmem's own functions too (override.c); cfree reaches old binaries only
              "__libc_malloc", "__libc_free", "cfree", "__libc_calloc", "__libc_realloc", "__libc_memalign",
              "__libc_valloc", "__libc_pvalloc", "__libc_mallopt", "__libc_mallinfo"]
# Allocator functions and variables of glibc's that osmem does not replace, and what a test that
# calls them gets: glibc's own. Each is printed as a note naming the tests that import it.
GLIBC_OWN = {
    "mtrace": "a no-op in glibc 2.34 and later unless libc_malloc_debug.so is preloaded",
    "muntrace": "as mtrace",
    "__malloc_hook": "a variable kept for old binaries; no allocator calls it since glibc 2.34 "
                     "(osmem never does): tst-compathooks-off checks that none is called",
    "__free_hook": "as __malloc_hook",
    "__realloc_hook": "as __malloc_hook",
    "__memalign_hook": "as __malloc_hook",
    "__malloc_initialize_hook": "as __malloc_hook",
}
# Every name of glibc's allocator interface (<malloc.h>, <stdlib.h>, <mcheck.h>, the hooks): a test
# binary that imports one that is neither INTERPOSED nor GLIBC_OWN stops the run, so a new test
# cannot quietly exercise glibc's allocator instead of osmem's.
MALLOC_FAMILY = set(INTERPOSED) | set(GLIBC_OWN) | {
    "mcheck", "mcheck_pedantic", "mcheck_check_all", "mprobe", "malloc_get_state",
    "malloc_set_state", "__after_morecore_hook", "__morecore", "__default_morecore"}

# Bump when build() changes what it produces (2: each test compiled to objects, then linked).
RECIPE = "2"

DEFAULT_TIMEOUT = 20        # support/test-driver.h
TAIL_LINES = 15


def log(msg):
    print(msg, flush=True)


def fail_setup(msg):
    log("FAIL glibc/setup: " + msg)
    log("0 passed, 1 failed")
    sys.exit(1)


# --- 1. the source ----------------------------------------------------------------------

def find_tarball():
    found = sorted(glob.glob(TARBALL_GLOB))
    return found[-1] if found else None


def ensure_tarball():
    tarball = find_tarball()
    if tarball:
        return tarball
    if os.geteuid() != 0:
        fail_setup("glibc-source is not installed (%s missing) and this is not root: "
                   "run `apt-get install -y glibc-source`" % TARBALL_GLOB)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "glibc-source"]
    log("setup: installing Debian's glibc-source")
    r = subprocess.run(install, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        log("setup: apt-get install failed; running apt-get update first")
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        r = subprocess.run(install, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    tarball = find_tarball()
    if r.returncode != 0 or not tarball:
        fail_setup("could not install glibc-source:\n" + "\n".join(r.stdout.splitlines()[-10:]))
    return tarball


def unpack(tarball, scratch):
    """The needed parts of the tarball in scratch/<glibc-X.Y>, reused while the tarball is
    the same (its name, size and mtime are in a stamp file)."""
    stem = os.path.basename(tarball)[:-len(".tar.xz")]
    st = os.stat(tarball)
    stamp_text = "%s %d %d %s\n" % (os.path.basename(tarball), st.st_size, int(st.st_mtime),
                                    " ".join(TAR_MEMBERS))
    dest = os.path.join(scratch, stem)
    stamp = os.path.join(dest, ".osmem-unpacked")
    if os.path.exists(stamp) and open(stamp).read() == stamp_text:
        return dest
    log("setup: unpacking %s into %s" % (tarball, dest))
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    members = ["%s/%s" % (stem, m) for m in TAR_MEMBERS]
    r = subprocess.run(["tar", "-xJf", tarball, "-C", tmp] + members,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        fail_setup("tar failed: " + r.stdout[-2000:])
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(os.path.join(tmp, stem), dest)
    shutil.rmtree(tmp, ignore_errors=True)
    with open(stamp, "w") as f:
        f.write(stamp_text)
    return dest


# --- 2. the build -----------------------------------------------------------------------

def apply_patches(name, text):
    for test, _why, pattern, repl, count in PATCHES:
        if test != name:
            continue
        text, n = re.subn(pattern, repl, text)
        if n != count:
            raise RuntimeError("patch for %s matched %d times, expected %d: %s"
                               % (name, n, count, pattern))
    return text


def recipe_key(src, cc):
    """Everything a binary depends on besides the tarball: a change rebuilds from scratch."""
    h = hashlib.sha256()
    cc_version = subprocess.run([cc, "-dumpfullversion"], stdout=subprocess.PIPE,
                                text=True).stdout
    parts = [RECIPE, cc, cc_version, repr(CFLAGS), repr(LIBS), repr(SUPPORT_FILES), repr(GLIBC_HEADERS),
             repr([(p[0], p[2], p[3]) for p in PATCHES])]
    for f in sorted(os.listdir(SHIM_DIR)):
        with open(os.path.join(SHIM_DIR, f)) as fh:
            parts.append(f + "\0" + fh.read())
    parts.append(repr([(t["name"], t.get("extra")) for t in TESTS]))
    with open(os.path.join(src, ".osmem-unpacked")) as fh:
        parts.append(fh.read())
    for p in parts:
        h.update(p.encode() + b"\0")
    return h.hexdigest()[:12]


def run_cc(args, log_path):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(log_path, "w") as f:
        f.write(" ".join(args) + "\n" + r.stdout)
    return r.returncode == 0, r.stdout


def run_steps(steps, log_path):
    """run_cc for each command in turn, until one fails."""
    outs = []
    for i, args in enumerate(steps):
        ok, out = run_cc(args, "%s.%d" % (log_path, i))
        outs.append(out)
        if not ok:
            break
    return ok, "".join(outs)


def test_object(bdir, name, source):
    return os.path.join(bdir, "obj", "%s--%s.o" % (name, os.path.basename(source)[:-2]))


def build(src, bdir, names, cc, jobs):
    """Builds libsupport.a, each test in `names` and the probe into bdir. Returns
    {name: error text} for the tests that did not build."""
    shim = os.path.join(bdir, "shim")
    objdir = os.path.join(bdir, "obj")
    tdir = os.path.join(bdir, "malloc")  # the patched tests; ../test-skeleton.c beside it
    logdir = os.path.join(bdir, "logs")
    for d in (shim, objdir, tdir, logdir):
        os.makedirs(d, exist_ok=True)
    for h in GLIBC_HEADERS:
        shutil.copy(os.path.join(src, h), shim)
    for f in os.listdir(SHIM_DIR):  # config.h and the other stand-ins (shlib-compat.h)
        if f.endswith(".h"):
            shutil.copy(os.path.join(SHIM_DIR, f), shim)
    # <support/...> and <malloc/dynarray-skeleton.c> (the dynarray tests) resolve into the source.
    for d in ("support", "malloc"):
        link = os.path.join(shim, d)
        if not os.path.islink(link):
            os.symlink(os.path.join(src, d), link)
    shutil.copy(os.path.join(src, "test-skeleton.c"), bdir)
    # -iquote: a test's "tst-interpose-skeleton.c" or "tst-dynarray-shared.h" beside its original.
    common = [cc] + CFLAGS + ["-include", os.path.join(shim, "config.h"), "-I", shim,
                              "-I", os.path.join(src, "support"),
                              "-iquote", os.path.join(src, "malloc")]
    errors = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)

    # libsupport.a
    lib = os.path.join(bdir, "libsupport.a")
    if not os.path.exists(lib):
        paths = {
            "SRCDIR_PATH": src, "OBJDIR_PATH": bdir,
            "OBJDIR_ELF_LDSO_PATH": "/lib64/ld-linux-x86-64.so.2", "INSTDIR_PATH": "/usr",
            "LIBDIR_PATH": "/usr/lib/x86_64-linux-gnu", "BINDIR_PATH": "/usr/bin",
            "SBINDIR_PATH": "/usr/sbin", "SLIBDIR_PATH": "/lib/x86_64-linux-gnu",
            "ROOTSBINDIR_PATH": "/sbin", "COMPLOCALEDIR_PATH": "/usr/lib/locale"}
        futs = []
        for f in SUPPORT_FILES:
            c = os.path.join(src, "support", f + ".c")
            if not os.path.exists(c):
                continue  # a routine of another glibc release
            extra = ['-D%s="%s"' % kv for kv in paths.items()] if f == "support_paths" else []
            o = os.path.join(objdir, f + ".o")
            futs.append((f, pool.submit(run_cc, common + extra + ["-c", c, "-o", o],
                                        os.path.join(logdir, f + ".log")), o))
        objs = []
        for f, fut, o in futs:
            ok, out = fut.result()
            if not ok:
                fail_setup("support/%s.c did not build:\n%s" % (f, out[-3000:]))
            objs.append(o)
        r = subprocess.run(["ar", "rcs", lib + ".tmp"] + objs, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            fail_setup("ar failed: " + r.stdout)
        os.rename(lib + ".tmp", lib)

    # the tests and the probe
    futs = []
    extras = {t["name"]: t.get("extra", []) for t in TESTS}
    for name in names:
        exe = os.path.join(bdir, "bin", name)
        if os.path.exists(exe):
            continue
        os.makedirs(os.path.dirname(exe), exist_ok=True)
        with open(os.path.join(src, "malloc", name + ".c")) as fh:
            try:
                text = apply_patches(name, fh.read())
            except RuntimeError as e:
                errors[name] = str(e)
                continue
        c = os.path.join(tdir, name + ".c")
        with open(c, "w") as fh:
            fh.write(text)
        # Compiled to objects first: allocator_use() reads what the test's own code calls there
        # (the linked binary also imports what the test driver could call, mallopt for one).
        steps = []
        objs = []
        for f in [c] + [os.path.join(src, "malloc", e) for e in extras.get(name, [])]:
            o = test_object(bdir, name, f)
            steps.append(common + ["-c", f, "-o", o])
            objs.append(o)
        steps.append(common + objs + ["-o", exe + ".tmp", lib] + LIBS)
        futs.append((name, exe, pool.submit(run_steps, steps,
                                            os.path.join(logdir, name + ".log"))))
    probe = os.path.join(bdir, "bin", "interpose_probe")
    if not os.path.exists(probe):
        os.makedirs(os.path.dirname(probe), exist_ok=True)
        futs.append((None, probe, pool.submit(
            run_cc, [cc, "-O2", os.path.join(SHIM_DIR, "interpose_probe.c"), "-o", probe + ".tmp",
                     "-ldl"], os.path.join(logdir, "interpose_probe.log"))))
    for name, exe, fut in futs:
        ok, out = fut.result()
        if ok:
            os.rename(exe + ".tmp", exe)
        elif name is None:
            fail_setup("tests/glibc/interpose_probe.c did not build:\n" + out[-3000:])
        else:
            errors[name] = "did not build:\n" + out[-3000:]
    pool.shutdown()
    return errors


# --- 3. the runs ------------------------------------------------------------------------

def test_timeout(src, name):
    """The driver's own timeout for this test in seconds (before TIMEOUTFACTOR)."""
    with open(os.path.join(src, "malloc", name + ".c")) as fh:
        m = re.search(r"^#define TIMEOUT (\d+)", fh.read(), re.M)
    return int(m.group(1)) if m else DEFAULT_TIMEOUT


def base_env():
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "OSMEM_PROFILE", "MALLOC_CHECK_", "MALLOC_PERTURB_",
              "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX",
              "GLIBC_TUNABLES", "TEST_DIRECT", "WAIT_FOR_DEBUGGER"):
        env.pop(k, None)
    return env


def run_one(exe, args, env, backstop, workdir):
    """Runs exe in its own session; returns (returncode or None on backstop, output, secs)."""
    os.makedirs(workdir, exist_ok=True)
    start = time.monotonic()
    p = subprocess.Popen([exe] + args, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=backstop)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = p.communicate()
        rc = None
    # The test driver's children are in the same session: make sure none outlives the test.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    shutil.rmtree(workdir, ignore_errors=True)
    return rc, out.decode("utf-8", "replace"), time.monotonic() - start


def judge(name, rc, out, backstop):
    """None when the run passed, else the reason it failed."""
    if rc is None:
        return "no result after %ds (killed by the harness's backstop)" % backstop
    if "cannot be preloaded" in out:
        return "LD_PRELOAD was not honoured (ld.so could not preload the library)"
    if rc == 77:
        if name in UNSUPPORTED_OK:
            return None
        return "UNSUPPORTED (exit 77), with no documented reason"
    if rc < 0:
        return "killed by signal %d (%s)" % (-rc, signal.Signals(-rc).name)
    if rc != 0:
        if "Timed out:" in out:
            return "timed out (the test driver killed it after its timeout)"
        # The driver's own verdicts (support/check.c: "error: FILE:LINE: not true: ...", and
        # support_test_main.c: "Expected signal ..."), wherever they fell in the output.
        said = [l.strip() for l in out.splitlines()
                if l.startswith("error: ") or l.startswith("Expected signal")]
        return "exit status %d%s" % (rc, ": " + "; ".join(said[:4]) if said else "")
    pat = FAIL_PATTERNS.get(name)
    if pat and pat.search(out):
        return "exit status 0, but its output reports a failure"
    return None


def tail(out, n=TAIL_LINES):
    lines = out.rstrip("\n").splitlines()
    return "\n".join("    | " + line for line in lines[-n:])


def probe_interposition(probe, lib, env, others=()):
    """Checks that every INTERPOSED name resolves to lib under LD_PRELOAD=lib. Returns (the
    problems, {name: the object that serves it} for INTERPOSED and `others`)."""
    names = INTERPOSED + [n for n in others if n not in INTERPOSED]
    r = subprocess.run([probe] + names, env=dict(env, LD_PRELOAD=lib),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    real = os.path.realpath(lib)
    bad = []
    where = {}
    for line in r.stdout.splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[0] in names:
            where[parts[0]] = parts[1]
            if parts[0] in INTERPOSED and (parts[1] == "-" or os.path.realpath(parts[1]) != real):
                bad.append("%s from %s" % (parts[0], parts[1]))
        elif "cannot be preloaded" in line:
            bad.append(line.strip())
    if r.returncode != 0:
        bad.append("the probe exited %d: %s" % (r.returncode, r.stdout[-500:]))
    missing = [n for n in INTERPOSED if n not in where]
    if missing and r.returncode == 0:
        bad.append("the probe printed nothing for " + ", ".join(missing))
    return bad, where


def dynamic_symbols(exe):
    """(the names exe imports, the names it exports), without their versions (nm -D)."""
    r = subprocess.run(["nm", "-D", exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError("nm -D %s failed: %s" % (exe, r.stdout[-500:]))
    imports, exports = set(), set()
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 2 and f[-2] in ("U", "w", "v"):
            imports.add(f[-1].split("@")[0])
        elif len(f) == 3:
            exports.add(f[2].split("@")[0])
    return imports, exports


def object_imports(obj):
    """The names an object file leaves undefined (nm -u)."""
    r = subprocess.run(["nm", "-u", obj], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError("nm -u %s failed: %s" % (obj, r.stdout[-500:]))
    return {line.split()[-1] for line in r.stdout.splitlines() if line.strip()}


def allocator_use(tests, bdir):
    """Which allocator functions each built test imports or defines itself. Returns
    ({function: [tests that import it]}, {test: [allocation functions it defines]}); stops the
    run when a test imports one that this script has not classified."""
    imports, defines = {}, {}
    for t in tests:
        if "build_error" in t:
            continue
        und = set()
        for f in [t["name"] + ".c"] + t.get("extra", []):
            und |= object_imports(test_object(bdir, t["name"], f))
        exp = dynamic_symbols(os.path.join(bdir, "bin", t["name"]))[1]
        for fn in sorted(und & MALLOC_FAMILY):
            imports.setdefault(fn, []).append(t["name"])
        own = sorted(exp & set(INTERPOSED))
        if own:
            defines[t["name"]] = own
    unknown = sorted(fn for fn in imports if fn not in INTERPOSED and fn not in GLIBC_OWN)
    if unknown:
        fail_setup("the tests import allocator functions that osmem does not serve and that "
                   "GLIBC_OWN does not explain: " + "; ".join(
                       "%s (%s)" % (fn, ", ".join(imports[fn])) for fn in unknown))
    return imports, defines


def wanted_modes(opts, lib_error):
    modes = []
    if not opts.no_baseline or opts.glibc_only:
        modes.append("glibc")
    if not opts.glibc_only and lib_error is None:
        modes.append("osmem")
    return modes


def libc_key():
    """Identifies the installed libc the baseline ran on."""
    parts = [os.confstr("CS_GNU_LIBC_VERSION") or "?"]
    for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib64/libc.so.6"):
        if os.path.exists(p):
            st = os.stat(os.path.realpath(p))
            parts += [os.path.realpath(p), str(st.st_size), str(int(st.st_mtime))]
            break
    return hashlib.sha256(" ".join(parts).encode()).hexdigest()[:12]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="osmem's build folder (libosmem-malloc.so)")
    ap.add_argument("--scratch", default=os.environ.get("OSMEM_GLIBC_DIR") or
                    os.path.join(tempfile.gettempdir(), "osmem-glibc"),
                    help="where glibc's source and the built tests are kept")
    ap.add_argument("-j", "--jobs", type=int, default=max(2, os.cpu_count() or 2),
                    help="parallel compiles and test runs")
    ap.add_argument("--only", nargs="+", metavar="TEST", help="run only these tests")
    ap.add_argument("--glibc-only", action="store_true",
                    help="check the harness itself: count the plain-glibc runs, no LD_PRELOAD")
    # CI (CI=true) has 15 minutes for everything: the plain-glibc runs are a sanity baseline that never
    # counts, so it skips them there.
    ap.add_argument("--no-baseline", action="store_true", default=os.environ.get("CI") == "true",
                    help="skip the plain-glibc runs (the default when CI=true)")
    ap.add_argument("--rebaseline", action="store_true",
                    help="run the plain-glibc baseline again even where it passed before")
    opts = ap.parse_args()

    t0 = time.monotonic()
    lib = os.path.abspath(os.path.join(opts.build, "libosmem-malloc.so"))
    cc = os.environ.get("CC") or "gcc"
    os.makedirs(opts.scratch, exist_ok=True)
    tfactor = os.environ.get("TIMEOUTFACTOR", "3")

    # One run at a time per scratch folder (unpack and build write into it).
    lockf = open(os.path.join(opts.scratch, ".lock"), "w")
    fcntl.flock(lockf, fcntl.LOCK_EX)

    tarball = ensure_tarball()
    src = unpack(tarball, opts.scratch)
    version = os.path.basename(src)

    tests = [dict(t) for t in TESTS]
    notes = []
    for name, why in OPTIONAL_TESTS.items():
        if os.path.exists(os.path.join(src, "malloc", name + ".c")):
            tests.append(dict(name=name, est=5))
        else:
            notes.append("note: glibc/%s is not in %s (%s): not run" % (name, version, why))
    if opts.only:
        unknown = set(opts.only) - {t["name"] for t in tests}
        if unknown:
            fail_setup("unknown test(s): " + ", ".join(sorted(unknown)))
        tests = [t for t in tests if t["name"] in opts.only]
    for t in tests:
        t.setdefault("driver", True)
        if not os.path.exists(os.path.join(src, "malloc", t["name"] + ".c")):
            t["build_error"] = "not found in %s/malloc" % version

    bdir = os.path.join(opts.scratch, "build-%s-%s" % (version, recipe_key(src, cc)))
    tb = time.monotonic()
    errors = build(src, bdir, [t["name"] for t in tests if "build_error" not in t], cc,
                   opts.jobs)
    for t in tests:
        if t["name"] in errors:
            t["build_error"] = errors[t["name"]]
    log("setup: %s from %s; tests built in %s (%.1fs)"
        % (version, tarball, bdir, time.monotonic() - tb))
    for n in notes:
        log(n)

    env = base_env()
    env["TIMEOUTFACTOR"] = tfactor
    lib_error = None
    imports, defines = allocator_use(tests, bdir)
    for name, fns in sorted(defines.items()):
        log("note: glibc/%s defines %s itself: the program's own definitions come before "
            "LD_PRELOAD in symbol lookup, so its own allocator serves it and osmem is only loaded "
            "beside it" % (name, ", ".join(fns)))
    if not opts.glibc_only:
        if not os.path.exists(lib):
            lib_error = "%s does not exist (build it first: make all)" % lib
        else:
            bad, where = probe_interposition(os.path.join(bdir, "bin", "interpose_probe"), lib,
                                             env, sorted(imports))
            if bad:
                lib_error = ("LD_PRELOAD=%s does not serve every allocation function the tests "
                             "call: %s" % (lib, "; ".join(bad)))
            real = os.path.realpath(lib)
            for fn in sorted(imports):
                if fn in GLIBC_OWN:
                    w = where.get(fn, "-")
                    served = ("osmem" if w != "-" and os.path.realpath(w) == real else
                              "glibc (%s)" % w if w != "-" else
                              "glibc (a compat-only symbol: not visible to dlsym)")
                    log("note: %s is served by %s, not replaced by osmem: %s; called by %s"
                        % (fn, served, GLIBC_OWN[fn], ", ".join(imports[fn])))

    # The baseline of a test only depends on glibc and the binary: a passing one is kept in
    # the build folder (keyed on the installed libc too) and not run again (--rebaseline does).
    baseline_file = os.path.join(bdir, "baseline-%s.json" % libc_key())
    cached = {}
    if os.path.exists(baseline_file):
        with open(baseline_file) as fh:
            cached = json.load(fh)
    results = {}
    for t in tests:
        c = cached.get(t["name"])
        if c and "glibc" in wanted_modes(opts, None) and not (opts.rebaseline or
                                                              opts.glibc_only):
            results[(t["name"], "glibc")] = (None, 0, "", c["secs"], True)

    modes = wanted_modes(opts, lib_error)
    # The baseline only explains an osmem failure, so by default it runs after the osmem runs, for
    # the tests that failed there (session 49: on a fresh machine charging 10 us a page fault the
    # whole baseline cost 150 s more, tst-mallocfork2 and 3 over 50 s each on glibc, in a CI that
    # has 15 minutes for everything). --rebaseline and --glibc-only run it for every test.
    later = "glibc" in modes and "osmem" in modes and not opts.rebaseline
    jobs = [(t, m) for t in tests if "build_error" not in t for m in modes
            if (t["name"], m) not in results and not (later and m == "glibc")]
    # Longest first; a test's baseline (--rebaseline) before its osmem run, and never both at once (two
    # copies of a fork-heavy test slow each other down more than they gain).
    jobs.sort(key=lambda j: (-j[0]["est"], j[1] != "glibc"))
    runroot = os.path.join(opts.scratch, "run-%d" % os.getpid())

    def execute(job):
        t, mode = job
        name = t["name"]
        exe = os.path.join(bdir, "bin", name)
        e = dict(env, **t.get("env", {}))
        if mode == "osmem":
            e["LD_PRELOAD"] = lib
        elif t.get("glibc_preload"):
            e["LD_PRELOAD"] = ":".join(t["glibc_preload"])
        workdir = os.path.join(runroot, "%s.%s" % (name, mode))
        args = ["--test-dir", workdir] if t["driver"] else []
        backstop = test_timeout(src, name) * int(tfactor) + 60
        rc, out, secs = run_one(exe, args, e, backstop, workdir)
        return judge(name, rc, out, backstop), rc, out, secs, False

    log("running %d test(s): %d on plain glibc, %d with osmem (TIMEOUTFACTOR=%s, %d at a time)"
        % (len(tests), sum(j[1] == "glibc" for j in jobs), sum(j[1] == "osmem" for j in jobs),
           tfactor, opts.jobs))
    cond = threading.Condition()
    running = set()

    def worker():
        while True:
            with cond:
                while True:
                    if not jobs:
                        return
                    pick = next((j for j in jobs if j[0]["name"] not in running and
                                 (j[1] == "glibc" or (j[0]["name"], "glibc") not in
                                  [(x[0]["name"], x[1]) for x in jobs])), None)
                    if pick:
                        jobs.remove(pick)
                        running.add(pick[0]["name"])
                        break
                    cond.wait()
            r = execute(pick)
            with cond:
                results[(pick[0]["name"], pick[1])] = r
                running.discard(pick[0]["name"])
                cond.notify_all()

    def run_all():
        threads = [threading.Thread(target=worker) for _ in range(max(1, opts.jobs))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    run_all()
    if later:
        jobs = [(t, "glibc") for t in tests if "build_error" not in t and
                (t["name"], "glibc") not in results and results[(t["name"], "osmem")][0] is not None]
        if jobs:
            log("running the baseline of %d test(s) that failed with osmem" % len(jobs))
            run_all()
    shutil.rmtree(runroot, ignore_errors=True)
    if not opts.glibc_only:
        for (n, m), r in results.items():
            if m == "glibc":
                if r[0] is None:
                    cached[n] = {"secs": round(r[3], 1)}
                else:
                    cached.pop(n, None)
        with open(baseline_file + ".tmp", "w") as fh:
            json.dump(cached, fh, indent=1, sort_keys=True)
        os.rename(baseline_file + ".tmp", baseline_file)

    if "glibc" in wanted_modes(opts, None) and not opts.glibc_only:
        log("== baseline: plain %s, no LD_PRELOAD (informational, not counted)" % version)
        for t in tests:
            r = results.get((t["name"], "glibc"))
            if r is None and later and "build_error" not in t:
                continue  # passed with osmem: no baseline needed
            if r is None:
                log("baseline glibc/%s: not built" % t["name"])
            else:
                log("baseline glibc/%s: %s (%.1fs%s)" % (
                    t["name"], "ok" if r[0] is None else "failed: " + r[0], r[3],
                    "; passed before with this glibc and binary, not rerun" if r[4] else ""))
    counted = "glibc" if opts.glibc_only else "osmem"
    log("== %s" % ("plain glibc (--glibc-only)" if opts.glibc_only else "LD_PRELOAD=" + lib))
    passed = failed = 0
    for t in tests:
        name = t["name"]
        if "build_error" in t:
            reason, out = t["build_error"], ""
        elif lib_error and counted == "osmem":
            reason, out = lib_error, ""
        else:
            reason, _rc, out, _secs, _cached = results[(name, counted)]
            if reason is not None and counted == "osmem" and (name, "glibc") in results:
                base = results[(name, "glibc")][0]
                reason += "; on plain glibc: %s" % ("passes" if base is None else base)
        if reason is None:
            passed += 1
            log("PASS glibc/%s" % name)
        else:
            failed += 1
            log("FAIL glibc/%s: %s" % (name, reason))
            if out.strip():
                log(tail(out))
    timed = sorted(((r[3], n) for (n, m), r in results.items() if m == counted and not r[4]),
                   reverse=True)
    if timed:
        log("slowest %s runs: %s" % (counted, ", ".join("%s %.1fs" % (n, s) for s, n in timed[:4])))
    log("total %.1fs" % (time.monotonic() - t0))
    log("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
