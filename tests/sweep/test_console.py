"""What the terminal shows, through the real console script at 80 columns: every table fits, nothing is cut
with an ellipsis, and what a user needs is there; `--wide` adds the details. Live progress on a terminal and
plain progress lines elsewhere."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from sweep import analysis, console, spec
from sweep.claims import claim_rows
from sweep.compare import compare
from sweep.report.tables import effect_tables
from sweep.runner import Tracker, TrialProgress
from sweep.store import open_store
from sweep.vocab import num

from helpers import STUDIES_V1, run_sweep

STUDIES = STUDIES_V1  # the definitions the `stored` fixture was built from
WIDTH = 80


def at_80(*args: str, cwd: Path | None = None) -> str:
    """`sweep ARGS` at COLUMNS=80: it succeeds, no line is longer than 80 characters and nothing is cut with
    an ellipsis; returns stdout and stderr together."""
    proc = run_sweep(*args, cwd=cwd, columns=WIDTH, timeout=180)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout + proc.stderr
    too_long = [line for line in text.splitlines() if len(line) > WIDTH]
    assert not too_long, "\n".join(too_long)
    assert "…" not in text and "..." not in text.replace("..", "").replace("0..", ""), text
    return text


def flat(text: str) -> str:
    """Text with every run of whitespace as one space: a sentence wrapped over lines reads as one."""
    return " ".join(text.split())


def flat_lines(text: str) -> str:
    """Each line with every run of whitespace as one space: a table row as its cells in order."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def test_list_fits_80_columns(stored):
    text = at_80("list", "--root", str(stored))
    counts = {name: spec.load(STUDIES / f"{name}.yaml").trial_count for name in ("balance", "search", "batchnorm")}
    for name, trials in {**counts, "balance-rep1": counts["balance"]}.items():
        assert re.search(rf"^{re.escape(name)}\s+\w+\s+{trials}\s", text, re.MULTILINE), (name, text)
    assert "13 completed, 1 diverged, 1 crashed" in flat(text)


def test_show_fits_80_columns_and_says_why_a_trial_failed(stored):
    text = at_80("show", "balance", "--root", str(stored))
    study = analysis.trials_frame(spec_study(stored, "balance"))
    for _, row in study.iterrows():
        line = f"{row['number']} {row['config_id']} {row['seed']} {row['outcome']}"
        if row["outcome"] == "completed":
            line += f" {num(row['eval/fd'])} {num(row['eval/cat_acc'])}"
        assert line in flat(text), line
    assert "crashed: DataError: no files for lr_ratio=5.0 in data_dir" in flat(text)
    wide = run_sweep("show", "balance", "--wide", "--root", str(stored), columns=WIDTH).stdout
    assert re.search(r"d_width\s+g_width\s+lr_ratio", wide) and "wall s" in wide  # the details


def test_show_of_a_search_with_twelve_parameters_fits_80_columns(stored):
    text = at_80("show", "search", "--root", str(stored))
    assert "search-0023" in text and "eval/fd" in text and "mi/cat_ratio" in text
    wide = run_sweep("show", "search", "--wide", "--root", str(stored), columns=WIDTH).stdout
    assert all(name in wide for name in spec.load(STUDIES / "search.yaml").space)


@pytest.mark.parametrize("name", ["balance", "batchnorm", "search"])
def test_effects_fit_80_columns_with_every_level_difference_and_interval(stored, name):
    text = at_80("show", name, "--effects", "--root", str(stored))
    optuna_study = spec_study(stored, name)
    study = analysis.study_spec(optuna_study)
    tables = effect_tables(analysis.effects(analysis.trials_frame(optuna_study), study), study)
    assert tables  # the control: there are rows to find
    for t in tables:
        assert f"{name}: {t.metric} ({t.direction})" in text
        for row in t.rows:
            if row.stratum:  # within one block of the other factors: --wide shows those
                assert "combination of the other factors" in flat(text)
                continue
            c = dict(zip(t.headers, row.cells, strict=True))
            expected = f"{row.label} {c['finished']}/{c['runs']} {c['mean']}"
            if study.kind == "search":  # means only: a sampler's levels are no controlled comparison
                expected += f" {c['95% CI']}"
            elif not row.reference:
                expected += f" {c[t.diff_header]} {c['95% CI of diff']} {c['p (Holm)']}"
            elif c["factor"] != "base":  # a grid factor's reference level (an ablation's base row says it)
                expected += " (reference)"
            assert re.search(rf"^{re.escape(expected)}$", flat_lines(text), re.MULTILINE), expected
    assert ("Verdict:" in text) == (name != "search")
    if name == "balance":
        assert text.count("\nbase ") == 2  # the ablation's base row once per objective, not once per factor
        assert "lr_ratio=5.0: 1 crashed" in text and "g_width=1.0: 1 diverged" in flat(text)
    wide = run_sweep("show", name, "--effects", "--wide", "--root", str(stored), columns=WIDTH).stdout
    if name != "search":
        assert "effect size" in wide and "95% CI of diff" in wide and "Holm's step-down method" in flat(wide)


