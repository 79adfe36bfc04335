"""Replays an osmem decision trace (docs/TRACE.md) and rebuilds the heap at every request.

The result is a History: every block state (offset, size, status) with the span of requests it lasted,
the break's positions, the mapped blocks (laid out in a lane of their own), the requests themselves and the
final heap. Time is the request index: requests are numbered 1..N in trace order; the state after request i
holds over [i, i + 1), so a block state created by request i and changed by request j spans [i, j), and one
that is still there at the end spans [i, N + 1). States created and changed within one request (a fit that is
split at once, a free block absorbed by a coalesce in the same call) last no time and are only counted.

The default profile's front layer (slab pages of equal slots in 4 MiB segments, docs/TRACE.md) is rebuilt too:
every page state (a page formatted for a size class, its slots in use as the program sees them, its owner thread)
with its span, and the segments, laid out in a lane of their own (segments side by side, each page at its place
in its segment). A slot is in use from the '= PTR' of the request that got it (`slot C`, a front `memalign`)
to its `free PTR` (by any thread: a remote free counts at once, although its page's owner collects it later).

Also reads os_heap_dump's JSON (one snapshot: a single pseudo-request)."""
import json
from array import array

META = 32                      # sizeof(struct block_meta): the header before every payload
PAGE = 4096                    # the page size (x86-64): aligned mappings end at a page boundary
FREE, ALLOC, MAPPED = 0, 1, 2
STATUS_NAMES = ("free", "alloc", "mapped")

# requests start at the left margin and end with the thread (t=N); these are the ones TRACE.md lists
REQUEST_OPS = {"malloc", "calloc", "realloc", "free", "memalign", "malloc_trim",
               "os_malloc", "os_calloc", "os_realloc", "os_free", "slot", "thread_exit", "front_trim",
               "idle"}

# the front layer (src/front.c): 64 KiB pages in 4 MiB segments whose first page is their metadata
FRONT_PAGE = 1 << 16
FRONT_SEG = 1 << 22
# Where the front's segments carved from the heap (src/front.c, seg_carve; their trace addresses are heap offsets,
# H+0x...) are placed among the front's absolute addresses: above every user address, at the heap base's
# alignment, so that their pages and slots are found by address as the others' are.
HEAP_FRONT = 1 << 50
FRONT_EVENTS = {"seg_map", "seg_unmap", "page", "page_empty", "page_pool", "abandon", "adopt", "remote_free",
                "collect", "page_discard", "page_release", "page_refill"}
# Lines that change a policy or start a wait, and move no block: a threshold raised, the decay's delay doubled,
# a free top waiting for its trim, the front's range shrunk after ENOMEM (its segments were already unmapped),
# calloc's fresh pages sampled, measured or populated; a gone thread's heap found (its pages' own lines follow);
# a freed big block not kept, outgrown by a newer one (its munmap line follows).
POLICY_EVENTS = {"nofit", "threshold", "trim_threshold", "decay_ns", "trim_wait", "range_give_back", "slack",
                 "top_last", "zero_sample", "zero_density", "populate", "thread_gone", "map_refused",
                 "outgrown"}


class TraceError(Exception):
    pass


def _addr(tok):
    """('heap', offset) for H+0x..., ('abs', address) for 0x..., (None, 0) for NULL."""
    if tok.startswith("H+"):
        return "heap", int(tok[2:], 16)
    if tok == "NULL":
        return None, 0
    return "abs", int(tok, 16)


