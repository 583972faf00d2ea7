"""Tidy records of a stored study, and the statistics a report rests on.

One row per trial (params and final metrics as columns); each expected (configuration, seed) joined with
its stored outcome (the design); levels compared paired by seed, blocked by the other factors' levels in
a grid, with failed runs as the worst outcome; the claim's four-way verdict at its planned looks;
replications; hyperparameter importance.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sweep.core import METRICS
from sweep.errors import SweepError
from sweep.lazy import LazyImport
from sweep.spec import DIVERGED, SeedPlan, Study, Verdict, expand, factor_levels, format_value, load, parse_stored
from sweep.stats import (
    Estimate,
    decide,
    estimate,
    finite,
    fisher_two_sided,
    holm,
    mean_ci,
    pairs_for,
    rate_difference,
    rate_mde,
    spending,
)
from sweep.store import Store, StudyAttr, TrialAttr
from sweep.vocab import (
    DECISIVE,
    FINISHED,
    NOT_FINISHED,
    Outcome,
    Status,
    counts,
    interval,
    is_missing,
    num,
    p_value,
    signed,
)

if TYPE_CHECKING:
    import optuna
    import pandas as pd
else:  # loaded by the first study read: `sweep claims` on a storage with no studies needs neither
    optuna = LazyImport("optuna")
    pd = LazyImport("pandas")

BASE_COLUMNS = ["number", "state", "outcome", "config_id", "factor", "level", "seed"]


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, outcome, config_id, factor, level, seed, `params.<name>`,
    each final metric under its own name (e.g. `eval/modes`), steps_run, wall_s, node, reason."""
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "outcome": attrs.get(TrialAttr.OUTCOME, t.state.name.lower()),
            "config_id": attrs.get(TrialAttr.CONFIG_ID),
            "factor": attrs.get(TrialAttr.FACTOR),
            "level": attrs.get(TrialAttr.LEVEL),
            "seed": attrs.get(TrialAttr.SEED),
        }
        row.update({f"params.{k}": v for k, v in t.params.items()})
        row.update(attrs.get(TrialAttr.METRICS) or {})
        for key in (TrialAttr.STEPS_RUN, TrialAttr.WALL_S, TrialAttr.NODE):
            row[key] = attrs.get(key)
        row["reason"] = attrs.get(TrialAttr.REASON)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=BASE_COLUMNS)
    return _levels_as_written(frame, rows)


