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

from infogan_core import rng
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
    """Each member's own noise and codes from its own torch generator, in the order a single run draws them
    (noise, continuous codes, then each categorical code): z (K, n, latent_dim), each code (K, n), cont
    (K, n, cont_codes). prior_logits: one (K, k) per code. Evaluation and images draw this way; the training
    step draws from counters instead (`from_words`)."""
    cfg = cfgs[0]  # the members share every shape
    noise, cont, picks = [], [], []
    for c, g in zip(cfgs, gens, strict=True):
        noise.append(_unit_draw(c.noise_prior)(n, cfg.noise_dim, generator=g, device=device))
        cont.append(_unit_draw(c.cont_prior)(n, cfg.cont_codes, generator=g, device=device))
        picks.append(
            [
                -(-torch.rand(n, k, generator=g, device=device).clamp_(1e-10, 1 - 1e-10).log()).log()
                if cfg.learn_cat_prior
                else torch.randint(k, (n,), generator=g, device=device)
                for k in cfg.cat_codes
            ]
        )
    drawn = [torch.stack([p[j] for p in picks]) for j in range(len(cfg.cat_codes))]
    return _assemble(cfgs, prior_logits, torch.stack(noise), torch.stack(cont), drawn)


def words_per_latent(cfg: TrainConfig, n: int) -> int:
    """Counter words one latent batch of n takes (`from_words`): one per noise value, continuous code and
    categorical pick (k per code when the prior is learned: a Gumbel draw per category)."""
    picks = cfg.cat_dim if cfg.learn_cat_prior else len(cfg.cat_codes)
    return n * (cfg.noise_dim + cfg.cont_codes + picks)


def from_words(cfgs: Sequence[TrainConfig], prior_logits: Sequence[torch.Tensor], n: int, draws: rng.Draws) -> Latent:
    """Each member's noise and codes from its own counter words (`draws`, K x words_per_latent): the same
    numbers alone or in any population, on any device, in a number of kernels that does not depend on K."""
    cfg = cfgs[0]
    members = len(cfgs)
    d, c = cfg.noise_dim, cfg.cont_codes
    noise = _unit_words(draws.part(0, n * d), [m.noise_prior for m in cfgs]).view(members, n, d)
    cont = _unit_words(draws.part(n * d, n * (d + c)), [m.cont_prior for m in cfgs]).view(members, n, c)
    picks = draws.words[:, n * (d + c) :]
    drawn = []
    if cfg.learn_cat_prior:  # a Gumbel draw per category: (K, n, k) per code
        for part in picks.reshape(members, n, cfg.cat_dim).split(list(cfg.cat_codes), dim=-1):
            drawn.append(rng.gumbel(part))
    else:  # a category per sample: (K, n) per code
        for j, k in enumerate(cfg.cat_codes):
            drawn.append(rng.below(picks.reshape(members, n, len(cfg.cat_codes))[..., j], k))
    return _assemble(cfgs, prior_logits, noise, cont, drawn)


def _unit_words(draws: rng.Draws, priors: Sequence[str]) -> torch.Tensor:
    """Unit draws (K, L): U(0,1) for members with a uniform prior, N(0,1) for the others (made only when some
    member needs them), each member's own whatever the others'."""
    gaussian = [p != "uniform" for p in priors]
    if not any(gaussian):
        return draws.uniform()
    if all(gaussian):
        return draws.normal()
    mask = torch.tensor(gaussian, device=draws.words.device).view(-1, 1)
    return torch.where(mask, draws.normal(), draws.uniform())


def _one_hot(index: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    """(..., k) one-hot rows by comparison: no host sync on a GPU (F.one_hot checks the range there)."""
    return (index.unsqueeze(-1) == torch.arange(k, device=index.device)).to(dtype)


def _assemble(
    cfgs: Sequence[TrainConfig],
    prior_logits: Sequence[torch.Tensor],
    noise_units: torch.Tensor,
    cont_units: torch.Tensor,
    drawn: Sequence[torch.Tensor],
) -> Latent:
    """G's input from unit draws (K, n, d) of noise and codes, moved to each member's prior, and each
    categorical code's draws: indices (K, n), or Gumbel noise (K, n, k) for a learned prior."""
    cfg = cfgs[0]
    noise_t = _from_unit(noise_units, [c.noise_prior for c in cfgs])  # (K, n, d)
    cont_t = _from_unit(cont_units, [c.cont_prior for c in cfgs])
    cats, onehots = [], []
    for logits, draw in zip(prior_logits, drawn, strict=True):
        k = logits.shape[-1]
        if cfg.learn_cat_prior:  # straight-through Gumbel-softmax: one-hot forward, gradient to the prior
            soft = F.softmax(logits.unsqueeze(1) + draw, dim=-1)  # (K, n, k)
            idx = soft.argmax(-1)
            hard = _one_hot(idx, k, soft.dtype)
            onehots.append(hard - soft.detach() + soft)
        else:
            idx = draw  # (K, n)
            onehots.append(_one_hot(idx, k, noise_t.dtype))
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
    "from_words",
    "words_per_latent",
]
