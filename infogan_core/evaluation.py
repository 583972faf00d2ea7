"""Computing the eval/* metrics: known-answer functions on arrays, and the evaluation of a model.

The names, directions and meanings are in `metrics.METRICS`; this module computes the values.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from scipy import optimize, stats
from torch import nn

from infogan_core.config import TrainConfig
from infogan_core.data import Dataset
from infogan_core.errors import DataError
from infogan_core.latent import sample_latent
from infogan_core.metrics import INCEPTION_WEIGHTS_ENV, INCEPTION_WEIGHTS_FILE, inception_weights
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


class LabelAgreement(NamedTuple):
    nmi: float  # normalized mutual information, arithmetic-mean normalization: 1 for a relabelling
    ari: float  # adjusted Rand index: 0 in expectation for a random labelling, 1 for a relabelling


def label_agreement(pred: np.ndarray, labels: np.ndarray) -> LabelAgreement:
    """NMI and ARI of predicted categories against classes (scikit-learn), as InfoGAN papers report them."""
    from sklearn import metrics as skmetrics  # lazy: sklearn.metrics loads rich where installed; the core must not

    return LabelAgreement(
        float(skmetrics.normalized_mutual_info_score(labels, pred)), float(skmetrics.adjusted_rand_score(labels, pred))
    )


class PRDC(NamedTuple):
    precision: float  # samples inside the real manifold (Kynkaanniemi et al. 2019)
    recall: float  # real data inside the samples' manifold
    density: float  # real balls per sample, over k (Naeem et al. 2020); not bounded by 1
    coverage: float  # real balls holding a sample


def precision_recall_density_coverage(real: np.ndarray, fake: np.ndarray, *, k: int = 5) -> PRDC:
    """Precision and recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020) in a feature space.

    Each point's ball reaches its k-th nearest neighbour in its own set; membership is strict (distance < radius),
    as in the authors' reference implementation (clovaai/generative-evaluation-prdc), so identical sets give
    precision = recall = coverage = density = 1.
    """
    from sklearn import metrics as skmetrics  # lazy: sklearn.metrics loads rich where installed; the core must not

    real_radius = _knn_radius(real, k)  # (N,)
    fake_radius = _knn_radius(fake, k)  # (M,)
    dist = skmetrics.pairwise_distances(real, fake)  # (N, M)
    inside = dist < real_radius[:, None]  # (N, M): fake j in real i's ball
    return PRDC(
        precision=float(inside.any(0).mean()),
        recall=float((dist < fake_radius[None, :]).any(1).mean()),
        density=float(inside.sum() / (k * fake.shape[0])),
        coverage=float((dist.min(1) < real_radius).mean()),
    )


def _knn_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest other point (the nearest one is itself, at 0). Computed with
    the same function as the distances between the sets, so a point on a ball's edge is outside it exactly."""
    from sklearn import metrics as skmetrics  # lazy: sklearn.metrics loads rich where installed; the core must not

    return np.partition(skmetrics.pairwise_distances(x, x), k, axis=1)[:, k]


