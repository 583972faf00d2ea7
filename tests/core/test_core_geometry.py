"""Slant and stroke width by image moments, against synthetic strokes of known angle and width."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infogan_core import TrainConfig, measured_metrics, train
from infogan_core.evaluation import factor_correlations, geometry_alignment, slant, stroke_width

from helpers import TINY_DIGITS

pytestmark = pytest.mark.usefixtures("core_env")

GEOMETRY = {"eval/slant_corr", "eval/width_corr", "eval/slant_width_align"}


def stroke(angle: float, width: float, length: float = 16.0, size: int = 28) -> np.ndarray:
    """(1, size, size) image in [-1, 1]: a straight stroke through the centre, leaning right by `angle` degrees
    from vertical, `width` pixels wide, its edges softened over a quarter pixel."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = (size - 1) / 2
    u, v = cols - centre, centre - rows  # v points up
    t = math.radians(angle)
    along, across = u * math.sin(t) + v * math.cos(t), u * math.cos(t) - v * math.sin(t)
    outside = np.maximum(np.abs(across) - width / 2, np.abs(along) - length / 2)  # > 0 outside the stroke
    return (2.0 / (1.0 + np.exp(outside / 0.25)) - 1.0)[None]


ANGLES = [-30.0, -15.0, 0.0, 10.0, 20.0, 35.0]


def test_slant_is_the_tangent_of_the_lean_with_its_sign():
    got = slant(np.stack([stroke(a, 1.5, length=20.0) for a in ANGLES]))
    assert np.all(np.diff(got) > 0)  # monotone in the angle
    assert np.all(got[:2] < 0) and abs(got[2]) < 1e-9 and np.all(got[3:] > 0)  # leaning left reads negative
    assert got == pytest.approx([math.tan(math.radians(a)) for a in ANGLES], abs=0.03)


def test_slant_of_an_upright_stroke_is_zero_whatever_its_width():
    assert slant(np.stack([stroke(0.0, w) for w in (1.5, 3.0, 5.0)])) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("angle", [0.0, 20.0, 45.0])
def test_stroke_width_recovers_known_widths_at_any_angle(angle):
    widths = [2.0, 3.0, 4.0, 5.0]
    got = stroke_width(np.stack([stroke(angle, w) for w in widths]))
    assert np.all(np.diff(got) > 0.5)  # a pixel wider reads wider
    assert got == pytest.approx(widths, abs=0.65)


def test_factor_correlations_find_the_code_that_drives_each_factor():
    rng = np.random.default_rng(0)
    codes = rng.uniform(-1, 1, size=(200, 2))
    images = np.stack([stroke(30 * c0, 3.0 + c1) for c0, c1 in codes])  # c0 leans, c1 thickens
    corr = factor_correlations(codes, {"slant": slant(images), "width": stroke_width(images)})
    assert corr["slant"][0] > 0.95 and corr["slant"][1] < 0.3
    assert corr["width"][1] > 0.95 and corr["width"][0] < 0.3


def _strokes_of(codes: np.ndarray, lean: int, thicken: int) -> np.ndarray:
    """Strokes whose lean follows codes[:, lean] and whose width follows codes[:, thicken]."""
    return np.stack([stroke(30 * c[lean], 3.0 + c[thicken]) for c in codes])


def test_geometry_alignment_is_one_when_two_codes_carry_the_two_factors_in_either_order():
    codes = np.random.default_rng(1).uniform(-1, 1, size=(150, 3))  # the third code drives nothing
    for lean, thicken in ((0, 1), (2, 0)):
        out = geometry_alignment(codes, _strokes_of(codes, lean, thicken))
        assert set(out) == GEOMETRY
        assert out["eval/slant_corr"] > 0.95 and out["eval/width_corr"] > 0.95
        assert out["eval/slant_width_align"] > 0.95


def test_one_code_that_slants_and_thickens_aligns_only_half():
    """Either corr alone is near 1, but the alignment gives each factor its own code: the other code reads ~0."""
    codes = np.random.default_rng(2).uniform(-1, 1, size=(150, 2))
    out = geometry_alignment(codes, _strokes_of(codes, 0, 0))
    assert out["eval/slant_corr"] > 0.95 and out["eval/width_corr"] > 0.9
    assert 0.4 < out["eval/slant_width_align"] < 0.65


def test_codes_that_drive_nothing_read_near_zero_and_one_code_has_no_alignment():
    rng = np.random.default_rng(3)
    images = np.stack([stroke(a, w) for a, w in zip(rng.uniform(-30, 30, 300), rng.uniform(2, 4, 300), strict=True)])
    out = geometry_alignment(rng.uniform(-1, 1, size=(300, 1)), images)
    assert set(out) == {"eval/slant_corr", "eval/width_corr"}  # one code cannot carry two factors
    assert out["eval/slant_corr"] < 0.2 and out["eval/width_corr"] < 0.2


def test_a_tiny_image_run_reports_the_geometry_metrics_in_the_unit_interval():
    result = train(TrainConfig(**TINY_DIGITS, steps=6, report_every=3, eval_every=3, cont_codes=2))
    evaluations = [h for h in result.history if "eval/slant_width_align" in h]
    assert len(evaluations) == 2  # each evaluation measures them
    for name in GEOMETRY:
        assert 0.0 <= result.metrics[name] <= 1.0, (name, result.metrics[name])


def test_geometry_metrics_are_measured_for_images_with_continuous_codes_only():
    def why(**knobs) -> dict[str, str]:
        return {k: v for k, v in measured_metrics(TrainConfig(**knobs)).items() if k in GEOMETRY}

    assert set(why(dataset="digits", cont_codes=2).values()) == {""}
    one = why(dataset="mnist-5k", cont_codes=1)
    assert one["eval/slant_corr"] == one["eval/width_corr"] == ""
    assert "two continuous codes" in one["eval/slant_width_align"]
    assert all("image data" in v for v in why(dataset="ring8", cont_codes=2).values())
    assert all(v for v in why(dataset="digits", cont_codes=0).values())
