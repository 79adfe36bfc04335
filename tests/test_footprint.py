#!/usr/bin/env python3
"""test_footprint: what the drop-in library itself makes resident in every process that loads it.

Hazard: the kernel maps a library's text 64 KiB at a time (fault-around: one page fault maps up to 16 pages of
the file from the 64 KiB boundary below the one asked for, or from the mapping's start), so a function run once,
anywhere, costs up to 64 KiB of resident set. With the text in source order, an ordinary program's calls reached
every window of libosmem-malloc.so's code and its read-only segment: 132 KiB of the library resident (all 21 text
pages, all 6 of the segment that held the constants and the unwind tables), most of it code that only errors,
tracing, statistics and strict mode run, and crti's _fini at the text's far end mapped the last window at every
exit. The Makefile now gathers the functions programs run (src/hot.list) at the start of the text and moves the
read-only data to the first segment (see the Makefile and src/hot.ld).

  - footprint/hot_list_holds_what_programs_run: tests/footprint_prog (pairs, calloc, realloc growth, medium and
    large blocks, the aligned family, a thread's remote frees and exit) under callgrind runs no function of the
    library that src/hot.list leaves out, and nothing unnamed (PLT stubs, crtbeginS) outside the first 64 KiB of
    the text segment (else: run tools/hot-list);
  - footprint/hot_text_before_cold_text: in the built library every listed function lies before every other one
    in .text, all of them within 64 KiB of the text segment's start, the read-only data in a segment that is not
    executable and holds no unwind table, and DT_FINI is osm_dt_fini;
  - footprint/cold_text_not_mapped: footprint_prog, run with the library preloaded (a copy written 4 KiB at a
    time, so that no large page-cache folio maps more than fault-around does), finds no page of its text mapped
    past the first fault-around window (or past the window after a 2 MiB boundary that cut the first one short),
    and none of the unwind tables' segment;
  - footprint/threads_first_tick_maps_no_cold_text: the same with footprint_prog --threaded, a short program with
    threads (main holds a block while a second thread's small requests reach the idle decay's first pass). That pass
    called steal_idle (cold: it only took each thread's counts there), and every short threaded program of the
    bench mapped the text's second window: 56 KiB more of larson-1's 2.8 MiB, prodcon's and falseshare's (until
    session 65);
  - footprint/writable_segments_small: the library's writable LOAD segments (data, .bss, .lbss) span less than
    1 MiB of memory. A conservative garbage collector (Boehm's libgc: guile, w3m, inkscape) scans every writable
    segment of every library for roots at each collection, and mlockall locks them: with the 24 MiB first chunk
    of the index's slots and the 4 MiB segment map there (until session 55), a program on libgc had 31 MB of
    roots where glibc's has 0.3 MB, and collected 65 times slower (a soak of real programs found it).

  - footprint/idle_tables_untouched: footprint_prog --small (one thread's small requests, past the idle decay's
    first pass) touches no page that lies inside one of the library's zero-initialised tables of 4 KiB or more,
    not even by a read (a read of a never-written page maps the kernel's zero page, at the price of a page fault).
    The transfer cache's decay read each size class's count, one in each page of its 16 KiB table, at every
    process's first tick: 5 page faults for a cache no request had used (until session 56).

Plain build only (the sanitised builds run --core-only). Valgrind missing is a failure: tests/setup.sh installs
it. Prints `PASS footprint/<name>` or `FAIL footprint/<name>: <why>`."""
import argparse, importlib.machinery, importlib.util, os, re, shutil, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PAGE = 4096


def load_hot_list_tool():
    path = os.path.join(ROOT, "tools", "hot-list")
    loader = importlib.machinery.SourceFileLoader("hot_list", path)
    spec = importlib.util.spec_from_loader("hot_list", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def hot_names():
    names = set()
    for line in open(os.path.join(ROOT, "src", "hot.list")):
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line.split()[0])
    return names


