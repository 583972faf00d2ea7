"""Shared fixtures of the tests. Core test modules opt in with `pytestmark = pytest.mark.usefixtures("core_env")`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def reference_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One $INFOGAN_CACHE_DIR for the session: the reference classifier is fitted once, never in ~/.cache."""
    return tmp_path_factory.mktemp("infogan-cache")


@pytest.fixture(scope="module")
def core_env(reference_cache_dir: Path):
    """One torch thread and a private reference-classifier cache while a core test module runs.

    The core tests train networks of a few thousand parameters: on a 2-core machine shared with
    other work, intra-op threads cost several times more than they give (measured: 300 ring8 steps
    take ~1.4 s on one thread, 7-13 s on two under load). Restored when the module ends.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFOGAN_CACHE_DIR", str(reference_cache_dir))
        yield
    torch.set_num_threads(threads)


# --- sweep: one Ray instance for the session, tiny studies on disk ----------------------------

TINY_BASE = {
    "dataset": "ring8",
    "arch": "mlp",
    "cat_codes": [8],
    "cont_codes": 0,
    "noise_dim": 4,
    "batch_size": 32,
    "g_width": 0.25,
    "d_width": 0.25,
    "eval_samples": 200,
}


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it (starting Ray takes ~5 s on 2 cores)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def write_study(path: Path, **overrides) -> Path:
    """A tiny ring8 ablation (2 configurations x 2 seeds, 20 steps) as YAML, with overrides."""
    study = {
        "name": "tiny",
        "claim": "separate BN batches in D cover more modes than no BN",
        "kind": "ablation",
        "base": dict(TINY_BASE, d_batchnorm="none"),
        "factors": {"d_batchnorm": ["separate"]},
        "seeds": 2,
        "objectives": ["eval/modes"],
        "budget": {"steps": 20, "report_every": 10},
    }
    study.update(overrides)
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    return write_study(tmp_path / "tiny.yaml")


@pytest.fixture(scope="session")
def make_study():
    """write_study as a fixture: make_study(path, **overrides) -> path."""
    return write_study
