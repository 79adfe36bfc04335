#!/usr/bin/env python3
"""Runs osmem's libFuzzer harnesses, each for a given time, and says what each reached.

usage: fuzz/run.py [--dir build-fuzz] [--seconds N] [--jobs J] [HARNESS ...]

Each harness runs on a working corpus (DIR/corpus/NAME, started from the committed seeds in fuzz/corpus/NAME and
kept between runs), with its crash artifacts in DIR/artifacts/NAME/ and its whole log in DIR/logs/NAME.log.
Prints 'PASS NAME: ...' with the executions, coverage (libFuzzer's cov and ft) and corpus size, or
'FAIL NAME: why' with the artifact and the end of the log; exits 1 if any failed."""
import argparse, os, re, shutil, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESSES = ["fuzz_ops", "fuzz_ops_malloc", "fuzz_ops_malloc_classic", "fuzz_bestfit", "fuzz_corrupt",
             "fuzz_corrupt_classic"]
MAX_LEN = 2048


def run_one(d, name, seconds, seed=0, runs=0, root=None):
    """Runs harness d/name; its working corpus, artifacts and log go under root (d unless given: tests/test_fuzz.py
    gives its own, so that `make check` never touches the corpora of a longer run going on in d)."""
    binary = os.path.join(d, name)
    if not os.access(binary, os.X_OK):
        return False, f"FAIL {name}: {binary} is not built (make fuzz-build)"
    root = root or d
    work = os.path.join(root, "corpus", name)
    arts = os.path.join(root, "artifacts", name) + "/"
    logs = os.path.join(root, "logs")
    for p in (work, arts, logs):
        os.makedirs(p, exist_ok=True)
    log = os.path.join(logs, name + ".log")
    seeds = os.path.join(HERE, "corpus", name)
    cmd = ["nice", binary, f"-max_total_time={seconds}", f"-max_len={MAX_LEN}", "-timeout=60",
           "-rss_limit_mb=4096", "-print_final_stats=1", f"-artifact_prefix={arts}", work, seeds]
    if seed:
        cmd.insert(2, f"-seed={seed}")
    if runs:
        cmd.insert(2, f"-runs={runs}")  # at most this many inputs: a faster machine goes no further than this one  # a fixed seed: the same inputs in the same order on every machine
    env = dict(os.environ)
    for var in ("OSMEM_PROFILE", "OSMEM_TRACE", "OSMEM_FRONT", "FUZZ_REEXECED"):
        env.pop(var, None)  # each harness sets up the environment it needs
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    t0 = time.time()
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                                timeout=seconds + 300).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    secs = time.time() - t0
    out = open(log, errors="replace").read()
    execs = re.findall(r"^stat::number_of_executed_units: (\d+)", out, re.M)
    cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", out)
    extra = re.findall(r"^(corrupt stats: .*)$", out, re.M)
    fig = (f"execs={execs[-1] if execs else '?'} cov={cov[-1][0] if cov else '?'} "
           f"ft={cov[-1][1] if cov else '?'} corpus={cov[-1][2] if cov else '?'} ({secs:.0f}s)")
    if extra:
        fig += " " + extra[-1][len("corrupt stats: "):]
    # failure lines only: libFuzzer's own status and dictionary lines may quote these words (its CMP tracing learns
    # the strings the harness compares with)
    lines = out.splitlines()
    bad = [l if not l.startswith("FINDING") or i + 1 >= len(lines) else l + " " + lines[i + 1]
           for i, l in enumerate(lines)
           if re.match(r"(FUZZ FAIL|FINDING:|==\d+== ?ERROR: |\S+:\d+:\d+: runtime error: )", l)]
    if rc == 0 and not bad and execs:
        return True, f"PASS {name}: {fig}"
    arts_found = sorted(os.listdir(arts)) if os.path.isdir(arts) else []
    why = bad[0] if bad else f"exit status {rc}"
    tail = "\n".join("    " + l for l in out.splitlines()[-25:])
    return False, (f"FAIL {name}: {why}; {fig}; artifacts in {arts}: {' '.join(arts_found[-3:]) or 'none'}; "
                   f"log {log}\n{tail}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="build-fuzz")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="libFuzzer's -seed (0: a random one)")
    ap.add_argument("harness", nargs="*")
    a = ap.parse_args()
    names = a.harness or HARNESSES
    ok = True
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        for good, line in ex.map(lambda n: run_one(a.dir, n, a.seconds, a.seed), names):
            print(line, flush=True)
            ok &= good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
