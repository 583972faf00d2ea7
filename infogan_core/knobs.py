"""Knob: one TrainConfig field's declaration (meaning, unit, allowed values, the paper's value), and `declare`,
which declares a field with one. config.py declares every field with it; the validation, the documentation and
the JSON Schema read it back. No torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Knob:
    """One TrainConfig field's declaration: what it means and which values it allows."""

    doc: str  # meaning, in words
    unit: str = ""  # e.g. "samples", "steps", "nats"
    low: float | None = None  # smallest allowed value (each element's, for list fields)
    high: float | None = None  # largest allowed value
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False  # high itself is not allowed
    choices: Collection[str] = ()  # the allowed values of a text field (a live registry for `dataset`)
    length: int | None = None  # list fields: the exact number of elements (None: any number)
    paper: str = ""  # the InfoGAN paper's value, as text

    def range_text(self, kind: type) -> str:
        """The allowed interval as written in messages: [2, 4096] or (0.0, 1.0]."""
        low, high = (kind(v) if v is not None else v for v in (self.low, self.high))
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"

    def allows(self, value: float) -> bool:
        """Whether a number lies in the declared range (NaN never does)."""
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below


def _number(text: str) -> float:
    return float(text) if any(c in text for c in ".e") else int(text)


def declare(default: Any, doc: str, unit: str = "", allowed: str | Mapping[str, Any] = "", **declared: Any) -> Any:
    """A field declared once: its default, meaning, unit, and `allowed` values as an interval written
    the way it is documented, "[2, 4096]" or "(0, 1]", as choices "none | norm | value", or as a
    registry whose keys are the choices (a dataset registered later is allowed too)."""
    bounds: dict[str, Any] = {}
    if isinstance(allowed, Mapping):
        bounds = {"choices": allowed}
    elif allowed[:1] in "([" and allowed:
        low, high = (_number(v) for v in allowed[1:-1].split(","))
        bounds = {"low": low, "high": high, "low_open": allowed[0] == "(", "high_open": allowed[-1] == ")"}
    elif allowed:
        bounds = {"choices": tuple(c.strip() for c in allowed.split("|"))}
    return dataclasses.field(default=default, metadata={"knob": Knob(doc, unit=unit, **bounds, **declared)})


__all__ = ["Knob", "declare"]