class History:
    def __init__(self):
        self.header = ""
        self.profile = "?"
        self.align = 8
        self.source = ""
        self.segment_starts = set()   # offsets of the blocks that begin a new segment (`segment`): a gap before each
        # heap block states: parallel arrays (t0, t1, offset, size, status), in closing order
        self.t0 = array("l")
        self.t1 = array("l")
        self.off = array("q")
        self.size = array("q")
        self.status = array("b")
        # mapped block states: dicts (few of them)
        self.mapped = []
        self.lane_size = 0              # bytes of the mapped lane (the packed mappings' peak)
        self.brk = [(0, 0)]             # (request index, break offset) after each change
        self.req_line = [0]             # trace line number of request i (index 0: before any request)
        self.req_text = [""]            # its text
        self.madvise = []               # (request, offset or address, length)
        self.huge = []                  # madvise_huge: (request, offset or address, length) advised for huge pages
        self.final_heap = []            # [(offset, size, status)] in address order
        self.final_mapped = []          # [(address, size, lane offset)]
        self.transient = 0              # states that lasted no time
        self.inherited = 0              # blocks first seen without their creation (a fork child's trace)
        self.warnings = []
        self.counts = {}                # request kind -> count
        self.events = 0
        self.cases = {}
        self.peak_brk = 0
        self.peak_mapped = 0
        self.threads = 1
        # front pages: parallel arrays, one entry per page state (a change of its slots in use or its owner
        # starts a new state); voff: the page's offset in the front lane; owner 0: abandoned
        self.f_t0 = array("l")
        self.f_t1 = array("l")
        self.f_voff = array("q")
        self.f_addr = array("q")
        self.f_slot = array("l")
        self.f_slots = array("l")
        self.f_used = array("l")
        self.f_owner = array("l")
        self.segments = []              # {"t0", "t1", "addr", "voff"}
        self.front_lane_size = 0        # bytes of the front lane (the packed segments' peak)
        self.final_front = []           # [(addr, slot, slots, used, owner, voff)] in address order
        self.final_segments = []        # [(addr, voff)]
        self.front = {}                 # front event kind -> count
        self.peak_front_pages = 0

    @property
    def n_requests(self):
        return len(self.req_line) - 1

    @property
    def t_end(self):
        return self.n_requests + 1

    def final_summary(self):
        h = self.final_heap
        alloc = [b for b in h if b[2] == ALLOC]
        free = [b for b in h if b[2] == FREE]
        ff = self.final_front
        return {
            "front_segments": len(self.final_segments),
            "front_pages": len(ff),
            "front_slots": sum(p[2] for p in ff),
            "front_used": sum(p[3] for p in ff),
            "front_used_bytes": sum(p[1] * p[3] for p in ff),
            "front_free_bytes": sum(p[1] * (p[2] - p[3]) for p in ff),
            "blocks": len(h) + len(self.final_mapped),
            "heap_blocks": len(h),
            "alloc_blocks": len(alloc),
            "free_blocks": len(free),
            "mapped_blocks": len(self.final_mapped),
            "alloc_bytes": sum(b[1] for b in alloc),
            "free_bytes": sum(b[1] for b in free),
            "mapped_bytes": sum(m[1] for m in self.final_mapped),
            "header_bytes": META * len(h),
            "brk": self.brk[-1][1],
            "largest_free": max((b[1] for b in free), default=0),
        }


class _Lane:
    """First-fit packing of the mappings into one lane: they live far from the heap and from each other, so
    the map draws them side by side, each at the lowest lane offset free for as long as it lives."""

    def __init__(self):
        self.live = {}   # address -> (lane offset, length)
        self.peak = 0

    def place(self, addr, length):
        spans = sorted(self.live.values())
        pos = 0
        for o, l in spans:
            if o - pos >= length:
                break
            pos = max(pos, o + l)
        self.live[addr] = (pos, length)
        self.peak = max(self.peak, pos + length)
        return pos

    def remove(self, addr):
        return self.live.pop(addr, None)


