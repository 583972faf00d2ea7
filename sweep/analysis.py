"""Tidy records of a stored study, and the statistics a report rests on.

One row per trial (params and final metrics as columns); seeds aggregated into means with Student-t
confidence intervals; levels compared with Welch's t-test or Mann-Whitney U; the claim's verdict;
hyperparameter importance.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from scipy import stats

from sweep.errors import SweepError
from sweep.spec import Study, Verdict, factor_levels, format_value, parse
from sweep.store import (
    ATTR_CONFIG_ID,
    ATTR_FACTOR,
    ATTR_LEVEL,
    ATTR_METRICS,
    ATTR_OUTCOME,
    ATTR_REASON,
    ATTR_SEED,
    Store,
)

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
            "outcome": attrs.get(ATTR_OUTCOME, t.state.name.lower()),
            "config_id": attrs.get(ATTR_CONFIG_ID),
            "factor": attrs.get(ATTR_FACTOR),
            "level": attrs.get(ATTR_LEVEL),
            "seed": attrs.get(ATTR_SEED),
        }
        row.update({f"params.{k}": v for k, v in t.params.items()})
        row.update(attrs.get(ATTR_METRICS) or {})
        for key in ("steps_run", "wall_s", "node"):
            row[key] = attrs.get(key)
        row["reason"] = attrs.get(ATTR_REASON)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=BASE_COLUMNS)
    return frame


def history_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per (trial, report step): number, config_id, seed, step and every reported metric."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        for h in t.user_attrs.get("history") or []:
            rows.append({"number": t.number, "config_id": t.user_attrs.get(ATTR_CONFIG_ID),
                         "seed": t.user_attrs.get(ATTR_SEED), **h})  # fmt: skip
    return pd.DataFrame(rows)


# --- statistics over seeds ----------------------------------------------------------------------

NOT_FINISHED = ("pruned", "diverged", "crashed")  # outcomes counted at a level but left out of its mean
TESTS = {"welch": "Welch's t-test", "mannwhitney": "Mann-Whitney U test"}  # two levels compared
ONE_SAMPLE_TESTS = {"welch": "one-sample t-test", "mannwhitney": "Wilcoxon signed-rank test"}  # vs a target


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"), dtype=float)
    return array[np.isfinite(array)]


def mean_ci(values: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t confidence interval of the mean; NaN bounds when n < 2.

    Identical values give an interval of width 0; non-finite values are dropped first.
    """
    x = _finite(values)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class Comparison:
    """Two samples compared: a (treatment) against b (baseline). diff = mean(a) - mean(b)."""

    test: str  # "welch" | "mannwhitney"; against a number: "student" | "wilcoxon"
    n_a: int
    n_b: int
    diff: float
    low: float  # Welch confidence interval of diff (for either test)
    high: float
    statistic: float  # Welch's t, or Mann-Whitney's U of a
    df: float  # Welch-Satterthwaite degrees of freedom (NaN for Mann-Whitney)
    p_two_sided: float
    p_greater: float  # one-sided, H1: a > b
    p_less: float  # one-sided, H1: a < b

    def p(self, alternative: str = "two-sided") -> float:
        """The p-value for 'two-sided', 'greater' (a > b) or 'less' (a < b)."""
        return {"two-sided": self.p_two_sided, "greater": self.p_greater, "less": self.p_less}[alternative]

    @property
    def test_name(self) -> str:
        names = {"student": ONE_SAMPLE_TESTS["welch"], "wilcoxon": ONE_SAMPLE_TESTS["mannwhitney"]}
        return {**TESTS, **names}[self.test]


def welch(a: Any, b: Any, *, confidence: float = 0.95) -> Comparison:
    """Welch's t-test of mean(a) - mean(b), with the difference's confidence interval.

    n < 2 in either sample gives NaN (no variance estimate). Zero variance in both: equal means give
    t = 0 and p = 1 with a CI of width 0; different means give p = 0 (the difference is exact).
    """
    x, y = _finite(a), _finite(b)
    nan = math.nan
    diff = float(x.mean() - y.mean()) if len(x) and len(y) else nan
    if len(x) < 2 or len(y) < 2:
        return Comparison("welch", len(x), len(y), diff, nan, nan, nan, nan, nan, nan, nan)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    if va + vb == 0:
        if diff == 0:
            return Comparison("welch", len(x), len(y), 0.0, 0.0, 0.0, 0.0, nan, 1.0, 1.0, 1.0)
        greater = 0.0 if diff > 0 else 1.0
        return Comparison("welch", len(x), len(y), diff, diff, diff, math.copysign(math.inf, diff), nan, 0.0,
                          greater, 1.0 - greater)  # fmt: skip
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    se = math.sqrt(va + vb)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    t = diff / se
    return Comparison(
        "welch", len(x), len(y), diff, diff - half, diff + half, float(t), float(df),
        p_two_sided=float(2 * stats.t.sf(abs(t), df)),
        p_greater=float(stats.t.sf(t, df)),
        p_less=float(stats.t.cdf(t, df)),
    )  # fmt: skip


