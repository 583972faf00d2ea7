"""optuna-dashboard's study page in time linear in the trials: its per-trial lookups, indexed.

The dashboard keeps trial notes (and its own old-style artifacts) among the study's system attributes,
and its serializer finds a trial's by scanning every study attribute, once for the note and once for the
artifacts, for every trial of the page: O(trials x notes), 5.6 s for 2,000 noted trials here. `install()`
gives the serializer the same two functions over an index of those attributes by trial, built once per
page (the serializer passes one dictionary for all its trials): each trial's lookup then reads only its own
keys, and returns what the dashboard's function returns on them, since it is that function, on them.

These are optuna-dashboard internals (0.21: `_serializer.note`, `_serializer.list_trial_artifacts`);
where they are not as expected, nothing is patched and the page is as fast as the dashboard makes it.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "dashboard:"  # every attribute the dashboard keeps per trial: dashboard:<trial id>:note_ver, ...
ARTIFACTS = "dashboard:artifacts:"  # ... and dashboard:artifacts:<trial id>:<artifact id>


def trial_of(key: str) -> int | None:
    """The trial a study attribute of the dashboard's belongs to, or None (the study's own note, others)."""
    if not key.startswith(PREFIX):
        return None
    rest = key[len(ARTIFACTS) :] if key.startswith(ARTIFACTS) else key[len(PREFIX) :]
    head = rest.split(":", 1)[0]
    return int(head) if head.isdigit() else None


class _Index:
    """The study attributes of one page, grouped by trial: built the first time a dictionary is asked about,
    kept while the serializer asks about the same dictionary."""

    def __init__(self) -> None:
        self.attrs: dict[str, Any] | None = None
        self.by_trial: dict[int, dict[str, Any]] = {}

    def of(self, attrs: dict[str, Any], trial_id: int) -> dict[str, Any]:
        if self.attrs is not attrs:
            groups: dict[int, dict[str, Any]] = {}
            for key, value in attrs.items():
                owner = trial_of(key)
                if owner is not None:
                    groups.setdefault(owner, {})[key] = value
            self.attrs, self.by_trial = attrs, groups
        return self.by_trial.get(trial_id, {})


def indexed(note_module: types.ModuleType, list_trial_artifacts: Callable) -> tuple[object, Callable]:
    """The serializer's `note` module and `list_trial_artifacts`, each reading a trial's own attributes."""
    index = _Index()
    get_note = note_module.get_note_from_system_attrs

    class Note(types.ModuleType):  # the note module, with its per-trial lookup indexed
        def __getattr__(self, name: str) -> Any:
            return getattr(note_module, name)

        @staticmethod
        def get_note_from_system_attrs(system_attrs: dict[str, Any], trial_id: int | None) -> Any:
            if trial_id is None:  # the study's own note
                return get_note(system_attrs, None)
            return get_note(index.of(system_attrs, trial_id), trial_id)

    def artifacts(study_system_attrs: dict[str, Any], trial_system_attrs: dict[str, Any], trial: Any) -> Any:
        return list_trial_artifacts(index.of(study_system_attrs, trial._trial_id), trial_system_attrs, trial)

    return Note(note_module.__name__), artifacts


def install() -> bool:
    """Index the dashboard serializer's per-trial lookups (once per process); whether it did."""
    try:
        from optuna_dashboard import _serializer  # lazy: only a process that serves the dashboard patches it
    except ImportError:
        return False
    if getattr(_serializer, "_sweep_indexed", False):
        return True
    note = getattr(_serializer, "note", None)
    listing = getattr(_serializer, "list_trial_artifacts", None)
    if not isinstance(note, types.ModuleType) or not hasattr(note, "get_note_from_system_attrs") or listing is None:
        log.debug("optuna-dashboard's serializer is not as expected: its lookups stay as they are")
        return False
    _serializer.note, _serializer.list_trial_artifacts = indexed(note, listing)
    _serializer._sweep_indexed = True
    return True


__all__ = ["install", "indexed", "trial_of"]
