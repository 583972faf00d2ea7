"""Generator, discriminator trunk + head, and the encoder Q (shared with D's trunk or isolated).

Families (registry ARCHS): `mlp` for vector data (images are flattened), `conv` for images of any
size divisible by 2**depth, `paper` = the InfoGAN paper's MNIST network (Table 1) for 28x28, at
widths 1, initialised as the paper's code does. Which family fits which data is checked once, by
TrainConfig. Every fully connected layer of the paper is an nn.Linear, never a convolution with a
full-size kernel: the same arithmetic, and far less time in backward passes on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from infogan_core.config import TrainConfig, scaled_units

PAPER_INIT_STD = 0.02  # the paper's code: weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), biases 0
# the paper code's slope: custom_ops.py `def leaky_rectify(x, leakiness=0.01):`, which regularized_gan.py's mnist
# network applies without an argument (`apply(leaky_rectify).`); the paper's text says 0.1
PAPER_CODE_SLOPE = 0.01


def leaky(cfg: TrainConfig, family_slope: float) -> nn.LeakyReLU:
    """D's or Q's leaky ReLU: cfg.leaky_slope when set, else 0.01 (the code's) for arch paper, else the family's."""
    if cfg.leaky_slope is not None:
        return nn.LeakyReLU(cfg.leaky_slope)
    return nn.LeakyReLU(PAPER_CODE_SLOPE if cfg.family == "paper" else family_slope)


def _output(cfg: TrainConfig) -> nn.Module:
    """G's last activation on images: tanh for [-1, 1], or sigmoid for [0, 1] (the paper code's Bernoulli mean)."""
    return nn.Sigmoid() if cfg.output_activation == "sigmoid" else nn.Tanh()


def to_model_range(x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Images in [-1, 1] (the datasets' range) -> the range G's samples and D's inputs are in: [0, 1] for sigmoid."""
    return (x + 1.0) / 2.0 if cfg.output_activation == "sigmoid" else x


def to_data_range(x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """G's samples -> [-1, 1], the range evaluation and images read them in."""
    return x * 2.0 - 1.0 if cfg.output_activation == "sigmoid" else x


def _bn1d(n: int, on: bool) -> list[nn.Module]:
    return [nn.BatchNorm1d(n)] if on else []


def _bn2d(n: int, on: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(n)] if on else []


@dataclass
class Family:
    generator: nn.Module  # (B, latent_dim) -> (B, *sample_shape)
    # (width, BN on) -> a D-like trunk (B, *shape) -> (B, features), and its features
    trunk: Callable[[float, bool], tuple[nn.Module, int]]
    q_hidden: Callable[[float], int]  # width -> units of Q's hidden layer


def _mlp(cfg: TrainConfig, shape: tuple[int, ...]) -> Family:
    out = math.prod(shape)
    g_units = scaled_units(128, cfg.g_width)
    g_layers: list[nn.Module] = []
    width = cfg.latent_dim
    for _ in range(cfg.g_depth):
        g_layers += [nn.Linear(width, g_units), *_bn1d(g_units, cfg.g_batchnorm), nn.ReLU()]
        width = g_units
    g_layers.append(nn.Linear(width, out))
    if len(shape) > 1:  # images: pixels in [-1, 1] (tanh) or [0, 1] (sigmoid)
        g_layers += [_output(cfg), nn.Unflatten(1, shape)]

    def trunk(scale: float, bn: bool) -> tuple[nn.Module, int]:
        units = scaled_units(128, scale)
        layers: list[nn.Module] = [nn.Flatten()]
        width = out
        for i in range(cfg.d_depth):
            layers += [nn.Linear(width, units), *_bn1d(units, bn and i > 0), leaky(cfg, 0.2)]
            width = units
        return nn.Sequential(*layers), units

    return Family(nn.Sequential(*g_layers), trunk, lambda scale: scaled_units(128, scale))


def _conv(cfg: TrainConfig, shape: tuple[int, ...]) -> Family:
    channels, height, width = shape

    # D: conv 64 (no BN) -> conv 128 (BN) -> ... -> FC 1024 (BN), leaky ReLU (0.1 in Table 1, 0.01 in the code)
    def trunk(scale: float, bn: bool) -> tuple[nn.Module, int]:
        d_ch = [scaled_units(64 * 2**i, scale) for i in range(cfg.d_depth)]
        d_fc = scaled_units(1024, scale)
        dh, dw = height // 2**cfg.d_depth, width // 2**cfg.d_depth
        layers: list[nn.Module] = []
        c_in = channels
        for i, c in enumerate(d_ch):
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), *_bn2d(c, bn and i > 0), leaky(cfg, 0.1)]
            c_in = c
        layers += [nn.Flatten(), nn.Linear(c_in * dh * dw, d_fc), *_bn1d(d_fc, bn), leaky(cfg, 0.1)]
        return nn.Sequential(*layers), d_fc

    # G: FC 1024 -> FC (128, h, w) -> upconv 64 -> upconv C, BN + ReLU, tanh (Table 1) or sigmoid (the code) output
    g_ch = [scaled_units(64 * 2**i, cfg.g_width) for i in reversed(range(cfg.g_depth))]
    g_fc = scaled_units(1024, cfg.g_width)
    gh, gw = height // 2**cfg.g_depth, width // 2**cfg.g_depth
    bn = cfg.g_batchnorm
    layers: list[nn.Module] = [nn.Linear(cfg.latent_dim, g_fc), *_bn1d(g_fc, bn), nn.ReLU()]
    layers += [nn.Linear(g_fc, g_ch[0] * gh * gw), *_bn1d(g_ch[0] * gh * gw, bn), nn.ReLU()]
    layers.append(nn.Unflatten(1, (g_ch[0], gh, gw)))
    for c_in, c_out in zip(g_ch, g_ch[1:], strict=False):
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), *_bn2d(c_out, bn), nn.ReLU()]
    layers += [nn.ConvTranspose2d(g_ch[-1], channels, 4, 2, 1), _output(cfg)]
    return Family(nn.Sequential(*layers), trunk, lambda scale: scaled_units(128, scale))