def mann_whitney(a: Any, b: Any, *, confidence: float = 0.95) -> Comparison:
    """Mann-Whitney U test of a against b (exact for small samples without ties); diff and CI as Welch's."""
    x, y = _finite(a), _finite(b)
    base = welch(x, y, confidence=confidence)
    if len(x) < 1 or len(y) < 1:
        return dataclasses.replace(base, test="mannwhitney", statistic=math.nan)
    if np.ptp(np.concatenate([x, y])) == 0:  # every value the same: no evidence either way
        u = len(x) * len(y) / 2
        return dataclasses.replace(base, test="mannwhitney", statistic=u, df=math.nan, p_two_sided=1.0,
                                   p_greater=1.0, p_less=1.0)  # fmt: skip
    p = {alt: float(stats.mannwhitneyu(x, y, alternative=alt).pvalue) for alt in ("two-sided", "greater", "less")}
    u = float(stats.mannwhitneyu(x, y, alternative="two-sided").statistic)
    return dataclasses.replace(base, test="mannwhitney", statistic=u, df=math.nan, p_two_sided=p["two-sided"],
                               p_greater=p["greater"], p_less=p["less"])  # fmt: skip


def compare(a: Any, b: Any, *, test: str = "welch", confidence: float = 0.95) -> Comparison:
    """`welch` or `mann_whitney` by name."""
    if test not in TESTS:
        raise SweepError(f"unknown test {test!r}; expected one of: {', '.join(TESTS)}")
    return (welch if test == "welch" else mann_whitney)(a, b, confidence=confidence)


def one_sample(values: Any, target: float, *, test: str = "welch", confidence: float = 0.95) -> Comparison:
    """values against a fixed number: Student's one-sample t-test ("welch") or Wilcoxon's signed-rank test
    ("mannwhitney", its rank counterpart). diff = mean - target, with the Student interval."""
    x = _finite(values)
    nan = math.nan
    mean, low, high = mean_ci(x, confidence)
    diff = mean - target
    kind = "student" if test == "welch" else "wilcoxon"
    if len(x) < 2:
        return Comparison(kind, len(x), 0, diff, nan, nan, nan, nan, nan, nan, nan)
    if kind == "student":
        if x.std(ddof=1) == 0:  # every run gave the same value: the difference is exact
            if diff == 0:
                return Comparison(kind, len(x), 0, 0.0, 0.0, 0.0, 0.0, nan, 1.0, 1.0, 1.0)
            greater = 0.0 if diff > 0 else 1.0
            return Comparison(kind, len(x), 0, diff, diff, diff, math.copysign(math.inf, diff), nan, 0.0, greater,
                              1.0 - greater)  # fmt: skip
        t = diff / (x.std(ddof=1) / math.sqrt(len(x)))
        df = len(x) - 1
        p_greater, p_less = float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))
        return Comparison(kind, len(x), 0, diff, low - target, high - target, float(t), float(df),
                          2 * min(p_greater, p_less), p_greater, p_less)  # fmt: skip
    if np.all(x == target):
        return Comparison(kind, len(x), 0, 0.0, 0.0, 0.0, nan, nan, 1.0, 1.0, 1.0)
    p = {alt: float(stats.wilcoxon(x - target, alternative=alt).pvalue) for alt in ("two-sided", "greater", "less")}
    w = float(stats.wilcoxon(x - target).statistic)
    return Comparison(kind, len(x), 0, diff, low - target, high - target, w, nan, p["two-sided"], p["greater"],
                      p["less"])  # fmt: skip


def min_attainable_p(n_a: int, n_b: int) -> float:
    """The smallest one-sided p-value an exact Mann-Whitney test can give with these sample sizes."""
    return 1.0 / math.comb(n_a + n_b, n_a) if n_a and n_b else 1.0


# --- grouping trials by factor level ------------------------------------------------------------


