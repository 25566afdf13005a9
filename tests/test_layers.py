"""The house's layers, checked from the modules' own imports (every import, lazy ones inside
functions included): no module imports a layer above its own, and no two modules import each
other, directly or round a circle (ARCHITECTURE.md: spec and pareto -> blocks -> backbones ->
cost -> tasks -> search -> report, analysis -> export -> bench -> cli)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gcsearch"

#: lowest first; a module's layer is that of its longest listed prefix
LAYERS: list[tuple[str, ...]] = [
    (
        "gcsearch",
        "gcsearch.errors",
        "gcsearch.spec",
        "gcsearch.backbone_specs",
        "gcsearch.pareto",
        "gcsearch.result",
        "gcsearch.units",
        "gcsearch.pool",
        "gcsearch.spaces",
    ),
    ("gcsearch.blocks",),
    ("gcsearch.backbones",),
    ("gcsearch.checkpoint", "gcsearch.latency"),
    ("gcsearch.cost",),
    ("gcsearch.tasks",),
    ("gcsearch.search",),
    ("gcsearch.report", "gcsearch.analysis"),
    ("gcsearch.export",),
    ("gcsearch.bench", "gcsearch.testing"),
    ("gcsearch.launch",),
    ("gcsearch.api", "gcsearch.cli", "gcsearch.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    best, where = -1, None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, where = len(name), i
    assert where is not None, f"{module} is in no layer: add it to LAYERS"
    return where


def imports() -> dict[str, set[str]]:
    """Module -> the gcsearch modules it imports (``from gcsearch.x import y`` counts ``y``
    when ``gcsearch.x.y`` is a module)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("gcsearch")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1]
                        + ([base] if base else [])
                    )
                if not base.startswith("gcsearch"):
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in modules else base)
        out[name] = {m for m in found if m != name}
    return out


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = sorted(
        f"{src} (layer {layer(src)}) -> {dst} (layer {layer(dst)})"
        for src, dsts in imports().items()
        for dst in dsts
        if layer(dst) > layer(src)
    )
    assert not upward, "imports that climb a layer:\n" + "\n".join(upward)


def test_no_circles() -> None:
    graph = imports()
    # a package's __init__ may re-export its own submodules: that is not a circle
    edges = {s: {d for d in ds if not s.startswith(d + ".") and s != d} for s, ds in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_checker_sees_a_lazy_upward_import(tmp_path: Path) -> None:
    """The walk finds an import inside a function, so a lazy climb cannot hide."""
    tree = ast.parse("def f():\n    from gcsearch.report import build_report\n")
    found = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert found and found[0].module == "gcsearch.report"
    assert layer("gcsearch.search.run") < layer("gcsearch.report")


def test_parsing_a_space_imports_no_torch() -> None:
    """The driver and ``gcsearch space validate`` read a space (backbone names, stage widths,
    network keys) from ``backbone_specs``: no torch or torchvision import (5-8 s) for that,
    nor for validating a space whose task reads no files."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from gcsearch.search.space import load_space\n"
        "from gcsearch.search.sampling import network_key\n"
        "for name in ('quick', 'gcnet-paper', 'full', 'bench-small-pairs'):\n"
        "    space = load_space(name)\n"
        "    for c in space.candidates():\n"
        "        network_key(c, space.backbone, space.min_hidden)\n"
        "from gcsearch.cli import main\n"
        "assert main(['space', 'validate', 'quick']) == 0\n"
        "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
