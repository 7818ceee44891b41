"""The tree is the pipeline: each stage imports only the stages below it, and nothing cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import alertd

PACKAGE = Path(alertd.__file__).parent
LAYERS = ["common", "domain", "transport", "storage", "exchanges", "ingest", "detect",
          "shaping", "rules", "delivery", "config", "runtime", "authoring", "sim", "cli"]
"""Lowest first. A module may import its own stage and the stages before it, never after."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, name: str, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m == "alertd" or m.startswith("alertd.")}


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_belongs_to_a_stage():
    loose = [m for m in modules() if m.count(".") == 1 and stage(m) is None
             and m not in ("alertd.__main__",)]
    assert loose == [], f"modules outside any stage package: {loose}"


def test_imports_point_down_the_pipeline():
    known = modules()
    wrong = []
    for name, path in known.items():
        mine = stage(name)
        if mine is None:
            continue
        for target in imports(path, name):
            theirs = stage(target)
            if target in known and theirs is not None \
                    and LAYERS.index(theirs) > LAYERS.index(mine):
                wrong.append(f"{name} ({mine}) imports {target} ({theirs})")
    assert wrong == [], "upward imports:\n" + "\n".join(sorted(wrong))


def test_the_exchange_packages_do_not_know_each_other():
    known = modules()
    crossing = [f"{n} imports {t}" for n, p in known.items() for t in imports(p, n)
                for a, b in (("deltadefi", "sodex"), ("sodex", "deltadefi"))
                if n.startswith(f"alertd.exchanges.{a}") and t.startswith(f"alertd.exchanges.{b}")]
    assert crossing == []


def test_no_import_cycle():
    known = modules()
    graph = {n: {t for t in imports(p, n, top_level_only=True) if t in known and t != n}
             for n, p in known.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_layering_test_sees_an_upward_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from alertd.runtime.core import Core\n")
    assert imports(source, "alertd.detect.m") == {"alertd.runtime.core",
                                                  "alertd.runtime.core.Core"}
    assert LAYERS.index(stage("alertd.runtime.core")) > LAYERS.index(stage("alertd.detect.m"))
