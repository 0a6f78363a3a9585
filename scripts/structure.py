#!/usr/bin/env python3
"""Measure a Rust workspace's structure, to compare a refactoring's before and after.

Usage: python3 scripts/structure.py [REPO_DIR] [--json]   (REPO_DIR: default, this script's repo)
Standard library only (Python >= 3.11). Skips .git, and target/ next to a Cargo.toml. "Lines" are
physical lines, blank and comment lines included, as `wc -l` counts them.

1. Rust lines. folder: lines and number of the *.rs files directly in it (not in subfolders).
   crate: a folder whose Cargo.toml has [package]; a .rs file belongs to the nearest crate above
   it, so vm/init is not part of vm. Columns: lines in src/ (and in other files Cargo.toml names
   as targets: fuzz_targets/*.rs, snapshots/lib.rs), tests/, benches/, examples/, build.rs, their
   total (and file count); `other`: the crate's .rs files in none of these (harness/templates).
   workspace total: every .rs file found, in a crate or not.
2. Functions: every `fn NAME` with a body (`[pub(..)] [default] [const] [async] [unsafe] [extern
   "X"] fn NAME` starting a line, any indentation, nested ones too), from the line of its name to
   the line of its closing brace, both included. Braces are matched with comments and string, raw
   string, byte string and char literals blanked out (a lifetime 'a is no char literal). Test code
   is left out: items under #[cfg(test)] (`mod tests { .. }`), the files of `#[cfg(test)] mod x;`
   and files in a tests/ folder. Printed: the 15 longest; how many exceed 60 and 100 lines.
3. Module import graph of each library crate with at least 3 modules (root included). Nodes: the
   modules reachable from the lib root by `mod x;` (x.rs or x/mod.rs; `crate` is the root; inline
   `mod x { }` and #[path] are not followed). Edge A -> B (A != B): A's non-test code names B by
   `crate::`, `super::` or `self::`, in a `use` (groups like `use crate::{a::X, b}` expanded; a
   `use` starting with a child module of A counts too) or inline (`crate::b::f()`). A path goes
   to its deepest existing module (`crate::x::y::Z` -> x::y if it exists, else x) and, if that
   module only re-exports the name (`pub use`), on to where it comes from. `mod x;` lines and the
   crate root's `pub use` lines (its facade) are no edges. cycles: strongly connected components
   of more than one module. depth: the longest chain in the graph of components (a cycle is one
   step), counted in modules: a module that imports nothing is level 1, one that imports only
   level-1 modules level 2, ...
4. duplicates: the number of pairs `duplicates --repo REPO_DIR` reports for the whole tree (every
   source file it reads, not only Rust), when that command is on PATH.
"""
import argparse
import bisect
import functools
import json
import os
import re
import shutil
import subprocess
import textwrap
import tomllib
from collections import defaultdict
from pathlib import Path

PARTS = ("src", "tests", "benches", "examples", "build")

# Comments and literals: `/*` starts a (nesting) block comment, handled in blank().
LEXEME = re.compile(r"""//[^\n]*|/\*|(?<!\w)[bc]?r(\#*)".*?"\1|"(?:\\.|[^"\\])*"|'(?:\\.[^']*|[^\\'\n])'""",
                    re.S)
