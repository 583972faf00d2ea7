"""Computing the eval/* metrics: known-answer functions on arrays, and the evaluation of a model.

The names, directions and meanings are in `metrics.METRICS`; this module computes the values.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from scipy import optimize, stats
from torch import nn

from infogan_core.config import TrainConfig
from infogan_core.data import Dataset
from infogan_core.latent import sample_latent
from infogan_core.models import InfoGAN, Posterior, to_data_range, to_model_range

CACHE_DIR_ENV = "INFOGAN_CACHE_DIR"


# --- known-answer metrics on arrays -----------------------------------------------------------


def match_categories(pred: np.ndarray, labels: np.ndarray) -> tuple[dict[int, int], float]:
    """The best one-to-one matching of predicted categories to classes (Hungarian): category -> class,
    and the accuracy it gives."""
    pred, labels = np.asarray(pred, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    table = np.zeros((pred.max() + 1, labels.max() + 1))  # (categories, classes)
    np.add.at(table, (pred, labels), 1)
    rows, cols = optimize.linear_sum_assignment(table, maximize=True)
    return dict(zip(rows.tolist(), cols.tolist(), strict=True)), float(table[rows, cols].sum() / len(labels))


def matched_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy after the best one-to-one matching of predicted categories to classes (Hungarian)."""
    return match_categories(pred, labels)[1]


def prior_kl(prior: np.ndarray, frequencies: np.ndarray, matching: dict[int, int]) -> float:
    """KL(prior || class frequencies) in nats, each category compared with the class it was matched to;
    categories matched to no class keep the order of the unmatched classes."""
    classes = [matching.get(k) for k in range(len(prior))]
    spare = iter(c for c in range(len(frequencies)) if c not in set(classes))
    q = frequencies[[c if c is not None else next(spare) for c in classes]]
    p = np.asarray(prior, dtype=np.float64)
    nonzero = p > 0
    return float(np.sum(p[nonzero] * np.log(p[nonzero] / q[nonzero])))