def _levels_as_written(frame: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Keep factor levels as the values they are (pandas would make a column of 10 and None floats: 10.0),
    so that they match the study's levels as written."""
    for column in ["level", *(c for c in frame if c.startswith("params."))]:
        if column in frame:
            frame[column] = pd.Series([row.get(column) for row in rows], index=frame.index, dtype=object)
    return frame


def history_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per (trial, report step): number, config_id, seed, step and every reported metric."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        for h in t.user_attrs.get(TrialAttr.HISTORY) or []:
            rows.append(
                {
                    "number": t.number,
                    "config_id": t.user_attrs.get(TrialAttr.CONFIG_ID),
                    "seed": t.user_attrs.get(TrialAttr.SEED),
                    **h,
                }
            )
    return pd.DataFrame(rows)


CURVE_COLUMNS = ["trial", "config_id", "seed", "outcome"]  # then params.<name>..., then step, metric, value


def curves_frame(study: optuna.Study) -> pd.DataFrame:
    """Every trial's history in long format, for pandas: one row per (trial, step, metric) with the trial's
    number, config_id, seed, outcome and factor levels (`params.<name>`), the step, the metric and its value
    (None where it was not finite)."""
    rows = []
    params: dict[str, None] = {}
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        head = {
            "trial": t.number,
            "config_id": attrs.get(TrialAttr.CONFIG_ID),
            "seed": attrs.get(TrialAttr.SEED),
            "outcome": attrs.get(TrialAttr.OUTCOME, t.state.name.lower()),
            **{f"params.{k}": v for k, v in t.params.items()},
        }
        params.update(dict.fromkeys(k for k in head if k.startswith("params.")))
        for report in attrs.get(TrialAttr.HISTORY) or []:
            rows += [
                {**head, "step": report.get("step"), "metric": k, "value": v} for k, v in report.items() if k != "step"
            ]
    columns = [*CURVE_COLUMNS, *params, "step", "metric", "value"]
    return _levels_as_written(pd.DataFrame(rows, columns=columns), rows)


# --- grouping trials by factor level ------------------------------------------------------------


def study_spec(optuna_study: optuna.Study) -> Study:
    """The Study a stored Optuna study was run from (its StudyAttr.SPEC user attribute)."""
    data = optuna_study.user_attrs.get(StudyAttr.SPEC)
    if not data:
        raise SweepError(f"study '{optuna_study.study_name}' has no study definition stored; was it run by sweep?")
    return parse_stored(data, source=f"stored study {optuna_study.study_name}")


def _same(value: Any, level: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return level is None
    return format_value(value) == format_value(level)


def level_masks(frame: pd.DataFrame, study: Study) -> dict[str, list[tuple[Any, pd.Series]]]:
    """factor -> [(level, rows at that level)], the baseline level first.

    Ablation: a factor's baseline is the base configuration, its other levels the trials that change
    that factor alone. Grid and search (categorical parameters only): every trial with the parameter at
    that level, pooled over the other factors' levels (marginal). Interrupted trials (rerun) are left out.
    """
    live = frame["outcome"] != Outcome.INTERRUPTED if "outcome" in frame else pd.Series(True, index=frame.index)
    result: dict[str, list[tuple[Any, pd.Series]]] = {}
    for factor, levels in factor_levels(study).items():
        if not levels:
            continue
        groups = []
        for i, level in enumerate(levels):
            if study.kind == "ablation":
                if i == 0:
                    mask = frame["config_id"] == "base"
                else:
                    mask = (frame["factor"] == factor) & frame["level"].map(lambda v, lv=level: _same(v, lv))
            else:
                column = f"params.{factor}"
                if column not in frame:
                    continue
                mask = frame[column].map(lambda v, lv=level: _same(v, lv))
            groups.append((level, (mask & live).astype(bool)))
        result[factor] = groups
    return result


def _where(frame: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    """The trials whose parameters have the given levels."""
    keep = pd.Series(True, index=frame.index)
    for name, level in where.items():
        column = f"params.{name}"
        keep &= frame[column].map(lambda v, lv=level: _same(v, lv)) if column in frame else False
    return frame[keep]


# --- the design: every expected trial, with the outcome stored for it -----------------------------

MISSING_RUN = "missing"  # the outcome of an expected (configuration, seed) not finished in the storage
FINISHED_OUTCOMES = tuple(o.value for o in FINISHED)


def design_frame(frame: pd.DataFrame, study: Study) -> pd.DataFrame:
    """One row per (configuration, seed) an ablation or grid study expands into: config_id, seed, seed_index
    (position in the study's seeds), factor, level, `params.<name>`, and the outcome and final metrics of
    its latest finished trial; outcome "missing" where none finished yet. Each pair counts once, however
    often it was run (an interrupted trial is run again; only the finished one counts)."""
    order = {seed: i for i, seed in enumerate(study.seed_list)}
    expected = [
        {
            "config_id": s.config_id,
            "seed": s.seed,
            "seed_index": order[s.seed],
            "factor": s.factor,
            "level": s.level,
            **{f"params.{k}": v for k, v in s.params.items()},
        }
        for s in expand(study)
    ]
    design = _levels_as_written(pd.DataFrame(expected), expected)
    stored = frame[frame["outcome"].isin(FINISHED_OUTCOMES)] if len(frame) else frame
    stored = stored[stored["seed"].notna() & stored["config_id"].notna()] if len(stored) else stored
    if not len(stored):
        return design.assign(outcome=MISSING_RUN, number=np.nan)
    stored = stored.assign(seed=pd.to_numeric(stored["seed"]).astype(int))
    stored = stored.sort_values("number", kind="stable").drop_duplicates(["config_id", "seed"], keep="last")
    stored = stored.drop(columns=[c for c in stored if c in ("factor", "level", "state") or c.startswith("params.")])
    merged = design.merge(stored, on=["config_id", "seed"], how="left")
    merged["outcome"] = merged["outcome"].fillna(MISSING_RUN)
    return merged


def better_direction(study: Study, metric: str) -> str:
    """The direction in which `metric` is better: its objective's, else its natural one."""
    for objective in study.objectives:
        if objective.metric == metric:
            return str(objective.direction)
    return METRICS[metric].direction


def _kinds(rows: pd.DataFrame, metric: str, pruned: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kind, value, why) of each run for a comparison on `metric`.

    kind: "ok" (a finite value), "failed" (the worst outcome of its arm: diverged, a non-finite value, or
    pruned with `pruned: worst`), "excluded" (crashed, or pruned with `pruned: exclude`) or "missing"
    (not finished yet). why: "", "diverged", "non-finite", "pruned", "crashed" or "missing".
    For DIVERGED the value does not matter: a run either failed or not.
    """
    outcome = rows["outcome"].astype(str).to_numpy()
    if metric == DIVERGED or metric not in rows:
        values = np.zeros(len(rows)) if metric == DIVERGED else np.full(len(rows), np.nan)
    else:
        values = pd.to_numeric(rows[metric], errors="coerce").to_numpy(dtype=float)
    completed = outcome == Outcome.COMPLETED
    non_finite = completed & ~np.isfinite(values) if metric != DIVERGED else np.zeros(len(rows), bool)
    why = np.select(
        [outcome == MISSING_RUN, outcome == Outcome.CRASHED, outcome == Outcome.PRUNED, outcome == Outcome.DIVERGED],
        [MISSING_RUN, "crashed", "pruned", "diverged"],
        np.where(non_finite, "non-finite", ""),
    )
    kind = np.select(
        [why == MISSING_RUN, why == "crashed", (why == "pruned") & (pruned != "worst"), why == ""],
        [MISSING_RUN, "excluded", "excluded", "ok"],
        "failed",
    )
    return kind, values, why


def comparison_units(
    design: pd.DataFrame,
    study: Study,
    *,
    factor: str,
    treatment: Any,
    baseline: Any,
    metric: str,
    pruned: str | None = None,
    where: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The paired units of treatment against baseline, in seed order: one row per (seed, block) with each
    arm's kind, value and why (`t_*`, `b_*`; only `t_*` when baseline is None, against a target).

    Levels share seeds by construction, so units pair by seed; in a grid, a block is one combination of
    the other factors' levels (within `where`), so that only runs that differ in `factor` are compared.
    """
    part = _where(design, where or {})
    masks = {format_value(level): mask for level, mask in level_masks(part, study).get(factor, [])}
    blocks = [f"params.{f}" for f in study.factors if f != factor] if study.kind == "grid" else []

    def arm(level: Any, prefix: str) -> pd.DataFrame:
        rows = part[masks[format_value(level)]] if format_value(level) in masks else part.iloc[:0]
        kind, value, why = _kinds(rows, metric, pruned)
        block = [",".join(map(format_value, r)) for r in rows[blocks].itertuples(index=False)] if blocks else ""
        return pd.DataFrame(
            {
                "seed": rows["seed"].to_numpy(),
                "seed_index": rows["seed_index"].to_numpy(),
                "block": block,
                f"{prefix}_kind": kind,
                f"{prefix}_value": value,
                f"{prefix}_why": why,
            }
        )

    units = arm(treatment, "t")
    if baseline is not None:
        units = units.merge(arm(baseline, "b"), on=["seed", "seed_index", "block"], how="inner")
    return units.sort_values(["seed_index", "block"], kind="stable").reset_index(drop=True)


def _arm_kinds(units: pd.DataFrame) -> pd.DataFrame:
    return units[[c for c in ("t_kind", "b_kind") if c in units]]


def differences(units: pd.DataFrame, better: str, *, origin: float = 0.0) -> np.ndarray:
    """Treatment minus baseline per unit (or treatment minus `origin` against a target); a failed run is the
    worst value its metric can take (-inf when higher is better, +inf when lower is), so two failed
    runs in one pair tie at 0."""
    worst = -math.inf if better == "maximize" else math.inf
    t = np.where(units["t_kind"] == "failed", worst, units["t_value"].to_numpy(dtype=float))
    if "b_kind" not in units:
        return t - origin
    b = np.where(units["b_kind"] == "failed", worst, units["b_value"].to_numpy(dtype=float))
    with np.errstate(invalid="ignore"):
        d = t - b
    return np.where((units["t_kind"] == "failed") & (units["b_kind"] == "failed"), 0.0, d)


def _usable(units: pd.DataFrame) -> pd.Series:
    return _arm_kinds(units).isin(["ok", "failed"]).all(axis=1)


# --- the effect table -----------------------------------------------------------------------------

EFFECT_COLUMNS = [
    "metric",
    "direction",
    "factor",
    "level",
    "baseline",
    "runs",
    "n",
    "completed",
    "pruned",
    "diverged",
    "crashed",
    "non_finite",
    "mean",
    "ci_low",
    "ci_high",
    "pairs",
    "method",
    "diff",
    "diff_low",
    "diff_high",
    "std_effect",
    "p",
    "p_holm",
    "diverged_rate",
    "diverged_p",
    "diverged_p_holm",
]

TABLE_ALPHA = 0.05  # the effect table's intervals are 95%, its Holm-adjusted p-values marked below 0.05


def _level_counts(rows: pd.DataFrame, metric: str) -> dict[str, Any]:
    outcomes = rows["outcome"].value_counts()
    values = pd.to_numeric(rows[metric], errors="coerce") if metric in rows else pd.Series([], dtype=float)
    completed = rows["outcome"] == Outcome.COMPLETED
    ok = values[completed & np.isfinite(values)] if len(values) else values
    mean, low, high = mean_ci(ok)
    return {
        "runs": len(rows),
        "n": len(ok),
        **{k.value: int(outcomes.get(k, 0)) for k in (Outcome.COMPLETED, *NOT_FINISHED)},
        "non_finite": int(completed.sum()) - len(ok),
        "mean": mean,
        "ci_low": low,
        "ci_high": high,
    }


def effects(frame: pd.DataFrame, study: Study, *, test: str = "t") -> pd.DataFrame:
    """One row per objective x factor x level: the level's runs by outcome, its mean with a 95% CI over
    finished runs, and against the factor's first (reference) level: the paired effect over units that
    share a seed (and, in a grid, the other factors' levels) with its 95% CI, a standardized effect (d_z,
    or the rank-biserial r on the rank path), the two-sided p and its Holm adjustment over the whole table;
    and the divergence rate with Fisher's exact test against the reference (Holm over the levels).

    Diverged runs and non-finite values count as the worst outcome (the rank path); crashed runs are left
    out; pruned runs count as the rule's `pruned` says (left out without a rule). A search study gets the
    per-level rows only: a sampler's choices are no controlled comparison.
    """
    if not len(frame):
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    if study.kind == "search":  # each pair once: the latest of a crashed run and its retry (--retry-crashed)
        data = frame[frame["outcome"] != Outcome.INTERRUPTED].sort_values("number", kind="stable")
        data = data.drop_duplicates(["config_id", "seed"], keep="last")
    else:
        data = design_frame(frame, study)
    ran = data[data["outcome"] != MISSING_RUN]
    pruned = study.verdict.pruned if study.verdict else None
    masks = level_masks(ran, study)
    rows: list[dict[str, Any]] = []
    for objective in study.objectives:
        for factor, groups in masks.items():
            for i, (level, mask) in enumerate(groups):
                row: dict[str, Any] = {
                    "metric": objective.metric,
                    "direction": objective.direction,
                    "factor": factor,
                    "level": format_value(level),
                    "baseline": i == 0,
                    **_level_counts(ran[mask], objective.metric),
                }
                if i > 0 and study.kind != "search":
                    units = comparison_units(
                        data,
                        study,
                        factor=factor,
                        treatment=level,
                        baseline=groups[0][0],
                        metric=objective.metric,
                        pruned=pruned,
                    )
                    d = differences(units[_usable(units)], str(objective.direction))
                    row["pairs"] = len(d)
                    if len(d) >= 2:
                        e = estimate(d, alpha=TABLE_ALPHA, test=test).item()
                        row.update(
                            method=e.method,
                            diff=e.effect,
                            diff_low=e.low,
                            diff_high=e.high,
                            std_effect=e.standardized,
                            p=float(e.p_two_sided),
                        )
                rows.append(row)
    table = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    table["p_holm"] = holm(pd.to_numeric(table["p"], errors="coerce").to_numpy(dtype=float))
    _divergence_columns(table, ran, masks)
    return table


def _divergence_columns(table: pd.DataFrame, ran: pd.DataFrame, masks: dict[str, list[tuple[Any, pd.Series]]]) -> None:
    """Each level's divergence rate (diverged among completed and diverged runs) and Fisher's exact test
    against the reference level, Holm-adjusted over the (factor, level) pairs."""
    found: dict[tuple[str, str], tuple[float, float]] = {}
    for factor, groups in masks.items():
        counts = []
        for _, mask in groups:
            outcome = ran.loc[mask, "outcome"]
            counts.append((int((outcome == Outcome.DIVERGED).sum()), int(outcome.isin(RATE_OUTCOMES).sum())))
        x_ref, n_ref = counts[0] if counts else (0, 0)
        for i, ((level, _), (x, n)) in enumerate(zip(groups, counts, strict=True)):
            p = fisher_two_sided(x, n, x_ref, n_ref) if i > 0 else math.nan
            found[(factor, format_value(level))] = (x / n if n else math.nan, p)
    keys = list(found)
    adjusted = dict(zip(keys, holm(np.array([found[k][1] for k in keys], dtype=float)), strict=True))
    pairs = list(zip(table["factor"], table["level"], strict=True))
    table["diverged_rate"] = [found.get(k, (math.nan, math.nan))[0] for k in pairs]
    table["diverged_p"] = [found.get(k, (math.nan, math.nan))[1] for k in pairs]
    table["diverged_p_holm"] = [adjusted.get(k, math.nan) for k in pairs]


RATE_OUTCOMES = (Outcome.COMPLETED.value, Outcome.DIVERGED.value)  # the runs a divergence rate is over


def rank_configs(frame: pd.DataFrame, metric: str, direction: str) -> pd.DataFrame:
    """Configurations by their mean over finished seeds, best first: config_id, n, mean, ci_low, ci_high."""
    rows = []
    live = frame[frame["outcome"] == Outcome.COMPLETED] if len(frame) else frame
    for config_id, group in live.groupby("config_id", sort=False) if len(live) else ():
        values = finite(group[metric]) if metric in group else np.array([])
        if len(values):
            mean, low, high = mean_ci(values)
            rows.append({"config_id": config_id, "n": len(values), "mean": mean, "ci_low": low, "ci_high": high})
    ranked = pd.DataFrame(rows, columns=["config_id", "n", "mean", "ci_low", "ci_high"])
    return ranked.sort_values("mean", ascending=direction == "minimize", kind="stable").reset_index(drop=True)


# --- the claim's verdict --------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """One planned look at the verdict: taken only once every pair of its seeds has finished."""

    number: int  # 1-based
    seeds: int  # seeds per configuration at this look
    alpha: float  # the share of the rule's alpha this look spends
    status: Status | None  # None: not taken yet (pairs still to finish)
    estimate: Estimate | None  # None when too few pairs to estimate
    pairs: int  # complete pairs it used
    missing: int  # pairs still to finish
    reason: str = ""  # why a taken look could not decide, beyond its interval (too few pairs...)


@dataclass(frozen=True)
class ArmCounts:
    """One compared level's runs over the units of the deciding look."""

    label: str  # "d_width=1.0"
    runs: int  # finished runs
    ok: int  # with a finite value
    failed: dict[str, int]  # why -> runs counted as the worst outcome (diverged, non-finite, pruned)
    excluded: dict[str, int]  # why -> runs left out (crashed, pruned)
    mean: float  # over the finite values (NaN for a claim about the divergence rate)
    rates: bool = False  # a claim about the divergence rate: failures are the outcome, not the worst value

    def text(self) -> str:
        worst = counts(self.failed, ()) if any(self.failed.values()) else ""
        out = counts(self.excluded, ()) if any(self.excluded.values()) else ""
        if self.rates:
            parts = [f"{self.runs} runs", worst or "none failed"]
            return ", ".join(parts + ([f"{out} (left out)"] if out else []))
        parts = [f"{self.runs} runs", f"mean {num(self.mean)} over {self.ok} with a value"]
        parts += [f"{worst} (counted as the worst outcome)"] if worst else []
        parts += [f"{out} (left out)"] if out else []
        return ", ".join(parts)


@dataclass(frozen=True)
class VerdictResult:
    """The decision on a study's claim and every number that decided it."""

    status: Status
    message: str  # one sentence: why
    rule: Verdict
    looks: list[Look]  # every look taken, then the first pending one if any
    sequential: bool  # seeds were planned in looks
    spending: str  # the alpha-spending function of a sequential plan ("" otherwise)
    grid: bool  # units are (seed, block) pairs
    treatment: ArmCounts
    baseline: ArmCounts | None  # None against a target
    excluded_pairs: dict[str, int]  # why -> pairs left out at the deciding look (crashed, pruned)
    divergence: Estimate | None  # the arms' failure rates compared (Fisher), when a run failed
    notes: tuple[str, ...] = ()

    @property
    def deciding(self) -> Look | None:
        """The last look taken (the one whose status is the verdict), None before the first."""
        taken = [look for look in self.looks if look.status is not None]
        return taken[-1] if taken else None

    @property
    def estimate(self) -> Estimate | None:
        return self.deciding.estimate if self.deciding else None

    @property
    def n(self) -> int:
        """Complete pairs (units) the verdict rests on."""
        return self.deciding.pairs if self.deciding else 0

    @property
    def alpha(self) -> float:
        """The alpha of the deciding look (the rule's alpha without planned looks)."""
        return self.deciding.alpha if self.deciding else self.rule.alpha

    @property
    def p_adjusted(self) -> float:
        """The two-sided p-value scaled to the rule's alpha (p x alpha / this look's alpha): at most alpha
        exactly when the deciding look's test rejects, so claims of different looks compare."""
        e = self.estimate
        if e is None or math.isnan(e.p_two_sided):
            return math.nan
        return min(1.0, float(e.p_two_sided) * self.rule.alpha / self.alpha)

    @property
    def method(self) -> str:
        e = self.estimate
        if e is None:
            return ""
        return _METHODS[(e.method, self.rule.target is not None)]

    def summary(self) -> str:
        """Effect, interval, MDE and n in one line (for `sweep claims`)."""
        e = self.estimate
        if e is None:
            return f"n {self.n}"
        return (
            f"effect {signed(e.effect)}, {_ci_label(self.alpha)} {interval(e.low, e.high)}, MDE {num(e.mde, 3)}, "
            f"n {self.n}"
        )

    def lines(self) -> list[str]:
        """The numbers, one fact a line (for the terminal, notes and reports)."""
        r, e = self.rule, self.estimate
        out = [self._claim_line()]
        if self.baseline is not None:
            out.append(f"{self.baseline.label} (baseline): {self.baseline.text()}")
        out.append(f"{self.treatment.label} (treatment): {self.treatment.text()}")
        if e is not None:
            std = _standardized(e)
            out.append(
                f"{_effect_label(e, r)}: {signed(e.effect)}, {_ci_label(self.alpha)} {interval(e.low, e.high)}"
                + (f"; {std}" if std else "")
            )
            out.append(
                f"{self.method}: {_statistic(e)}two-sided p {p_value(e.p_two_sided)} (alpha {num(self.alpha, 3)})"
            )
            if r.target is None and r.min_effect > 0:
                out.append(
                    f"equivalence (two one-sided tests at alpha {num(self.alpha, 3)}): "
                    f"{_ci_label(2 * self.alpha)} {interval(e.eq_low, e.eq_high)} against +-{num(r.min_effect)}"
                )
            out.append(self._mde_line(e))
        if self.divergence is not None and r.metric != DIVERGED:
            out.append(self._divergence_line(self.divergence))
        if self.sequential:
            out.append(self._looks_line())
        if any(self.excluded_pairs.values()):
            out.append(f"left out: {counts(self.excluded_pairs, ())} (pairs with a run that is not an outcome)")
        out += list(self.notes)
        return out

    def _claim_line(self) -> str:
        r = self.rule
        treat = f"{r.factor}={format_value(r.treatment)}"
        where = ", ".join(f"{k}={format_value(v)}" for k, v in r.where.items())
        only = f"; only trials with {where}" if where else ""
        what = "divergence rate" if r.metric == DIVERGED else r.metric
        if r.target is not None:
            bound = r.target - r.min_effect if r.direction == "greater" else r.target + r.min_effect
            sign = ">=" if r.direction == "greater" else "<="
            return (
                f"claim: {what} at {treat} {sign} {num(r.target)} (non-inferiority margin {num(r.min_effect)}: "
                f"decided against {num(bound)}); alpha {num(r.alpha)}{only}"
            )
        sign = {"greater": ">", "less": "<", "equivalent": f"within +-{num(r.min_effect)} of that"}[r.direction]
        paired = "paired by seed within each combination of the other factors" if self.grid else "paired by seed"
        return (
            f"claim: {what} at {treat} {sign} at {r.factor}={format_value(r.baseline)}; {paired}; alpha "
            f"{num(r.alpha)}, min_effect {num(r.min_effect)}{only}"
        )

    def _mde_line(self, e: Estimate) -> str:
        if e.method == "rates":
            base = self.baseline
            rate = sum(base.failed.values()) / max(1, base.runs - sum(base.excluded.values())) if base else math.nan
            return (
                f"minimum detectable effect at n = {self.n} (80% power, alpha {num(self.alpha, 3)}, arcsine "
                f"approximation): a rate {num(e.mde, 3)} away from the baseline's {num(rate, 3)} (Cohen's h "
                f"{num(e.mde_std, 3)})"
            )
        if math.isinf(e.mde_std):
            return (
                f"minimum detectable effect: none at n = {self.n}: the signed-rank test cannot reach alpha "
                f"{num(self.alpha, 3)} with so few pairs (its smallest p is 2^-{self.n}); plan more seeds"
            )
        line = (
            f"minimum detectable effect at n = {self.n} (80% power, alpha {num(self.alpha, 3)}): "
            f"{num(e.mde, 3)} (d_z {num(e.mde_std, 3)})"
        )
        if e.method == "rank":
            line += ", approximate: the t-test's times sqrt(pi/3)"
        sd = e.mde / e.mde_std if e.mde_std and not math.isnan(e.mde) else math.nan
        needed = pairs_for(self.rule.min_effect / sd, self.alpha) if sd > 0 and self.rule.min_effect > 0 else None
        if needed and needed > self.n:
            line += f"; about {needed} pairs would detect min_effect {num(self.rule.min_effect)}"
        return line

    def _divergence_line(self, d: Estimate) -> str:
        arms = [self.treatment] + ([self.baseline] if self.baseline else [])
        rates = ", ".join(f"{a.label} {sum(a.failed.values())}/{a.runs - sum(a.excluded.values())}" for a in arms)
        return f"failed runs (the worst outcome): {rates}; Fisher's exact test two-sided p {p_value(d.p_two_sided)}"

    def _looks_line(self) -> str:
        parts = []
        for look in self.looks:
            if look.status is None:
                parts.append(f"{look.seeds} seeds: waiting for {look.missing} pairs")
            else:
                parts.append(f"{look.seeds} seeds (alpha {num(look.alpha, 2)}): {look.status}")
        stopped = self.deciding is not None and self.deciding.status in DECISIVE and self.looks[-1] is self.deciding
        return f"looks ({self.spending} spending): " + "; ".join(parts) + ("; stopped: decisive" if stopped else "")


_METHODS = {
    ("t", False): "paired t-test on the per-pair differences",
    ("rank", False): "Wilcoxon signed-rank test on the per-pair differences (Hodges-Lehmann estimate, exact interval)",
    ("t", True): "one-sample t-test",
    ("rank", True): "Wilcoxon signed-rank test, one sample (Hodges-Lehmann estimate, exact interval)",
    ("rates", False): "difference of failure rates: Newcombe's interval and Fisher's exact test",
}


def _ci_label(alpha: float) -> str:
    return f"{100 * (1 - alpha):.4g}% CI"


def _effect_label(e: Estimate, rule: Verdict) -> str:
    if e.method == "rates":
        return "difference of divergence rates (treatment - baseline)"
    if rule.target is not None:
        return "mean - target" if e.method == "t" else "Hodges-Lehmann estimate - target"
    return "mean paired difference (treatment - baseline)" if e.method == "t" else "Hodges-Lehmann paired difference"


def _standardized(e: Estimate) -> str:
    if is_missing(e.standardized) or e.method == "rates":
        return ""
    return f"d_z {num(e.standardized, 3)}" if e.method == "t" else f"rank-biserial r {num(e.standardized, 3)}"


def _statistic(e: Estimate) -> str:
    if e.method == "t":
        return f"t = {num(e.statistic, 3)}, df {num(e.df)}, "
    if e.method == "rank":
        return f"W+ = {num(e.statistic)} of {e.n * (e.n + 1) // 2} Walsh averages, "
    return ""


def _arm_counts(units: pd.DataFrame, prefix: str, label: str, *, rates: bool) -> ArmCounts:
    kind, why = units[f"{prefix}_kind"], units[f"{prefix}_why"]
    finished = kind != MISSING_RUN
    values = units.loc[kind == "ok", f"{prefix}_value"]
    return ArmCounts(
        label=label,
        runs=int(finished.sum()),
        ok=int((kind == "ok").sum()),
        failed={w: int(((kind == "failed") & (why == w)).sum()) for w in ("diverged", "non-finite", "pruned")},
        excluded={w: int(((kind == "excluded") & (why == w)).sum()) for w in ("crashed", "pruned")},
        mean=float(values.mean()) if len(values) and not rates else math.nan,
        rates=rates,
    )


def look_alphas(study: Study, alpha: float) -> list[float]:
    """The share of `alpha` each look spends: all of it at a fixed seed set's one look; with planned looks,
    the increments of the plan's spending function at the looks' information fractions."""
    plan = study.seeds
    if not isinstance(plan, SeedPlan):
        return [alpha]
    return [float(a) for a in spending(alpha, [n / plan.max for n in study.looks], plan.spending)]


def _decide_look(units: pd.DataFrame, study: Study, rule: Verdict, alpha: float) -> tuple[Estimate | None, Status, str]:
    """The estimate and status of one look from its complete pairs."""
    n = len(units)
    est: Estimate | None = None
    if rule.metric == DIVERGED:
        x_t, x_b = int((units["t_kind"] == "failed").sum()), int((units["b_kind"] == "failed").sum())
        if n:
            est = rate_difference(x_t, n, x_b, n, alpha=alpha).item()
            mde, _ = rate_mde(x_b / n, n, alpha, up=rule.direction == "greater")  # towards the claim
            est = replace(est, mde=float(mde))
    elif n >= 2:
        better = better_direction(study, rule.metric)
        d = differences(units, better, origin=rule.target or 0.0)
        est = estimate(d, alpha=alpha, test=rule.test).item()
    if n < rule.min_seeds:
        return est, Status.INCONCLUSIVE, f"too few complete pairs to decide: {n} (the rule needs {rule.min_seeds})"
    if est is None:
        return est, Status.INCONCLUSIVE, "the test could not be computed on these values"
    origin = 0.0
    if rule.target is not None:
        origin = -rule.min_effect if rule.direction == "greater" else rule.min_effect
    status = decide(
        est, direction=rule.direction, min_effect=rule.min_effect, origin=origin, equivalence=rule.target is None
    )
    return est, Status(str(status)), ""


def verdict(frame: pd.DataFrame, study: Study) -> VerdictResult | None:
    """Decide the study's claim with its `verdict` rule (None without one).

    The compared levels pair by seed (and, in a grid, by the other factors' levels, within `where`): the
    effect is estimated on per-pair differences with the paired t-test, or with the signed-rank test and
    the Hodges-Lehmann estimate when a run failed (diverged, non-finite value, or pruned with `pruned:
    worst`: the worst outcome of its arm) or every difference is equal. Pairs with a crashed run are left
    out. A `target` rule is a non-inferiority test of the treatment against target -+ min_effect. A
    `diverged` rule compares the levels' divergence rates.

    Looks: the one look of a fixed seed set, or the planned looks of `seeds: {start, max}`, each taken
    only when all its pairs finished and tested at its share of alpha; the first decisive look
    (SUPPORTED, CONTRADICTED, NO EFFECT) is the verdict. Recomputed from the stored trials every time.
    """
    rule = study.verdict
    if rule is None or study.kind == "search":
        return None
    design = design_frame(frame, study)
    units = comparison_units(
        design,
        study,
        factor=rule.factor,
        treatment=rule.treatment,
        baseline=None if rule.target is not None else rule.baseline,
        metric=rule.metric,
        pruned=rule.pruned,
        where=rule.where,
    )
    looks: list[Look] = []
    for number, (seeds, alpha) in enumerate(zip(study.looks, look_alphas(study, rule.alpha), strict=True), 1):
        part = units[units["seed_index"] < seeds]
        missing = int((_arm_kinds(part) == MISSING_RUN).any(axis=1).sum())
        if missing:
            looks.append(Look(number, seeds, alpha, None, None, 0, missing))
            break
        usable = part[_usable(part)]
        est, status, reason = _decide_look(usable, study, rule, alpha)
        looks.append(Look(number, seeds, alpha, status, est, len(usable), 0, reason))
        if status in DECISIVE:
            break
    return _result(study, rule, units, looks)


def _result(study: Study, rule: Verdict, units: pd.DataFrame, looks: list[Look]) -> VerdictResult:
    taken = [look for look in looks if look.status is not None]
    deciding = taken[-1] if taken else None
    seeds = deciding.seeds if deciding else looks[0].seeds
    part = units[units["seed_index"] < seeds]
    rates = rule.metric == DIVERGED
    treat = _arm_counts(part, "t", f"{rule.factor}={format_value(rule.treatment)}", rates=rates)
    base = (
        _arm_counts(part, "b", f"{rule.factor}={format_value(rule.baseline)}", rates=rates)
        if "b_kind" in part
        else None
    )
    usable = _usable(part)
    excluded = {w: 0 for w in ("crashed", "pruned")}
    for prefix in ("t", "b") if base else ("t",):
        for w in excluded:
            excluded[w] += int((~usable & (part[f"{prefix}_why"] == w)).sum())
    divergence = None
    failed = [sum(a.failed.values()) for a in (treat, base) if a]
    if base is not None and sum(failed) and rule.metric != DIVERGED and deciding is not None and usable.any():
        ok = part[usable]
        n = len(ok)
        x_t, x_b = int((ok["t_kind"] == "failed").sum()), int((ok["b_kind"] == "failed").sum())
        divergence = rate_difference(x_t, n, x_b, n, alpha=deciding.alpha).item()
    status, message = _message(study, rule, looks, deciding)
    notes = []
    e = deciding.estimate if deciding else None
    if e is not None and e.method == "rank" and sum(failed) and rule.metric != DIVERGED:
        runs = "1 run" if sum(failed) == 1 else f"{sum(failed)} runs"
        notes.append(
            f"{runs} failed (diverged, non-finite or pruned): a failure is the worst outcome of its arm, so the "
            "signed-rank test decides, not the t-test"
        )
    if (
        status in (Status.SUPPORTED, Status.CONTRADICTED)
        and e is not None
        and rule.target is None
        and rule.min_effect > 0
        and e.eq_low > -rule.min_effect
        and e.eq_high < rule.min_effect
    ):
        notes.append(f"the effect is real but smaller than min_effect {num(rule.min_effect)}: it may not matter")
    if rule.min_effect == 0 and rule.target is None:
        notes.append("min_effect is 0 (a rule stored before it was required): NO EFFECT cannot be decided")
    plan = study.seeds
    return VerdictResult(
        status=status,
        message=message,
        rule=rule,
        looks=looks,
        sequential=isinstance(plan, SeedPlan),
        spending=plan.spending if isinstance(plan, SeedPlan) else "",
        grid=study.kind == "grid",
        treatment=treat,
        baseline=base,
        excluded_pairs=excluded,
        divergence=divergence,
        notes=tuple(notes),
    )


def _message(study: Study, rule: Verdict, looks: list[Look], deciding: Look | None) -> tuple[Status, str]:
    """The verdict and one sentence that says why."""
    if deciding is None:
        first = looks[0]
        return Status.INCONCLUSIVE, (
            f"no look taken yet: the first look ({first.seeds} seeds per configuration) waits for "
            f"{first.missing} pairs to finish"
        )
    status, e = deciding.status, deciding.estimate
    assert status is not None
    what = "the divergence rate" if rule.metric == DIVERGED else rule.metric
    treat = f"{rule.factor}={format_value(rule.treatment)}"
    ci = f"{_ci_label(deciding.alpha)} {interval(e.low, e.high)}" if e is not None else ""
    pending = looks[-1] if looks[-1].status is None else None
    later = f"; the next look ({pending.seeds} seeds) waits for {pending.missing} pairs" if pending else ""
    if rule.target is not None:
        margin = -rule.min_effect if rule.direction == "greater" else rule.min_effect
        words = "not below" if rule.direction == "greater" else "not above"
        bound = f"{num(rule.target + margin)} (target {num(rule.target)}, margin {num(rule.min_effect)})"
        if status == Status.SUPPORTED:
            return status, f"{what} at {treat} is {words} {bound}: the {ci} of mean - target lies beyond {num(margin)}"
        if status == Status.CONTRADICTED:
            return status, (
                f"{what} at {treat} misses {bound}, against the claim: the {ci} of mean - target lies beyond "
                f"{num(margin)} the other way"
            )
    else:
        base = f"{rule.factor}={format_value(rule.baseline)}"
        claimed = "higher" if rule.direction == "greater" else "lower"
        opposite = "lower" if rule.direction == "greater" else "higher"
        if rule.direction == "equivalent" and status == Status.SUPPORTED and e is not None:
            return status, (
                f"{what} is the same at {treat} and {base} within min_effect {num(rule.min_effect)}, as claimed: the "
                f"{_ci_label(2 * deciding.alpha)} {interval(e.eq_low, e.eq_high)} lies inside +-{num(rule.min_effect)}"
            )
        if rule.direction == "equivalent" and status == Status.CONTRADICTED:
            return status, (
                f"{what} differs between {treat} and {base} by more than min_effect {num(rule.min_effect)}, against "
                f"the claim: the {ci} of the effect lies beyond +-{num(rule.min_effect)}"
            )
        if status == Status.SUPPORTED:
            return status, f"{what} is {claimed} at {treat} than at {base}: the {ci} of the effect lies beyond 0"
        if status == Status.CONTRADICTED:
            return status, (
                f"{what} is {opposite} at {treat} than at {base}, against the claim: the {ci} of the effect lies "
                "beyond 0 the other way"
            )
        if status == Status.NO_EFFECT and e is not None:
            return status, (
                f"{what} is the same at {treat} and {base} within min_effect {num(rule.min_effect)}: the "
                f"{_ci_label(2 * deciding.alpha)} {interval(e.eq_low, e.eq_high)} lies inside +-{num(rule.min_effect)}"
            )
    if deciding.reason:
        return Status.INCONCLUSIVE, deciding.reason + later
    if e is not None and e.method != "rates" and math.isinf(e.mde_std):
        return Status.INCONCLUSIVE, (
            f"the signed-rank test cannot reach alpha {num(deciding.alpha, 3)} with {deciding.pairs} pairs "
            f"(its smallest p is 2^-{deciding.pairs}): plan more seeds{later}"
        )
    if rule.direction == "equivalent" and e is not None:
        return Status.INCONCLUSIVE, (
            f"the {_ci_label(2 * deciding.alpha)} {interval(e.eq_low, e.eq_high)} reaches beyond +-min_effect "
            f"{num(rule.min_effect)} and the {ci} does not lie beyond it{later}"
        )
    reach = ""
    if rule.min_effect > 0 and rule.target is None:
        reach = f" and reaches beyond +-min_effect {num(rule.min_effect)}"
    mde = ""
    if e is not None and e.method != "rates" and not is_missing(e.mde):
        mde = f"; the smallest effect {deciding.pairs} pairs detect with 80% power is {num(e.mde, 3)}"
    zero = "0" if rule.target is None else "the margin"
    return Status.INCONCLUSIVE, f"the {ci} includes {zero}{reach}{mde}{later}"


# --- hyperparameter importance ------------------------------------------------------------------


def importance(optuna_study: optuna.Study, study: Study) -> dict[str, dict[str, float] | str]:
    """Objective -> {param: importance} (Optuna's default evaluator), or a sentence saying why it was skipped."""
    if study.kind == "ablation":
        why = "an ablation changes one factor at a time from the base; read the effect table instead"
        return {o.metric: why for o in study.objectives}
    complete = optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varying = [k for k in {k for t in complete for k in t.params} if len({repr(t.params.get(k)) for t in complete}) > 1]
    result: dict[str, dict[str, float] | str] = {}
    for i, objective in enumerate(study.objectives):
        if len(complete) < 2:
            result[objective.metric] = f"needs at least 2 completed trials, but the study has {len(complete)}"
            continue
        if len(varying) < 2:
            only = f" ({varying[0]})" if varying else ""
            result[objective.metric] = f"only {len(varying)} parameter{only} varies among completed trials"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = optuna.importance.get_param_importances(
                    optuna_study, target=lambda t, i=i: t.values[i], params=sorted(varying)
                )
            result[objective.metric] = {k: float(v) for k, v in scores.items()}
        except Exception as exc:  # a failed estimate is reported, not fatal
            result[objective.metric] = f"Optuna could not estimate it: {type(exc).__name__}: {exc}".splitlines()[0]
    return result


# --- replications and claims ----------------------------------------------------------------------


@dataclass(frozen=True)
class Related:
    """A study run from the same definition: the original of a replication, or one of its replications."""

    name: str
    role: str  # "original" | "replication 1" ...
    verdict: VerdictResult | None


def replication_index(optuna_study: optuna.Study) -> int | None:
    return optuna_study.user_attrs.get(StudyAttr.REPLICATE)


def related_studies(store: Store, name: str) -> list[Related]:
    """The original of study `name` and its replications, in order (the study itself left out)."""
    summaries = {s.study_name: s.user_attrs for s in optuna.get_all_study_summaries(store.storage())}
    original = summaries.get(name, {}).get(StudyAttr.REPLICATION_OF) or name
    family = [(0, original)] if original in summaries else []
    family += sorted(
        (int(attrs.get(StudyAttr.REPLICATE, 0)), other)
        for other, attrs in summaries.items()
        if attrs.get(StudyAttr.REPLICATION_OF) == original
    )
    related = []
    for index, other in family:
        if other == name:
            continue
        stored = store.load_study(other)
        result = verdict(trials_frame(stored), study_spec(stored)) if stored.user_attrs.get(StudyAttr.SPEC) else None
        related.append(Related(other, "original" if index == 0 else f"replication {index}", result))
    return related


def is_complete(frame: pd.DataFrame, study: Study) -> bool:
    """Whether a run of the study has nothing left to do: decisive at a look, or every pair finished."""
    if study.kind == "search":
        finished = frame[frame["outcome"].isin(FINISHED_OUTCOMES)] if len(frame) else frame
        per_config = finished.groupby("config_id")["seed"].nunique() if len(finished) else pd.Series([], dtype=int)
        return int((per_config >= len(study.seed_list)).sum()) >= (study.trials or 0)
    result = verdict(frame, study)
    if result is not None and result.deciding is not None and result.deciding.status in DECISIVE:
        return True
    return bool((design_frame(frame, study)["outcome"] != MISSING_RUN).all())


def claim_rows(studies_dir: str | Path, store: Store) -> list[dict[str, Any]]:
    """One row per study file in studies_dir: study, file, claim, cost, verdict, summary (effect, interval,
    MDE, n), message, p (two-sided, scaled to the rule's alpha at its look), p_holm (Holm over the
    claims), and replications: [(name, verdict, summary)].

    The verdict is a Status once the study has run; otherwise "INVALID" (with the file's error as the
    message), "not run" (not in the storage yet) or "no rule" (a study without a verdict rule).
    """
    files = sorted(Path(studies_dir).glob("*.yaml"))
    if not files:
        raise SweepError(f"no study files (*.yaml) in {studies_dir}")
    stored = set(store.study_names())
    rows = []
    for path in files:
        row: dict[str, Any] = {
            "study": path.stem,
            "file": str(path),
            "claim": "",
            "cost": "",
            "summary": "",
            "message": "",
            "p": math.nan,
            "replications": [],
        }
        try:
            study = load(path)
        except SweepError as exc:
            rows.append({**row, "verdict": "INVALID", "message": str(exc)})
            continue
        row.update(study=study.name, claim=study.claim, cost=_cost(study))
        if study.name not in stored:
            row["verdict"] = "not run"
        else:
            optuna_study = store.load_study(study.name)
            result = verdict(trials_frame(optuna_study), study_spec(optuna_study))
            if result is None:
                row["verdict"] = "no rule"
            else:
                row.update(verdict=result.status, summary=result.summary(), message=result.message)
                row["p"] = result.p_adjusted
            row["replications"] = [
                (r.name, r.verdict.status if r.verdict else "no rule", r.verdict.summary() if r.verdict else "")
                for r in related_studies(store, study.name)
            ]
        rows.append(row)
    adjusted = holm(np.array([r["p"] for r in rows], dtype=float))
    for row, p in zip(rows, adjusted, strict=True):
        row["p_holm"] = float(p)
    return rows


def _cost(study: Study) -> str:
    if study.sequential:
        configs = study.trial_count // len(study.seed_list)
        return f"{configs * study.looks[0]} to {study.trial_count} trials x {study.budget.steps} steps"
    return f"{study.trial_count} trials x {study.budget.steps} steps"


__all__ = [
    "EFFECT_COLUMNS",
    "MISSING_RUN",
    "ArmCounts",
    "Look",
    "Related",
    "VerdictResult",
    "better_direction",
    "claim_rows",
    "comparison_units",
    "curves_frame",
    "design_frame",
    "differences",
    "effects",
    "history_frame",
    "importance",
    "is_complete",
    "level_masks",
    "look_alphas",
    "rank_configs",
    "related_studies",
    "replication_index",
    "study_spec",
    "trials_frame",
    "verdict",
]
