"""PNG figures of a run: sample grid, latent traversals or mode scatter, training curves.

Each figure is drawn on its own `matplotlib.figure.Figure` (no pyplot, no global backend switched).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from infogan_core.config import TrainConfig
from infogan_core.data import dataset_entry, load_dataset
from infogan_core.latent import GRID_STEPS, sample_grid_latent, sample_latent, traversal_latent
from infogan_core.models import InfoGAN, to_data_range


def _tile(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows*cols, C, H, W) in [-1, 1] -> one (rows*(H+1), cols*(W+1)) or (.., 3) array in [0, 1],
    each image framed by a one-pixel grey line so neighbours do not run together."""
    _, c, h, w = images.shape
    framed = np.pad(images, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=0.0)  # 0.0 -> mid grey
    h, w = h + 1, w + 1
    grid = framed.reshape(rows, cols, c, h, w).transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    grid = (grid + 1) / 2
    return grid[..., 0] if c == 1 else grid


def _margins(fig: Figure, left: float, bottom: float, right: float, top: float, gap: float = 0.0) -> None:
    """Fixed margins around the axes (and `gap` between side-by-side axes), in inches: a layout engine
    (tight or constrained) measures every tick label first, ~40% of the time a run's figures take."""
    width, height = fig.get_size_inches()
    columns = len(fig.axes)
    panel = (width - left - right - gap * (columns - 1)) / columns
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, wspace=gap / panel
    )


def _save_image(array: np.ndarray, path: Path, title: str, ylabel: str, xlabel: str) -> None:
    fig = Figure(figsize=(6, 6 * array.shape[0] / array.shape[1] + 0.6))
    ax = fig.subplots()
    ax.imshow(np.clip(array, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    _margins(fig, left=0.3, bottom=0.3, right=0.1, top=0.3)
    fig.savefig(path, dpi=80)


def _generate(model: InfoGAN, cfg: TrainConfig, z: torch.Tensor) -> np.ndarray:
    """G's samples for latents z, in [-1, 1]."""
    return to_data_range(model.generator(z.to(next(model.parameters()).device)), cfg).float().cpu().numpy()


@torch.no_grad()
def sample_grid(model: InfoGAN, cfg: TrainConfig, path: Path) -> Path:
    """Rows: each value of the first categorical code; columns: the first continuous code swept."""
    z, rows = sample_grid_latent(cfg, torch.Generator().manual_seed(cfg.seed))
    xlabel = "c_cont[0] from -1 to 1" if cfg.cont_codes else "random noise"
    grid = _tile(_generate(model, cfg, z), rows, GRID_STEPS)
    _save_image(grid, path, "samples", "c_cat[0] value" if cfg.cat_codes else "", xlabel)
    return path


@torch.no_grad()
def traversals(model: InfoGAN, cfg: TrainConfig, path: Path, rows: int = 4) -> Path:
    """One block per continuous code: rows of fixed (z, c_cat), columns the code swept from -1 to 1."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    blocks = [
        _tile(_generate(model, cfg, traversal_latent(cfg, gen, code, rows)), rows, GRID_STEPS)
        for code in range(cfg.cont_codes)
    ]
    sep = np.ones((2, *blocks[0].shape[1:]))
    stacked = np.concatenate([x for b in blocks for x in (b, sep)][:-1])
    _save_image(stacked, path, "latent traversals", "one block per c_cont, top to bottom", "code from -1 to 1")
    return path


@torch.no_grad()
def mode_scatter(model: InfoGAN, cfg: TrainConfig, path: Path, n: int = 2000) -> Path:
    """2-D samples coloured by their categorical code, over the mixture's modes."""
    device = next(model.parameters()).device
    lat = sample_latent(cfg, model.cat_prior, n, torch.Generator(device=device).manual_seed(cfg.seed), device)
    pts = model.generator(lat.z).float().cpu().numpy()
    data = load_dataset(cfg.dataset, cfg.data_dir)
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    colour = lat.cat[0].cpu().numpy() if lat.cat else None
    ax.scatter(pts[:, 0], pts[:, 1], s=3, c=colour, cmap="tab10", alpha=0.6)
    if data.modes is not None:
        m = data.modes
        ax.scatter(m[:, 0], m[:, 1], marker="x", c="black", s=60, label="modes")
        pad = 0.5 * (m.max() - m.min()) / max(1, int(np.sqrt(len(m)))) + 0.3
        ax.set_xlim(m[:, 0].min() - pad, m[:, 0].max() + pad)
        ax.set_ylim(m[:, 1].min() - pad, m[:, 1].max() + pad)
        ax.legend(loc="upper right")
    ax.set_title("samples (colour: c_cat[0])", fontsize=10)
    ax.set_aspect("equal")
    _margins(fig, left=0.5, bottom=0.35, right=0.15, top=0.35)
    fig.savefig(path, dpi=80)
    return path


def curves(history: Sequence[dict[str, float]], path: Path, title: str = "") -> Path:
    """Losses, mi/cat_ratio and gradient norms over training steps."""
    steps = [h["step"] for h in history]
    panels = [
        ("losses", ["loss/d", "loss/g", "loss/info"], False),
        ("mutual information", ["mi/cat_ratio"], False),
        ("gradient norms (before clipping)", ["grad/d", "grad/g", "grad/q"], True),
    ]
    fig = Figure(figsize=(12, 3.2))
    axes = fig.subplots(1, 3)
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
    _margins(fig, left=0.6, bottom=0.5, right=0.15, top=0.55 if title else 0.3, gap=0.85)
    fig.savefig(path, dpi=80)
    return path


def render(
    model: InfoGAN, cfg: TrainConfig, history: Sequence[dict[str, float]], out_dir: str | Path
) -> dict[str, str]:
    """Every figure that applies to this run, as PNG files in out_dir; name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    paths: dict[str, Path] = {}
    try:
        if dataset_entry(cfg.dataset).is_image:
            paths["samples"] = sample_grid(model, cfg, out / "samples.png")
            if cfg.cont_codes:
                paths["traversals"] = traversals(model, cfg, out / "traversals.png")
        else:
            paths["scatter"] = mode_scatter(model, cfg, out / "scatter.png")
    finally:
        model.train(was_training)
    if history:
        paths["curves"] = curves(history, out / "curves.png")
    return {k: str(v) for k, v in paths.items()}


__all__ = ["curves", "mode_scatter", "render", "sample_grid", "traversals"]
