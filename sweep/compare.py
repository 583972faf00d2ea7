"""Two stored studies side by side: what differs in their definitions and in the code and machines that ran
them, and their verdicts and effects (a rerun on other seeds, a longer budget, a new version of the code).

Everything is read from the storage; the numbers are the effect tables' own cells (`report.tables`), so a
comparison shows each number exactly as `sweep show --effects` and the report do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweep import provenance
from sweep.report.tables import BASE, EffectTable, diff_header, effect_tables
from sweep.results import load_results
from sweep.spec import format_value
from sweep.store import StudyAttr, TrialAttr
from sweep.vocab import MISSING, counts

if TYPE_CHECKING:
    import optuna

    from sweep.analysis import VerdictResult
    from sweep.results import StudyResults


@dataclass(frozen=True)
class Difference:
    """One key whose value differs between the two studies ("budget.steps": "800" against "1600")."""

    key: str
    a: str
    b: str


@dataclass(frozen=True)
class Side:
    """One study of the comparison."""

    name: str
    trials: str  # "15 trials: 13 completed, 1 diverged, 1 crashed"
    verdict: VerdictResult | None
    tables: list[EffectTable]

    @property
    def diff_header(self) -> str:
        """The header of this study's difference column in its tables' cells ("diff vs base")."""
        return self.tables[0].diff_header if self.tables else diff_header(BASE)


@dataclass(frozen=True)
class EffectPair:
    """One level of one objective in both studies: each side's cells by header, None where it has no such row."""

    metric: str
    label: str  # factor=level, or base
    reference: bool  # the level the others are compared with (in either study)
    a: dict[str, str] | None
    b: dict[str, str] | None


@dataclass(frozen=True)
class Comparison:
    a: Side
    b: Side
    definition: list[Difference]  # keys of the study definitions that differ (name, seeds, budget, base, ...)
    runs: list[Difference]  # code, libraries and devices the trials ran on, where they differ
    same_runs: list[tuple[str, str]]  # what both ran on alike, as (what, text)
    effects: list[EffectPair]


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys to their values as text: {"budget": {"steps": 800}} -> {"budget.steps": "800"}."""
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):  # objectives: one key per entry
        value = dict(enumerate(value))
    if isinstance(value, dict) and value:
        found: dict[str, str] = {}
        for key, inner in value.items():
            found.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {prefix: format_value(value) if value not in ({}, None) else MISSING}


def _differences(a: dict[str, str], b: dict[str, str]) -> list[Difference]:
    keys = list(dict.fromkeys([*a, *b]))
    pairs = [(k, a.get(k, MISSING), b.get(k, MISSING)) for k in keys]
    return [Difference(k, x, y) for k, x, y in pairs if x != y]


def _side(results: StudyResults) -> Side:
    return Side(
        name=results.study.name,
        trials=f"{len(results.frame)} trials: {counts(results.outcomes)}",
        verdict=results.verdict_once_run,
        tables=effect_tables(results.effects, results.study),
    )


def _ran_on(optuna_study: optuna.Study) -> dict[str, str]:
    """What the study's trials ran on (each distinct code, libraries, device), else what its driver recorded."""
    records = [
        t.user_attrs[TrialAttr.PROVENANCE]
        for t in optuna_study.get_trials(deepcopy=False)
        if t.user_attrs.get(TrialAttr.PROVENANCE)
    ]
    if not records and optuna_study.user_attrs.get(StudyAttr.PROVENANCE):
        records = [optuna_study.user_attrs[StudyAttr.PROVENANCE]]
    found = dict(provenance.summary(records))
    return found or {"code": f"{provenance.UNKNOWN} (stored before provenance was recorded)"}


def _effect_pairs(a: Side, b: Side) -> list[EffectPair]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for which, side in (("a", a), ("b", b)):
        for table in side.tables:
            for row in table.rows:
                entry = rows.setdefault((table.metric, row.label), {"reference": False, "a": None, "b": None})
                entry["reference"] |= row.reference
                entry[which] = dict(zip(table.headers, row.cells, strict=True))
    return [EffectPair(metric, label, e["reference"], e["a"], e["b"]) for (metric, label), e in rows.items()]


def compare(a: optuna.Study, b: optuna.Study) -> Comparison:
    """Study `a` against study `b`: definitions, what they ran on, verdicts and effects."""
    results_a, results_b = load_results(a), load_results(b)
    side_a, side_b = _side(results_a), _side(results_b)
    spec_a = results_a.study.model_dump(mode="json")
    spec_b = results_b.study.model_dump(mode="json")
    ran_a, ran_b = _ran_on(a), _ran_on(b)
    runs = _differences(ran_a, ran_b)
    return Comparison(
        a=side_a,
        b=side_b,
        definition=_differences(_flatten(spec_a), _flatten(spec_b)),
        runs=runs,
        same_runs=[(k, v) for k, v in ran_a.items() if k not in {d.key for d in runs}],
        effects=_effect_pairs(side_a, side_b),
    )


__all__ = ["Comparison", "Difference", "EffectPair", "Side", "compare"]