ARCHS: dict[str, Callable[[TrainConfig, tuple[int, ...]], Family]] = {
    "mlp": _mlp,
    "conv": _conv,
    "paper": _conv,  # Table 1 is the conv family at widths 1 and depth 2, which TrainConfig holds it to
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
            nn.Linear(features, hidden), *_bn1d(hidden, bn), leaky(cfg, 0.1), nn.Linear(hidden, outputs)
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


def _paper_init(module: nn.Module) -> None:
    """N(0, 0.02) weights and zero biases for linear and conv layers, N(1, 0.02) batch-norm scales."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, PAPER_INIT_STD)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.normal_(m.weight, 1.0, PAPER_INIT_STD)
            nn.init.zeros_(m.bias)


class InfoGAN(nn.Module):
    """All networks of one run; `q_trunk` is None when Q shares D's trunk."""

    def __init__(self, cfg: TrainConfig, sample_shape: tuple[int, ...]) -> None:
        super().__init__()
        family = ARCHS[cfg.family](cfg, tuple(sample_shape))
        self.generator = family.generator
        self.d_trunk, d_features = family.trunk(cfg.d_width, cfg.d_batchnorm != "none")
        self.d_head = nn.Linear(d_features, 1)
        # Q's head, and an isolated encoder's trunk (Q's own network), have BN as q_batchnorm says (null: as D)
        isolated = cfg.encoder == "isolated"
        self.q_trunk, q_features = family.trunk(cfg.q_scale, cfg.q_bn) if isolated else (None, d_features)
        self.q_head = QHead(cfg, q_features, family.q_hidden(cfg.q_scale), cfg.q_bn)
        # logits of the categorical prior, learned only when cfg.learn_cat_prior
        self.cat_prior = nn.ParameterList(
            [nn.Parameter(torch.zeros(k), requires_grad=cfg.learn_cat_prior) for k in cfg.cat_codes]
        )
        if cfg.init_scheme == "normal":
            _paper_init(self)

    def encode(self, x: torch.Tensor, features: torch.Tensor | None = None) -> Posterior:
        """Q's posterior for samples x; `features` are D's trunk output for x when already computed."""
        if self.q_trunk is not None:
            return self.q_head(self.q_trunk(x))
        return self.q_head(self.d_trunk(x) if features is None else features)


__all__ = [
    "ARCHS",
    "PAPER_CODE_SLOPE",
    "PAPER_INIT_STD",
    "InfoGAN",
    "Posterior",
    "QHead",
    "leaky",
    "to_data_range",
    "to_model_range",
]
