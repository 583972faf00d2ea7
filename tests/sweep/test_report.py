"""The report: one document model from the storage, rendered to HTML (Jinja2, autoescaped) and Markdown."""

from __future__ import annotations

import re
import subprocess
import sys

import optuna

from sweep.report import build, render
from sweep.review import trial_note
from sweep.vocab import STATUS_COLOURS, Status

from fakes import BASE, GRID, grid_trials, make_study, stored_study


def test_report_of_a_stored_grid_renders_every_section(tmp_path):
    study = make_study(kind="grid", factors=GRID)
    built = build.build(stored_study(study, grid_trials()))  # no store: no sample images
    assert built.verdict.status == Status.SUPPORTED
    page = render.html(built)
    for text in (
        "SUPPORTED",
        "paired t-test",
        "1 diverged",
        "the same levels of the other factors",
        "p (Holm)",
        "Wilcoxon signed-rank",
        "importance",
        "data:image/png;base64,",
    ):
        assert text in page
    assert STATUS_COLOURS[Status.SUPPORTED] in page  # the verdict's one colour
    assert "<script" not in page and "http://" not in page and "https://" not in page
    md_path = render.write(built, tmp_path / "r.md", fmt="md")
    assert "(r_files/effects.png)" in md_path.read_text()
    assert (tmp_path / "r_files" / "effects.png").stat().st_size > 1000


def test_html_and_markdown_show_the_same_numbers():
    built = build.build(stored_study(make_study(kind="grid", factors=GRID), grid_trials()))
    page, (text, _) = render.html(built), render.markdown(built, "img")
    cells = {cell for table in built.effect_tables for row in table.rows for cell in row.cells if cell}
    assert cells  # the control: there are numbers to find
    for cell in cells:
        assert cell in text.replace("\\|", "|"), cell
        assert cell.replace("<", "&lt;") in page, cell
    for line in built.verdict.lines():
        assert line in text


def test_html_escapes_what_users_wrote():
    study = make_study(kind="grid", factors=GRID, claim="<script>alert(1)</script> & <b>bold</b>")
    page = render.html(build.build(stored_study(study, grid_trials())))
    assert "<script>alert(1)</script>" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert not re.search(r"<script", page)


def test_markdown_table_cells_escape_pipes():
    study = make_study(kind="grid", factors=GRID, description="a | b")
    text, _ = render.markdown(build.build(stored_study(study, grid_trials())), "img")
    rows = [line for line in text.splitlines() if line.startswith("| kind ")]
    assert rows and rows[0].count(" | ") == 1  # the cell's own pipe does not open a new column


def test_report_of_a_study_without_trials():
    study = make_study()
    empty = optuna.create_study(study_name=study.name, direction="maximize")
    empty.set_user_attr("spec", study.model_dump(mode="json"))
    built = build.build(empty)
    assert built.verdict is None and built.effect_tables == []
    assert "No trials yet" in render.html(built)
    assert "No trials yet" in render.markdown(built, "img")[0]


def test_building_a_report_switches_no_matplotlib_backend():
    code = (
        "import sys, matplotlib\n"
        "before = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "import sweep.report.build, sweep.report.render, sweep.report.figures\n"
        "assert dict.__getitem__(matplotlib.rcParams, 'backend') == before\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_metric_with_a_caveat_carries_it_wherever_it_is_shown():
    base = {**BASE, "cont_codes": 2}
    study = make_study(
        kind="grid",
        factors=GRID,
        base=base,
        objectives=["mi/cont"],
        verdict={
            "metric": "mi/cont",
            "factor": "lambda_cat",
            "baseline": 1.0,
            "treatment": 0.0,
            "min_effect": 0.1,
            "direction": "less",
        },
    )
    built = build.build(stored_study(study, grid_trials()))
    caveat = "mi/cont is a lower bound that can be negative"
    assert caveat in built.effect_tables[0].caveat
    assert caveat in render.html(built) and caveat in render.markdown(built, "img")[0]
    frozen = stored_study(study, grid_trials()).get_trials()[0]
    assert caveat in trial_note(study, frozen, {"outcome": "completed", "metrics": {"mi/cont": -0.4}})
    assert caveat not in trial_note(study, frozen, {"outcome": "completed", "metrics": {"mi/cat": 1.2}})
