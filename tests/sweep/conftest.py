"""Fixtures of the sweep layer's tests: a storage as a researcher has it after a morning's work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sweep import spec
from sweep.analysis import param_importance

from fakes import store_design
from helpers import STUDIES_V1

STUDIES = STUDIES_V1  # the definitions the fixtures' storage is built from


@pytest.fixture(autouse=True)
def few_importance_resamples(monkeypatch):
    """Reports here bootstrap importances 10 times, not 100, to keep the suite quick; the intervals
    themselves are tested in test_analysis with counts of their own."""
    monkeypatch.setattr(param_importance, "IMPORTANCE_RESAMPLES", 10)


@pytest.fixture(scope="session")
def stored(tmp_path_factory) -> Path:
    """A storage as a researcher has it after a morning's work: `balance` (an ablation with a crashed and a
    diverged run, its claim supported), its replication, `search` (twelve parameters) and `batchnorm` (a grid)."""
    root = tmp_path_factory.mktemp("console") / "runs"
    root.mkdir()
    url = f"sqlite:///{root / 'sweep.db'}"
    rng = np.random.default_rng(0)

    def balance(s: spec.TrialSpec) -> dict[str, float] | str:
        if s.config_id == "lr_ratio=5.0" and s.seed == 2:
            return "crashed"
        if s.config_id == "g_width=1.0" and s.seed == 1:
            return "diverged"
        fd = 41.0 + (9.0 if s.config_id == "d_width=1.0" else 0.0) + rng.normal(0, 0.6)
        return {"eval/fd": fd, "eval/cat_acc": 0.612 + rng.normal(0, 0.01), "loss/d": 1.3}

    original = spec.load(STUDIES / "balance.yaml")
    store_design(original, balance, storage=url)
    replica = store_design(original.replication(1), balance, storage=url)
    replica.set_user_attr("replication_of", "balance")
    replica.set_user_attr("replicate", 1)

    search = spec.load(STUDIES / "search.yaml")
    configs = []
    for _ in range(search.trials):
        params = {}
        for name, d in search.space.items():
            if d.type == "categorical":
                params[name] = d.choices[rng.integers(len(d.choices))]
            elif d.type == "int":
                params[name] = int(rng.integers(d.low, d.high + 1))
            else:
                params[name] = float(np.exp(rng.uniform(np.log(d.low), np.log(d.high))))
        configs.append(params)
    store_design(
        search,
        lambda s: {"eval/fd": 30 + 40 * rng.random(), "mi/cat_ratio": rng.random()},
        storage=url,
        searched=configs,
    )

    grid = spec.load(STUDIES / "batchnorm.yaml")
    store_design(grid, lambda s: {"eval/modes": float(rng.integers(5, 25)), "eval/hq": rng.random()}, storage=url)
    return root