def mode_coverage(samples: np.ndarray, modes: np.ndarray, std: float) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples): a sample is high quality within 3 std of
    its nearest mode; a mode is covered when at least one high-quality sample is nearest to it."""
    dist = np.linalg.norm(samples[:, None, :] - modes[None, :, :], axis=2)  # (N, M)
    nearest = dist.argmin(1)
    hq = dist[np.arange(len(samples)), nearest] <= 3 * std
    return int(len(np.unique(nearest[hq]))), float(hq.mean())


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between Gaussians fitted to a and b."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # Tr((S_a S_b)^1/2) = sum of sqrt(eigenvalues of S_a^1/2 S_b S_a^1/2), a symmetric PSD matrix:
    # stable where the covariances are singular (dead ReLU features), unlike sqrtm of S_a S_b
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean
    return float(max(value, 0.0))


def factor_alignment(codes: np.ndarray, factors: np.ndarray) -> float:
    """Mean |Spearman rho| of continuous codes matched one-to-one to true factors (Hungarian).

    1.0: each code is a monotone function of its own factor; near 0: codes ignore the factors.
    """
    k = codes.shape[1]
    rho = np.zeros((k, factors.shape[1]))
    for i in range(k):
        for j in range(factors.shape[1]):
            r = stats.spearmanr(codes[:, i], factors[:, j]).statistic
            rho[i, j] = 0.0 if not np.isfinite(r) else abs(r)
    rows, cols = optimize.linear_sum_assignment(rho, maximize=True)
    return float(rho[rows, cols].mean())


# --- the reference classifier for the Frechet distance ----------------------------------------

_REFERENCE: dict[str, tuple[nn.Module, np.ndarray]] = {}


def _reference_net(in_dim: int, classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_dim, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, classes)
    )


def reference_features(data: Dataset) -> tuple[nn.Module, np.ndarray]:
    """(feature extractor, features of up to 10,000 real samples) for `data`.

    Images with labels: the 64-d penultimate layer of a small MLP classifier trained once on the
    dataset (seeded, 400 Adam steps), cached in memory and under $INFOGAN_CACHE_DIR (default
    ~/.cache/infogan_core). 2-D data: the raw coordinates.
    """
    # the first 1 MB of the samples (a view, not a copy of the whole set) and the shape identify the data
    head = data.x.reshape(-1)[: 1_000_000 // data.x.itemsize].tobytes()
    digest = hashlib.sha256(head + str(data.x.shape).encode()).hexdigest()[:16]
    key = f"{data.name}-{digest}"  # not the name alone: `mnist` from two folders are two datasets
    if key in _REFERENCE:
        return _REFERENCE[key]
    x = torch.from_numpy(data.x[:10000])
    if not data.is_image or data.labels is None:
        net: nn.Module = nn.Flatten()
    else:
        cache = Path(os.environ.get(CACHE_DIR_ENV, Path.home() / ".cache" / "infogan_core"))
        path = cache / f"reference-{key}.pt"
        full = _reference_net(int(np.prod(data.sample_shape)), data.num_classes)
        try:
            full.load_state_dict(torch.load(path, weights_only=True))
        except Exception:  # missing, truncated or foreign file (garbage raises KeyError, UnpicklingError): fit again
            _fit_reference(full, data)
            cache.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save(full.state_dict(), tmp)
            os.replace(tmp, path)
        net = full[:-1].eval()
    with torch.no_grad():
        feats = net(x).numpy().astype(np.float64)
    _REFERENCE[key] = (net, feats)
    return net, feats


@torch.enable_grad()
def _fit_reference(net: nn.Module, data: Dataset) -> None:
    gen = torch.Generator().manual_seed(0)
    x_all, labels = torch.from_numpy(data.x), torch.from_numpy(data.labels)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(400):
        idx = torch.randint(len(data.x), (256,), generator=gen)
        loss = nn.functional.cross_entropy(net(x_all[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()


# --- evaluation of a model --------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: InfoGAN, cfg: TrainConfig, data: Dataset, *, seed: int) -> dict[str, float]:
    """The eval/* metrics that apply to this dataset and code layout."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    out: dict[str, float] = {}
    fake = model.generator(sample_latent(cfg, model.cat_prior, cfg.eval_samples, gen, device).z)
    fake = to_data_range(fake, cfg).float().cpu()  # (N, *shape) in [-1, 1], as the data
    real = torch.from_numpy(data.x[:10000])
    want_cat = data.labels is not None and bool(cfg.cat_codes)
    want_factors = data.factors is not None and bool(cfg.cont_codes)
    if want_cat or want_factors:  # Q's posterior on real data, encoded once for both metrics
        posterior = _encode_batched(model, to_model_range(real.to(device), cfg))
    if want_cat:
        matching, out["eval/cat_acc"] = match_categories(
            posterior.logits[0].argmax(1).cpu().numpy(), data.labels[:10000]
        )
        if cfg.cat_codes[0] == data.num_classes:  # the learned (or uniform) prior against the true frequencies
            frequencies = np.bincount(data.labels, minlength=data.num_classes) / len(data.labels)
            prior = torch.softmax(model.cat_prior[0].detach().double(), 0).cpu().numpy()
            out["eval/prior_kl"] = prior_kl(prior, frequencies, matching)
    if data.modes is not None:
        modes, hq = mode_coverage(fake.numpy(), data.modes, data.mode_std)
        out["eval/modes"], out["eval/hq"] = float(modes), hq
    if data.labels is not None or not data.is_image:
        net, real_feats = reference_features(data)
        fake_feats = net(fake).numpy().astype(np.float64)
        out["eval/fd"] = frechet_distance(real_feats, fake_feats) if np.isfinite(fake_feats).all() else float("inf")
    if want_factors:
        out["eval/factor_align"] = factor_alignment(posterior.mean.cpu().numpy(), data.factors[:10000])
    if data.is_image and cfg.cont_codes:
        out |= _sample_geometry(model, cfg, seed=seed)
    model.train(was_training)
    return out


def _encode_batched(model: InfoGAN, x: torch.Tensor, batch: int = 2048) -> Posterior:
    """Q's posterior for every sample of x, encoded in batches; stds are not needed here."""
    parts = [model.encode(x[i : i + batch]) for i in range(0, len(x), batch)]
    logits = [torch.cat([p.logits[j] for p in parts]) for j in range(len(parts[0].logits))]
    return Posterior(logits, torch.cat([p.mean for p in parts]), None)


# --- digit geometry: slant and stroke width by image moments (the paper's Figure 2 factors) ----------------


def _ink(images: np.ndarray) -> np.ndarray:
    """(N, 1, H, W) or (N, H, W) images in [-1, 1] -> (N, H, W) float64 ink in [0, 1]."""
    x = np.asarray(images, dtype=np.float64)
    x = x.reshape(len(x), *x.shape[-2:])
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0)


def slant(images: np.ndarray) -> np.ndarray:
    """(N,) slant of each image: the shear mu11 / mu02 of its ink's second central moments, with y pointing up,
    so a stroke leaning right by an angle t from vertical gives tan(t) (0 upright, > 0 leaning right)."""
    ink = _ink(images)
    h, w = ink.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    ys = -ys  # rows grow downwards; up is positive
    mass = ink.sum(axis=(1, 2)) + 1e-12
    cx = (ink * xs).sum(axis=(1, 2)) / mass
    cy = (ink * ys).sum(axis=(1, 2)) / mass
    dx, dy = xs[None] - cx[:, None, None], ys[None] - cy[:, None, None]
    mu11 = (ink * dx * dy).sum(axis=(1, 2)) / mass
    mu02 = (ink * dy * dy).sum(axis=(1, 2)) / mass + 1e-12
    return mu11 / mu02


def stroke_width(images: np.ndarray) -> np.ndarray:
    """(N,) stroke width in pixels: the width of the rectangle with the ink's area A and perimeter P, where P
    is the total variation of the ink (the sum of |gradient|, which the coarea formula makes the mean level-set
    perimeter, whatever the strokes' direction): w = (P/2 - sqrt(P^2/4 - 4A)) / 2, exact for a straight
    stroke of any length, and for curved strokes their ink over half their outline."""
    ink = _ink(images)
    gy, gx = np.gradient(ink, axis=(1, 2))
    perimeter = np.hypot(gx, gy).sum(axis=(1, 2))
    area = ink.sum(axis=(1, 2))
    half = perimeter / 2.0
    return (half - np.sqrt(np.maximum(half**2 - 4.0 * area, 0.0))) / 2.0


def factor_correlations(codes: np.ndarray, factors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """|Spearman| of each continuous code with each measured factor: name -> (n_codes,) array; NaN where a
    code or a factor is constant."""
    out = {}
    for name, values in factors.items():
        out[name] = np.array([abs(stats.spearmanr(codes[:, j], values).statistic) for j in range(codes.shape[1])])
    return out


def geometry_alignment(codes: np.ndarray, images: np.ndarray) -> dict[str, float]:
    """eval/slant_corr and eval/width_corr (the largest |Spearman| of any continuous code with the images' slant,
    and with their stroke width) and, with two codes or more, eval/slant_width_align: the mean |Spearman| of two
    different codes matched to the two factors (Hungarian), so that one code cannot stand for both."""
    corr = factor_correlations(codes, {"slant": slant(images), "width": stroke_width(images)})
    rho = np.nan_to_num(np.stack([corr["slant"], corr["width"]], axis=1))  # (n_codes, 2); a constant factor: 0
    out = {"eval/slant_corr": float(rho[:, 0].max()), "eval/width_corr": float(rho[:, 1].max())}
    if codes.shape[1] >= 2:
        rows, cols = optimize.linear_sum_assignment(rho, maximize=True)
        out["eval/slant_width_align"] = float(rho[rows, cols].mean())
    return out


def _sample_geometry(model: InfoGAN, cfg: TrainConfig, *, seed: int) -> dict[str, float]:
    """geometry_alignment of eval_samples generated images and the continuous codes they were drawn with: the
    same draw as evaluate's samples (the same seed), kept here with its codes."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    latent = sample_latent(cfg, model.cat_prior, cfg.eval_samples, gen, device)
    fake = to_data_range(model.generator(latent.z), cfg).float().cpu().numpy()  # (N, 1, H, W) in [-1, 1]
    return geometry_alignment(latent.cont.float().cpu().numpy(), fake)


__all__ = [
    "evaluate",
    "factor_correlations",
    "geometry_alignment",
    "slant",
    "stroke_width",
    "factor_alignment",
    "frechet_distance",
    "match_categories",
    "matched_accuracy",
    "prior_kl",
    "mode_coverage",
    "reference_features",
]
