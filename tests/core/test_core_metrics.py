"""Known-answer tests of the metrics and of the information-bound terms they are built from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import stats
from torch import nn

from infogan_core import METRIC_NAMES, TrainConfig, evaluation, load_dataset, losses, metrics
from infogan_core.data import Dataset
from infogan_core.evaluation import (
    factor_alignment,
    frechet_distance,
    match_categories,
    matched_accuracy,
    mode_coverage,
    prior_kl,
    reference_features,
)
from infogan_core.latent import sample_latent
from infogan_core.models import InfoGAN

pytestmark = pytest.mark.usefixtures("core_env")

# the flat metric names of design.md's contract, the same in the core, Ray, Optuna and reports
DESIGN_METRICS = {
    "loss/d",
    "loss/g",
    "loss/info",
    "d/real",
    "d/fake",
    "grad/d",
    "grad/g",
    "grad/q",
    "grad/peak",
    "q/std_min",
    "loss/g_trend",  # derived from the history at the end of a run (issue 14's symptom endpoints)
    "loss/d_sd",
    "mi/cat_steps_to_90",
    "mi/cat",
    "mi/cat_ratio",
    "mi/cont",
    "eval/cat_acc",
    "eval/prior_kl",
    "eval/modes",
    "eval/hq",
    "eval/fd",
    "eval/factor_align",
    "eval/class_entropy",  # the classes G draws, for the BN studies on images (issue 28)
    "eval/nmi",  # the metrics GAN papers report (issue 26)
    "eval/ari",
    "eval/precision",
    "eval/recall",
    "eval/density",
    "eval/coverage",
    "eval/mig",
    "eval/dci_d",
    "eval/dci_c",
    "eval/fid",
    "eval/kid",
    "time/steps_per_s",
    "eval/slant_corr",  # the paper's Figure 2 factors on generated images (issue 27)
    "eval/width_corr",
    "eval/slant_width_align",
}


def test_metric_names_are_the_design_contract() -> None:
    assert set(METRIC_NAMES) == DESIGN_METRICS
    assert all(m.direction in ("minimize", "maximize") for m in metrics.METRICS.values())


def test_derived_metrics_read_the_second_half_of_the_history() -> None:
    """loss/g_trend is the slope per 1000 steps of the late reports, loss/d_sd their spread, and
    mi/cat_steps_to_90 the first report at 0.9 H(c) (censored past the budget when none is)."""
    from infogan_core.training import _derived_metrics

    cfg = TrainConfig(steps=1000, cat_codes=[10], device="cpu")
    history = [
        {"step": s, "loss/g": 1.0 + 0.002 * s, "loss/d": (0.5, 0.7)[s // 100 % 2], "mi/cat_ratio": s / 500}
        for s in range(100, 1001, 100)
    ]
    derived = _derived_metrics(cfg, history)
    assert derived["loss/g_trend"] == pytest.approx(2.0)  # 0.002 per step
    late_d = [row["loss/d"] for row in history if row["step"] > 500]
    assert derived["loss/d_sd"] == pytest.approx(float(np.std(late_d, ddof=1)))
    assert derived["mi/cat_steps_to_90"] == 500.0
    never = [row | {"mi/cat_ratio": 0.5} for row in history]
    assert _derived_metrics(cfg, never)["mi/cat_steps_to_90"] == cfg.steps + cfg.report_every
    assert "mi/cat_steps_to_90" not in _derived_metrics(cfg.replace(cat_codes=[], cont_codes=2), history)


# --- the mutual-information lower bound H(c) - CE ---------------------------------------------


def _onehot_logits(codes: torch.Tensor, k: int, confidence: float = 1e4) -> torch.Tensor:
    """Logits that put all the mass on the true code: 0 there, -confidence elsewhere."""
    return (torch.nn.functional.one_hot(codes, k).float() - 1.0) * confidence


def test_perfect_encoder_bound_equals_code_entropy() -> None:
    cfg = TrainConfig(cat_codes=[10])
    codes = torch.arange(1000) % 10
    ce = losses.cat_cross_entropy([_onehot_logits(codes, 10)], [codes])
    mi = cfg.cat_entropy - float(ce)
    assert mi == pytest.approx(math.log(10), abs=1e-6)  # the paper's Figure 1 ceiling, 2.30 nats
    assert mi / cfg.cat_entropy == pytest.approx(1.0, abs=1e-6)  # mi/cat_ratio


def test_uninformed_encoder_bound_is_zero_and_codes_add_up() -> None:
    cfg = TrainConfig(cat_codes=[10, 4])
    assert cfg.cat_entropy == pytest.approx(math.log(10) + math.log(4))
    c10, c4 = torch.arange(400) % 10, torch.arange(400) % 4
    uniform = losses.cat_cross_entropy([torch.zeros(400, 10), torch.zeros(400, 4)], [c10, c4])
    assert cfg.cat_entropy - float(uniform) == pytest.approx(0.0, abs=1e-6)
    perfect = losses.cat_cross_entropy([_onehot_logits(c10, 10), _onehot_logits(c4, 4)], [c10, c4])
    assert cfg.cat_entropy - float(perfect) == pytest.approx(cfg.cat_entropy, abs=1e-6)


def test_categorical_entropy_of_prior_logits() -> None:
    assert float(losses.categorical_entropy([torch.zeros(10)])) == pytest.approx(math.log(10), abs=1e-6)
    p = torch.tensor([0.7, 0.2, 0.1])
    expected = float(-(p * p.log()).sum())
    assert float(losses.categorical_entropy([p.log()])) == pytest.approx(expected, abs=1e-6)
    # differentiable in the logits (H(c) made learnable): uniform logits are its maximum
    logits = torch.tensor([1.0, 0.0, -1.0], requires_grad=True)
    losses.categorical_entropy([logits]).backward()
    assert logits.grad is not None and logits.grad[0] < 0 < logits.grad[2]


def test_gaussian_nll_with_fixed_std_is_the_textbook_value() -> None:
    gen = torch.Generator().manual_seed(0)
    codes = torch.rand(256, 3, generator=gen) * 2 - 1
    mean = torch.rand(256, 3, generator=gen) * 2 - 1
    expected = -stats.norm.logpdf(codes.numpy(), loc=mean.numpy(), scale=1.0).sum(1).mean()
    assert float(losses.gaussian_nll(mean, None, codes)) == pytest.approx(expected, rel=1e-5)
    # exact mean: only the normalizer, 0.5 ln(2 pi) per code
    assert float(losses.gaussian_nll(codes, None, codes)) == pytest.approx(1.5 * math.log(2 * math.pi), rel=1e-6)
    std = torch.rand(256, 3, generator=gen) + 0.1
    expected_learned = -stats.norm.logpdf(codes.numpy(), loc=mean.numpy(), scale=std.numpy()).sum(1).mean()
    assert float(losses.gaussian_nll(mean, std, codes)) == pytest.approx(expected_learned, rel=1e-5)
    assert float(losses.gaussian_nll(mean[:, :0], None, codes[:, :0])) == 0.0


def test_cont_prior_entropy() -> None:
    assert losses.cont_prior_entropy(1, "uniform") == pytest.approx(math.log(2))
    assert losses.cont_prior_entropy(3, "uniform") == pytest.approx(3 * math.log(2))
    assert losses.cont_prior_entropy(3, "uniform") == pytest.approx(3 * stats.uniform(-1, 2).entropy())
    assert losses.cont_prior_entropy(2, "gaussian") == pytest.approx(2 * stats.norm().entropy())
    assert losses.cont_prior_entropy(0, "uniform") == 0.0
    matched = stats.norm(scale=3**-0.5)
    assert losses.cont_prior_entropy(2, "gaussian_matched") == pytest.approx(2 * matched.entropy())


@pytest.mark.parametrize("prior", ["uniform", "gaussian", "gaussian_matched"])
def test_cont_codes_are_drawn_from_their_prior(prior) -> None:
    """Each prior's draws pass a Kolmogorov-Smirnov test against it; gaussian_matched has U(-1,1)'s variance."""
    cfg = TrainConfig(cont_codes=2, cont_prior=prior, device="cpu")
    lat = sample_latent(cfg, [torch.zeros(10)], 20000, torch.Generator().manual_seed(0), torch.device("cpu"))
    dist = {"uniform": stats.uniform(-1, 2), "gaussian": stats.norm(), "gaussian_matched": stats.norm(scale=3**-0.5)}
    assert stats.kstest(lat.cont.flatten().numpy(), dist[prior].cdf).pvalue > 1e-3
    if prior != "gaussian":
        assert float(lat.cont.var()) == pytest.approx(1 / 3, rel=0.03)


# --- matched accuracy -------------------------------------------------------------------------


def test_matched_accuracy_of_a_permuted_labelling_is_one() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=500)
    perm = rng.permutation(10)
    assert matched_accuracy(perm[labels], labels) == 1.0
    assert matched_accuracy(labels, labels) == 1.0


def test_matched_accuracy_partial_known_answer() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    # best matching: category 1 -> class 0 (3 right), category 0 -> class 1 (4 right)
    assert matched_accuracy(pred, labels) == pytest.approx(7 / 8)
    # everything in one category: only the largest class can be matched
    assert matched_accuracy(np.zeros(8, dtype=int), np.array([0, 0, 0, 0, 0, 1, 1, 2])) == pytest.approx(5 / 8)


def test_matched_accuracy_with_more_categories_than_classes() -> None:
    labels = np.array([0, 0, 1, 1])
    assert matched_accuracy(np.array([0, 2, 1, 1]), labels) == pytest.approx(3 / 4)


# --- mode coverage ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "count"), [("ring8", 8), ("grid25", 25)])
def test_samples_on_every_mode_cover_all_of_them(name: str, count: int) -> None:
    data = load_dataset(name)
    modes = data.modes
    samples = np.repeat(modes, 3, axis=0)
    assert mode_coverage(samples, modes, data.mode_std) == (count, 1.0)


def test_samples_on_one_mode_cover_one() -> None:
    data = load_dataset("ring8")
    modes = data.modes
    assert mode_coverage(np.repeat(modes[3:4], 50, axis=0), modes, data.mode_std) == (1, 1.0)


def test_high_quality_is_within_three_std_of_the_nearest_mode() -> None:
    modes = np.array([[0.0, 0.0], [10.0, 0.0]])
    samples = np.array([[0.29, 0.0], [0.31, 0.0], [10.0, 0.5], [5.0, 5.0]])
    covered, hq = mode_coverage(samples, modes, std=0.1)
    assert covered == 1  # the far samples are nearest to a mode, but not high quality
    assert hq == pytest.approx(1 / 4)
    # the real ring itself: ~all samples are within 3 std (99.9% for a 2-D Gaussian radius is ~3.7 std)
    data = load_dataset("ring8")
    covered, hq = mode_coverage(data.x[:2000], data.modes, data.mode_std)
    assert covered == 8 and 0.97 < hq < 1.0


# --- Frechet distance -------------------------------------------------------------------------


def _sqrtm_formula(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook form with scipy's matrix square root of S_a S_b."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def test_frechet_distance_of_a_sample_with_itself_is_zero() -> None:
    a = np.random.default_rng(0).normal(size=(2000, 8)) @ np.random.default_rng(1).normal(size=(8, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_for_two_gaussians() -> None:
    rng = np.random.default_rng(0)
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    std_a, std_b = np.array([1.0, 2.0, 0.5]), np.array([0.5, 2.0, 1.5])
    a = mu_a + std_a * rng.standard_normal((20000, 3))
    b = mu_b + std_b * rng.standard_normal((20000, 3))
    # against the sqrtm formula on the same fitted Gaussians: the same number, up to round-off
    assert frechet_distance(a, b) == pytest.approx(_sqrtm_formula(a, b), rel=1e-7)
    # against the population value for diagonal covariances: |mu_a - mu_b|^2 + sum (std_a - std_b)^2
    population = ((mu_a - mu_b) ** 2).sum() + ((std_a - std_b) ** 2).sum()  # = 5 + 1.25
    assert frechet_distance(a, b) == pytest.approx(population, rel=0.03)


def test_frechet_distance_survives_singular_covariances() -> None:
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(size=(500, 3)), np.zeros((500, 2))], 1)  # dead features
    b = np.concatenate([rng.normal(size=(500, 3)) + 1.0, np.zeros((500, 2))], 1)
    # features that never vary add nothing: the same value as on the live features alone
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value == pytest.approx(_sqrtm_formula(a[:, :3], b[:, :3]), rel=1e-7)


def test_frechet_distance_one_dimensional() -> None:
    a = np.array([[0.0], [2.0]])  # mean 1, variance 2 (unbiased)
    b = np.array([[3.0], [5.0]])  # mean 4, variance 2
    assert frechet_distance(a, b) == pytest.approx(9.0)


# --- factor alignment -------------------------------------------------------------------------


def test_factor_alignment_of_monotone_codes_in_permuted_order_is_one() -> None:
    rng = np.random.default_rng(0)
    factors = rng.uniform(-1, 1, size=(1000, 4))
    # each code a strictly monotone function of a different factor, in a shuffled order, some decreasing
    codes = np.stack([np.exp(factors[:, 2]), -(factors[:, 0] ** 3), np.tanh(3 * factors[:, 3])], 1)
    assert factor_alignment(codes, factors) == pytest.approx(1.0)


def test_factor_alignment_of_independent_noise_is_near_zero() -> None:
    rng = np.random.default_rng(1)
    value = factor_alignment(rng.normal(size=(5000, 2)), rng.uniform(size=(5000, 4)))
    assert 0.0 <= value < 0.05


def test_factor_alignment_matches_each_factor_once() -> None:
    rng = np.random.default_rng(2)
    factors = rng.uniform(size=(2000, 2))
    # both codes follow factor 0: one-to-one matching must give the second one factor 1 (|rho| ~ 0)
    codes = np.stack([factors[:, 0], factors[:, 0] ** 2], 1)
    assert factor_alignment(codes, factors) == pytest.approx(0.5, abs=0.05)


# --- evaluate() on a generator with a known answer --------------------------------------------


class _ModeGenerator(nn.Module):
    """Maps the one-hot categorical code straight to the ring's mode centres: perfect samples."""

    def __init__(self, modes: torch.Tensor) -> None:
        super().__init__()
        self.modes = modes

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.modes  # (B, 8) one-hot @ (8, 2) -> (B, 2)