def test_claims_fit_80_columns_with_each_claim_and_verdict(stored):
    text = at_80("claims", "--studies", str(STUDIES), "--root", str(stored))
    rows = claim_rows(STUDIES, open_store(stored))
    assert len(rows) == len(list(STUDIES.glob("*.yaml")))
    for row in rows:
        assert flat(row["claim"]) in flat(text), row["claim"]
        assert re.search(rf"^{re.escape(row['study'])}\s+{re.escape(str(row['verdict']))}", text, re.MULTILINE)
    balance = next(r for r in rows if r["study"] == "balance")
    assert balance["verdict"] == "SUPPORTED" and flat(balance["summary"]) in flat(text)
    assert re.search(r"^\s+balance-rep1\s+SUPPORTED", text, re.MULTILINE)
    assert len(text.splitlines()) < 60  # not the 130 lines it was
    wide = run_sweep("claims", "--studies", str(STUDIES), "--wide", "--root", str(stored), columns=WIDTH).stdout
    assert "default cost" in wide and "15 trials x 800 steps" in wide


def test_compare_fits_80_columns_with_both_verdicts_and_every_effect(stored):
    text = at_80("compare", "balance", "balance-rep1", "--root", str(stored))
    c = compare(spec_study(stored, "balance"), spec_study(stored, "balance-rep1"))
    assert re.search(r"^seeds +3 +\[10000,10001,10002\]$", flat_lines(text), re.MULTILINE)
    assert re.search(r"^A: balance SUPPORTED effect ", flat_lines(text), re.MULTILINE)
    assert re.search(r"^B: balance-rep1 SUPPORTED effect ", flat_lines(text), re.MULTILINE)
    for pair in c.effects:
        cells = [
            f"mean {row['mean']}" if pair.reference else f"{row[side.diff_header]} {row['95% CI of diff']}"
            for row, side in ((pair.a, c.a), (pair.b, c.b))
        ]
        assert f"{pair.label} {cells[0]} {cells[1]}" in flat_lines(text), pair
    assert "Both ran on the same code: sweep 0.1.0, git 0123456789ab (clean)" in text
    wide = run_sweep("compare", "balance", "balance-rep1", "--wide", "--root", str(stored), columns=WIDTH).stdout
    assert "A: p (Holm)" in wide


@pytest.mark.parametrize("study", ["balance", "batchnorm", "search", "paper_fig1"])
def test_the_dry_run_plan_fits_80_columns(study, tmp_path):
    text = at_80("run", str(STUDIES / f"{study}.yaml"), "--dry-run")
    loaded = spec.load(STUDIES / f"{study}.yaml")
    assert f"{loaded.trial_count} trials" in text
    if loaded.kind == "search":
        assert all(name in text for name in loaded.space)
    else:
        for config_id in dict.fromkeys(t.config_id for t in spec.expand(loaded)):
            assert config_id in flat(text), config_id
        wide = run_sweep("run", str(STUDIES / f"{study}.yaml"), "--dry-run", "--wide", columns=WIDTH).stdout
        shown = spec.expand(loaded)[: console.PLAN_ROWS]  # a screenful, then the total
        assert all(re.search(rf"^{t.index}\s+", wide, re.MULTILINE) for t in shown)
        if loaded.trial_count > console.PLAN_ROWS:
            assert f"more: {loaded.trial_count} trials in all" in wide


@pytest.mark.slow
def test_train_with_the_default_architecture_fits_80_columns(tmp_path):
    # the issue's command: no arch given on 2-D data picks the MLP, and the metrics table fits
    text = at_80("train", "--set", "dataset=ring8", "--set", "steps=300", "--image-dir", str(tmp_path))
    assert "Final metrics after 300 steps" in text and re.search(r"^eval/modes\s+\d", text, re.MULTILINE)
    assert re.search(r"step 300/300: loss/d", text)  # the plain progress line of a run that is not on a terminal
    assert (tmp_path / "scatter.png").is_file()


def test_train_refuses_a_bad_configuration_before_drawing_anything(tmp_path):
    proc = run_sweep("train", "--set", "dataset=ring8", "--set", "arch=conv", columns=WIDTH)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: `arch` must be mlp"), proc.stderr


