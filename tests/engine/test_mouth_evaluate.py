"""Measuring helpers of the neural-mouth proof (scripts/mouth/evaluate.py), on synthetic images."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.face_geometry import LIPS_INNER, LIPS_OUTER, NUM_LANDMARKS  # noqa: E402
from scripts.mouth.evaluate import (  # noqa: E402
    expanded_box, mean_abs_change, monotone, mouth_width, region_scores, save_sheet, similarity, ssim_map,
    teeth_fraction)


def _texture(seed=0, shape=(96, 96, 3)):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (5, 5), 1.0)


def test_ssim_is_one_for_identical_images_and_lower_otherwise():
    a = _texture()
    assert ssim_map(a, a).mean() == pytest.approx(1.0, abs=1e-9)
    noisy = np.clip(a.astype(int) + np.random.default_rng(1).integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    s_noisy, s_other = ssim_map(a, noisy).mean(), ssim_map(a, _texture(2)).mean()
    assert s_other < s_noisy < 1.0
    assert ssim_map(a, noisy).shape == a.shape[:2]


def test_region_scores_only_see_the_box():
    a = _texture()
    b = a.copy()
    b[:20] = 255 - b[:20]  # damage outside the box
    r = region_scores(a, b, (30, 30, 70, 70), pad=8)
    assert r["ssim"] == pytest.approx(1.0, abs=1e-9) and r["psnr"] > 90
    b[40:50, 40:50] = 0
    r = region_scores(a, b, (30, 30, 70, 70))
    assert r["ssim"] < 0.95 and r["psnr"] < 30


def test_expanded_box_grows_about_the_centre_and_clips():
    pts = np.array([[40.0, 50.0], [60.0, 60.0]])
    x0, y0, x1, y1 = expanded_box(pts, (200, 200), factor=2.0)
    assert (x0, y0) == (30, 45) and x1 in (70, 71) and y1 in (65, 66)
    assert expanded_box(pts, (55, 55), factor=4.0)[2:] == (55, 55)


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 100, (8, 2))
    ang, k, t = np.radians(12.0), 1.3, np.array([5.0, -7.0])
    r = k * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    m = similarity(src, src @ r.T + t)
    assert np.allclose(m[:, :2], r, atol=1e-9) and np.allclose(m[:, 2], t, atol=1e-9)


def _mouth_landmarks(gap: float) -> np.ndarray:
    """Landmarks with only the eye corners and lips placed: lips an ellipse at (50, 50), inner gap `gap` px."""
    lm = np.zeros((NUM_LANDMARKS, 3))
    lm[33, :2], lm[263, :2] = (10, 10), (90, 10)  # outer eye corners: 80 px apart
    for loop, (rx, ry) in ((LIPS_OUTER, (25, 14)), (LIPS_INNER, (20, gap / 2))):
        a = np.linspace(np.pi, -np.pi, len(loop), endpoint=False)
        lm[list(loop), 0] = 50 + rx * np.cos(a)
        lm[list(loop), 1] = 50 + ry * np.sin(a)
    return lm


def test_teeth_fraction_counts_bright_grey_pixels_in_the_inner_lips():
    lm = _mouth_landmarks(gap=12)
    red = np.zeros((100, 100, 3), np.uint8)
    red[...] = (170, 40, 50)  # lips and skin: saturated
    assert teeth_fraction(red, lm) == 0.0
    white = red.copy()
    white[40:60, 25:75] = (235, 235, 230)
    f = teeth_fraction(white, lm)
    assert 0.1 < f < 0.6
    dark = red.copy()
    dark[40:60, 25:75] = (30, 20, 20)  # the mouth's shadow: no teeth
    assert teeth_fraction(dark, lm) == 0.0
    assert teeth_fraction(white, _mouth_landmarks(gap=0)) == pytest.approx(0.0, abs=0.02)


def test_mouth_width_is_in_eye_units():
    lm = _mouth_landmarks(gap=4)
    assert mouth_width(lm) == pytest.approx(50 / 80)


def test_monotone_and_still_frames():
    assert monotone([0.1, 0.3, 0.28, 0.6, 0.9])
    assert not monotone([0.1, 0.3, 0.2, 0.6, 0.9])
    assert not monotone([0.1, None, 0.3])
    f = _texture()
    assert mean_abs_change([f, f.copy(), f.copy()]) == 0.0
    assert mean_abs_change([f, 255 - f]) > 0


def test_sheet_fits_the_size_limit(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)  # noise: JPEG's worst case
    p = tmp_path / "sheet.jpg"
    n = save_sheet(img, p, max_bytes=60_000)
    assert p.stat().st_size == n <= 60_000
