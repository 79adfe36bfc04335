#!/usr/bin/env python3
"""tools/osmem-heapmap draws what the heap really was.

- A known heap (docs/CLASSIC.md's numbers) built with the classic API: the trace's replay and os_heap_dump agree with
  the layout worked out by hand; the page, loaded in headless Chromium (file:// only), shows it: the DOM after
  its scripts ran (no error, the final heap's block count, one SVG rectangle per final block with its offset,
  size and status; what the tooltip says at known points), and the screenshot has the expected colours where
  the page's own geometry puts each block (decoded by the small PNG reader below);
- the matplotlib PNG of the final heap exists, decodes and is not trivial;
- random drop-in programs (default and classic profiles: trims, madvise, carves, mremap, aligned mappings): the
  replay's final heap equals os_heap_dump's, block for block;
- a big trace (sqlite3 on osmem, 100 000s of events) renders in less than 60 s and its page loads without errors;
- the default profile's front layer, traced (docs/TRACE.md): the trace of a known sequence, line for line; a program
  with a hand-computed occupancy (100 mallocs of 48 bytes, every third freed: 66 of 1365 slots in use in one page)
  shows exactly that in the replay's data, in the page's DOM (a slab-page rect, the tooltip) and in its pixels, and
  os_stats agrees (cache hits > 0: the front is on while tracing); a thread that exits with live slots abandons
  its page, other threads' frees of them are remote frees, and a thread adopts it; sqlite3's page has slab pages;
- a heap gone on past a walled break, or after another user's sbrk (its block's `segment` line), is drawn without
  warnings, and a refused alignment brk there records no segment (mallinfo2's arena unchanged);
- a trace whose last line is cut short (a program killed while it traced) is drawn without that line, said once; the
  same text in the middle of a trace is refused with a message.

The pages and screenshots stay in BUILD/heapmap-test/ to be looked at.
Prints PASS/FAIL lines and 'N passed, N failed'; exits 1 when something failed."""
import argparse
import base64
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from array import array

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "osmem-heapmap")
META = 32
results = []


def check(name, ok, why=""):
    results.append(bool(ok))
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}", flush=True)
    return ok


def run(cmd, timeout=120, env=None, **kw):
    t0 = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                           env=env, **kw)
        return p.returncode, p.stdout, p.stderr, time.time() - t0
    except subprocess.TimeoutExpired:
        return "timeout", "", "", time.time() - t0


# ---------------------------------------------------------------- a small PNG reader (8-bit RGB/RGBA)
def png_decode(path):
    """(width, height, bytes per pixel, rows): 8-bit RGB or RGBA, not interlaced (what Chromium and
    matplotlib write)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, hdr = 8, [], None
    while pos + 8 <= len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if zlib.crc32(typ + body) != struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]:
            raise ValueError(f"bad CRC in chunk {typ!r}")
        pos += 12 + n
        if typ == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat.append(body)
        elif typ == b"IEND":
            break
    if hdr is None:
        raise ValueError("no IHDR")
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {ctype}, interlace {interlace}")
    bpp = 3 if ctype == 2 else 4
    stride = w * bpp
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != h * (stride + 1):
        raise ValueError("image data has the wrong length")
    rows, prev = [], bytes(stride)
    half = (stride + 1) // 2
    even = int.from_bytes(b"\x00\xff" * half, "big") >> (8 * (2 * half - stride))
    odd = even << 8
    full = (1 << (8 * stride)) - 1
    for y in range(h):
        base = y * (stride + 1)
        ft, line = raw[base], raw[base + 1:base + 1 + stride]
        if ft == 0:
            cur = line
        elif ft == 2:  # Up: byte-wise sum, odd and even bytes apart so that carries fall away
            a, b = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            s = (((a & even) + (b & even)) & even) | (((a & odd) + (b & odd)) & odd)
            cur = (s & full).to_bytes(stride, "big")
        else:
            c = bytearray(line)
            if ft == 1:
                for i in range(bpp, stride):
                    c[i] = (c[i] + c[i - bpp]) & 255
            elif ft == 3:
                for i in range(stride):
                    c[i] = (c[i] + (((c[i - bpp] if i >= bpp else 0) + prev[i]) >> 1)) & 255
            elif ft == 4:
                for i in range(stride):
                    if i >= bpp:
                        a, cc = c[i - bpp], prev[i - bpp]
                    else:
                        a = cc = 0
                    b = prev[i]
                    p = a + b - cc
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                    c[i] = (c[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else cc)) & 255
            else:
                raise ValueError(f"bad filter type {ft} in row {y}")
            cur = bytes(c)
        rows.append(cur)
        prev = cur
    return w, h, bpp, rows


def rgb_at(img, x, y):
    w, h, bpp, rows = img
    x, y = int(x), int(y)
    if not (0 <= x < w and 0 <= y < h):
        return None
    r = rows[y]
    return tuple(r[x * bpp:x * bpp + 3])


def hexrgb(s):
    return tuple(int(s[i:i + 2], 16) for i in (1, 3, 5))


def near(c, want, tol=12):
    return c is not None and all(abs(a - b) <= tol for a, b in zip(c, want))


def colours(img, step=2):
    w, h, bpp, rows = img
    seen = {}
    for y in range(0, h, step):
        r = rows[y]
        for x in range(0, w, step):
            k = r[x * bpp:x * bpp + 3]
            seen[k] = seen.get(k, 0) + 1
    return seen


# ---------------------------------------------------------------- Chromium, headless, file:// only
def find_chromium():
    for c in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(c)
        if p:
            return p
    return None


def start_browser(chromium, url, shot, tmp):
    """Starts Chromium on url; it writes the DOM after the scripts ran to stdout and a screenshot to shot."""
    prof = tempfile.mkdtemp(prefix="chrome-", dir=tmp)
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--no-default-browser-check", "--hide-scrollbars",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--force-device-scale-factor=1",
           f"--user-data-dir={prof}", "--window-size=1200,800", f"--screenshot={shot}", "--dump-dom", url]
    out = open(shot + ".dom.html", "w")
    err = open(shot + ".log", "w")
    return subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True), out, err, time.time()


def finish_browser(job, timeout):
    p, out, err, t0 = job
    try:
        p.wait(timeout=max(1, timeout - (time.time() - t0)))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.wait()
        out.close(), err.close()
        return None, time.time() - t0
    out.close(), err.close()
    with open(out.name) as f:
        return f.read(), time.time() - t0


def strip_scripts(dom):
    return re.sub(r"<script\b.*?</script>", "", dom, flags=re.S)


def attrs(s):
    return {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', s)}


def element(dom, ident):
    m = re.search(r'<(\w+) id="%s"([^>]*)>(.*?)</\1>' % re.escape(ident), dom, re.S)
    return (attrs(m.group(2)), m.group(3)) if m else (None, None)


def page_state(dom):
    """What the tests read from a dumped page."""
    body = strip_scripts(dom)
    st = {"dom": body}
    st["errors"] = element(body, "errors")[1]
    st["summary"] = element(body, "summary")[0]
    g = element(body, "geom")[1]
    st["geom"] = json.loads(html.unescape(g)) if g else None
    m = re.search(r"<title>(.*?)</title>", body, re.S)
    st["title"] = html.unescape(m.group(1)) if m else None
    m = re.search(r"<body([^>]*)>", body)
    st["body"] = attrs(m.group(1)) if m else {}
    st["rects"] = [attrs(a) for a in re.findall(r'<rect (class="blk[^"]*"[^>]*)>', body)]
    st["allrects"] = len(re.findall(r"<rect\b", body))
    st["probes"] = {a.get("data-at"): a for a in map(attrs, re.findall(r'<div (class="probe"[^>]*)>', body))}
    m = re.search(r'<div class="hover" data-visible="(\d)">(.*?)</div></div>', body, re.S)
    st["hover"] = (m.group(1), html.unescape(re.sub(r"<[^>]+>", " ", m.group(2)))) if m else None
    return st


# ---------------------------------------------------------------- the page's embedded data
def embedded(path):
    """The history the page carries: its meta, and the block states that last to the end."""
    with open(path) as f:
        text = f.read()
    m = re.search(r'<script type="application/json" id="heapdata">(.*?)</script>', text, re.S)
    d = json.loads(m.group(1).replace("<\\/", "</"))

    def arr(key, code):
        a = array(code)
        a.frombytes(base64.b64decode(d["seg"][key]))
        if sys.byteorder != "little":
            a.byteswap()
        return a
    wide = "d" if d["meta"]["wide"] else "I"
    t1, off, size, st = arr("t1", "I"), arr("off", wide), arr("size", wide), arr("st", "B")
    end = d["meta"]["tEnd"]
    heap = sorted((int(off[i]), int(size[i]), ("free", "alloc", "mapped")[st[i]])
                  for i in range(len(t1)) if t1[i] == end)
    mapped = sorted((int(m[4], 16), m[3]) for m in d["mapped"] if m[1] == end and not (len(m) > 5 and m[5]))
    return d["meta"], heap, mapped, text


def embedded_front(path):
    """The page's front states: dicts (t0, t1, voff, addr, slot, slots, used, owner), and its segments."""
    with open(path) as f:
        text = f.read()
    m = re.search(r'<script type="application/json" id="heapdata">(.*?)</script>', text, re.S)
    d = json.loads(m.group(1).replace("<\\/", "</"))
    fr = d.get("front") or {"n": 0}
    cols = {}
    for key, code in (("t0", "I"), ("t1", "I"), ("voff", "d" if fr.get("wide") else "I"), ("page", "I"),
                      ("slot", "H"), ("slots", "H"), ("used", "H"), ("owner", "I")):
        a = array(code)
        if fr.get("n"):
            a.frombytes(base64.b64decode(fr[key]))
            if sys.byteorder != "little":
                a.byteswap()
        cols[key] = a
    pages = [int(a, 16) for a in fr.get("pages", [])]
    states = [dict({k: int(cols[k][i]) for k in cols}, addr=pages[cols["page"][i]]) for i in range(fr.get("n", 0))]
    return d["meta"], states, d.get("segments") or []


def from_dump(path):
    with open(path) as f:
        d = json.load(f)
    heap = sorted((b["offset"], b["size"], b["status"]) for b in d["blocks"] if b["where"] == "heap")
    mapped = sorted((int(b["address"], 16), b["size"]) for b in d["blocks"] if b["where"] == "mapped")
    return heap, mapped, d


