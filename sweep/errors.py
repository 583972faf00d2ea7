"""The sweep layer's errors: one base class, and below it the study's own.

Messages speak the library's vocabulary (study names, keys, fields); the CLI adds what to type next.
"""

from __future__ import annotations


class SweepError(Exception):
    """Base of every error the sweep layer raises on purpose; the CLI prints it as one line."""


class StudyError(SweepError):
    """A study file (or a study in the storage) is invalid or conflicts with what is stored."""


class DefinitionConflictError(StudyError):
    """The study's name is stored with a definition that gives its trials another meaning."""


class SeedPlanConflictError(DefinitionConflictError):
    """New seeds for a study whose verdict was already seen at fewer (optional stopping)."""


class AddressInUseError(SweepError):
    """A server could not listen on the address it was given."""


class TooManyTrialsError(StudyError):
    """A study has more trials than its run allows (a limit that keeps a typo from queueing millions)."""


class StudyBusyError(StudyError):
    """Another driver holds the study's lease: it is running the study now."""


class CrashedTrialsError(SweepError):
    """A run ended with trials that crashed: they have no measured outcome, so the study is incomplete."""
