"""What the progress display and the run's summary read: each Tune trial handed out, and the run's counts.
Plain data, filled in by the recorder and Tune's callbacks in the driver process."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sweep.store import TrialAttr
from sweep.vocab import Outcome, seed_range

if TYPE_CHECKING:
    import optuna


@dataclass
class TrialProgress:
    """One trial as the progress display shows it: which pair, how far, how it ended."""

    label: str  # "d_width=1.0 seed 2", or a population's pairs: "8 pairs: base seeds 0..7"
    steps: int  # its training budget
    step: int = 0  # the last step it reported
    outcome: str = ""  # a vocab.Outcome value once it ended (a population: its members' outcomes)
    members: int = 1  # the pairs it trains
    seconds: float | None = None  # its worker's wall time, when the worker sent its final result


@dataclass
class Tracker:
    """Counts for the progress display and the summary."""

    total: int
    done: int = 0
    started: set = field(default_factory=set)  # Tune ids of trials whose actor runs them now
    failed: int = 0
    crashed: int = 0  # of the failed: those that ended without a measured outcome
    failures: Counter = field(default_factory=Counter)  # (outcome, reason) -> trials, of the failed
    pruned: int = 0
    best: float | None = None
    started_at: float = field(default_factory=time.perf_counter)
    trial_seconds: float = 0.0  # sum of the trials' own wall times
    first_step_at: float | None = None
    trials: dict[str, TrialProgress] = field(default_factory=dict)  # Tune id -> its trial, once handed out
    notes: set[str] = field(default_factory=set)  # what the summary should tell (e.g. pairs that ran alone)
    ended: list[TrialProgress] = field(default_factory=list)  # trials in the order they ended

    @property
    def running(self) -> int:
        """Pairs training now (a population counts its members)."""
        return sum(t.members for tid, t in self.trials.items() if tid in self.started and not t.outcome) or len(
            self.started
        )

    def running_trials(self) -> list[TrialProgress]:
        """The trials a worker runs now, in the order they were handed out."""
        return [t for tid, t in self.trials.items() if tid in self.started and not t.outcome]

    def end(self, tune_id: str, outcome: Outcome | str, seconds: float | None = None) -> None:
        self.started.discard(tune_id)
        trial = self.trials.get(tune_id)
        if trial is not None and not trial.outcome:
            trial.outcome, trial.seconds = outcome.value if isinstance(outcome, Outcome) else outcome, seconds
            self.ended.append(trial)


def population_label(trials: Sequence[optuna.Trial]) -> str:
    """'base seed 2' for one pair; '8 pairs: base seeds 0..3, d_batchnorm=joint seeds 0..3' for a population."""
    if len(trials) == 1:
        return f"{trials[0].user_attrs[TrialAttr.CONFIG_ID]} seed {trials[0].user_attrs[TrialAttr.SEED]}"
    seeds: dict[str, list[int]] = {}
    for t in trials:
        seeds.setdefault(t.user_attrs[TrialAttr.CONFIG_ID], []).append(int(t.user_attrs[TrialAttr.SEED]))
    parts = [f"{config_id} seeds {seed_range(s)}" for config_id, s in seeds.items()]
    return f"{len(trials)} pairs: " + ", ".join(parts)


__all__ = ["TrialProgress", "Tracker", "population_label"]
