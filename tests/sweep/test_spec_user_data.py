"""A study on the user's own data: its path resolved against the study file, each problem one line at its
key, metrics that need labels refused with the reason, and the data's identity kept in the definition."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from sweep import spec
from sweep.errors import StudyError

from helpers import REPO, TINY_DIGITS


def _study(folder: Path, dataset: object, **overrides: object) -> Path:
    """A tiny conv ablation on `dataset`, written as folder/study.yaml."""
    data = {
        "name": "mine",
        "kind": "ablation",
        "base": {**TINY_DIGITS, "dataset": dataset, "cat_codes": [4]},
        "factors": {"d_batchnorm": ["none"]},
        "seeds": 2,
        "objectives": ["loss/d"],
        "budget": {"steps": 10, "report_every": 5},
        **overrides,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "study.yaml"


def _images(path: Path, labels: bool = True, n: int = 40, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"x": np.full((n, 8, 8), value, np.uint8)}
    np.savez(path, **arrays, **({"y": np.arange(n) % 4} if labels else {}))
    return path


def test_a_dataset_path_is_relative_to_the_study_file_not_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    data = _images(tmp_path / "project" / "data" / "faces.npz")
    path = _study(tmp_path / "project" / "studies", "../data/faces.npz")
    monkeypatch.chdir(tmp_path)  # from here, ../data/faces.npz is nowhere
    study = spec.load(path)
    assert study.base["dataset"] == str(data.resolve())
    recorded = study.data_files[str(data.resolve())]
    assert recorded.sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    assert (recorded.sample_shape, recorded.classes) == ([1, 8, 8], 4)
    assert study.train_config({}, 0).dataset == str(data.resolve())  # what a Ray worker is sent: absolute


def test_a_folder_without_a_slash_is_the_users_data_too(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(40):
        (tmp_path / "pics").mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(tmp_path / "pics" / f"{i}.png")
    study = spec.load(_study(tmp_path, "pics", objectives=["loss/d"]))
    assert study.base["dataset"] == str((tmp_path / "pics").resolve())


@pytest.mark.parametrize(
    ("dataset", "problem"),
    [
        ("missing.npz", "base.dataset: {root}/missing.npz: no such file or folder"),
        ("nan.npz", "base.dataset: {root}/nan.npz: x holds NaN or infinite values at"),
        ("short.npz", "base.dataset: {root}/short.npz: y must hold one label per image (40), but has shape (39,)"),
    ],
)
def test_each_problem_with_the_data_is_one_line_at_its_key(tmp_path: Path, dataset: str, problem: str) -> None:
    x = np.zeros((40, 8, 8), np.float32)
    x[0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=x)
    np.savez(tmp_path / "short.npz", x=np.zeros((40, 8, 8), np.uint8), y=np.zeros(39, np.int64))
    path = _study(tmp_path, dataset)
    with pytest.raises(StudyError) as caught:
        spec.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:4: ") and "\n" not in message
    assert problem.format(root=tmp_path.resolve()) in message


def test_a_factor_level_that_is_a_bad_file_is_named_at_its_index(tmp_path: Path) -> None:
    _images(tmp_path / "good.npz")
    path = _study(tmp_path, "digits", factors={"dataset": ["good.npz", "bad.npz"]})
    with pytest.raises(StudyError, match=r"factors\.dataset\[1\]: .*bad\.npz: no such file or folder"):
        spec.load(path)


def test_metrics_that_need_labels_are_refused_for_unlabelled_data_with_the_reason(tmp_path: Path) -> None:
    _images(tmp_path / "u.npz", labels=False)
    for metric, reason in [
        ("eval/cat_acc", "it needs categorical codes and labelled data"),
        ("eval/fd", "its reference classifier is trained on labelled images"),
        ("eval/factor_align", "it needs continuous codes and `shapes`"),
    ]:
        with pytest.raises(StudyError, match=f"objectives\\[0\\]\\.metric: {metric} is not measured: {reason}"):
            spec.load(_study(tmp_path, "u.npz", objectives=[metric]))
    _images(tmp_path / "l.npz")
    assert spec.load(_study(tmp_path, "l.npz", objectives=["eval/cat_acc", "eval/fd"])).data_files


def test_the_datas_content_is_part_of_the_definition_and_a_stored_one_reads_without_the_file(tmp_path: Path) -> None:
    data = _images(tmp_path / "d.npz")
    study = spec.load(_study(tmp_path, "d.npz"))
    same = spec.load(_study(tmp_path, "d.npz"))
    assert same.fingerprint() == study.fingerprint()
    _images(data, value=7)
    os.utime(data, ns=(1, 1))
    assert spec.load(_study(tmp_path, "d.npz")).fingerprint() != study.fingerprint()
    stored = study.model_dump(mode="json")
    data.unlink()  # moved away after the run: the stored study is still read by what it recorded
    again = spec.parse_stored(stored)
    assert again.fingerprint() == study.fingerprint() and again.data_files == study.data_files


def test_a_study_without_user_data_keeps_the_fingerprint_it_had_before(tmp_path: Path) -> None:
    study = spec.load(_study(tmp_path, "digits"))
    keys = {"kind", "base", "factors", "space", "sampler", "sampler_seed", "objectives", "budget"}
    text = json.dumps(study.model_dump(mode="json", include=keys), sort_keys=True, default=str)
    assert study.data_files == {} and study.fingerprint() == hashlib.sha256(text.encode()).hexdigest()


def test_the_user_data_pages_example_study_validates_beside_its_data(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / "user-data.md").read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "the page's example moved: the check itself must be able to fail"
    _images(tmp_path / "data" / "faces.npz")
    (tmp_path / "faces.yaml").write_text(blocks[0])
    study = spec.load(tmp_path / "faces.yaml")
    assert set(study.data_files) == {str((tmp_path / "data" / "faces.npz").resolve())}
    assert study.trial_count == 6


def test_the_json_schema_takes_a_data_path_and_still_refuses_an_unknown_name() -> None:
    import jsonschema

    schema = spec.study_json_schema()["properties"]["base"]["properties"]["dataset"]
    for good in ("digits", "data/faces.npz", "faces.npz", "/abs/pics/"):
        jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("digitz", schema)