def test_evaluate_scores_a_perfect_ring_generator() -> None:
    cfg = TrainConfig(dataset="ring8", arch="mlp", cat_codes=[8], cont_codes=0, noise_dim=0, device="cpu")
    data = load_dataset("ring8")
    model = InfoGAN(cfg, data.sample_shape)
    model.generator = _ModeGenerator(torch.from_numpy(data.modes))
    out = evaluation.evaluate(model, cfg, data, seed=0)
    assert out["eval/modes"] == 8.0
    assert out["eval/hq"] == 1.0
    # real points scatter with std 0.01 around the same centres: a tiny distance in raw coordinates
    assert 0.0 <= out["eval/fd"] < 0.01
    assert 0.0 <= out["eval/cat_acc"] <= 1.0
    papers = {"eval/nmi", "eval/ari", "eval/precision", "eval/recall", "eval/density", "eval/coverage"}
    assert set(out) == {"eval/modes", "eval/hq", "eval/fd", "eval/cat_acc", "eval/prior_kl"} | papers
    # every sample sits on a mode, inside the real points' balls; but eight repeated points have balls of radius 0
    assert out["eval/precision"] == 1.0 and out["eval/recall"] == 0.0
    assert 0.0 <= out["eval/prior_kl"] < 1e-3  # a uniform prior against the ring's (nearly) uniform modes
    assert model.training  # evaluate puts the model back in the mode it found it in

    # the same generator collapsed onto mode 0: one mode, and far in Frechet distance
    model.generator = _ModeGenerator(torch.from_numpy(data.modes)[:1].expand(8, 2))
    collapsed = evaluation.evaluate(model, cfg, data, seed=0)
    assert collapsed["eval/modes"] == 1.0 and collapsed["eval/hq"] == 1.0
    assert collapsed["eval/fd"] > 0.5


