"""Hand-built studies, trial frames and stored Optuna studies for the analysis and report tests (no Ray)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from sweep import spec

BASE = {"dataset": "ring8", "arch": "mlp", "cat_codes": [8], "cont_codes": 0, "lambda_cat": 1.0}


RULE = {  # make_study's verdict: lambda_cat = 0 keeps less mutual information than 1
    "metric": "mi/cat_ratio",
    "factor": "lambda_cat",
    "baseline": 1.0,
    "treatment": 0.0,
    "direction": "less",
    "min_effect": 0.05,
}


def make_study(kind: str = "ablation", **overrides) -> spec.Study:
    data = {
        "name": "stats",
        "claim": "lambda_cat = 0 keeps little mutual information",
        "kind": kind,
        "base": dict(BASE),
        "factors": {"lambda_cat": [0.0]},
        "seeds": 3,
        "objectives": ["mi/cat_ratio"],
        "budget": {"steps": 20, "report_every": 10},
        "verdict": dict(RULE),
    }
    data.update(overrides)
    return spec.parse(data)


def ablation_frame(baseline: list, treatment: list, metric: str = "mi/cat_ratio") -> pd.DataFrame:
    """Trials as trials_frame gives them; a value "diverged"/"crashed"/"pruned" is a run that did not finish."""
    rows = []
    for config_id, factor, level, values in (
        ("base", None, None, baseline),
        ("lambda_cat=0.0", "lambda_cat", 0.0, treatment),
    ):
        for seed, value in enumerate(values):
            outcome = value if isinstance(value, str) else "completed"
            rows.append(
                {
                    "number": len(rows),
                    "state": "COMPLETE" if outcome == "completed" else "FAIL",
                    "outcome": outcome,
                    "config_id": config_id,
                    "factor": factor,
                    "level": level,
                    "seed": seed,
                    "params.lambda_cat": 1.0 if level is None else level,
                    metric: value if outcome == "completed" else None,
                }
            )
    return pd.DataFrame(rows)


# --- a stored study, without Ray --------------------------------------------------


def stored_study(study: spec.Study, trials: list[tuple[dict, str, float | None]]) -> optuna.Study:
    """An in-memory Optuna study holding `study` and trials (params, outcome, value), as the runner stores them."""
    metric = study.objectives[0].metric
    stored = optuna.create_study(study_name=study.name, directions=[o.direction for o in study.objectives])
    stored.set_user_attr("spec", study.model_dump(mode="json"))
    stored.set_user_attr("kind", study.kind)
    names = {k: sorted({p[k] for p, _, _ in trials}, key=str) for k in trials[0][0]}
    for i, (params, outcome, value) in enumerate(trials):
        state = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(outcome, TrialState.FAIL)
        config_id = ",".join(f"{k}={spec.format_value(v)}" for k, v in params.items())
        stored.add_trial(
            create_trial(
                state=state,
                params=params,
                values=[value] if state == TrialState.COMPLETE else None,
                distributions={k: CategoricalDistribution(names[k]) for k in params},
                user_attrs={
                    "config_id": config_id,
                    "seed": i % 3,
                    "outcome": outcome,
                    "wall_s": 1.0,
                    "metrics": {metric: value} if value is not None else {},
                    "history": [
                        {"step": s, metric: (value or 0) * s / 20, "loss/d": 1.3, "loss/g": 0.7} for s in (10, 20)
                    ],
                },
            )
        )
    return stored


GRID = {"lambda_cat": [1.0, 0.0], "d_batchnorm": ["none", "separate"]}


GRID_RULE = {**RULE, "where": {"d_batchnorm": "none"}}  # grid_trials' diverged run is at separate: t decides


def grid_study(**overrides) -> spec.Study:
    """The grid of GRID with GRID_RULE: its verdict on grid_trials() is SUPPORTED."""
    return make_study(kind="grid", factors=GRID, **{"verdict": GRID_RULE, **overrides})


def grid_trials() -> list[tuple[dict, str, float | None]]:
    rng = np.random.default_rng(1)
    trials = []
    for lam in GRID["lambda_cat"]:
        for bn in GRID["d_batchnorm"]:
            for _ in range(3):
                value = float((0.9 if lam else 0.1) + 0.02 * rng.normal())
                trials.append(({"lambda_cat": lam, "d_batchnorm": bn}, "completed", value))
    trials[-1] = (trials[-1][0], "diverged", None)
    return trials


# --- a stored study of any design, as the runner leaves it (no Ray) ------------------------------


def draw(d: spec.Distribution, rng: np.random.Generator):
    """One value from a search space's distribution (uniform; log scale ignored)."""
    if d.type == "categorical":
        return d.choices[int(rng.integers(len(d.choices)))]
    return int(rng.integers(d.low, d.high + 1)) if d.type == "int" else float(rng.uniform(d.low, d.high))


