#!/usr/bin/env python3
"""An outside check: GrapheneOS hardened_malloc's misuse and sanity programs, run on osmem.

    python3 tests/test_hardened.py --build build

tests/hardened/ holds 41 small programs (built into BUILD/tests/hardened/ by the Makefile, linked with nothing of
osmem's), one for each program of hardened_malloc's test suite (test/, expectations in test/test_smc.py) except
the ones that test hardened_malloc's own API or build configuration: malloc_object_size* (its own function),
malloc_noreuse and the quarantine_*_extended programs. Each is written anew from what the original does (sizes,
order of calls, what is accessed); none of hardened_malloc's code is copied. Each program runs three times:
LD_PRELOAD=BUILD/libosmem-malloc.so in the default mode, the same with OSMEM_CHECK=strict, and on plain glibc
(no preload: for comparison, never counted against osmem).

hardened_malloc's expectations, translated:
- `abort`: it expects SIGABRT with its own message. On osmem: SIGABRT and a line of standard error that starts
  with `osmem: ` (the report). On glibc: SIGABRT and any message on standard error.
- `segv`: it expects SIGSEGV. Here: SIGSEGV or SIGBUS.
- `exit0`: it expects exit status 0 (and, for two programs, a given standard output). Here: the same.

Prints the table (program, expectation, outcome in each run; `+` met, `-` missed), the counts, then
`PASS hardened_default_count` (at least DEFAULT_TARGET met by osmem's default mode),
`PASS hardened_strict_count` (at least STRICT_TARGET under OSMEM_CHECK=strict), and `PASS hardened/<name>` or
`FAIL hardened/<name>: why` for every program in each mode the table below says osmem must meet (so a regression
of any of them fails, whatever the counts). The known misses are printed with their reasons, not as failures.
Exits 1 on any failure. Standard library only."""
import argparse
import os
import resource
import signal
import subprocess
import sys

DEFAULT_TARGET = 31
STRICT_TARGET = 38
TIMEOUT = 600  # large_array_growth writes ~1.7 GiB in all; strict mode copies at every step

ZERO_LINES = "0\n" * 16

# name, expectation, expected stdout (exit0 only; None: not checked), the osmem modes that must meet it, and why
# osmem misses it in the modes not listed.
PROGRAMS = [
    ("delete_type_size_mismatch", "abort", None, "default strict", ""),
    ("aligned_sized_delete_small", "exit0", None, "default strict", ""),
    ("aligned_sized_delete_small_min_align", "exit0", None, "default strict", ""),
    ("invalid_aligned_sized_delete_small", "abort", None, "default strict", ""),
    ("aligned_sized_delete_large", "exit0", None, "default strict", ""),
    ("invalid_aligned_sized_delete_large", "abort", None, "strict",
     "the default mode keeps no exact size, only the block's; 16374 and 16384 bytes both round to the 16384-byte "
     "block new made (strict mode knows the size asked for)"),
    ("double_free_large_delayed", "abort", None, "default strict", ""),
    ("double_free_large", "abort", None, "default strict", ""),
    ("double_free_small_delayed", "abort", None, "default strict", ""),
    ("double_free_small", "abort", None, "default strict", ""),
    ("overflow_large_1_byte", "segv", None, "strict",
     "no guard page after a large block (a mapping and an mprotect more per block; strict mode has them)"),
    ("overflow_large_8_byte", "segv", None, "strict",
     "no guard page after a large block (a mapping and an mprotect more per block; strict mode has them)"),
    ("overflow_small_1_byte", "abort", None, "strict",
     "no canary after small blocks (a 16-byte object costs 16 bytes; strict mode adds canaries)"),
    ("overflow_small_8_byte", "abort", None, "strict",
     "no canary after small blocks (a 16-byte object costs 16 bytes; strict mode adds canaries)"),
    ("invalid_free_protected", "abort", None, "default strict", ""),
    ("invalid_free_small_region_far", "abort", None, "default strict", ""),
    ("invalid_free_small_region", "abort", None, "default strict", ""),
    ("invalid_free_unprotected", "abort", None, "default strict", ""),
    ("invalid_malloc_usable_size_small_quarantine", "abort", None, "default strict", ""),
    ("invalid_malloc_usable_size_small", "abort", None, "default strict", ""),
    ("read_after_free_large", "segv", None, "default strict", ""),
    ("read_after_free_small", "exit0", ZERO_LINES, "",
     "hardened_malloc zeroes a freed block; osmem's default mode leaves it as it was (the front's free-list "
     "link in its first word), and strict mode fills it with 0xDF on purpose: a read of freed memory shows as "
     "0xDF, and the fill is verified when the block leaves the quarantine (a write after free)"),
    ("read_zero_size", "segv", None, "default strict", ""),
    ("string_overflow", "exit0", "overflow by 0 bytes\n", "",
     "hardened_malloc's canary starts with a zero byte, which ends a string that runs off its block. osmem's "
     "default mode has no canary (the next slot's bytes follow); strict mode's canary is 0xCB throughout, so that "
     "the commonest overflow, a terminating zero written one byte past the end, is caught"),
    ("unaligned_free_large", "abort", None, "default strict", ""),
    ("unaligned_free_small", "abort", None, "default strict", ""),
    ("unaligned_malloc_usable_size_small", "abort", None, "default strict", ""),
    ("uninitialized_free", "abort", None, "default strict", ""),
    ("uninitialized_malloc_usable_size", "abort", None, "default strict", ""),
    ("uninitialized_realloc", "abort", None, "default strict", ""),
    ("write_after_free_large_reuse", "segv", None, "default strict", ""),
    ("write_after_free_large", "segv", None, "default strict", ""),
    ("write_after_free_small_reuse", "abort", None, "strict",
     "no quarantine and no fill (a freed slot is reused at once; only a write to its free-list link is "
     "caught); strict mode finds it when the block leaves the quarantine"),
    ("write_after_free_small", "abort", None, "strict",
     "no quarantine and no fill (a freed slot is reused at once; only a write to its free-list link is "
     "caught); strict mode finds it when the block leaves the quarantine"),
    ("write_zero_size", "segv", None, "default strict", ""),
    ("impossibly_large_malloc", "exit0", None, "default strict", ""),
    ("uninitialized_read_small", "exit0", None, "default strict", ""),
    ("uninitialized_read_large", "exit0", None, "default strict", ""),
    ("realloc_init", "exit0", None, "default strict", ""),
    ("large_array_growth", "exit0", None, "default strict", ""),
    ("malloc_zero_different", "exit0", None, "default strict", ""),
]
EXPECT_TEXT = {"abort": "abort + report", "segv": "SIGSEGV", "exit0": "exit 0"}