BLOCK_COMMENT = re.compile(r"/\*|\*/")
ITEM_STOP, BRACE = re.compile(r"[()\[\]{;]"), re.compile(r"[{}]")
CFG_TEST = re.compile(r"#\[cfg\(test\)\]")
MOD_DECL = re.compile(r"^[ \t]*(?:pub(?:\([^)\n]*\))?\s+)?mod\s+(?:r#)?(\w+)\s*;", re.M)
TEST_MOD_DECL = re.compile(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(?:r#)?(\w+)\s*;")
FN = re.compile(r"^[ \t]*(?:#\[[^\]\n]*\][ \t]*)*(?:pub(?:\([^)\n]*\))?\s+)?(?:default\s+)?(?:const\s+)?"
                r"(?:async\s+)?(?:unsafe\s+)?(?:extern\s+)?fn\s+(?:r#)?(\w+)", re.M)
USE = re.compile(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
INLINE_PATH = re.compile(r"\b(?:crate|self|super)(?:::\w+)+")


def spaces(s):
    return re.sub(r"[^\n]", " ", s)


def blank(text):
    """text with comments and string and char literals turned to spaces (newlines kept)."""
    out, i = [], 0
    while m := LEXEME.search(text, i):
        end = m.end()
        if m.group() == "/*":
            depth = 1
            while depth and (c := BLOCK_COMMENT.search(text, end)):
                depth, end = depth + (1 if c.group() == "/*" else -1), c.end()
            end = end if not depth else len(text)
        out += [text[i : m.start()], spaces(text[m.start() : end])]
        i = end
    return "".join(out + [text[i:]])


def item_end(code, i):
    """(end, has_body) of the item whose header starts at code[i]: just past its `;` or `{ .. }`."""
    depth = 0
    for m in ITEM_STOP.finditer(code, i):
        ch = m.group()
        if ch in "()[]":
            depth += 1 if ch in "([" else -1
        elif depth == 0 and ch == ";":
            return m.end(), False
        elif depth == 0:
            level = 0
            for b in BRACE.finditer(code, m.start()):
                level += 1 if b.group() == "{" else -1
                if level == 0:
                    return b.end(), True
            return len(code), True
    return len(code), False


@functools.lru_cache(maxsize=None)
def non_test_code(path):
    """(code, test_mods): the file blanked, items under #[cfg(test)] too; test_mods names the
    `#[cfg(test)] mod x;` whose code is in a file of its own."""
    code, test_mods, done = blank(path.read_text(encoding="utf-8", errors="replace")), [], 0
    for m in CFG_TEST.finditer(code):
        if m.start() >= done:
            done = item_end(code, m.end())[0]
            if decl := TEST_MOD_DECL.match(code, m.end(), done):
                test_mods.append(decl.group(1))
            code = code[: m.start()] + spaces(code[m.start() : done]) + code[done:]
    return code, test_mods


def mod_dir(f, is_root):
    """The folder holding the files of the modules that file f declares with `mod x;`."""
    return f.parent if is_root or f.name == "mod.rs" else f.with_suffix("")


# ---- 1. lines per folder and crate
def rust_files(root):
    found = []
    for d, subdirs, names in os.walk(root):
        skip = {".git", "target"} if "Cargo.toml" in names else {".git"}
        subdirs[:] = sorted(set(subdirs) - skip)
        found += [Path(d, n) for n in names if n.endswith(".rs")]
    return sorted(found)


def load_crates(root):
    """{crate folder: (package name, lib root file, files Cargo.toml names as targets)}."""
    crates = {}
    for toml in root.rglob("Cargo.toml"):
        if {".git", "target"} & set(toml.relative_to(root).parts):
            continue
        try:
            manifest = tomllib.loads(toml.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError):
            continue
        tables = [manifest.get("lib", {})] + [t for k in ("bin", "test", "bench", "example")
                                              for t in manifest.get(k, [])]
        if "package" in manifest:
            targets = {toml.parent / t["path"] for t in tables if "path" in t}
            lib = toml.parent / manifest.get("lib", {}).get("path", "src/lib.rs")
            crates[toml.parent] = (manifest["package"].get("name", toml.parent.name), lib, targets)
    return crates


def measure_lines(root, files, crates):
    folders = defaultdict(lambda: {"lines": 0, "files": 0})
    rows = {d: dict.fromkeys(("files", *PARTS, "other"), 0) for d in crates}
    for f in files:
        n = len(f.read_text(encoding="utf-8", errors="replace").splitlines())
        folder = folders[f.parent.relative_to(root).as_posix()]
        folder["lines"], folder["files"] = folder["lines"] + n, folder["files"] + 1
        crate = next((p for p in f.parents if p in crates), None)
        if crate:
            rel = f.relative_to(crate).parts
            part = "build" if rel == ("build.rs",) else rel[0] if rel[0] in PARTS and len(rel) > 1 \
                else "src" if f in crates[crate][2] else "other"
            rows[crate][part] += n
            rows[crate]["files"] += part != "other"
    return {"folders": [{"folder": k, **v} for k, v in sorted(folders.items())],
            "crates": [{"crate": crates[d][0], "dir": d.relative_to(root).as_posix() or ".", **r,
                        "total": sum(r[p] for p in PARTS)} for d, r in sorted(rows.items())],
            "total_lines": sum(v["lines"] for v in folders.values()), "total_files": len(files)}


# ---- 2. functions
def test_files(root, files):
    """Files in a tests/ folder, and the files of `#[cfg(test)] mod x;` modules and below them."""
    out = {f for f in files if "tests" in f.relative_to(root).parts[:-1]}
    for f in files:
        is_root = f.name in ("lib.rs", "main.rs") or f.parent.name in ("bin", "benches", "examples")
        for name in non_test_code(f)[1]:
            d = mod_dir(f, is_root) / name
            out |= {g for g in files if g == d.with_suffix(".rs") or d in g.parents}
    return out


def measure_functions(root, files, top=15):
    fns = []
    for f in sorted(set(files) - test_files(root, files)):
        code = non_test_code(f)[0]
        newlines = [m.start() for m in re.finditer("\n", code)]
        for m in FN.finditer(code):
            end, has_body = item_end(code, m.end())
            if has_body:
                first, last = (bisect.bisect_left(newlines, p) + 1 for p in (m.start(1), end - 1))
                fns.append({"lines": last - first + 1, "fn": m.group(1),
                            "at": f"{f.relative_to(root).as_posix()}:{first}"})
    fns.sort(key=lambda x: (-x["lines"], x["at"]))
    return {"count": len(fns), "over_60": sum(x["lines"] > 60 for x in fns),
            "over_100": sum(x["lines"] > 100 for x in fns), "longest": fns[:top]}


# ---- 3. module import graphs
def expand_use(tree, prefix=()):
    """`crate::{a::X, b::{self, Y as Z}}` -> [(('crate','a','X'), 'X'), (('crate','b'), 'b'), ...]:
    each path with the name it is known by after the `use`."""
    head, brace, rest = " ".join(tree.split()).partition("{")
    if not brace:
        path, _, alias = head.partition(" as ")
        segs = prefix + tuple(s.strip() for s in path.split("::") if s.strip())
        segs = segs[:-1] if segs[-1:] == ("self",) else segs
        return [(segs, alias.strip() or (segs[-1] if segs else ""))]
    segs, inner = prefix + tuple(s.strip() for s in head.split("::") if s.strip()), rest[: rest.rfind("}")]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner + ","):
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            parts, start = parts + [inner[start:i]], i + 1
    return [r for p in parts if p.strip() for r in expand_use(p, segs)]


def resolve(cur, segs, modules, in_use):
    """The absolute path (a tuple) of path segs written in module cur; None if not in the crate."""
    if segs[:1] == ("crate",):
        return segs[1:]
    if segs[:1] in (("self",), ("super",)):
        while segs[:1] in (("self",), ("super",)):
            cur, segs = (cur[:-1] if segs[0] == "super" else cur), segs[1:]
        return cur + segs
    return cur + segs if in_use and segs and cur + segs[:1] in modules else None  # `use child::X`


def module_graph(lib_root):
    """(modules, edges) of the library whose root file is lib_root."""
    modules, todo = {}, [((), lib_root)]
    while todo:
        mod, f = todo.pop()
        modules[mod] = non_test_code(f)[0]
        for m in MOD_DECL.finditer(modules[mod]):
            d = mod_dir(f, not mod)
            todo += [(mod + (m.group(1),), c) for c in (d / f"{m.group(1)}.rs", d / m.group(1) / "mod.rs")
                     if c.is_file()][:1]
    refs, reexports = defaultdict(set), {}
    for mod, code in modules.items():
        for m in USE.finditer(code):
            for segs, name in expand_use(m.group(2)):
                path = resolve(mod, segs, modules, in_use=True)
                if path is not None and m.group(1) and name != "*":
                    reexports[(mod, name)] = path
                if path is not None and not (m.group(1) and mod == ()):
                    refs[mod].add(path)
        for m in INLINE_PATH.finditer(USE.sub(" ", code)):
            refs[mod].add(resolve(mod, tuple(m.group().split("::")), modules, in_use=False))

    def owner(path, hops=0):
        k = max(k for k in range(len(path) + 1) if path[:k] in modules)
        if k < len(path) and (path[:k], path[k]) in reexports and hops < 8:
            return owner(reexports[(path[:k], path[k])] + path[k + 1 :], hops + 1)
        return path[:k]

    edges = {(a, owner(p)) for a, paths in refs.items() for p in paths}
    return sorted(modules), sorted((a, b) for a, b in edges if a != b)


def strongly_connected(nodes, succ):
    """Tarjan's algorithm, iterative. Components come out sinks first (after all they reach)."""
    index, low, stack, on_stack, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        return v, iter(succ[v])

    for start in nodes:
        work = [] if start in index else [visit(start)]
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    work.append(visit(w))
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
    succ = {m: [b for a, b in edges if a == m] for m in modules}
    comps = strongly_connected(modules, succ)
    comp_of = {m: i for i, c in enumerate(comps) for m in c}
    level, below = [], []
    for i, comp in enumerate(comps):  # sinks first: what a component imports has its level already
        best = max(sorted({comp_of[w] for v in comp for w in succ[v]} - {i}), key=level.__getitem__,
                   default=None)
        level.append(1 + (level[best] if best is not None else 0))
        below.append(best)
    name = lambda m: "::".join(m) or "crate"  # noqa: E731
    chain, i = [], max(range(len(comps)), key=level.__getitem__, default=None)
    while i is not None:
        chain.append(name(comps[i][0]) if len(comps[i]) == 1 else "{" + ",".join(map(name, comps[i])) + "}")
        i = below[i]
    return {"modules": len(modules), "edges": len(edges), "depth": len(chain), "chain": chain,
            "cycles": [[name(m) for m in c] for c in comps if len(c) > 1],
            "edge_list": [f"{name(a)} -> {name(b)}" for a, b in edges]}


def measure_graphs(root, crates):
    out = {}
    for d, (pkg, lib, _) in sorted(crates.items()):
        if lib.is_file() and (g := measure_graph(lib))["modules"] >= 3:
            out[f"{pkg} ({d.relative_to(root).as_posix()})"] = g
    return out


# ---- 4. duplicates
def measure_duplicates(root):
    if not (exe := shutil.which("duplicates")):
        return {"pairs": None, "note": "unavailable: no `duplicates` command on PATH"}
    try:
        run = subprocess.run([exe, "--repo", str(root), "--most", "1", "--seconds", "120"],
                             capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.SubprocessError) as e:
        return {"pairs": None, "note": f"failed: {e}"}
    lines = run.stdout.splitlines()
    first = lines[0] if lines else run.stderr.strip() or f"no output (exit {run.returncode})"
    m = re.match(r"(\d+) pairs?\b", first)
    pairs = int(m.group(1)) if m else 0 if first.startswith("no duplicates") else None
    note = "; ".join(re.findall(r"\((\d+ files read|\d+ by shape[^)]*)\)", first)) or first
    return {"pairs": pairs, "note": " | ".join([note] + [ln for ln in lines if ln.startswith("incomplete:")]),
            "summary": first}


def print_text(r):
    print(f"== Rust lines: {r['repo']}\n{'lines':>6} {'files':>5}  folder")
    for f in r["lines"]["folders"]:
        print(f"{f['lines']:6} {f['files']:5}  {f['folder']}")
    cols = {c: max(len(c), 5) + 1 for c in ("files", *PARTS, "total", "other")}
    print(f"\n{'crate':<17}{'dir':<20}" + "".join(f"{c:>{w}}" for c, w in cols.items()))
    for c in r["lines"]["crates"]:
        print(f"{c['crate']:<17}{c['dir']:<20}" + "".join(f"{c[k]:{w}}" for k, w in cols.items()))
    print(f"workspace total: {r['lines']['total_lines']} lines in {r['lines']['total_files']} .rs files")
    fns = r["functions"]
    print(f"\n== {len(fns['longest'])} longest functions (non-test)\n{'lines':>6}  path:line  fn name")
    for f in fns["longest"]:
        print(f"{f['lines']:6}  {f['at']}  fn {f['fn']}")
    print(f"non-test functions: {fns['count']}; longer than 60 lines: {fns['over_60']}; "
          f"longer than 100 lines: {fns['over_100']}")
    print("\n== Module import graphs (library crates with >= 3 modules)")
    for crate, g in r["graphs"].items():
        cycles = f" [{'; '.join(','.join(c) for c in g['cycles'])}]" if g["cycles"] else ""
        print(f"{crate}: {g['modules']} modules, {g['edges']} edges, {len(g['cycles'])} cycles{cycles},"
              f" depth {g['depth']}")
        print(textwrap.fill(" -> ".join(g["chain"]), 99, initial_indent="  ", subsequent_indent="    ",
                            break_on_hyphens=False, break_long_words=False))
    d = r["duplicates"]
    print(f"\n== duplicates: {'?' if d['pairs'] is None else d['pairs']} pairs ({d['note']})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", nargs="?", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--json", action="store_true", help="print everything as JSON")
    args = ap.parse_args()
    root = args.repo.resolve()
    crates, files = load_crates(root), rust_files(root)
    result = {"repo": str(root), "lines": measure_lines(root, files, crates),
              "functions": measure_functions(root, files), "graphs": measure_graphs(root, crates),
              "duplicates": measure_duplicates(root)}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_text(result)


if __name__ == "__main__":
    main()
