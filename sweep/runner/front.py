"""The front: hands out the next population of pending pairs, each member an open Optuna trial.

Ablation and grid trials are enqueued with their params fixed, in the expanded order, and asked for at
once; search trials ask the study's sampler for params, and each sampled configuration is repeated for
every seed. A population takes pending pairs of one network shape (one population key), as many as the
packing gives that shape, and the costliest population goes first, so that every slot stays busy to the
end (longest job first). Populations an earlier driver left with a checkpoint go before all others,
whole. A shape whose stacked members would not be their single runs goes one pair at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import optuna

from sweep.runner.optuna_study import distribution, from_optuna_value, optuna_value
from sweep.runner.packing import Packing, pending_work, population_cost
from sweep.runner.planning import PendingPair, Plan, Resumable, pending_pair
from sweep.runner.protocol import MemberOrder, WorkOrder
from sweep.spec import Study, TrialSpec
from sweep.store import DriverLease, TrialAttr


class _Queued(NamedTuple):
    pair: PendingPair
    trial: optuna.Trial | None  # its Optuna trial when it was asked for already (a sampled configuration's)


@dataclass(frozen=True)
class Population:
    """One Tune trial's worth of pairs, as handed out."""

    order: WorkOrder  # what its worker is sent
    trials: tuple[optuna.Trial, ...]  # its members' open Optuna trials, in member order
    note: str | None = None  # what the run's summary should tell about it (its pairs ran alone, and why)


class OptunaFront:
    """Hands out the plan's pending pairs as populations, asking Optuna for each member's trial."""

    def __init__(
        self,
        study: Study,
        optuna_study: optuna.Study,
        plan: Plan,
        *,
        packing: Packing | None = None,
        lease: DriverLease | None = None,
        board_name: str | None = None,
    ) -> None:
        self.study, self.optuna_study = study, optuna_study
        self.lease = lease  # once another driver has taken it over, no trial is handed out
        self.queue: list[_Queued] = [_Queued(pair, None) for pair in plan.pending]
        self.search_remaining = plan.search_remaining
        self.packing = packing or Packing.of(plan.pending, most=1, slots=1)
        self.board_name = board_name  # the early-stopping board its workers read, if any
        self.resumable = list(plan.resumable)  # interrupted populations still to try, newest first
        names = list(study.space) if study.kind == "search" else list(study.factors)
        self.distributions = {name: distribution(study, name) for name in names}

    @property
    def total(self) -> int:
        """The pairs still to hand out (a search's configurations still to sample count every seed)."""
        return len(self.queue) + self.search_remaining * len(self.study.seed_list)

    def next_population(self) -> Population | None:
        """The next population, its members' Optuna trials open; None when every pair is handed out."""
        if self.lease is not None and self.lease.lost:
            return None
        chosen, resume = self._resume()
        if not chosen and not self.queue and self.search_remaining > 0:
            self._sample_configuration()
        if not chosen and not self.queue:
            return None
        first = chosen[0].pair if chosen else self._costliest()
        size, note = self.packing.size(first.key), None
        if resume is None and size > 1 and first.inexact is not None:
            size = 1  # stacked, its members would not be their single runs: each pair alone
            note = (
                f"{first.spec.config_id} ran one pair per trial, not in populations: {first.inexact}, so members "
                "would not be bit-identical to single runs"
            )
        if resume is None:
            chosen = self._fill(first.key, size)
        members = [self._open(item) for item in chosen]
        pairs = [list(item.pair.pair) for item in chosen]
        for _, trial in members:
            trial.set_user_attr(TrialAttr.PAIRS, pairs)
        order = WorkOrder(
            members=tuple(member for member, _ in members),
            cpus=self.study.resources.cpus,
            stop_board=self.board_name,
            checkpoint_every=self.study.resources.checkpoint_every,
            resume_from=resume.path if resume else None,
            resume_step=resume.step if resume else None,
        )
        return Population(order, tuple(trial for _, trial in members), note)

    def _resume(self) -> tuple[list[_Queued], Resumable | None]:
        """The first interrupted population whose pairs are all pending and whose checkpoint is still there."""
        while self.resumable:
            resume = self.resumable.pop(0)
            where = {item.pair.pair: i for i, item in enumerate(self.queue)}
            if all(pair in where for pair in resume.pairs) and Path(resume.path).is_dir():
                return self._take([where[pair] for pair in resume.pairs]), resume
        return [], None

    def _fill(self, key: tuple, size: int) -> list[_Queued]:
        """Up to `size` pending pairs of this shape, in queue order; a search samples more while they fit."""
        chosen: list[_Queued] = []
        while len(chosen) < size:
            taken = [i for i, item in enumerate(self.queue) if item.pair.key == key][: size - len(chosen)]
            if not taken:
                if self.search_remaining > 0 and self._sample_configuration().key == key:
                    continue  # the sampled configuration fits this population: its seeds join
                break
            chosen += self._take(taken)
        return chosen

    def _costliest(self) -> PendingPair:
        """The first pending pair of the shape whose next population costs most (queue order on ties)."""
        work = pending_work(item.pair for item in self.queue)  # in queue order: max keeps the first of equals
        key = max(work, key=lambda k: population_cost(*work[k], self.packing.size(k)))
        return next(item.pair for item in self.queue if item.pair.key == key)

    def _take(self, indices: list[int]) -> list[_Queued]:
        """Remove these queue items and return them, in the order given."""
        taken, gone = [self.queue[i] for i in indices], set(indices)
        self.queue = [item for i, item in enumerate(self.queue) if i not in gone]
        return taken

    def _open(self, item: _Queued) -> tuple[MemberOrder, optuna.Trial]:
        """The member's part of the work order, and its Optuna trial (asked for now if not yet)."""
        spec = item.pair.spec
        trial = item.trial if item.trial is not None else self._fixed_trial(spec)
        for key, value in (
            (TrialAttr.CONFIG_ID, spec.config_id),
            (TrialAttr.SEED, spec.seed),
            (TrialAttr.INDEX, spec.index),
            (TrialAttr.FACTOR, spec.factor),
            (TrialAttr.LEVEL, spec.level),
        ):
            trial.set_user_attr(key, value)
        trial.set_user_attr(TrialAttr.CONFIG, item.pair.config.to_dict())
        return MemberOrder(item.pair.config.to_dict(), trial.number), trial

    def _sample_configuration(self) -> PendingPair:
        """Ask the sampler for one configuration: its trial runs the first seed; every seed is queued."""
        trial = self.optuna_study.ask(self.distributions)
        params = {k: from_optuna_value(self.study, k, v) for k, v in trial.params.items()}
        config_id = f"search-{trial.number:04d}"
        self.search_remaining -= 1
        specs = [TrialSpec(0, config_id, params, s, None, None) for s in self.study.seed_list]
        first, *others = [pending_pair(self.study, spec) for spec in specs]
        self.queue += [_Queued(first, trial)] + [_Queued(pair, None) for pair in others]
        return first

    def _fixed_trial(self, spec: TrialSpec) -> optuna.Trial:
        """An Optuna trial, RUNNING, with the spec's params fixed: enqueued, then asked for at once."""
        params = {k: optuna_value(v) for k, v in spec.params.items()}
        self.optuna_study.enqueue_trial(params)
        return self.optuna_study.ask({k: self.distributions[k] for k in params})


__all__ = ["OptunaFront", "Population"]