def study_spec(optuna_study: optuna.Study) -> Study:
    """The Study a stored Optuna study was run from (its "spec" user attribute)."""
    data = optuna_study.user_attrs.get("spec")
    if not data:
        raise SweepError(f"study '{optuna_study.study_name}' has no study definition stored; was it run by sweep?")
    return parse(data, source=f"stored study {optuna_study.study_name}")


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
    live = frame["outcome"] != "interrupted" if "outcome" in frame else pd.Series(True, index=frame.index)
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


def _finished_values(frame: pd.DataFrame, mask: pd.Series, metric: str) -> pd.Series:
    rows = frame[mask & (frame["outcome"] == "completed")]
    if metric not in rows:
        return pd.Series([], dtype=float)
    values = pd.to_numeric(rows[metric], errors="coerce")
    return values[np.isfinite(values)]


def _outcome_counts(frame: pd.DataFrame, mask: pd.Series) -> dict[str, int]:
    outcomes = frame.loc[mask, "outcome"].value_counts()
    return {k: int(outcomes.get(k, 0)) for k in ("completed", *NOT_FINISHED)}


EFFECT_COLUMNS = [
    "metric", "direction", "factor", "level", "baseline", "runs", "n", "completed", "pruned", "diverged", "crashed",
    "mean", "ci_low", "ci_high", "diff", "diff_low", "diff_high", "statistic", "df", "p", "test",
]  # fmt: skip


def effects(frame: pd.DataFrame, study: Study, *, test: str = "welch", confidence: float = 0.95) -> pd.DataFrame:
    """One row per objective x factor x level: mean and CI over finished runs, difference from the
    factor's baseline level with its Welch CI, a two-sided test (`welch` or `mannwhitney`) and its p-value,
    and how many runs at the level were pruned, diverged or crashed (counted, not averaged)."""
    rows = []
    masks = level_masks(frame, study) if len(frame) else {}
    for objective in study.objectives:
        for factor, groups in masks.items():
            base_values = _finished_values(frame, groups[0][1], objective.metric) if groups else None
            for i, (level, mask) in enumerate(groups):
                values = _finished_values(frame, mask, objective.metric)
                mean, low, high = mean_ci(values, confidence)
                row = {"metric": objective.metric, "direction": objective.direction, "factor": factor,
                       "level": format_value(level), "baseline": i == 0, "runs": int(mask.sum()), "n": len(values),
                       **_outcome_counts(frame, mask), "mean": mean, "ci_low": low, "ci_high": high,
                       "test": test}  # fmt: skip
                if i > 0:
                    c = compare(values, base_values, test=test, confidence=confidence)
                    row.update(diff=c.diff, diff_low=c.low, diff_high=c.high, statistic=c.statistic, df=c.df,
                               p=c.p_two_sided)  # fmt: skip
                rows.append(row)
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def rank_configs(frame: pd.DataFrame, metric: str, direction: str) -> pd.DataFrame:
    """Configurations by their mean over finished seeds, best first: config_id, n, mean, ci_low, ci_high."""
    rows = []
    live = frame[frame["outcome"] == "completed"] if len(frame) else frame
    for config_id, group in live.groupby("config_id", sort=False) if len(live) else ():
        values = _finite(group[metric]) if metric in group else np.array([])
        if len(values):
            mean, low, high = mean_ci(values)
            rows.append({"config_id": config_id, "n": len(values), "mean": mean, "ci_low": low, "ci_high": high})
    ranked = pd.DataFrame(rows, columns=["config_id", "n", "mean", "ci_low", "ci_high"])
    return ranked.sort_values("mean", ascending=direction == "minimize", kind="stable").reset_index(drop=True)


# --- the claim's verdict ------------------------------------------------------------------------

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE"


