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


def test_fixed_margins_hold_long_tick_labels(tmp_path: Path) -> None:
    # figures have fixed margins (a layout engine measured every label first): labels as wide as a diverging
    # run's (1e8 losses, norms over twenty decades, minor log ticks such as 6x10^-1) stay inside the figure
    wide = [
        {"step": s, "loss/d": 1e7 * s, "loss/g": -123456.0, "loss/info": 0.5, "mi/cat_ratio": 0.5}
        | {"grad/d": 10.0 ** (s - 10), "grad/g": 1e12, "grad/q": 1e-9}
        for s in range(1, 21)
    ]
    narrow = [{"step": s, "loss/d": 1.0, "grad/d": 0.4 + 0.01 * s, "grad/g": 0.6, "grad/q": 0.5} for s in range(1, 21)]
    for name, history in {"wide": wide, "narrow": narrow}.items():
        pixels = matplotlib.image.imread(curves(history, tmp_path / f"{name}.png", title="d_width=16.0 seed 3"))
        edges = np.concatenate([pixels[:3].reshape(-1, 4), pixels[-3:].reshape(-1, 4)])
        edges = np.concatenate([edges, pixels[:, :3].reshape(-1, 4), pixels[:, -3:].reshape(-1, 4)])
        assert edges[:, :3].min() > 0.99, f"{name}: something is drawn at the figure's edge (a label cut off)"
