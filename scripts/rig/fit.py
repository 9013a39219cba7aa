"""Fit the rig's basis: ridge least squares per landmark within each coefficient's region, R^2, blink calibration.

Landmark displacement (vs the subject's reference face) is regressed on blendshape values (vs the
reference's), each coefficient restricted to its anatomical region and side.
"""
from __future__ import annotations

import numpy as np

from engine import face_geometry as fg
from engine.types import BLENDSHAPE_NAMES, COEFF_INDEX, NUM_COEFFS

NL = fg.NUM_LANDMARKS


def fit_basis(x, y, w, fit_idx, region, alpha: float) -> np.ndarray:
    """Ridge fit per landmark over the coefficients whose region holds it. -> (52, 478, 3).

    lambda = alpha * mean weighted second moment of the fitted coefficients, so alpha is
    scale-free across datasets and weightings.
    """
    xw = x * w[:, None]
    g = xw.T @ x
    h = xw.T @ y
    lam = alpha * float(np.mean(np.diag(g)[fit_idx]))
    basis = np.zeros((NUM_COEFFS, NL, 3))
    fit_set = np.zeros(NUM_COEFFS, bool)
    fit_set[fit_idx] = True
    for j in range(NL):
        a = np.flatnonzero(region[:, j] & fit_set)
        if len(a) == 0:
            continue
        basis[a, j] = np.linalg.solve(g[np.ix_(a, a)] + lam * np.eye(len(a)), h[a, 3 * j:3 * j + 3])
    return basis


def r2(x, y, basis) -> float:
    """1 - SSE / SS of the displacements (baseline: predicting no displacement)."""
    pred = x @ basis.reshape(NUM_COEFFS, -1)
    return float(1.0 - ((y - pred) ** 2).sum() / (y ** 2).sum())


def calibrate_blink(basis: np.ndarray, mf: np.ndarray, k: int, lids) -> float:
    """Scale a fitted blink so the lids meet at 1 (ARKit: eyeBlink=1 is a closed eye), then put
    every upper-lid point exactly on its lower-lid partner. Returns the coefficient value at which
    the raw fit closed the eye (MediaPipe's scale)."""
    up, lo = [u for u, _ in lids], [d for _, d in lids]
    gap0 = (mf[lo, 1] - mf[up, 1])[2:5].mean()
    dgap = (basis[k, lo, 1] - basis[k, up, 1])[2:5].mean()
    if dgap >= 0:
        raise RuntimeError(f"fitted {BLENDSHAPE_NAMES[k]} does not close the eye")
    s = -gap0 / dgap
    basis[k] *= s
    basis[k, up] = (mf[lo] + basis[k, lo]) - mf[up]
    return 1.0 / s


def pair_mean(v: np.ndarray, k: int) -> float:
    """v[k], averaged with the mirror coefficient's value for Left/Right pairs."""
    n = BLENDSHAPE_NAMES[k]
    for a, b in (("Left", "Right"), ("Right", "Left")):
        if n.endswith(a) and n[: -len(a)] + b in COEFF_INDEX:
            return 0.5 * float(v[k] + v[COEFF_INDEX[n[: -len(a)] + b]])
    return float(v[k])
