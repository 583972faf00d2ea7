"""The `sweep` command through its real console script: exit codes, one-line errors, output."""

from __future__ import annotations

import json
import re
import subprocess

import click
import numpy as np
import pandas as pd
import pytest
import typer

from sweep import cli, console, runner, spec
from sweep.store import open_store

from helpers import REPO, SWEEP, run_sweep, sweep_env

sweep = run_sweep


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


COMMANDS = sorted(c.name or c.callback.__name__ for c in cli.app.registered_commands)


def test_every_command_is_registered():
    # the control for the help test below: it must see every command the app has
    assert set(COMMANDS) >= {
        "run",
        "validate",
        "show",
        "list",
        "train",
        "export",
        "schema",
        "report",
        "dashboard",
        "claims",
    }


def test_top_level_help_lists_every_command():
    proc = sweep("--help")
    assert proc.returncode == 0
    for command in COMMANDS:
        assert re.search(rf"^\W*{command}\b", proc.stdout, re.MULTILINE), (command, proc.stdout)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_an_example_and_every_option_explained(command):
    sub = sweep(command, "--help")
    assert sub.returncode == 0, sub.stderr
    assert "Example: sweep " + command in sub.stdout, sub.stdout
    click_command = typer.main.get_command(cli.app).commands[command]
    for param in click_command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"sweep {command} {param.opts[0]} has no help text"


def test_environment_variables_are_shown_in_help():
    text = sweep("list", "--help").stdout
    assert "SWEEP_ROOT" in text and "SWEEP_STORAGE" in text


def test_usage_error_exits_2():
    assert sweep("frobnicate").returncode == 2
    assert sweep("run").returncode == 2  # missing argument


BAD_STUDIES = {
    "yaml syntax": ("name: x\nkind: [ablation\n", "invalid YAML"),
    "unknown key": ("name: x\nkind: ablation\nfactorz: {}\n", "did you mean 'factors'"),
    "bad value": (
        "name: x\nkind: ablation\nbase: {lr_d: -1}\nfactors: {noise_dim: [4]}\nobjectives: [mi/cat]\n"
        "budget: {steps: 10}\n",
        "base.lr_d",
    ),
    "unknown metric": (
        "name: x\nkind: ablation\nfactors: {noise_dim: [4]}\nobjectives: [eval/mode]\nbudget: {steps: 10}\n",
        "eval/modes",
    ),
    "unknown dataset": (
        "name: x\nkind: ablation\nbase: {dataset: cifar}\nfactors: {noise_dim: [4]}\nobjectives: [mi/cat]\n"
        "budget: {steps: 10}\n",
        "dataset",
    ),
    "factor not a field": (
        "name: x\nkind: grid\nfactors: {noise_dims: [4, 8]}\nobjectives: [mi/cat]\nbudget: {steps: 10}\n",
        "noise_dim",
    ),
    "empty range": (
        "name: x\nkind: search\ntrials: 2\nspace: {lr_g: {type: float, low: 0.1, high: 0.01}}\n"
        "objectives: [mi/cat]\nbudget: {steps: 10}\n",
        "space.lr_g",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_STUDIES))
def test_validate_bad_study_files_give_one_line_naming_the_file(case, tmp_path):
    text, expected = BAD_STUDIES[case]
    path = tmp_path / f"{case.replace(' ', '_')}.yaml"
    path.write_text(text)
    line = one_line_error(sweep("validate", str(path)))
    assert path.name in line and expected in line


def test_validate_run_dry_run_and_schema(tiny_study):
    ok = sweep("validate", str(tiny_study))
    assert ok.returncode == 0 and "4 trials" in ok.stdout
    dry = sweep("run", str(tiny_study), "--dry-run", "--seeds", "3")
    assert dry.returncode == 0 and "6 trials" in dry.stdout and "d_batchnorm=separate" in dry.stdout
    schema = json.loads(sweep("schema").stdout)
    assert "properties" in schema and "budget" in schema["properties"]
    missing = one_line_error(sweep("run", str(tiny_study.parent / "absent.yaml")))
    assert "absent.yaml" in missing


