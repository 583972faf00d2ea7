"""Adversarial losses and the terms of the mutual-information lower bound.

L_I(G, Q) = H(c) - CE(c, Q(c | G(z, c))) <= I(c; G(z, c))  (InfoGAN, Lemma 5.1), in nats.
H(c) is a constant for the parameters unless the categorical prior is learned.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of D: real -> 1, fake -> 0 (sum of the two means)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """nonsaturating: -log D(G(z)); saturating: log(1 - D(G(z))) (steep where D(G(z)) -> 0)."""
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    return -F.softplus(fake_logits).mean()


def cat_cross_entropy(logits: list[torch.Tensor], codes: list[torch.Tensor]) -> torch.Tensor:
    """Sum over categorical codes of the batch-mean CE between Q's logits (B, k) and codes (B,)."""
    if not logits:
        return torch.zeros(())
    return sum(F.cross_entropy(lg, c) for lg, c in zip(logits, codes, strict=True))


def gaussian_nll(mean: torch.Tensor, std: torch.Tensor | None, codes: torch.Tensor) -> torch.Tensor:
    """Sum over continuous codes of the batch-mean Gaussian NLL, std 1 when not learned."""
    if codes.shape[1] == 0:
        return torch.zeros((), device=codes.device)
    if std is None:
        return (0.5 * (codes - mean).pow(2) + HALF_LOG_2PI).sum(1).mean()
    return (0.5 * ((codes - mean) / std).pow(2) + std.log() + HALF_LOG_2PI).sum(1).mean()


def cont_prior_entropy(count: int, prior: str) -> float:
    """Differential entropy of the continuous codes' prior, nats: U(-1,1) -> ln 2, N(0,1) -> 0.5 ln 2 pi e."""
    per_dim = math.log(2.0) if prior == "uniform" else 0.5 * math.log(2 * math.pi * math.e)
    return count * per_dim


def categorical_entropy(prior_logits: list[torch.Tensor]) -> torch.Tensor:
    """H(c) of the categorical prior(s), nats; differentiable in the logits."""
    total = torch.zeros(())
    for logits in prior_logits:
        logp = F.log_softmax(logits, dim=0)
        total = total + -(logp.exp() * logp).sum()
    return total


__all__ = [
    "cat_cross_entropy",
    "categorical_entropy",
    "cont_prior_entropy",
    "d_loss",
    "g_loss",
    "gaussian_nll",
]
