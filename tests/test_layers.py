#!/usr/bin/env python3
"""test_layers: the architecture's one-way rule, checked on the sources (README.md, "How it is built").

Hazard: a lower layer that calls up (the recorder taking the API's lock, the core asking the front) ties the
layers into a knot: the lock order is no longer the call order, the classic library drags in what it never uses,
and a change above breaks what is below. Each src/*.c belongs to one layer; a function defined in a file may be
called from its own layer and the layers above, never from below; and the layers above the core change the
core's state (osm_heap) only by calling it, never by writing its fields (the API once bumped the core's counters
itself). Internal functions are named osm_* (and the public os_* entry points are the API's). Inline helpers in internal.h carry their layer in their name's prefix
(osm_os_*, osm_front_*), checked the same way.

Prints `PASS layers/<file>` or `FAIL layers/<file>: <what it calls>`."""
import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")

# top to bottom
LAYERS = [
    ("api", ["osmem.c", "override.c", "cxx.c"]),
    ("strict", ["strict.c"]),
    ("front", ["front.c", "medium.c", "background.c"]),
    ("core", ["heap.c", "huge.c", "index.c", "mapset.c", "check.c", "options.c", "lock.c"]),
    ("record", ["trace.c", "stats.c", "dump.c"]),
    ("os", ["os.c"]),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}
FILE_LAYER = {f: name for name, files in LAYERS for f in files}

DEF = re.compile(r"^(?:[A-Za-z_][\w \*]*?\s\**)?((?:osm|os)_\w+)\s*\([^;]*$", re.M)
CALL = re.compile(r"\b((?:osm|os)_\w+)\s*\(")
# an assignment to the core's state (osm_heap) outside a core function: the layers above call the core to change it
WRITE = re.compile(r"\bosm_heap\.[\w.\[\]]+\s*(?:[-+*/|&^]?=(?!=)|\+\+|--)")


def strip(text):
    """The source without comments and string literals, its lines where they were."""
    text = re.sub(r"/\*.*?\*/", lambda m: " " + "\n" * m.group(0).count("\n"), text, flags=re.S)  # lines kept
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")  # the runner passes it; the sources are all this test reads
    ap.parse_args()
    owner = {}
    texts = {}
    for f in sorted(os.listdir(SRC)):
        if not f.endswith(".c"):
            continue
        if f not in FILE_LAYER:
            print(f"FAIL layers/{f}: not assigned to a layer (add it to tests/test_layers.py and README.md)")
            return 1
        texts[f] = strip(open(os.path.join(SRC, f)).read())
        for m in DEF.finditer(texts[f]):
            # a definition, not a declaration or a call: the parameter list is followed by a body
            after = texts[f][m.end(1):m.end(1) + 400]
            if re.match(r"[^;{]*\)\s*(?:__attribute__\s*\(\(.*?\)\)\s*)?\{", after, re.S):
                owner.setdefault(m.group(1), f)
    bad = 0
    for f, text in texts.items():
        mine = RANK[FILE_LAYER[f]]
        up = set()
        for m in CALL.finditer(text):
            name = m.group(1)
            where = owner.get(name)
            if where is None:  # an inline helper of internal.h: its prefix names its layer
                layer = "os" if name.startswith("osm_os_") else "front" if name.startswith("osm_front_") else None
            else:
                layer = FILE_LAYER[where]
            if layer is not None and RANK[layer] < mine:
                up.add(f"{name} ({layer}{', ' + where if where else ''})")
        if mine < RANK["core"]:
            for m in WRITE.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                up.add(f"writes {m.group(0).split()[0]} at line {line} (core state: call the core instead)")
        if up:
            print(f"FAIL layers/{f}: the {FILE_LAYER[f]} layer calls up: " + ", ".join(sorted(up)))
            bad += 1
        else:
            print(f"PASS layers/{f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