def test_class_entropy_known_answers() -> None:
    assert evaluation.class_entropy(np.arange(1000) % 10, 10) == pytest.approx(math.log(10))
    assert evaluation.class_entropy(np.full(50, 3), 10) == 0.0
    # two classes drawn 3:1: -(3/4 ln 3/4 + 1/4 ln 1/4)
    assert evaluation.class_entropy(np.array([0, 0, 0, 1]), 10) == pytest.approx(0.5623351446188083)


class _RealDigits(nn.Module):
    """A generator that draws, for category k of its one-hot input, a real digit of class `classes[k]`."""

    def __init__(self, data: Dataset, classes: list[int]) -> None:
        super().__init__()
        pick = [np.flatnonzero(data.labels == c) for c in classes]
        self.images = [torch.from_numpy(data.x[rows]) for rows in pick]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.images[k][r % len(self.images[k])] for r, k in enumerate(z.argmax(1).tolist())])


def test_class_entropy_of_samples_tells_every_class_from_one() -> None:
    cfg = TrainConfig(
        dataset="digits",
        arch="conv",
        cat_codes=[10],
        cont_codes=0,
        noise_dim=0,
        g_width=0.25,
        d_width=0.25,
        eval_samples=1000,
        device="cpu",
    )
    data = load_dataset("digits")
    model = InfoGAN(cfg, data.sample_shape)
    model.generator = _RealDigits(data, list(range(10)))  # category k draws real digits of class k
    every = evaluation.evaluate(model, cfg, data, seed=0)["eval/class_entropy"]
    model.generator = _RealDigits(data, [3] * 10)  # every category draws a 3
    one = evaluation.evaluate(model, cfg, data, seed=0)["eval/class_entropy"]
    assert every > 0.95 * math.log(10)  # the reference classifier names real digits' classes nearly always
    assert one < 0.3


