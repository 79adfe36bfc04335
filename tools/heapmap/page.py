"""The heap map page: one self-contained HTML file (inline CSS, SVG and JS; nothing is fetched).

The history's block states go into the page as packed typed arrays (base64). The script draws them in two
layers over the same axes: a canvas raster that box-filters every visible state into the pixels it covers (so a
heap of 100 000s of tiny, short-lived blocks still shows its true density, in time O(pixels + states)), and SVG
rectangles (class "blk", with data-off, data-size, data-status, ...) for the states large enough on screen to be
seen one by one, at most a budget of them (the largest first). Zoom and pan redraw both; the tooltip hit-tests
the arrays, so it works on every state, drawn in SVG or only in the raster.

The default profile's front layer gets a lane of its own: its 4 MiB segments side by side, each 64 KiB slab page
at its place in its segment, drawn as a block (class "blk slab", data-class, data-slots, data-used, ...) filled
from the bottom in proportion to its slots in use, over the requests each occupancy lasted; the segment's first
page (its metadata) in a colour of its own."""
import base64
import html
import json
import os
import sys
from array import array

from .replay import META

COLORS = {
    "alloc": "#3a6fc4",    # allocated payload
    "free": "#9ad48f",     # free block
    "header": "#f0a20a",   # the 32-byte header of each block
    "mapped": "#a35bc9",   # mapped block's payload (own lane)
    "kept": "#dcc6e8",     # a freed mapping the mapping cache keeps for reuse (own lane)
    "slab": "#0f8b7d",     # front slab page: the share of its slots in use
    "slabfree": "#bfe8e1", # front slab page: the share of its slots free
    "segmeta": "#6f7a8c",  # a front segment's first page: the metadata of its pages
    "brk": "#d62728",      # the break
    "bg": "#ffffff",
}


def _b64(arr):
    if sys.byteorder != "little":
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode("ascii")


def _pack(h, keep_text=True):
    n = len(h.t0)
    order = sorted(range(n), key=h.t0.__getitem__)
    big = max((h.off[i] + h.size[i] + META for i in range(n)), default=0) >= 2 ** 32
    wide = "d" if big else "I"
    t0 = array("I", (h.t0[i] for i in order))
    t1 = array("I", (h.t1[i] for i in order))
    off = array(wide, (h.off[i] for i in order))
    size = array(wide, (h.size[i] for i in order))
    st = array("B", (h.status[i] for i in order))
    mapped = [[m["t0"], m["t1"], m["voff"], m["size"], "0x%x" % m["addr"], m.get("kept", 0)]
              for m in sorted(h.mapped, key=lambda m: m["t0"])]
    # front page states, compact: a page's address is an index into the table of pages; sizes, slot counts and
    # slots in use fit 16 bits (a page is 64 KiB, the largest class 2 KiB), lane offsets 32 bits while the lane
    # is below 4 GiB
    nf = len(h.f_t0)
    forder = sorted(range(nf), key=h.f_t0.__getitem__)
    page_ids = {a: i for i, a in enumerate(sorted(set(h.f_addr)))}
    fwide = h.front_lane_size >= 2 ** 32
    front = {
        "n": nf,
        "wide": fwide,
        "pages": ["0x%x" % a for a in sorted(page_ids)],
        "t0": _b64(array("I", (h.f_t0[i] for i in forder))),
        "t1": _b64(array("I", (h.f_t1[i] for i in forder))),
        "voff": _b64(array("d" if fwide else "I", (h.f_voff[i] for i in forder))),
        "page": _b64(array("I", (page_ids[h.f_addr[i]] for i in forder))),
        "slot": _b64(array("H", (h.f_slot[i] for i in forder))),
        "slots": _b64(array("H", (h.f_slots[i] for i in forder))),
        "used": _b64(array("H", (h.f_used[i] for i in forder))),
        "owner": _b64(array("I", (h.f_owner[i] for i in forder))),
    }
    segments = [[g["t0"], g["t1"], g["voff"], "0x%x" % g["addr"]] for g in sorted(h.segments, key=lambda g: g["t0"])]
    summ = h.final_summary()
    data = {
        "meta": {
            "source": os.path.basename(h.source),
            "snapshot": h.profile == "snapshot",
            "header": h.header,
            "profile": h.profile,
            "align": h.align,
            "requests": h.n_requests,
            "tEnd": h.t_end,
            "tStart": min(h.t0) if n and min(h.t0) == 0 else 1,
            "states": n + len(h.mapped),
            "transient": h.transient,
            "peakBrk": h.peak_brk,
            "peakMapped": h.peak_mapped,
            "laneSize": h.lane_size,
            "frontLane": h.front_lane_size,
            "frontEvents": h.front,
            "peakFrontPages": h.peak_front_pages,
            "counts": h.counts,
            "cases": h.cases,
            "madvise": len(h.madvise),
            "hugeBytes": sum(x[2] for x in h.huge),
            "warnings": h.warnings,
            "inherited": h.inherited,
            "threads": h.threads,
            "wide": wide == "d",
            "final": summ,
        },
        "seg": {"t0": _b64(t0), "t1": _b64(t1), "off": _b64(off), "size": _b64(size), "st": _b64(st)},
        "mapped": mapped,
        "front": front,
        "segments": segments,
        "brk": h.brk,
        "reqLine": _b64(array("I", h.req_line)),
        "reqText": "\n".join(h.req_text) if keep_text else None,
    }
    return data


def write_html(h, out, title=None, svg_budget=15000, keep_text=True):
    data = _pack(h, keep_text)
    data["meta"]["svgBudget"] = svg_budget
    if not title:
        title = f"osmem heap map: {os.path.basename(h.source)}"
    data["meta"]["title"] = title
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    css_colors = "\n".join(f"  --c-{k}: {v};" for k, v in COLORS.items())
    page = (TEMPLATE
            .replace("@TITLE@", html.escape(title))
            .replace("@COLORS@", css_colors)
            .replace("@COLORSJSON@", json.dumps(COLORS))
            .replace("@DATA@", blob))
    with open(out, "w") as f:
        f.write(page)
    return len(page)


TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@</title>
<style>
:root {
@COLORS@
}
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; background: #f6f7f9; color: #1d2330;
  font: 13px/1.35 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
body { display: flex; flex-direction: column; height: 100vh; min-height: 520px; }
header { padding: 8px 14px 4px 14px; }
h1 { font-size: 17px; margin: 0 0 3px 0; font-weight: 600; }
h1 .src { font-weight: normal; color: #5a6272; font-size: 13px; margin-left: 8px; }
#summary { color: #2b3242; }
#summary b { font-weight: 600; }
#toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; padding: 4px 14px 6px 14px; }
#toolbar .btns { display: flex; gap: 4px; }
button { font: inherit; font-size: 12px; padding: 2px 8px; border: 1px solid #b9c0cc; background: #fff;
  border-radius: 4px; cursor: pointer; color: #1d2330; }
button:hover { background: #eef2f8; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 12px; align-items: center; }
.legend span { display: inline-flex; align-items: center; gap: 5px; white-space: nowrap; }
.sw { display: inline-block; width: 14px; height: 11px; border: 1px solid rgba(0,0,0,.25); }
.sw.line { height: 0; border: 0; border-top: 2px solid var(--c-brk); width: 18px; }
#view { color: #5a6272; font-size: 12px; font-variant-numeric: tabular-nums; }
#plotwrap { position: relative; margin: 0 10px; flex: 1 1 auto; min-height: 360px;
  background: #fff; border: 1px solid #d5d9e0; border-radius: 4px; overflow: hidden; cursor: crosshair;
  user-select: none; }
#plotwrap.drag { cursor: grabbing; }
#raster { position: absolute; left: 0; top: 0; image-rendering: pixelated; }
#plot { position: absolute; left: 0; top: 0; }
#plot text { font-size: 11px; fill: #3a4152; }
#plot .axt { font-size: 12px; fill: #1d2330; }
#plot .tick { stroke: #5a6272; stroke-width: 1; }
#plot .grid { stroke: #000; stroke-opacity: .08; stroke-width: 1; }
#plot .frame { fill: none; stroke: #8a93a3; stroke-width: 1; }
#plot .blk { stroke: none; }
#plot .blk.ol { stroke: #fff; stroke-width: .6; stroke-opacity: .85; }
#plot .blk.alloc { fill: var(--c-alloc); }
#plot .blk.free { fill: var(--c-free); }
#plot .blk.mapped { fill: var(--c-mapped); }
#plot .blk.kept { fill: var(--c-kept); }
#plot .blk.slab { fill: var(--c-slabfree); }
#plot .slabused { fill: var(--c-slab); stroke: none; pointer-events: none; }
#plot .blk.segmeta { fill: var(--c-segmeta); }
#plot .segframe { fill: none; stroke: var(--c-segmeta); stroke-width: 1; stroke-opacity: .6; stroke-dasharray: 3 2; pointer-events: none; }
#plot .hdr { fill: var(--c-header); stroke: none; pointer-events: none; }
#plot .brk { fill: none; stroke: var(--c-brk); stroke-width: 2; stroke-linejoin: round; }
#plot .cross { stroke: #1d2330; stroke-opacity: .45; stroke-width: 1; stroke-dasharray: 3 3; }
#plot .hl { fill: none; stroke: #111; stroke-width: 1.5; }
#tip { position: absolute; display: none; pointer-events: none; background: rgba(255,255,255,.97);
  border: 1px solid #9aa3b3; border-radius: 4px; padding: 6px 8px; box-shadow: 0 2px 8px rgba(0,0,0,.18);
  font-size: 12px; max-width: 460px; z-index: 5; }
#tip code, #info code { font: 11.5px "DejaVu Sans Mono", monospace; }
#tip .st { font-weight: 600; }
#tip .st.alloc { color: var(--c-alloc); } #tip .st.free { color: #2e8a3a; } #tip .st.mapped, #tip .st.kept { color: var(--c-mapped); }
#tip .st.header { color: #b87400; }
#tip .st.slab { color: var(--c-slab); } #tip .st.segmeta { color: var(--c-segmeta); }
#tip .dim { color: #5a6272; }
#info { padding: 5px 14px 10px 14px; color: #5a6272; font-size: 12px; }
#warnings { color: #9a5b00; }
#errors { margin: 6px 14px; padding: 6px 8px; background: #fde8e8; border: 1px solid #e09090; color: #8a1010;
  white-space: pre-wrap; font: 12px monospace; }
