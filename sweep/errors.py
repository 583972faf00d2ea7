"""The sweep layer's errors: one base class, and below it study-file and trial errors."""

from __future__ import annotations


class SweepError(Exception):
    """Base of every error the sweep layer raises on purpose; the CLI prints it as one line."""


class StudyError(SweepError):
    """A study file (or a study in the storage) is invalid or conflicts with what is stored."""


class TrialError(SweepError):
    """A trial could not be run."""