def self_contained(text):
    """Nothing in the page may load anything: no src/href to a URL, no url() but #fragments, no fetch."""
    bad = []
    for pat, what in ((r'\b(?:src|href)\s*=\s*["\']?(?!#|data:)[^"\'\s>]', "a src/href"),
                      (r"url\(\s*['\"]?(?!#)", "a CSS url()"), (r"@import", "@import"),
                      (r"\bfetch\s*\(", "fetch()"), (r"XMLHttpRequest", "XMLHttpRequest"),
                      (r"\bWebSocket\b", "WebSocket"), (r"EventSource", "EventSource"),
                      (r"importScripts|navigator\.sendBeacon", "a beacon or worker import"),
                      (r"<link\b", "a <link>"), (r"<iframe\b|<object\b|<embed\b", "an embedded document")):
        if re.search(pat, text):
            bad.append(what)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text)) - {"http://www.w3.org/2000/svg"}
    if urls:
        bad.append("URLs " + ", ".join(sorted(urls)[:3]))
    return bad


# ---------------------------------------------------------------- programs
KNOWN_C = r"""
#include <fcntl.h>
#include <unistd.h>
#include "osmem.h"
int main(int argc, char **argv)
{
	void *a = os_malloc(1986), *b = os_malloc(100), *c = os_malloc(300);
	os_free(b);
	void *d = os_malloc(200000);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || os_heap_dump(fd, OS_DUMP_JSON) != 0)
		return 1;
	close(fd);
	(void)a; (void)c; (void)d;
	return argc == 2 ? 0 : 2;
}
"""

# docs/CLASSIC.md: preallocation of 131072 (one free block of 131040); a = 1992 at H+0x0; the rest after it at
# H+0x7e8; b = 104 at H+0x7e8, the rest at H+0x870; c = 304 at H+0x870, the rest at H+0x9c0 of
# 131040 - (1992 + 32) - (104 + 32) - (304 + 32) = 128544; b is only marked free; d maps 200000 + 32.
KNOWN_HEAP = [(0x0, 1992, "alloc"), (0x7e8, 104, "free"), (0x870, 304, "alloc"), (0x9c0, 128544, "free")]
KNOWN_MAPPED_SIZE = 200000

MIX_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "osmem.h"
static unsigned long long rng = 88172645463325252ULL;
static unsigned long long rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
static size_t pick(void)
{
	unsigned r = rnd() % 100;
	if (r < 60) return 1 + rnd() % 256;
	if (r < 90) return 256 + rnd() % 8192;
	if (r < 97) return 8192 + rnd() % 100000;
	return 120000 + rnd() % 400000;
}
int main(int argc, char **argv)
{
	enum { SLOTS = 300, OPS = 6000 };
	static void *p[SLOTS];
	if (argc != 2)
		return 2;
	for (int i = 0; i < OPS; i++) {
		int k = rnd() % SLOTS;
		unsigned op = rnd() % 100;
		if (!p[k]) {
			if (op < 70) p[k] = malloc(pick());
			else if (op < 85) p[k] = calloc(1 + rnd() % 8, pick() / 8 + 1);
			else p[k] = memalign(64 << (rnd() % 4), pick());
			if (p[k]) memset(p[k], 1, 1);
		} else if (op < 55) {
			free(p[k]);
			p[k] = NULL;
		} else {
			void *q = realloc(p[k], pick());
			if (q) p[k] = q;
		}
		if (i % 1500 == 1499)
			malloc_trim(0);
	}
	for (int k = 0; k < SLOTS; k += 2) {
		free(p[k]);
		p[k] = NULL;
	}
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || os_heap_dump(fd, OS_DUMP_JSON) != 0)
		return 1;
	close(fd);
	return 0;
}
"""

# The front layer traced (default profile of libosmem-malloc.so), each program in one thread unless said.
# A known sequence: every kind of front request line, a page that empties (page_empty), core requests between.
FRONT_KNOWN_C = r"""
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "osmem.h"
int main(void)
{
	void *a = malloc(40), *b = malloc(48);  /* class 48: a new segment, its page 1 */
	void *c = calloc(2, 100);               /* class 224: page 2 (taken with page 1, in one batch of 4) */
	free(a);
	void *b2 = realloc(b, 40);              /* the same class: in place */
	void *b3 = realloc(b2, 100);            /* class 112 (page 3), then the old slot is freed */
	void *d = memalign(64, 64);             /* class 64 (page 4) */
	void *e = malloc(5000);                 /* the core: the heap's first brk */
	free(d);
	free(e);
	void *f = realloc(b3, 3000);            /* moves to the core */
	free(f);
	void *big[33];
	for (int i = 0; i < 33; i++)            /* class 2048: 32 slots fill page 5, the 33rd takes page 6 */
		big[i] = malloc(2000);
	for (int i = 0; i < 33; i++)            /* page 5 empties (not current: page_empty), page 6 stays */
		free(big[i]);
	free(c);
	struct os_stats st;
	os_stats(&st);
	char buf[160];
	int n = snprintf(buf, sizeof buf, "stats cache_hits=%zu front_in_use=%zu\n", st.cache_hits, st.front_in_use);
	return write(1, buf, (size_t)n) == n ? 0 : 1;
}
"""


def front_known_expected():
    """FRONT_KNOWN_C's trace, worked out from src/front.c: S1 is the segment; its pages are S1+0x10000 (page 1),
    S1+0x20000, ... taken in order from the pool; slots of class C at page + i * C; a page holds 65536 / C slots."""
    L = ["osmem-trace 1 profile=default align=16",
         "slot 48 t=1", "  seg_map S1 4194304", "  page S1+0x10000 48 1365",
         # a batch of BATCH = 4 pages per lock: the first for the class, three kept empty for the next classes
         "  page_empty S1+0x20000", "  page_empty S1+0x30000", "  page_empty S1+0x40000", "= S1+0x10000",
         "slot 48 t=1", "= S1+0x10030",
         "slot 224 t=1", "  page S1+0x20000 224 292", "= S1+0x20000",
         "free S1+0x10000 t=1",
         "realloc S1+0x10030 40 t=1", "= S1+0x10030",
         "slot 112 t=1", "  page S1+0x30000 112 585", "= S1+0x30000", "free S1+0x10030 t=1",
         "memalign 64 64 t=1", "  page S1+0x40000 64 1024", "= S1+0x40000",
         "malloc 5000 t=1", "  brk +131072", "  prealloc H+0x0 131040", "  fit H+0x0 131040",
         "  split H+0x0 5008 H+0x13b0 126000", "= H+0x20",
         "free S1+0x40000 t=1",
         "free H+0x20 t=1", "  free H+0x0 5008", "  coalesce H+0x0 H+0x13b0 131040",
         "malloc 3000 t=1", "  fit H+0x0 131040", "  split H+0x0 3008 H+0xbe0 128000", "= H+0x20",
         "free S1+0x30000 t=1",
         "free H+0x20 t=1", "  free H+0x0 3008", "  coalesce H+0x0 H+0xbe0 131040"]
    for i in range(33):
        L.append("slot 2048 t=1")
        if i in (0, 32):
            L.append(f"  page S1+0x{0x50000 + (i // 32) * 0x10000:x} 2048 32")
        if i == 0:  # pages 2-4 are used: the next batch, page 5 and three empty ones
            L += ["  page_empty S1+0x60000", "  page_empty S1+0x70000", "  page_empty S1+0x80000"]
        L.append(f"= S1+0x{0x50000 + i * 0x800:x}")
    for i in range(33):
        L.append(f"free S1+0x{0x50000 + i * 0x800:x} t=1")
        if i == 31:
            L.append("  page_empty S1+0x50000")
    L.append("free S1+0x20000 t=1")
    return "\n".join(L) + "\n"


def normalise_front(text):
    """Segments have kernel-chosen addresses: each becomes Sk (k: the order of its seg_map), and every absolute
    address inside it Sk+0x<offset>."""
    segs = [int(a, 16) for a in re.findall(r"^  seg_map (0x[0-9a-f]+) ", text, re.M)]

    def sub(m):
        v = int(m.group(0), 16)
        for k, base in enumerate(segs):
            if base <= v < base + (4 << 20):
                return f"S{k + 1}" + (f"+0x{v - base:x}" if v > base else "")
        return m.group(0)
    return re.sub(r"(?<![+\w])0x[0-9a-f]{9,}\b", sub, text)


# Occupancy worked out by hand: 100 mallocs of 48 bytes (class 48: 65536 / 48 = 1365 slots in a page), then every
# third is freed (34 of them): 66 slots in use, all in one page. Prints the page and os_stats' view.
FRONT_OCC_C = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "osmem.h"
int main(void)
{
	static void *p[100];
	for (int i = 0; i < 100; i++)
		p[i] = malloc(48);
	for (int i = 0; i < 100; i += 3)
		free(p[i]);
	struct os_stats st;
	os_stats(&st);
	char buf[200];
	int n = snprintf(buf, sizeof buf, "page=0x%lx last=0x%lx hits=%zu in_use=%zu\n",
			 (unsigned long)((uintptr_t)p[1] & ~(uintptr_t)0xffff), (unsigned long)(uintptr_t)p[99],
			 st.cache_hits, st.front_in_use);
	return write(1, buf, (size_t)n) == n ? 0 : 1;
}
"""
FRONT_OCC_USED, FRONT_OCC_SLOTS = 66, 1365

# A thread that exits with live slots: 100 mallocs of 32 bytes (class 32: 2048 slots), 50 freed, then it exits:
# its page is abandoned with 50 in use. main frees 10 more of them (remote frees: 40 in use), then allocates
# enough slots of class 32 (more than the pages a heap can hold empty) to reach the pages under the front lock,
# where it adopts the abandoned page.
FRONT_THREADS_C = r"""
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void *keep[100];
static void *work(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100; i++)
		keep[i] = malloc(32);
	for (int i = 0; i < 50; i++)
		free(keep[i]);
	return NULL;
}
int main(void)
{
	pthread_t t;
	if (!malloc(16)) /* main's first request: main is thread 1 in the trace */
		return 1;
	if (pthread_create(&t, NULL, work, NULL) || pthread_join(t, NULL))
		return 1;
	for (int i = 50; i < 60; i++)
		free(keep[i]);
	for (int i = 0; i < 6 * 2048; i++)
		if (!malloc(32))
			return 1;
	char buf[64];
	int n = snprintf(buf, sizeof buf, "page=0x%lx\n", (unsigned long)((uintptr_t)keep[60] & ~(uintptr_t)0xffff));
	return write(1, buf, (size_t)n) == n ? 0 : 1;
}
"""

BIG_SQL = """CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
INSERT INTO t SELECT i, 'name-' || i, printf('%.*c', i % 300, 'x') FROM n;
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(length(note)) FROM t;
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
SELECT count(*) FROM t;
"""

BIG_PY = """d = [{'k': i, 's': str(i) * 7, 'l': list(range(i % 13))} for i in range(3000)]
del d[::2]
print(sum(len(x['s']) for x in d))
"""