#errors:empty { display: none; }
#probe, #geom { display: none; }
</style>
</head>
<body>
<div id="errors"></div>
<script>
(function () {
  var pending = [];
  function report(text) {
    var e = document.getElementById('errors');
    if (e) e.textContent += text + '\n'; else pending.push(text);
  }
  window.__heapmapErrors = pending;
  window.__heapmapReport = report;
  window.onerror = function (msg, src, line, col, err) {
    report('error: ' + msg + ' (line ' + line + ':' + col + ')' + (err && err.stack ? '\n' + err.stack : ''));
    return false;
  };
  window.addEventListener('unhandledrejection', function (ev) { report('unhandled rejection: ' + ev.reason); });
})();
</script>
<header>
  <h1>osmem heap map<span class="src" id="src"></span></h1>
  <div id="summary">loading...</div>
</header>
<div id="toolbar">
  <div class="btns">
    <button id="zin" title="zoom in (both axes), also the mouse wheel">Zoom +</button>
    <button id="zout" title="zoom out (both axes)">Zoom &minus;</button>
    <button id="tin" title="zoom in time only (Shift+wheel)">Time +</button>
    <button id="tout" title="zoom out time only">Time &minus;</button>
    <button id="ain" title="zoom in addresses only (Alt+wheel)">Addr +</button>
    <button id="aout" title="zoom out addresses only">Addr &minus;</button>
    <button id="pl" title="pan to earlier requests (Left arrow)">&#9664;</button>
    <button id="pr" title="pan to later requests (Right arrow)">&#9654;</button>
    <button id="reset" title="show everything (0)">Reset</button>
    <button id="fitfinal" title="zoom on the heap's last requests">Final heap</button>
  </div>
  <div class="legend">
    <span><i class="sw" style="background:var(--c-alloc)"></i>allocated payload</span>
    <span><i class="sw" style="background:var(--c-free)"></i>free block</span>
    <span><i class="sw" style="background:var(--c-header)"></i>header (32 B)</span>
    <span><i class="sw" style="background:var(--c-mapped)"></i>mapped block (own lane)</span>
    <span id="lg-kept"><i class="sw" style="background:var(--c-kept)"></i>kept mapping (freed, kept for reuse)</span>
    <span id="lg-slab"><i class="sw" style="background:linear-gradient(to top, var(--c-slab) 50%, var(--c-slabfree) 50%)"></i>front slab page (filled: slots in use)</span>
    <span id="lg-segmeta"><i class="sw" style="background:var(--c-segmeta)"></i>front segment metadata</span>
    <span><i class="sw line"></i>break</span>
  </div>
  <div id="view"></div>
</div>
<div id="plotwrap">
  <canvas id="raster"></canvas>
  <svg id="plot" xmlns="http://www.w3.org/2000/svg"></svg>
  <div id="tip"></div>
</div>
<div id="info">
  Time runs left to right (one column per request: the heap after it); addresses go up from the heap start H.
  The front lane (default profile) shows the 4 MiB segments of the per-thread caches side by side: each 64 KiB slab
  page of one size class is a block filled from the bottom in proportion to its slots in use.
  Wheel: zoom (Shift: time only, Alt: addresses only); drag: pan; hover: the block under the cursor.
  Headers are drawn at least 1 px tall on blocks at least 4 px tall, so that neighbours stay apart; where blocks
  are smaller than a pixel their colours mix in proportion (many small allocated blocks and their headers look
  greyish blue).
  <span id="lod"></span> <span id="warnings"></span>
