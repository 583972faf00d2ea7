"""G's input: noise and codes drawn from their priors, and the fixed code grids that images sweep.

One way to build a latent vector: noise (B, noise_dim), one one-hot block per categorical code,
continuous codes (B, cont_codes), concatenated in that order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch.nn import functional as F

from infogan_core.config import TrainConfig

GRID_STEPS = 8  # columns of a continuous-code sweep, from -1 to 1


# each prior as (scale, shift) of a unit draw, U(0,1) for uniform and N(0,1) otherwise: x * scale + shift.
# gaussian_matched is N(0, 1/3), the variance of U(-1,1).
PRIORS: dict[str, tuple[float, float]] = {
    "uniform": (2.0, -1.0),
    "gaussian": (1.0, 0.0),
    "gaussian_matched": (3**-0.5, 0.0),
}


def _unit_draw(prior: str):
    return torch.rand if prior == "uniform" else torch.randn


@functools.cache
def _prior_columns(priors: tuple[str, ...], device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """(K, 1, 1) scale and shift of each member's prior, built once per population, not every step."""
    scale, shift = zip(*(PRIORS[p] for p in priors), strict=True)
    return tuple(torch.tensor(v, device=device, dtype=dtype).view(-1, 1, 1) for v in (scale, shift))


def _from_unit(draws: torch.Tensor, priors: Sequence[str]) -> torch.Tensor:
    """Each member's unit draws (K, n, d) moved to its prior (exact: x * 2 - 1 for uniform, x for gaussian)."""
    scale, shift = _prior_columns(tuple(priors), draws.device, draws.dtype)
    return draws * scale + shift


class Latent(NamedTuple):
    z: torch.Tensor  # (B, latent_dim): G's input
    cat: list[torch.Tensor]  # each (B,): the category index of each categorical code
    cont: torch.Tensor  # (B, cont_codes)


def sample_noise(cfg: TrainConfig, n: int, gen: torch.Generator, device: torch.device | None = None) -> torch.Tensor:
    """(n, noise_dim) noise from cfg's noise prior."""
    draws = _unit_draw(cfg.noise_prior)(n, cfg.noise_dim, generator=gen, device=device)
    return _from_unit(draws.unsqueeze(0), [cfg.noise_prior])[0]


def sample_latent(
    cfg: TrainConfig, prior_logits: Sequence[torch.Tensor], n: int, gen: torch.Generator, device: torch.device
) -> Latent:
    """Noise, categorical and continuous codes drawn from their priors, concatenated for G: (n, latent_dim).

    `prior_logits` holds one (k,) logit vector per categorical code (the model's `cat_prior`); they
    matter only when the prior is learned, and are then sampled differentiably.
    """
    z, cats, cont = sample_members([cfg], [logits.unsqueeze(0) for logits in prior_logits], n, [gen], device)
    return Latent(z[0], [c[0] for c in cats], cont[0])


def sample_members(
    cfgs: Sequence[TrainConfig],
    prior_logits: Sequence[torch.Tensor],
    n: int,
    gens: Sequence[torch.Generator],
    device: torch.device,
) -> Latent:
    """Each member's own noise and codes, from its own generator in the order a single run draws them
    (noise, continuous codes, then each categorical code), transformed for all members at once:
    z (K, n, latent_dim), each code (K, n), cont (K, n, cont_codes). prior_logits: one (K, k) per code."""
    cfg = cfgs[0]  # the members share every shape
    noise, cont, picks = [], [], []
    for c, g in zip(cfgs, gens, strict=True):
        noise.append(_unit_draw(c.noise_prior)(n, cfg.noise_dim, generator=g, device=device))
        cont.append(_unit_draw(c.cont_prior)(n, cfg.cont_codes, generator=g, device=device))
        picks.append(
            [
                torch.rand(n, k, generator=g, device=device)
                if cfg.learn_cat_prior
                else torch.randint(k, (n,), generator=g, device=device)
                for k in cfg.cat_codes
            ]
        )
    noise_t = _from_unit(torch.stack(noise), [c.noise_prior for c in cfgs])  # (K, n, d)
    cont_t = _from_unit(torch.stack(cont), [c.cont_prior for c in cfgs])
    cats, onehots = [], []
    for j, logits in enumerate(prior_logits):
        drawn = torch.stack([p[j] for p in picks])
        if cfg.learn_cat_prior:  # straight-through Gumbel-softmax: one-hot forward, gradient to the prior
            u = drawn.clamp_(1e-10, 1 - 1e-10)  # (K, n, k)
            soft = F.softmax(logits.unsqueeze(1) - (-u.log()).log(), dim=-1)
            idx = soft.argmax(-1)
            hard = F.one_hot(idx, logits.shape[-1]).to(soft.dtype)
            onehots.append(hard - soft.detach() + soft)
        else:
            idx = drawn  # (K, n)
            onehots.append(F.one_hot(idx, logits.shape[-1]).float())
        cats.append(idx)
    return Latent(torch.cat([noise_t, *onehots, cont_t], -1), cats, cont_t)


def _fixed(cfg: TrainConfig, noise: torch.Tensor, cats: Sequence[Sequence[int]], cont: torch.Tensor) -> torch.Tensor:
    """G's input for given noise (B, noise_dim), category indices (B lists, one index per code) and codes (B, cont)."""
    index = torch.tensor(cats, dtype=torch.int64).reshape(len(noise), len(cfg.cat_codes))  # (B, codes)
    onehots = [F.one_hot(index[:, i], k).float() for i, k in enumerate(cfg.cat_codes)]
    return torch.cat([noise, *onehots, cont], 1)


def sample_grid_latent(cfg: TrainConfig, gen: torch.Generator) -> tuple[torch.Tensor, int]:
    """(z, rows) for a sample grid: one row per value of the first categorical code (one noise vector
    per row), columns the first continuous code swept from -1 to 1 (random noise when there is none)."""
    rows = cfg.cat_codes[0] if cfg.cat_codes else 8
    noise = sample_noise(cfg, rows, gen).repeat_interleave(GRID_STEPS, 0)  # one z per row
    cont = torch.zeros(rows * GRID_STEPS, cfg.cont_codes)
    if cfg.cont_codes:
        cont[:, 0] = torch.linspace(-1, 1, GRID_STEPS).repeat(rows)
    else:
        noise = sample_noise(cfg, rows * GRID_STEPS, gen)
    cats = [[r if i == 0 else 0 for i in range(len(cfg.cat_codes))] for r in range(rows) for _ in range(GRID_STEPS)]
    return _fixed(cfg, noise, cats, cont), rows


def traversal_latent(cfg: TrainConfig, gen: torch.Generator, code: int, rows: int) -> torch.Tensor:
    """z for one continuous code's traversal: rows of fixed (noise, categories), columns the code swept."""
    noise = sample_noise(cfg, rows, gen).repeat_interleave(GRID_STEPS, 0)
    cont = torch.zeros(rows * GRID_STEPS, cfg.cont_codes)
    cont[:, code] = torch.linspace(-1, 1, GRID_STEPS).repeat(rows)
    cats = [int(torch.randint(k, (1,), generator=gen)) for k in cfg.cat_codes]
    return _fixed(cfg, noise, [cats] * (rows * GRID_STEPS), cont)


__all__ = [
    "GRID_STEPS",
    "Latent",
    "sample_grid_latent",
    "sample_latent",
    "sample_members",
    "sample_noise",
    "traversal_latent",
]
