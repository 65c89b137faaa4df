#!/usr/bin/env python3
"""Checks the shape of recsync's source, as the project holds it to.

1. No import cycle among the modules of `src/`: among the crate's top-level
   modules, and among the children of each module directory. Test modules
   (`#[cfg(test)] mod tests { .. }` at the end of a file) are left out.
2. No function outside tests in `src/engine/`, `src/identity.rs` and
   `src/mapping/` longer than 100 lines (its signature to its closing brace).

Exits non-zero and names what it found when either fails.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
MAX_LINES = 100
LONG_FN_ROOTS = ("engine/", "identity.rs", "mapping/")


def without_tests(text):
    """The file up to its `#[cfg(test)]` test module, comments blanked."""
    cut = re.search(r"^#\[cfg\([^\]\n]*\btest\b[^\]\n]*\)\]\s*\n\s*mod \w+\s*\{", text, re.M)
    if cut:
        text = text[: cut.start()]
    # Blank line comments (doc comments name modules in links).
    return re.sub(r"//[^\n]*", "", text)


def module_of(rel):
    """`engine/entity.rs` -> ["engine", "entity"]; `engine/mod.rs` -> ["engine"]."""
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def sources():
    for root, _, files in os.walk(SRC):
        for name in sorted(files):
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, SRC).replace(os.sep, "/")
                with open(path, encoding="utf-8") as f:
                    yield rel, f.read()


def paths_used(text, me):
    """Absolute module paths named by `crate::`, `super::` and `self::`."""
    found = []
    for m in re.finditer(r"\b(crate|super|self)((?:::\w+)+)", text):
        head, tail = m.group(1), m.group(2).split("::")[1:]
        if head == "crate":
            base = []
        elif head == "super":
            base = me[:-1]
            while tail and tail[0] == "super":
                base, tail = base[:-1], tail[1:]
        else:
            base = list(me)
        found.append(base + tail)
    # `use crate::{a::X, b::Y}` and `use super::{a, b}` groups.
    for m in re.finditer(r"\b(crate|super)::\{([^;]*?)\};", text, re.S):
        base = [] if m.group(1) == "crate" else me[:-1]
        for item in re.split(r",", m.group(2)):
            item = item.strip().lstrip("{").strip()
            if item and re.match(r"\w", item):
                found.append(base + item.split("::"))
    return found


def check_cycles(files):
    modules = {tuple(module_of(rel)) for rel in files}
    graph = {}
    for rel, text in files.items():
        me = tuple(module_of(rel))
        for path in paths_used(without_tests(text), list(me)):
            # Resolve to the deepest module the path names.
            target = ()
            for i in range(1, len(path) + 1):
                if tuple(path[:i]) in modules:
                    target = tuple(path[:i])
            if not target or target == me:
                continue
            # The edge counts between the two modules' ancestors that are
            # siblings: `engine::entity` -> `mapping::x` is engine -> mapping.
            common = 0
            while common < min(len(me), len(target)) and me[common] == target[common]:
                common += 1
            if common == len(me) or common == len(target):
                continue  # a module and its own parent or child
            a, b = me[: common + 1], target[: common + 1]
            graph.setdefault(a, {}).setdefault(b, set()).add(rel)
    cycles = []
    index, low, stack, on, counter = {}, {}, [], set(), [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            strong(v)
    for comp in cycles:
        names = ["::".join(c) for c in comp]
        print(f"import cycle among: {', '.join(names)}")
        for a in comp:
            for b, by in sorted(graph.get(a, {}).items()):
                if b in comp:
                    print(f"  {'::'.join(a)} -> {'::'.join(b)}  ({', '.join(sorted(by))})")
    return not cycles


FN = re.compile(r"^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")


def check_lengths(files):
    ok = True
    for rel, text in sorted(files.items()):
        if not rel.startswith(LONG_FN_ROOTS):
            continue
        lines = without_tests(text).split("\n")
        i = 0
        while i < len(lines):
            m = FN.match(lines[i])
            if not m:
                i += 1
                continue
            indent, name = m.group(1), m.group(2)
            # The body ends at the first line closing at the fn's indent.
            end = i
            while end < len(lines):
                line = lines[end]
                if line.rstrip().endswith(";") and end == i and "{" not in line:
                    break  # a declaration without a body
                if end > i and line.startswith(indent + "}") and not line.startswith(indent + "} else"):
                    break
                if end == i and line.rstrip().endswith("}") and "{" in line:
                    break  # one line
                end += 1
            length = end - i + 1
            if length > MAX_LINES:
                print(f"src/{rel}:{i + 1}: fn {name} is {length} lines (at most {MAX_LINES})")
                ok = False
            i += 1
    return ok


def main():
    files = dict(sources())
    ok = check_cycles(files)
    ok = check_lengths(files) and ok
    if not ok:
        sys.exit(1)
    print("layers: no import cycle; no function over 100 lines in the core")


if __name__ == "__main__":
    main()