@dataclass(frozen=True)
class VerdictResult:
    """The decision on a study's claim and every number that decided it."""

    status: str  # SUPPORTED | NOT SUPPORTED | INCONCLUSIVE
    message: str  # one sentence: why
    rule: Verdict
    n_baseline: int  # finished runs with a value (0 with a `target`)
    n_treatment: int
    seeds_baseline: int  # distinct seeds among them
    seeds_treatment: int
    not_finished_baseline: dict[str, int]  # outcome -> count (pruned, diverged, crashed)
    not_finished_treatment: dict[str, int]
    mean_baseline: float  # the target itself when the rule compares with a number
    mean_treatment: float
    comparison: Comparison | None  # treatment against baseline (or target); None when too few runs to test
    p_one_sided: float

    @property
    def test_name(self) -> str:
        return (ONE_SAMPLE_TESTS if self.rule.target is not None else TESTS)[self.rule.test]

    def lines(self) -> list[str]:
        """The numbers, one fact a line (for the terminal, notes and reports)."""
        r, c = self.rule, self.comparison
        treat = format_value(r.treatment)
        sign = ">" if r.direction == "greater" else "<"
        where = ", ".join(f"{k}={format_value(v)}" for k, v in r.where.items())
        only = f"; only trials with {where}" if where else ""
        treated = (f"{r.factor}={treat} (treatment): mean {_num(self.mean_treatment)} over {self.n_treatment} runs "
                   f"({self.seeds_treatment} seeds){_not_finished(self.not_finished_treatment)}")  # fmt: skip
        if r.target is not None:
            out = [
                f"rule: mean {r.metric} at {r.factor}={treat} {sign} {r.target:g} ({self.test_name}, one-sided, "
                f"alpha {r.alpha:g}, at least {r.min_seeds} finished seeds{only})",
                treated,
            ]
            against = "target"
        else:
            base = format_value(r.baseline)
            out = [
                f"rule: {r.metric} at {r.factor}={treat} {sign} at {r.factor}={base} ({self.test_name}, one-sided, "
                f"alpha {r.alpha:g}, at least {r.min_seeds} finished seeds per level{only})",
                f"{r.factor}={base} (baseline): mean {_num(self.mean_baseline)} over {self.n_baseline} runs "
                f"({self.seeds_baseline} seeds){_not_finished(self.not_finished_baseline)}",
                treated,
            ]
            against = "baseline"
        if c is not None:
            symbol = {"welch": "t", "student": "t", "mannwhitney": "U", "wilcoxon": "W"}[c.test]
            stat = f"{symbol} = {_num(c.statistic)}"
            stat += f", df = {_num(c.df)}" if c.test in ("welch", "student") else ""
            out.append(f"difference (treatment - {against}): {_num(c.diff)}, 95% CI [{_num(c.low)}, {_num(c.high)}]")
            out.append(f"{stat}, one-sided p = {_num(self.p_one_sided, 3)} (alpha {r.alpha:g})")
        return out


