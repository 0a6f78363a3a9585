#!/usr/bin/env python3
"""Measure a Rust workspace's structure, to compare a refactoring's before and after.

Usage: python3 scripts/structure.py [REPO_DIR] [--json]   (REPO_DIR: default, this script's repo)

Standard library only. Directories named `.git`, and `target` next to a Cargo.toml, are skipped.
"Lines" are physical lines (blank and comment lines included), as `wc -l` counts them.

1. Rust lines.
   folder: the lines and the number of the *.rs files directly in it (not in subfolders).
   crate:  a directory with a Cargo.toml that has [package]. A .rs file belongs to the nearest such
           directory above it, so a nested crate (vm/init) is not part of its parent (vm). Columns:
           src/ (plus target paths Cargo.toml declares elsewhere, e.g. fuzz_targets/*.rs), tests/,
           benches/, examples/, build.rs; `other` is the crate's .rs files in none of these (e.g.
           templates), which `total` leaves out.
   workspace total: every .rs file found, in a crate or not.
2. Functions. Every `fn NAME` item with a body ([pub[(..)]] [default] [const] [async] [unsafe]
   [extern "X"] fn, any indentation, nested ones too), measured from the line of `fn` to the line
   of its closing brace, inclusive. Braces are matched after string, raw string, byte string and
   char literals and comments are blanked out (a lifetime 'a is not a char literal). Test code is
   left out: any item under #[cfg(test)] (usually `mod tests { .. }`) and files in a tests/ folder.
   Printed: the 15 longest, and how many are longer than 60 and than 100 lines.
3. Module import graph, for each library crate with at least 3 modules, the root included.
   Nodes: the modules reachable from the lib root through `mod x;` declarations (x.rs or
   x/mod.rs; `crate` is the root). Inline `mod x { }` blocks and #[path] are not followed.
   Edge A -> B (A != B): A's non-test code names B through `crate::`, `super::` or `self::`, in a
   `use` (groups `use crate::{a::X, b}` expanded; a `use` whose first name is a child module of A
   counts too) or inline (`crate::b::f()`). A path goes to its deepest existing module
   (`crate::x::y::Z` -> x::y if that module exists, else x); when that module only re-exports the
   name (`pub use`), to the module it comes from. The crate root's own `pub use` lines are its
   facade, not edges. Cycles: strongly connected components of more than one module.
   depth: the longest chain of the condensation (each cycle one step), counted in modules: a
   module that imports nothing is level 1, one that imports only such modules level 2, ...
4. duplicates: the number of pairs `duplicates --repo REPO_DIR` reports for the whole tree (all
   the source files it reads, not only Rust), if that command is on PATH.
"""
import argparse
import bisect
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

TARGET_DIRS = ("src", "tests", "benches", "examples")

# ---------------------------------------------------------------- lexing


RAW_STRING = re.compile(r'(?<![A-Za-z0-9_])[bc]?r(#*)"')


def blank(text):
    """text with comments and the insides of string and char literals made spaces (newlines kept)."""
    out, i, n = list(text), 0, len(text)

    def wipe(a, b):
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            wipe(i, j)
            i = j
        elif text.startswith("/*", i):  # block comments nest in Rust
            depth, j = 1, i + 2
            while j < n and depth:
                step = text[j : j + 2]
                depth += (step == "/*") - (step == "*/")
                j += 2 if step in ("/*", "*/") else 1
            wipe(i, j)
            i = j
        elif c in "bcr" and (m := RAW_STRING.match(text, i)):
            close = '"' + m.group(1)
            j = text.find(close, m.end())
            j = n if j < 0 else j
            wipe(m.end(), j)
            i = j + len(close)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            wipe(i + 1, j)
            i = j + 1
        elif c == "'" and text.startswith("\\", i + 1):  # '\n', '\'', '\u{..}'
            j = text.find("'", i + 3)
            j = n if j < 0 else j
            wipe(i + 1, j)
            i = j + 1
        elif c == "'" and i + 2 < n and text[i + 2] == "'":  # 'x'; else a lifetime or label
            wipe(i + 1, i + 2)
            i += 3
        else:
            i += 1
    return "".join(out)


BRACES, ITEM_STOP = re.compile(r"[{}]"), re.compile(r"[()\[\]{;]")


def item_end(code, i):
    """(end, has_body) for the item starting at code[i]: just past its `;` or its `{ .. }`."""
    depth = 0
    for m in ITEM_STOP.finditer(code, i):
        ch = m.group()
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch == ";":
            return m.end(), False
        elif depth == 0:  # the body's `{`
            level = 0
            for b in BRACES.finditer(code, m.start()):
                level += 1 if b.group() == "{" else -1
                if level == 0:
                    return b.end(), True
            return len(code), True
    return len(code), False