# --- the reference classifier's cache ---------------------------------------------------------


def _toy_images(seed: int) -> Dataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(300, 1, 4, 4, generator=gen) * 2 - 1
    return Dataset("toy-images", x.numpy(), labels=(x.mean((1, 2, 3)) > 0).long().numpy())


def test_reference_classifier_is_written_to_the_cache_and_reused(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(evaluation.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(evaluation, "_REFERENCE", {})
    data = _toy_images(0)
    _, first = reference_features(data)
    files = list(tmp_path.glob("reference-toy-images-*.pt"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    assert first.shape == (300, 64)

    # a new process (empty memory cache) must load the file instead of fitting again
    monkeypatch.setattr(evaluation, "_REFERENCE", {})

    def no_fit(net, data):
        raise AssertionError("the reference classifier was fitted again instead of read from the cache")

    monkeypatch.setattr(evaluation, "_fit_reference", no_fit)
    _, again = reference_features(data)
    np.testing.assert_array_equal(first, again)
    assert list(tmp_path.glob("*.pt")) == files


def test_unreadable_reference_cache_file_is_fitted_again(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(evaluation.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(evaluation, "_REFERENCE", {})
    data = _toy_images(0)
    reference_features(data)
    (path,) = tmp_path.glob("reference-*.pt")
    monkeypatch.setattr(evaluation, "_REFERENCE", {})
    path.write_bytes(b"not a torch file" * 10)  # torch.load raises neither OSError nor RuntimeError here
    _, feats = reference_features(data)
    assert np.isfinite(feats).all()
    assert path.stat().st_size > 200  # replaced by a real state dict


def test_reference_features_tell_same_named_datasets_apart(monkeypatch, tmp_path) -> None:
    # `mnist` from two folders in one process must not share the first one's real features
    monkeypatch.setenv(evaluation.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(evaluation, "_REFERENCE", {})
    _, a = reference_features(_toy_images(0))
    _, b = reference_features(_toy_images(1))
    assert not np.array_equal(a, b)
    assert len(list(tmp_path.glob("reference-toy-images-*.pt"))) == 2


def test_two_dimensional_data_uses_raw_coordinates(monkeypatch) -> None:
    monkeypatch.setattr(evaluation, "_REFERENCE", {})
    data = load_dataset("ring8")
    net, feats = reference_features(data)
    np.testing.assert_array_equal(feats, data.x[:10000].astype(np.float64))
    assert isinstance(net, nn.Flatten)


# --- the prior's distance to the data's class frequencies ---------------------------------------


def test_prior_kl_known_answers() -> None:
    freq = np.array([0.5, 0.25, 0.25])
    identity = {0: 0, 1: 1, 2: 2}
    assert prior_kl(freq, freq, identity) == 0.0  # the prior is the data's frequencies
    uniform = np.full(3, 1 / 3)
    expected = sum((1 / 3) * math.log((1 / 3) / f) for f in freq)
    assert prior_kl(uniform, freq, identity) == pytest.approx(expected)
    # categories are compared with the classes they were matched to, not by position
    assert prior_kl(np.array([0.25, 0.5, 0.25]), freq, {0: 1, 1: 0, 2: 2}) == 0.0
    assert prior_kl(np.array([0.25, 0.5, 0.25]), freq, identity) > 0.1
    # an unmatched category takes the class left over
    assert prior_kl(np.array([0.25, 0.5, 0.25]), freq, {0: 1, 1: 0}) == 0.0


def test_match_categories_returns_the_assignment_behind_the_accuracy() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([2, 2, 0, 0, 1, 0])  # category 2 is class 0, 0 is class 1, 1 is class 2
    matching, accuracy = match_categories(pred, labels)
    assert matching == {2: 0, 0: 1, 1: 2} and accuracy == pytest.approx(5 / 6)
