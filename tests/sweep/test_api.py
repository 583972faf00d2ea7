"""The Python API: `sweep.run` and `sweep.load` on a real Ray instance and SQLite storage, the docs page's
code executed as written, import cost, clear errors, and a study trained on the user's own data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

import sweep
from sweep import spec
from sweep.api import study_from_file
from sweep.errors import DefinitionConflictError, StudyError
from sweep.results import load_results
from sweep.store import open_store

from helpers import REPO, TINY_DIGITS

API_PAGE = REPO / "docs" / "python-api.md"
RULE = {"factor": "d_batchnorm", "treatment": "separate", "baseline": "none", "metric": "eval/modes"}


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def test_import_sweep_loads_no_pandas_optuna_ray_torch_or_pydantic() -> None:
    heavy = {"pandas", "optuna", "ray", "torch", "pydantic", "scipy"}
    code = f"import sys, sweep\nprint(sorted({heavy!r} & set(sys.modules)))\nprint(sweep.__all__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    loaded, public = proc.stdout.splitlines()
    assert loaded == "[]" and public == str(sweep.__all__)
    assert all(callable(getattr(sweep, name)) for name in sweep.__all__)  # every listed name resolves
    with pytest.raises(AttributeError, match="has no attribute 'lod'"):
        sweep.lod  # noqa: B018


def test_load_reads_what_show_reads_and_an_unknown_name_lists_the_stored_ones(stored: Path) -> None:
    results = sweep.load("balance", root=stored)
    expected = load_results(open_store(stored).load_study("balance"))
    assert results.frame.equals(expected.frame)
    assert results.verdict.status == expected.verdict.status
    assert results.study.name == "balance" and len(results.frame) == len(expected.optuna_study.trials)
    with pytest.raises(StudyError, match=r"no study named 'balanse' in .*; stored studies: .*\bbalance\b"):
        sweep.load("balanse", root=stored)
    with pytest.raises(StudyError, match="stored studies: none yet"):
        sweep.load("balance", root=stored.parent / "empty")


def test_the_api_pages_code_runs_as_written_against_a_tiny_study(
    ray_session, make_study, tmp_path, monkeypatch, capsys
) -> None:
    blocks = python_blocks(API_PAGE)
    assert len(blocks) == 2, "the page's examples moved: the check itself must be able to fail"
    make_study(tmp_path / "tiny.yaml", verdict={**RULE, "direction": "greater", "min_effect": 1, "min_seeds": 2})
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(API_PAGE), "exec"), namespace)  # noqa: S102 - the page's own code
    printed = capsys.readouterr().out
    assert "no study named 'tiyn'" in printed and "stored studies: tiny" in printed
    assert any(status in printed for status in ("SUPPORTED", "CONTRADICTED", "NO EFFECT", "INCONCLUSIVE"))
    results = namespace["results"]
    assert set(results.frame["outcome"]) == {"completed"}
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'runs' / 'sweep.db'}").trials
    assert sorted(t.user_attrs["seed"] for t in trials) == [0, 0, 1, 1, 2, 2]  # seeds=3 reached the runner
    assert {t.user_attrs["steps_run"] for t in trials} == {20}  # and steps=20


def test_the_api_and_the_cli_prepare_a_study_alike(make_study, tmp_path) -> None:
    path = make_study(tmp_path / "tiny.yaml")
    study = study_from_file(path, steps=7, seeds=[4, 5], set_values={"lr_g": 0.001}, new_name="other")
    by_hand = spec.load(path).with_overrides(steps=7, seeds=[4, 5], set_values={"lr_g": 0.001}).renamed("other")
    assert study == by_hand and study.name == "other" and study.budget.steps == 7


def _user_study(folder: Path) -> Path:
    """A tiny conv ablation on data/faces.npz, from studies/faces.yaml (the path written relative to it)."""
    rng = np.random.default_rng(0)
    (folder / "data").mkdir()
    np.savez(folder / "data" / "faces.npz", x=rng.integers(0, 256, (64, 8, 8), dtype=np.uint8), y=np.arange(64) % 4)
    study = {
        "name": "faces",
        "kind": "ablation",
        "base": {**TINY_DIGITS, "dataset": "../data/faces.npz", "cat_codes": [4]},
        "factors": {"d_batchnorm": ["none"]},
        "seeds": 1,
        "objectives": ["eval/cat_acc", "eval/fd"],
        "budget": {"steps": 6, "report_every": 3},
    }
    (folder / "studies").mkdir()
    (folder / "studies" / "faces.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    return folder / "studies" / "faces.yaml"


def test_a_study_trains_on_the_users_data_and_refuses_to_resume_on_changed_data(ray_session, tmp_path) -> None:
    path = _user_study(tmp_path)
    results = sweep.run(path, root=tmp_path / "runs")
    assert set(results.frame["outcome"]) == {"completed"}, results.frame["reason"].tolist()
    assert results.frame["eval/cat_acc"].between(0, 1).all() and (results.frame["eval/fd"] >= 0).all()
    data = str((tmp_path / "data" / "faces.npz").resolve())
    assert set(results.study.data_files) == {data}
    assert {t.user_attrs["config"]["dataset"] for t in results.optuna_study.trials} == {data}

    np.savez(data, x=np.zeros((64, 8, 8), np.uint8), y=np.arange(64) % 4)
    os.utime(data, ns=(1, 1))
    with pytest.raises(DefinitionConflictError, match=r"its dataset .*faces\.npz changed since the study was stored"):
        sweep.run(path, root=tmp_path / "runs")
    os.unlink(data)  # gone: the stored study is still read by what it recorded of its data
    assert len(sweep.load("faces", root=tmp_path / "runs").effects) == 4  # 2 objectives x 2 levels
