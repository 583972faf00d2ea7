"""`sweep show --effects` and `sweep report` / `sweep dashboard` errors, through the CLI."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_show_effects_prints_the_table_and_the_verdict(review_study, sweep):
    proc = sweep("show", review_study.name, "--effects", "--root", str(review_study.root))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in ("review: mi/cat_ratio (maximize)", "review: loss/g (minimize)", "mean [95% CI]",
                 "lambda_cat=0.0", "dataset=mnist", "3 crashed", "baseline", "Welch's t-test", "Verdict:"):  # fmt: skip
        assert text in out, text


@pytest.mark.parametrize("command", ["report", "dashboard"])
def test_unknown_study_is_one_line_naming_the_stored_ones(review_study, sweep_main, command):
    code, _, err = sweep_main(command, "no-such-study", "--root", str(review_study.root))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "no study named 'no-such-study'" in lines[0] and "review" in lines[0]


def test_report_refuses_an_unknown_format(review_study, sweep_main, tmp_path):
    code, _, err = sweep_main("report", review_study.name, "--root", str(review_study.root), "--format", "pdf",
                              cwd=tmp_path)  # fmt: skip
    assert code == 1
    assert err.strip().splitlines() == ["error: --format must be html or md, but got 'pdf'"]