@pytest.mark.slow
def test_a_run_into_a_log_prints_progress_lines_and_a_summary_that_fit_80_columns(tiny_study, tmp_path):
    # not a terminal (CI, a log file): a line as each trial ends and the study's standing, not silence
    text = at_80("run", tiny_study.name, "--root", "runs", cwd=tiny_study.parent)
    for config_id in ("base", "d_batchnorm=separate"):  # each configuration's two seeds, as one population
        assert re.search(rf"trial 2 pairs: {config_id} seeds 0, 1: 2 completed in [\d.]+ s\s+\(\d/4 finished\)", text)
    assert re.search(r"trials 4/4: 0 running, 4 completed", text)
    assert re.search(r"^tiny: 4 trials in [\d.]+ s$", text, re.MULTILINE)
    assert re.search(r"^ +4 +0 +0 +0 +0$", text, re.MULTILINE)  # completed, pruned, failed, stored, rerun
    assert re.search(r"^  sweep show tiny --root runs +# trials, configurations, metrics$", text, re.MULTILINE)


# --- progress ------------------------------------------------------------------------------------


def _tracker() -> Tracker:
    tracker = Tracker(total=6, done=2, failed=1, started={"a", "b"})
    tracker.trials = {
        "a": TrialProgress("d_width=1.0 seed 2", 800, step=300),
        "b": TrialProgress("lr_ratio=5.0 seed 0", 800, step=150),
        "c": TrialProgress("base seed 0", 800, step=800, outcome="completed", seconds=34.0),
    }
    return tracker


def test_progress_on_a_terminal_shows_each_running_trials_step_out_of_its_total():
    screen = io.StringIO()
    view = console.ProgressView(
        spec.load(STUDIES / "balance.yaml"), console=Console(file=screen, force_terminal=True, width=WIDTH)
    )
    view(_tracker())
    view.bars.stop()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # without the terminal's escape codes
    assert "300/800 steps d_width=1.0 seed 2" in text and "150/800 steps lr_ratio=5.0 seed 0" in text
    assert re.search(r"3/6 +trials", text) and "2 running, 2 completed, 1 failed" in text
    assert "base seed 0" not in text  # it ended: no bar
    assert "0/6" not in text  # nothing drawn before the numbers were there


def test_progress_elsewhere_is_a_plain_line_at_an_interval_and_at_each_trials_end():
    log = io.StringIO()
    now = [100.0]
    view = console.ProgressView(
        spec.load(STUDIES / "balance.yaml"),
        console=Console(file=log, force_terminal=False, width=WIDTH),
        interval=15,
        clock=lambda: now[0],
    )
    tracker = _tracker()
    tracker.ended = [tracker.trials["c"]]
    view(tracker)  # the first line, and the trial that ended
    now[0] += 5
    view(tracker)  # too soon for another line
    lines = log.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].endswith("trial base seed 0: completed in 34.0 s (3/6 finished)")
    assert lines[1].endswith(" trials 3/6: 2 running, 2 completed, 1 failed; ~0.0 s left")
    assert lines[2].endswith("  d_width=1.0 seed 2: step 300/800")
    now[0] += 10
    tracker.trials["a"].step = 450
    view(tracker)  # 15 s after the first line: the next one
    assert log.getvalue().splitlines()[-2].endswith("  d_width=1.0 seed 2: step 450/800")
    tracker.done, tracker.started = 5, set()
    for tid in ("a", "b"):
        tracker.trials[tid].outcome = "completed"
    tracker.ended += [tracker.trials["a"], tracker.trials["b"]]
    view(tracker)
    view(tracker)  # the last line once, however often the display is called after the end
    tail = log.getvalue().splitlines()[-3:]
    assert "trial d_width=1.0 seed 2: completed" in tail[0] and "trials 6/6: 0 running, 5 completed" in tail[2]
    assert log.getvalue().count("trials 6/6") == 1


def spec_study(root: Path, name: str):
    return open_store(root).load_study(name)


def test_train_progress_draws_nothing_before_the_first_step_and_then_the_step_and_metrics():
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=WIDTH)
    with pytest.raises(RuntimeError), console.TrainProgress(300, console=terminal):
        raise RuntimeError("no data")  # a run that fails before its first step (missing files, say)
    assert screen.getvalue() == ""
    with console.TrainProgress(300, console=terminal) as progress:
        progress(50, {"loss/d": 1.3712, "loss/g": 0.7, "eval/modes": 6.0, "grad/d": 2.0})
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert re.search(r"50/300 +steps", text) and "loss/d 1.37, loss/g 0.7, eval/modes 6" in text
    assert "grad/d" not in text  # the key metrics only
