"""Known-answer tests of the metrics GAN papers report (issue 26): NMI and ARI, precision/recall/density/coverage,
MIG and DCI, and FID and KID in InceptionV3's features (here through a stand-in network)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from infogan_core import DataError, TrainConfig, evaluation, load_dataset, measured_metrics, metrics
from infogan_core.evaluation import (
    dci_importance,
    dci_scores,
    histogram_bins,
    kernel_distance,
    label_agreement,
    mutual_information_gap,
    precision_recall_density_coverage,
)
from infogan_core.models import InfoGAN

pytestmark = pytest.mark.usefixtures("core_env")


# --- NMI and ARI of the categorical code against the labels -------------------------------------


def test_a_relabelling_agrees_perfectly_and_an_independent_code_not_at_all() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=5000)
    assert label_agreement(rng.permutation(10)[labels], labels) == pytest.approx((1.0, 1.0))
    nmi, ari = label_agreement(rng.integers(0, 10, size=5000), labels)
    assert 0.0 <= nmi < 0.01 and abs(ari) < 0.01


def test_label_agreement_hand_computed() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 0, 1, 1, 2, 2])
    # I = H(labels) - H(labels | pred) = ln 2 - (1/3) ln 2; NMI = I / ((H(labels) + H(pred)) / 2)
    nmi = (2 / 3 * math.log(2)) / ((math.log(2) + math.log(3)) / 2)
    # ARI: sum C(n_ij, 2) = 2, rows sum C(3, 2) * 2 = 6, columns 3 * C(2, 2) = 3, C(6, 2) = 15
    expected = 6 * 3 / 15
    ari = (2 - expected) / ((6 + 3) / 2 - expected)
    assert label_agreement(pred, labels) == pytest.approx((nmi, ari))


# --- precision, recall, density, coverage -------------------------------------------------------


def test_identical_sets_score_one_and_far_sets_zero() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(500, 8))
    assert precision_recall_density_coverage(real, real.copy()) == pytest.approx((1.0, 1.0, 1.0, 1.0))
    far = precision_recall_density_coverage(real, real + 100.0)
    assert far == (0.0, 0.0, 0.0, 0.0)


def test_prdc_hand_computed_in_one_dimension() -> None:
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # k = 1: every real ball has radius 1
    fake = np.array([[0.5], [10.0]])  # fake balls: radius 9.5 each
    scores = precision_recall_density_coverage(real, fake, k=1)
    assert scores.precision == 0.5  # 0.5 lies in the balls of 0 and 1; 10 in none
    assert scores.recall == 1.0  # every real point lies within 9.5 of 0.5
    assert scores.density == 1.0  # (2 balls + 0 balls) / (k * 2 samples)
    assert scores.coverage == 0.5  # reals 0 and 1 have a sample within 1; 2 and 3 do not


def test_a_collapsed_generator_keeps_precision_and_loses_recall_and_coverage() -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(size=(1000, 2))
    collapsed = real[:1000:100].repeat(100, axis=0) + 1e-3 * rng.normal(size=(1000, 2))  # ten points, repeated
    scores = precision_recall_density_coverage(real, collapsed)
    assert scores.precision > 0.95 and scores.recall < 0.2 and scores.coverage < 0.2


def test_prdc_agrees_with_the_authors_implementation() -> None:
    prdc = pytest.importorskip("prdc", reason="prdc (the dev extra) is not installed")
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(400, 16)), rng.normal(size=(300, 16)) + 0.3
    ours = precision_recall_density_coverage(real, fake, k=5)._asdict()
    theirs = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    assert ours == pytest.approx(theirs)


# --- MIG ------------------------------------------------------------------------------------------


def test_codes_equal_to_the_factors_have_a_gap_near_one_and_independent_codes_near_zero() -> None:
    rng = np.random.default_rng(0)
    factors = histogram_bins(rng.uniform(size=(5000, 4)))
    assert mutual_information_gap(factors[:, [2, 0, 3, 1]], factors) > 0.95  # in any order
    assert mutual_information_gap(histogram_bins(rng.normal(size=(5000, 4))), factors) < 0.05


def test_two_codes_on_one_factor_close_its_gap() -> None:
    rng = np.random.default_rng(1)
    factors = histogram_bins(rng.uniform(size=(5000, 2)))
    # factor 0 is captured twice (its gap is 0), factor 1 once (its gap is near 1)
    assert mutual_information_gap(factors[:, [0, 0, 1]], factors) == pytest.approx(0.5, abs=0.03)


def test_histogram_bins_are_equal_width_and_mig_needs_two_codes() -> None:
    binned = histogram_bins(np.array([0.0, 0.04, 0.06, 0.99, 1.0]), bins=10)
    np.testing.assert_array_equal(binned[:, 0], [0, 0, 0, 9, 9])
    with pytest.raises(ValueError, match="MIG needs two codes or more, but got 1"):
        mutual_information_gap(binned, binned)


# --- DCI ------------------------------------------------------------------------------------------


def test_dci_of_hand_made_importance_matrices() -> None:
    assert dci_scores(np.eye(3)) == pytest.approx((1.0, 1.0))
    assert dci_scores(np.eye(3)[[2, 0, 1]]) == pytest.approx((1.0, 1.0))  # a permutation is as good
    assert dci_scores(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-9)
    # two codes both for factor 0: each code is disentangled (D = 1), factor 0 is split over two (C = 0)
    assert dci_scores(np.array([[1.0, 0.0], [1.0, 0.0]])) == pytest.approx((1.0, 0.0), abs=1e-9)
    with pytest.raises(ValueError, match="DCI needs two codes and two factors"):
        dci_scores(np.ones((1, 3)))


def test_dci_of_a_permuted_code_is_near_one_and_of_a_mixed_code_far_lower() -> None:
    rng = np.random.default_rng(0)
    factors = rng.uniform(-1, 1, size=(2000, 4))
    permuted = dci_scores(dci_importance(factors[:, [2, 0, 3, 1]], factors, discrete=[False] * 4))
    assert permuted.disentanglement > 0.95 and permuted.completeness > 0.95
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]  # every code a blend of every factor
    mixed = dci_scores(dci_importance(factors @ rotation, factors, discrete=[False] * 4))
    assert mixed.disentanglement < 0.6 and mixed.completeness < 0.6


def test_dci_reads_a_discrete_factor_with_a_classifier() -> None:
    rng = np.random.default_rng(1)
    shape = rng.integers(0, 3, size=2000)
    scale = rng.uniform(size=2000)
    codes = np.column_stack([scale, shape])  # code 0 is the scale, code 1 the shape
    importance = dci_importance(codes, np.column_stack([shape, scale]), discrete=[True, False])
    np.testing.assert_allclose(importance, [[0.0, 1.0], [1.0, 0.0]], atol=0.05)


# --- KID and FID ----------------------------------------------------------------------------------


def test_kid_of_point_masses_is_the_kernel_closed_form() -> None:
    u, v = np.array([1.0, 2.0, 0.0]), np.array([0.0, 1.0, -1.0])
    k = lambda x, y: (x @ y / 3 + 1) ** 3  # noqa: E731
    a, b = np.tile(u, (50, 1)), np.tile(v, (40, 1))
    assert kernel_distance(a, b, subsets=3) == pytest.approx(k(u, u) + k(v, v) - 2 * k(u, v))


def test_kid_is_the_unbiased_mmd_and_near_zero_for_one_distribution() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) + 0.5
    k = (np.concatenate([a, b]) @ np.concatenate([a, b]).T / 4 + 1) ** 3
    kaa, kbb, kab = k[:6, :6], k[6:, 6:], k[:6, 6:]
    unbiased = (kaa.sum() - np.trace(kaa)) / 30 + (kbb.sum() - np.trace(kbb)) / 30 - 2 * kab.mean()
    assert kernel_distance(a, b, subsets=2, subset_size=6) == pytest.approx(unbiased)  # whole sets each time
    same = kernel_distance(rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16)))
    shifted = kernel_distance(rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16)) + 0.5)
    assert abs(same) < 0.01 < shifted


class _StandIn(nn.Module):
    """A tiny network in InceptionV3's place: 8-bit RGB in, a tuple of (N, 12) features out, like torch-fidelity's."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        self.inputs.append(x)
        return (self.pool(x.float() / 255).flatten(1),)


