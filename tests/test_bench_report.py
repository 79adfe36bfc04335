#!/usr/bin/env python3
"""bench/run.py's run-by-run comparison with glibc (its report's "Time, run by run against glibc"), checked on
made-up samples whose answer is known, and on the committed results; and bench/ab.py, the paired A/B of two
builds, on `true` and `false`; and bench/run.py's peak RSS (bench/peak/peak.c) on a program that touches a known
number of pages; and bench/workloads/apis.c's and patterns.c's own checks, under glibc and osmem. Runs no
benchmark. Prints 'PASS name' /
'FAIL name: why' lines and 'N passed, N failed'; exits 1 on a failure.

The hazard: a busy host moves every allocator's time from run to run by tens of percent (45% in session 18's
run), so the ratio of two columns' medians can put osmem 8% behind glibc on a workload where it was ahead in 7
runs of 9 (gcc, session 18), or hide a steady 3% loss. Each run times the allocators back to back, so the ratio
within a run cancels the host's drift: the report's verdict rests on those ratios and on a test that says when
they do not tell the two apart."""
import argparse, copy, json, math, os, shutil, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bench"))
import run as bench  # bench/run.py

results = []


def check(name, ok, why=""):
    results.append(bool(ok))
    print(f"PASS bench_report/{name}" if ok else f"FAIL bench_report/{name}: {why}", flush=True)


