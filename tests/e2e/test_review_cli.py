"""`sweep show --effects` and `sweep report` / `sweep dashboard` errors, through the CLI."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_show_effects_prints_the_table_and_the_verdict(review_study, sweep):
    proc = sweep("show", review_study.name, "--effects", "--root", str(review_study.root))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in (
        "review: mi/cat_ratio (maximize)",
        "review: loss/g (minimize)",
        "diff [95% CI]",
        "lambda_cat=0.0",
        "dataset=fashion-mnist: 3 crashed",
        "baseline",
        "paired t-test",
        "p (Holm)",
        "minimum detectable effect",
        "Verdict:",
    ):
        assert text in out, text
    wide = sweep("show", review_study.name, "--effects", "--wide", "--root", str(review_study.root)).stdout
    for text in ("95% CI of diff", "effect size", "not finished", "3 crashed", "Holm's step-down method"):
        assert text in wide, text


@pytest.mark.parametrize("command", ["report", "dashboard"])
def test_unknown_study_is_one_line_naming_the_stored_ones(review_study, sweep_main, command):
    code, _, err = sweep_main(command, "no-such-study", "--root", str(review_study.root))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "no study named 'no-such-study'" in lines[0] and "review" in lines[0]


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (("report", "review", "--format", "pdf"), "'html', 'md'"),
        (("export", "review", "--format", "xlsx"), "'csv', 'json'"),
    ],
    ids=["report", "export"],
)
def test_an_unknown_format_is_a_usage_error(args, choices, review_study, sweep_main, tmp_path):
    code, _, err = sweep_main(*args, "--root", str(review_study.root), cwd=tmp_path)
    assert code == 2  # Typer validates the choice: a usage error, before any work
    assert "Invalid value for '--format'" in err and choices in err, err
    assert list(tmp_path.iterdir()) == []  # nothing written
