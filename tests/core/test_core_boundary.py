"""The core's boundary: it never imports the sweep layer or its tools, and its public surface is small."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import infogan_core

CORE = Path(infogan_core.__file__).parent
FORBIDDEN = {"ray", "optuna", "typer", "rich", "sweep", "optuna_dashboard", "pydantic", "yaml"}

MODULES = sorted(f"infogan_core.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__")
TORCH_FREE = ("infogan_core", "infogan_core.config", "infogan_core.data", "infogan_core.metrics", "infogan_core.errors")


def _probe(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_importing_the_core_loads_no_sweep_tool() -> None:
    _probe(
        "import sys\n"
        f"for name in {MODULES!r}: __import__(name)\n"
        "from infogan_core import TrainConfig, train, load_dataset\n"
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & {FORBIDDEN!r})\n"
        "assert not bad, bad\n"
    )


def test_configuration_datasets_and_metric_names_load_no_torch() -> None:
    # what `sweep validate`, `schema`, `list` and `show` need must stay cheap to import
    _probe(
        "import sys\n"
        f"for name in {TORCH_FREE!r}: __import__(name)\n"
        "from infogan_core import TrainConfig, DATASETS, METRICS, field_docs\n"
        "TrainConfig(dataset='ring8', arch='mlp'); field_docs()\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'scipy', 'sklearn', 'matplotlib'})\n"
        "assert not heavy, heavy\n"
    )


def test_importing_the_core_switches_no_matplotlib_backend() -> None:
    # the figures are drawn on Figure objects: a user's own backend choice is left alone
    _probe(
        "import sys, matplotlib\n"
        "before = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        f"for name in {MODULES!r}: __import__(name)\n"
        "assert dict.__getitem__(matplotlib.rcParams, 'backend') == before\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):  # every import, including the ones inside functions
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_source_imports_no_sweep_tool(path: Path) -> None:
    assert not _imported_modules(path) & FORBIDDEN
    # and no import line mentions one in any other form (string imports, __import__)
    for line in path.read_text().splitlines():
        if "import" in line:
            for name in FORBIDDEN:
                assert f"import {name}" not in line and f"from {name}" not in line, line
                assert f"import_module('{name}" not in line and f'import_module("{name}' not in line, line


def test_import_scan_sees_function_level_imports(tmp_path: Path) -> None:
    # the scan itself must be able to fail
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import ray.tune\n    from optuna import samplers\n")
    assert _imported_modules(probe) == {"ray", "optuna"}


def test_public_surface() -> None:
    for name in infogan_core.__all__:
        assert getattr(infogan_core, name) is not None, name
    # `train` is the function, loaded on first use from infogan_core.training
    from infogan_core import train

    assert inspect.isfunction(train) and infogan_core.train is train
    assert train is importlib.import_module("infogan_core.training").train
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        infogan_core.nothing  # noqa: B018 - the attribute access is the test
    # keyword-only beyond the obvious first argument
    params = list(inspect.signature(train).parameters.values())
    assert params[0].name == "cfg"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])


def test_errors_share_one_base() -> None:
    from infogan_core import ConfigError, DataError, DivergedError, InfoGANError

    for error in (ConfigError, DataError, DivergedError):
        assert issubclass(error, InfoGANError)
    err = DivergedError(12, "loss/g", float("inf"))
    assert err.step == 12 and err.loss == "loss/g" and err.history == []
    assert str(err) == "training diverged at step 12: loss/g = inf"