results = []


def report(name, why=None):
    results.append(why is None)
    print(f"PASS {name}" if why is None else f"FAIL {name}: {why}", flush=True)


def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # death probes: no core files


def run(path, env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "OSMEM_CHECK", "OSMEM_PROFILE")}
    env.update(env_extra)
    try:
        p = subprocess.run([path], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT,
                           preexec_fn=no_core)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        return "timeout", (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace")
    except OSError as e:
        return "error", "", str(e)


def signame(rc):
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def printable(text):
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def outcome(rc, out, err):
    """A short description of how a run ended."""
    if rc in ("timeout", "error"):
        return f"{rc} {err.strip()[:60]}".strip()
    if rc < 0:
        report_line = next((l for l in err.splitlines() if l.startswith("osmem: ")), None)
        first = report_line or (err.splitlines()[0] if err.strip() else "")
        return f"{signame(rc)} {printable(first)}".strip()
    text = printable(out.strip().replace("\n", " "))
    return f"exit {rc}" + (f", stdout '{text[:40]}'" if text else "")


def met(expect, want_out, rc, out, err, osmem):
    if expect == "abort":
        if osmem:
            return rc == -signal.SIGABRT and any(l.startswith("osmem: ") for l in err.splitlines())
        return rc == -signal.SIGABRT and bool(err.strip())
    if expect == "segv":
        return rc in (-signal.SIGSEGV, -signal.SIGBUS)
    return rc == 0 and (want_out is None or out == want_out)


def wanted(expect, want_out, osmem):
    if expect == "abort":
        return "SIGABRT and a report line starting 'osmem: '" if osmem else "SIGABRT with a message"
    if expect == "segv":
        return "SIGSEGV or SIGBUS"
    return "exit 0" + (f" with stdout {want_out!r}" if want_out is not None else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    lib = os.path.join(build, "libosmem-malloc.so")
    modes = [("default", {"LD_PRELOAD": lib}, True), ("strict", {"LD_PRELOAD": lib, "OSMEM_CHECK": "strict"}, True),
             ("glibc", {}, False)]
    if not os.path.exists(lib):
        report("hardened_build", f"{lib} is missing (make all builds it)")
        return 1

    rows = []
    for name, expect, want_out, must, why in PROGRAMS:
        path = os.path.join(build, "tests", "hardened", name)
        runs = {}
        for mode, env, osmem in modes:
            if not os.access(path, os.X_OK):
                runs[mode] = (False, "not built", ("error", "", f"{path} is missing (make all builds it)"))
                continue
            rc, out, err = run(path, env)
            runs[mode] = (met(expect, want_out, rc, out, err, osmem), outcome(rc, out, err), (rc, out, err))
        rows.append((name, expect, want_out, must.split(), why, runs))

    w = max(len(r[0]) for r in rows)
    print(f"{'program':<{w}}  {'expectation':<15} {'osmem default':<44} {'osmem strict':<44} glibc (for comparison)")
    for name, expect, _, _, _, runs in rows:
        cells = [("+ " if runs[m][0] else "- ") + runs[m][1][:42] for m in ("default", "strict", "glibc")]
        print(f"{name:<{w}}  {EXPECT_TEXT[expect]:<15} {cells[0]:<44} {cells[1]:<44} {cells[2]}")
    counts = {m: sum(1 for r in rows if r[5][m][0]) for m, _, _ in modes}
    total = len(rows)
    print(f"\nexpectations met, of {total}: osmem default {counts['default']}, osmem strict {counts['strict']}, "
          f"glibc {counts['glibc']} (glibc: for comparison)\n")

    for mode, target in (("default", DEFAULT_TARGET), ("strict", STRICT_TARGET)):
        missed = [r[0] for r in rows if not r[5][mode][0]]
        report(f"hardened_{mode}_count", None if counts[mode] >= target else
               f"{counts[mode]} of {total} expectations met, at least {target} required; missed: {', '.join(missed)}")

    for name, expect, want_out, must, why, runs in rows:
        bad = []
        for mode in must:
            ok, _, (rc, out, err) = runs[mode]
            if not ok:
                got = f"exit status {rc}" if isinstance(rc, int) and rc >= 0 else \
                    (signame(rc) if isinstance(rc, int) else rc)
                bad.append(f"{mode}: expected {wanted(expect, want_out, True)}, got {got}; "
                           f"stdout {out[-200:]!r}; stderr {err[-300:]!r}")
        if must:
            report(f"hardened/{name}", "; ".join(bad) if bad else None)
        for mode in ("default", "strict"):
            if mode not in must:
                state = "now met (the table can require it)" if runs[mode][0] else "known miss"
                print(f"  {state} ({mode}): hardened/{name}: {why}")

    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
