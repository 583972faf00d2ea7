"""`compare`: two stored studies side by side, read from the storage alone."""

from __future__ import annotations

import numpy as np

from sweep import analysis, spec
from sweep.compare import compare
from sweep.report.tables import effect_tables

from fakes import PROVENANCE, store_design
from helpers import STUDIES_V1

BALANCE = spec.load(STUDIES_V1 / "balance.yaml")


def _values(shift: float, seed: int = 0):
    rng = np.random.default_rng(seed)

    def value(s: spec.TrialSpec) -> dict[str, float]:
        fd = 40.0 + (shift if s.config_id == "d_width=1.0" else 0.0) + rng.normal(0, 0.5)
        return {"eval/fd": fd, "eval/cat_acc": 0.6 + rng.normal(0, 0.01)}

    return value


def test_a_replication_differs_in_name_and_seeds_and_both_verdicts_are_shown():
    original = store_design(BALANCE, _values(8.0))
    replica = store_design(BALANCE.replication(1), _values(8.0, seed=1))
    c = compare(original, replica)
    assert [(d.key, d.a, d.b) for d in c.definition] == [
        ("name", "balance", "balance-rep1"),
        ("seeds", "3", "[10000,10001,10002]"),
    ]
    assert c.runs == [] and dict(c.same_runs)["code"].startswith("sweep 0.1.0, git 0123456789ab (clean)")
    assert c.a.verdict.status == c.b.verdict.status == "SUPPORTED"
    # each side's cells are exactly its own effect table's
    for side, stored in ((c.a, original), (c.b, replica)):
        study = analysis.study_spec(stored)
        tables = effect_tables(analysis.effects(analysis.trials_frame(stored), study), study)
        want = {(t.metric, r.label): r.cells for t in tables for r in t.rows}
        got = {(p.metric, p.label): list((p.a if side is c.a else p.b).values()) for p in c.effects}
        assert got == want
    base = [p for p in c.effects if p.label == "base"]
    assert len(base) == 2 and all(p.reference for p in base)  # one base row per objective


def test_a_longer_budget_and_new_code_are_named():
    original = store_design(BALANCE, _values(8.0))
    longer = BALANCE.model_copy(
        update={"name": "balance-long", "budget": BALANCE.budget.model_copy(update={"steps": 1600})}
    )
    rerun = store_design(longer, _values(0.0), provenance={**PROVENANCE, "commit": "f" * 40, "dirty": True})
    c = compare(original, rerun)
    assert [d.key for d in c.definition] == ["name", "budget.steps"]
    (code,) = c.runs
    assert code.key == "code" and "git 0123456789ab (clean)" in code.a and "git ffffffffffff (uncommitted" in code.b
    assert {k for k, _ in c.same_runs} == {"libraries", "device"}
    assert c.a.verdict.status != c.b.verdict.status  # the effect is gone in the rerun


def test_a_level_one_study_lacks_is_shown_as_missing():
    grid = spec.load(STUDIES_V1 / "batchnorm.yaml")
    rng = np.random.default_rng(0)
    other = store_design(grid, lambda s: {"eval/modes": float(rng.integers(5, 25)), "eval/hq": rng.random()})
    c = compare(store_design(BALANCE, _values(8.0)), other)
    assert {p.metric for p in c.effects} == {"eval/fd", "eval/cat_acc", "eval/modes", "eval/hq"}
    only_a = [p for p in c.effects if p.metric == "eval/fd"]
    assert only_a and all(p.b is None for p in only_a)
    assert "kind" in {d.key for d in c.definition}
