"""The one reading of a stored study (`results.load_results`): the same numbers as the analysis computes
from the storage directly, each piece computed once however often it is asked for, and shared by the
report and the study's note."""

from __future__ import annotations

from collections import Counter

import optuna
import pytest

from sweep import analysis, console, review
from sweep.report import build, verdict_text
from sweep.results import load_results
from sweep.vocab import Status

from fakes import grid_study, grid_trials, make_study, stored_study


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """How often the analysis read the trials, built the effect table and decided the verdict."""
    counted: Counter = Counter()
    for name in ("trials_frame", "effects", "verdict"):
        real = getattr(analysis, name)

        def counting(*args, _real=real, _name=name, **kwargs):
            counted[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(analysis, name, counting)
    return counted


def test_the_results_are_the_analysis_of_the_stored_study():
    stored = stored_study(grid_study(), grid_trials())
    results = load_results(stored)
    study = analysis.study_spec(stored)
    frame = analysis.trials_frame(stored)
    assert results.study == study and results.frame.equals(frame)
    assert results.effects.equals(analysis.effects(frame, study, test=study.verdict.test))
    assert repr(results.verdict) == repr(analysis.verdict(frame, study))  # repr: NaN fields compare equal
    assert results.verdict.status == Status.SUPPORTED
    assert results.outcomes == {"completed": 11, "diverged": 1}


def test_each_piece_is_computed_once_however_often_it_is_read(calls):
    results = load_results(stored_study(grid_study(), grid_trials()))
    assert calls == Counter()  # nothing is computed before it is asked for
    for _ in range(3):
        assert results.verdict_once_run is results.verdict and len(results.effects) and results.outcomes
    assert calls == Counter(trials_frame=1, effects=1, verdict=1)


def test_a_study_without_trials_has_a_verdict_waiting_for_its_first_look_but_none_to_report():
    study = make_study()
    empty = optuna.create_study(study_name=study.name, direction="maximize")
    empty.set_user_attr("spec", study.model_dump(mode="json"))
    results = load_results(empty)
    assert results.verdict.status == Status.INCONCLUSIVE
    assert verdict_text.message(results.verdict).startswith("no look taken yet")
    assert results.verdict_once_run is None and results.outcomes == {}
    assert build.build(empty).verdict_note == "No trials yet: the verdict needs finished runs."


def test_the_report_and_the_study_note_share_one_reading(calls):
    built = build.build(stored_study(grid_study(), grid_trials()))
    note = review.study_note(built.results)
    assert calls == Counter(trials_frame=1, effects=1, verdict=1)
    assert f"### Verdict: {built.verdict.status}" in note and built.verdict_text.message in note


def test_the_effects_command_prints_what_it_is_given_without_reading_again(calls, capsys):
    results = load_results(stored_study(grid_study(), grid_trials()))
    results.effects, results.verdict  # noqa: B018  # read before printing
    console.print_effects(results)
    text = capsys.readouterr().out
    assert calls == Counter(trials_frame=1, effects=1, verdict=1)
    assert "Verdict: SUPPORTED: " + verdict_text.message(results.verdict)[:40] in " ".join(text.split())