def sample(secs, error=None):
    return {"secs": secs, "rss_kb": 1024, "checksum": "x", "metrics": {}, "error": error}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")  # the runner's protocol; nothing is built here
    args = ap.parse_args()

    # R's wilcox.test(x, y, paired = TRUE) example: V = 40, p = 0.03906 (20 of the 512 sign patterns)
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    p = bench.signed_rank_p_diffs([a - b for a, b in zip(x, y)])
    check("signed_rank_matches_reference", p is not None and abs(p - 20 / 512) < 1e-12,
          f"p = {p}, R's exact test gives 0.0390625")
    # exact at any count: 25 pairs all one way are 2 of the 2^25 sign patterns (a normal approximation says 1.2e-5)
    p = bench.signed_rank_p([1.1] * 25)
    check("signed_rank_exact_beyond_20_pairs", p == 2 / 2 ** 25, f"p = {p}, want {2 / 2 ** 25}")
    check("signed_rank_needs_five_pairs", bench.signed_rank_p([1.1] * 4) is None,
          "four pairs gave a p value; the smallest two-sided p of four is 0.125, never significant")

    # a host whose load triples from run to run, osmem 3% slower in every run (within each run, 1% of noise):
    # the spread of either column is 3 times the loss, the pairs see it in 9 runs of 9
    drift = [1.0, 2.9, 1.1, 3.2, 0.9, 2.5, 1.2, 3.0, 1.0]
    g = [sample(t) for t in drift]
    o = [sample(t * 1.03 * k) for t, k in zip(drift, [1.01, 0.99, 1.0, 1.01, 0.99, 1.0, 1.005, 0.995, 1.0])]
    data = {"samples": {"w": {"glibc": g, "osmem": o}}}
    m, p, v = bench.paired_verdict(bench.paired_ratios(data, "w", "osmem"))
    check("steady_loss_seen_through_drift", v == "slower" and abs(m - 1.03) < 0.002,
          f"verdict {v}, median ratio {m}, p {p}: want slower at 1.03")

    # the same drift, osmem's runs 5% either side of glibc's at random: no verdict either way
    wobble = [1.05, 0.95, 1.04, 0.96, 1.05, 0.95, 1.03, 0.97, 1.0]
    data = {"samples": {"w": {"glibc": g, "osmem": [sample(t * k) for t, k in zip(drift, wobble)]}}}
    m, p, v = bench.paired_verdict(bench.paired_ratios(data, "w", "osmem"))
    check("noise_is_level", v == "level", f"verdict {v} (median {m}, p {p}) for ratios 0.95-1.05 either way")

    # a failed run pairs with nothing: the ratios skip it rather than shift the rest
    o = [sample(t * 0.8) for t in drift]
    o[4] = sample(None, "crashed")
    rs = bench.paired_ratios({"samples": {"w": {"glibc": g, "osmem": o}}}, "w", "osmem")
    check("failed_run_not_paired", len(rs) == 8 and all(abs(r - 0.8) < 1e-9 for r in rs),
          f"ratios {rs}: want eight of 0.8")

    # the committed report renders the section, with a verdict per workload and the counts adding up
    path = os.path.join(ROOT, "bench", "results", "latest.json")
    with open(path) as f:
        data = json.load(f)
    md = bench.render_md(data, bench.summarize(data), "latest.svg")
    section = md.split("## Time, run by run against glibc", 1)[-1].split("\n## ", 1)[0]
    rows = [l for l in section.splitlines() if l.startswith("| ") and not l.startswith(("| workload", "| ---"))]
    check("report_has_a_verdict_per_workload",
          len(rows) == len(bench.ranked(data)) and all(l.rstrip(" |").split("| ")[-1].strip("* ") in
                                                       ("faster", "level", "slower", "too few runs") for l in rows),
          f"{len(rows)} rows for {len(bench.ranked(data))} workloads:\n" + "\n".join(rows))

    # a made-up slower workload shows as slower in the rendered report
    data2 = copy.deepcopy(data)
    w0 = data2["workloads"][0]
    data2["samples"][w0]["osmem"] = [dict(s, secs=s["secs"] * 1.1) for s in data2["samples"][w0]["glibc"]]
    md = bench.render_md(data2, bench.summarize(data2), "latest.svg")
    row = [l for l in md.splitlines() if l.startswith("| %s | 1.100 |" % w0)]
    check("slower_workload_reported", row and row[0].endswith("**slower** |"),
          f"row for {w0}: {row}")

    # the pairs target against the fastest other allocator, run by run: a made-up workload where tcmalloc is the
    # fastest (0.7 of glibc's time) and osmem 1.05 of tcmalloc's in every run while the host's load drifts by 3x;
    # the medians of the two columns would say the same only if the drift spared both alike
    data5 = copy.deepcopy(data)
    w0 = data5["workloads"][0]
    sm = data5["samples"][w0]
    sm["glibc"] = [dict(s, secs=t) for s, t in zip(sm["glibc"], drift)]
    sm["tcmalloc"] = [dict(s, secs=s["secs"] * 0.7) for s in sm["glibc"]]
    sm["osmem"] = [dict(s, secs=s["secs"] * 1.05) for s in sm["tcmalloc"]]
    for a in ("jemalloc", "mimalloc"):
        sm[a] = [dict(s, secs=s["secs"] * 0.9) for s in sm["glibc"]]
    md = bench.render_md(data5, bench.summarize(data5), "latest.svg")
    section = md.split("## Time, run by run against the fastest other allocator", 1)[-1].split("\n## ", 1)[0]
    row = [l for l in section.splitlines() if l.startswith("| %s |" % w0)]
    check("slower_than_fastest_peer_reported",
          row and row[0].startswith("| %s | tcmalloc | 1.050 |" % w0) and row[0].endswith("**slower** |"),
          f"row for {w0} in the fastest-peer section: {row}; want tcmalloc, 1.050, slower")

    # the comparison with the best peer allocator, by geometric means: made-up runs where osmem takes 0.8
    # of jemalloc's time in every run of every workload, jemalloc is made the fastest peer (half of glibc's time),
    # and osmem's peak is 0.9 of tcmalloc's, tcmalloc made the smallest (half of glibc's peak)
    data4 = copy.deepcopy(data)
    for w in bench.ranked(data4):
        sm = data4["samples"][w]
        sm["jemalloc"] = [dict(s, secs=s["secs"] * 0.5) for s in sm["glibc"]]
        sm["tcmalloc"] = [dict(s, rss_kb=s["rss_kb"] * 0.5) for s in sm["glibc"]]
        sm["osmem"] = [dict(s, secs=j["secs"] * 0.8, rss_kb=t["rss_kb"] * 0.9)
                       for s, j, t in zip(sm["glibc"], sm["jemalloc"], sm["tcmalloc"])]
    md = bench.render_md(data4, bench.summarize(data4), "latest.svg")
    line = [l for l in md.splitlines() if l.startswith("osmem against the best peer allocator")]
    check("best_peer_allocator_by_geomean",
          line and "time **0.80x** of jemalloc's" in line[0] and "peak RSS **0.90x** of tcmalloc's" in line[0],
          f"summary line {line}: want time 0.80x of jemalloc's and peak RSS 0.90x of tcmalloc's")

    # the scaling section's own workloads (larson-r1, larson-r2) stay out of the geometric means and the main
    # tables: a made-up one where osmem takes 10x glibc's time must not move the summary
    data3 = copy.deepcopy(data)
    before = bench.render_md(data3, bench.summarize(data3), "latest.svg")
    names = data3["allocators"]
    ops = {"glibc": (40e6, 60e6), "osmem": (50e6, 95e6)}
    for w, k in (("larson-r1", 0), ("larson-r2", 1)):
        if w not in data3["workloads"]:
            data3["workloads"].append(w)
        data3["kinds"][w] = "scaling"
        data3["what"][w] = "made up"
        data3["samples"][w] = {a: [dict(sample(10.0 if a == "osmem" else 1.0), metrics={
            "ops_per_s": ops.get(a, (30e6, 30e6))[k] * (1 + 0.01 * r)}) for r in range(5)] for a in names}
    md = bench.render_md(data3, bench.summarize(data3), "latest.svg")
    summ = lambda m: m.split("## Summary", 1)[1].split("\n## ", 1)[0]
    time_rows = [l for l in md.split("## Time\n", 1)[1].split("\n## ", 1)[0].splitlines() if l.startswith("| larson-r")]
    check("scaling_workloads_outside_geomeans", summ(md) == summ(before) and not time_rows,
          "the summary moved or the Time table lists larson-r*:\n" + summ(md) + "\n".join(time_rows))
    sec = md.split("## Scaling: larson at 2 threads against 1", 1)[-1].split("\n## ", 1)[0]
    row = [l for l in sec.splitlines() if "Larson's own form | **osmem**" in l]
    check("scaling_ratio_reported", row and "| 1.90x | 1.90x |" in row[0],
          f"osmem's row in the scaling section: {row}; want 95M over 50M, 1.90x both ways")

    # a real program the bench times that the machine lacks is named as not installed, before anything runs:
    # a fresh machine that ran make bench before make check had no redis, and every column said "redis-server
    # did not come up" after 20 s of waiting (session 24)
    empty = tempfile.mkdtemp(prefix="osmem-nopath-")  # a PATH with no program at all
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = empty
    try:
        why = {w.name: w.missing() for w in bench.WORKLOADS}
    finally:
        os.environ["PATH"] = saved
        os.rmdir(empty)
    check("missing_program_named_not_installed",
          why.get("redis") and "redis-server" in why["redis"] and "not installed" in why["redis"]
          and why.get("sqlite3") and "sqlite3" in why["sqlite3"] and why.get("gcc") and why.get("larson-1") is None,
          f"with an empty PATH: {why}")
    wrong = [w.name for w in bench.WORKLOADS if (w.missing() is None) != all(shutil.which(p) for p in w.needs)]
    check("missing_program_only_when_absent", not wrong,
          f"{wrong}: reported missing with every program on PATH, or running without one")

    # bench/ab.py, the paired A/B of two builds: it runs, pairs its runs, and names a command that fails
    import re, subprocess
    lib = os.path.join(os.path.abspath(args.build), "libosmem-malloc.so")
    ab = os.path.join(ROOT, "bench", "ab.py")
    build = os.path.abspath(args.build)
    r = subprocess.run([sys.executable, ab, "--pairs", "5", "--build", build, lib, lib, "--", "true"],
                       capture_output=True, text=True, timeout=120)
    check("ab_pairs_its_runs", r.returncode == 0 and re.search(r"median of 5 pairs\)  B faster in [0-5]  p [0-9.e-]+$",
                                                              r.stdout.strip()),
          f"exit {r.returncode}, output {r.stdout.strip()!r} {r.stderr.strip()[-200:]!r}")
    r = subprocess.run([sys.executable, ab, "--pairs", "2", "--build", build, lib, lib, "--", "false"],
                       capture_output=True, text=True, timeout=120)
    check("ab_names_failing_command", r.returncode != 0 and "false" in r.stderr and "exited 1" in r.stderr,
          f"exit {r.returncode}, stderr {r.stderr.strip()[-200:]!r}: want a failure naming `false` and its status")
    # a file ld.so cannot preload: the runs would time glibc twice, so ab refuses
    with tempfile.NamedTemporaryFile(suffix=".so", dir=build) as junk:
        junk.write(b"not an ELF file")
        junk.flush()
        r = subprocess.run([sys.executable, ab, "--pairs", "2", "--build", build, lib, junk.name, "--", "true"],
                           capture_output=True, text=True, timeout=120)
    check("ab_refuses_library_not_preloaded", r.returncode != 0 and "not mapped under LD_PRELOAD" in r.stderr,
          f"exit {r.returncode}, stderr {r.stderr.strip()[-200:]!r}: want a refusal naming the library not mapped")

    peak_rss_counts_every_page(build)
    apis_workload_checks_every_entry_point(build)
    patterns_workload_checks_every_pattern(build)

    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