def replay_trace(path, keep_text=True):
    h = History()
    h.source = path
    blocks = {}       # heap offset -> [size, status, t0]
    mapped = {}       # address -> [size, t0, lane offset]
    kept = {}         # the mapping cache: mapping start -> [length, t0, lane offset] (drawn as kept mappings)
    lane = _Lane()
    t = 0
    brk = 0
    cur = [""]        # the current request's words
    seen_prealloc = False
    threads = set()
    tid = [1]         # the current request's thread
    pages = {}        # front page address -> [slot, slots, used, owner, t0]
    segs = {}         # segment address -> [t0, lane offset]
    seg_lane = _Lane()
    req_front = [None]  # the front slot a realloc/os_realloc request names (its P), or None
    hbase = [None]      # what turns a heap offset into a front address (segments carved from the heap), once seen

    def front_addr(tok):
        """A front event's address: absolute, or a heap offset placed at HEAP_FRONT (the first one is a seg_map,
        a segment's start, aligned to FRONT_SEG in the process: so the heap base's alignment is known)."""
        kind, v = _addr(tok)
        if kind != "heap":
            return v
        if hbase[0] is None:
            hbase[0] = HEAP_FRONT + (-v) % FRONT_SEG
        return v + hbase[0]

    def slot_addr(kind, v):
        """A request's pointer: a slot of a carved segment when its heap offset lies in a page seen, else as is."""
        if kind == "heap" and hbase[0] is not None and (v + hbase[0]) & ~(FRONT_PAGE - 1) in pages:
            return "abs", v + hbase[0]
        return kind, v
    ft0, ft1, fvoff, faddr = h.f_t0, h.f_t1, h.f_voff, h.f_addr
    fslot, fslots, fused, fowner = h.f_slot, h.f_slots, h.f_used, h.f_owner
    fcount = h.front
    t0a, t1a, offa, sizea, sta = h.t0, h.t1, h.off, h.size, h.status
    req_line, req_text = h.req_line, h.req_text
    counts = h.counts

    def close(off, b):
        # the state b of the block at off ends now
        if b[2] < t:
            t0a.append(b[2]); t1a.append(t); offa.append(off); sizea.append(b[0]); sta.append(b[1])
        else:
            h.transient += 1

    def setb(off, size, status):
        b = blocks.get(off)
        if b is None:
            blocks[off] = [size, status, t]
            return
        if b[0] == size and b[1] == status:
            return
        close(off, b)
        b[0] = size; b[1] = status; b[2] = t

    def need(off, size, status, what, lineno):
        """A block the trace names; one never seen was there before the trace began (a fork child)."""
        b = blocks.get(off)
        if b is None:
            h.inherited += 1
            if len(h.warnings) < 20:
                h.warnings.append(f"line {lineno}: {what} of H+0x{off:x}, a block not seen before")
            blocks[off] = [size, status, t]
            return blocks[off]
        return b

    def drop(off, lineno, what):
        b = blocks.pop(off, None)
        if b is None:
            if len(h.warnings) < 20:
                h.warnings.append(f"line {lineno}: {what} absorbs H+0x{off:x}, a block not seen before")
            return
        close(off, b)

    def map_add(addr, size):
        voff = lane.place(addr, size + META)
        mapped[addr] = [size, t, voff]

    def kept_end(start):
        k = kept.pop(start, None)
        lane.remove(("kept", start))
        if k is not None and k[1] < t:
            h.mapped.append({"t0": k[1], "t1": t, "addr": start, "size": k[0], "voff": k[2], "kept": 1})

    def map_del(addr, lineno):
        m = mapped.pop(addr, None)
        lane.remove(addr)
        if m is None:
            if len(h.warnings) < 20:
                h.warnings.append(f"line {lineno}: unmap of 0x{addr:x}, a mapping not seen before")
            return
        if m[1] < t:
            h.mapped.append({"t0": m[1], "t1": t, "addr": addr, "size": m[0], "voff": m[2]})
        else:
            h.transient += 1

    def warn(lineno, text):
        if len(h.warnings) < 20:
            h.warnings.append(f"line {lineno}: {text}")

    def cut_short(lineno, line, last, why):
        """A line that cannot be read: the last one is dropped with a warning, any other refused."""
        text = line.rstrip("\n")
        if not last:
            raise TraceError(f"{path}:{lineno}: {text!r}: {why} (docs/TRACE.md)")
        warn(lineno, f"the trace's last line, {text!r}, is cut short ({why}): a program killed while it traced? "
             "Dropped")

    def page_voff(addr):
        seg = segs.get(addr & ~(FRONT_SEG - 1))
        return seg[1] + (addr & (FRONT_SEG - 1)) if seg else -1

    def page_close(addr, p):
        if p[4] < t:
            ft0.append(p[4]); ft1.append(t); fvoff.append(page_voff(addr)); faddr.append(addr)
            fslot.append(p[0]); fslots.append(p[1]); fused.append(p[2]); fowner.append(p[3])
        else:
            h.transient += 1

    def page_set(addr, used=None, owner=None):
        """A change of the page at addr (slots in use, owner): its state so far ends, unless it began in this
        same request (then it only changes)."""
        p = pages[addr]
        if p[4] < t:
            page_close(addr, p)
            p[4] = t
        if used is not None:
            p[2] = used
        if owner is not None:
            p[3] = owner

    def page_end(addr, lineno, what):
        p = pages.pop(addr, None)
        if p is None:
            return
        if p[2]:
            warn(lineno, f"{what} of page 0x{addr:x}, which has {p[2]} slots in use")
        page_close(addr, p)

    def slot_page(ptr):
        """The front page that holds the slot ptr (an absolute address), or None."""
        a = ptr & ~(FRONT_PAGE - 1)
        return a if a in pages else None

    def slot_take(ptr, lineno):
        a = slot_page(ptr)
        if a is None:
            return
        p = pages[a]
        if p[2] >= p[1]:
            warn(lineno, f"slot 0x{ptr:x}: page 0x{a:x} has all {p[1]} slots in use already")
        page_set(a, used=p[2] + 1)

    def slot_give(ptr, lineno):
        a = slot_page(ptr)
        if a is None:
            return False
        p = pages[a]
        if p[2] <= 0:
            warn(lineno, f"free of slot 0x{ptr:x}: page 0x{a:x} has no slot in use")
        else:
            page_set(a, used=p[2] - 1)
        return True

    def front_event(op, p, lineno):
        fcount[op] = fcount.get(op, 0) + 1
        if op == "page":
            addr, slot, slots = front_addr(p[1]), int(p[2]), int(p[3])
            if addr in pages:
                page_end(addr, lineno, "a new format")
            if page_voff(addr) < 0:
                # a forked child's trace starts with its parent's segments, whose seg_map lines are the parent's:
                # the segment is drawn from here (its lane offset was -1, which the packing refused: a crash)
                seg = addr & ~(FRONT_SEG - 1)
                h.warnings.insert(0, f"line {lineno}: page 0x{addr:x} outside every segment the trace mapped "
                                     f"(a forked child's inherited segment?): segment 0x{seg:x} drawn from here")
                segs[seg] = [t, seg_lane.place(seg, FRONT_SEG)]
            pages[addr] = [slot, slots, 0, tid[0], t]
            h.peak_front_pages = max(h.peak_front_pages, len(pages))
        elif op in ("page_empty", "page_pool"):
            page_end(front_addr(p[1]), lineno, op)
        elif op == "abandon":
            addr = front_addr(p[1])
            if addr in pages:
                page_set(addr, owner=0)
        elif op == "adopt":
            addr = front_addr(p[1])
            if addr in pages:
                page_set(addr, owner=tid[0])
        elif op == "seg_map":
            addr, length = front_addr(p[1]), int(p[2])
            segs[addr] = [t, seg_lane.place(addr, length)]
        elif op == "seg_unmap":
            addr = front_addr(p[1])
            for a in [a for a in pages if a & ~(FRONT_SEG - 1) == addr]:
                page_end(a, lineno, "seg_unmap")
            s = segs.pop(addr, None)
            seg_lane.remove(addr)
            if s is None:
                warn(lineno, f"seg_unmap of 0x{addr:x}, a segment not seen before")
            elif s[0] < t:
                h.segments.append({"t0": s[0], "t1": t, "addr": addr, "voff": s[1]})
        # remote_free, collect, page_discard, page_release, page_refill: counted (the slots in use do not change);
        # a remote free was counted at its request line

    def set_brk(v):
        nonlocal brk
        brk = v
        if h.brk[-1][0] == t:
            h.brk[-1] = (t, v)
        else:
            h.brk.append((t, v))
        if v > h.peak_brk:
            h.peak_brk = v

    with open(path, "r", errors="replace") as f:
        first = f.readline()
        if not first.startswith("osmem-trace "):
            raise TraceError(f"{path}: not an osmem trace (the first line is not 'osmem-trace ...')")
        h.header = first.strip()
        for kv in h.header.split()[2:]:
            k, _, v = kv.partition("=")
            if k == "profile":
                h.profile = v
            elif k == "align":
                h.align = int(v)
        lineno = 1
        # One line ahead: a program killed while it traced leaves its last line cut short (its buffers are written
        # 64 KiB at a time, wherever a line ends: "= H+0x", or only the indent), and the last line is the one that
        # is dropped with a warning when it cannot be read, where the same text anywhere else is refused.
        nxt = f.readline()
        while nxt:
            line, nxt = nxt, f.readline()
            lineno += 1
            last = not nxt
            if not line or line == "\n":
                continue
            if last and not line.endswith("\n"):
                # a line is written whole with its newline: one without it was cut, even where what is left reads
                # as a line ("= H+0xfbea40" of "= H+0xfbea400": the observability review of session 56)
                cut_short(lineno, line, last, "no newline at its end")
                continue
            if line[0] == " ":
                p = line.split()
                if not p:
                    cut_short(lineno, line, last, "an indent and no decision")
                    continue
                op = p[0]
                h.events += 1
                try:
                    if op == "fit":
                        off = _addr(p[1])[1]
                        b = need(off, int(p[2]), FREE, "fit", lineno)
                        setb(off, b[0], ALLOC)
                    elif op == "split":
                        off = _addr(p[1])[1]
                        b = need(off, int(p[2]), ALLOC, "split", lineno)
                        setb(off, int(p[2]), b[1])
                        roff = _addr(p[3])[1]
                        if roff in blocks:
                            drop(roff, lineno, "split")
                        setb(roff, int(p[4]), FREE)
                    elif op == "coalesce":
                        off = _addr(p[1])[1]
                        b = need(off, 0, FREE, "coalesce", lineno)
                        drop(_addr(p[2])[1], lineno, "coalesce")
                        setb(off, int(p[3]), b[1])
                    elif op == "free":
                        off = _addr(p[1])[1]
                        need(off, int(p[2]), ALLOC, "free", lineno)
                        setb(off, int(p[2]), FREE)
                    elif op == "brk":
                        if p[1] == "refused:":      # "brk refused: mapped instead": an mmap line follows
                            continue
                        d = int(p[1])
                        set_brk(brk + d)
                    elif op == "grow":
                        off = _addr(p[1])[1]
                        need(off, int(p[2]), FREE, "grow", lineno)
                        setb(off, int(p[2]), ALLOC)
                        if off + META + int(p[2]) > brk:
                            set_brk(off + META + int(p[2]))
                    elif op == "append":
                        off = _addr(p[1])[1]
                        setb(off, int(p[2]), ALLOC)
                        set_brk(off + META + int(p[2]))
                    elif op in ("prealloc", "segment"):   # segment: a new part of the heap, its first block free
                        seen_prealloc |= op == "prealloc"
                        off = _addr(p[1])[1]
                        if op == "segment":
                            h.segment_starts.add(off)
                        setb(off, int(p[2]), FREE)
                        set_brk(off + META + int(p[2]))
                    elif op == "trim":
                        off = _addr(p[1])[1]
                        b = need(off, int(p[2]), FREE, "trim", lineno)
                        setb(off, int(p[2]), b[1])
                    elif op == "carve":
                        off = _addr(p[1])[1]
                        b = need(off, int(p[2]), ALLOC, "carve", lineno)
                        setb(off, int(p[2]), b[1])
                        setb(_addr(p[3])[1], int(p[4]), ALLOC)
                    elif op == "mmap":
                        length, blk = int(p[1]), _addr(p[2])[1]
                        size = length - META
                        if cur[0] == "memalign" and len(cur) >= 3:
                            # an aligned mapping: LEN = s + 32 + A was mapped, then trimmed to the pages
                            # around the block; the block keeps up to the end of the page its payload ends in
                            a, n = int(cur[1]), max(1, int(cur[2]))
                            s_al = (n + h.align - 1) // h.align * h.align
                            if a > h.align and length == s_al + META + a:
                                pay = blk + META
                                size = (pay + s_al + PAGE - 1) // PAGE * PAGE - pay
                        map_add(blk, size)
                        h.peak_mapped = max(h.peak_mapped, sum(m[0] for m in mapped.values()))
                    elif op == "munmap":
                        map_del(_addr(p[1])[1], lineno)
                    elif op == "keep":      # a freed mapping kept for reuse: a kept mapping until reuse/release
                        blk, length = _addr(p[1])[1], int(p[2])
                        map_del(blk, lineno)
                        start = blk - blk % PAGE
                        kept[start] = [length - META, t, lane.place(("kept", start), length)]
                    elif op == "reuse":     # `reuse BLOCK SIZE LEN`: a kept mapping serves the request
                        blk = _addr(p[1])[1]
                        kept_end(blk - blk % PAGE)
                        map_add(blk, int(p[2]))
                        h.peak_mapped = max(h.peak_mapped, sum(m[0] for m in mapped.values()))
                    elif op == "kept_grow":  # `kept_grow ADDR LEN NEWADDR`: a kept mapping grew (mremap), reused next
                        start, length, new = _addr(p[1])[1], int(p[2]), _addr(p[3])[1]
                        kept_end(start)
                        kept[new] = [length - META, t, lane.place(("kept", new), length)]
                    elif op == "kept_tail":  # `kept_tail ADDR LEN`: the tail of the mapping just reused stays kept
                        start, length = _addr(p[1])[1], int(p[2])
                        kept[start] = [length - META, t, lane.place(("kept", start), length)]
                    elif op == "kept_absorb":  # `kept_absorb BLOCK SIZE ADDR LEN`: a growth took the kept mapping
                        blk, size, start = _addr(p[1])[1], int(p[2]), _addr(p[3])[1]   # beside it, in place
                        kept_end(start)
                        map_del(blk, lineno)
                        map_add(blk, size)
                        h.peak_mapped = max(h.peak_mapped, sum(m[0] for m in mapped.values()))
                    elif op == "kept_cut":  # `kept_cut BLOCK SIZE`: a shrink left the block SIZE bytes in place;
                        blk, size = _addr(p[1])[1], int(p[2])  # its tail (kept_tail or release) follows
                        map_del(blk, lineno)
                        map_add(blk, size)
                    elif op == "kept_join":  # `kept_join ADDR LEN`: the block just kept joined its kept tail
                        start, length = _addr(p[1])[1], int(p[2])
                        for k in [k for k in kept if start <= k < start + length]:
                            kept_end(k)
                        kept[start] = [length - META, t, lane.place(("kept", start), length)]
                    elif op == "release":   # a kept mapping went back to the kernel (or the tail of one, reused)
                        kept_end(_addr(p[1])[1])
                    elif op == "mremap":
                        map_del(_addr(p[1])[1], lineno)
                        map_add(_addr(p[3])[1], int(p[2]) - META)
                        h.peak_mapped = max(h.peak_mapped, sum(m[0] for m in mapped.values()))
                    elif op == "madvise":
                        h.madvise.append((t,) + (_addr(p[1])[1], int(p[2])))
                    elif op == "madvise_huge":  # src/huge.c: a growth of a dense heap, or a front segment
                        h.huge.append((t,) + (_addr(p[1])[1], int(p[2])))
                    elif op == "hugepage":      # the kernel's mode read, or a density measure: no block moves
                        pass
                    elif op in FRONT_EVENTS:
                        front_event(op, p, lineno)
                    elif op == "case":
                        h.cases[p[1]] = h.cases.get(p[1], 0) + 1
                        if p[1] == "3":
                            req_front[0] = None     # a free block: nothing changes
                    elif op in POLICY_EVENTS:  # policy changes and waits: no block moves
                        pass
                    elif len(h.warnings) < 20:
                        h.warnings.append(f"line {lineno}: unknown event {op!r}")
                except (IndexError, ValueError) as e:
                    if last:
                        cut_short(lineno, line, last, e)
                    elif len(h.warnings) < 20:
                        h.warnings.append(f"line {lineno}: cannot read {line.strip()!r} ({e})")
                continue
            if line[0] == "=":
                try:
                    kind, v = slot_addr(*_addr(line[2:].strip()))
                except ValueError:
                    cut_short(lineno, line, last, "a bad result")
                    continue
                if kind == "heap":
                    b = blocks.get(v - META)
                    if b is not None and b[1] != ALLOC:
                        setb(v - META, b[0], ALLOC)
                elif pages:
                    old = req_front[0]
                    if old is not None and v != old and (v or cur[2] == "0"):
                        slot_give(old, lineno)          # a realloc that moved, or os_realloc's case 2
                    if kind == "abs" and v != old:
                        slot_take(v, lineno)
                req_front[0] = None
                continue
            p = line.split()
            op = p[0]
            if op not in REQUEST_OPS and not p[-1].startswith("t="):
                if op == "osmem-trace":
                    continue
                if len(h.warnings) < 20:
                    h.warnings.append(f"line {lineno}: unknown request {line.strip()!r}")
                continue
            t += 1
            cur = p
            req_front[0] = None
            if p[-1].startswith("t="):
                try:
                    tid[0] = int(p[-1][2:])
                except ValueError:
                    pass
            pk, ptr = slot_addr(*_addr(p[1])) if len(p) >= 3 and p[1].startswith(("0x", "H+")) else (None, 0)
            if pages and pk == "abs":
                if op in ("free", "os_free"):
                    slot_give(ptr, lineno)
                elif op in ("realloc", "os_realloc") and slot_page(ptr) is not None:
                    req_front[0] = ptr
            counts[op] = counts.get(op, 0) + 1
            req_line.append(lineno)
            text = line.rstrip("\n")
            if text.endswith(" t=1"):
                text = text[:-4]
            else:
                threads.add(text.rsplit(" ", 1)[-1])
            req_text.append(text if keep_text else "")
    # everything still there lasts to the end
    t = t + 1
    for off in sorted(blocks):
        b = blocks[off]
        h.final_heap.append((off, b[0], b[1]))
        close(off, b)
    for addr in sorted(mapped):
        m = mapped[addr]
        h.final_mapped.append((addr, m[0], m[2]))
        if m[1] < t:
            h.mapped.append({"t0": m[1], "t1": t, "addr": addr, "size": m[0], "voff": m[2]})
    for start in sorted(kept):
        kept_end(start)
    h.lane_size = lane.peak
    for addr in sorted(pages):
        q = pages[addr]
        h.final_front.append((addr, q[0], q[1], q[2], q[3], page_voff(addr)))
        page_close(addr, q)
    for addr in sorted(segs):
        s = segs[addr]
        h.final_segments.append((addr, s[1]))
        h.segments.append({"t0": s[0], "t1": t, "addr": addr, "voff": s[1]})
    h.front_lane_size = seg_lane.peak
    h.threads = 1 + len(threads)
    if h.inherited and not seen_prealloc:
        # a forked child's trace (PATH.PID): the heap it inherited is known only where the trace names it, and
        # the break only relative to where it was; show the break at the highest end known
        top = max((h.off[i] + META + h.size[i] for i in range(len(h.off))), default=0)
        h.brk = [(0, max(top, brk))]
        h.peak_brk = h.brk[0][1]
        h.warnings = [w for w in h.warnings if "not seen before" not in w][:10]
        h.warnings.append(f"the trace starts in a forked child: {h.inherited} blocks came from before it began; "
                          "the rest of the inherited heap is unknown, so the map has gaps")
    else:
        _check_tiling(h)
    return h


