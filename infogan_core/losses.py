"""Adversarial losses and the terms of the mutual-information lower bound.

L_I(G, Q) = H(c) - CE(c, Q(c | G(z, c))) <= I(c; G(z, c))  (InfoGAN, Lemma 5.1), in nats.
H(c) is a constant for the parameters unless the categorical prior is learned.

Every loss averages over the batch dimension alone, so a population's (K, B, ...) inputs give one
value per member, (K,), and a single run's (B, ...) inputs one number.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from infogan_core.latent import PRIORS

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
TINY = 1e-8  # the paper code's guard inside log(D + TINY) when losses are computed on probabilities


def _log_d(logits: torch.Tensor, space: str) -> torch.Tensor:
    """log D(x) = log sigmoid(logit): exact from logits, or the paper code's log(sigmoid + TINY)."""
    return -F.softplus(-logits) if space == "logits" else torch.log(torch.sigmoid(logits) + TINY)


def _log_not_d(logits: torch.Tensor, space: str) -> torch.Tensor:
    """log(1 - D(x)) = log sigmoid(-logit), exact or as log(1 - sigmoid + TINY)."""
    return -F.softplus(logits) if space == "logits" else torch.log(1 - torch.sigmoid(logits) + TINY)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, space: str = "logits") -> torch.Tensor:
    """Binary cross-entropy of D: real -> 1, fake -> 0 (sum of the two means over the batch)."""
    return -_log_d(real_logits, space).mean(-1) - _log_not_d(fake_logits, space).mean(-1)


def g_loss(fake_logits: torch.Tensor, kind: str, space: str = "logits") -> torch.Tensor:
    """nonsaturating: -log D(G(z)); saturating: log(1 - D(G(z))) (steep where D(G(z)) -> 0)."""
    return g_loss_per_sample(fake_logits, kind, space).mean(-1)


def g_loss_per_sample(fake_logits: torch.Tensor, kind: str, space: str = "logits") -> torch.Tensor:
    """The generator's adversarial loss of each sample, (B,)."""
    return -_log_d(fake_logits, space) if kind == "nonsaturating" else _log_not_d(fake_logits, space)


def prior_score_surrogate(
    prior_logits: list[torch.Tensor], codes: list[torch.Tensor], per_sample_loss: torch.Tensor
) -> torch.Tensor:
    """A surrogate whose gradient in the prior's logits is the score-function estimate of d E[loss] / d logits:
    mean((L_i - mean L) * log p(c_i)), with the batch mean as baseline. Codes whose samples D finds more
    fake than average lose probability: the prior moves toward the data's class frequencies.

    Logits (..., k), codes and per-sample losses (..., B): one surrogate per member."""
    advantage = (per_sample_loss - per_sample_loss.mean(-1, keepdim=True)).detach()  # (..., B)
    log_p = sum(
        F.log_softmax(logits, -1).gather(-1, c) for logits, c in zip(prior_logits, codes, strict=True)
    )  # (..., B)
    return (advantage * log_p).mean(-1)


def cat_cross_entropy(logits: list[torch.Tensor], codes: list[torch.Tensor]) -> torch.Tensor:
    """Sum over categorical codes of the batch-mean CE between Q's logits (..., B, k) and codes (..., B)."""
    if not logits:
        return torch.zeros(())
    return sum(
        F.cross_entropy(lg.reshape(-1, lg.shape[-1]), c.reshape(-1), reduction="none").view(c.shape).mean(-1)
        for lg, c in zip(logits, codes, strict=True)
    )


def gaussian_nll(mean: torch.Tensor, std: torch.Tensor | None, codes: torch.Tensor) -> torch.Tensor:
    """Sum over continuous codes of the batch-mean Gaussian NLL, std 1 when not learned; codes (..., B, c)."""
    if codes.shape[-1] == 0:
        return torch.zeros((), device=codes.device)
    if std is None:
        return (0.5 * (codes - mean).pow(2) + HALF_LOG_2PI).sum(-1).mean(-1)
    return (0.5 * ((codes - mean) / std).pow(2) + std.log() + HALF_LOG_2PI).sum(-1).mean(-1)


def cont_prior_entropy(count: int, prior: str) -> float:
    """Differential entropy of the continuous codes' prior, nats: a unit draw's (U(0,1): 0, N(0,1):
    0.5 ln 2 pi e) plus ln of the prior's scale (latent.PRIORS): U(-1,1) -> ln 2, N(0,1) -> 0.5 ln 2 pi e."""
    unit = 0.0 if prior == "uniform" else 0.5 * math.log(2 * math.pi * math.e)
    return count * (unit + math.log(PRIORS[prior][0]))


def categorical_entropy(prior_logits: list[torch.Tensor]) -> torch.Tensor:
    """H(c) of the categorical prior(s) given by logits (..., k), nats; differentiable in the logits."""
    total = torch.zeros(())
    for logits in prior_logits:
        logp = F.log_softmax(logits, dim=-1)
        total = total + -(logp.exp() * logp).sum(-1)
    return total


__all__ = [
    "cat_cross_entropy",
    "categorical_entropy",
    "cont_prior_entropy",
    "d_loss",
    "g_loss",
    "g_loss_per_sample",
    "gaussian_nll",
    "prior_score_surrogate",
]