CFG_TEST = re.compile(r"#\[cfg\(test\)\]")


def non_test_code(path):
    """The file's blanked code with every item under #[cfg(test)] blanked too."""
    code = blank(path.read_text(encoding="utf-8", errors="replace"))
    done = 0
    for m in CFG_TEST.finditer(code):
        if m.start() >= done:
            done, _ = item_end(code, m.end())
            code = code[: m.start()] + re.sub(r"[^\n]", " ", code[m.start() : done]) + code[done:]
    return code


# ---------------------------------------------------------------- 1. files, folders, crates


def rust_files(root):
    """All *.rs files below root, skipping .git and Cargo target dirs."""
    found, todo = [], [root]
    while todo:
        d = todo.pop()
        for p in sorted(d.iterdir()):
            if p.is_dir() and not p.is_symlink():
                if p.name != ".git" and not (p.name == "target" and (d / "Cargo.toml").exists()):
                    todo.append(p)
            elif p.suffix == ".rs" and p.is_file():
                found.append(p)
    return sorted(found)


def load_crates(root):
    """{crate dir: (package name, manifest dict)} for each Cargo.toml with a [package]."""
    crates = {}
    for toml in root.rglob("Cargo.toml"):
        rel = toml.relative_to(root).parts
        if ".git" in rel or "target" in rel:
            continue
        try:
            manifest = tomllib.loads(toml.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError):
            continue
        if "package" in manifest:
            crates[toml.parent] = (manifest["package"].get("name", toml.parent.name), manifest)
    return crates


def declared_targets(crate_dir, manifest):
    """Files Cargo.toml names as targets: [lib], [[bin]], [[test]], [[bench]], [[example]] paths."""
    tables = [manifest.get("lib", {})]
    for kind in ("bin", "test", "bench", "example"):
        tables += manifest.get(kind, [])
    return {(crate_dir / t["path"]).resolve() for t in tables if "path" in t}


def crate_part(f, crate_dir, targets):
    rel = f.relative_to(crate_dir).parts
    if rel == ("build.rs",):
        return "build"
    if rel[0] in TARGET_DIRS and len(rel) > 1:
        return rel[0]
    return "src" if f.resolve() in targets else "other"


def measure_lines(root, files, crates):
    lines = {f: len(f.read_text(encoding="utf-8", errors="replace").splitlines()) for f in files}
    folders = defaultdict(lambda: [0, 0])
    for f, n in lines.items():
        folders[f.parent.relative_to(root).as_posix()][0] += n
        folders[f.parent.relative_to(root).as_posix()][1] += 1
    per_crate = {d: dict.fromkeys(("files", "src", "tests", "benches", "examples", "build", "other"), 0)
                 for d in crates}
    for f, n in lines.items():
        owner = next((p for p in f.parents if p in crates), None)
        if owner is not None:
            row = per_crate[owner]
            part = crate_part(f, owner, declared_targets(owner, crates[owner][1]))
            row[part] += n
            row["files"] += part != "other"
    crate_rows = []
    for d, row in sorted(per_crate.items()):
        row["total"] = sum(row[k] for k in ("src", "tests", "benches", "examples", "build"))
        crate_rows.append({"crate": crates[d][0], "dir": d.relative_to(root).as_posix() or ".", **row})
    return {"folders": [{"folder": k, "lines": v[0], "files": v[1]} for k, v in sorted(folders.items())],
            "crates": crate_rows, "total_lines": sum(lines.values()), "total_files": len(lines)}


# ---------------------------------------------------------------- 2. functions

FN = re.compile(r'^[ \t]*(?:#\[[^\]\n]*\][ \t]*)*(?:pub(?:\([^)\n]*\))?\s+)?(?:default\s+)?(?:const\s+)?'
                r'(?:async\s+)?(?:unsafe\s+)?(?:extern\s+(?:"[^"\n]*"\s+)?)?fn\s+(?:r#)?(\w+)', re.M)


def measure_functions(root, files, top=15):
    fns = []
    for f in files:
        rel = f.relative_to(root)
        if "tests" in rel.parts[:-1]:
            continue
        code = non_test_code(f)
        newlines = [m.start() for m in re.finditer("\n", code)]
        line_of = lambda pos: bisect.bisect_left(newlines, pos) + 1  # noqa: E731
        for m in FN.finditer(code):
            end, has_body = item_end(code, m.end())
            if has_body:
                first, last = line_of(m.start(1)), line_of(end - 1)
                fns.append({"lines": last - first + 1, "at": f"{rel.as_posix()}:{first}", "fn": m.group(1)})
    fns.sort(key=lambda x: (-x["lines"], x["at"]))
    return {"count": len(fns), "over_60": sum(x["lines"] > 60 for x in fns),
            "over_100": sum(x["lines"] > 100 for x in fns), "longest": fns[:top]}


