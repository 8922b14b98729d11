"""The package's import graph: no two modules import each other (lazy imports inside functions count too), and
`run:<id>` has one reader (`studio.models.refs`)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

STUDIO = Path(__file__).resolve().parents[2] / "studio"


def module_imports() -> dict[str, set[str]]:
    names = {}
    for path in STUDIO.rglob("*.py"):
        parts = path.relative_to(STUDIO.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in names.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in names:
                        graph[name].add(full)
                    elif node.module in names:
                        graph[name].add(node.module)
    return graph


def test_no_two_modules_import_each_other():
    graph = module_imports()
    assert len(graph) > 100 and "studio.models.refs" in graph["studio.evaluation"]  # the scan sees the package
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a != b and a in graph[b]})
    assert pairs == [], f"modules that import each other: {pairs}"


def test_run_specs_are_read_only_in_studio_models_refs():
    spelled = re.compile(r"""["']run:["']|startswith\(["']run:|removeprefix\(["']run:|f["']run:\{""")
    readers = sorted(str(p.relative_to(STUDIO)) for p in STUDIO.rglob("*.py") if spelled.search(p.read_text()))
    assert readers == ["models/refs.py"], readers
