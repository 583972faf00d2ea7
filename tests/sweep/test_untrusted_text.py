"""Free text a study or a trial carries (a claim, a description, a crash's reason) is shown as text wherever it
appears: the terminal makes control characters visible and never interprets rich markup in it, the HTML
report escapes it, the Markdown report and the dashboard's notes escape Markdown. `sweep validate` refuses
control characters in a study file (test_spec.py); these are what older stored studies or crashes bring."""

from __future__ import annotations

import io
import subprocess
from collections import Counter
from types import SimpleNamespace

import pytest

from sweep import console, terminal
from sweep.report import build, render
from sweep.results import load_results
from sweep.review import study_note, trial_note

from fakes import grid_study, grid_trials, store_design, stored_study
from helpers import SWEEP, sweep_env

CLEAR = "\x1b[2J"  # clears the screen
LINK = "\x1b]8;;http://evil.example\x1b\\click me\x1b]8;;\x1b\\"  # OSC 8: a hyperlink that shows other text
MARKUP = "[bold red]loud[/]"
HTML = "<script>alert(1)</script>"
MD_LINK = "[link](javascript:alert(1))"
EVIL = f"{MARKUP} {CLEAR}{LINK} {HTML} {MD_LINK} \u202e \x07"


@pytest.fixture
def evil_study():
    study = grid_study(claim=EVIL, description=EVIL)
    assert study.claim == EVIL  # the control: the stored definition really holds it
    return study


def _shown_as_text(output: str) -> None:
    assert "\x1b[2J" not in output and "\x1b]8" not in output and "\x07" not in output and "\u202e" not in output
    assert "␛" in output  # made visible, not dropped


def test_the_terminal_shows_markup_and_escape_sequences_as_text(evil_study) -> None:
    buffer = io.StringIO()
    forced = terminal.new_console(file=buffer, force_terminal=True, width=200)  # the tool's, on a colour terminal
    forced.print(EVIL, highlight=False)
    table = terminal.new_table()
    table.add_column("claim")
    table.add_row(EVIL)
    forced.print(table)
    output = buffer.getvalue()
    _shown_as_text(output)
    assert "\x1b[" in output  # rich's own styling still reaches the terminal: only the text was changed
    assert output.count("␛[2J") == 2 and output.count(MARKUP) == 2 and output.count(MD_LINK) == 2  # all of it


def test_a_comparison_prints_a_stored_claim_as_text(evil_study, tmp_path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    url = f"sqlite:///{root / 'sweep.db'}"
    store_design(evil_study, lambda s: {"mi/cat_ratio": 0.5})
    store_design(evil_study, lambda s: {"mi/cat_ratio": 0.5}, storage=url)
    plain = grid_study(name="plain")
    store_design(plain, lambda s: {"mi/cat_ratio": 0.5}, storage=url)
    env = sweep_env(columns=200) | {"FORCE_COLOR": "1"}  # rich writes for a colour terminal
    proc = subprocess.run(
        [SWEEP, "compare", evil_study.name, "plain", "--root", str(root), "--wide"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "click me" in proc.stdout and "[bold red]loud[/]" in proc.stdout  # the claim, markup and all
    _shown_as_text(proc.stdout)


def test_the_html_report_escapes_free_text(evil_study) -> None:
    page = render.html(build.build(stored_study(evil_study, grid_trials())))
    _shown_as_text(page)
    assert HTML not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_markdown_report_and_the_dashboard_notes_escape_markdown(evil_study) -> None:
    stored = stored_study(evil_study, grid_trials())
    text, _ = render.markdown(build.build(stored), "img")
    note = study_note(load_results(stored))
    trial = stored.get_trials()[0]
    crash = trial_note(evil_study, trial, {"outcome": "crashed", "reason": f"RuntimeError: {EVIL}"})
    for markdown in (text, note, crash):
        _shown_as_text(markdown)
        assert MD_LINK not in markdown and "\\[link\\](javascript:alert(1))" in markdown
        assert HTML not in markdown and "\\<script\\>" in markdown


def test_a_crash_reason_in_the_run_summary_is_shown_as_text(monkeypatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(console, "out", terminal.new_console(file=buffer, force_terminal=True, width=200))
    summary = SimpleNamespace(
        failures=Counter({("crashed", f"RuntimeError: {EVIL}"): 1}), crashed_before=Counter(), planned=1, retried=0
    )
    console._print_failures(summary)
    assert "1 x crashed: RuntimeError: [bold red]loud[/]" in buffer.getvalue()  # markup shown, not applied
    _shown_as_text(buffer.getvalue())