def text_functions(lib):
    """{symbol: (address, size)} of the functions in the library's .text."""
    out = subprocess.run(["nm", "-S", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    funcs = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTwW":
            funcs[f[3]] = (int(f[0], 16), int(f[1], 16))
    return funcs


def sections(lib):
    out = subprocess.run(["readelf", "-SW", lib], capture_output=True, text=True, check=True).stdout
    secs = {}
    for m in re.finditer(r"\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", out):
        secs[m.group(1)] = (int(m.group(2), 16), int(m.group(4), 16))
    return secs


def segments(lib):
    """[(vaddr, offset, filesz, flags)] of the LOAD segments, and the vaddr of PT_GNU_EH_FRAME."""
    out = subprocess.run(["readelf", "-lW", lib], capture_output=True, text=True, check=True).stdout
    loads, eh = [], None
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            loads.append((int(f[2], 16), int(f[1], 16), int(f[4], 16), " ".join(f[6:-1])))
        elif f and f[0] == "GNU_EH_FRAME":
            eh = int(f[2], 16)
    return loads, eh


WRITABLE_MAX = 1 << 20


def check_writable(lay_lib):
    out = subprocess.run(["readelf", "-lW", lay_lib], capture_output=True, text=True, check=True).stdout
    spans = []
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD" and "W" in "".join(f[6:-1]):
            spans.append(int(f[5], 16))  # MemSiz
    total = sum(spans)
    if not spans:
        return False, "no writable LOAD segment found in %s (readelf -lW)" % lay_lib
    return total < WRITABLE_MAX, ("%d writable LOAD segment(s), %d KiB of memory (want under %d KiB: a "
                                  "conservative collector scans them all at every collection)"
                                  % (len(spans), total >> 10, WRITABLE_MAX >> 10))


def fault_around_bytes():
    try:
        return int(open("/sys/kernel/debug/fault_around_bytes").read())
    except (OSError, ValueError):
        return 65536  # the kernel's default since 3.15


class Layout:
    def __init__(self, lib):
        self.lib = lib
        self.funcs = text_functions(lib)
        self.secs = sections(lib)
        self.loads, self.eh = segments(lib)
        self.hot = hot_names()
        text_lo, text_sz = self.secs.get(".text", (0, 0))
        in_text = {n: v for n, v in self.funcs.items() if text_lo <= v[0] < text_lo + text_sz}
        self.hot_in = {n: v for n, v in in_text.items() if n in self.hot}
        # a name at the address of a listed function is another name of it (override.c's __libc_malloc: an alias)
        hot_at = {v[0] for v in self.hot_in.values()}
        self.cold_in = {n: v for n, v in in_text.items() if n not in self.hot and v[0] not in hot_at}
        self.hot_end = max((a + s for a, s in self.hot_in.values()), default=text_lo)
        self.exec_seg = next((l for l in self.loads if "E" in l[3]), None)


def check_hot_list(build, tool, lay):
    lib = os.path.join(build, "libosmem-malloc.so")
    prog = os.path.join(build, "tests", "footprint_prog")
    if not shutil.which("valgrind"):
        return False, "valgrind is not installed (tests/setup.sh installs it)"
    if not lay.exec_seg:
        return False, "no executable LOAD segment in the library"
    try:
        ran = tool.executed(os.path.abspath(lib), [prog])
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return False, "callgrind could not run footprint_prog: %s" % e
    syms = tool.symbols(lib)
    names = {tool.section_name(n, syms) for n in ran} - {None}
    if len(names) < 40:
        return False, "callgrind saw only %d functions of the library run (%s): the preload did not take" % (
            len(names), sorted(names)[:10])
    missing = sorted(names - hot_names())
    # what callgrind could not name (outside .text: PLT stubs, crtbeginS's functions): by address
    window_end = lay.exec_seg[0] + fault_around_bytes()
    far = sorted(n for n in ran if n.startswith("0x") and not int(n, 16) < window_end)
    if missing or far:
        return False, ("footprint_prog ran %d functions that src/hot.list leaves out, in the cold text: %s (run "
                       "tools/hot-list); and %d unnamed ones past the text's first %d KiB: %s" % (
                           len(missing), ", ".join(missing), len(far), fault_around_bytes() // 1024,
                           ", ".join(far)))
    return True, "footprint_prog ran %d functions of the library, all listed in src/hot.list" % len(names)


def check_layout(lay):
    if not lay.hot_in:
        return False, "no function of src/hot.list in the library's .text (not built with the Makefile's renames?)"
    first_cold = min(a for a, _ in lay.cold_in.values()) if lay.cold_in else None
    late = sorted(n for n, (a, _) in lay.hot_in.items() if first_cold is not None and a > first_cold)
    if late:
        return False, "listed functions placed after cold ones in .text: %s" % ", ".join(late[:10])
    if not lay.exec_seg:
        return False, "no executable LOAD segment"
    ro = lay.secs.get(".osm_rodata")
    ro_seg = next((l for l in lay.loads if ro and l[0] <= ro[0] < l[0] + l[2]), None)
    eh_seg = next((l for l in lay.loads if lay.eh is not None and l[0] <= lay.eh < l[0] + l[2]), None)
    if not ro or lay.secs.get(".rodata") or not ro_seg or "E" in ro_seg[3] or ro_seg is eh_seg:
        return False, ("the read-only data is not in .osm_rodata in a read-only segment of its own without the "
                       "unwind tables (src/hot.ld not applied?): %s" % (ro_seg,))
    seg_lo = lay.exec_seg[0]
    window = fault_around_bytes()
    span = lay.hot_end - seg_lo
    if span > window:
        return False, ("the hot part ends %.1f KiB past the text segment's start, beyond one %d KiB window: "
                       "a program maps more than one" % (span / 1024, window // 1024))
    dyn = subprocess.run(["readelf", "-dW", lay.lib], capture_output=True, text=True, check=True).stdout
    m = re.search(r"\(FINI\)\s+0x([0-9a-f]+)", dyn)
    fini = lay.funcs.get("osm_dt_fini", (None,))[0]
    if m and int(m.group(1), 16) != fini:
        return False, "DT_FINI is 0x%s, not osm_dt_fini (0x%x): crti's _fini maps the text's last window at exit" % (
            m.group(1), fini or 0)
    return True, ("%d listed functions within %.1f KiB of the text segment's start, %d others after them; "
                  "read-only data %.1f KiB in the first, read-only segment; DT_FINI osm_dt_fini" % (
                      len(lay.hot_in), span / 1024, len(lay.cold_in), ro[1] / 1024))


def copy_in_pages(src, dst):
    """dst written 4 KiB at a time: small page-cache folios, so that a fault maps what fault-around maps."""
    with open(src, "rb") as f, open(dst, "wb") as g:
        while True:
            b = f.read(PAGE)
            if not b:
                break
            g.write(b)
            g.flush()
    os.chmod(dst, 0o755)


def check_mapped(build, lay, mode=None):
    lib = os.path.join(build, "libosmem-malloc.so")
    prog = os.path.join(build, "tests", "footprint_prog")
    work = os.path.join(build, "tests", "footprint")
    os.makedirs(work, exist_ok=True)
    copy = os.path.join(work, "libosmem-malloc.so")
    copy_in_pages(lib, copy)
    env = dict(os.environ, LD_PRELOAD=copy)
    p = subprocess.run([prog] + ([mode] if mode else []) + ["--pages"], env=env, capture_output=True, text=True,
                       timeout=300)
    if p.returncode != 0 or "footprint_prog ok" not in p.stdout:
        return False, "footprint_prog failed (exit %s): %s" % (p.returncode, (p.stdout + p.stderr)[-400:])
    maps = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if f and f[0] == "map":
            maps[int(f[2], 16)] = (f[1], int(f[3]), int(f[4]), int(f[5]), int(f[6]), int(f[7], 16))
    seg_off = lay.exec_seg[1]
    text = maps.get(seg_off & ~(PAGE - 1))
    if not text or "x" not in text[0]:
        return False, "no executable mapping of the library at offset 0x%x in %s" % (seg_off, sorted(maps))
    _, pages, present, first, last, start = text
    # the first fault (ld.so calls DT_INIT, _init, at the segment's start) maps one window from the mapping's start;
    # a 2 MiB boundary (the end of a page table) inside it cuts it short, and a fault past the boundary maps the
    # window from there
    fa, pmd = fault_around_bytes(), 2 << 20
    cut = (start // pmd + 1) * pmd
    allowed = (cut + fa - start) // PAGE if cut < start + fa else fa // PAGE
    problems = []
    if last >= allowed:
        problems.append("text pages mapped up to page %d of %d (%d present): past the %d pages that the first "
                        "fault-around window maps from the text's start, so the program ran (or touched) cold "
                        "text" % (last, pages, present, allowed))
    eh_seg = next((l for l in lay.loads if lay.eh is not None and l[0] <= lay.eh < l[0] + l[2]), None)
    eh_map = maps.get(eh_seg[1] & ~(PAGE - 1)) if eh_seg else None
    if eh_seg and eh_seg is lay.exec_seg:
        problems.append("the unwind tables share the text segment")
    elif eh_map and eh_map[2]:
        problems.append("%d of the %d pages of the unwind tables' segment mapped (the read-only data still "
                        "lives there?)" % (eh_map[2], eh_map[1]))
    if problems:
        return False, "; ".join(problems)
    total = sum(v[2] for v in maps.values())
    return True, "%d of %d text pages mapped (window %d), unwind tables 0 of %d, %d KiB of the library in all" % (
        present, pages, allowed, eh_map[1] if eh_map else 0, total * 4)


def bss_tables(lib):
    """{name: (vaddr, size)} of the library's zero-initialised objects of 4 KiB or more (.bss, .lbss)."""
    out = subprocess.run(["nm", "-S", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    tables = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "bB" and int(f[1], 16) >= PAGE:
            tables[f[3]] = (int(f[0], 16), int(f[1], 16))
    return tables


def check_idle_tables(build, lib):
    prog = os.path.join(build, "tests", "footprint_prog")
    p = subprocess.run([prog, "--small", "--pages"], env=dict(os.environ, LD_PRELOAD=lib), capture_output=True,
                       text=True, timeout=300)
    if p.returncode != 0 or "footprint_prog ok" not in p.stdout:
        return False, "footprint_prog --small failed (exit %s): %s" % (p.returncode, (p.stdout + p.stderr)[-400:])
    base = bss = None
    for line in p.stdout.splitlines():
        f = line.split()
        if f and f[0] == "map" and int(f[2], 16) == 0:
            base = int(f[7], 16)
        elif f and f[0] == "bss":
            bss = (int(f[2], 16), [] if f[3] == "-" else [int(i) for i in f[3].split(",")])
    if base is None or bss is None:
        return False, "footprint_prog printed no mapping of the library at offset 0, or no bss line: %s" % p.stdout
    tables = bss_tables(lib)
    touched = []
    for i in bss[1]:
        lo = bss[0] - base + i * PAGE
        for name, (a, n) in tables.items():
            if a <= lo and lo + PAGE <= a + n:
                touched.append("%s (page %d of %d)" % (name, (lo - a) // PAGE + 1, (n + PAGE - 1) // PAGE))
    if touched:
        return False, ("a program of small requests in one thread made %d page(s) of the library's tables present "
                       "(a read maps the kernel's zero page: a page fault each, in every process): %s"
                       % (len(touched), ", ".join(sorted(touched))))
    return True, "none of the %d tables of 4 KiB or more touched (%s); %d page(s) of the mapping present" % (
        len(tables), " ".join(sorted(tables)), len(bss[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    lib = os.path.join(a.build, "libosmem-malloc.so")
    if not os.path.exists(lib) or not os.path.exists(os.path.join(a.build, "tests", "footprint_prog")):
        print("FAIL footprint/build: %s or tests/footprint_prog is not built" % lib)
        return 1
    tool = load_hot_list_tool()
    lay = Layout(lib)
    failed = 0
    for name, fn in (("hot_list_holds_what_programs_run", lambda: check_hot_list(a.build, tool, lay)),
                     ("hot_text_before_cold_text", lambda: check_layout(lay)),
                     ("cold_text_not_mapped", lambda: check_mapped(a.build, lay)),
                     ("threads_first_tick_maps_no_cold_text", lambda: check_mapped(a.build, lay, "--threaded")),
                     ("writable_segments_small", lambda: check_writable(lib)),
                     ("idle_tables_untouched", lambda: check_idle_tables(a.build, lib))):
        ok, why = fn()
        print("%s footprint/%s: %s" % ("PASS" if ok else "FAIL", name, why))
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
