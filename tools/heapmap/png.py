"""The final heap as a PNG (matplotlib, Agg): one bar along the address axis, to scale, with the blocks in
order below it (not to scale, while there are few), the mappings in a lane of their own, and the default
profile's front segments side by side (each 64 KiB slab page filled from the bottom by its slots in use, its size
class written on it while the pages are wide enough)."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from .page import COLORS  # noqa: E402
from .replay import META, ALLOC, FREE, FRONT_PAGE, FRONT_SEG  # noqa: E402

EDGE = "#ffffff"
POOL = "#eceef2"   # a front page without slots (in the pool, or kept empty by a thread)


def _bytes(v, _pos=None):
    a = abs(v)
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if a >= div:
            q = v / div
            return f"{q:.0f} {unit}" if q == int(q) else f"{q:.1f} {unit}"
    return f"{v:.0f} B"


class _PowTwoLocator(MaxNLocator):
    """Ticks at multiples of a power of two: addresses read best that way."""

    def tick_values(self, vmin, vmax):
        span = max(vmax - vmin, 1)
        step = 1
        while span / step > self._nbins:
            step *= 2
        first = (int(vmin) // step) * step
        return [first + i * step for i in range(int((vmax - first) // step) + 2)]


def write_png(h, out, title=None):
    heap = h.final_heap
    mapped = h.final_mapped
    brk = h.brk[-1][1]
    summ = h.final_summary()
    few = 0 < len(heap) <= 64
    front = h.final_front
    rows = ["heap"] + (["order"] if few else []) + (["mapped"] if mapped else []) + \
        (["front"] if h.final_segments else [])
    # placed by hand, in inches: title and summary, then each row (bar, axis label, the next row's title)
    top_in, bar_in, gap_in, bottom_in = 1.0, 0.8, 0.95, 1.2 if h.final_segments else 0.95
    fig_h = top_in + len(rows) * bar_in + (len(rows) - 1) * gap_in + bottom_in
    fig = plt.figure(figsize=(12, fig_h), dpi=110)
    axes = []
    for i in range(len(rows)):
        y_top = top_in + i * (bar_in + gap_in)
        axes.append(fig.add_axes([0.045, 1 - (y_top + bar_in) / fig_h, 0.935, bar_in / fig_h]))
    src = os.path.basename(h.source)
    fig.text(0.5, 1 - 0.3 / fig_h, title or f"osmem final heap: {src}", ha="center", va="center",
             fontsize=13, fontweight="bold")
    fig.text(0.5, 1 - 0.58 / fig_h,
             f"{summ['blocks']} blocks: {summ['alloc_blocks']} allocated ({_bytes(summ['alloc_bytes'])}), "
             f"{summ['free_blocks']} free ({_bytes(summ['free_bytes'])}), {summ['mapped_blocks']} mapped "
             f"({_bytes(summ['mapped_bytes'])}); break at H+0x{brk:x} ({_bytes(brk)}); "
             + ("os_heap_dump snapshot" if h.profile == "snapshot" else f"after {h.n_requests} requests")
             + (f"; front: {summ['front_pages']} slab pages, {summ['front_used']} of {summ['front_slots']} slots in "
                f"use ({_bytes(summ['front_used_bytes'])})" if h.final_segments else ""),
             ha="center", va="center", fontsize=9.5, color="#333")
    pay = {ALLOC: COLORS["alloc"], FREE: COLORS["free"]}

    for kind, ax in zip(rows, axes):
        ax.set_yticks([])
        for s in ("top", "right", "left"):
            ax.spines[s].set_visible(False)
        if kind == "heap":
            span = max(brk, heap[-1][0] + META + heap[-1][1] if heap else 0, 64)
            hmin = span / 1100.0          # a header is drawn at least ~1 px wide
            hdr, pa, pf = [], [], []
            for off, size, st in heap:
                w = max(META, hmin)
                hdr.append((off, w))
                (pa if st == ALLOC else pf).append((off + w, max(0, META + size - w)))
            ax.broken_barh(pf, (0, 1), facecolors=COLORS["free"], edgecolor="none")
            ax.broken_barh(pa, (0, 1), facecolors=COLORS["alloc"], edgecolor="none")
            ax.broken_barh(hdr, (0, 1), facecolors=COLORS["header"], edgecolor="none")
            if len(heap) <= 400:
                for off, size, st in heap[1:]:
                    ax.axvline(off, color=EDGE, lw=0.6, ymin=0.02, ymax=0.98)
            for off, size, st in heap:
                if (META + size) / span > 0.07:
                    ax.text(off + (META + size) / 2, 0.5, f"{'alloc' if st == ALLOC else 'free'} {size} B",
                            ha="center", va="center", fontsize=8.5,
                            color="white" if st == ALLOC else "#1d3d18")
            ax.axvline(brk, color=COLORS["brk"], lw=2)
            ax.annotate("break", (brk, 1.0), xytext=(0, 3), textcoords="offset points", ha="center",
                        va="bottom", fontsize=8.5, color=COLORS["brk"])
            ax.set_xlim(0, span * 1.02)
            ax.set_ylim(0, 1)
            ax.xaxis.set_major_locator(_PowTwoLocator(nbins=10))
            ax.xaxis.set_major_formatter(FuncFormatter(_bytes))
            ax.set_xlabel("heap offset from the heap start H (to scale)")
            ax.set_title("heap (sbrk)", loc="left", fontsize=10)
        elif kind == "order":
            n = len(heap)
            for i, (off, size, st) in enumerate(heap):
                ax.broken_barh([(i, 0.2)], (0, 1), facecolors=COLORS["header"], edgecolor="none")
                ax.broken_barh([(i + 0.2, 0.8)], (0, 1), facecolors=pay[st], edgecolor=EDGE, lw=0.8)
                if n <= 24:
                    ax.text(i + 0.6, 0.5, f"{size}", ha="center", va="center", fontsize=8,
                            color="white" if st == ALLOC else "#1d3d18")
            ax.set_xlim(0, n)
            ax.set_ylim(0, 1)
            step = max(1, -(-n // 10))
            ax.set_xticks([i for i in range(0, n, step)])
            ax.set_xticklabels([f"H+0x{heap[i][0]:x}" for i in range(0, n, step)], fontsize=8)
            ax.set_xlabel("the same blocks in address order, one slot each (not to scale): start offset and payload size")
            ax.set_title("heap blocks in order", loc="left", fontsize=10)
        elif kind == "front":
            segs = h.final_segments
            gap = FRONT_SEG // 40
            pos = {addr: i * (FRONT_SEG + gap) for i, (addr, _) in enumerate(segs)}
            span = len(segs) * (FRONT_SEG + gap) - gap
            ax.broken_barh([(pos[a], FRONT_SEG) for a, _ in segs], (0, 1), facecolors=POOL, edgecolor="none")
            ax.broken_barh([(pos[a], FRONT_PAGE) for a, _ in segs], (0, 1), facecolors=COLORS["segmeta"],
                           edgecolor="none")
            used, free = [], []
            for addr, slot, slots, n, owner, _ in front:
                seg = addr & ~(FRONT_SEG - 1)
                if seg not in pos:
                    continue
                x = pos[seg] + (addr - seg)
                frac = n / slots if slots else 0
                used.append(((x, FRONT_PAGE), frac))
                free.append(((x, FRONT_PAGE), frac))
            for (xw, frac) in used:
                if frac > 0:
                    ax.broken_barh([xw], (0, frac), facecolors=COLORS["slab"], edgecolor="none")
            for (xw, frac) in free:
                if frac < 1:
                    ax.broken_barh([xw], (frac, 1 - frac), facecolors=COLORS["slabfree"], edgecolor="none")
            page_px = 1234 * FRONT_PAGE / max(span, 1)
            for addr, slot, slots, n, owner, _ in front:
                seg = addr & ~(FRONT_SEG - 1)
                if seg in pos:
                    ax.axvline(pos[seg] + (addr - seg), color=EDGE, lw=0.5, ymin=0.0, ymax=1.0)
                    if page_px >= 9:
                        ax.text(pos[seg] + (addr - seg) + FRONT_PAGE / 2, 0.97, f"{slot}" + ("" if owner else "*"),
                                ha="center", va="top", rotation=90, fontsize=6.5 if page_px < 16 else 7.5,
                                color="#0b3d37")
            ax.set_xlim(0, span)
            ax.set_ylim(0, 1)
            ax.set_xticks([pos[a] for a, _ in segs])
            ax.set_xticklabels([f"0x{a:x}" for a, _ in segs], fontsize=8)
            ax.set_xlabel("front segments side by side (4 MiB each, 64 KiB pages): each slab page filled by its share of "
                          "slots in use, its size class written on it (* abandoned)" if page_px >= 9 else
                          "front segments side by side (4 MiB each, 64 KiB pages): each slab page filled by its share of "
                          "slots in use", fontsize=9)
            ax.set_title(f"front (per-thread caches): {summ['front_pages']} slab pages in {len(segs)} segment"
                         f"{'' if len(segs) == 1 else 's'}, {summ['front_used']} of {summ['front_slots']} slots in use",
                         loc="left", fontsize=10)
        else:
            gap = max(sum(m[1] + META for m in mapped) * 0.01, 64)
            pos, hdr, bars, ticks, labels = 0, [], [], [], []
            for addr, size, _ in mapped:
                total = size + META
                hmin = max(META, total / 400)
                hdr.append((pos, hmin))
                bars.append((pos + hmin, total - hmin))
                ticks.append(pos)
                labels.append(f"0x{addr:x}")
                pos += total + gap
            ax.broken_barh(bars, (0, 1), facecolors=COLORS["mapped"], edgecolor="none")
            ax.broken_barh(hdr, (0, 1), facecolors=COLORS["header"], edgecolor="none")
            for (p, _), (addr, size, _) in zip(bars, mapped):
                if (size + META) / pos > 0.08:
                    ax.text(p + (size + META) / 2, 0.5, f"{_bytes(size)} at 0x{addr:x}", ha="center",
                            va="center", fontsize=8.5, color="white")
            ax.set_xlim(0, pos)
            ax.set_ylim(0, 1)
            ax.xaxis.set_major_locator(_PowTwoLocator(nbins=10))
            ax.xaxis.set_major_formatter(FuncFormatter(_bytes))
            ax.set_xlabel("mapped blocks side by side (each is its own mmap, far from the heap); size in bytes")
            ax.set_title("mapped (mmap)", loc="left", fontsize=10)
    handles = [Patch(facecolor=COLORS["alloc"], label="allocated payload"),
               Patch(facecolor=COLORS["free"], label="free block"),
               Patch(facecolor=COLORS["header"], label="header (32 B, drawn ≥ 1 px)"),
               Patch(facecolor=COLORS["mapped"], label="mapped block"),
               Line2D([0], [0], color=COLORS["brk"], lw=2, label="break")]
    if h.final_segments:
        handles += [Patch(facecolor=COLORS["slab"], label="slab: slots in use"),
                    Patch(facecolor=COLORS["slabfree"], label="slab: free slots"),
                    Patch(facecolor=COLORS["segmeta"], label="segment metadata"),
                    Patch(facecolor=POOL, label="page without slots")]
    fig.legend(handles=handles, loc="lower center", ncol=5, frameon=False, fontsize=9.5,
               bbox_to_anchor=(0.5, 0.05 / fig_h))
    fig.savefig(out, dpi=110, facecolor="white")
    plt.close(fig)
