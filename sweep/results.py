"""A stored study's results, read once: its definition, its trials table, its effect table and its verdict,
and the verdicts of the studies run from the same definition (its original and replications).

Every command that shows a stored study (`sweep show --effects`, `compare`, `report`, `claims`, the
dashboard's note) reads it through `load_results`; each piece is computed the first time it is asked for,
and only once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sweep import analysis
from sweep.lazy import LazyImport
from sweep.store import StudyAttr

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from sweep.analysis import VerdictResult
    from sweep.spec import Study
    from sweep.store import Store
else:  # loaded by the first listing of replications
    optuna = LazyImport("optuna")


@dataclass(frozen=True, eq=False)
class StudyResults:
    """One stored study read by its definition; `frame`, `effects` and `verdict` are computed when first
    asked for, then kept."""

    optuna_study: optuna.Study
    study: Study  # the definition it is read by: the stored one, unless the caller holds it already

    @cached_property
    def frame(self) -> pd.DataFrame:
        """One row per trial (`analysis.trials_frame`)."""
        return analysis.trials_frame(self.optuna_study)

    @property
    def test(self) -> str:
        """The paired test of the effect table: the verdict rule's, else the t-test."""
        return self.study.verdict.test if self.study.verdict else "t"

    @cached_property
    def effects(self) -> pd.DataFrame:
        """Each objective x factor x level against its reference (`analysis.effects`)."""
        return analysis.effects(self.frame, self.study, test=self.test)

    @cached_property
    def verdict(self) -> VerdictResult | None:
        """The claim's verdict on the trials stored so far, None without a rule (`analysis.verdict`)."""
        return analysis.verdict(self.frame, self.study)

    @property
    def verdict_once_run(self) -> VerdictResult | None:
        """The verdict once a trial is stored, None before: a report or note says "no trials yet" instead
        of the first look's wait."""
        return self.verdict if len(self.frame) else None

    @cached_property
    def outcomes(self) -> dict[str, int]:
        """Trials by outcome ("completed": 6, "crashed": 3), in the order pandas counts them."""
        tally = self.frame["outcome"].value_counts().to_dict() if len(self.frame) else {}
        return {k: int(v) for k, v in tally.items()}


def load_results(optuna_study: optuna.Study, *, study: Study | None = None) -> StudyResults:
    """The results of a stored study, read by `study` (default: the definition stored with it)."""
    return StudyResults(optuna_study, study if study is not None else analysis.study_spec(optuna_study))


@dataclass(frozen=True)
class Related:
    """A study run from the same definition: the original of a replication, or one of its replications."""

    name: str
    role: str  # "original" | "replication 1" ...
    verdict: VerdictResult | None


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
        result = load_results(stored).verdict if stored.user_attrs.get(StudyAttr.SPEC) else None
        related.append(Related(other, "original" if index == 0 else f"replication {index}", result))
    return related


__all__ = ["Related", "StudyResults", "load_results", "related_studies"]