TOUCH_C = r"""
#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 0;
	char *m = mmap(0, 256 << 12, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || n > 256)
		return 1;
	madvise(m, 256 << 12, MADV_NOHUGEPAGE); /* one page a touch, whatever the huge-page settings */
	for (long i = 0; i < n; i++)
		m[i << 12] = 1;
	return 0;
}
"""


def peak_rss_counts_every_page(build):
    """bench/run.py's peak RSS (bench/peak/peak.c preloaded, VmHWM at exit) counts every page a process touched.
    Hazard: ru_maxrss, which the report used until session 38, comes from per-CPU counters read 32 pages at a
    time: a program that touched 4 more pages read 456 KiB, 8 more 584, 12 more 456 again, so the suite's small
    processes (1.5-4 MiB) were measured in steps of 3-8%. A program touching 0, 8 and 40 pages, with ASLR off
    (setarch -R) so that its libraries map the same pages every time: the peaks must differ by 32 and 160 KiB."""
    import subprocess
    lib = os.path.join(build, "bench", "libpeak.so")
    if not os.path.exists(lib) or not shutil.which("setarch") or not os.path.exists(bench.TIME):
        check("peak_rss_counts_every_page", False, f"needs {lib} (make all), setarch and GNU time ({bench.TIME}; "
              "tests/setup.sh installs the package `time`)")
        return
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "touch")
        src = os.path.join(d, "touch.c")
        with open(src, "w") as f:
            f.write(TOUCH_C)
        cc = subprocess.run(["cc", "-O1", src, "-o", exe], capture_output=True, text=True)
        if cc.returncode != 0:
            check("peak_rss_counts_every_page", False, "cc could not build the page toucher: " + cc.stderr[-300:])
            return
        bench.PEAK_LIB = lib
        try:
            env = bench.base_env()
            peak, runs = {}, {}
            for n in (0, 8, 40):
                rs = []
                for _ in range(3):
                    r = bench.spawn(["setarch", "x86_64", "-R", exe, str(n)], env, 60)
                    rs.append((r.rc, r.rss_kb, r.maxrss_kb))
                runs[n] = rs
                good = sorted(x[1] for x in rs if x[0] == 0 and x[1] is not None)
                peak[n] = good[1] if len(good) == 3 else None
        finally:
            bench.PEAK_LIB = None
    ok = None not in peak.values() and abs(peak[8] - peak[0] - 32) <= 4 and abs(peak[40] - peak[0] - 160) <= 4
    check("peak_rss_counts_every_page", ok,
          "runs of a program touching N pages, (exit, peak KiB, ru_maxrss KiB) by N: %s; want peaks 32 and 160 "
          "KiB above N=0's (within 4). %s" % (runs, status_exact_note()))


