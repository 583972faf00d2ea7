"""Slant and stroke width by image moments, against synthetic strokes of known angle and width."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infogan_core.evaluation import factor_correlations, slant, stroke_width


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