def build_drop_in(cc, build, tmp, name, code, extra=()):
    src = os.path.join(tmp, name + ".c")
    with open(src, "w") as f:
        f.write(code)
    exe = os.path.join(tmp, name)
    # -fno-builtin: the compiler must not drop a malloc whose block is never used (the trace is the point)
    rc, _, err, _ = run([cc, "-std=c11", "-O1", "-fno-builtin", "-I", os.path.join(ROOT, "include"), src, "-o", exe,
                         "-L", build, "-losmem-malloc", f"-Wl,-rpath,{build}"] + list(extra))
    return exe if rc == 0 else None, err


def traced_env(trace):
    env = dict(os.environ, OSMEM_TRACE=trace)
    for k in ("LD_PRELOAD", "OSMEM_PROFILE", "OSMEM_FRONT", "OSMEM_TRACE_PID", "OSMEM_STATS"):
        env.pop(k, None)
    return env


KEPT_C = r"""
#include <stdlib.h>
int main(void)
{
	/* 40 MiB: above the dynamic threshold's ceiling, so its mapping is kept at free (the mapping cache) */
	char *p = malloc(40 << 20);
	p[0] = 1;
	free(p);
	char *q = malloc(40 << 20); /* served by the kept mapping */
	q[0] = 2;
	free(q);
	char *r = malloc(44 << 20); /* longer than the kept mapping: it grows (kept_grow) and serves it */
	r[0] = 3;
	free(r);
	return 0;
}
"""


TOP_LAST_C = r"""
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include "osmem.h"
#include "test_util.h"
int main(void)
{
	/* core blocks (above the medium caches' 64 KiB, below the 128 KiB threshold): a hole of three below a guard, and
	 * a free top brought under the hole's size; malloc(70000) fits both, the top being the smaller fit */
	char *part[3], *guard;
	for (int i = 0; i < 3; i++)
		memset(part[i] = malloc(120000), 1, 120000);
	memset(guard = malloc(120000), 1, 120000);
	if (tu_free_top_size() < 70032) {
		char *t1 = malloc(100000), *t2 = malloc(100000);
		free(t1);
		free(t2);
	}
	while (tu_free_top_size() >= 3 * 120000)
		memset(malloc(120000), 2, 120000);
	for (int i = 0; i < 3; i++)
		free(part[i]);
	char *p = malloc(70000);
	return p == part[0] ? 0 : 3;
}
"""


# Two requests of the classic profile, whole; a program killed while it traced ends inside a line (its buffers are
# written 64 KiB at a time, wherever a line ends)
TRUNCATED_HEAD = """osmem-trace 1 profile=classic align=8
malloc 100 t=1
  brk +135168
  prealloc H+0x0 135136
  fit H+0x0 135136
  split H+0x0 104 H+0x88 135000
= H+0x20
malloc 200 t=1
  fit H+0x88 135000
  split H+0x88 200 H+0x170 134768
"""


def truncated_tests(out):
    """A trace whose last line is cut short is drawn, that line dropped with one warning; the same text in the
    middle of a trace is refused with a message (no traceback)."""
    for what, cut in (("inside its result ('= H+0x')", "= H+0x"), ("after its indent ('  ')", "  "),
                      ("where it still reads ('= H+0x1', no newline)", "= H+0x1")):
        trace = os.path.join(out, f"truncated{len(cut)}.trace")
        with open(trace, "w") as f:
            f.write(TRUNCATED_HEAD + cut)
        rc, _, err, _ = heapmap([trace, "-o", trace + ".html"])  # no -q: it hides warnings
        warns = [l for l in err.splitlines() if "warning" in l]
        check(f"truncated: a trace whose last line is cut {what} is drawn, that line dropped with one warning",
              rc == 0 and len(warns) == 1 and "cut short" in warns[0] and os.path.exists(trace + ".html"),
              f"rc={rc}, warnings {warns}; {err.strip()[-300:]}")
        if cut == "= H+0x1":
            continue  # a whole line in the middle: nothing to refuse
        with open(trace, "w") as f:
            f.write(TRUNCATED_HEAD + cut + "\n= H+0xa8\nfree H+0x20 t=1\n  free H+0x0 104\n")
        rc, _, err, _ = heapmap([trace, "-o", trace + ".html"])
        check(f"truncated: the same line cut {what} in the middle of a trace is refused with a message",
              rc == 1 and "Traceback" not in err and ":11: " in err,
              f"rc={rc} (want 1, and the line's number, 11), stderr {err.strip()[-300:]!r}")


def top_last_tests(build, out, tmp, cc):
    """The top as the last resort, seen in the trace and the map: `top_last` names the free top best fit landed on,
    the `fit` line after it the hole below that was taken instead (default profile, one thread)."""
    exe, err = build_drop_in(cc, build, tmp, "top_last", TOP_LAST_C, ["-I", os.path.join(ROOT, "tests")])
    if not check("top_last: the program compiles against libosmem-malloc.so", exe, err.strip()[-400:]):
        return
    trace = os.path.join(out, "top_last.trace")
    rc, _, err, _ = run([exe], env=traced_env(trace))
    lines = open(trace).read().splitlines() if os.path.exists(trace) else []
    pairs = [(a.split(), b.split()) for a, b in zip(lines, lines[1:]) if a.startswith("  top_last ")]
    ok = rc == 0 and len(pairs) >= 1 and all(b[0] == "fit" and b[1] != a[1] and int(b[2]) > int(a[2])
                                             for a, b in pairs)
    check("top_last: the trace names the free top skipped, and the fit after it a larger block below (the hole taken)",
          ok, f"rc={rc} (3: the top was taken) {err.strip()[-200:]}; top_last lines and the next: {pairs[:4]}")
    rc, _, err, _ = heapmap([trace, "-o", os.path.join(out, "top_last.html")])
    check("top_last: osmem-heapmap draws it without replay warnings", rc == 0 and "warning" not in err,
          f"rc={rc} {err.strip()[-300:]}")


ZERO_C = r"""
#include <stdlib.h>
int main(void)
{
	/* malloc(0) and calloc of 0 bytes (addresses of a PROT_NONE reservation, no block) among slots and blocks */
	void *z[8], *s = malloc(40), *h = malloc(5000);
	for (int i = 0; i < 8; i++)
		z[i] = i % 2 ? calloc(0, 8) : malloc(0);
	for (int i = 0; i < 7; i++)
		free(z[i]);
	z[7] = realloc(z[7], 100);
	free(z[7]);
	free(s);
	free(h);
	return 0;
}
"""


def zero_tests(build, out, tmp, cc):
    """The default profile's malloc(0) and calloc of 0 bytes in the trace (they had no line before; the trace's own
    test is observe/trace/zero_byte_requests_recorded): the map reads them, every request counted, and warns of
    nothing (their addresses are no block)."""
    exe, err = build_drop_in(cc, build, tmp, "zero", ZERO_C)
    if not check("zero: the program compiles against libosmem-malloc.so", exe, err.strip()[-400:]):
        return
    trace = os.path.join(out, "zero.trace")
    rc, _, err, _ = run([exe], env=traced_env(trace))
    text = open(trace).read() if os.path.exists(trace) else ""
    requests = len(re.findall(r"^[a-z_]+ .* t=\d+$", text, re.M))
    check("zero: the trace has its malloc(0) and calloc(0, 8) lines and their frees",
          rc == 0 and text.count("\nmalloc 0 t=1\n") == 4 and text.count("\ncalloc 0 8 t=1\n") == 4 and
          len(re.findall(r"^free 0x[0-9a-f]+ t=1$", text, re.M)) >= 8, f"rc={rc} {err.strip()[-200:]} {text[:300]!r}")
    rc, so, err, _ = heapmap([trace, "-o", os.path.join(out, "zero.html")])
    m = re.search(r": (\d+) requests", so)
    check(f"zero: osmem-heapmap draws it without warnings, all {requests} requests counted",
          rc == 0 and "warning" not in err and m and int(m.group(1)) == requests, f"rc={rc} {so.strip()[-200:]} "
          f"{err.strip()[-300:]}")


