"""The shape of the code: the modules of infogan_core and sweep import each other as a DAG, imports sit
at the top unless marked as deliberately lazy (with a reason), and importing does nothing else; no
module is over 600 lines, no function over 80 and none more complex than ruff's C901 at 15 (an exemption
would be by name, with its reason)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

PACKAGES = ("infogan_core", "sweep")
LAZY_MARK = "# lazy:"
MAX_MODULE_LINES = 600  # a module that does ten jobs is ten modules waiting
MAX_FUNCTION_LINES = 80  # from `def` to the last line, docstring included
MAX_COMPLEXITY = 15  # ruff's mccabe C901, set in pyproject.toml ([tool.ruff.lint.mccabe])
# Functions allowed past MAX_FUNCTION_LINES and MAX_COMPLEXITY, with the reason; each carries ruff's noqa
# for C901 on its `def` line, and no other function does.
# (none now: the training loop became a loop over named stages, infogan_core/step.py's train_step and its parts)
EXEMPT_FUNCTIONS: dict[str, str] = {}


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


def long_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, int]:
    """Module file (relative to root) -> lines, for every module over MAX_MODULE_LINES."""
    lengths = {
        path.relative_to(root).as_posix(): len(path.read_text().splitlines())
        for path in module_files(root, packages).values()
    }
    return {path: n for path, n in lengths.items() if n > MAX_MODULE_LINES}


def _functions(node: ast.AST, prefix: str) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(qualified name, node) of every function below `node`: in classes, in other functions and under
    any statement (`if TYPE_CHECKING:`, `try:`), at any depth."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}.{child.name}"
            if not isinstance(child, ast.ClassDef):
                found.append((name, child))
            found += _functions(child, name)
        else:
            found += _functions(child, prefix)
    return found


def long_functions(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, int]:
    """Qualified name (module.Class.function) -> lines, for every function over MAX_FUNCTION_LINES."""
    found = {}
    for module, path in module_files(root, packages).items():
        for name, node in _functions(ast.parse(path.read_text(), filename=str(path)), module):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found[name] = lines
    return found


def complexity_exemptions(root: Path, packages: tuple[str, ...] = PACKAGES) -> set[str]:
    """Qualified names of the functions whose `def` line carries `# noqa: C901`."""
    found = set()
    for module, path in module_files(root, packages).items():
        source = path.read_text()
        lines = source.splitlines()
        for name, node in _functions(ast.parse(source, filename=str(path)), module):
            if "noqa: C901" in lines[node.lineno - 1]:
                found.add(name)
    return found


def too_complex(root: Path, paths: list[str]) -> list[str]:
    """'file:line: message' for every C901 that ruff reports under root's pyproject.toml (the repository's
    copied there for a generated tree), honouring `# noqa`."""
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--exit-zero", "--output-format", "json", *paths],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(proc.stdout)
    return sorted(
        f"{Path(r['filename']).relative_to(root)}:{r['location']['row']}: {r['message']}"
        for r in reports
        if r["code"] == "C901"
    )


def test_the_size_scans_find_a_long_module_and_a_long_function_and_only_those(tmp_path: Path) -> None:
    # the scans must be able to fail; each limit is met exactly by a control that passes
    pkg = tmp_path / "sweep"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "fits.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    (pkg / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))

    def function(name: str, lines: int, indent: str = "") -> str:
        return f"{indent}def {name}():\n" + f"{indent}    x = 1\n" * (lines - 1)

    (pkg / "funcs.py").write_text(
        function("fits", MAX_FUNCTION_LINES)
        + function("long", MAX_FUNCTION_LINES + 1)
        + "class C:\n"
        + function("method", MAX_FUNCTION_LINES + 1, indent="    ")
        + function("outer", 3)
        + function("inner", MAX_FUNCTION_LINES + 1, indent="    ")
        + "try:\n    pass\nexcept ImportError:\n"
        + function("fallback", MAX_FUNCTION_LINES + 1, indent="    ")
    )
    assert long_modules(tmp_path, ("sweep",)) == {"sweep/big.py": MAX_MODULE_LINES + 1}
    long = MAX_FUNCTION_LINES + 1
    assert long_functions(tmp_path, ("sweep",)) == {
        "sweep.funcs.long": long,
        "sweep.funcs.C.method": long,
        "sweep.funcs.outer": 3 + long,
        "sweep.funcs.outer.inner": long,
        "sweep.funcs.fallback": long,
    }


def test_the_complexity_check_reports_a_function_over_the_limit_unless_exempt(tmp_path: Path) -> None:
    # the repository's ruff settings on a generated tree: the limit is exactly MAX_COMPLEXITY, and the
    # noqa comment for C901 both silences ruff and names the function as exempt
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    pkg = tmp_path / "sweep"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")

    def function(name: str, complexity: int, mark: str = "") -> str:  # one branch per `if`, plus one
        branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(complexity - 1))
        return f"\n\ndef {name}(x: int) -> int:{mark}\n{branches}    return -1\n"

    source = function("at_limit", MAX_COMPLEXITY) + function("over", MAX_COMPLEXITY + 1)
    (pkg / "mod.py").write_text(source + function("exempt", MAX_COMPLEXITY + 1, mark="  # noqa: C901 - a reason"))
    assert too_complex(tmp_path, ["sweep"]) == [
        f"sweep/mod.py:{source.splitlines().index('def over(x: int) -> int:') + 1}: "
        f"`over` is too complex ({MAX_COMPLEXITY + 1} > {MAX_COMPLEXITY})"
    ]
    assert complexity_exemptions(tmp_path, ("sweep",)) == {"sweep.mod.exempt"}


def test_no_module_is_over_600_lines() -> None:
    assert len(module_files(REPO)) > 20  # the control: the real packages were read
    assert long_modules(REPO) == {}, "split these modules: a module that does ten jobs is ten modules waiting"


def test_no_function_is_over_80_lines_but_the_exempt_training_loop() -> None:
    found = long_functions(REPO)
    assert set(EXEMPT_FUNCTIONS) <= set(found), "an exempt function is short now: take it off EXEMPT_FUNCTIONS"
    assert {k: v for k, v in found.items() if k not in EXEMPT_FUNCTIONS} == {}


def test_no_function_is_more_complex_than_15_but_the_exempt_training_loop() -> None:
    assert complexity_exemptions(REPO) == set(EXEMPT_FUNCTIONS), "`# noqa: C901` only on EXEMPT_FUNCTIONS"
    assert too_complex(REPO, list(PACKAGES)) == []


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


def test_the_architecture_page_names_every_module_and_only_real_ones() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    layout = text[text.index("## Layout") : text.index("\n## ", text.index("## Layout") + 1)]
    named = set(re.findall(r"`([a-z_/]+\.py)`", layout))
    # each module by its path inside its package (`runner/plan.py`); a package's own __init__ needs no line
    files = {p.relative_to(REPO / p.relative_to(REPO).parts[0]).as_posix() for p in module_files(REPO).values()}
    files = {f for f in files if not f.endswith("__init__.py")}
    assert files, "no modules found: the check itself must be able to fail"
    assert files - named == set(), f"modules docs/architecture.md does not name: {sorted(files - named)}"
    assert named - files == set(), f"docs/architecture.md names modules that do not exist: {sorted(named - files)}"
