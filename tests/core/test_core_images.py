"""train(..., image_dir=...) writes the run's figures as valid, non-blank PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from infogan_core import TrainConfig, train
from infogan_core.images import curves

from helpers import TINY_DIGITS, TINY_RING

pytestmark = pytest.mark.usefixtures("core_env")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

IMAGE_RUN = TrainConfig(**TINY_DIGITS, report_every=2, steps=4)
POINT_RUN = TrainConfig(**TINY_RING, report_every=2, steps=4)


def assert_valid_png(path: str | Path, folder: Path) -> None:
    path = Path(path)
    assert path.parent == folder and path.suffix == ".png"
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)  # (H, W, 3 or 4) floats in [0, 1]
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert np.ptp(pixels[..., :3]) > 0.1, f"{path.name} is blank"


@pytest.mark.parametrize(
    ("cfg", "names"),
    [
        (IMAGE_RUN, {"samples", "traversals", "curves"}),
        (IMAGE_RUN.replace(cont_codes=0), {"samples", "curves"}),  # no continuous code to traverse
        (POINT_RUN, {"scatter", "curves"}),
        (POINT_RUN.replace(dataset="grid25", cat_codes=[5, 5], noise_dim=0), {"scatter", "curves"}),
    ],
    ids=["digits", "digits-no-cont", "ring8", "grid25"],
)
def test_train_writes_the_figures(cfg: TrainConfig, names: set[str], tmp_path: Path) -> None:
    out = tmp_path / "figures"  # created by render
    result = train(cfg, image_dir=out)
    assert set(result.images) == names
    for path in result.images.values():
        assert_valid_png(path, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in names)


def test_no_image_dir_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert train(POINT_RUN.replace(steps=1)).images == {}
    assert list(tmp_path.iterdir()) == []


def test_curves_tolerate_missing_metrics(tmp_path: Path) -> None:
    # a run without categorical codes has no mi/cat_ratio; one diverged early may have one report
    history = [{"step": 1, "loss/d": 1.4, "loss/g": 0.7, "loss/info": 0.0, "grad/d": 0.5, "grad/g": 0.2, "grad/q": 0.1}]
    path = curves(history, tmp_path / "curves.png", title="one report")
    assert_valid_png(path, tmp_path)