WALL_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void)
{
	/* the break walled in after the heap's first growth: a page mapped right at the kernel's break (glibc's sbrk(0)
	 * is its own cached value, not osmem's break) */
	char *first = malloc(5000);
	char *brk = (char *)syscall(SYS_brk, 0);
	if (mmap(brk, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != brk)
		return 2;
	static char *v[100];
	for (int i = 0; i < 100; i++)
		memset(v[i] = malloc(6000 + i * 10), 1, 6000 + i * 10);
	for (int i = 0; i < 100; i++)
		free(v[i]);
	free(first);
	return 0;
}
"""


def wall_tests(build, out, tmp, cc):
    """Hazard: with the break walled in, the heap goes on in reserved address space, and its first block there was
    made with no trace line (heap.c, extend_in_place): the map then met a block it had never seen (found by a review
    in session 51)."""
    exe, err = build_drop_in(cc, build, tmp, "wall", WALL_C)
    if not check("wall: the program compiles against libosmem-malloc.so", exe, err.strip()[-400:]):
        return
    trace = os.path.join(out, "wall.trace")
    rc, _, err, _ = run([exe], env=traced_env(trace))
    text = open(trace).read() if os.path.exists(trace) else ""
    rc2, so, err2, _ = heapmap([trace, "-o", os.path.join(out, "wall.html")])
    check("wall: a heap gone on past a walled break is drawn without warnings", rc == 0 and rc2 == 0 and
          "warning" not in err2, f"rc={rc} (2: the wall could not be mapped) heapmap rc={rc2}: {err2.strip()[-300:]}")


FOREIGN_C = r"""
#define _DEFAULT_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "osmem.h"
int main(void)
{
	char *a = malloc(100000); /* the heap's preallocation: the first brk */
	memset(a, 1, 100000);
	size_t before = mallinfo2().arena;
	if (sbrk(1000) == (void *)-1) /* another user of the break, and it leaves the break unaligned */
		return 2;
	/* past the preallocation: the heap appends after the foreign bytes (its second brk, the alignment pad its
	 * third), a new segment */
	char *b = malloc(100000);
	memset(b, 2, 100000);
	char *c = malloc(100000);
	memset(c, 3, 100000);
	printf("arena %zu %zu check %d\n", before, mallinfo2().arena, os_heap_check());
	free(a);
	free(b);
	free(c);
	return 0;
}
"""


def foreign_tests(build, out, tmp, cc):
    """Hazard: a block appended after another sbrk user's bytes starts a new segment of the heap (heap.c,
    heap_append), and its trace had `brk +N` and `append` but no `segment` line: the map drew the gap as a hole in
    the heap ('final heap: gap'), and put the break N past the old end. And when the alignment pad's brk was
    refused, the segment was recorded anyway, with its gap: the heap's bytes (mallinfo2's arena) fell by the
    foreign bytes, although no segment began (both found by a review in session 54)."""
    exe, err = build_drop_in(cc, build, tmp, "foreign", FOREIGN_C)
    if not check("foreign: the program compiles against libosmem-malloc.so", exe, err.strip()[-400:]):
        return
    trace = os.path.join(out, "foreign.trace")
    rc, so, err, _ = run([exe], env=traced_env(trace))
    text = open(trace).read() if os.path.exists(trace) else ""
    segs = re.findall(r"^  segment (H\+0x[0-9a-f]+) (\d+)\n  append (H\+0x[0-9a-f]+) (\d+)$", text, re.M)
    check("foreign: a block appended after another sbrk user's bytes has its `segment` line",
          rc == 0 and len(segs) == 1 and segs[0][:2] == segs[0][2:], f"rc={rc} {so.strip()} {err.strip()[-200:]}; "
          f"segment/append lines: {re.findall(r'^  (?:segment|append|brk) .*', text, re.M)}")
    rc2, so2, err2, _ = heapmap([trace, "-o", os.path.join(out, "foreign.html")])
    check("foreign: osmem-heapmap draws the heap after a foreign sbrk without warnings",
          rc == 0 and rc2 == 0 and "warning" not in err2, f"rc={rc} heapmap rc={rc2}: {err2.strip()[-300:]}")
    env = traced_env(os.path.join(out, "foreign-padfail.trace"))
    env["OSMEM_FAIL"] = "brk:3"
    rc, so, err, _ = run([exe], env=env)
    m = re.search(r"arena (\d+) (\d+) check (-?\d+)", so)
    check("foreign: a refused alignment brk records no segment (the heap's bytes unchanged)",
          rc == 0 and m and m.group(1) == m.group(2) and m.group(3) == "0",
          f"rc={rc} want 'arena X X check 0' (mallinfo2's arena before the foreign sbrk and after; os_heap_check), "
          f"got {so.strip()!r} {err.strip()[-200:]}")


FORK_C = r"""
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void)
{
	void *a[100];
	for (int i = 0; i < 100; i++)
		memset(a[i] = malloc(i % 2 ? 40 : 5000), 0, 40);
	pid_t p = fork();
	if (p == 0) { /* the child frees its parent's slots and blocks, makes its own, and ends with exit */
		for (int i = 0; i < 100; i += 2)
			free(a[i]);
		for (int i = 1; i < 100; i += 4)
			free(a[i]);
		void *b[50];
		for (int i = 0; i < 50; i++)
			b[i] = malloc(i % 2 ? 24 : 9000);
		for (int i = 0; i < 50; i += 3)
			free(b[i]);
		exit(0);
	}
	waitpid(p, NULL, 0);
	for (int i = 0; i < 100; i++)
		free(a[i]);
	return 0;
}
"""


def fork_tests(build, out, tmp, cc):
    """Hazard: a forked child's trace (PATH.PID) starts with its parent's front segments, whose seg_map lines are in
    the parent's trace: the child's first `page` line lay in no segment the trace mapped, its lane offset was -1,
    and osmem-heapmap died packing it (OverflowError: can't convert negative value to unsigned int; the
    observability review of session 56). The segment is now drawn from that line, with a warning."""
    exe, err = build_drop_in(cc, build, tmp, "forkmap", FORK_C)
    if not check("fork: the program compiles against libosmem-malloc.so", exe, err.strip()[-400:]):
        return
    trace = os.path.join(out, "forkmap.trace")
    for f in os.listdir(out):
        if f.startswith("forkmap.trace."):
            os.unlink(os.path.join(out, f))
    rc, so, err, _ = run([exe], env=traced_env(trace))
    kids = [f for f in os.listdir(out) if f.startswith("forkmap.trace.")]
    if not check("fork: the forked child wrote its own trace (PATH.PID)", rc == 0 and len(kids) == 1,
                 f"rc={rc} {err.strip()[-200:]}; files: {kids}"):
        return
    html = os.path.join(out, "forkmap-child.html")
    rc2, so2, err2, _ = heapmap([os.path.join(out, kids[0]), "-o", html])
    check("fork: osmem-heapmap draws a forked child's trace, its inherited segment named in a warning",
          rc2 == 0 and os.path.exists(html) and "drawn from here" in err2,
          f"heapmap rc={rc2}: {(so2 + err2).strip()[-400:]}")


CARVE_C = r"""
#include <stdlib.h>
#include <string.h>
int main(void)
{
	/* 16 MB of medium blocks freed, then 5 MB of 16-byte objects: the front's segments come from the freed heap */
	enum { NM = 3200, NS = 330000 };
	static char *m[NM], *s[NS];
	for (int i = 0; i < NM; i++)
		memset(m[i] = malloc(5000), 1, 5000);
	for (int i = 0; i < NM; i++)
		free(m[i]);
	for (int i = 0; i < NS; i++)
		memset(s[i] = malloc(16), 2, 16);
	for (int i = 0; i < NS; i += 2)
		free(s[i]);
	return 0;
}
"""


def carve_tests(build, out, tmp, cc):
    """Segments carved from the heap (src/front.c, seg_carve): the trace names them by heap offset (seg_map H+...),
    and the map places them, their pages and their slots as the other segments' (replay.py, HEAP_FRONT)."""
    exe, err = build_drop_in(cc, build, tmp, "carve", CARVE_C)
    if not check("carve: the program compiles against libosmem-malloc.so", exe, err.strip()[-400:]):
        return
    trace = os.path.join(out, "carve.trace")
    rc, _, err, _ = run([exe], env=traced_env(trace))
    text = open(trace).read() if os.path.exists(trace) else ""
    carved = re.findall(r"^  seg_map H\+0x[0-9a-f]+ ", text, re.M)
    check("carve: the trace maps a segment at a heap offset (carved from the freed medium blocks)",
          rc == 0 and carved,
          f"rc={rc} {err.strip()[-200:]}; seg_map lines: {re.findall(r'^  seg_map .*', text, re.M)[:4]}")
    page = os.path.join(out, "carve.html")
    rc, _, err, _ = heapmap([trace, "-o", page])
    if not check("carve: osmem-heapmap draws it without replay warnings", rc == 0 and "warning" not in err,
                 f"rc={rc} {err.strip()[-300:]}"):
        return
    _, states, segs = embedded_front(page)
    high = [st for st in states if st["addr"] >= 1 << 50]
    # half of the 330,000 objects stay: the carved segments' pages hold most of them at the end
    check("carve: the map shows the carved segments' pages with their slots in use (half the objects stay)",
          high and max(st["used"] for st in high) > 1000 and len(segs) >= len(carved),
          f"{len(high)} page states in carved segments, most slots in use "
          f"{max((st['used'] for st in high), default=0)}; {len(segs)} segments drawn, {len(carved)} carved")


def kept_tests(build, out, tmp, cc, chromium):
    """The mapping cache in the map: a kept mapping is drawn in the mapped lane, as kept, between its free and its
    reuse."""
    exe, err = build_drop_in(cc, build, tmp, "kept", KEPT_C)
    if not check("kept: the mapping-cache program compiles against libosmem-malloc.so", exe, err.strip()[-400:]):
        return
    trace = os.path.join(out, "kept.trace")
    rc, _, err, _ = run([exe], env=traced_env(trace))
    text = open(trace).read() if os.path.exists(trace) else ""
    check("kept: the trace shows the mapping kept at the first free, reused by the second malloc, grown for the third",
          rc == 0 and len(re.findall(r"^  keep ", text, re.M)) == 3 and len(re.findall(r"^  reuse ", text, re.M)) == 2
          and len(re.findall(r"^  kept_grow ", text, re.M)) == 1,
          f"rc={rc} {err.strip()[-200:]}; decision lines: {[l for l in text.splitlines() if l.startswith('  ')][:8]}")
    page = os.path.join(out, "kept.html")
    rc, _, err, _ = heapmap([trace, "-o", page])
    if not check("kept: osmem-heapmap draws it without replay warnings", rc == 0 and "warning" not in err,
                 f"rc={rc} {err.strip()[-300:]}"):
        return
    with open(page) as f:
        m = re.search(r'<script type="application/json" id="heapdata">(.*?)</script>', f.read(), re.S)
    ms = sorted(json.loads(m.group(1).replace("<\\/", "</"))["mapped"]) if m else []
    kept = [m for m in ms if len(m) > 5 and m[5]]
    live = [m for m in ms if not (len(m) > 5 and m[5])]
    # each block [t0, t1), then kept from its free until the next request takes it (the third grows it), the last
    # kept to the end
    ok = len(live) == 3 and len(kept) == 3 and all(live[i][1] == kept[i][0] for i in range(3)) and \
        all(kept[i][1] == live[i + 1][0] for i in range(2)) and len({m[2] for m in ms}) == 1
    check("kept: the map's mapped lane holds block, kept, block, kept, block (grown), kept, one after the other at "
          "one lane offset", ok, f"mapped lane entries {ms}")
    if not ok or not chromium:
        return
    shot = os.path.join(out, "shot-kept.png")
    t_kept, t_live = (kept[0][0] + kept[0][1]) / 2, (live[1][0] + live[1][1]) / 2
    at_kept, at_live = f"{t_kept}:0x1000:mapped", f"{t_live}:0x1000:mapped"
    dom, secs = finish_browser(start_browser(chromium, "file://" + page + "#height=560&probe=" + at_kept + ";" +
                                             at_live, shot, tmp), 180)
    if check(f"browser: the kept-mapping page loads ({secs:.0f} s)", dom is not None and "data-ready" in dom,
             "no DOM (timeout or crash); see " + shot + ".log"):
        st = page_state(dom)
        pk, pl = st["probes"].get(at_kept), st["probes"].get(at_live)
        check("browser: hit-testing names the kept mapping 'kept' and the reused block 'mapped'",
              pk and pl and pk.get("data-status") == "kept" and pl.get("data-status") == "mapped" and
              not (st["errors"] or "").strip(), f"{pk} {pl} errors={st['errors']!r}")
        lane = sorted((int(r.get("data-t0", "0")), r.get("class"), r.get("data-status")) for r in st["rects"]
                      if r.get("data-band") == "mapped")
        check("browser: the SVG draws the lane as block, kept, block, kept, block, kept (class and data-status "
              "agree)", [c.split()[1] for _, c, _ in lane] == ["mapped", "kept"] * 3 and
              all(c.split()[1] == ds for _, c, ds in lane), str(lane))