def test_train_one_run_writes_images(tmp_path):
    proc = sweep(
        "train",
        "--set",
        "dataset=ring8",
        "--set",
        "arch=mlp",
        "--set",
        "cat_codes=[8]",
        "--set",
        "cont_codes=0",
        "--set",
        "steps=30",
        "--set",
        "report_every=10",
        "--image-dir",
        str(tmp_path / "img"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "eval/modes" in proc.stdout
    assert (tmp_path / "img" / "scatter.png").stat().st_size > 1000
    assert json.loads((tmp_path / "img" / "config.json").read_text())["steps"] == 30
    line = one_line_error(sweep("train", "--set", "lr_d=-1"))
    assert "lr_d" in line and "-1" in line


@pytest.mark.slow
def test_show_list_export_read_the_storage(ray_session, tiny_study, tmp_path):
    root = tmp_path / "runs"
    runner.run(spec.load(tiny_study), store=open_store(root))
    listed = sweep("list", "--root", str(root))
    assert listed.returncode == 0 and "tiny" in listed.stdout
    shown = sweep("show", "tiny", "--root", str(root))
    assert shown.returncode == 0 and "d_batchnorm=separate" in shown.stdout and "completed" in shown.stdout
    rows = json.loads(sweep("export", "tiny", "--format", "json", "--root", str(root)).stdout)
    assert len(rows) == 4 and {"params.d_batchnorm", "eval/modes", "seed", "config_id"} <= set(rows[0])
    csv_path = tmp_path / "t.csv"
    assert sweep("export", "tiny", "--format", "csv", "-o", str(csv_path), "--root", str(root)).returncode == 0
    assert len(csv_path.read_text().splitlines()) == 5
    line = one_line_error(sweep("show", "nosuch", "--root", str(root)))
    assert "nosuch" in line and "tiny" in line


def test_fetch_says_what_failed_in_one_line(tmp_path):
    proc = sweep("fetch", "mnist", "--data-dir", str(tmp_path), "--mirror", "http://127.0.0.1:9/")
    line = one_line_error(proc)
    assert "could not fetch train-" in line and "127.0.0.1:9" in line
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing half-written
    assert "mnist, fashion-mnist" in one_line_error(sweep("fetch", "digits", "--data-dir", str(tmp_path)))


# --- hostile input -----------------------------------------------------------------------------


def test_validate_names_a_binary_file_and_goes_on_to_check_the_rest(tiny_study, tmp_path):
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    proc = sweep("validate", str(tiny_study), str(binary), str(tiny_study))
    assert proc.returncode == 1
    assert proc.stdout.count("ok ") == 2  # the file after the binary one was checked too
    assert "weights.yaml: not a study file: byte 128 is not UTF-8 text" in proc.stderr
    assert "Traceback" not in proc.stderr and "UnicodeDecodeError" not in proc.stderr


def test_a_new_name_that_is_a_path_is_a_usage_error_and_nothing_is_written(tiny_study, tmp_path):
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    for name in ("../../../evil", "..", "a" * 5000):
        proc = sweep("run", str(tiny_study), "--root", str(tmp_path / "R"), "--new-name", name)
        assert proc.returncode == 2, proc.stderr
        assert "--new-name" in proc.stderr and "must be" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # no root, no storage, no Ray folder
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before


def test_a_billion_laughs_is_refused_in_one_line_by_validate_and_run(tmp_path):
    path = tmp_path / "laughs.yaml"
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path.write_text("\n".join(lines) + "\n")
    for command in ("validate", "run"):
        line = one_line_error(sweep(command, str(path), timeout=60))  # today: never returns
        assert "laughs.yaml:4: YAML aliases expand the file by more than 10,000 values" in line


def test_the_trial_limit_is_refused_with_its_flag_and_a_dry_run_shows_a_screenful(make_study, tmp_path):
    path = make_study(tmp_path / "many.yaml", seeds=100_000)
    line = one_line_error(sweep("run", str(path), "--dry-run"))
    assert "seeds: the study has 200,000 trials (2 configurations x 100,000 seeds)" in line
    assert line.endswith("raise the limit with --max-trials N if you mean it")
    assert one_line_error(sweep("validate", str(path))).endswith("more than the limit of 10,000")
    assert sweep("validate", str(path), "--max-trials", "200000").returncode == 0
    dry = sweep("run", str(path), "--dry-run", "--max-trials", "200000")
    assert dry.returncode == 0, dry.stderr  # one row per configuration, its seeds as a range
    assert "200000 trials" in dry.stdout and "0..99999" in dry.stdout and len(dry.stdout.splitlines()) < 20
    wide = sweep("run", str(path), "--dry-run", "--wide", "--max-trials", "200000")
    assert wide.returncode == 0, wide.stderr
    rows = [line for line in wide.stdout.splitlines() if re.match(r"\d+ ", line)]
    assert len(rows) == console.PLAN_ROWS and rows[-1].startswith("19 ")  # today: an 11 MB table
    assert f"... and {200_000 - console.PLAN_ROWS} more: 200000 trials in all" in wide.stdout
    assert len(wide.stdout.splitlines()) < console.PLAN_ROWS + 10
    assert f"(default: {spec.MAX_TRIALS})" in " ".join(sweep("run", "--help").stdout.split())


def test_a_broken_storage_or_root_is_one_line_that_says_what_is_wrong(tiny_study, tmp_path):
    (tmp_path / "a_file").write_text("")
    line = one_line_error(sweep("run", str(tiny_study), "--root", str(tmp_path / "a_file")))
    assert "a_file is a file" in line and "FileExistsError" not in line
    # a file: URI is opened as SQLite reads it; nothing named 'file:...' appears in the current folder
    uri = "sqlite:///file:sub/x.db?mode=ro&uri=true"
    line = one_line_error(run_sweep("list", "--storage", uri, cwd=tmp_path))
    assert "cannot be opened: its folder is missing" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "tiny.yaml"]
    # a read-only database: read works, a run says read-only instead of "invalid data in the commit"
    runner.open_study(spec.load(tiny_study), open_store(tmp_path / "runs"))
    read_only = f"sqlite:///file:{tmp_path / 'runs' / 'sweep.db'}?mode=ro&uri=true"
    assert sweep("list", "--storage", read_only).returncode == 0
    line = one_line_error(sweep("run", str(tiny_study), "--storage", read_only, "--root", str(tmp_path / "r")))
    assert "the database is read-only (attempt to write a readonly database)" in line
    assert "invalid data" not in line


def test_no_message_shows_the_storage_password(tmp_path):
    line = one_line_error(sweep("list", "--storage", "postgresql://ann:hunter2@127.0.0.1:9/sweep"))
    assert "postgresql://ann:***@127.0.0.1:9/sweep" in line and "hunter2" not in line
    assert cli._location_flags(tmp_path, "postgresql://ann:hunter2@db/sweep") == (
        f" --root {tmp_path} --storage postgresql://ann:***@db/sweep"
    )


def test_export_curves_writes_every_trials_history_in_long_format(stored, tmp_path):
    optuna_study = open_store(stored).load_study("balance")
    expected = [
        (t.number, t.user_attrs["seed"], t.params["d_width"], h["step"], metric, value)
        for t in optuna_study.get_trials()
        for h in t.user_attrs["history"]
        for metric, value in h.items()
        if metric != "step"
    ]
    assert len(expected) > 100  # the control: histories to find
    path = tmp_path / "curves.csv"
    proc = sweep("export", "balance", "--curves", "-o", str(path), "--root", str(stored))
    assert proc.returncode == 0 and f"wrote {len(expected)} rows of curves" in proc.stderr
    frame = pd.read_csv(path)
    params = [f"params.{k}" for k in ("d_width", "g_width", "lr_ratio")]
    assert list(frame.columns) == ["trial", "config_id", "seed", "outcome", *params, "step", "metric", "value"]
    assert frame["metric"].tolist() == [e[4] for e in expected]
    numbers = frame[["trial", "seed", "params.d_width", "step", "value"]].to_numpy(dtype=float)
    np.testing.assert_allclose(numbers, [[*e[:4], e[5]] for e in expected], rtol=1e-12)
    # for pandas users: one line from long format to a learning curve per level
    curve = frame[frame["metric"] == "eval/fd"].groupby(["config_id", "step"])["value"].mean()
    assert curve.loc[("d_width=1.0", 800)] > curve.loc[("base", 800)]
    records = json.loads(sweep("export", "balance", "--curves", "--format", "json", "--root", str(stored)).stdout)
    assert len(records) == len(expected) and records[0]["metric"] == expected[0][4]


STORAGE_COMMANDS = [
    ["list"],
    ["claims"],
    ["show", "balance"],
    ["show", "balance", "--effects"],
    ["export", "balance"],
    ["export", "balance", "--curves"],
    ["compare", "balance", "balance-rep1"],
]


@pytest.mark.parametrize(
    "args",
    [["--help"], ["schema"], ["validate", *(str(p) for p in sorted((REPO / "studies").glob("*.yaml")))]]
    + STORAGE_COMMANDS,
    ids=lambda args: " ".join(args[:3]) if args[0] != "validate" else "validate studies/*.yaml",
)
def test_commands_that_neither_train_nor_plot_load_no_torch_ray_or_matplotlib(args, stored):
    env = sweep_env(PYTHONPROFILEIMPORTTIME="1", SWEEP_ROOT=str(stored))
    proc = subprocess.run([SWEEP, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    assert "typer" in imported  # the control: the import log is read
    assert {m.split(".")[0] for m in imported} & {"torch", "ray", "matplotlib"} == set()
    if args[0] in ("--help", "schema", "validate"):  # they read study files only: no storage, no statistics
        assert {m.split(".")[0] for m in imported} & {"optuna", "scipy", "pandas", "sqlalchemy"} == set()


def test_commands_that_read_no_storage_yet_create_none(tmp_path):
    for args in (["list"], ["claims"]):
        proc = run_sweep(*args, "--root", str(tmp_path / "runs"), cwd=REPO)
        assert proc.returncode == 0, proc.stderr
    assert "No studies in sqlite:///" in run_sweep("list", "--root", str(tmp_path / "runs")).stdout
    line = one_line_error(sweep("show", "balance", "--root", str(tmp_path / "runs")))
    assert "no study named 'balance'" in line and "none yet" in line
    assert not (tmp_path / "runs").exists()
