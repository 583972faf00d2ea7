"""Typed errors of the core: one base class, so callers can catch the core's failures alone."""

from __future__ import annotations


class InfoGANError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigError(InfoGANError, ValueError):
    """A TrainConfig field has a value outside what it allows."""


class DataError(InfoGANError):
    """A dataset is missing, corrupt or unknown."""


class CheckpointError(InfoGANError):
    """A saved training state cannot be read (truncated, corrupted, or from another version): the run
    cannot resume from it, and starts over only if its caller says so."""


class DivergedError(InfoGANError):
    """A loss became non-finite; carries the step, the loss name, the history so far and the largest
    gradient norm seen before it."""

    def __init__(
        self, step: int, loss: str, value: float, history: list | None = None, grad_peak: float | None = None
    ) -> None:
        peak = f" (largest gradient norm so far: {grad_peak:.3g})" if grad_peak is not None else ""
        super().__init__(f"training diverged at step {step}: {loss} = {value}{peak}")
        self.step = step
        self.loss = loss
        self.value = value
        self.history = history or []
        self.grad_peak = grad_peak
