"""Every shipped study validates, and runs end to end through the real CLI at a tiny size."""

from __future__ import annotations

import subprocess

import optuna
import pytest
from optuna.trial import TrialState

from sweep import spec
from sweep.errors import SweepError

from helpers import REPO, run_sweep

STUDIES = sorted((REPO / "studies").glob("*.yaml"))
LARGE = sorted((REPO / "studies" / "large").glob("*.yaml"))  # larger budget profiles (a GPU, a cluster)
GPU_STUDIES = [p for p in LARGE if spec.load(p).resources.gpus not in ("auto", 0)]  # those that ask for a GPU
PAPER = sorted((REPO / "studies" / "paper").glob("*.yaml"))  # the paper's three MNIST results, CPU profiles
PAPER_GPU = sorted((REPO / "studies" / "paper" / "gpu").glob("*.yaml"))  # the same at the paper code's scale


def _sweep(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_sweep(*args, cwd=REPO, timeout=timeout, columns=250)


def test_studies_are_shipped():
    names = {p.stem for p in STUDIES}
    required = {
        "balance",
        "batchnorm",
        "clipping",
        "freeze",
        "noise",
        "posterior",
        "priors",
        "paper_fig1",
        "imbalanced",
        "search",
    }
    assert required <= names
    assert {"paper_categorical", "paper_full"} <= {p.stem for p in GPU_STUDIES}
    table = (REPO / "studies" / "README.md").read_text()
    for name in names | {p.stem for p in LARGE}:
        assert f"{name}.yaml" in table, f"studies/README.md does not list {name}.yaml"


@pytest.mark.parametrize("path", LARGE, ids=[p.stem for p in LARGE])
def test_larger_budget_profile_validates_with_a_claim(path):
    study = spec.load(path)
    assert study.claim and study.verdict is not None
    shipped = {spec.load(p).name for p in STUDIES}
    assert study.name not in shipped, "a larger profile runs under its own name (its seeds and budget differ)"
    proc = _sweep("validate", str(path))
    assert proc.returncode == 0, proc.stderr


def test_a_gpu_study_on_a_machine_without_one_says_so(ray_session, tmp_path):
    """Ray would wait for a GPU forever: the run stops at once with what to do instead."""
    from typer.testing import CliRunner

    from sweep.cli import app

    path = REPO / "studies" / "large" / "paper_categorical.yaml"
    result = CliRunner().invoke(app, ["run", str(path), "--steps", "4", "--seeds", "1", "--root", str(tmp_path)])
    assert result.exit_code != 0
    message = str(result.exception)  # the console script prints it as one line (main catches SweepError)
    assert isinstance(result.exception, SweepError), result.exception
    assert "asks for 1 GPU per trial" in message and "resources.gpus: 0" in message, message


def test_the_paper_studies_come_in_a_cpu_and_a_gpu_profile_each():
    assert {p.stem for p in PAPER} == {p.stem for p in PAPER_GPU} == {"categorical", "fig1", "fig2"}
    table = (REPO / "studies" / "README.md").read_text()
    names = [spec.load(p).name for p in STUDIES + LARGE + PAPER + PAPER_GPU]
    assert len(names) == len(set(names)), "each profile runs under its own name"
    for cpu, gpu in zip(PAPER, PAPER_GPU, strict=True):
        assert f"paper/{cpu.name}" in table and f"paper/gpu/{gpu.name}" in table
        small, large = spec.load(cpu), spec.load(gpu)
        assert small.base["dataset"] == "mnist-5k" and small.resources.gpus in ("auto", 0)
        assert large.base["dataset"] == "mnist-55k" and large.base["arch"] == "paper" and large.resources.gpus == 1
        assert large.budget.steps == 5000  # the code's max_epoch 50 x updates_per_epoch 100
        assert small.verdict.metric == large.verdict.metric and small.verdict.target == large.verdict.target


@pytest.mark.parametrize("path", PAPER + PAPER_GPU, ids=[f"{p.parent.name}-{p.stem}" for p in PAPER + PAPER_GPU])
def test_paper_study_validates_through_the_cli(path):
    proc = _sweep("validate", str(path))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_paper_studies_run_end_to_end_and_claims_lists_them(ray_session, tmp_path):
    from typer.testing import CliRunner

    from sweep.cli import app

    for path in PAPER:
        result = CliRunner().invoke(app, ["run", str(path), "--steps", "4", "--seeds", "1", "--root", str(tmp_path)])
        assert result.exit_code == 0, (path.name, result.output[-3000:], result.exception)
        stored = optuna.load_study(study_name=spec.load(path).name, storage=f"sqlite:///{tmp_path / 'sweep.db'}")
        assert [t.state for t in stored.get_trials()] == [TrialState.COMPLETE] * len(stored.get_trials())
    proc = _sweep("claims", "--studies", str(REPO / "studies" / "paper"), "--root", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert all(spec.load(p).name in proc.stdout for p in PAPER), proc.stdout


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_shipped_study_validates_with_a_claim(path):
    study = spec.load(path)
    assert study.claim and study.description
    assert study.verdict is not None or study.kind == "search"


@pytest.fixture(scope="module")
def smoke_root(ray_session, tmp_path_factory):
    """Every shipped study at 4 steps and one seed (2 configurations for the search) in one storage.

    The Typer app runs in this process (the same code as the console script, whose own entry point
    the CLI tests cover), so the session's Ray workers stay warm from one study to the next.
    """
    from typer.testing import CliRunner

    from sweep.cli import app

    root = tmp_path_factory.mktemp("shipped")
    runs = {}
    for path in STUDIES:
        extra = ["--trials", "2"] if spec.load(path).kind == "search" else []
        runs[path.stem] = CliRunner().invoke(
            app, ["run", str(path), "--steps", "4", "--seeds", "1", *extra, "--root", str(root)]
        )
    return root, runs


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_shipped_study_runs_end_to_end(smoke_root, path):
    root, runs = smoke_root
    result = runs[path.stem]
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    study = spec.load(path)
    stored = optuna.load_study(study_name=study.name, storage=f"sqlite:///{root / 'sweep.db'}")
    trials = stored.get_trials()
    expected = 2 if study.kind == "search" else len(spec.expand(study.with_overrides(seeds=1)))
    assert len(trials) == expected
    assert all(t.state == TrialState.COMPLETE for t in trials), [(t.number, t.user_attrs.get("reason")) for t in trials]
    assert all(t.user_attrs["steps_run"] == 4 for t in trials)


@pytest.mark.slow
def test_claims_lists_every_study_with_its_verdict(smoke_root):
    root, _ = smoke_root
    proc = _sweep("claims", "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    for path in STUDIES:
        assert spec.load(path).name in proc.stdout
    # one seed per level is below every rule's min_seeds: no verdict may claim more than that
    assert "INCONCLUSIVE" in proc.stdout
    for decisive in ("SUPPORTED", "CONTRADICTED", "NO EFFECT"):
        assert decisive not in proc.stdout, decisive
    assert "n 1" in proc.stdout
    wide = _sweep("claims", "--root", str(root), "--wide")  # the verdict's reason is a detail
    assert wide.returncode == 0 and "too few complete pairs" in wide.stdout, wide.stderr
    assert "INVALID" not in proc.stdout and "not run" not in proc.stdout