def build_workload(name, d, lib, test):
    """bench/workloads/NAME.c compiled into d, or None with `test` failed (the compiler's complaint, or the library
    not built)."""
    import subprocess
    exe = os.path.join(d, name)
    cc = subprocess.run(["cc", "-O2", "-D_GNU_SOURCE", os.path.join(ROOT, "bench", "workloads", name + ".c"),
                         "-o", exe, "-pthread", "-lm"], capture_output=True, text=True)
    if cc.returncode != 0 or not os.path.exists(lib):
        check(test, False, "cc: %s; %s %s" % (cc.stderr[-300:], lib, "exists" if os.path.exists(lib)
                                              else "is not built (make all)"))
        return None
    return exe


def apis_workload_checks_every_entry_point(build):
    """bench/workloads/apis.c (bench/apis.py's scan) under glibc and under osmem, each entry point in one thread,
    in four and in four sharing their blocks (remote frees), at a tenth of its size: both exit 0 (every block aligned as asked, calloc's zeros, every page
    byte and realloc's kept bytes checked) with the same checksum. Hazard: a scan whose program misreads a block
    would rank an allocator that corrupts memory as fast; and the checks are the entry points' own correctness."""
    import subprocess
    lib = os.path.join(build, "libosmem-malloc.so")
    with tempfile.TemporaryDirectory() as d:
        exe = build_workload("apis", d, lib, "apis_workload_checks_every_entry_point")
        if not exe:
            return
        import apis  # bench/apis.py: bench/ is on the path (run.py's import above)
        bad = []
        for kind in apis.KINDS:
            for _, lo, hi in apis.RANGES[:3]:
                for t in apis.THREADS:
                    argv = [exe, "0.1", kind, str(lo), str(hi), t]
                    sums = []
                    for pre in (None, lib):
                        env = dict(bench.base_env(), **({"LD_PRELOAD": pre} if pre else {}))
                        r = subprocess.run(argv, env=env, capture_output=True, timeout=120)
                        checksum, _ = bench.parse_protocol(r.stdout)
                        sums.append(checksum)
                        if r.returncode != 0 or not checksum:
                            bad.append("%s under %s: exit %d %s" % (" ".join(argv[1:]), "osmem" if pre else "glibc",
                                                                    r.returncode, r.stderr.decode()[-200:]))
                    if sums[0] != sums[1]:
                        bad.append("%s: checksums %s (glibc) and %s (osmem)" % (" ".join(argv[1:]), *sums))
    check("apis_workload_checks_every_entry_point", not bad, "; ".join(bad[:5]))