def _num(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _not_finished(counts: dict[str, int]) -> str:
    parts = [f"{v} {k}" for k, v in counts.items() if v]
    return f"; not finished, left out: {', '.join(parts)}" if parts else ""


def _where(frame: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    """The trials whose parameters have the given levels."""
    keep = pd.Series(True, index=frame.index)
    for name, level in where.items():
        column = f"params.{name}"
        keep &= frame[column].map(lambda v, lv=level: _same(v, lv)) if column in frame else False
    return frame[keep]


def verdict(frame: pd.DataFrame, study: Study) -> VerdictResult | None:
    """Decide the study's claim with its `verdict` rule (None when it has none).

    INCONCLUSIVE when a compared level has fewer than `min_seeds` finished seeds (pruned, diverged and
    crashed runs do not count as finished); otherwise SUPPORTED when the one-sided test in the expected
    direction gives p < alpha, and NOT SUPPORTED when not (including an effect in the other direction).
    Grid studies pool every trial at each level (the other factors marginalized), within the rule's
    `where` levels if it has any. A rule with a `target` compares the treatment's mean with that number
    (one-sample t-test, or Wilcoxon signed-rank for `test: mannwhitney`).
    """
    rule = study.verdict
    if rule is None:
        return None
    frame = _where(frame, rule.where) if rule.where else frame
    groups = {format_value(level): mask for level, mask in level_masks(frame, study).get(rule.factor, [])}
    empty = pd.Series(False, index=frame.index)
    mask_t = groups.get(format_value(rule.treatment), empty)
    mask_b = empty if rule.target is not None else groups.get(format_value(rule.baseline), empty)
    values_b, values_t = (_finished_values(frame, m, rule.metric) for m in (mask_b, mask_t))
    seeds_b, seeds_t = (int(frame.loc[v.index, "seed"].nunique()) if len(v) else 0 for v in (values_b, values_t))
    nf_b, nf_t = ({k: v for k, v in _outcome_counts(frame, m).items() if k != "completed"} for m in (mask_b, mask_t))
    mean_b, mean_t = (float(v.mean()) if len(v) else math.nan for v in (values_b, values_t))
    treat_text = format_value(rule.treatment)
    base_text = f"the target {rule.target:g}" if rule.target is not None else format_value(rule.baseline)
    comparison, p_one = None, math.nan
    if rule.target is not None:
        mean_b = float(rule.target)
        if len(values_t):
            comparison = one_sample(values_t, rule.target, test=rule.test)
    elif len(values_b) and len(values_t):
        comparison = compare(values_t, values_b, test=rule.test)
    if comparison is not None:
        p_one = comparison.p(rule.direction)
    expected = "higher" if rule.direction == "greater" else "lower"
    counted = [(treat_text, seeds_t)] if rule.target is not None else [(base_text, seeds_b), (treat_text, seeds_t)]
    if min(s for _, s in counted) < rule.min_seeds:
        few = [f"{rule.factor}={lv} has {s}" for lv, s in counted]
        status = INCONCLUSIVE
        message = (f"too few finished seeds to decide: {' and '.join(few)} (the rule needs {rule.min_seeds} "
                   "per level; pruned, diverged and crashed runs do not count)")  # fmt: skip
    elif math.isnan(p_one):
        status, message = INCONCLUSIVE, "the test could not be computed on these values"
    elif p_one < rule.alpha:
        status = SUPPORTED
        message = (f"{rule.metric} is {expected} at {rule.factor}={treat_text} than at {base_text}: one-sided "
                   f"p = {_num(p_one, 3)} < alpha {rule.alpha:g}")  # fmt: skip
    else:
        status = NOT_SUPPORTED
        opposite = (comparison.diff < 0) if rule.direction == "greater" else (comparison.diff > 0)
        why = "the effect goes the other way" if opposite else "the difference is within seed noise"
        message = (f"{rule.metric} is not significantly {expected} at {rule.factor}={treat_text} than at "
                   f"{base_text} ({why}): one-sided p = {_num(p_one, 3)} >= alpha {rule.alpha:g}")  # fmt: skip
        if rule.test == "mannwhitney":
            floor = (0.5 ** len(values_t) if rule.target is not None
                     else min_attainable_p(len(values_t), len(values_b)))  # fmt: skip
            if floor >= rule.alpha:
                message += f"; with these run counts the rank test cannot go below p = {floor:.3g}: add seeds"
    return VerdictResult(status, message, rule, len(values_b), len(values_t), seeds_b, seeds_t, nf_b, nf_t,
                         mean_b, mean_t, comparison, p_one)  # fmt: skip


# --- hyperparameter importance ------------------------------------------------------------------


def importance(optuna_study: optuna.Study, study: Study) -> dict[str, dict[str, float] | str]:
    """Objective -> {param: importance} (Optuna's default evaluator), or a sentence saying why it was skipped."""
    if study.kind == "ablation":
        why = "an ablation changes one factor at a time from the base; read the effect table instead"
        return {o.metric: why for o in study.objectives}
    complete = optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
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
        except Exception as exc:  # noqa: BLE001 - a failed estimate is reported, not fatal
            result[objective.metric] = f"Optuna could not estimate it: {type(exc).__name__}: {exc}".splitlines()[0]
    return result


def claim_rows(studies_dir: str | Path, store: Store) -> list[dict[str, str]]:
    """One row per study file in studies_dir: study, claim, cost, verdict and its deciding numbers.

    A file that does not load gets its error as the verdict; a study not yet in the storage is
    "not run"; a study without a verdict rule is "no rule" (its report still has the effects).
    """
    from sweep import spec as spec_module

    files = sorted(Path(studies_dir).glob("*.yaml"))
    if not files:
        raise SweepError(f"no study files (*.yaml) in {studies_dir}")
    stored = set(store.study_names())
    rows = []
    for path in files:
        try:
            study = spec_module.load(path)
        except SweepError as exc:
            rows.append({"study": path.stem, "claim": "", "cost": "", "verdict": "INVALID", "numbers": str(exc)})
            continue
        trials = study.trial_count
        row = {"study": study.name, "claim": study.claim, "cost": f"{trials} trials x {study.budget.steps} steps"}
        if study.name not in stored:
            row.update(verdict="not run", numbers=f"sweep run {path}")
        else:
            optuna_study = store.load_study(study.name)
            result = verdict(trials_frame(optuna_study), study_spec(optuna_study))
            if result is None:
                row.update(verdict="no rule", numbers=f"see sweep report {study.name}")
            else:
                row.update(verdict=result.status, numbers="; ".join([result.message, *result.lines()[1:]]))
        rows.append(row)
    return rows


__all__ = [
    "INCONCLUSIVE",
    "NOT_SUPPORTED",
    "SUPPORTED",
    "Comparison",
    "VerdictResult",
    "claim_rows",
    "compare",
    "effects",
    "history_frame",
    "importance",
    "level_masks",
    "mann_whitney",
    "mean_ci",
    "min_attainable_p",
    "one_sample",
    "rank_configs",
    "study_spec",
    "trials_frame",
    "verdict",
    "welch",
]
