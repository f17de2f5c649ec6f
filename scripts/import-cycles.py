#!/usr/bin/env python3
"""Import cycles between the files of each crate (issue 16: "no circle of imports between
files"): reads the `crate::…` and `super::…` paths in every `crates/*/src/**/*.rs` (comments
and `#[cfg(test)] mod tests` left out), maps each to the file of the module it names, and prints
every strongly connected component of more than one file; exits 1 if there is one. A child
module using its ancestors is not counted: it is part of them.

  scripts/import-cycles.py [ROOT]"""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else '.'
found = False
def modfile(src, parts):
    # longest prefix of parts that is a module file
    best = None
    for n in range(len(parts), 0, -1):
        p = os.path.join(src, *parts[:n])
        for cand in (p + '.rs', os.path.join(p, 'mod.rs')):
            if os.path.isfile(cand):
                return cand
    return None
def modpath(src, f):
    rel = os.path.relpath(f, src)[:-3].split(os.sep)
    if rel[-1] == 'mod': rel = rel[:-1]
    if rel in (['lib'], ['main']): rel = []
    return rel
for crate in sorted(os.listdir(os.path.join(root, 'crates'))):
    src = os.path.join(root, 'crates', crate, 'src')
    if not os.path.isdir(src): continue
    files = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.endswith('.rs')]
    edges = {f: set() for f in files}
    for f in files:
        me = modpath(src, f)
        text = open(f).read()
        text = re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*', '', text, flags=re.S)
        text = re.sub(r'//[^\n]*', '', text)  # comments name modules without using them
        for m in re.finditer(r'\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)', text):
            parts = m.group(2).split('::')[1:]
            if m.group(1) == 'super':
                base = me[:-1] if not f.endswith('mod.rs') else me[:-1]
                if f.endswith('mod.rs'): base = me[:-1]
                parts = base + parts
            t = modfile(src, parts)
            if t and t != f and not t.endswith(('lib.rs', 'main.rs')):
                # A child module is part of its ancestors (their private items are its own):
                # using them is not an arrow between rooms.
                if me[:len(modpath(src, t))] == modpath(src, t):
                    continue
                edges[f].add(t)
    # Tarjan
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def sc(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index: sc(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(comp)
    for v in files:
        if v not in index: sc(v)
    for comp in out:
        print(crate + ': ' + ' <-> '.join(sorted(os.path.relpath(c, src) for c in comp)))
    found = found or bool(out)

sys.exit(1 if found else 0)