def patterns_workload_checks_every_pattern(build):
    """bench/workloads/patterns.c (bench/patterns.py) under glibc and under osmem, every pattern at a twentieth of
    its size: both exit 0 (every block's pages, realloc's kept bytes and calloc's zeros checked) with the same
    checksum. Hazard: the probes that found session 43's mapping-cache problems first grew a buffer past its end
    (one realloc a step where the step needed several); a pattern that misuses its memory measures nothing."""
    import subprocess
    lib = os.path.join(build, "libosmem-malloc.so")
    with tempfile.TemporaryDirectory() as d:
        exe = build_workload("patterns", d, lib, "patterns_workload_checks_every_pattern")
        if not exe:
            return
        names = subprocess.run([exe, "1", "list"], capture_output=True, text=True).stdout.split()
        bad = [] if len(names) >= 16 else ["`patterns 1 list` named %d patterns: %s" % (len(names), names)]
        for pat in names:
            sums = []
            for pre in (None, lib):
                env = dict(bench.base_env(), **({"LD_PRELOAD": pre} if pre else {}))
                r = subprocess.run([exe, "0.05", pat], env=env, capture_output=True, timeout=120)
                checksum, _ = bench.parse_protocol(r.stdout)
                sums.append(checksum)
                if r.returncode != 0 or not checksum:
                    bad.append("%s under %s: exit %d %s" % (pat, "osmem" if pre else "glibc", r.returncode,
                                                           r.stderr.decode()[-200:]))
            if sums[0] != sums[1]:
                bad.append("%s: checksums %s (glibc) and %s (osmem)" % (pat, *sums))
    check("patterns_workload_checks_every_pattern", not bad, "; ".join(bad[:5]))


def status_exact_note():
    """Whether this kernel's /proc/self/status counts resident pages one by one (the sums of the per-CPU counters,
    which VmHWM then is), measured here: 20 pages touched must add 80 KiB to VmRSS (within a page or two of the
    interpreter's own), where counters read 32 pages at a time would add 0 or 128."""
    import mmap

    def vmrss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None
    m = mmap.mmap(-1, 64 << 12)
    before = vmrss()
    for i in range(20):
        m[i << 12] = 1
    after = vmrss()
    m.close()
    if before is None or after is None:
        return "No VmRSS in /proc/self/status."
    if abs(after - before - 80) <= 8:
        return ("This kernel's /proc/self/status counts page by page (20 pages touched: %+d KiB), so the probe "
                "is at fault." % (after - before))
    return ("This kernel's /proc/self/status is approximate too (20 pages touched: %+d KiB of VmRSS, want +80): "
            "bench/peak/peak.c needs a kernel whose status sums the per-CPU counters (this host's %s)." % (
                after - before, os.uname().release))


if __name__ == "__main__":
    sys.exit(main())
