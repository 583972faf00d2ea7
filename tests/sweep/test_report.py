"""The report: one document model from the storage, rendered to HTML (Jinja2, autoescaped) and Markdown."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import optuna

from sweep import analysis, spec
from sweep.core import METRICS, caveats
from sweep.report import build, render
from sweep.review import trial_note
from sweep.vocab import STATUS_COLOURS, Status

from fakes import BASE, GRID, PROVENANCE, draw, grid_study, grid_trials, make_study, store_design, stored_study
from helpers import REPO, STUDIES_V1


def test_report_of_a_stored_grid_renders_every_section(tmp_path):
    study = grid_study()
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
    built = build.build(stored_study(grid_study(), grid_trials()))
    page, (text, _) = render.html(built), render.markdown(built, "img")
    cells = {cell for table in built.effect_tables for row in table.rows for cell in row.cells if cell}
    assert cells  # the control: there are numbers to find
    for cell in cells:
        assert cell in text.replace("\\|", "|"), cell
        assert cell.replace("<", "&lt;") in page, cell
    for line in built.verdict_text.lines:
        assert line in text


def test_html_escapes_what_users_wrote():
    study = grid_study(claim="<script>alert(1)</script> & <b>bold</b>")
    page = render.html(build.build(stored_study(study, grid_trials())))
    assert "<script>alert(1)</script>" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert not re.search(r"<script", page)


def test_markdown_table_cells_escape_pipes():
    study = grid_study(description="a | b")
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


def test_a_caveat_several_metrics_share_is_shown_once():
    shared = METRICS["eval/precision"].caveat
    assert shared and METRICS["eval/recall"].caveat == METRICS["eval/coverage"].caveat == shared
    lines = caveats(["eval/precision", "eval/recall", "eval/coverage", "mi/cont"])
    assert lines == [shared, METRICS["mi/cont"].caveat]


# --- search and multi-objective studies, provenance -------------------------------------------------


def _search_study(seeds: int = 2):
    study = spec.load(REPO / "studies" / "search.yaml").model_copy(update={"seeds": seeds, "trials": 8})
    rng = np.random.default_rng(3)
    configs = [{name: draw(d, rng) for name, d in study.space.items()} for _ in range(study.trials)]
    stored = store_design(
        study, lambda s: {"eval/fd": 30 + 40 * rng.random(), "mi/cat_ratio": rng.random()}, searched=configs
    )
    return study, stored


def test_a_search_report_has_its_pareto_front_top_configurations_parallel_coordinates_and_importance(tmp_path):
    study, stored = _search_study()
    built = build.build(stored)
    assert built.pareto is not None and built.pareto.png.startswith(b"\x89PNG")
    assert [p.name for p in built.parallel] == ["parallel-eval_fd.png", "parallel-mi_cat_ratio.png"]
    assert [p.name for p in built.importance_figures] == ["importance-eval_fd.png", "importance-mi_cat_ratio.png"]
    # each configuration's means over its seeds: the Pareto table is exactly the non-dominated ones
    frame = analysis.trials_frame(stored)
    means = frame.groupby("config_id")[["eval/fd", "mi/cat_ratio"]].mean()
    cost = np.column_stack([means["eval/fd"], -means["mi/cat_ratio"]])
    front = {
        cid for cid, c in zip(means.index, cost, strict=True) if not any((o <= c).all() and (o < c).any() for o in cost)
    }
    assert {row[0] for row in built.pareto_table.rows} == front and front
    # the top configurations by each objective, best first, with their interval over the two seeds
    by_fd, by_mi = built.top
    assert [row[0] for row in by_fd.rows] == list(means["eval/fd"].sort_values().index[:5])
    assert [row[0] for row in by_mi.rows] == list(means["mi/cat_ratio"].sort_values(ascending=False).index[:5])
    assert all(re.fullmatch(r"\S+ \[\S+, \S+\]", row[3]) for row in by_fd.rows)  # mean [95% CI]
    assert "lr_g=" in by_fd.rows[0][1] and by_fd.rows[0][2] == "2"
    page = render.html(built)
    sections = ["<h2>Pareto front</h2>", "<h2>Search</h2>", "Top configurations by eval/fd (minimize)"]
    for text in [*sections, "Parallel coordinates: mi/cat_ratio", "Parameter importance: eval/fd"]:
        assert text in page, text
    # importances over the 8 configurations (not the 16 runs), each with its bootstrap interval
    assert [len(t) for t in analysis.configuration_trials(stored, study).values()] == [8, 8]
    scores = built.importance[0].scores
    assert scores and all(0 <= v.low <= v.high <= 1 for v in scores.values())  # percentiles: may miss the estimate
    name, value = next(iter(scores.items()))
    assert f"<td>[{value.low:.3f}, {value.high:.3f}]</td>" in page and "<th>95% interval</th>" in page
    path = render.write(built, tmp_path / "s.md", fmt="md")
    assert "(s_files/pareto-front.png)" in path.read_text()
    assert (tmp_path / "s_files" / "parallel-eval_fd.png").stat().st_size > 1000


def test_a_multi_objective_ablation_gets_a_pareto_section_and_its_base_row_once():
    study = spec.load(STUDIES_V1 / "balance.yaml")
    rng = np.random.default_rng(0)
    stored = store_design(study, lambda s: {"eval/fd": 40 + rng.normal(), "eval/cat_acc": 0.6 + 0.01 * rng.normal()})
    built = build.build(stored)
    assert built.pareto is not None and built.pareto_table.rows and built.top == [] and built.parallel == []
    page = render.html(built)
    assert "<h2>Pareto front</h2>" in page and "<h2>Search</h2>" not in page
    for table in built.effect_tables:  # one base row per objective, not one per factor
        references = [r for r in table.rows if r.reference]
        assert len(references) == 1 and references[0].cells[:2] == ["base", "d_width=0.25, g_width=0.25, lr_ratio=0.2"]
        assert [r.label for r in table.rows] == ["base", "d_width=1.0", "g_width=1.0", "lr_ratio=1.0", "lr_ratio=5.0"]


def test_a_single_objective_study_has_no_pareto_section():
    built = build.build(stored_study(grid_study(), grid_trials()))
    assert built.pareto is None and built.pareto_table is None
    assert "Pareto front" not in render.html(built)


def test_optuna_plots_leave_the_callers_matplotlib_as_it_was():
    # Optuna's plots use pyplot and switch to the ggplot style: the report must leave neither behind
    code = (
        "import sys, matplotlib\n"
        f"sys.path[:0] = [{str(REPO / 'tests' / 'sweep')!r}, {str(REPO / 'tests')!r}]\n"
        "matplotlib.use('pdf')  # the caller's own choice\n"
        "before = {k: v for k, v in matplotlib.rcParams.items()}\n"
        "from test_report import _search_study\n"
        "from sweep.report import build\n"
        "built = build.build(_search_study()[1])\n"
        "assert built.pareto is not None and built.parallel, 'the control: Optuna drew'\n"
        "import matplotlib.pyplot as plt\n"
        "assert plt.get_fignums() == [], plt.get_fignums()\n"
        "assert matplotlib.get_backend() == 'pdf', matplotlib.get_backend()\n"
        "changed = sorted(k for k, v in matplotlib.rcParams.items() if str(before.get(k)) != str(v))\n"
        "assert not changed, changed\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_report_says_what_the_trials_ran_on():
    study = spec.load(STUDIES_V1 / "balance.yaml")
    one = store_design(study, lambda s: {"eval/fd": 40.0 + s.seed, "eval/cat_acc": 0.6})
    rows = dict(build.build(one).summary)
    assert rows["trials ran on: code"] == "sweep 0.1.0, git 0123456789ab (clean)"
    assert rows["trials ran on: libraries"] == "torch 2.13.0, optuna 5.0.0, ray 2.60.0, Python 3.11.7"
    assert rows["trials ran on: device"] == "CPU Test CPU @ 2.00GHz, 1 thread"
    assert rows["latest run's driver"].startswith("sweep 0.1.0, git 0123456789ab (clean); torch 2.13.0")
    # a study resumed on new code says so, with how many trials ran on each
    newer = {**PROVENANCE, "commit": "a" * 40, "dirty": True}
    mixed = store_design(
        study.model_copy(update={"name": "mixed"}),
        lambda s: {"eval/fd": 40.0, "eval/cat_acc": 0.6},
        provenance=lambda s: newer if s.seed == 0 else PROVENANCE,
    )
    code = dict(build.build(mixed).summary)["trials ran on: code"]
    assert code == (
        "sweep 0.1.0, git aaaaaaaaaaaa (uncommitted changes) (5 trials); sweep 0.1.0, git 0123456789ab (clean) "
        "(10 trials)"
    )
    page = render.html(build.build(one))
    assert "trials ran on: device" in page and "CPU Test CPU @ 2.00GHz, 1 thread" in page
