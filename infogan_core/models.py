"""Generator, discriminator trunk + head, and the encoder Q (shared with D's trunk or isolated).

Families (registry ARCHS): `mlp` for vector data (images are flattened), `conv` for images of any
size divisible by 2**depth, `paper` = the InfoGAN paper's MNIST network (Table 1) for 28x28.
Every fully connected layer of the paper is an nn.Linear, never a convolution with a full-size
kernel: the same arithmetic, and far less time in backward passes on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from infogan_core.config import TrainConfig
from infogan_core.errors import ConfigError


def _scaled(units: int, width: float) -> int:
    return max(4, int(round(units * width)))


def _bn1d(n: int, on: bool) -> list[nn.Module]:
    return [nn.BatchNorm1d(n)] if on else []


def _bn2d(n: int, on: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(n)] if on else []


@dataclass
class Family:
    generator: nn.Module  # (B, latent_dim) -> (B, *sample_shape)
    trunk: Callable[[], nn.Module]  # builds a D-like trunk: (B, *sample_shape) -> (B, features)
    features: int  # width of the trunk's output
    q_hidden: int  # width of Q's hidden layer


def _mlp(cfg: TrainConfig, shape: tuple[int, ...], bn_d: bool) -> Family:
    out = math.prod(shape)
    g_units, d_units = _scaled(128, cfg.g_width), _scaled(128, cfg.d_width)
    g_layers: list[nn.Module] = []
    width = cfg.latent_dim
    for _ in range(cfg.g_depth):
        g_layers += [nn.Linear(width, g_units), *_bn1d(g_units, cfg.g_batchnorm), nn.ReLU()]
        width = g_units
    g_layers.append(nn.Linear(width, out))
    if len(shape) > 1:  # images: pixels in [-1, 1]
        g_layers += [nn.Tanh(), nn.Unflatten(1, shape)]

    def trunk() -> nn.Module:
        layers: list[nn.Module] = [nn.Flatten()]
        width = out
        for i in range(cfg.d_depth):
            layers += [nn.Linear(width, d_units), *_bn1d(d_units, bn_d and i > 0), nn.LeakyReLU(0.2)]
            width = d_units
        return nn.Sequential(*layers)

    return Family(nn.Sequential(*g_layers), trunk, d_units, d_units)


def _conv(cfg: TrainConfig, shape: tuple[int, ...], bn_d: bool) -> Family:
    if len(shape) != 3:
        raise ConfigError(f"`arch` conv needs image data, but dataset `{cfg.dataset}` gives shape {shape}")
    channels, height, width = shape
    for depth, who in ((cfg.d_depth, "d_depth"), (cfg.g_depth, "g_depth")):
        if height % 2**depth or width % 2**depth:
            raise ConfigError(f"`{who}` must leave {height}x{width} images divisible by 2**{who}, but got {depth}")
    # D: conv 64 (no BN) -> conv 128 (BN) -> ... -> FC 1024 (BN), leaky ReLU 0.1 (paper Table 1)
    d_ch = [_scaled(64 * 2**i, cfg.d_width) for i in range(cfg.d_depth)]
    d_fc = _scaled(1024, cfg.d_width)
    dh, dw = height // 2**cfg.d_depth, width // 2**cfg.d_depth

    def trunk() -> nn.Module:
        layers: list[nn.Module] = []
        c_in = channels
        for i, c in enumerate(d_ch):
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), *_bn2d(c, bn_d and i > 0), nn.LeakyReLU(0.1)]
            c_in = c
        layers += [nn.Flatten(), nn.Linear(c_in * dh * dw, d_fc), *_bn1d(d_fc, bn_d), nn.LeakyReLU(0.1)]
        return nn.Sequential(*layers)

    # G: FC 1024 -> FC (128, h, w) -> upconv 64 -> upconv C, BN + ReLU, tanh output (paper Table 1)
    g_ch = [_scaled(64 * 2**i, cfg.g_width) for i in reversed(range(cfg.g_depth))]
    g_fc = _scaled(1024, cfg.g_width)
    gh, gw = height // 2**cfg.g_depth, width // 2**cfg.g_depth
    bn = cfg.g_batchnorm
    layers: list[nn.Module] = [nn.Linear(cfg.latent_dim, g_fc), *_bn1d(g_fc, bn), nn.ReLU()]
    layers += [nn.Linear(g_fc, g_ch[0] * gh * gw), *_bn1d(g_ch[0] * gh * gw, bn), nn.ReLU()]
    layers.append(nn.Unflatten(1, (g_ch[0], gh, gw)))
    for c_in, c_out in zip(g_ch, g_ch[1:], strict=False):
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), *_bn2d(c_out, bn), nn.ReLU()]
    layers += [nn.ConvTranspose2d(g_ch[-1], channels, 4, 2, 1), nn.Tanh()]
    return Family(nn.Sequential(*layers), trunk, d_fc, _scaled(128, cfg.d_width))


def _paper(cfg: TrainConfig, shape: tuple[int, ...], bn_d: bool) -> Family:
    if tuple(shape) != (1, 28, 28):
        raise ConfigError(f"`arch` paper is the 28x28 MNIST network, but dataset `{cfg.dataset}` gives {shape}")
    return _conv(cfg, shape, bn_d)


ARCHS: dict[str, Callable[[TrainConfig, tuple[int, ...], bool], Family]] = {
    "mlp": _mlp,
    "conv": _conv,
    "paper": _paper,
}


class Posterior(NamedTuple):
    """Q(c|x): what the encoder says about the codes behind samples x."""

    logits: list[torch.Tensor]  # one (B, k) per categorical code
    mean: torch.Tensor  # (B, cont_codes): Gaussian means of the continuous codes
    std: torch.Tensor | None  # (B, cont_codes) learned stds, or None when the std is fixed at 1


class QHead(nn.Module):
    """Posterior Q(c|x) from features: categorical logits and Gaussian means (and stds)."""

    def __init__(self, cfg: TrainConfig, features: int, hidden: int, bn: bool) -> None:
        super().__init__()
        self.cat_codes = cfg.cat_codes
        self.cont = cfg.cont_codes
        self.learned_std = cfg.q_std == "learned"
        self.min_std = cfg.q_min_std
        outputs = cfg.cat_dim + cfg.cont_codes * (2 if self.learned_std else 1)
        self.net = nn.Sequential(
            nn.Linear(features, hidden), *_bn1d(hidden, bn), nn.LeakyReLU(0.1), nn.Linear(hidden, outputs)
        )

    def forward(self, h: torch.Tensor) -> Posterior:
        out = self.net(h)  # (B, cat_dim + cont * (1 or 2))
        logits = list(out[:, : sum(self.cat_codes)].split(list(self.cat_codes), dim=1))  # each (B, k)
        rest = out[:, sum(self.cat_codes) :]
        mean = rest[:, : self.cont]  # (B, cont)
        std = None
        if self.learned_std:
            std = self.min_std + nn.functional.softplus(rest[:, self.cont :])  # (B, cont), > min_std
        return Posterior(logits, mean, std)


class InfoGAN(nn.Module):
    """All networks of one run; `q_trunk` is None when Q shares D's trunk."""

    def __init__(self, cfg: TrainConfig, sample_shape: tuple[int, ...]) -> None:
        super().__init__()
        bn_d = cfg.d_batchnorm != "none"
        family = ARCHS[cfg.arch](cfg, tuple(sample_shape), bn_d)
        self.generator = family.generator
        self.d_trunk = family.trunk()
        self.d_head = nn.Linear(family.features, 1)
        self.q_trunk = family.trunk() if cfg.encoder == "isolated" else None
        self.q_head = QHead(cfg, family.features, family.q_hidden, bn_d)
        # logits of the categorical prior, learned only when cfg.learn_cat_prior
        self.cat_prior = nn.ParameterList(
            [nn.Parameter(torch.zeros(k), requires_grad=cfg.learn_cat_prior) for k in cfg.cat_codes]
        )

    def encode(self, x: torch.Tensor, features: torch.Tensor | None = None) -> Posterior:
        """Q's posterior for samples x; `features` are D's trunk output for x when already computed."""
        if self.q_trunk is not None:
            return self.q_head(self.q_trunk(x))
        return self.q_head(self.d_trunk(x) if features is None else features)


__all__ = ["ARCHS", "InfoGAN", "Posterior", "QHead"]