def store_design(
    study: spec.Study,
    value: Callable[[spec.TrialSpec], dict[str, float] | str],
    *,
    storage: str | None = None,
    searched: list[dict] | None = None,
    provenance: dict | Callable[[spec.TrialSpec], dict] | None = None,
) -> optuna.Study:
    """`study` stored with one finished trial per (configuration, seed) of its design, as the runner stores
    them (config_id, seed, factor, level, outcome, metrics, history, provenance); `value(spec)` gives the
    trial's final metrics, or an outcome word ("crashed", "diverged") for a run that did not finish. A search
    study's configurations are `searched` (params), each run for every seed; its trials ran on `provenance`
    (default: PROVENANCE), or on what `provenance(spec)` says."""
    provenance = provenance or PROVENANCE
    stored = optuna.create_study(
        study_name=study.name, storage=storage, directions=[o.direction for o in study.objectives]
    )
    stored.set_user_attr("spec", study.model_dump(mode="json"))
    stored.set_user_attr("kind", study.kind)
    stored.set_user_attr("created", "2026-11-21 09:30:00")
    stored.set_user_attr("provenance", PROVENANCE)
    if study.kind == "search":
        specs = [
            spec.TrialSpec(0, f"search-{i:04d}", params, seed, None, None)
            for i, params in enumerate(searched or [])
            for seed in study.seed_list
        ]
    else:
        specs = spec.expand(study)
    distributions = _distributions(study)
    for s in specs:
        got = value(s)
        outcome = got if isinstance(got, str) else "completed"
        metrics = {} if isinstance(got, str) else got
        values = [metrics[o.metric] for o in study.objectives] if outcome == "completed" else None
        steps = study.budget.steps
        stored.add_trial(
            create_trial(
                state=TrialState.COMPLETE if values else TrialState.FAIL,
                params={k: _optuna_value(v) for k, v in s.params.items()},
                values=values,
                distributions={k: distributions[k] for k in s.params},
                user_attrs={
                    "config_id": s.config_id,
                    "seed": s.seed,
                    "index": s.index,
                    "factor": s.factor,
                    "level": s.level,
                    "outcome": outcome,
                    "reason": f"DataError: no files for {s.config_id} in data_dir" if outcome == "crashed" else None,
                    "wall_s": 12.5,
                    "steps_run": steps,
                    "metrics": metrics,
                    "history": [
                        {"step": k * steps // 4, **{m: v * k / 4 for m, v in metrics.items()}} for k in (1, 2, 3, 4)
                    ],
                    "provenance": provenance(s) if callable(provenance) else provenance,
                },
            )
        )
    return stored


def _optuna_value(value):
    """As the runner stores a parameter: lists as their text, everything else as it is."""
    return spec.format_value(value) if isinstance(value, list) else value


def _distributions(study: spec.Study) -> dict:
    if study.kind != "search":
        levels = spec.factor_levels(study)
        return {k: CategoricalDistribution([_optuna_value(v) for v in levels[k]]) for k in study.factors}
    found = {}
    for name, d in study.space.items():
        if d.type == "float":
            found[name] = FloatDistribution(d.low, d.high, log=d.log)
        elif d.type == "int":
            found[name] = IntDistribution(d.low, d.high, log=d.log, step=d.step)
        else:
            found[name] = CategoricalDistribution([_optuna_value(v) for v in d.choices])
    return found


PROVENANCE = {
    "version": "0.1.0",
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "dirty": False,
    "torch": "2.13.0",
    "optuna": "5.0.0",
    "ray": "2.60.0",
    "python": "3.11.7",
    "device": "CPU Test CPU @ 2.00GHz, 1 thread",
}
