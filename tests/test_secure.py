#!/usr/bin/env python3
"""test_secure: a program that runs with privileges its user does not have reads no OSMEM_ variable.

Hazard: OSMEM_TRACE and OSMEM_STATS name files that osmem creates and appends to, and OSMEM_FAIL fails the
allocations it names. In a setuid, setgid or file-capability program (the kernel's AT_SECURE) the caller's
environment is not to be trusted: until session 63 a setgid program linked with osmem, run with OSMEM_STATS=PATH,
wrote a file of the caller's choosing, owned by the program's group (with a setuid-root program: by root), and
OSMEM_FAIL made its allocations fail where the caller chose. glibc ignores its malloc tunables there and jemalloc
its MALLOC_CONF (secure_getenv). Now osmem ignores every OSMEM_ variable there and says so once on standard error.

Each library is checked with a program linked statically against its archive (libosmem-malloc.a: malloc;
libosmem.a: os_malloc), made setgid to a group the caller is not running as, so that AT_SECURE is 1 however the
test runs (root: any other group; another user: one of its supplementary groups). The same binary without the
setgid bit is the control: there the variables must take effect, so a test that could not tell is a failure.

Prints `PASS secure/<name>` or `FAIL secure/<name>: <why>`, then 'N passed, N failed'."""
import argparse
import grp
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
results = []


def check(name, ok, why=""):
    results.append(ok)
    print(f"PASS secure/{name}" if ok else f"FAIL secure/{name}: {why}")
    return ok


PROGRAMS = {
    # (source, archive): what each prints is the same line, so one parser reads both
    "dropin": ("""#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
int main(void)
{
	void *small = malloc(100), *large = malloc(1 << 20);
	printf("secure=%lu small=%d large=%d\\n", getauxval(AT_SECURE), small != NULL, large != NULL);
	free(small);
	free(large);
	return 0;
}
""", "libosmem-malloc.a"),
    "classic": ("""#include <stdio.h>
#include <sys/auxv.h>
#include "osmem.h"
int main(void)
{
	void *small = os_malloc(100), *large = os_malloc(1 << 20);
	printf("secure=%lu small=%d large=%d\\n", getauxval(AT_SECURE), small != NULL, large != NULL);
	os_free(small);
	os_free(large);
	return 0;
}
""", "libosmem.a"),
}

MESSAGE = "osmem: the program runs with privileges (setuid, setgid or capabilities): OSMEM_ settings are ignored"


def other_group():
    """A group the caller can give a file and is not running as (root: any; others: a supplementary one)."""
    mine = os.getgid()
    if os.geteuid() == 0:
        for name in ("nogroup", "nobody", "daemon", "bin"):
            try:
                g = grp.getgrnam(name).gr_gid
                if g != mine:
                    return g
            except KeyError:
                pass
        return 1 if mine != 1 else 2
    return next((g for g in os.getgroups() if g != mine), None)


def run(exe, tmp, extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSMEM_") and k != "LD_PRELOAD"}
    env.update(extra)
    r = subprocess.run([exe], capture_output=True, text=True, timeout=60, env=env, cwd=tmp)
    fields = dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
    return r, fields


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    gid = other_group()
    if gid is None:
        # not root and no supplementary group: no setgid program can be made here (CI runs as root)
        print("note: secure/: not root and no supplementary group, so no program with AT_SECURE can be made here")
        print("0 passed, 0 failed")
        return 0
    # in the build directory, not /tmp: /tmp may be mounted nosuid, which would leave AT_SECURE 0
    tmp = tempfile.mkdtemp(prefix="secure.", dir=build)
    try:
        for lib, (source, archive) in PROGRAMS.items():
            src, exe = os.path.join(tmp, lib + ".c"), os.path.join(tmp, lib)
            open(src, "w").write(source)
            b = subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "include"), src,
                                "-o", exe, os.path.join(build, archive), "-lpthread"], capture_output=True, text=True)
            if not check(f"{lib}/program_builds", b.returncode == 0, b.stderr[-500:]):
                continue
            stats, trace = os.path.join(tmp, lib + ".stats"), os.path.join(tmp, lib + ".trace")
            files = {"OSMEM_STATS": stats, "OSMEM_TRACE": trace}
            fail = {"OSMEM_FAIL": "mmap:1+,brk:1+"}

            # the control: the same binary, no privileges: the files are written and the faults injected
            r, f = run(exe, tmp, files)
            made = [k for k, p in files.items() if os.path.exists(p)]
            check(f"{lib}/unprivileged_program_takes_settings",
                  r.returncode == 0 and f.get("secure") == "0" and len(made) == 2,
                  f"exit {r.returncode}, {r.stdout.strip()!r}, files made by {made} (want both): {r.stderr[-300:]!r}")
            r, f = run(exe, tmp, fail)
            check(f"{lib}/unprivileged_program_takes_faults", f.get("small") == "0" and f.get("large") == "0",
                  f"with {fail}: {r.stdout.strip()!r} (want both allocations to fail): {r.stderr[-300:]!r}")
            for p in files.values():
                if os.path.exists(p):
                    os.unlink(p)

            # setgid to a group the caller is not running as: AT_SECURE
            os.chown(exe, -1, gid)
            os.chmod(exe, 0o2755)
            r, f = run(exe, tmp, dict(files, **fail))
            if not check(f"{lib}/setgid_program_is_secure", f.get("secure") == "1",
                         f"the setgid copy (group {gid}) ran with {r.stdout.strip()!r}: the file system may be "
                         f"mounted nosuid ({tmp}); {r.stderr[-300:]!r}"):
                continue
            made = [k for k, p in files.items() if os.path.exists(p)]
            check(f"{lib}/privileged_program_writes_no_file", not made,
                  f"{made} named files that the setgid program created: {[files[k] for k in made]}")
            check(f"{lib}/privileged_program_takes_no_fault", f.get("small") == "1" and f.get("large") == "1",
                  f"with {fail}: {r.stdout.strip()!r} (want both allocations served)")
            said = r.stderr.count(MESSAGE)
            check(f"{lib}/privileged_program_says_settings_ignored_once", r.returncode == 0 and said == 1,
                  f"exit {r.returncode}, said {said} times (want 1): {r.stderr[-300:]!r}")
            # no OSMEM_ variable set: nothing to say
            r, f = run(exe, tmp, {})
            check(f"{lib}/privileged_program_silent_without_settings",
                  r.returncode == 0 and f.get("small") == "1" and "osmem:" not in r.stderr,
                  f"exit {r.returncode}, {r.stdout.strip()!r}: {r.stderr[-300:]!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
