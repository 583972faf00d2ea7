"""PNG figures of a run: sample grid, latent traversals or mode scatter, training curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from infogan_core.data import load_dataset  # noqa: E402

if TYPE_CHECKING:
    from infogan_core.config import TrainConfig
    from infogan_core.models import InfoGAN
    from infogan_core.train import TrainResult

SWEEP_STEPS = 8  # columns of a continuous-code sweep, from -1 to 1


def _latent(cfg: TrainConfig, model: InfoGAN, noise: torch.Tensor, cats: list[int], cont: torch.Tensor) -> torch.Tensor:
    """G's input for explicit noise (B, noise_dim), category indices and continuous codes (B, cont)."""
    n = len(noise)
    onehots = [F.one_hot(torch.full((n,), c), k).float() for c, k in zip(cats, cfg.cat_codes, strict=True)]
    return torch.cat([noise, *onehots, cont], 1).to(next(model.parameters()).device)


def _noise(cfg: TrainConfig, n: int, gen: torch.Generator) -> torch.Tensor:
    if cfg.noise_prior == "gaussian":
        return torch.randn(n, cfg.noise_dim, generator=gen)
    return torch.rand(n, cfg.noise_dim, generator=gen) * 2 - 1


def _tile(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows*cols, C, H, W) in [-1, 1] -> one (rows*(H+1), cols*(W+1)) or (.., 3) array in [0, 1],
    each image framed by a one-pixel grey line so neighbours do not run together."""
    _, c, h, w = images.shape
    framed = np.pad(images, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=0.0)  # 0.0 -> mid grey
    h, w = h + 1, w + 1
    grid = framed.reshape(rows, cols, c, h, w).transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    grid = (grid + 1) / 2
    return grid[..., 0] if c == 1 else grid


def _save_image(array: np.ndarray, path: Path, title: str, ylabel: str, xlabel: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 6 * array.shape[0] / array.shape[1] + 0.6))
    ax.imshow(np.clip(array, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


@torch.no_grad()
def sample_grid(model: InfoGAN, cfg: TrainConfig, path: Path) -> Path:
    """Rows: each value of the first categorical code; columns: the first continuous code swept."""
    gen = torch.Generator().manual_seed(cfg.seed)
    rows = cfg.cat_codes[0] if cfg.cat_codes else 8
    noise = _noise(cfg, rows, gen).repeat_interleave(SWEEP_STEPS, 0)  # one z per row
    cont = torch.zeros(rows * SWEEP_STEPS, cfg.cont_codes)
    if cfg.cont_codes:
        cont[:, 0] = torch.linspace(-1, 1, SWEEP_STEPS).repeat(rows)
    else:
        noise = _noise(cfg, rows * SWEEP_STEPS, gen)
    cats = [[r if i == 0 else 0 for i in range(len(cfg.cat_codes))] for r in range(rows) for _ in range(SWEEP_STEPS)]
    z = torch.cat([_latent(cfg, model, noise[j : j + 1], cats[j], cont[j : j + 1]) for j in range(len(cats))])
    images = model.generator(z).float().cpu().numpy()
    xlabel = "c_cont[0] from -1 to 1" if cfg.cont_codes else "random noise"
    _save_image(_tile(images, rows, SWEEP_STEPS), path, "samples", "c_cat[0] value" if cfg.cat_codes else "", xlabel)
    return path


@torch.no_grad()
def traversals(model: InfoGAN, cfg: TrainConfig, path: Path, rows: int = 4) -> Path:
    """One block per continuous code: rows of fixed (z, c_cat), columns the code swept from -1 to 1."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    blocks = []
    for code in range(cfg.cont_codes):
        noise = _noise(cfg, rows, gen).repeat_interleave(SWEEP_STEPS, 0)
        cont = torch.zeros(rows * SWEEP_STEPS, cfg.cont_codes)
        cont[:, code] = torch.linspace(-1, 1, SWEEP_STEPS).repeat(rows)
        cats = [int(torch.randint(k, (1,), generator=gen)) for k in cfg.cat_codes]
        z = _latent(cfg, model, noise, cats, cont)
        blocks.append(_tile(model.generator(z).float().cpu().numpy(), rows, SWEEP_STEPS))
    sep = np.ones((2, *blocks[0].shape[1:]))
    stacked = np.concatenate([x for b in blocks for x in (b, sep)][:-1])
    _save_image(stacked, path, "latent traversals", "one block per c_cont, top to bottom", "code from -1 to 1")
    return path


@torch.no_grad()
def mode_scatter(model: InfoGAN, cfg: TrainConfig, path: Path, n: int = 2000) -> Path:
    """2-D samples coloured by their categorical code, over the mixture's modes."""
    from infogan_core.train import sample_latent

    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(cfg.seed)
    lat = sample_latent(cfg, model, n, gen, next(model.parameters()).device)
    pts = model.generator(lat.z).float().cpu().numpy()
    data = load_dataset(cfg.dataset, cfg.data_dir)
    fig, ax = plt.subplots(figsize=(5, 5))
    colour = lat.cat[0].cpu().numpy() if lat.cat else None
    ax.scatter(pts[:, 0], pts[:, 1], s=3, c=colour, cmap="tab10", alpha=0.6)
    if data.modes is not None:
        m = data.modes.numpy()
        ax.scatter(m[:, 0], m[:, 1], marker="x", c="black", s=60, label="modes")
        pad = 0.5 * (m.max() - m.min()) / max(1, int(np.sqrt(len(m)))) + 0.3
        ax.set_xlim(m[:, 0].min() - pad, m[:, 0].max() + pad)
        ax.set_ylim(m[:, 1].min() - pad, m[:, 1].max() + pad)
        ax.legend(loc="upper right")
    ax.set_title("samples (colour: c_cat[0])", fontsize=10)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def curves(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """Losses, mi/cat_ratio and gradient norms over training steps."""
    steps = [h["step"] for h in history]
    panels = [
        ("losses", ["loss/d", "loss/g", "loss/info"], False),
        ("mutual information", ["mi/cat_ratio"], False),
        ("gradient norms (before clipping)", ["grad/d", "grad/g", "grad/q"], True),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (name, keys, log) in zip(axes, panels, strict=True):
        for key in keys:
            ys = [h.get(key, np.nan) for h in history]
            if not all(np.isnan(ys)):
                ax.plot(steps, ys, label=key)
        if name == "mutual information":
            ax.axhline(1.0, color="grey", ls="--", lw=0.8, label="H(c)")
            ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.05)
        if log:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def render(result: TrainResult, out_dir: str | Path) -> dict[str, str]:
    """Every figure that applies to this run, as PNG files in out_dir; name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg, model = result.config, result.model
    was_training = model.training
    model.eval()
    paths: dict[str, Path] = {}
    try:
        if len(load_dataset(cfg.dataset, cfg.data_dir).sample_shape) == 3:
            paths["samples"] = sample_grid(model, cfg, out / "samples.png")
            if cfg.cont_codes:
                paths["traversals"] = traversals(model, cfg, out / "traversals.png")
        else:
            paths["scatter"] = mode_scatter(model, cfg, out / "scatter.png")
    finally:
        model.train(was_training)
    if result.history:
        paths["curves"] = curves(result.history, out / "curves.png")
    return {k: str(v) for k, v in paths.items()}


__all__ = ["curves", "mode_scatter", "render", "sample_grid", "traversals"]