</div>
<div id="probe"></div>
<pre id="geom"></pre>
<script type="application/json" id="heapdata">@DATA@</script>
<script>
(function () {
'use strict';
var T_START = performance.now();
var COLORS = @COLORSJSON@;
var META_SIZE = 32;
var D = JSON.parse(document.getElementById('heapdata').textContent);
var M = D.meta;

function b64(s, T) {
  var bin = atob(s), n = bin.length, u8 = new Uint8Array(n);
  for (var i = 0; i < n; i++) u8[i] = bin.charCodeAt(i);
  return new T(u8.buffer);
}
var W = M.wide ? Float64Array : Uint32Array;
var T0 = b64(D.seg.t0, Uint32Array), T1 = b64(D.seg.t1, Uint32Array);
var OFF = b64(D.seg.off, W), SZ = b64(D.seg.size, W), ST = b64(D.seg.st, Uint8Array);
var NS = T0.length;
var MP = D.mapped, NM = MP.length;
var BRK = D.brk;
var REQLINE = b64(D.reqLine, Uint32Array);
var REQTEXT = D.reqText === null ? null : D.reqText.split('\n');
var STNAME = ['free', 'alloc', 'mapped'];
var TEND = M.tEnd, TSTART = M.tStart;
var HAS_LANE = NM > 0;
var FR = D.front || { n: 0 }, NF = FR.n || 0;
function fArr(k, T) { return NF ? b64(FR[k], T) : new T(0); }
var FT0 = fArr('t0', Uint32Array), FT1 = fArr('t1', Uint32Array), FVO = fArr('voff', FR.wide ? Float64Array : Uint32Array),
    FPG = fArr('page', Uint32Array), FSL = fArr('slot', Uint16Array), FSN = fArr('slots', Uint16Array),
    FUS = fArr('used', Uint16Array), FOW = fArr('owner', Uint32Array);
var FPAGES = (FR.pages || []).map(function (a) { return parseInt(a, 16); });
var FAD = new Float64Array(NF);   // FAD[i]: the address of state i's page
for (var fi0 = 0; fi0 < NF; fi0++) FAD[fi0] = FPAGES[FPG[fi0]];
var SEGS = D.segments || [], NSG = SEGS.length;
var HAS_FRONT = NF > 0 || NSG > 0;
var FP = 65536, FSEG = 4194304;   // the front's pages and segments

function rgb(hex) { return [parseInt(hex.substr(1, 2), 16), parseInt(hex.substr(3, 2), 16), parseInt(hex.substr(5, 2), 16)]; }
var CA = rgb(COLORS.alloc), CF = rgb(COLORS.free), CH = rgb(COLORS.header), CM = rgb(COLORS.mapped), CB = rgb(COLORS.bg);
var CK = rgb(COLORS.kept);
var CS = rgb(COLORS.slab), CSF = rgb(COLORS.slabfree), CSM = rgb(COLORS.segmeta);
var PAYCOL = [CF, CA, CM];

// ---------------------------------------------------------------- formatting
function hex(v) { return '0x' + Math.round(v).toString(16); }
function hoff(v) { return 'H+' + hex(v); }
function grp(v) { return Math.round(v).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ','); }
function bytes(v) {
  var a = Math.abs(v);
  if (a >= 1073741824) return +(v / 1073741824).toFixed(a % 1073741824 ? 2 : 0) + ' GiB';
  if (a >= 1048576) return +(v / 1048576).toFixed(a % 1048576 ? 2 : 0) + ' MiB';
  if (a >= 1024) return +(v / 1024).toFixed(a % 1024 ? 1 : 0) + ' KiB';
  return Math.round(v) + ' B';
}
function tickBytes(v) {
  // axis labels: exact (ticks sit on multiples of a power of two), up to three decimals
  var a = Math.abs(v), u = a >= 1073741824 ? ['GiB', 1073741824] : a >= 1048576 ? ['MiB', 1048576] : a >= 1024 ? ['KiB', 1024] : ['B', 1];
  return +(v / u[1]).toFixed(3) + ' ' + u[0];
}
function esc(s) { return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;'); }
function reqText(i) { return REQTEXT && i >= 1 && i < REQTEXT.length ? REQTEXT[i] : ''; }
function reqDesc(i) {
  if (i <= 0) return 'before the trace began';
  if (i >= TEND) return 'still there at the end';
  var t = reqText(i);
  return 'request #' + grp(i) + ' (line ' + grp(REQLINE[i]) + ')' + (t ? ': <code>' + esc(t) + '</code>' : '');
}

// ---------------------------------------------------------------- summary
(function () {
  var f = M.final;
  document.title = M.title + ' (' + (M.snapshot ? 'one snapshot' : grp(M.requests) + ' requests') + ', final heap ' + f.blocks + ' blocks)';
  document.getElementById('src').textContent = M.source + '  (' + M.header + ')';
  var s = document.getElementById('summary');
  s.setAttribute('data-final-blocks', f.blocks);
  s.setAttribute('data-heap-blocks', f.heap_blocks);
  s.setAttribute('data-alloc-blocks', f.alloc_blocks);
  s.setAttribute('data-free-blocks', f.free_blocks);
  s.setAttribute('data-mapped-blocks', f.mapped_blocks);
  s.setAttribute('data-requests', M.requests);
  s.setAttribute('data-brk', f.brk);
  var kinds = Object.keys(M.counts).sort(function (a, b) { return M.counts[b] - M.counts[a]; })
    .map(function (k) { return grp(M.counts[k]) + ' ' + k; }).join(', ');
  s.innerHTML = 'Final heap: <b><span id="final-count">' + f.blocks + '</span> blocks</b> &mdash; ' +
    f.alloc_blocks + ' allocated (' + bytes(f.alloc_bytes) + '), ' + f.free_blocks + ' free (' + bytes(f.free_bytes) +
    ', largest ' + bytes(f.largest_free) + '), ' + f.mapped_blocks + ' mapped (' + bytes(f.mapped_bytes) + '); break at ' +
    hoff(f.brk) + ' (' + bytes(f.brk) + '). ' +
    '<span class="dim">' + (M.snapshot ? 'One snapshot (os_heap_dump): ' + grp(M.states) + ' blocks' :
    grp(M.requests) + ' requests (' + esc(kinds) + '); ' + grp(M.states) + ' block states drawn, ' +
    grp(M.transient) + ' lasted no time') + '; peak break ' + bytes(M.peakBrk) +
    (M.peakMapped ? ', peak mapped ' + bytes(M.peakMapped) : '') + (M.madvise ? ', ' + M.madvise + ' madvise' : '') +
    (M.hugeBytes ? ', ' + bytes(M.hugeBytes) + ' advised for huge pages' : '') + '.</span>';
  s.setAttribute('data-front-segments', f.front_segments);
  s.setAttribute('data-front-pages', f.front_pages);
  s.setAttribute('data-front-used', f.front_used);
  s.setAttribute('data-front-slots', f.front_slots);
  if (HAS_FRONT) {
    var fe = M.frontEvents || {};
    s.innerHTML += '<br>Front (per-thread caches): <b><span id="front-pages">' + f.front_pages + '</span> slab pages</b> in ' +
      f.front_segments + ' segment' + (f.front_segments === 1 ? '' : 's') + ' (' + bytes(f.front_segments * FSEG) + '): ' +
      grp(f.front_used) + ' of ' + grp(f.front_slots) + ' slots in use (' + bytes(f.front_used_bytes) + ', ' +
      bytes(f.front_free_bytes) + ' in free slots). <span class="dim">' + grp(M.counts.slot || 0) + ' slot requests; ' +
      grp(fe.page || 0) + ' pages formatted, peak ' + grp(M.peakFrontPages) + ' at once' +
      (fe.remote_free ? ', ' + grp(fe.remote_free) + ' remote frees' : '') + (fe.abandon ? ', ' + fe.abandon + ' pages abandoned' : '') +
      (fe.adopt ? ', ' + fe.adopt + ' adopted' : '') + '.</span>';
  } else {
    document.getElementById('lg-slab').style.display = 'none';
    document.getElementById('lg-segmeta').style.display = 'none';
  }
  if (!MP.some(function (m) { return m[5]; }))
    document.getElementById('lg-kept').style.display = 'none';
  if (M.warnings.length)
    document.getElementById('warnings').textContent = 'Replay warnings: ' + M.warnings.join('; ');
})();

// ---------------------------------------------------------------- geometry and view
var wrap = document.getElementById('plotwrap'), svg = document.getElementById('plot');
var canvas = document.getElementById('raster'), tip = document.getElementById('tip');
var ML = 78, MR = 14, MT = 10, MB = 40, GAP = 30;
var G = {};            // layout in CSS px, relative to #plotwrap
var HEAP_TOP = Math.max(M.peakBrk, M.final.brk, 64) * 1.03;
var LANE_TOP = Math.max(M.laneSize, 64) * 1.06;
var FRONT_TOP = Math.max(M.frontLane || 0, FP) * 1.03;
var full = { xa: TSTART, xb: TEND, ha: 0, hb: HEAP_TOP, la: 0, lb: LANE_TOP, fa: 0, fb: FRONT_TOP };
var v = Object.assign({}, full);

function layout() {
  var r = wrap.getBoundingClientRect();
  G.w = Math.max(200, Math.floor(r.width) - 2); G.h = Math.max(200, Math.floor(r.height) - 2);
  G.x0 = ML; G.x1 = G.w - MR; G.y0 = MT; G.y1 = G.h - MB;
  var top = G.y0 + 14;
  if (HAS_LANE) {
    var lh = Math.max(46, Math.round((G.y1 - G.y0) * (HAS_FRONT ? 0.15 : 0.2)));
    G.ly0 = top; G.ly1 = G.y0 + lh; top = G.ly1 + GAP;
  }
  if (HAS_FRONT) {
    var fh = Math.max(60, Math.round((G.y1 - G.y0) * 0.4));
    G.fy0 = top; G.fy1 = top + fh; top = G.fy1 + GAP;
  }
  G.hy0 = top; G.hy1 = G.y1;
  svg.setAttribute('width', G.w); svg.setAttribute('height', G.h);
  svg.setAttribute('viewBox', '0 0 ' + G.w + ' ' + G.h);
}
function X(t) { return G.x0 + (t - v.xa) / (v.xb - v.xa) * (G.x1 - G.x0); }
function TX(x) { return v.xa + (x - G.x0) / (G.x1 - G.x0) * (v.xb - v.xa); }
function HY(a) { return G.hy1 - (a - v.ha) / (v.hb - v.ha) * (G.hy1 - G.hy0); }
function AH(y) { return v.ha + (G.hy1 - y) / (G.hy1 - G.hy0) * (v.hb - v.ha); }
function LY(a) { return G.ly1 - (a - v.la) / (v.lb - v.la) * (G.ly1 - G.ly0); }
function AL(y) { return v.la + (G.ly1 - y) / (G.ly1 - G.ly0) * (v.lb - v.la); }
function FY(a) { return G.fy1 - (a - v.fa) / (v.fb - v.fa) * (G.fy1 - G.fy0); }
function AF(y) { return v.fa + (G.fy1 - y) / (G.fy1 - G.fy0) * (v.fb - v.fa); }
// which band a y (CSS px) belongs to: 1 the mmap lane, 2 the front lane, 0 the heap (the nearest)
function bandAt(y) {
  if (HAS_LANE && y < (G.ly1 + (HAS_FRONT ? G.fy0 : G.hy0)) / 2) return 1;
  if (HAS_FRONT && y < (G.fy1 + G.hy0) / 2) return 2;
  return 0;
}

function clampView() {
  var minX = 1, minA = 16;
  if (v.xb - v.xa < minX) { var c = (v.xa + v.xb) / 2; v.xa = c - minX / 2; v.xb = c + minX / 2; }
  if (v.hb - v.ha < minA) { var c2 = (v.ha + v.hb) / 2; v.ha = c2 - minA / 2; v.hb = c2 + minA / 2; }
  if (v.lb - v.la < minA) { var c3 = (v.la + v.lb) / 2; v.la = c3 - minA / 2; v.lb = c3 + minA / 2; }
  if (v.fb - v.fa < minA) { var c4 = (v.fa + v.fb) / 2; v.fa = c4 - minA / 2; v.fb = c4 + minA / 2; }
  var fsp = v.fb - v.fa;
  if (fsp > full.fb) { v.fa = 0; v.fb = full.fb; }
  else { if (v.fa < 0) { v.fb -= v.fa; v.fa = 0; } if (v.fb > full.fb) { v.fa -= v.fb - full.fb; v.fb = full.fb; } }
  var span = v.xb - v.xa, fs = full.xb - full.xa;
  if (span > fs) { v.xa = full.xa; v.xb = full.xb; }
  else { if (v.xa < full.xa) { v.xb += full.xa - v.xa; v.xa = full.xa; } if (v.xb > full.xb) { v.xa -= v.xb - full.xb; v.xb = full.xb; } }
  var hs = v.hb - v.ha;
  if (hs > full.hb) { v.ha = 0; v.hb = full.hb; }
  else { if (v.ha < 0) { v.hb -= v.ha; v.ha = 0; } if (v.hb > full.hb) { v.ha -= v.hb - full.hb; v.hb = full.hb; } }
  var ls = v.lb - v.la;
  if (ls > full.lb) { v.la = 0; v.lb = full.lb; }
  else { if (v.la < 0) { v.lb -= v.la; v.la = 0; } if (v.lb > full.lb) { v.la -= v.lb - full.lb; v.lb = full.lb; } }
}

// ---------------------------------------------------------------- raster layer (every state, box-filtered)
var acc = null, accN = 0, CW = 0, CHh = 0, DPR = 1;
function box(x0, x1, y0, y1, c, bx0, bx1, by0, by1) {
  // adds the colour c over [x0,x1) x [y0,y1) (device px, relative to the canvas), clipped to the band
  if (x0 < bx0) x0 = bx0; if (x1 > bx1) x1 = bx1; if (y0 < by0) y0 = by0; if (y1 > by1) y1 = by1;
  if (x1 <= x0 || y1 <= y0) return;
  var ix0 = Math.floor(x0), ix1 = Math.ceil(x1), iy0 = Math.floor(y0), iy1 = Math.ceil(y1);
  var r = c[0], g = c[1], b = c[2];
  for (var iy = iy0; iy < iy1; iy++) {
    var wy = Math.min(y1, iy + 1) - Math.max(y0, iy);
    var row = iy * CW;
    for (var ix = ix0; ix < ix1; ix++) {
      var w = wy * (Math.min(x1, ix + 1) - Math.max(x0, ix));
      var k = (row + ix) * 4;
      acc[k] += w * r; acc[k + 1] += w * g; acc[k + 2] += w * b; acc[k + 3] += w;
    }
  }
}
function drawBlock(x0, x1, yTop, yHdr, yBot, c, bx0, bx1, by0, by1) {
  // one block state: payload [yTop, yHdr), header [yHdr, yBot) (y grows downward)
  if (yBot - yTop >= 4 * DPR && yBot - yHdr < DPR) yHdr = yBot - DPR;
  box(x0, x1, yTop, yHdr, c, bx0, bx1, by0, by1);
  box(x0, x1, yHdr, yBot, CH, bx0, bx1, by0, by1);
}
function raster() {
  DPR = window.devicePixelRatio || 1;
  var w = Math.round((G.x1 - G.x0) * DPR), h = Math.round((G.y1 - G.y0) * DPR);
  canvas.width = w; canvas.height = h;
  canvas.style.left = G.x0 + 'px'; canvas.style.top = G.y0 + 'px';
  canvas.style.width = (G.x1 - G.x0) + 'px'; canvas.style.height = (G.y1 - G.y0) + 'px';
  CW = w; CHh = h;
  if (!acc || accN !== w * h * 4) { acc = new Float32Array(w * h * 4); accN = w * h * 4; } else acc.fill(0);
  var sx = (G.x1 - G.x0) / (v.xb - v.xa) * DPR;
  var ox = -v.xa * sx;
  // heap band
  var hs = (G.hy1 - G.hy0) / (v.hb - v.ha) * DPR, hbase = (G.hy1 - G.y0) * DPR + v.ha * hs;
  var by0 = (G.hy0 - G.y0) * DPR, by1 = (G.hy1 - G.y0) * DPR;
  var xa = v.xa, xb = v.xb, ha = v.ha, hb = v.hb;
  for (var i = 0; i < NS; i++) {
    var t0 = T0[i];
    if (t0 >= xb) break;              // sorted by t0
    var t1 = T1[i];
    if (t1 <= xa) continue;
    var o = OFF[i], e = o + META_SIZE + SZ[i];
    if (e <= ha || o >= hb) continue;
    drawBlock(t0 * sx + ox, t1 * sx + ox, hbase - e * hs, hbase - (o + META_SIZE) * hs, hbase - o * hs,
              PAYCOL[ST[i]], 0, w, by0, by1);
  }
  if (HAS_LANE) {
    var ls = (G.ly1 - G.ly0) / (v.lb - v.la) * DPR, lbase = (G.ly1 - G.y0) * DPR + v.la * ls;
    var ly0 = (G.ly0 - G.y0) * DPR, ly1 = (G.ly1 - G.y0) * DPR;
    for (var j = 0; j < NM; j++) {
      var m = MP[j];
      if (m[0] >= xb || m[1] <= xa) continue;
      var mo = m[2], me = mo + META_SIZE + m[3];
      drawBlock(m[0] * sx + ox, m[1] * sx + ox, lbase - me * ls, lbase - (mo + META_SIZE) * ls, lbase - mo * ls,
                m[5] ? CK : CM, 0, w, ly0, ly1);
    }
  }
  if (HAS_FRONT) {
    // front lane: each segment's metadata page, and each slab page state: the share of its slots in use from
    // the bottom, the free share above it
    var fs = (G.fy1 - G.fy0) / (v.fb - v.fa) * DPR, fbase = (G.fy1 - G.y0) * DPR + v.fa * fs;
    var fy0 = (G.fy0 - G.y0) * DPR, fy1 = (G.fy1 - G.y0) * DPR, fa = v.fa, fb = v.fb;
    for (var g = 0; g < NSG; g++) {
      var sg = SEGS[g];
      if (sg[0] >= xb || sg[1] <= xa || sg[2] + FP <= fa || sg[2] >= fb) continue;
      box(sg[0] * sx + ox, sg[1] * sx + ox, fbase - (sg[2] + FP) * fs, fbase - sg[2] * fs, CSM, 0, w, fy0, fy1);
    }
    for (var f = 0; f < NF; f++) {
      var ft0 = FT0[f];
      if (ft0 >= xb) break;             // sorted by t0
      var ft1 = FT1[f];
      if (ft1 <= xa) continue;
      var fo = FVO[f], fe = fo + FP;
      if (fe <= fa || fo >= fb) continue;
      var fu = fo + FP * FUS[f] / FSN[f], fx0 = ft0 * sx + ox, fx1 = ft1 * sx + ox;
      box(fx0, fx1, fbase - fu * fs, fbase - fo * fs, CS, 0, w, fy0, fy1);
      box(fx0, fx1, fbase - fe * fs, fbase - fu * fs, CSF, 0, w, fy0, fy1);
    }
  }
  var ctx = canvas.getContext('2d');
  var img = ctx.createImageData(w, h), px = img.data;
  for (var k = 0, n = w * h * 4; k < n; k += 4) {
    var a = acc[k + 3];
    if (a > 1) { px[k] = acc[k] / a; px[k + 1] = acc[k + 1] / a; px[k + 2] = acc[k + 2] / a; }
    else { var u = 1 - a; px[k] = acc[k] + u * CB[0]; px[k + 1] = acc[k + 1] + u * CB[1]; px[k + 2] = acc[k + 2] + u * CB[2]; }
    px[k + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// ---------------------------------------------------------------- SVG layer (axes, large blocks, break)
function niceStep(span, target, pow2) {
  var raw = span / Math.max(1, target);
  if (pow2) { var p = 1; while (p < raw) p *= 2; return p; }
  var e = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / e;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e;
}
function ticks(a, b, step) { var r = []; for (var t = Math.ceil(a / step) * step; t <= b + 1e-9; t += step) r.push(t); return r; }

var lastDrawn = 0, lodNote = '', visIdx = null, visArea = null, visBand = null, timing = {};
function pageTitle(f) {
  return FOW[f] ? 'thread ' + FOW[f] : 'abandoned (its thread exited)';
}
// a front candidate as SVG: a slab page state (band 2: the block, and its share of slots in use from the bottom)
// or a segment's metadata page (band 3, with a dashed frame around the whole segment)
function frontRect(c, rects) {
  var band = c[0], i = c[1], cx0 = c[2], cx1 = c[3], cy0 = c[4], cy1 = c[5], w = cx1 - cx0, h = cy1 - cy0;
  var a0, a1, attrs;
  if (band === 2) {
    a0 = FT0[i]; a1 = FT1[i];
    attrs = 'class="blk slab' + (w >= 6 && h >= 6 ? ' ol' : '') + '" data-band="front" data-i="' + i + '" data-addr="' + hex(FAD[i]) +
      '" data-status="slab" data-class="' + FSL[i] + '" data-slots="' + FSN[i] + '" data-used="' + FUS[i] + '" data-owner="' + FOW[i] + '"';
  } else {
    var sg = SEGS[i];
    a0 = sg[0]; a1 = sg[1];
    attrs = 'class="blk segmeta" data-band="front" data-i="' + i + '" data-addr="' + sg[3] + '" data-status="segment"';
  }
  rects.push('<rect ' + attrs + ' data-t0="' + a0 + '" data-t1="' + a1 + '"' + (a1 >= TEND ? ' data-final="1"' : '') +
    ' x="' + cx0.toFixed(2) + '" y="' + cy0.toFixed(2) + '" width="' + w.toFixed(2) + '" height="' + h.toFixed(2) + '"/>');
  if (band === 2) {
    var yu = Math.max(cy0, FY(FVO[i] + FP * FUS[i] / FSN[i]));
    if (cy1 > yu) rects.push('<rect class="slabused" x="' + cx0.toFixed(2) + '" y="' + yu.toFixed(2) + '" width="' + w.toFixed(2) + '" height="' + (cy1 - yu).toFixed(2) + '"/>');
  } else {
    var sy0 = Math.max(G.fy0, FY(SEGS[i][2] + FSEG)), sy1 = Math.min(G.fy1, FY(SEGS[i][2]));
    if (sy1 > sy0) rects.push('<rect class="segframe" x="' + cx0.toFixed(2) + '" y="' + sy0.toFixed(2) + '" width="' + w.toFixed(2) + '" height="' + (sy1 - sy0).toFixed(2) + '"/>');
  }
}
function render() {
  layout();
  clampView();
  var tR = performance.now();
  raster();
  timing.raster = performance.now() - tR;
  var out = [];
  out.push('<defs><clipPath id="cheap"><rect x="' + G.x0 + '" y="' + G.hy0 + '" width="' + (G.x1 - G.x0) + '" height="' + (G.hy1 - G.hy0) + '"/></clipPath>');
  if (HAS_LANE) out.push('<clipPath id="clane"><rect x="' + G.x0 + '" y="' + G.ly0 + '" width="' + (G.x1 - G.x0) + '" height="' + (G.ly1 - G.ly0) + '"/></clipPath>');
  if (HAS_FRONT) out.push('<clipPath id="cfront"><rect x="' + G.x0 + '" y="' + G.fy0 + '" width="' + (G.x1 - G.x0) + '" height="' + (G.fy1 - G.fy0) + '"/></clipPath>');
  out.push('</defs>');
  // x axis: requests
  var xs = niceStep(v.xb - v.xa, (G.x1 - G.x0) / 90, false);
  if (xs < 1) xs = 1;
  var xt = ticks(Math.ceil(v.xa - 0.5), v.xb, xs), xticks = [];
  xt.forEach(function (t) {
    var x = X(t + 0.5);
    if (x < G.x0 - 0.5 || x > G.x1 + 0.5) return;
    xticks.push('<line class="grid" x1="' + x + '" x2="' + x + '" y1="' + G.y0 + '" y2="' + G.y1 + '"/>' +
      '<line class="tick" x1="' + x + '" x2="' + x + '" y1="' + G.y1 + '" y2="' + (G.y1 + 5) + '"/>' +
      '<text x="' + x + '" y="' + (G.y1 + 17) + '" text-anchor="' + (x > G.w - 28 ? 'end' : 'middle') + '">' + grp(t) + '</text>');
  });
  out.push('<text class="axt" x="' + ((G.x0 + G.x1) / 2) + '" y="' + (G.y1 + 34) + '" text-anchor="middle">' + (M.snapshot ? 'os_heap_dump snapshot' : 'request # (each column: the heap after that request)') + '</text>');
  // y axes
  function yaxis(a, b, Y, y0, y1, label) {
    var st = niceStep(b - a, (y1 - y0) / 34, true), s = [];
    ticks(a, b, st).forEach(function (t) {
      var y = Y(t);
      if (y < y0 - 0.5 || y > y1 + 0.5) return;
      s.push('<line class="grid" x1="' + G.x0 + '" x2="' + G.x1 + '" y1="' + y + '" y2="' + y + '"/>' +
        '<line class="tick" x1="' + (G.x0 - 5) + '" x2="' + G.x0 + '" y1="' + y + '" y2="' + y + '"/>' +
        '<text x="' + (G.x0 - 8) + '" y="' + (y + 4) + '" text-anchor="end">' + tickBytes(t) + '</text>');
    });
    s.push('<text class="axt" transform="translate(' + 14 + ',' + ((y0 + y1) / 2) + ') rotate(-90)" text-anchor="middle">' + label + '</text>');
    return s.join('');
  }
  out.push(yaxis(v.ha, v.hb, HY, G.hy0, G.hy1, 'heap offset from H'));
  out.push('<text x="' + (G.x0 + 4) + '" y="' + (G.hy0 - 4) + '">heap (sbrk): offsets from the heap start H</text>');
  if (HAS_LANE) {
    out.push(yaxis(v.la, v.lb, LY, G.ly0, G.ly1, 'mmap lane'));
    out.push('<text x="' + (G.x0 + 4) + '" y="' + (G.ly0 - 4) + '">mapped blocks (mmap), packed side by side: they live far from the heap</text>');
  }
  if (HAS_FRONT) {
    out.push(yaxis(v.fa, v.fb, FY, G.fy0, G.fy1, 'front lane'));
    out.push('<text x="' + (G.x0 + 4) + '" y="' + (G.fy0 - 4) + '">front (per-thread caches): 4 MiB segments side by side, 64 KiB slab pages of one size class, filled by their slots in use</text>');
  }
  out.push(xticks.join(''));
  // blocks large enough on screen: SVG rectangles with data attributes. All of them while they fit the
  // budget; else the largest on screen (the raster beneath shows the rest).
  var budget = M.svgBudget, tSvg = performance.now();
  var hsc = (G.hy1 - G.hy0) / (v.hb - v.ha), lsc = HAS_LANE ? (G.ly1 - G.ly0) / (v.lb - v.la) : 1;
  var fsc = HAS_FRONT ? (G.fy1 - G.fy0) / (v.fb - v.fa) : 1;
  var sxc = (G.x1 - G.x0) / (v.xb - v.xa);
  if (!visIdx || visIdx.length < NS + NF) { visIdx = new Int32Array(NS + NF); visArea = new Float64Array(NS + NF); visBand = new Int8Array(NS + NF); }
  var nv = 0;
  for (var i = 0; i < NS; i++) {
    var t0 = T0[i];
    if (t0 >= v.xb) break;
    var t1 = T1[i];
    if (t1 <= v.xa) continue;
    var o = OFF[i], e = o + META_SIZE + SZ[i];
    if (e <= v.ha || o >= v.hb) continue;
    var w0 = (Math.min(t1, v.xb) - Math.max(t0, v.xa)) * sxc, h0 = (Math.min(e, v.hb) - Math.max(o, v.ha)) * hsc;
    visIdx[nv] = i; visBand[nv] = 0; visArea[nv] = w0 >= 1.5 && h0 >= 1.5 ? w0 * h0 : -1; nv++;
  }
  for (var f = 0; f < NF; f++) {
    var ft0 = FT0[f];
    if (ft0 >= v.xb) break;
    var ft1 = FT1[f];
    if (ft1 <= v.xa) continue;
    var fo = FVO[f], fe = fo + FP;
    if (fe <= v.fa || fo >= v.fb) continue;
    var fw = (Math.min(ft1, v.xb) - Math.max(ft0, v.xa)) * sxc, fh = (Math.min(fe, v.fb) - Math.max(fo, v.fa)) * fsc;
    visIdx[nv] = f; visBand[nv] = 2; visArea[nv] = fw >= 1.5 && fh >= 1.5 ? fw * fh : -1; nv++;
  }
  var visible = nv, cand = [];
  function geom(band, i, x0, x1, yTop, yBot, by0, by1) {
    var cx0 = Math.max(x0, G.x0), cx1 = Math.min(x1, G.x1), cy0 = Math.max(yTop, by0), cy1 = Math.min(yBot, by1);
    if (cx1 > cx0 && cy1 > cy0) cand.push([band, i, cx0, cx1, cy0, cy1, yBot]);
  }
  if (HAS_LANE) {
    for (var j = 0; j < NM; j++) {
      var m = MP[j];
      if (m[0] >= v.xb || m[1] <= v.xa) continue;
      var mo = m[2], me = mo + META_SIZE + m[3];
      if (me <= v.la || mo >= v.lb) continue;
      visible++;
      var lyb = LY(mo);
      geom(1, j, X(m[0]), X(m[1]), lyb - (me - mo) * lsc, lyb, G.ly0, G.ly1);
    }
  }
  if (HAS_FRONT) {
    for (var g = 0; g < NSG; g++) {
      var sg = SEGS[g];
      if (sg[0] >= v.xb || sg[1] <= v.xa || sg[2] + FSEG <= v.fa || sg[2] >= v.fb) continue;
      visible++;
      geom(3, g, X(sg[0]), X(sg[1]), FY(sg[2] + FP), FY(sg[2]), G.fy0, G.fy1);
    }
  }
  var room = Math.max(0, budget - cand.length), thr = -1;
  if (nv > room) {
    // too many: only states at least 1.5 px by 1.5 px on screen, the largest first
    var big = 0;
    for (var q0 = 0; q0 < nv; q0++) if (visArea[q0] > 0) big++;
    if (big > room) {
      var sorted = visArea.slice(0, nv).sort();
      thr = room ? sorted[nv - room] : Infinity;
    } else thr = 0;
  }
  for (var q = 0; q < nv && room > 0; q++) {
    if (visArea[q] < thr) continue;
    var k0 = visIdx[q];
    if (visBand[q] === 2) {
      geom(2, k0, X(FT0[k0]), X(FT1[k0]), FY(FVO[k0] + FP), FY(FVO[k0]), G.fy0, G.fy1);
    } else {
      var ob = OFF[k0], eb = ob + META_SIZE + SZ[k0], yb0 = HY(ob);
      geom(0, k0, X(T0[k0]), X(T1[k0]), yb0 - (eb - ob) * hsc, yb0, G.hy0, G.hy1);
    }
    room--;
  }
  var shown = cand;
  var rects = [];
  for (var k = 0; k < shown.length; k++) {
    var c = shown[k], band = c[0], idx = c[1], cx0 = c[2], cx1 = c[3], cy0 = c[4], cy1 = c[5], ybot = c[6];
    if (band >= 2) { frontRect(c, rects); continue; }
    var st, off, size, a0, a1, extra, sc;
    if (band === 0) { st = ST[idx]; off = OFF[idx]; size = SZ[idx]; a0 = T0[idx]; a1 = T1[idx]; extra = ''; sc = hsc; }
    else { var mm = MP[idx]; st = 2; off = mm[2]; size = mm[3]; a0 = mm[0]; a1 = mm[1]; extra = ' data-addr="' + mm[4] + '"'; sc = lsc; }
    var w = cx1 - cx0, h = cy1 - cy0, stn = band && MP[idx][5] ? 'kept' : STNAME[st];
    rects.push('<rect class="blk ' + stn + (w >= 6 && h >= 6 ? ' ol' : '') + '" data-band="' + (band ? 'mapped' : 'heap') +
      '" data-i="' + idx + '" data-off="' + hex(off) + '" data-size="' + size + '" data-bytes="' + (size + META_SIZE) +
      '" data-status="' + stn + '" data-t0="' + a0 + '" data-t1="' + a1 + '"' + (a1 >= TEND ? ' data-final="1"' : '') + extra +
      ' x="' + cx0.toFixed(2) + '" y="' + cy0.toFixed(2) + '" width="' + w.toFixed(2) + '" height="' + h.toFixed(2) + '"/>');
    if (ybot - cy0 >= 4) {
      // the header strip at the block's low end (at least 1 px)
      var hh = Math.max(1, META_SIZE * sc), hy0 = Math.max(cy0, ybot - hh), hy1 = Math.min(cy1, ybot);
      if (hy1 > hy0) rects.push('<rect class="hdr" x="' + cx0.toFixed(2) + '" y="' + hy0.toFixed(2) + '" width="' + w.toFixed(2) + '" height="' + (hy1 - hy0).toFixed(2) + '"/>');
    }
  }
  out.push('<g id="blocks">' + rects.join('') + '</g>');
  // the break, as a step line: the value after each request that moved it
  var pts = [], si = 0;
  for (var b = 0; b < BRK.length; b++) if (BRK[b][0] <= v.xa) si = b;
  var vPrev = BRK[si][1];
  pts.push(X(v.xa) + ',' + HY(vPrev));
  for (var b2 = si + 1; b2 < BRK.length && BRK[b2][0] <= v.xb; b2++) {
    var xb2 = X(BRK[b2][0]);
    pts.push(xb2 + ',' + HY(vPrev), xb2 + ',' + HY(BRK[b2][1]));
    vPrev = BRK[b2][1];
  }
  pts.push(X(v.xb) + ',' + HY(vPrev));
  if (BRK.length > 1) out.push('<polyline class="brk" clip-path="url(#cheap)" points="' + pts.join(' ') + '"/>');
  out.push('<rect class="frame" x="' + G.x0 + '" y="' + G.hy0 + '" width="' + (G.x1 - G.x0) + '" height="' + (G.hy1 - G.hy0) + '"/>');
  if (HAS_LANE) out.push('<rect class="frame" x="' + G.x0 + '" y="' + G.ly0 + '" width="' + (G.x1 - G.x0) + '" height="' + (G.ly1 - G.ly0) + '"/>');
  if (HAS_FRONT) out.push('<rect class="frame" x="' + G.x0 + '" y="' + G.fy0 + '" width="' + (G.x1 - G.x0) + '" height="' + (G.fy1 - G.fy0) + '"/>');
  out.push('<line id="cross" class="cross" x1="-10" x2="-10" y1="' + G.y0 + '" y2="' + G.y1 + '"/><rect id="hl" class="hl" x="-10" y="-10" width="0" height="0"/>');
  svg.innerHTML = out.join('');
  lastDrawn = shown.length;
  timing.svg = performance.now() - tSvg;
  lodNote = visible > shown.length
    ? 'Level of detail: ' + grp(visible) + ' block states in view; the ' + grp(shown.length) + ' largest on screen are SVG rectangles, the rest are painted in the raster beneath (hover works on all). Zoom in for more.'
    : 'In view: ' + grp(visible) + ' block states, each an SVG rectangle.';
  document.getElementById('lod').textContent = lodNote;
  document.getElementById('view').textContent = 'in view: requests ' + grp(Math.max(1, Math.floor(v.xa))) + '\u2013' + grp(Math.min(M.requests, Math.ceil(v.xb) - 1)) +
    ' \u00b7 heap ' + bytes(v.ha) + '\u2013' + bytes(v.hb);
  writeGeom();
  if (lastMouse && tip.style.display === 'block') showTip(lastMouse[0], lastMouse[1]);
  document.body.setAttribute('data-raster-ms', Math.round(timing.raster));
  document.body.setAttribute('data-svg-ms', Math.round(timing.svg));
}

function writeGeom() {
  var r = wrap.getBoundingClientRect(), ox = r.left + window.scrollX + wrap.clientLeft, oy = r.top + window.scrollY + wrap.clientTop;
  var g = { left: ox + G.x0, right: ox + G.x1, xa: v.xa, xb: v.xb,
    heap: { top: oy + G.hy0, bottom: oy + G.hy1, a0: v.ha, a1: v.hb },
    lane: HAS_LANE ? { top: oy + G.ly0, bottom: oy + G.ly1, a0: v.la, a1: v.lb } : null,
    front: HAS_FRONT ? { top: oy + G.fy0, bottom: oy + G.fy1, a0: v.fa, a1: v.fb } : null,
    svgBlocks: lastDrawn, colors: COLORS };
  document.getElementById('geom').textContent = JSON.stringify(g);
}

var queued = false;
function redraw() { if (!queued) { queued = true; requestAnimationFrame(function () { queued = false; render(); }); } }

// ---------------------------------------------------------------- hit testing and the tooltip
function hitHeap(t, a) {
  for (var i = 0; i < NS; i++) {
    if (T0[i] > t) break;
    if (t < T1[i] && OFF[i] <= a && a < OFF[i] + META_SIZE + SZ[i]) return i;
  }
  return -1;
}
function hitLane(t, a) {
  for (var j = 0; j < NM; j++) {
    var m = MP[j];
    if (m[0] <= t && t < m[1] && m[2] <= a && a < m[2] + META_SIZE + m[3]) return j;
  }
  return -1;
}
function hitFront(t, a) {
  for (var f = 0; f < NF; f++) {
    if (FT0[f] > t) break;
    if (t < FT1[f] && FVO[f] <= a && a < FVO[f] + FP) return f;
  }
  return -1;
}
function hitSeg(t, a) {
  for (var g = 0; g < NSG; g++) {
    var sg = SEGS[g];
    if (sg[0] <= t && t < sg[1] && sg[2] <= a && a < sg[2] + FSEG) return g;
  }
  return -1;
}
// an absolute address in a front segment that is mapped at time t -> its place in the front lane (-1: none)
function frontLaneOf(t, addr) {
  for (var g = 0; g < NSG; g++) {
    var sg = SEGS[g], base = parseInt(sg[3], 16);
    if (sg[0] <= t && t < sg[1] && base <= addr && addr < base + FSEG) return sg[2] + (addr - base);
  }
  return -1;
}
function describeFront(i, g, t, a) {
  var r = Math.floor(t), now = r >= 1 && r < TEND ? 'After ' + reqDesc(r) : (r < 1 ? 'Before the first request' : '');
  var s;
  if (i >= 0) {
    var used = FUS[i], slots = FSN[i], slot = FSL[i];
    s = '<span class="st slab">slab page</span> at <code>' + hex(FAD[i]) + '</code>, size class <b>' + grp(slot) + ' B</b>' +
      '<br><b>' + grp(used) + ' of ' + grp(slots) + ' slots in use</b> (' + (100 * used / slots).toFixed(1) + '%): ' +
      bytes(used * slot) + ' in use, ' + bytes((slots - used) * slot) + ' free' +
      (FP - slots * slot ? ', ' + grp(FP - slots * slot) + ' B left over' : '') +
      '<br>owner: ' + pageTitle(i) +
      '<br>this state: requests ' + grp(Math.max(FT0[i], 1)) + '\u2013' + grp(FT1[i] - 1) + ' (' + grp(FT1[i] - FT0[i]) + ' request' + (FT1[i] - FT0[i] === 1 ? '' : 's') + ')' +
      '<br>began with ' + reqDesc(FT0[i]) +
      '<br>' + (FT1[i] >= TEND ? 'ended: <b>still there at the end</b> (final heap)' : 'ended by ' + reqDesc(FT1[i]));
  } else if (g >= 0) {
    var sg = SEGS[g], base = parseInt(sg[3], 16), at = base + (a - sg[2]);
    s = (a < sg[2] + FP
      ? '<span class="st segmeta">segment metadata</span>: the first 64 KiB page of segment <code>' + sg[3] + '</code> describes its 63 pages'
      : 'a free page of segment <code>' + sg[3] + '</code> (in the pool, or kept empty by a thread): <code>' + hex(at - (at % FP)) + '</code>') +
      '<br>segment mapped by ' + reqDesc(sg[0]) + '<br>' + (sg[1] >= TEND ? 'still mapped at the end' : 'unmapped by ' + reqDesc(sg[1]));
  } else {
    s = 'No front segment here';
  }
  return s + '<div class="dim" style="margin-top:3px">' + now + (g >= 0 ? '<br>address ' + hex(parseInt(SEGS[g][3], 16) + (a - SEGS[g][2])) : '') + '</div>';
}
function brkAt(t) {
  var lo = 0, hi = BRK.length - 1;
  while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (BRK[mid][0] <= t) lo = mid; else hi = mid - 1; }
  return BRK[lo][1];
}
function describe(band, idx, t, a, onHeaderPx) {
  var r = Math.floor(t), now = r >= 1 && r < TEND ? 'After ' + reqDesc(r) : (r < 1 ? 'Before the first request' : '');
  var brk = brkAt(r);
  var s;
  if (idx < 0) {
    s = (band === 0 ? (a >= brk ? 'Above the break (not heap memory)' : 'No block known here') : 'No mapping here');
  } else {
    var st, off, size, a0, a1, where;
    if (band === 0) { st = STNAME[ST[idx]]; off = OFF[idx]; size = SZ[idx]; a0 = T0[idx]; a1 = T1[idx]; where = hoff(off); }
    else { var m = MP[idx]; st = m[5] ? 'kept' : 'mapped'; off = m[2]; size = m[3]; a0 = m[0]; a1 = m[1]; where = m[4]; }
    var onHdr = onHeaderPx || a < off + META_SIZE;
    var span = band === 0 ? '[' + hoff(off) + ', ' + hoff(off + META_SIZE + size) + ')' : '[' + where + ', ' + hex(parseInt(where, 16) + META_SIZE + size) + ')';
    s = '<span class="st ' + (onHdr && st !== 'kept' ? 'header' : st) + '">' + (st === 'kept' ? 'kept mapping (freed, kept for the next request that size)' : onHdr ? 'header of a' + (st === 'alloc' ? 'n allocated' : st === 'free' ? ' free' : ' mapped') + ' block' : st === 'alloc' ? 'allocated block' : st === 'free' ? 'free block' : 'mapped block') + '</span>' +
      ' at <code>' + where + '</code>' + (band === 0 && st === 'alloc' ? ' <span class="dim">(pointer <code>' + hoff(off + META_SIZE) + '</code>)</span>' : '') +
      '<br>size <b>' + grp(size) + ' B</b> + 32 B header = ' + grp(size + META_SIZE) + ' B <span class="dim">' + span + '</span>' +
      '<br>this state: requests ' + grp(Math.max(a0, 1)) + '\u2013' + grp(a1 - 1) + ' (' + grp(a1 - a0) + ' request' + (a1 - a0 === 1 ? '' : 's') + ')' +
      '<br>created by ' + reqDesc(a0) +
      '<br>' + (a1 >= TEND ? 'ended: <b>still there at the end</b> (final heap)' : 'ended by ' + reqDesc(a1)) +
      (band === 1 ? '<br><span class="dim">lane offset ' + bytes(off) + ' (mappings are packed for display)</span>' : '');
  }
  return s + '<div class="dim" style="margin-top:3px">' + now + (band === 0 ? '<br>address ' + hoff(a) + ' \u00b7 break ' + hoff(brk) : '') + '</div>';
}
function locate(mx, my) {
  if (mx < G.x0 || mx > G.x1) return null;
  var t = TX(mx);
  if (my >= G.hy0 && my <= G.hy1) {
    var a = AH(my), i = hitHeap(t, a), hdr = false;
    if (i < 0 && a >= 0) {
      // the pixel may be an enlarged header strip: look 1 px lower
      var j = hitHeap(t, AH(my + 1));
      if (j >= 0 && HY(OFF[j]) - my <= 1.01 && HY(OFF[j]) - HY(OFF[j] + META_SIZE + SZ[j]) >= 4) { i = j; hdr = true; }
    } else if (i >= 0) {
      var yb = HY(OFF[i]);
      hdr = (yb - HY(OFF[i] + META_SIZE + SZ[i]) >= 4) && (yb - my <= 1);
    }
    return { band: 0, t: t, a: a, i: i, hdr: hdr };
  }
  if (HAS_LANE && my >= G.ly0 && my <= G.ly1) {
    var la = AL(my);
    return { band: 1, t: t, a: la, i: hitLane(t, la), hdr: false };
  }
  if (HAS_FRONT && my >= G.fy0 && my <= G.fy1) {
    var fa = AF(my);
    return { band: 2, t: t, a: fa, i: hitFront(t, fa), g: hitSeg(t, fa), hdr: false };
  }
  return null;
}
var lastMouse = null;
function showTip(mx, my) {
  lastMouse = [mx, my];
  var L = locate(mx, my);
  var cross = document.getElementById('cross'), hl = document.getElementById('hl');
  if (!L) { tip.style.display = 'none'; if (cross) cross.setAttribute('x1', -10), cross.setAttribute('x2', -10); if (hl) hl.setAttribute('width', 0); return; }
  tip.innerHTML = L.band === 2 ? describeFront(L.i, L.g, L.t, L.a) : describe(L.band, L.i, L.t, L.a, L.hdr);
  tip.style.display = 'block';
  var tw = tip.offsetWidth, th = tip.offsetHeight;
  var x = mx + 16, y = my + 14;
  if (x + tw > G.w - 4) x = mx - tw - 12;
  if (y + th > G.h - 4) y = Math.max(4, my - th - 10);
  tip.style.left = x + 'px'; tip.style.top = y + 'px';
  var cx = X(Math.floor(L.t) + 0.5);
  if (cross) { cross.setAttribute('x1', cx); cross.setAttribute('x2', cx); }
  if (hl) {
    if (L.i >= 0) {
      var o, e, a0, a1, Y;
      if (L.band === 0) { o = OFF[L.i]; e = o + META_SIZE + SZ[L.i]; a0 = T0[L.i]; a1 = T1[L.i]; Y = HY; }
      else if (L.band === 2) { o = FVO[L.i]; e = o + FP; a0 = FT0[L.i]; a1 = FT1[L.i]; Y = FY; }
      else { var m = MP[L.i]; o = m[2]; e = o + META_SIZE + m[3]; a0 = m[0]; a1 = m[1]; Y = LY; }
      var x0 = Math.max(X(a0), G.x0 - 2), x1 = Math.min(X(a1), G.x1 + 2), y0 = Y(e), y1 = Y(o);
      var bt = [G.hy0, G.ly0, G.fy0][L.band], bb = [G.hy1, G.ly1, G.fy1][L.band];
      y0 = Math.max(y0, bt - 2); y1 = Math.min(y1, bb + 2);
      if (y1 - y0 < 2) { y0 -= 1; y1 += 1; }
      hl.setAttribute('x', x0); hl.setAttribute('y', y0); hl.setAttribute('width', Math.max(1, x1 - x0)); hl.setAttribute('height', Math.max(1, y1 - y0));
    } else hl.setAttribute('width', 0);
  }
}

// ---------------------------------------------------------------- interaction
function zoomAt(mx, my, fx, fy) {
  var t = TX(Math.min(Math.max(mx, G.x0), G.x1));
  if (fx !== 1) { v.xa = t - (t - v.xa) * fx; v.xb = t + (v.xb - t) * fx; }
  if (fy !== 1) {
    var bz = bandAt(my);
    if (bz === 1) { var la = AL(my); v.la = la - (la - v.la) * fy; v.lb = la + (v.lb - la) * fy; }
    else if (bz === 2) { var fz = AF(Math.min(Math.max(my, G.fy0), G.fy1)); v.fa = fz - (fz - v.fa) * fy; v.fb = fz + (v.fb - fz) * fy; }
    else { var a = AH(Math.min(Math.max(my, G.hy0), G.hy1)); v.ha = a - (a - v.ha) * fy; v.hb = a + (v.hb - a) * fy; }
  }
  clampView(); redraw();
}
function rel(ev) { var r = wrap.getBoundingClientRect(); return [ev.clientX - r.left - wrap.clientLeft, ev.clientY - r.top - wrap.clientTop]; }
wrap.addEventListener('wheel', function (ev) {
  ev.preventDefault();
  var p = rel(ev), f = Math.pow(1.0015, ev.deltaY * (ev.deltaMode === 1 ? 33 : 1));
  f = Math.min(4, Math.max(0.25, f));
  zoomAt(p[0], p[1], ev.altKey ? 1 : f, ev.shiftKey ? 1 : f);
}, { passive: false });
var drag = null;
wrap.addEventListener('mousedown', function (ev) {
  if (ev.button !== 0) return;
  var p = rel(ev);
  drag = { x: p[0], y: p[1], v: Object.assign({}, v), band: bandAt(p[1]) };
  wrap.classList.add('drag'); ev.preventDefault();
});
window.addEventListener('mouseup', function () { drag = null; wrap.classList.remove('drag'); });
var pendingMove = null;
wrap.addEventListener('mousemove', function (ev) {
  var p = rel(ev);
  if (drag) {
    var dt = (p[0] - drag.x) / (G.x1 - G.x0) * (drag.v.xb - drag.v.xa);
    v.xa = drag.v.xa - dt; v.xb = drag.v.xb - dt;
    if (drag.band === 1) { var dl = (p[1] - drag.y) / (G.ly1 - G.ly0) * (drag.v.lb - drag.v.la); v.la = drag.v.la + dl; v.lb = drag.v.lb + dl; }
    else if (drag.band === 2) { var df = (p[1] - drag.y) / (G.fy1 - G.fy0) * (drag.v.fb - drag.v.fa); v.fa = drag.v.fa + df; v.fb = drag.v.fb + df; }
    else { var da = (p[1] - drag.y) / (G.hy1 - G.hy0) * (drag.v.hb - drag.v.ha); v.ha = drag.v.ha + da; v.hb = drag.v.hb + da; }
    clampView(); redraw(); tip.style.display = 'none'; return;
  }
  if (pendingMove === null) requestAnimationFrame(function () { var q = pendingMove; pendingMove = null; if (q) showTip(q[0], q[1]); });
  pendingMove = p;
});
wrap.addEventListener('mouseleave', function () { tip.style.display = 'none'; pendingMove = null; });
function centreZoom(fx, fy) { zoomAt((G.x0 + G.x1) / 2, (G.hy0 + G.hy1) / 2, fx, fy); }
function pan(frac) { var d = (v.xb - v.xa) * frac; v.xa += d; v.xb += d; clampView(); redraw(); }
document.getElementById('zin').onclick = function () { centreZoom(0.5, 0.5); };
document.getElementById('zout').onclick = function () { centreZoom(2, 2); };
document.getElementById('tin').onclick = function () { centreZoom(0.5, 1); };
document.getElementById('tout').onclick = function () { centreZoom(2, 1); };
document.getElementById('ain').onclick = function () { centreZoom(1, 0.5); };
document.getElementById('aout').onclick = function () { centreZoom(1, 2); };
document.getElementById('pl').onclick = function () { pan(-0.25); };
document.getElementById('pr').onclick = function () { pan(0.25); };
document.getElementById('reset').onclick = function () { v = Object.assign({}, full); redraw(); };
document.getElementById('fitfinal').onclick = function () {
  var n = Math.max(1, Math.min(M.requests, 20));
  v.xa = TEND - n; v.xb = TEND; v.ha = 0; v.hb = Math.max(64, M.final.brk * 1.03); v.fa = 0; v.fb = full.fb; clampView(); redraw();
};
window.addEventListener('keydown', function (ev) {
  if (ev.target && /INPUT|TEXTAREA/.test(ev.target.tagName)) return;
  if (ev.key === '+' || ev.key === '=') centreZoom(0.5, 0.5);
  else if (ev.key === '-') centreZoom(2, 2);
  else if (ev.key === '0') { v = Object.assign({}, full); redraw(); }
  else if (ev.key === 'ArrowLeft') pan(-0.25);
  else if (ev.key === 'ArrowRight') pan(0.25);
});
window.addEventListener('resize', redraw);

// ---------------------------------------------------------------- URL hooks: #view=T0:T1:A0:A1 and #probe=T:ADDR
function num(s) { s = String(s).trim(); if (/^H\+/i.test(s)) s = s.substr(2); return /^0x/i.test(s) ? parseInt(s, 16) : parseFloat(s); }
var hash = {};
location.hash.replace(/^#/, '').split('&').forEach(function (kv) { var p = kv.split('='); if (p[0]) hash[p[0]] = decodeURIComponent(p[1] || ''); });
if (hash.height) {
  // a plot of fixed height (CSS px) instead of one that fills the window: for screenshots and embedding
  var hh0 = Math.max(240, parseFloat(hash.height) || 0);
  wrap.style.flex = 'none'; wrap.style.height = hh0 + 'px';
}
if (hash.view) {
  var q = hash.view.split(':').map(num);
  if (q.length >= 2 && isFinite(q[0]) && isFinite(q[1])) { v.xa = q[0]; v.xb = q[1]; }
  if (q.length >= 4 && isFinite(q[2]) && isFinite(q[3])) { v.ha = q[2]; v.hb = q[3]; }
  if (q.length >= 6 && isFinite(q[4]) && isFinite(q[5])) { v.la = q[4]; v.lb = q[5]; }
  if (q.length >= 8 && isFinite(q[6]) && isFinite(q[7])) { v.fa = q[6]; v.fb = q[7]; }
}
var started = performance.now();
render();
document.body.setAttribute('data-first-render-ms', Math.round(performance.now() - started));
document.body.setAttribute('data-decode-ms', Math.round(started - T_START));
document.body.setAttribute('data-load-ms', Math.round(performance.now()));
if (hash.probe) {
  // test hook: #probe=T:ADDR[:mapped|:front];T:ADDR... writes what the tooltip would say at each point into #probe
  // (front: ADDR is an absolute address in a front segment)
  var pe = document.getElementById('probe');
  hash.probe.split(';').forEach(function (one) {
    var pp = one.split(':'), pt = num(pp[0]), band = pp.length > 2 && pp[2] === 'mapped' ? 1 : 0, pa = num(pp[1]);
    if (pp.length > 2 && pp[2] === 'front') {
      var fl = frontLaneOf(pt, pa), fi = fl < 0 ? -1 : hitFront(pt, fl), fg = fl < 0 ? -1 : hitSeg(pt, fl);
      var fd = document.createElement('div');
      fd.className = 'probe';
      fd.setAttribute('data-at', one);
      fd.setAttribute('data-index', fi);
      fd.setAttribute('data-status', fi >= 0 ? 'slab' : fg >= 0 ? (fl < SEGS[fg][2] + FP ? 'segment' : 'free-page') : 'none');
      if (fi >= 0) {
        fd.setAttribute('data-addr', hex(FAD[fi]));
        fd.setAttribute('data-class', FSL[fi]);
        fd.setAttribute('data-slots', FSN[fi]);
        fd.setAttribute('data-used', FUS[fi]);
        fd.setAttribute('data-owner', FOW[fi]);
      }
      fd.innerHTML = describeFront(fi, fg, pt, fl);
      pe.appendChild(fd);
      return;
    }
    var pi = band ? hitLane(pt, pa) : hitHeap(pt, pa);
    var d = document.createElement('div');
    d.className = 'probe';
    d.setAttribute('data-at', one);
    d.setAttribute('data-index', pi);
    if (pi >= 0) {
      d.setAttribute('data-status', band ? (MP[pi][5] ? 'kept' : 'mapped') : STNAME[ST[pi]]);
      d.setAttribute('data-off', band ? MP[pi][4] : hex(OFF[pi]));
      d.setAttribute('data-size', band ? MP[pi][3] : SZ[pi]);
    }
    d.innerHTML = describe(band, pi, pt, pa, false);
    pe.appendChild(d);
  });
}
if (hash.hover) {
  // test hook: #hover=T:ADDR[:mapped|:front] puts the mouse on that point of the map (request T, address ADDR;
  // front: an absolute address): the tooltip shows as it would, and its text also goes to #probe
  var hp = hash.hover.split(':'), lane = hp.length > 2 && hp[2] === 'mapped' && HAS_LANE;
  var onFront = hp.length > 2 && hp[2] === 'front' && HAS_FRONT;
  showTip(X(num(hp[0])), lane ? LY(num(hp[1])) : onFront ? FY(frontLaneOf(num(hp[0]), num(hp[1])) + 0.5) : HY(num(hp[1])));
  var hd = document.createElement('div');
  hd.className = 'hover';
  hd.setAttribute('data-visible', tip.style.display === 'block' ? '1' : '0');
  hd.innerHTML = tip.innerHTML;
  document.getElementById('probe').appendChild(hd);
}
var pend = window.__heapmapErrors;
if (pend && pend.length) document.getElementById('errors').textContent += pend.join('\n') + '\n';
document.body.setAttribute('data-ready', '1');
})();
</script>
</body>
</html>
"""
