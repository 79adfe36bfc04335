#!/usr/bin/env python3
"""OSMEM_CHECK=strict runs correct programs correctly (docs/STRICT.md); tests/malloc_strict.c checks that it
catches the bugs.

    python3 tests/test_strict.py --build build

- malloc_api and malloc_cxx under strict mode: every group that checks behaviour must pass. Left out, each for
  its reason: the groups that assert the default layout (a heap header whose size equals malloc_usable_size:
  strict mode reports the exact size asked for, and keeps canary bytes after it; a 131025-byte block being the
  core's own mapping), those that count bytes in use or mappings right after a free (the quarantine holds freed
  blocks), and os_api_same_heap (it hands malloc's blocks to os_realloc, which strict mode does not cover).
- malloc_stress (8 threads, malloc/free/realloc across threads) under strict mode: its thread and heap checks
  pass, and after everything is freed the mappings left are at most what the quarantine may hold.
- python3 (threads, json, re, big dicts) and sqlite3 (tests/programs/workload.sql) run under strict mode with
  the same output and exit status as on glibc.
Prints 'PASS strict_run/NAME' or 'FAIL strict_run/NAME: why'; exits 1 on a failure. Standard library only."""
import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"

# groups of tests/malloc_api.c that do not depend on the default layout or on frees being immediate
API_GROUPS = ["free_null", "realloc_grow_shrink", "reallocarray", "overflow_enomem", "free_keeps_errno",
              "aligned_einval", "valloc_pvalloc", "malloc_trim", "malloc_stats"]
# tests/malloc_cxx.cpp: every group except those that count bytes in use (canaries, quarantine), and the three
# about the default profile's medium caches, which strict mode does not have (it needs neighbouring blocks; the
# retry after ENOMEM that gives the caches back)
CXX_LEFT_OUT = {"every_form_allocates_from_osmem", "aligned_forms_honour_alignment", "sized_delete_every_size",
                "sized_aligned_delete_every_size", "stl_workload", "front_off", "classic",
                "new_reclaims_cached_blocks", "aligned_new_served_by_cache", "aligned_new_retry_rounds_once"}
QUARANTINE_MAX_MAPPINGS = (16 << 20) // (128 << 10)  # 16 MiB of blocks of at least 128 KiB

PY_SCRIPT = r"""
import json, re, threading, collections, hashlib
d = {str(i): [i] * (i % 50) for i in range(100000)}
s = json.dumps(d)
assert json.loads(s) == d
out = []
def work(k):
    l = [("x%d" % i) * (i % 300) for i in range(20000)]
    c = collections.Counter(len(x) for x in l)
    out.append((k, sum(c.values()), hashlib.sha256("".join(l[::97]).encode()).hexdigest()))
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print(len(s), sorted(out))
print(len(re.findall(r"\d+", s[:200000])))
b = bytearray()
for i in range(3000):
    b += bytes(i % 256 for _ in range(i % 200))
print(len(b), hashlib.md5(b).hexdigest())
"""

results = []


def report(name, why=None):
    results.append(why is None)
    print(f"PASS strict_run/{name}" if why is None else f"FAIL strict_run/{name}: {why}", flush=True)


def run(argv, env_extra, stdin=None, timeout=600):
    env = dict(os.environ)
    env.update(env_extra)
    try:
        p = subprocess.run(argv, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return "timeout", "", ""


def groups(out):
    res = {}
    for line in out.splitlines():
        m = re.match(r"(PASS|FAIL) ([^:\s]+)(?::\s*(.*))?", line)
        if m:
            res[m.group(2)] = (m.group(1) == "PASS", m.group(3) or "")
    return res


def check_suite(build, name, prog, want, env):
    rc, out, err = run([os.path.join(build, "tests", prog)], env)
    got = groups(out)
    missing = [g for g in want if g not in got]
    failed = [f"{g}: {got[g][1]}" for g in want if g in got and not got[g][0]]
    if missing or failed:
        report(name, f"groups missing {missing}, failed {failed}; stderr: {err[-300:]!r}")
    else:
        report(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    lib = os.path.join(build, "libosmem-malloc.so")
    strict = {"OSMEM_CHECK": "strict"}

    check_suite(build, "malloc_api", "malloc_api", API_GROUPS, strict)

    rc, out, err = run([os.path.join(build, "tests", "malloc_cxx")], strict)
    got = groups(out)
    want = [g for g in got if g.split("/")[1] not in CXX_LEFT_OUT]
    if len(want) < 20:
        report("malloc_cxx", f"only {len(want)} groups ran; stdout: {out[-300:]!r}")
    else:
        check_suite(build, "malloc_cxx", "malloc_cxx", want, strict)

    rc, out, err = run([os.path.join(build, "tests", "malloc_stress")], strict)
    got = groups(out)
    m = re.search(r"(\d+) mappings after freeing everything, (\d+) before", out)
    bad = [g for g in ("stress/malloc_threads", "stress/malloc_heap_check") if not got.get(g, (False,))[0]]
    if bad:
        report("malloc_stress", f"{bad} did not pass: {out[-400:]!r} {err[-200:]!r}")
    elif m and int(m.group(1)) - int(m.group(2)) > QUARANTINE_MAX_MAPPINGS:
        report("malloc_stress", f"{m.group(0)}: more than the quarantine may hold ({QUARANTINE_MAX_MAPPINGS})")
    else:
        report("malloc_stress")

    preload = {"LD_PRELOAD": lib, **strict}
    ref = run([PY, "-c", PY_SCRIPT], {})
    got = run([PY, "-c", PY_SCRIPT], preload)
    report("python3", None if ref[:2] == got[:2] and ref[0] == 0 else
           f"glibc: {ref[0]} {ref[1][-200:]!r}; strict: {got[0]} {got[1][-200:]!r} {got[2][-300:]!r}")

    sqlite = shutil.which("sqlite3")
    if not sqlite:
        report("sqlite3", "sqlite3 is not installed (tests/setup.sh installs it)")
    else:
        sql = os.path.join(HERE, "programs", "workload.sql")
        with open(sql) as f:
            ref = run([sqlite, ":memory:"], {}, stdin=f)
        with open(sql) as f:
            got = run([sqlite, ":memory:"], preload, stdin=f)
        report("sqlite3", None if ref[:2] == got[:2] and ref[0] == 0 and ref[1] else
               f"glibc: {ref[0]} {len(ref[1])} bytes; strict: {got[0]} {len(got[1])} bytes, stderr {got[2][-300:]!r}")

    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