def front_tests(build, out, tmp, cc):
    """The front layer, traced. Returns what the browser checks need for the occupancy page, or None."""
    # 1. a known sequence, line for line; os_stats: the front was on (cache hits)
    exe, err = build_drop_in(cc, build, tmp, "front_known", FRONT_KNOWN_C)
    if check("front: the known-sequence program compiles against libosmem-malloc.so", exe, err.strip()[-400:]):
        trace = os.path.join(out, "front-known.trace")
        env = traced_env(trace)
        rc, so, err, _ = run([exe], env=env)
        got = normalise_front(open(trace).read()) if os.path.exists(trace) else ""
        want = front_known_expected()
        if got != want:
            import difflib
            sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "expected", "trace",
                                                       n=1))
        check("front: the trace of a known default-profile sequence is exactly as expected, line for line",
              rc == 0 and got == want, f"rc={rc} {err.strip()[-200:]}; the trace differs (diff above)")
        m = re.search(r"cache_hits=(\d+) front_in_use=(\d+)", so)
        env.pop("OSMEM_TRACE")
        rc2, so2, _, _ = run([exe], env=env)
        check("front: os_stats while tracing counts cache hits (the front is on) and the same numbers as untraced",
              m and int(m.group(1)) > 0 and int(m.group(2)) == 0 and so2 == so, f"traced {so.strip()!r}, untraced {so2.strip()!r}")
        page = os.path.join(out, "front-known.html")
        rc, _, err, _ = heapmap([trace, "-o", page])
        ok = rc == 0 and "warning" not in err
        if ok:
            meta, states, segs = embedded_front(page)
            kinds = {(st["slot"], st["slots"]) for st in states}
            ok = len(segs) == 1 and {(48, 1365), (224, 292), (112, 585), (64, 1024), (2048, 32)} <= kinds and \
                meta["final"]["front_used"] == 0 and meta["final"]["front_pages"] == 5
            err = f"segments {segs}, page kinds {sorted(kinds)}, final {meta['final']}"
        check("front: the known sequence's map has its segment and a page per class, and no slot in use at the end "
              "(5 pages left: page 5 emptied)", ok, err.strip()[-400:])

    # 2. occupancy worked out by hand
    exe, err = build_drop_in(cc, build, tmp, "front_occ", FRONT_OCC_C)
    if not check("front: the occupancy program compiles", exe, err.strip()[-400:]):
        return None
    trace = os.path.join(out, "front-occ.trace")
    rc, so, err, _ = run([exe], env=traced_env(trace))
    m = re.search(r"page=(0x[0-9a-f]+) last=(0x[0-9a-f]+) hits=(\d+) in_use=(\d+)", so)
    if not check("front: the occupancy program runs traced", rc == 0 and m and os.path.exists(trace),
                 f"rc={rc} {so!r} {err.strip()[-300:]}"):
        return None
    paddr, hits, in_use = int(m.group(1), 16), int(m.group(3)), int(m.group(4))
    check(f"front: os_stats while tracing: {hits} cache hits (> 0) and {in_use} bytes in front slots "
          f"(66 x 48 = 3168)", hits > 0 and in_use == FRONT_OCC_USED * 48, so.strip())
    text = open(trace).read()
    check("front: the trace names the class-48 page with its 1365 slots, and every request (100 slot 48, 34 free)",
          f"  page 0x{paddr:x} 48 1365\n" in text and text.count("\nslot 48 t=1\n") == 100 and
          len(re.findall(r"^free 0x[0-9a-f]+ t=1$", text, re.M)) == 34, text[:300])
    page, png = os.path.join(out, "front-occ.html"), os.path.join(out, "front-occ.png")
    rc, so, err, _ = heapmap([trace, "-o", page, "--png", png])
    if not check("front: osmem-heapmap draws the occupancy trace without warnings",
                 rc == 0 and os.path.exists(page) and "warning" not in err, f"rc={rc} {err.strip()[-300:]}"):
        return None
    meta, states, segs = embedded_front(page)
    final = [st for st in states if st["t1"] == meta["tEnd"]]
    mine = [st for st in final if st["addr"] == paddr]
    check(f"front: in the page's data, the final state of page 0x{paddr:x} is class 48 with "
          f"{FRONT_OCC_USED} of {FRONT_OCC_SLOTS} slots in use, owned by thread 1",
          len(mine) == 1 and (mine[0]["slot"], mine[0]["slots"], mine[0]["used"], mine[0]["owner"]) ==
          (48, FRONT_OCC_SLOTS, FRONT_OCC_USED, 1) and meta["final"]["front_used"] == FRONT_OCC_USED,
          f"{mine} {meta['final']}")
    # its history: one more slot in use at each malloc (100 after request 100), one fewer at each free
    hist = sorted((st["t0"], st["used"]) for st in states if st["addr"] == paddr)
    check("front: the page's occupancy over time is 1, 2, ... 100 after the mallocs, then 99 ... 66 after the frees",
          [u for _, u in hist] == list(range(1, 101)) + list(range(99, 65, -1)), f"{[u for _, u in hist][:8]}...")
    try:
        img = png_decode(png)
        cols = colours(img, step=1)
        want = {k: hexrgb(v) for k, v in meta_colors(page).items()}
        missing = [c for c in ("slab", "slabfree", "segmeta") if not any(near(tuple(k), want[c], 6) and n >= 20
                                                                         for k, n in cols.items())]
        check("png: the occupancy PNG has the front row (slots in use, free slots, segment metadata)", not missing,
              f"missing {missing}")
    except Exception as e:  # noqa: BLE001
        check("png: the occupancy PNG decodes", False, str(e))

    # 3. abandoned and adopted
    exe, err = build_drop_in(cc, build, tmp, "front_threads", FRONT_THREADS_C, ["-pthread"])
    if check("front: the two-thread program compiles", exe, err.strip()[-400:]):
        ttrace = os.path.join(out, "front-threads.trace")
        rc, so, err, _ = run([exe], env=traced_env(ttrace))
        m2 = re.search(r"page=(0x[0-9a-f]+)", so)
        tpage = os.path.join(out, "front-threads.html")
        rc2, _, err2, _ = heapmap([ttrace, "-o", tpage]) if rc == 0 else (rc, "", err, 0)
        if check("front: the two-thread program runs traced and its map is drawn without warnings",
                 rc == 0 and m2 and rc2 == 0 and "warning" not in err2, f"rc={rc}/{rc2} {err.strip()[-200:]} {err2.strip()[-300:]}"):
            a = int(m2.group(1), 16)
            ttext = open(ttrace).read()
            _, tstates, _ = embedded_front(tpage)
            seq = [(st["used"], st["owner"]) for st in sorted(tstates, key=lambda st: st["t0"]) if st["addr"] == a]
            # thread 2: 1..100 in use, then 99..50; abandoned with 50; 10 remote frees: 49..40; adopted by thread 1
            want = [(u, 2) for u in range(1, 101)] + [(u, 2) for u in range(99, 49, -1)] + [(50, 0)] + \
                [(u, 0) for u in range(49, 39, -1)]
            check("front: the exiting thread's page: filled and freed by thread 2, abandoned with 50 slots in use, "
                  "10 remote frees, then adopted by thread 1",
                  seq[:len(want)] == want and len(seq) > len(want) and seq[len(want)][1] == 1 and
                  f"thread_exit t=2\n  abandon 0x{a:x} 50\n" in ttext and
                  ttext.count(f"  remote_free 0x{a:x}\n") == 10 and f"  collect 0x{a:x} 10\n" in ttext and
                  f"  adopt 0x{a:x} 40\n" in ttext,
                  f"states {seq[:3]}...{seq[148:163]}; lines: " +
                  "; ".join(l for l in ttext.splitlines() if f"0x{a:x} " in l and not l.startswith(("=", "free", "slot")))[:400])
    # 4. a heap that swings: trims undone by the next growth raise the trim threshold (`  trim_threshold N`), a
    # line the heap map must know (it warned `unknown event 'trim_threshold'` when the event was new); the top
    # waits before each trim (`  trim_wait`)
    exe, err = build_drop_in(cc, build, tmp, "swing", SWING_C)
    if check("trace: the swinging-heap program compiles", exe, err.strip()[-400:]):
        strace_ = os.path.join(out, "swing.trace")
        rc, _, err, _ = run([exe], env=traced_env(strace_))
        spage = os.path.join(out, "swing.html")
        rc2, _, err2, _ = heapmap([strace_, "-o", spage]) if rc == 0 else (rc, "", err, 0)  # no -q: it hides warnings
        stext = open(strace_).read() if os.path.exists(strace_) else ""
        check("trace: a swinging heap's trace has `trim_wait`, `trim` and `trim_threshold` lines and its map is drawn "
              "without warnings",
              rc == 0 and rc2 == 0 and "\n  trim_threshold " in stext and "\n  trim_wait " in stext and
              "\n  trim " in stext and "warning" not in err2,
              f"rc={rc}/{rc2} trim_threshold lines: {stext.count('  trim_threshold ')}; {err2.strip()[-300:]}")
    # 5. a heap the program fills: past 32 MiB it is measured (`hugepage measure`) and advised for huge pages
    # (`madvise_huge`, src/huge.c); the map draws it without warnings and counts the advised bytes
    exe, err = build_drop_in(cc, build, tmp, "dense", DENSE_C)
    if check("trace: the dense-heap program compiles", exe, err.strip()[-400:]):
        dtrace = os.path.join(out, "dense.trace")
        env = traced_env(dtrace)
        env["OSMEM_HUGEPAGE"] = "dense"  # the density tests without the fault probe: advised whatever faults cost
        rc, _, err, _ = run([exe], env=env)
        dpage = os.path.join(out, "dense.html")
        rc2, _, err2, _ = heapmap([dtrace, "-o", dpage]) if rc == 0 else (rc, "", err, 0)  # no -q: it hides warnings
        dtext = open(dtrace).read() if os.path.exists(dtrace) else ""
        madvise_mode = "[madvise]" in open("/sys/kernel/mm/transparent_hugepage/enabled").read()
        page_text = open(dpage).read() if rc2 == 0 and os.path.exists(dpage) else ""
        m = re.search(r'"hugeBytes":\s*(\d+)', page_text)
        advised = sum(int(l.split()[2]) for l in dtext.splitlines() if l.startswith("  madvise_huge "))
        want = "dense" if madvise_mode else None
        check("trace: a dense heap's trace has its measure and madvise_huge lines (kernel mode madvise), and its map "
              "is drawn without warnings, counting the advised bytes",
              rc == 0 and rc2 == 0 and "warning" not in err2 and m is not None and int(m.group(1)) == advised and
              ((advised > 0 and "  hugepage measure " in dtext and ": dense" in dtext) if want else advised == 0),
              f"rc={rc}/{rc2} kernel madvise mode {madvise_mode}, madvise_huge bytes {advised}, page hugeBytes "
              f"{m.group(1) if m else None}; {err2.strip()[-300:]}")
    # 6. malloc_trim gives back the free 4 KiB inside pages with slots in use (`page_release`), and the slots it set
    # aside come back when needed (`page_refill`): lines the map must know, with the slots in use unchanged
    exe, err = build_drop_in(cc, build, tmp, "trim_inside", TRIM_INSIDE_C)
    if check("trace: the trim-inside-pages program compiles", exe, err.strip()[-400:]):
        ttrace = os.path.join(out, "trim_inside.trace")
        rc, _, err, _ = run([exe], env=traced_env(ttrace))
        tpage = os.path.join(out, "trim_inside.html")
        rc2, _, err2, _ = heapmap([ttrace, "-o", tpage]) if rc == 0 else (rc, "", err, 0)  # no -q: it hides warnings
        ttext = open(ttrace).read() if os.path.exists(ttrace) else ""
        released = [l for l in ttext.splitlines() if l.startswith("  page_release ")]
        refilled = [l for l in ttext.splitlines() if l.startswith("  page_refill ")]
        check("trace: a trim inside pages with live slots has `page_release` lines (after `front_trim`) and the "
              "later mallocs `page_refill` lines; its map is drawn without warnings",
              rc == 0 and rc2 == 0 and "warning" not in err2 and len(released) >= 9 and len(refilled) >= 9 and
              ttext.find("front_trim ") < ttext.find("  page_release ") < ttext.find("  page_refill "),
              f"rc={rc}/{rc2} page_release lines {len(released)}, page_refill lines {len(refilled)} (want 9 or more "
              f"of each: ten pages, the last one partly carved); {err2.strip()[-300:]}")
    return {"page": page, "addr": paddr, "tend": meta["tEnd"], "voff": mine[0]["voff"] if mine else None}