def _check_tiling(h):
    """The final heap blocks should tile [first block, break) without gaps or overlaps, but for the gap before a
    new segment of the heap (a `segment` line)."""
    pos = None
    for off, size, _ in h.final_heap:
        if pos is not None and off != pos and not (off > pos and off in h.segment_starts) and len(h.warnings) < 20:
            h.warnings.append(f"final heap: {'gap' if off > pos else 'overlap'} at H+0x{min(off, pos):x}")
        pos = off + META + size
    if pos is not None and pos != h.brk[-1][1] and len(h.warnings) < 20:
        h.warnings.append(f"final heap: the blocks end at H+0x{pos:x}, the break is at H+0x{h.brk[-1][1]:x}")


def replay_dump(path):
    """os_heap_dump(fd, OS_DUMP_JSON): one snapshot, drawn as a single request."""
    with open(path) as f:
        d = json.load(f)
    h = History()
    h.source = path
    h.header = "os_heap_dump " + d.get("heap_start", "?")
    h.profile = "snapshot"
    h.req_line.append(1)
    h.req_text.append("os_heap_dump (snapshot)")
    h.counts["snapshot"] = 1
    lane = _Lane()
    heap_size = int(d.get("heap_size", 0))
    end = 0
    for b in d.get("blocks", []):
        size = int(b["size"])
        if b.get("where") == "mapped" or b.get("status") == "mapped":
            addr = int(b["address"], 16)
            voff = lane.place(addr, size + META)
            h.final_mapped.append((addr, size, voff))
            h.mapped.append({"t0": 1, "t1": 2, "addr": addr, "size": size, "voff": voff})
        else:
            st = ALLOC if b.get("status") == "alloc" else FREE
            off = int(b["offset"])
            h.final_heap.append((off, size, st))
            h.t0.append(1); h.t1.append(2); h.off.append(off); h.size.append(size); h.status.append(st)
            end = max(end, off + META + size)
    h.final_heap.sort()
    h.final_mapped.sort()
    h.lane_size = lane.peak
    brk = heap_size or end
    h.brk = [(0, 0), (1, brk)]
    h.peak_brk = brk
    h.peak_mapped = sum(m[1] for m in h.final_mapped)
    _check_tiling(h)
    return h


def load(path, dump=False):
    if dump:
        return replay_dump(path)
    return replay_trace(path)
