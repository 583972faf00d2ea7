"""The tool's vocabulary, each term defined once: trial outcomes, verdicts, their order and colours,
and how numbers are written in the terminal, notes and reports.

Imports nothing heavy, so every layer (storage, analysis, console, report) can share it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from enum import Enum
from typing import Any


class Outcome(str, Enum):
    """How a trial ended, as stored in its `outcome` attribute."""

    COMPLETED = "completed"  # trained to the end; its objectives are its values
    PRUNED = "pruned"  # stopped early by the scheduler (ASHA)
    DIVERGED = "diverged"  # a loss or an objective became non-finite: a measured outcome of its configuration
    CRASHED = "crashed"  # the trial failed for a reason outside training (an error, a lost worker)
    INTERRUPTED = "interrupted"  # the driver stopped while it ran; its pair is run again

    def __str__(self) -> str:
        return self.value


FINISHED = (Outcome.COMPLETED, Outcome.PRUNED, Outcome.DIVERGED, Outcome.CRASHED)  # never run again
NOT_FINISHED = (Outcome.PRUNED, Outcome.DIVERGED, Outcome.CRASHED)  # counted at a level, not averaged


class Status(str, Enum):
    """A verdict on a study's claim, read off the effect's confidence interval."""

    SUPPORTED = "SUPPORTED"  # the interval lies beyond 0 in the claimed direction
    CONTRADICTED = "CONTRADICTED"  # it lies beyond 0 in the other direction
    NO_EFFECT = "NO EFFECT"  # it lies inside +-min_effect (equivalence: two one-sided tests)
    INCONCLUSIVE = "INCONCLUSIVE"  # none of these: the study cannot tell yet

    def __str__(self) -> str:
        return self.value


class Size(str, Enum):
    """How a decided effect compares with the rule's min_effect, read off the deciding interval."""

    AT_LEAST = "at least min_effect"  # the interval lies beyond min_effect: an effect that matters
    MAY_BE_SMALLER = "may be smaller than min_effect"  # the interval reaches inside +-min_effect
    SMALLER = "smaller than min_effect"  # the interval lies inside +-min_effect: real, but too small to matter

    def __str__(self) -> str:
        return self.value


DECISIVE = (Status.SUPPORTED, Status.CONTRADICTED, Status.NO_EFFECT)  # verdicts that end a sequential study

# one colour per verdict, for the terminal (rich accepts hex) and the report alike
STATUS_COLOURS: dict[Status, str] = {
    Status.SUPPORTED: "#2e7d32",
    Status.CONTRADICTED: "#c62828",
    Status.NO_EFFECT: "#1f5fa8",
    Status.INCONCLUSIVE: "#b7791f",
}

TRACKERS = ("tensorboard", "mlflow", "wandb")  # what a study's `tracking:` and `sweep run --track` may name

MISSING = "-"  # how a value that does not exist is written, everywhere


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def num(value: Any, digits: int = 4) -> str:
    """A number with `digits` significant digits; infinities as inf; missing values as MISSING."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def signed(value: Any) -> str:
    """A difference, with its sign: +0.12, -3."""
    text = num(value)
    return "+" + text if not is_missing(value) and value > 0 else text


def p_value(p: Any) -> str:
    if is_missing(p):
        return MISSING
    return "<0.0001" if p < 1e-4 else f"{p:.3g}"


def interval(low: Any, high: Any) -> str:
    """[low, high], or MISSING when the interval does not exist (fewer than 2 runs)."""
    return MISSING if is_missing(low) or is_missing(high) else f"[{num(low)}, {num(high)}]"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")


def masked(text: str) -> str:
    """`text` with the password of every URL in it hidden: postgresql://user:***@host/db. Applied to
    everything that may show a storage URL: errors, titles, suggested commands."""
    return _CREDENTIALS.sub(r"\1***@", text)


def seed_range(seeds: list[int]) -> str:
    """'0..11' for three or more consecutive seeds, else the list: '3, 7'."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}..{seeds[-1]}"
    return ", ".join(map(str, seeds))


# bidirectional embeddings, overrides and isolates: text that displays in another order than it reads
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_character(text: str) -> str | None:
    """The first character of `text` a terminal or a page could act on instead of showing (an escape
    sequence's ESC, a bell, a carriage return, a bidirectional override), as U+XXXX; None when it has none.
    Line feeds and tabs are text."""
    for ch in text:
        if ch in BIDI_CONTROLS or (unicodedata.category(ch) == "Cc" and ch not in "\n\t"):
            return f"U+{ord(ch):04X}"
    return None


def visible(text: str) -> str:
    """`text` with every control character (see `control_character`) shown as a symbol of one column
    instead of acting: ESC as U+241B, the other C0 codes as their control pictures, the rest as U+FFFD.
    Line feeds and tabs stay."""
    if control_character(text) is None:
        return text
    return "".join(_picture(ch) if control_character(ch) else ch for ch in text)


def _picture(ch: str) -> str:
    code = ord(ch)
    return chr(0x2400 + code) if code < 0x20 else "\u2421" if code == 0x7F else "\ufffd"


MARKDOWN_SPECIAL = "\\`*_[]<>|#"  # what Markdown could read as a link, an image, raw HTML, a table or a heading


def markdown_text(text: str) -> str:
    """Free text as Markdown that renders as the same text: control characters made visible, Markdown's
    special characters escaped (so a claim cannot become a link, an image, raw HTML or a table cell), one
    line."""
    text = visible(str(text)).replace("\n", " ")
    return "".join("\\" + ch if ch in MARKDOWN_SPECIAL else ch for ch in text)


def counts(tally: dict[Any, int], order: tuple = tuple(Outcome)) -> str:
    """'3 completed, 1 diverged': non-zero counts in the given order, then any others."""
    keys = [k for k in order if tally.get(k)] + [k for k in tally if k not in order and tally[k]]
    return ", ".join(f"{tally[k]} {k}" for k in keys) or "none"


__all__ = [
    "DECISIVE",
    "FINISHED",
    "MISSING",
    "NOT_FINISHED",
    "STATUS_COLOURS",
    "Size",
    "Outcome",
    "Status",
    "control_character",
    "counts",
    "duration",
    "interval",
    "is_missing",
    "markdown_text",
    "masked",
    "num",
    "p_value",
    "seed_range",
    "signed",
    "visible",
]