DENSE_C = r'''
#include <stdlib.h>
#include <string.h>
int main(void)
{
    for (int i = 0; i < 900; i++) /* 56 MiB of 64 KiB blocks, every byte written */
        memset(malloc(65536), 1, 65536);
    return 0;
}
'''


# malloc_trim inside pages that hold slots in use (src/front.c, page_trim): 640 objects of 1,000 bytes (class 1024,
# ten pages), all but every 16th freed, a trim (`page_release` lines), then 600 more, which use the slots the trim
# set aside once the pages' other free slots are gone (`page_refill` lines).
TRIM_INSIDE_C = r"""
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
	static void *p[640], *q[600];
	for (int i = 0; i < 640; i++)
		memset(p[i] = malloc(1000), 1, 1000);
	for (int i = 0; i < 640; i++)
		if (i % 16)
			free(p[i]);
	malloc_trim(0);
	for (int i = 0; i < 600; i++)
		memset(q[i] = malloc(1000), 2, 1000);
	for (int i = 0; i < 600; i++)
		free(q[i]);
	for (int i = 0; i < 640; i += 16)
		free(p[i]);
	return 0;
}
"""

SWING_C = r'''
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void)
{
    void *p[30];
    for (int round = 0; round < 4; round++) { /* 3 MB taken and given back, four times */
        for (int i = 0; i < 30; i++)
            memset(p[i] = malloc(100000), 1, 100000);
        for (int i = 29; i >= 0; i--)
            free(p[i]);
        usleep(150000); /* idle past the trim's delay: the next round's first malloc trims, then grows again */
    }
    return 0;
}
'''