def histogram_bins(x: np.ndarray, bins: int = 20) -> np.ndarray:
    """Each column of x as the index of its equal-width histogram bin (disentanglement_lib's discretization)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return np.stack([np.digitize(c, np.histogram_bin_edges(c, bins)[1:-1]) for c in x.T], 1)


def mutual_information_gap(codes: np.ndarray, factors: np.ndarray) -> float:
    """MIG (Chen et al. 2018, eq. 4): mean over factors of (largest - second largest I(code; factor)) / H(factor).

    codes (N, D) and factors (N, K) are discrete (integers; see `histogram_bins`); mutual information is the
    plug-in estimate in nats (scikit-learn). Factors that never vary are left out. 1: each factor is captured by
    exactly one code; 0: no code says more about a factor than another does.
    """
    from sklearn import metrics as skmetrics  # lazy: sklearn.metrics loads rich where installed; the core must not

    if codes.shape[1] < 2:
        raise ValueError(f"MIG needs two codes or more, but got {codes.shape[1]}")
    mi = np.array([[skmetrics.mutual_info_score(f, c) for f in factors.T] for c in codes.T])  # (D, K)
    entropy = np.array([skmetrics.mutual_info_score(f, f) for f in factors.T])  # (K,) H(v_k)
    top2 = -np.sort(-mi, axis=0)[:2]  # (2, K)
    varies = entropy > 0
    return float(np.mean((top2[0] - top2[1])[varies] / entropy[varies]))


class DCI(NamedTuple):
    disentanglement: float  # each code important to one factor only
    completeness: float  # each factor captured by one code only


def dci_scores(importance: np.ndarray) -> DCI:
    """DCI disentanglement and completeness (Eastwood & Williams 2018) of an importance matrix (codes, factors).

    D = sum_i rho_i (1 - H_K(P_i.)), P_ij = R_ij / sum_k R_ik, rho_i = sum_j R_ij / sum R; C likewise over the
    columns with entropy base D (disentanglement_lib's weighting of both).
    """
    r = np.asarray(importance, dtype=np.float64)
    n_codes, n_factors = r.shape
    if n_codes < 2 or n_factors < 2:
        raise ValueError(f"DCI needs two codes and two factors or more, but got {n_codes} codes, {n_factors} factors")
    if r.sum() == 0:
        r = np.ones_like(r)
    per_code = 1.0 - stats.entropy(r.T + 1e-11, base=n_factors)  # (D,): entropy over each row
    per_factor = 1.0 - stats.entropy(r + 1e-11, base=n_codes)  # (K,): entropy over each column
    return DCI(
        disentanglement=float(np.sum(per_code * r.sum(1) / r.sum())),
        completeness=float(np.sum(per_factor * r.sum(0) / r.sum())),
    )


def dci_importance(codes: np.ndarray, factors: np.ndarray, *, discrete: Sequence[bool], seed: int = 0) -> np.ndarray:
    """(codes, factors) importance matrix: each column the impurity importances of a random forest predicting that
    factor from all codes (Eastwood & Williams use random forests), a classifier where the factor is discrete."""
    from sklearn import ensemble  # lazy: it loads rich where installed (sklearn.callback); the core must not

    columns = []
    for j, is_discrete in enumerate(discrete):
        kind = ensemble.RandomForestClassifier if is_discrete else ensemble.RandomForestRegressor
        forest = kind(n_estimators=20, max_depth=8, random_state=seed, n_jobs=1)  # ~0.1 s per factor, 2,000 rows
        columns.append(forest.fit(codes, factors[:, j]).feature_importances_)
    return np.stack(columns, 1)


def kernel_distance(a: np.ndarray, b: np.ndarray, *, subsets: int = 100, subset_size: int = 1000) -> float:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 with the kernel (x.y / d + 1)^3, averaged over random
    subsets of `subset_size` rows of each set (fewer where a set is smaller), as torch-fidelity computes it.

    The kernel matrices of the whole sets are computed once and indexed per subset: memory (N + M)^2 floats.
    """
    m = min(subset_size, len(a), len(b))
    k_aa, k_bb, k_ab = _cubic_kernel(a, a), _cubic_kernel(b, b), _cubic_kernel(a, b)
    rng = np.random.default_rng(0)
    mmd = []
    for _ in range(subsets):
        i, j = rng.choice(len(a), m, replace=False), rng.choice(len(b), m, replace=False)
        kxx, kyy = k_aa[np.ix_(i, i)], k_bb[np.ix_(j, j)]
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        mmd.append(within - 2 * k_ab[np.ix_(i, j)].mean())
    return float(np.mean(mmd))


def _cubic_kernel(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    from sklearn import metrics as skmetrics  # lazy: sklearn.metrics loads rich where installed; the core must not

    return skmetrics.pairwise.polynomial_kernel(u, v, degree=3, coef0=1)  # gamma 1 / d by default


# --- InceptionV3 features, read from a local weights file (the `inception` extra) ----------------

_INCEPTION: dict[str, tuple[nn.Module, np.ndarray]] = {}


def _inception_net(path: Path) -> nn.Module:
    """torch-fidelity's InceptionV3 (the TensorFlow FID network, ported bit for bit), 2048-d pool features."""
    try:  # its import also loads torchvision, which must match the installed torch
        from torch_fidelity import feature_extractor_inceptionv3 as inception  # lazy: an optional extra's module
    except Exception as exc:
        raise DataError(f"torch-fidelity cannot be imported ({exc}); eval/fid and eval/kid need it") from exc
    try:
        return inception.FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
        )
    except Exception as exc:  # a truncated or foreign file: pickle, key or size errors
        raise DataError(
            f"${INCEPTION_WEIGHTS_ENV} names {path}, which is not torch-fidelity's {INCEPTION_WEIGHTS_FILE} ({exc})"
        ) from exc


def _inception_features(net: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 100) -> np.ndarray:
    """(N, 2048) features of images in [-1, 1]: as 8-bit RGB, the input the network was trained on."""
    out = []
    for i in range(0, len(x), batch):
        rgb = ((x[i : i + batch] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1)
        out.append(net(rgb.to(device))[0].double().cpu())  # the network resizes to 299x299 itself
    return torch.cat(out).reshape(len(x), -1).numpy()


def inception_reference(data: Dataset, path: Path, device: torch.device) -> tuple[nn.Module, np.ndarray]:
    """(InceptionV3, features of up to 10,000 real images), kept in memory per dataset and weights file."""
    key = f"{_data_key(data)}-{path.resolve()}"
    if key not in _INCEPTION:
        net = _inception_net(path).to(device)
        _INCEPTION[key] = (net, _inception_features(net, torch.from_numpy(data.x[:10000]), device))
    net, feats = _INCEPTION[key]
    return net.to(device), feats


# --- the reference classifier for the Frechet distance ----------------------------------------

_REFERENCE: dict[str, tuple[nn.Module, nn.Module | None, np.ndarray]] = {}


def _data_key(data: Dataset) -> str:
    """The dataset's name and a digest of its first 1 MB and shape (a view, not a copy of the whole set): not the
    name alone, since `mnist` from two folders are two datasets."""
    head = data.x.reshape(-1)[: 1_000_000 // data.x.itemsize].tobytes()
    return f"{data.name}-{hashlib.sha256(head + str(data.x.shape).encode()).hexdigest()[:16]}"


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
    net, _, feats = _reference(data)
    return net, feats


def reference_classifier(data: Dataset) -> nn.Module | None:
    """The whole reference classifier (features and its last, class layer) for labelled images; None otherwise."""
    return _reference(data)[1]


def _reference(data: Dataset) -> tuple[nn.Module, nn.Module | None, np.ndarray]:
    """(feature extractor, whole classifier or None, features of up to 10,000 real samples), cached."""
    key = _data_key(data)
    if key in _REFERENCE:
        return _REFERENCE[key]
    x = torch.from_numpy(data.x[:10000])
    full: nn.Module | None = None
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
        full.eval()
        net = full[:-1]
    with torch.no_grad():
        feats = net(x).numpy().astype(np.float64)
    _REFERENCE[key] = (net, full, feats)
    return _REFERENCE[key]


def class_entropy(classes: np.ndarray, num_classes: int) -> float:
    """Entropy (nats) of the histogram of `classes` over `num_classes`: ln(num_classes) when every class is drawn
    equally often, 0 when one class is all there is."""
    p = np.bincount(classes, minlength=num_classes) / len(classes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


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
    want_disentanglement = data.factors is not None and len(cfg.cat_codes) + cfg.cont_codes >= 2
    if want_cat or want_factors or want_disentanglement:  # Q's posterior on real data, encoded once for all
        posterior = _encode_batched(model, to_model_range(real.to(device), cfg))
    if want_cat:
        categories = posterior.logits[0].argmax(1).cpu().numpy()
        matching, out["eval/cat_acc"] = match_categories(categories, data.labels[:10000])
        out["eval/nmi"], out["eval/ari"] = label_agreement(categories, data.labels[:10000])
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
        classifier = reference_classifier(data)
        if classifier is not None and np.isfinite(fake_feats).all():  # the classes G's samples are drawn as
            drawn = classifier[-1](torch.from_numpy(fake_feats).float()).argmax(1).numpy()
            out["eval/class_entropy"] = class_entropy(drawn, data.num_classes)
        out["eval/fd"] = frechet_distance(real_feats, fake_feats) if np.isfinite(fake_feats).all() else float("inf")
        if np.isfinite(fake_feats).all():  # as many real samples as generated ones (k-NN radii depend on the count)
            real_subset, fake_subset = _equal_sized(real_feats, fake_feats)
            scores = precision_recall_density_coverage(real_subset, fake_subset)
            out.update({f"eval/{name}": value for name, value in scores._asdict().items()})
    if want_factors:
        out["eval/factor_align"] = factor_alignment(posterior.mean.cpu().numpy(), data.factors[:10000])
    if want_disentanglement:
        out.update(_disentanglement(posterior, data))
    weights, _ = inception_weights()
    if data.is_image and weights is not None:
        net, real_feats = inception_reference(data, weights, device)
        fake_feats = _inception_features(net, fake, device)
        out["eval/fid"] = frechet_distance(real_feats, fake_feats)
        out["eval/kid"] = kernel_distance(*_equal_sized(real_feats, fake_feats))  # unbiased at any size: keep it small
    if data.is_image and cfg.cont_codes:
        out |= _sample_geometry(model, cfg, seed=seed)
    model.train(was_training)
    return out


def _equal_sized(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of the real rows as large as the generated set, or the other way round; random,
    not the first rows, since some sets are sorted by class."""
    n = min(len(real), len(fake))
    return real[np.random.default_rng(0).choice(len(real), n, replace=False)], fake[:n]


def _disentanglement(posterior: Posterior, data: Dataset) -> dict[str, float]:
    """eval/mig and eval/dci_*: Q's codes on real data (each categorical code's argmax, each continuous code's
    mean) against the true factors (the class, if any, then each continuous factor)."""
    cat = [logits.argmax(1).cpu().numpy()[:, None] for logits in posterior.logits]  # (N, 1) each
    cont = posterior.mean.cpu().numpy()  # (N, cont_codes)
    factors = data.factors[:10000].astype(np.float64)
    discrete = [False] * factors.shape[1]
    if data.labels is not None:
        factors, discrete = np.column_stack([data.labels[:10000], factors]), [True, *discrete]
    binned_codes = np.column_stack([*cat, histogram_bins(cont)]) if cont.shape[1] else np.column_stack(cat)
    binned_factors = np.column_stack(
        [factors[:, j] if d else histogram_bins(factors[:, j])[:, 0] for j, d in enumerate(discrete)]
    )
    out = {"eval/mig": mutual_information_gap(binned_codes, binned_factors)}
    codes = np.column_stack([*cat, cont])
    rows = np.random.default_rng(0).choice(len(codes), min(2000, len(codes)), replace=False)  # sized for ~0.5 s
    dci = dci_scores(dci_importance(codes[rows], factors[rows], discrete=discrete))
    out["eval/dci_d"], out["eval/dci_c"] = dci
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
    "DCI",
    "PRDC",
    "LabelAgreement",
    "dci_importance",
    "dci_scores",
    "evaluate",
    "histogram_bins",
    "class_entropy",
    "inception_reference",
    "kernel_distance",
    "label_agreement",
    "mutual_information_gap",
    "precision_recall_density_coverage",
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
    "reference_classifier",
    "reference_features",
]
