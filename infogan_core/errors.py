"""Typed errors of the core: one base class, so callers can catch the core's failures alone."""

from __future__ import annotations


class InfoGANError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigError(InfoGANError, ValueError):
    """A TrainConfig field has a value outside what it allows."""


class DataError(InfoGANError):
    """A dataset is missing, corrupt or unknown."""


class DivergedError(InfoGANError):
    """A loss became non-finite; carries the step, the loss name and the history so far."""

    def __init__(self, step: int, loss: str, value: float, history: list | None = None) -> None:
        super().__init__(f"training diverged at step {step}: {loss} = {value}")
        self.step = step
        self.loss = loss
        self.value = value
        self.history = history or []