def heapmap(args, timeout=120):
    return run([TOOL] + args, timeout=timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", help="where the pages and screenshots go (default BUILD/heapmap-test)")
    a = ap.parse_args()
    build = a.build if os.path.isabs(a.build) else os.path.join(ROOT, a.build) \
        if not os.path.isdir(a.build) else os.path.abspath(a.build)
    out = os.path.abspath(a.out or os.path.join(build, "heapmap-test"))
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    tmp = tempfile.mkdtemp(prefix="heapmap-")
    try:
        tests(build, out, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    passed, failed = results.count(True), results.count(False)
    print(f"{passed} passed, {failed} failed")
    print(f"(pages and screenshots: {out})")
    return 1 if failed else 0


def tests(build, out, tmp):
    started = time.time()
    lib, libm = os.path.join(build, "libosmem.so"), os.path.join(build, "libosmem-malloc.so")
    if not check("setup: libosmem.so and libosmem-malloc.so are built", os.path.exists(lib) and os.path.exists(libm),
                 f"build them first (make); looked in {build}"):
        return
    # every decision line the sources write (`osm_trace_event("  NAME ...`) is one the heap map reads and
    # docs/TRACE.md explains: `decay_ns` and `range_give_back` were neither known nor drawn, and the map of any
    # threaded program whose decay adapted (python3) came with `unknown event 'decay_ns'` warnings
    emitted = set()
    for name in sorted(os.listdir(os.path.join(ROOT, "src"))):
        if name.endswith(".c"):
            with open(os.path.join(ROOT, "src", name)) as f:
                emitted |= set(re.findall(r'osm_trace_event\("  ([a-z_]+)', f.read()))
    with open(os.path.join(ROOT, "tools", "heapmap", "replay.py")) as f:
        replay_src = f.read()
    with open(os.path.join(ROOT, "docs", "TRACE.md")) as f:
        trace_doc = f.read()
    # the names replay.py dispatches on: `op == "NAME"`, `op in ("A", "B")` and its sets of names
    handled = set(re.findall(r'op == "([a-z_]+)"', replay_src))
    for group in re.findall(r'op in \(([^)]*)\)', replay_src) + \
            re.findall(r'^[A-Z_]+_EVENTS = \{([^}]*)\}', replay_src, re.M):
        handled |= set(re.findall(r'"([a-z_]+)"', group))
    unread = sorted(e for e in emitted if e not in handled)
    undocumented = sorted(e for e in emitted if f"`  {e}" not in trace_doc)
    check("trace: every event line src/ writes is read by the heap map and listed in docs/TRACE.md",
          len(emitted) > 20 and not unread and not undocumented,
          f"{len(emitted)} events found; not read by tools/heapmap/replay.py: {unread}; not in docs/TRACE.md: "
          f"{undocumented}")
    with open(TOOL) as f:
        first = f.readline().strip()
    check("setup: tools/osmem-heapmap is executable and runs Debian's Python",
          os.access(TOOL, os.X_OK) and first == "#!/usr/bin/python3", f"mode or shebang: {first!r}")
    truncated_tests(out)
    rc, _, err, _ = run(["/usr/bin/python3", "-c", "import matplotlib"])
    if not check("setup: /usr/bin/python3 has matplotlib", rc == 0, "apt-get install -y python3-matplotlib"):
        return
    chromium = find_chromium()
    check("setup: headless Chromium is installed", chromium, "apt-get install -y chromium")
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc")

    # ------------------------------------------------------------ the known heap
    src = os.path.join(tmp, "known.c")
    with open(src, "w") as f:
        f.write(KNOWN_C)
    prog = os.path.join(tmp, "known")
    rc, _, err, _ = run([cc, "-std=c11", "-Wall", "-Werror", "-I", os.path.join(ROOT, "include"), src, "-o", prog,
                         "-L", build, "-losmem", f"-Wl,-rpath,{build}"])
    if not check("known: the classic-API program compiles against libosmem.so", rc == 0, err.strip()[-400:]):
        return
    trace, dump = os.path.join(out, "known.trace"), os.path.join(out, "known.json")
    env = dict(os.environ, OSMEM_TRACE=trace)
    env.pop("LD_PRELOAD", None)
    rc, _, err, _ = run([prog, dump], env=env)
    check("known: the program runs with OSMEM_TRACE and writes its trace and heap dump",
          rc == 0 and os.path.exists(trace) and os.path.exists(dump), f"rc={rc} {err.strip()[-300:]}")
    if not os.path.exists(trace) or not os.path.exists(dump):
        return
    dheap, dmapped, _ = from_dump(dump)
    check("known: os_heap_dump shows docs/CLASSIC.md's layout (the expectation itself)",
          dheap == KNOWN_HEAP and [s for _, s in dmapped] == [KNOWN_MAPPED_SIZE], f"{dheap} {dmapped}")

    page, png = os.path.join(out, "known.html"), os.path.join(out, "known.png")
    rc, so, err, secs = heapmap([trace, "-o", page, "--png", png])
    check("known: osmem-heapmap TRACE -o PAGE --png PNG succeeds without replay warnings",
          rc == 0 and os.path.exists(page) and os.path.exists(png) and "warning" not in err,
          f"rc={rc} {so.strip()[-300:]} {err.strip()[-300:]}")
    if not os.path.exists(page):
        return
    meta, eheap, emapped, text = embedded(page)
    check("known: the replayed final heap (in the page's data) is docs/CLASSIC.md's layout and os_heap_dump's",
          eheap == KNOWN_HEAP and eheap == dheap and emapped == dmapped, f"{eheap} {emapped} vs {dheap} {dmapped}")
    check("known: the page counts 5 final blocks, 5 requests", meta["final"]["blocks"] == 5 and meta["requests"] == 5,
          f"{meta['final']} requests={meta['requests']}")
    bad = self_contained(text)
    check("known: the page is self-contained (no src/href/url()/fetch/link to anything outside)", not bad,
          "; ".join(bad))

    dpage, dpng = os.path.join(out, "known-dump.html"), os.path.join(out, "known-dump.png")
    rc, so, err, _ = heapmap(["--dump", dump, "-o", dpage, "--png", dpng])
    ok = rc == 0 and os.path.exists(dpage) and os.path.exists(dpng)
    if ok:
        dmeta, dh, dm, _ = embedded(dpage)
        ok = dh == KNOWN_HEAP and dm == dmapped and dmeta["final"]["blocks"] == 5
    check("dump: osmem-heapmap --dump DUMP.json draws the same snapshot", ok, f"rc={rc} {err.strip()[-300:]}")

    # --png without matplotlib (only tools/demo.sh installs it): a sentence naming the package, not a traceback; a
    # matplotlib that fails to import stands in for a missing one
    fake = os.path.join(tmp, "no-matplotlib", "matplotlib")
    os.makedirs(fake, exist_ok=True)
    with open(os.path.join(fake, "__init__.py"), "w") as f:
        f.write("raise ImportError('No module named matplotlib (test_heapmap)')\n")
    npage, npng = os.path.join(tmp, "nompl.html"), os.path.join(tmp, "nompl.png")
    rc, so, err, _ = run([TOOL, trace, "-o", npage, "--png", npng],
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(fake)))
    check("png_without_matplotlib_says_so: osmem-heapmap --png names python3-matplotlib, exits 1, keeps the HTML",
          rc == 1 and "python3-matplotlib" in err and "Traceback" not in err and os.path.exists(npage)
          and not os.path.exists(npng), f"rc={rc} {err.strip()[-300:]}")

    # ------------------------------------------------------------ the drop-in's profiles: replay == dump
    src = os.path.join(tmp, "mix.c")
    with open(src, "w") as f:
        f.write(MIX_C)
    mix = os.path.join(tmp, "mix")
    rc, _, err, _ = run([cc, "-std=c11", "-O1", "-I", os.path.join(ROOT, "include"), src, "-o", mix,
                         "-L", build, "-losmem-malloc", f"-Wl,-rpath,{build}"])
    if check("mix: the drop-in program compiles against libosmem-malloc.so", rc == 0, err.strip()[-400:]):
        for profile in ("default", "classic"):
            mtrace, mdump = os.path.join(tmp, f"mix-{profile}.trace"), os.path.join(tmp, f"mix-{profile}.json")
            env = dict(os.environ, OSMEM_TRACE=mtrace)
            env.pop("LD_PRELOAD", None)
            env.pop("OSMEM_PROFILE", None)
            if profile == "classic":
                env["OSMEM_PROFILE"] = "classic"
            rc, _, err, _ = run([mix, mdump], env=env)
            mpage = os.path.join(out, f"mix-{profile}.html")
            rc2, _, err2, _ = heapmap([mtrace, "-o", mpage]) if rc == 0 else (rc, "", err, 0)
            ok, why = rc == 0 and rc2 == 0 and "warning" not in err2, f"rc={rc}/{rc2} {err.strip()[-200:]} {err2.strip()[-300:]}"
            if ok:
                with open(mtrace) as f:
                    kinds = {l.split()[0] for l in f if l.startswith("  ")}
                _, ph, pm, _ = embedded(mpage)
                dh, dm, _ = from_dump(mdump)
                ok = ph == dh and pm == dm
                diff = next((f"{p} vs {q}" for p, q in zip(ph, dh) if p != q), f"{len(ph)} vs {len(dh)} blocks")
                why = f"replay and dump differ: {diff}; mapped {pm[:3]} vs {dm[:3]}"
            check(f"mix: {profile} profile ({', '.join(sorted(kinds)) if rc == 0 and rc2 == 0 else '?'}): "
                  f"the replayed final heap is os_heap_dump's, block for block", ok, why)

    # ------------------------------------------------------------ the front layer, traced
    front = front_tests(build, out, tmp, cc)
    kept_tests(build, out, tmp, cc, chromium)
    top_last_tests(build, out, tmp, cc)
    zero_tests(build, out, tmp, cc)
    wall_tests(build, out, tmp, cc)
    foreign_tests(build, out, tmp, cc)
    fork_tests(build, out, tmp, cc)
    carve_tests(build, out, tmp, cc)

    # ------------------------------------------------------------ a big trace
    big = os.path.join(out, "big.trace")
    run_tool = os.path.join(ROOT, "tools", "osmem-run")
    env = dict(os.environ)
    env.pop("OSMEM_PROFILE", None)
    sqlite = shutil.which("sqlite3")
    if sqlite:
        what = big_what = "sqlite3"
        rc, _, err, _ = run([run_tool, "--trace", big, "--", sqlite, ":memory:"], input=BIG_SQL, env=env, timeout=120)
    else:
        what = big_what = "python3 (PYTHONMALLOC=malloc)"
        env["PYTHONMALLOC"] = "malloc"
        rc, _, err, _ = run([run_tool, "--trace", big, "--", "/usr/bin/python3", "-c", BIG_PY], env=env, timeout=120)
    events = requests = 0
    if os.path.exists(big):
        with open(big) as f:
            for line in f:
                events += 1
                if line[0] not in " =" and not line.startswith("osmem-trace"):
                    requests += 1
    check(f"big: {what} on osmem writes a trace of 100 000+ events", rc == 0 and events >= 100000,
          f"rc={rc}, {events} lines {err.strip()[-300:]}")
    bpage, bpng = os.path.join(out, "big.html"), os.path.join(out, "big.png")
    rc, so, err, secs = heapmap([big, "-o", bpage, "--png", bpng], timeout=120)
    check(f"big: osmem-heapmap renders {events} events ({requests} requests) in less than 60 s ({secs:.1f} s)",
          rc == 0 and secs < 60 and os.path.exists(bpage) and os.path.exists(bpng),
          f"rc={rc} {secs:.1f} s {err.strip()[-300:]}")

    # ------------------------------------------------------------ the matplotlib PNGs
    for name, path, want in (("known", png, ("alloc", "free", "header", "mapped")), ("dump", dpng, ("alloc", "free")),
                             ("big", bpng, ("alloc", "free"))):
        try:
            img = png_decode(path)
            cols = colours(img, step=1 if name == "known" else 2)
            from_page = {k: hexrgb(v) for k, v in meta_colors(page).items()}
            missing = [c for c in want if not any(near(tuple(k), from_page[c], 6) and n >= 20 for k, n in cols.items())]
            ok = img[0] == 1320 and 300 <= img[1] <= 1400 and len(cols) > 2 and not missing
            why = f"{img[0]}x{img[1]}, {len(cols)} colours, missing {missing}"
        except Exception as e:  # noqa: BLE001
            ok, why = False, f"{path}: {e}"
        check(f"png: the {name} final-heap PNG decodes, is 1320 px wide, has its colours ({', '.join(want)})", ok, why)

    # ------------------------------------------------------------ in the browser
    if not chromium:
        return
    A = os.path.join(out, "shot-known-zoom.png")
    B = os.path.join(out, "shot-known-full.png")
    C = os.path.join(out, "shot-big.png")
    # A: zoomed on the first 0xa00 bytes (every block is tens of px tall), tooltip probes, and the mouse on b
    probes = ["2.5:0x850", "5.5:0x850", "5.5:0x7f8", "5.5:0x100", "3.5:0x900", "1.5:0x900", "5.5:0x200:mapped",
              "2.5:0x200:mapped", "3.5:0x30000"]
    # The plot's height is fixed (#height): Chromium lays the page out in a shorter viewport than the
    # screenshot's (the window minus its frame), and a plot that fills the window would move in between.
    url_a = "file://" + page + "#height=560&view=1:6:0:0xa00&probe=" + ";".join(probes) + "&hover=3.3:0x850"
    jobs = {"A": start_browser(chromium, url_a, A, tmp)}
    jobs["B"] = start_browser(chromium, "file://" + page + "#height=560", B, tmp)
    if os.path.exists(bpage):
        jobs["C"] = start_browser(chromium, "file://" + bpage + "#height=560", C, tmp)
    FSHOT = os.path.join(out, "shot-front-occ.png")
    if front and front["voff"] is not None:
        # zoomed on the class-48 page in the front lane, over the last requests: its bottom 66/1365 is in use
        fa, fb = front["voff"] - 0x800, front["voff"] + 0x10800
        probe_at = f"{front['tend'] - 0.5}:0x{front['addr'] + 0x200:x}:front"
        url_f = ("file://" + front["page"] + f"#height=560&view={front['tend'] - 40}:{front['tend']}:0:0x20000:0:64:"
                 f"0x{fa:x}:0x{fb:x}&probe={probe_at}&hover={front['tend'] - 0.5}:0x{front['addr'] + 0x8000:x}:front")
        jobs["F"] = start_browser(chromium, url_f, FSHOT, tmp)
    doms = {k: finish_browser(j, 180) for k, j in jobs.items()}

    dom, secs = doms["A"]
    if check(f"browser: the zoomed known page loads ({secs:.0f} s)", dom is not None and "data-ready" in dom,
             "no DOM (timeout or crash); see " + A + ".log"):
        s = page_state(dom)
        check("browser: the zoomed page has no script error (#errors empty)", s["errors"] is not None and not s["errors"].strip(),
              (s["errors"] or "no #errors element")[:400])
        # the DOM: what the tooltip says at known points
        want = {"2.5:0x850": ("alloc", "0x7e8", "104"), "5.5:0x850": ("free", "0x7e8", "104"),
                "5.5:0x7f8": ("free", "0x7e8", "104"), "5.5:0x100": ("alloc", "0x0", "1992"),
                "3.5:0x900": ("alloc", "0x870", "304"), "1.5:0x900": ("free", "0x7e8", "129016"),
                "5.5:0x200:mapped": ("mapped", None, "200000"), "2.5:0x200:mapped": (None, None, None),
                "3.5:0x30000": (None, None, None)}
        bad = []
        for at, (st, off, size) in want.items():
            p = s["probes"].get(at)
            if p is None:
                bad.append(f"{at}: no probe")
            elif st is None:
                if p.get("data-index") != "-1":
                    bad.append(f"{at}: found {p}")
            elif (p.get("data-status"), p.get("data-size")) != (st, size) or (off and p.get("data-off") != off):
                bad.append(f"{at}: {p.get('data-status')} {p.get('data-off')} {p.get('data-size')}, want {st} {off} {size}")
        check(f"browser: hit-testing (the tooltip's lookup) finds the right block at {len(want)} known points", not bad, "; ".join(bad))
        # the mouse path: the pointer on b's pixels (request 3, H+0x850) shows b's tooltip
        hv = s["hover"]
        check("browser: the tooltip under the mouse on b names b: H+0x7e8, 104 B, allocated, os_malloc 100, "
              "freed by os_free H+0x808",
              hv and hv[0] == "1" and all(w in hv[1] for w in ("allocated block", "H+0x7e8", "104 B", "os_malloc 100",
                                                               "os_free H+0x808")),
              repr(hv)[:500])
        g = s["geom"]
        if check("browser: the page reports its plot geometry", g and g.get("heap"), "no #geom"):
            X = lambda t: g["left"] + (t - g["xa"]) / (g["xb"] - g["xa"]) * (g["right"] - g["left"])  # noqa: E731
            Y = lambda a: g["heap"]["bottom"] - (a - g["heap"]["a0"]) / (g["heap"]["a1"] - g["heap"]["a0"]) * (g["heap"]["bottom"] - g["heap"]["top"])  # noqa: E731
            LY = lambda a: g["lane"]["bottom"] - (a - g["lane"]["a0"]) / (g["lane"]["a1"] - g["lane"]["a0"]) * (g["lane"]["bottom"] - g["lane"]["top"])  # noqa: E731
            col = {k: hexrgb(v) for k, v in g["colors"].items()}
            rects = [r for r in s["rects"] if r.get("data-band") == "heap"]
            check("browser: in the zoomed view every heap block state is an SVG rect with data attributes",
                  len(rects) == 7 and all({"data-off", "data-size", "data-status", "data-t0", "data-t1"} <= set(r) for r in rects),
                  f"{len(rects)} rects: {rects[:2]}")
            # pixels: where the page's geometry puts each block, the colour of its status
            try:
                img = png_decode(A)
                pts = [("a's payload after request 5", 5.5, 0x20 + 996, "alloc", Y),
                       ("a's payload after request 1", 1.5, 0x20 + 996, "alloc", Y),
                       ("b allocated (request 2)", 2.5, 0x808 + 52, "alloc", Y),
                       ("b freed (request 5)", 5.5, 0x808 + 52, "free", Y),
                       ("b's header", 5.5, 0x7e8 + 16, "header", Y),
                       ("c's header", 4.5, 0x870 + 16, "header", Y),
                       ("c allocated", 4.5, 0x890 + 152, "alloc", Y),
                       ("the rest, free, before c (request 1)", 1.5, 0x890 + 152, "free", Y),
                       ("the mapping after request 5", 5.5, 100000, "mapped", LY),
                       ("no mapping yet after request 2", 2.3, 100000, "bg", LY)]  # 2.5: a grid line
                bad = []
                for what, t, addr, want_c, F in pts:
                    c = rgb_at(img, X(t), F(addr))
                    if not near(c, col[want_c]):
                        bad.append(f"{what} at ({X(t):.0f},{F(addr):.0f}) is {c}, want {want_c} {col[want_c]}")
                check("screenshot: the zoomed map has each block's status colour where the layout puts it (10 points)",
                      not bad, "; ".join(bad))
            except Exception as e:  # noqa: BLE001
                check("screenshot: the zoomed map decodes", False, str(e))

    dom, secs = doms["B"]
    if check(f"browser: the known page loads in its default view ({secs:.0f} s)", dom is not None and "data-ready" in dom,
             "no DOM (timeout or crash); see " + B + ".log"):
        s = page_state(dom)
        check("browser: no script error (#errors empty)", s["errors"] is not None and not s["errors"].strip(),
              (s["errors"] or "no #errors element")[:400])
        sm = s["summary"] or {}
        check("browser: #summary counts the final heap: 5 blocks (2 allocated, 2 free, 1 mapped)",
              (sm.get("data-final-blocks"), sm.get("data-alloc-blocks"), sm.get("data-free-blocks"),
               sm.get("data-mapped-blocks")) == ("5", "2", "2", "1") and 'id="final-count">5<' in s["dom"], str(sm))
        check("browser: document.title names the final heap's block count",
              s["title"] and "final heap 5 blocks" in s["title"], repr(s["title"]))
        final = sorted((r["data-band"], int(r["data-off"], 16) if r["data-band"] == "heap" else 0, int(r["data-size"]),
                        r["data-status"]) for r in s["rects"] if r.get("data-final") == "1")
        want = sorted([("heap", o, sz, st) for o, sz, st in KNOWN_HEAP] + [("mapped", 0, KNOWN_MAPPED_SIZE, "mapped")])
        check("browser: one SVG rect per final block (class blk, data-off/size/status as docs/CLASSIC.md says)",
              final == want, f"{final}")
        g = s["geom"]
        try:
            img = png_decode(B)
            X = lambda t: g["left"] + (t - g["xa"]) / (g["xb"] - g["xa"]) * (g["right"] - g["left"])  # noqa: E731
            Y = lambda a: g["heap"]["bottom"] - (a - g["heap"]["a0"]) / (g["heap"]["a1"] - g["heap"]["a0"]) * (g["heap"]["bottom"] - g["heap"]["top"])  # noqa: E731
            col = {k: hexrgb(v) for k, v in g["colors"].items()}
            brk = 131072
            above = (brk + g["heap"]["a1"]) / 2
            pts = [("the big free rest", 3.3, 65536, "free"), ("above the break", 3.3, above, "bg")]
            bad = [f"{w} is {rgb_at(img, X(t), Y(a))}, want {c}" for w, t, a, c in pts if not near(rgb_at(img, X(t), Y(a)), col[c])]
            ys = range(int(Y(brk)) - 3, int(Y(brk)) + 4)
            # the line is thinner than 2 px and antialiased: red, blended with its neighbours
            reddish = lambda c: c and c[0] > 170 and c[1] < 130 and c[2] < 130  # noqa: E731
            if not any(reddish(rgb_at(img, X(3.3), y)) for y in ys):
                bad.append(f"no break line near y={Y(brk):.0f}: {[rgb_at(img, X(3.3), y) for y in ys]}")
            cs = colours(img)
            check("screenshot: the full view shows the free rest, white above the break, the break line in red",
                  not bad and len(cs) > 20, "; ".join(bad) + f" ({len(cs)} colours)")
        except Exception as e:  # noqa: BLE001
            check("screenshot: the full view decodes", False, str(e))

    if "C" in doms:
        dom, secs = doms["C"]
        if check(f"browser: the big page loads ({secs:.0f} s in all, Chromium's start included)",
                 dom is not None and "data-ready" in dom, "no DOM (timeout or crash); see " + C + ".log"):
            s = page_state(dom)
            b = s["body"]
            check("browser: the big page has no script error", s["errors"] is not None and not s["errors"].strip(),
                  (s["errors"] or "no #errors element")[:400])
            sm = s["summary"] or {}
            bmeta = embedded(bpage)[0]
            check(f"browser: the big page's first view is ready in less than 60 s ({b.get('data-load-ms')} ms) "
                  f"and keeps the SVG within its budget ({len(s['rects'])} block rects)",
                  int(b.get("data-load-ms", 10 ** 9)) < 60000 and len(s["rects"]) <= bmeta["svgBudget"] and s["allrects"] < 2 * bmeta["svgBudget"] + 500,
                  f"{b} {len(s['rects'])} rects")
            check("browser: the big page's summary counts every request and the final heap",
                  sm.get("data-requests") == str(requests) and sm.get("data-final-blocks") == str(bmeta["final"]["blocks"]),
                  f"{sm} vs {requests} requests")
            _, bstates, bsegs = embedded_front(bpage)
            slabs = [r for r in s["rects"] if r.get("data-band") == "front" and r.get("data-status") == "slab"]
            okd = bool(slabs) and all({"data-class", "data-slots", "data-used", "data-addr", "data-t0", "data-t1"} <= set(r)
                                      and 0 <= int(r["data-used"]) <= int(r["data-slots"]) for r in slabs)
            check(f"browser: {big_what} on the default profile: slab-page blocks in the page's DOM ({len(slabs)} rects) and "
                  f"in its data ({len(bstates)} page states in {len(bsegs)} segments)",
                  okd and len(bstates) > 1000 and bsegs and int(sm.get("data-front-pages", 0)) == bmeta["final"]["front_pages"],
                  f"{len(slabs)} slab rects, e.g. {slabs[:1]}; {len(bstates)} states, {len(bsegs)} segments; {sm}")
            try:
                img = png_decode(C)
                g = s["geom"]
                col = {k: hexrgb(v) for k, v in g["colors"].items()}
                n_alloc = n_free = 0
                for y in range(int(g["heap"]["top"]) + 2, int(g["heap"]["bottom"]) - 2, 2):
                    for x in range(int(g["left"]) + 2, int(g["right"]) - 2, 2):
                        c = rgb_at(img, x, y)
                        n_alloc += near(c, col["alloc"], 20)
                        n_free += near(c, col["free"], 20)
                check(f"screenshot: the big map shows allocated and free memory ({n_alloc} and {n_free} sampled pixels)",
                      n_alloc > 500 and n_free > 50, f"{n_alloc} allocated, {n_free} free")
            except Exception as e:  # noqa: BLE001
                check("screenshot: the big map decodes", False, str(e))
    if "F" in doms:
        dom, secs = doms["F"]
        if check(f"browser: the occupancy page loads ({secs:.0f} s)", dom is not None and "data-ready" in dom,
                 "no DOM (timeout or crash); see " + FSHOT + ".log"):
            s = page_state(dom)
            check("browser: the occupancy page has no script error", s["errors"] is not None and not s["errors"].strip(),
                  (s["errors"] or "no #errors element")[:400])
            slab = [r for r in s["rects"] if r.get("data-band") == "front" and r.get("data-status") == "slab"
                    and r.get("data-final") == "1" and r.get("data-addr") == f"0x{front['addr']:x}"]
            check(f"browser: the page's DOM has the final slab-page block: class 48, {FRONT_OCC_USED} of "
                  f"{FRONT_OCC_SLOTS} slots in use",
                  len(slab) == 1 and (slab[0].get("data-class"), slab[0].get("data-used"), slab[0].get("data-slots"),
                                      slab[0].get("data-owner")) == ("48", str(FRONT_OCC_USED), str(FRONT_OCC_SLOTS), "1"),
                  f"{slab} ({len(s['rects'])} rects)")
            p = next(iter(s["probes"].values()), {})
            check("browser: the tooltip's lookup at the page's address finds the slab page with its occupancy",
                  (p.get("data-status"), p.get("data-class"), p.get("data-used"), p.get("data-slots")) ==
                  ("slab", "48", str(FRONT_OCC_USED), str(FRONT_OCC_SLOTS)), str(p))
            hv = s["hover"]
            check("browser: the tooltip under the mouse names the slab page, its size class and its occupancy",
                  hv and hv[0] == "1" and all(w in " ".join(hv[1].split()) for w in (
                      "slab page", f"0x{front['addr']:x}", "size class 48 B", "66 of 1,365 slots in use", "thread 1")),
                  repr(hv)[:500])
            sm = s["summary"] or {}
            check("browser: #summary counts the front's final slab pages and slots in use",
                  sm.get("data-front-used") == str(FRONT_OCC_USED) and int(sm.get("data-front-pages", 0)) >= 1, str(sm))
            g = s["geom"]
            try:
                img = png_decode(FSHOT)
                X = lambda t: g["left"] + (t - g["xa"]) / (g["xb"] - g["xa"]) * (g["right"] - g["left"])  # noqa: E731
                FYp = lambda a: g["front"]["bottom"] - (a - g["front"]["a0"]) / (g["front"]["a1"] - g["front"]["a0"]) * (g["front"]["bottom"] - g["front"]["top"])  # noqa: E731
                col = {k: hexrgb(v) for k, v in g["colors"].items()}
                t, v0 = front["tend"] - 0.75, front["voff"]  # off the cross-hair (at - 0.5) and the highlight's edges
                used_top = v0 + 0x10000 * FRONT_OCC_USED / FRONT_OCC_SLOTS
                pts = [("the page's slots in use (its bottom 4.8%)", t, v0 + (used_top - v0) / 2, "slab"),
                       ("the page's free slots above them", t, v0 + 0x8000, "slabfree"),
                       ("the page's free slots near its top", t, v0 + 0xf000, "slabfree")]
                bad = [f"{w} at ({X(tt):.0f},{FYp(a):.0f}) is {rgb_at(img, X(tt), FYp(a))}, want {c}"
                       for w, tt, a, c in pts if not near(rgb_at(img, X(tt), FYp(a)), col[c])]
                check("screenshot: the slab page is drawn filled to its occupancy (slots in use at the bottom, free above)",
                      not bad, "; ".join(bad))
            except Exception as e:  # noqa: BLE001
                check("screenshot: the occupancy page decodes", False, str(e))
    print(f"(test time {time.time() - started:.0f} s)")


def meta_colors(page):
    with open(page) as f:
        m = re.search(r"var COLORS = (\{.*?\});", f.read())
    return json.loads(m.group(1))


if __name__ == "__main__":
    sys.exit(main())
