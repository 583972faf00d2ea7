"""The shape of the code: the modules of infogan_core and sweep import each other as a DAG, imports sit
at the top unless marked as deliberately lazy (with a reason), and importing does nothing else."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

PACKAGES = ("infogan_core", "sweep")
LAZY_MARK = "# lazy:"


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages under root."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in ast.walk(node):
                if hasattr(inner, "lineno"):
                    lines.add(inner.lineno)
    return lines


def scan(root: Path, packages: tuple[str, ...] = PACKAGES) -> tuple[dict[str, set[str]], list[str]]:
    """(module -> the package modules it imports, at any depth), and the function-level imports that
    carry no `# lazy: reason` mark, as 'file:line: import ...'."""
    modules = module_files(root, packages)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    unmarked = []
    for name, path in modules.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source, filename=str(path))
        typing_only = _type_checking_lines(tree)
        top_level = {id(node) for node in tree.body} | {
            id(inner)
            for node in tree.body
            if isinstance(node, ast.If | ast.Try)
            for inner in ast.walk(node)
            if isinstance(inner, ast.Import | ast.ImportFrom)
        }
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if id(node) not in top_level:
                mark = lines[node.lineno - 1].partition(LAZY_MARK)[2].strip()
                if len(mark.split()) < 3:  # a reason, in words
                    unmarked.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
            if node.lineno in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative import
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph, unmarked


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_finds_a_cycle_hidden_in_a_function_and_an_unmarked_lazy_import(tmp_path: Path) -> None:
    # the scan itself must be able to fail
    pkg = tmp_path / "sweep"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from sweep import b\n")
    (pkg / "b.py").write_text("def f():\n    from sweep.a import x\n")
    (pkg / "c.py").write_text("def g():\n    import json  # lazy: a reason given in words\n")
    graph, unmarked = scan(tmp_path, ("sweep",))
    assert graph["sweep.a"] == {"sweep.b"} and graph["sweep.b"] == {"sweep.a"}
    assert cycles(graph) == [["sweep.a", "sweep.b"]]
    assert unmarked == ["sweep/b.py:2: from sweep.a import x"]


def test_modules_import_each_other_as_a_dag() -> None:
    graph, _ = scan(REPO)
    assert len(graph) > 20 and graph["sweep.runner"]  # the control: the real packages were read
    assert cycles(graph) == []


def test_every_import_inside_a_function_says_why_it_is_lazy() -> None:
    _, unmarked = scan(REPO)
    assert unmarked == [], "imports inside functions need `# lazy: <reason>` on their line:\n" + "\n".join(unmarked)


def test_the_sweep_layer_reaches_the_core_only_through_its_door() -> None:
    graph, _ = scan(REPO)
    reaching = {
        m for m, deps in graph.items() if m.startswith("sweep") and any(d.startswith("infogan_core") for d in deps)
    }
    assert reaching == {"sweep.core"}


def test_importing_every_module_changes_no_environment_and_no_matplotlib_backend() -> None:
    names = sorted(module_files(REPO))
    code = (
        "import os, sys, matplotlib\n"
        # the libraries set variables of their own when imported (torch: KMP_*, ray: RAY_CLIENT_MODE):
        # import them first, so that what is measured is what this project's modules do
        "import torch, ray, ray.tune, optuna, optuna_dashboard, scipy.stats, sklearn, pandas, jinja2, rich, typer\n"
        "env = dict(os.environ)\n"
        "backend = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        f"for name in {names!r}: __import__(name)\n"
        "changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))\n"
        "assert not changed, changed\n"
        "assert dict.__getitem__(matplotlib.rcParams, 'backend') == backend\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("module", ["sweep.spec", "sweep.cli", "sweep.console", "sweep.core"])
def test_reading_studies_loads_no_torch_ray_or_matplotlib(module: str) -> None:
    code = f"import sys, {module}\nprint(sorted({{'torch', 'ray', 'matplotlib'}} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", (proc.stdout, proc.stderr)


def test_the_readme_layout_names_every_module_and_only_real_ones() -> None:
    text = (REPO / "README.md").read_text()
    layout = text[text.index("## Layout") : text.index("\n## ", text.index("## Layout") + 1)]
    named = set(re.findall(r"`([a-z_/]+\.py)`", layout))
    files = {p.relative_to(REPO / p.relative_to(REPO).parts[0]).as_posix() for p in module_files(REPO).values()}
    files = {f.removeprefix("report/") if f.startswith("report/") else f for f in files} - {"__init__.py"}
    assert files - named == set(), f"modules the README's Layout does not name: {sorted(files - named)}"
    real = files | {p.name for p in (REPO / "benchmarks").glob("*.py")} | {"test_structure.py", "helpers.py"}
    assert named - real == set(), f"the README names modules that do not exist: {sorted(named - real)}"
