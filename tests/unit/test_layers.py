"""The import graph of src/qtalign: every import (also inside functions) goes to the same or a lower layer; no circles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "qtalign"

# docs/architecture.md draws these layers; a module may import only from its own layer or a lower one
LAYERS: list[tuple[str, list[str]]] = [
    ("core", ["qtalign", "qtalign.errors", "qtalign.compat", "qtalign.languages", "qtalign.settings",
              "qtalign.store", "qtalign.tasks", "qtalign.templates", "qtalign.protocol"]),
    ("data", ["qtalign.data", "qtalign.runs.build"]),  # runs.build: the data build's files, written by data/
    ("inputs", ["qtalign.metrics", "qtalign.prompt_check", "qtalign.trainable", "qtalign.reference", "qtalign.translate", "qtalign.models", "qtalign.scoring", "qtalign.batchsize",
                "qtalign.distributed", "qtalign.prompts", "qtalign.calibration", "qtalign.runs", "qtalign.figures"]),
    ("stages", ["qtalign.eval", "qtalign.train", "qtalign.analysis", "qtalign.compare", "qtalign.merge",
                "qtalign.export"]),
    ("results", ["qtalign.report", "qtalign.evidence"]),
    ("study", ["qtalign.study"]),
    ("cli", ["qtalign.cli", "qtalign.__main__"]),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(mod: str) -> int:
    best, found = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (mod == p or (p != "qtalign" and mod.startswith(p + "."))) and len(p) > best:
                best, found = len(p), i
    if found < 0:
        raise AssertionError(f"{mod}: in no layer of tests/unit/test_layers.py (add it there and to docs/architecture.md)")
    return found


def imports(path: Path, mod: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "qtalign"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "qtalign":
                continue
            for a in node.names:  # `from qtalign.x import y` may name a module y
                out.add(f"{base}.{a.name}" if (SRC.parent / f"{base}.{a.name}".replace(".", "/")).exists()
                        or (SRC.parent / (f"{base}.{a.name}".replace(".", "/") + ".py")).exists() else base)
    return out


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in SRC.rglob("*.py")}
    return {m: {i for i in imports(p, m) if i in mods and i != m} for m, p in mods.items()}


def test_no_upward_imports() -> None:
    bad = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {i} ({LAYERS[layer_of(i)][0]})"
           for m, deps in sorted(graph().items()) for i in sorted(deps)
           if layer_of(i) > layer_of(m) and m != "qtalign"]
    assert not bad, "\n".join(bad)


def test_no_import_circles() -> None:
    g = {m: {d for d in deps if d != "qtalign"} for m, deps in graph().items()}
    # a package's __init__ re-exporting its own modules is not a circle of ideas
    g = {m: {d for d in deps if not (m.startswith(d + ".") )} for m, deps in g.items()}
    index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not sccs, "import circles: " + "; ".join(" <-> ".join(c) for c in sccs)


@pytest.mark.parametrize("limit", [450])
def test_modules_are_small(limit: int) -> None:
    big = {module_name(p): n for p in SRC.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit}
    assert not big, f"modules over {limit} lines: {big}"
