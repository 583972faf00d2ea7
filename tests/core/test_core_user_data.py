"""The user's own data: an .npz file or a folder of PNG images, named by its path, read on the built-in
images' scale, known from its headers, refused with one line per problem, and trained on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infogan_core import DataError, TrainConfig, load_dataset, measured_metrics, train
from infogan_core.cost import pair_cost
from infogan_core.data import MIN_SAMPLES, check_dataset, dataset_digest, dataset_entry, record_dataset

pytestmark = pytest.mark.usefixtures("core_env")

N = MIN_SAMPLES  # the fewest images a dataset may hold


def npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return str(path)


def pngs(folder: Path, images: list[np.ndarray], names: list[str] | None = None) -> str:
    for i, pixels in enumerate(images):
        target = folder / (names[i] if names else f"{i:03d}.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target)
    return str(folder)


def test_uint8_images_are_read_on_the_scale_of_the_built_in_ones(tmp_path: Path) -> None:
    pixels = np.arange(N * 64, dtype=np.int64).reshape(N, 8, 8) % 256
    path = npz(tmp_path / "faces.npz", x=pixels.astype(np.uint8), y=np.arange(N) % 4)
    data = load_dataset(path)
    assert data.x.shape == (N, 1, 8, 8) and data.x.dtype == np.float32
    assert np.array_equal(data.x[:, 0], (pixels.astype(np.float32) / 255.0 * 2.0 - 1.0))  # as MNIST is read
    assert (data.x.min(), data.x.max()) == (-1.0, 1.0)
    assert np.array_equal(data.labels, np.arange(N) % 4) and data.num_classes == 4
    assert data.name == "faces.npz"  # not the path: the reference classifier's cache file is named by it


def test_float_images_in_range_are_kept_as_they_are_with_their_channels(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, (N, 3, 8, 8)).astype(np.float32)
    data = load_dataset(npz(tmp_path / "rgb.npz", x=x))
    assert np.array_equal(data.x, x) and data.labels is None


def test_the_entry_comes_from_the_headers_without_reading_the_images(tmp_path: Path, monkeypatch) -> None:
    path = npz(tmp_path / "big.npz", x=np.zeros((N, 3, 16, 8), np.uint8))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load read the file"))
    entry = dataset_entry(path)
    assert (entry.sample_shape, entry.provides, entry.classes, entry.is_image) == ((3, 16, 8), frozenset(), 0, True)


def test_a_folder_of_grayscale_pngs_reads_as_one_channel_and_class_folders_give_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gray = [rng.integers(0, 256, (8, 12), dtype=np.uint8) for _ in range(N)]
    data = load_dataset(pngs(tmp_path / "flat", gray))
    assert data.x.shape == (N, 1, 8, 12) and data.labels is None
    assert np.array_equal(data.x[5, 0], gray[5].astype(np.float32) / 255.0 * 2.0 - 1.0)
    names = [f"{'cat' if i % 2 else 'dog'}/{i:03d}.png" for i in range(N)]
    labelled = load_dataset(pngs(tmp_path / "classes", gray, names))
    # images in sorted path order, classes in sorted folder order: cat/001.png first, labelled 0; dog/ 1
    assert labelled.labels.tolist() == [0] * (N // 2) + [1] * (N // 2)
    assert np.array_equal(labelled.x[0, 0], data.x[1, 0]) and np.array_equal(labelled.x[N // 2, 0], data.x[0, 0])
    assert dataset_entry(str(tmp_path / "classes")).classes == 2


def test_colour_pngs_read_as_three_channels_red_first(tmp_path: Path) -> None:
    rgb = np.zeros((N, 4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 255, 0  # pure red
    data = load_dataset(pngs(tmp_path / "red", list(rgb)))
    assert data.x.shape == (N, 3, 4, 4)
    assert (data.x[:, 0] == 1.0).all() and (data.x[:, 1:] == -1.0).all()


def _problem(tmp_path: Path, case: str) -> str:
    """The path of a dataset with one problem."""
    u8 = np.zeros((N, 8, 8), np.uint8)
    if case == "missing file":
        return str(tmp_path / "nowhere.npz")
    if case == "missing x":
        return npz(tmp_path / "a.npz", images=u8)
    if case == "wrong dims":
        return npz(tmp_path / "a.npz", x=np.zeros((N, 64), np.uint8))
    if case == "channels last":
        return npz(tmp_path / "a.npz", x=np.zeros((N, 8, 8, 3), np.uint8))
    if case == "NaN":
        x = np.zeros((N, 8, 8), np.float32)
        x[3, 2, 1] = np.nan
        return npz(tmp_path / "a.npz", x=x)
    if case == "out of range":
        return npz(tmp_path / "a.npz", x=np.linspace(0, 255, N * 64, dtype=np.float32).reshape(N, 8, 8))
    if case == "labels length":
        return npz(tmp_path / "a.npz", x=u8, y=np.zeros(N - 1, np.int64))
    if case == "negative labels":
        return npz(tmp_path / "a.npz", x=u8, y=np.full(N, -1))
    if case == "too few images":
        return npz(tmp_path / "a.npz", x=u8[: N - 1])
    if case == "int16 pixels":
        return npz(tmp_path / "a.npz", x=u8.astype(np.int16))
    if case == "not an npz":
        (tmp_path / "a.npz").write_text("hello")
        return str(tmp_path / "a.npz")
    if case == "mixed image sizes":
        return pngs(tmp_path / "p", [np.zeros((8, 8) if i else (8, 9), np.uint8) for i in range(N)])
    if case == "flat and nested":
        return pngs(tmp_path / "p", [u8[0]] * 2, ["a.png", "sub/b.png"])
    raise AssertionError(case)


PROBLEMS = {  # case -> what its one line says
    "missing file": "nowhere.npz: no such file or folder",
    "missing x": "has no array `x` (the images); arrays in it: images",
    "wrong dims": "x must hold images (N, H, W) or (N, C, H, W) with C 1 or 3, but has shape (32, 64)",
    "channels last": "but has shape (32, 8, 8, 3); channels go first",
    "NaN": "x holds NaN or infinite values at [3 2 1]",
    "out of range": "float x must lie in [-1, 1] (G ends in tanh), but spans [0, 255]",
    "labels length": "y must hold one label per image (32), but has shape (31,)",
    "negative labels": "y must hold class numbers 0, 1, 2, ... (integers >= 0)",
    "too few images": f"holds {N - 1} images, fewer than the {N} a dataset needs",
    "int16 pixels": "x must be uint8 (0..255) or float (in [-1, 1]), but is int16",
    "not an npz": "not a readable .npz file",
    "mixed image sizes": "images must share one size, but have 2: [(8, 8), (9, 8)]",
    "flat and nested": "holds PNG images both directly and in subfolders",
}


@pytest.mark.parametrize("case", PROBLEMS)
def test_each_problem_is_refused_in_one_line_that_names_the_file(tmp_path: Path, case: str) -> None:
    path = _problem(tmp_path, case)
    with pytest.raises(DataError) as caught:
        check_dataset(path)
    message = str(caught.value)
    assert PROBLEMS[case] in message and "\n" not in message
    assert message.startswith(f"dataset {Path(path).absolute()}")


def test_a_rewritten_file_is_read_again_and_its_digest_follows_its_content(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    npz(path, x=np.zeros((N, 8, 8), np.uint8))
    first, digest = load_dataset(str(path)), dataset_digest(str(path))
    npz(path, x=np.full((N, 8, 8), 255, np.uint8))
    os.utime(path, ns=(1, 1))  # a new modification time even on a coarse clock
    assert (load_dataset(str(path)).x == 1.0).all() and (first.x == -1.0).all()
    assert dataset_digest(str(path)) != digest
    npz(path, x=np.zeros((N, 8, 8), np.uint8))
    os.utime(path, ns=(2, 2))
    assert dataset_digest(str(path)) == digest  # the same content is the same data, whatever its time


def test_a_recorded_entry_stands_in_only_for_a_file_that_is_gone(tmp_path: Path) -> None:
    gone = str(tmp_path / "gone.npz")
    record_dataset(gone, (1, 28, 28), 10)
    assert (dataset_entry(gone).sample_shape, dataset_entry(gone).classes) == ((1, 28, 28), 10)
    here = npz(tmp_path / "here.npz", x=np.zeros((N, 8, 8), np.uint8))
    record_dataset(here, (1, 28, 28), 10)
    assert dataset_entry(here).sample_shape == (1, 8, 8)


def test_metrics_that_need_labels_are_refused_with_the_reason_and_cost_knows_the_shape(tmp_path: Path) -> None:
    unlabelled = npz(tmp_path / "u.npz", x=np.zeros((N, 28, 28), np.uint8))
    labelled = npz(tmp_path / "l.npz", x=np.zeros((N, 28, 28), np.uint8), y=np.arange(N) % 10)
    why = measured_metrics(TrainConfig(dataset=unlabelled))
    assert why["eval/cat_acc"] == "it needs categorical codes and labelled data"
    assert why["eval/fd"] == "its reference classifier is trained on labelled images"
    assert why["eval/factor_align"] and why["eval/modes"]
    assert why["mi/cat"] == why["loss/d"] == ""
    assert measured_metrics(TrainConfig(dataset=labelled))["eval/fd"] == ""
    assert measured_metrics(TrainConfig(dataset=labelled))["eval/prior_kl"] == ""  # 10 classes, cat_codes [10]
    assert pair_cost(TrainConfig(dataset=labelled)) == pair_cost(TrainConfig(dataset="mnist"))  # both 1x28x28


def test_a_run_trains_on_the_users_images_and_reports_what_applies(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = npz(tmp_path / "d.npz", x=rng.integers(0, 256, (64, 8, 8), dtype=np.uint8))
    cfg = TrainConfig(
        dataset=path,
        arch="conv",
        cat_codes=(4,),
        noise_dim=4,
        batch_size=16,
        g_width=0.1,
        d_width=0.1,
        steps=4,
        report_every=2,
        eval_samples=100,
        device="cpu",
    )
    result = train(cfg)
    assert result.steps_run == 4 and np.isfinite(result.metrics["loss/d"])
    assert "eval/cat_acc" not in result.metrics and "eval/fd" not in result.metrics  # no labels: not measured
    assert {m for m, why in measured_metrics(cfg).items() if not why} >= {"loss/d", "mi/cat"}