# ---------------------------------------------------------------- 3. module graph

MOD_DECL = re.compile(r"^[ \t]*(?:pub(?:\([^)\n]*\))?\s+)?mod\s+(?:r#)?(\w+)\s*;", re.M)
USE = re.compile(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
INLINE_PATH = re.compile(r"\b(?:crate|self|super)(?:::\w+)+")
TOKEN = re.compile(r"::|[{},*]|\w+")


def expand_use(tree):
    """`crate::{a::X, b::{self, Y as Z}}` -> [(['crate','a','X'], 'X'), (['crate','b'], 'b'), ...]."""
    toks, out = TOKEN.findall(tree), []

    def walk(i, prefix):
        segs = list(prefix)
        while i < len(toks):
            t = toks[i]
            if t == "{":
                i += 1
                while i < len(toks) and toks[i] != "}":
                    i = walk(i, segs)
                    i += toks[i] == "," if i < len(toks) else 0
                return i + 1
            if t == "*":
                out.append((segs, "*"))
                return i + 1
            if t in (",", "}"):
                return i
            if t != "::":
                segs.append(t)
                if i + 1 < len(toks) and toks[i + 1] == "as":
                    i += 2
                    out.append((segs, toks[i] if i < len(toks) else segs[-1]))
                    return i + 1
                if i + 1 >= len(toks) or toks[i + 1] != "::":
                    segs = segs[:-1] if segs[-1] == "self" else segs
                    out.append((segs, segs[-1] if segs else "self"))
                    return i + 1
            i += 1
        return i

    walk(0, [])
    return out


def resolve(cur, segs, modules, in_use):
    """Absolute path (a tuple) of a path written in module `cur`, or None if outside the crate."""
    if not segs:
        return None
    if segs[0] == "crate":
        return tuple(segs[1:])
    if segs[0] in ("self", "super"):
        base = cur
        while segs and segs[0] in ("self", "super"):
            base = base[:-1] if segs[0] == "super" else base
            segs = segs[1:]
        return base + tuple(segs)
    if in_use and cur + (segs[0],) in modules:  # 2018 `use child::X;`
        return cur + tuple(segs)
    return None


def module_graph(lib_root):
    """(modules, edges) of the crate whose lib root file is lib_root."""
    modules, todo = {}, [((), lib_root)]
    while todo:
        mod, f = todo.pop()
        if mod in modules:
            continue
        modules[mod] = non_test_code(f)
        base = f.parent if (not mod or f.name == "mod.rs") else f.with_suffix("")
        for m in MOD_DECL.finditer(modules[mod]):
            cand = [base / f"{m.group(1)}.rs", base / m.group(1) / "mod.rs"]
            todo += [(mod + (m.group(1),), c) for c in cand if c.is_file()][:1]
    refs, reexports = defaultdict(set), {}
    for mod, code in modules.items():
        for m in USE.finditer(code):
            for segs, name in expand_use(m.group(2)):
                path = resolve(mod, segs, modules, in_use=True)
                if path is None:
                    continue
                if m.group(1) and name != "*":
                    reexports[(mod, name)] = path
                if not (m.group(1) and mod == ()):  # the root's `pub use` is its facade
                    refs[mod].add(path)
        for m in INLINE_PATH.finditer(USE.sub(" ", code)):
            path = resolve(mod, m.group().split("::"), modules, in_use=False)
            refs[mod].add(path)

    def owner(path, hops=0):
        k = max(k for k in range(len(path) + 1) if path[:k] in modules)
        if k < len(path) and (path[:k], path[k]) in reexports and hops < 8:
            return owner(reexports[(path[:k], path[k])] + path[k + 1 :], hops + 1)
        return path[:k]

    edges = {(a, owner(p)) for a, paths in refs.items() for p in paths}
    return sorted(modules), sorted((a, b) for a, b in edges if a != b)


def strongly_connected(nodes, succ):
    """Tarjan, iterative. Components come out sinks first: each after all those it reaches."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    for start in nodes:
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(succ[start]))]
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ[w])))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while not comp or comp[-1] != v:
                        comp.append(stack.pop())
                        on_stack.discard(comp[-1])
                    comps.append(sorted(comp))
    return comps


def measure_graph(lib_root):
    modules, edges = module_graph(lib_root)
    succ = {m: [] for m in modules}
    for a, b in edges:
        succ[a].append(b)
    comps = strongly_connected(modules, succ)
    comp_of = {m: i for i, c in enumerate(comps) for m in c}
    level, below = [], []
    for i, comp in enumerate(comps):  # sinks first, so successors already have their level
        nexts = {comp_of[w] for v in comp for w in succ[v]} - {i}
        best = max(sorted(nexts), key=lambda j: level[j], default=None)
        level.append(1 + (level[best] if best is not None else 0))
        below.append(best)
    name = lambda m: "::".join(m) or "crate"  # noqa: E731
    label = lambda c: name(c[0]) if len(c) == 1 else "{" + ",".join(map(name, c)) + "}"  # noqa: E731
    chain, i = [], max(range(len(comps)), key=lambda j: level[j], default=None)
    while i is not None:
        chain.append(label(comps[i]))
        i = below[i]
    return {"modules": len(modules), "edges": len(edges), "depth": len(chain), "chain": chain,
            "cycles": [[name(m) for m in c] for c in comps if len(c) > 1],
            "edge_list": [f"{name(a)} -> {name(b)}" for a, b in edges]}


def measure_graphs(root, crates):
    out = {}
    for d, (pkg, manifest) in sorted(crates.items()):
        lib = d / manifest.get("lib", {}).get("path", "src/lib.rs")
        if lib.is_file():
            g = measure_graph(lib)
            if g["modules"] >= 3:
                out[f"{pkg} ({d.relative_to(root).as_posix()})"] = g
    return out


# ---------------------------------------------------------------- 4. duplicates


def measure_duplicates(root):
    exe = shutil.which("duplicates")
    if not exe:
        return {"pairs": None, "note": "unavailable: no `duplicates` command on PATH"}
    try:
        run = subprocess.run([exe, "--repo", str(root), "--most", "1", "--seconds", "120"],
                             capture_output=True, text=True, timeout=180)
        lines = run.stdout.splitlines()
        first = lines[0] if lines else run.stderr.strip()
        m = re.match(r"(\d+) pairs?\b", first)
        pairs = int(m.group(1)) if m else 0 if first.startswith("no duplicates") else None
        notes = [first] + [ln for ln in lines if ln.startswith("incomplete:")]
        return {"pairs": pairs, "note": " | ".join(notes)}
    except (OSError, subprocess.SubprocessError) as e:
        return {"pairs": None, "note": f"failed: {e}"}


# ---------------------------------------------------------------- output


def print_text(r):
    print(f"== Rust lines: {r['repo']}")
    print(f"{'lines':>6} {'files':>5}  folder")
    for f in r["lines"]["folders"]:
        print(f"{f['lines']:6} {f['files']:5}  {f['folder']}")
    cols = ("files", "src", "tests", "benches", "examples", "build", "total", "other")
    print(f"\n{'crate':<18}{'dir':<20}" + "".join(f"{c:>8}" for c in cols))
    for c in r["lines"]["crates"]:
        print(f"{c['crate']:<18}{c['dir']:<20}" + "".join(f"{c[k]:8}" for k in cols))
    print(f"workspace total: {r['lines']['total_lines']} lines in {r['lines']['total_files']} .rs files")
    fns = r["functions"]
    print(f"\n== {len(fns['longest'])} longest functions (non-test)\n{'lines':>6}  path:line  fn name")
    for f in fns["longest"]:
        print(f"{f['lines']:6}  {f['at']}  fn {f['fn']}")
    print(f"non-test functions: {fns['count']}; longer than 60 lines: {fns['over_60']};"
          f" longer than 100 lines: {fns['over_100']}")
    print("\n== Module import graphs (lib crates with >= 3 modules)")
    for crate, g in r["graphs"].items():
        cycles = "; ".join(",".join(c) for c in g["cycles"])
        print(f"{crate}: {g['modules']} modules, {g['edges']} edges, {len(g['cycles'])} cycles"
              + (f" [{cycles}]" if cycles else "") + f", depth {g['depth']}")
        print("  " + " -> ".join(g["chain"]))
    d = r["duplicates"]
    print(f"\n== duplicates: {d['pairs'] if d['pairs'] is not None else '?'} pairs  ({d['note']})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", nargs="?", default=Path(__file__).resolve().parent.parent, type=Path)
    ap.add_argument("--json", action="store_true", help="print everything as JSON")
    args = ap.parse_args()
    root = args.repo.resolve()
    crates = load_crates(root)
    files = rust_files(root)
    result = {"repo": str(root), "lines": measure_lines(root, files, crates),
              "functions": measure_functions(root, files), "graphs": measure_graphs(root, crates),
              "duplicates": measure_duplicates(root)}
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print_text(result)


if __name__ == "__main__":
    main()
