"""What the driver and a worker send each other: small frozen dataclasses, each with its wire form.

The driver hands Ray Tune a `WorkOrder` as the Tune trial's config (a plain dict: Tune copies it, and
names the trial from it); the worker sends back `Progress` at every report, `Checkpointed` when it hands
Tune a checkpoint, and one `Final` at the end, as Tune results. Tune flattens nested dicts in results
before a searcher sees them, so a message's nested part travels as one JSON string under one key. Both
sides read and write these messages only through the classes here, so they read the same names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sweep.store import TrialAttr

FINAL = "sweep/final"  # key of the last result a worker reports: JSON, {"members": [final per member]}
MEMBERS = "sweep/members"  # key of every other result: JSON, {member: metrics} of the members still training
CHECKPOINT_STEP = "sweep/checkpoint_step"  # a result that hands Ray Tune a checkpoint: the step it holds
EVAL_STEP = "sweep/eval_step"  # in each member's metrics: the step its eval/* values come from (0: none yet)
STEP = "step"  # in every result: the training step it reports (Tune's and ASHA's time attribute)


# --- driver -> worker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberOrder:
    """One member of a population: the configuration it trains and the Optuna trial it is."""

    train_config: dict[str, Any]  # TrainConfig.to_dict() of the pair, built and validated by the driver
    optuna_number: int  # its Optuna trial's number (names the Tune trial: trial_12, population_12-27)

    def to_wire(self) -> dict[str, Any]:
        return {"train_config": self.train_config, "optuna_number": self.optuna_number}


@dataclass(frozen=True)
class WorkOrder:
    """What the driver sends a worker: one population to train, and how."""

    members: tuple[MemberOrder, ...]  # in member order: member k's results are reported under k
    cpus: float  # the CPUs the study gives a trial (resources.cpus): the worker's torch threads
    stop_board: str | None = None  # the name of the early-stopping board to read; None: no early stopping
    checkpoint_every: int | None = None  # steps between checkpoints; None: by the clock; 0: never
    resume_from: str | None = None  # an interrupted population's checkpoint folder to resume, or None
    resume_step: int | None = None  # the step that checkpoint holds

    @property
    def steps(self) -> int:
        """The population's training budget (its members share it)."""
        return int(self.members[0].train_config["steps"])

    def to_config(self) -> dict[str, Any]:
        """The Tune trial's config."""
        return {
            "members": [m.to_wire() for m in self.members],
            "cpus": self.cpus,
            "stop_board": self.stop_board,
            "checkpoint_every": self.checkpoint_every,
            "resume_from": self.resume_from,
            "resume_step": self.resume_step,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WorkOrder:
        return cls(
            members=tuple(MemberOrder(m["train_config"], int(m["optuna_number"])) for m in config["members"]),
            cpus=config["cpus"],
            stop_board=config.get("stop_board"),
            checkpoint_every=config.get("checkpoint_every"),
            resume_from=config.get("resume_from"),
            resume_step=config.get("resume_step"),
        )


def member_numbers(config: Mapping[str, Any]) -> list[int]:
    """The Optuna numbers of a Tune trial's members, or [] for a config that is no WorkOrder."""
    return [int(m["optuna_number"]) for m in config.get("members", [])]


# --- worker -> driver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberReport:
    """One member's metrics at a report."""

    metrics: dict[str, float]  # metric name -> value; eval/* repeat the latest evaluation between evaluations
    eval_step: int = 0  # the step its eval/* values come from (0: none yet)


@dataclass(frozen=True)
class Progress:
    """A report of the members still training."""

    step: int
    members: dict[int, MemberReport]  # member index -> its metrics

    def to_result(self) -> dict[str, Any]:
        members = {k: {**m.metrics, EVAL_STEP: m.eval_step} for k, m in self.members.items()}
        return {MEMBERS: json.dumps(members), STEP: self.step}

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Progress:
        members = {}
        for k, metrics in json.loads(result[MEMBERS]).items():
            eval_step = int(metrics.pop(EVAL_STEP, 0) or 0)
            members[int(k)] = MemberReport(metrics, eval_step)
        return cls(int(result[STEP]), members)


@dataclass(frozen=True)
class Checkpointed:
    """The worker handed Ray Tune a checkpoint holding this step (its folder reaches the driver through
    Tune's checkpoint callback)."""

    step: int

    def to_result(self) -> dict[str, Any]:
        return {STEP: self.step, CHECKPOINT_STEP: self.step}

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Checkpointed:
        return cls(int(result[CHECKPOINT_STEP]))


@dataclass(frozen=True)
class Final:
    """The population's last result: per member, everything the driver stores (outcome, metrics, history,
    images, times), keyed by `TrialAttr` names."""

    step: int
    members: tuple[dict[str, Any], ...]  # in member order

    @property
    def wall_s(self) -> float | None:
        """The population's wall time (its members trained side by side all along), when it was measured."""
        return self.members[0].get(TrialAttr.WALL_S) if self.members else None

    def to_result(self) -> dict[str, Any]:
        return {FINAL: json.dumps({"members": list(self.members)}), STEP: self.step}

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Final:
        return cls(int(result.get(STEP, 0)), tuple(json.loads(result[FINAL])["members"]))


Message = Progress | Checkpointed | Final


def read_result(result: Mapping[str, Any]) -> Message | None:
    """The message a Tune result carries, or None for a result no worker of ours sent."""
    if FINAL in result:
        return Final.from_result(result)
    if CHECKPOINT_STEP in result:
        return Checkpointed.from_result(result)
    if MEMBERS in result:
        return Progress.from_result(result)
    return None


__all__ = [
    "CHECKPOINT_STEP",
    "EVAL_STEP",
    "FINAL",
    "MEMBERS",
    "STEP",
    "Checkpointed",
    "Final",
    "MemberOrder",
    "MemberReport",
    "Message",
    "Progress",
    "WorkOrder",
    "member_numbers",
    "read_result",
]