class _RealImages(nn.Module):
    """A generator that returns real images, in order, whatever its input: a perfect sampler."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.x = x

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.x[: len(z)]


@pytest.fixture()
def stand_in(monkeypatch, tmp_path) -> _StandIn:
    """InceptionV3 replaced by `_StandIn`, a weights file named, torch-fidelity taken as installed."""
    net = _StandIn()
    weights = tmp_path / metrics.INCEPTION_WEIGHTS_FILE
    weights.write_bytes(b"stand-in")
    monkeypatch.setenv(metrics.INCEPTION_WEIGHTS_ENV, str(weights))
    monkeypatch.setattr(metrics, "_has_torch_fidelity", lambda: True)
    monkeypatch.setattr(evaluation, "_inception_net", lambda path: net)
    monkeypatch.setattr(evaluation, "_INCEPTION", {})
    return net


def test_fid_and_kid_read_the_named_network_on_eight_bit_rgb(stand_in: _StandIn) -> None:
    cfg = TrainConfig(dataset="digits", cat_codes=[10], cont_codes=0, eval_samples=500, device="cpu")
    data = load_dataset("digits")
    model = InfoGAN(cfg, data.sample_shape)
    assert measured_metrics(cfg)["eval/fid"] == measured_metrics(cfg)["eval/kid"] == ""
    model.generator = _RealImages(torch.from_numpy(data.x[-500:]))  # held-apart real digits
    perfect = evaluation.evaluate(model, cfg, data, seed=0)
    assert all(x.dtype == torch.uint8 and x.shape[1] == 3 for x in stand_in.inputs)
    assert stand_in.inputs[0].shape[0] == 100  # batched
    model.generator = _RealImages(torch.full((500, 1, 8, 8), -1.0))  # blank images
    blank = evaluation.evaluate(model, cfg, data, seed=0)
    assert 0.0 <= perfect["eval/fid"] < 0.1 * blank["eval/fid"]
    assert abs(perfect["eval/kid"]) < 0.1 * blank["eval/kid"]


def test_fid_and_kid_are_refused_with_their_reason(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(metrics.INCEPTION_WEIGHTS_ENV, raising=False)
    digits = TrainConfig(dataset="digits", cat_codes=[10], device="cpu")
    assert metrics.INCEPTION_WEIGHTS_ENV in measured_metrics(digits)["eval/fid"]
    monkeypatch.setenv(metrics.INCEPTION_WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    assert "missing.pth, which is not a file" in measured_metrics(digits)["eval/kid"]
    (tmp_path / "weights.pth").write_bytes(b"x")
    monkeypatch.setenv(metrics.INCEPTION_WEIGHTS_ENV, str(tmp_path / "weights.pth"))
    monkeypatch.setattr(metrics, "_has_torch_fidelity", lambda: False)
    assert '".[inception]"' in measured_metrics(digits)["eval/fid"]
    ring = TrainConfig(dataset="ring8", arch="mlp", cat_codes=[8], device="cpu")
    assert measured_metrics(ring)["eval/fid"] == "it needs images"
    model = InfoGAN(digits, (1, 8, 8))
    assert "eval/fid" not in evaluation.evaluate(
        model, digits.replace(eval_samples=100), load_dataset("digits"), seed=0
    )


def test_an_unusable_weights_file_is_a_data_error(monkeypatch, tmp_path) -> None:
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"not a state dict")
    monkeypatch.setenv(metrics.INCEPTION_WEIGHTS_ENV, str(weights))
    monkeypatch.setattr(evaluation, "_INCEPTION", {})
    # without torch-fidelity (or with a torchvision that does not load): that; with it, the file's fault
    with pytest.raises(DataError, match="torch-fidelity"):
        evaluation.inception_reference(load_dataset("digits"), weights, torch.device("cpu"))


# --- evaluate() reports them where they apply ----------------------------------------------------


def test_shapes_reports_mig_and_dci_and_digits_prdc_and_label_agreement() -> None:
    cfg = TrainConfig(dataset="shapes", cat_codes=[3], cont_codes=4, eval_samples=500, device="cpu")
    data = load_dataset("shapes")
    torch.manual_seed(0)
    out = evaluation.evaluate(InfoGAN(cfg, data.sample_shape), cfg, data, seed=0)
    for name in ("eval/mig", "eval/dci_d", "eval/dci_c", "eval/nmi", "eval/ari", "eval/precision", "eval/coverage"):
        assert name in out and measured_metrics(cfg)[name] == "", name
    assert 0.0 <= out["eval/mig"] <= 1.0 and 0.0 <= out["eval/dci_d"] <= 1.0 and 0.0 <= out["eval/dci_c"] <= 1.0
    digits = TrainConfig(dataset="digits", cat_codes=[10], cont_codes=2, device="cpu")
    assert measured_metrics(digits)["eval/mig"] == "it needs two codes or more and `shapes`"
    one_code = cfg.replace(cat_codes=[], cont_codes=1)
    assert "eval/dci_d" not in evaluation.evaluate(InfoGAN(one_code, data.sample_shape), one_code, data, seed=0)
    assert measured_metrics(one_code)["eval/dci_c"] == "it needs two codes or more and `shapes`"
