"""Skin folds that an expression makes and a 2D warp cannot: soft shading along landmark-anchored lines.

Warping a neutral photo moves the brows and lips, but the skin keeps its neutral
shading, so an anger or a sneer reads faintly. The FACS manual lists the
appearance changes of the action units that carry these emotions; we shade them:
* AU1/AU2 (browInnerUp / browOuterUp): horizontal forehead lines, centre / sides;
* AU4 (browDown): vertical furrows between the brows;
* AU9 (noseSneer): lines across the root of the nose;
* AU6 (cheekSquint), AU12 (mouthSmile), AU9: deeper nasolabial furrows;
* AU6: crow's feet at the outer eye corners.
Each line is a polyline of mixes of the deformed landmarks (so it follows the
warp and the head), drawn once per frame into one small mask, blurred, and
applied as a multiplicative darkening of the photo's own skin (a shadow keeps
the skin's colour). Only emotion-only coefficients drive it: speech never does,
so lip-sync frames are untouched.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..types import COEFF_INDEX

MAX_DARK = 0.32  # darkening at the core of a fold at full strength
WIDTH = 0.022  # line width, inter-ocular units
BLUR = 0.014  # Gaussian sigma, inter-ocular units
MIN_AMOUNT = 0.03  # below this a fold is not drawn
# Relative depth of each fold: forehead lines and nose lines are shallow, brow furrows and
# nasolabial folds deep (they are the ones visible at a distance on real faces).
DEPTH = {"inner": 0.5, "outerR": 0.45, "outerL": 0.45, "furrow": 1.0, "nose": 0.55, "nasoR": 0.8, "nasoL": 0.8,
         "crowR": 0.5, "crowL": 0.5}

# A point is a mix of landmarks: ((index, weight), ...). Lines are lists of points.
_BROW_R = (70, 63, 105, 66, 107)  # upper brow contour, outer -> inner (subject's right)
_BROW_L = (300, 293, 334, 296, 336)


def _lerp(a: int, b: int, t: float) -> tuple[tuple[int, float], ...]:
    return ((a, 1.0 - t), (b, t))


def _forehead(fraction: float, brow: tuple[int, ...]) -> list:
    # Up from a brow point by `fraction` of the forehead height (landmark 9 between the brows -> 10 top).
    return [((i, 1.0), (10, fraction), (9, -fraction)) for i in brow]


def _lines() -> dict[str, list[list]]:
    out: dict[str, list[list]] = {"inner": [], "outerR": [], "outerL": [], "furrow": [], "nose": [],
                                  "nasoR": [], "nasoL": [], "crowR": [], "crowL": []}
    for f in (0.24, 0.40):
        r, l = _forehead(f, _BROW_R), _forehead(f, _BROW_L)
        centre = ((9, 1.0), (10, f * 1.05), (9, -f * 1.05))
        out["inner"].append(r[3:] + [centre] + l[3:][::-1])
        out["outerR"].append(r[:4])
        out["outerL"].append(l[:4])
    for brow, nose in ((107, 55), (336, 285)):
        out["furrow"].append([_lerp(brow, 9, 0.55), _lerp(nose, 168, 0.5)])
    for t in (0.15, 0.45):
        c = _lerp(168, 6, t)
        out["nose"].append([((193, 0.6), *((i, 0.4 * w) for i, w in c)), c, ((417, 0.6), *((i, 0.4 * w) for i, w in c))])
    out["nasoR"].append([_lerp(98, 203, 0.35), ((206, 1.0),), ((216, 1.0),), _lerp(216, 212, 0.5)])
    out["nasoL"].append([_lerp(327, 423, 0.35), ((426, 1.0),), ((436, 1.0),), _lerp(436, 432, 0.5)])
    for corner, inner, key in ((33, 133, "crowR"), (263, 362, "crowL")):
        for k in (-1.0, 0.0, 1.0):
            out[key].append([("crow", corner, inner, 0.12, 0.10 * k), ("crow", corner, inner, 0.42, 0.30 * k)])
    return out


def _amounts(c: np.ndarray) -> dict[str, float]:
    g = lambda n: float(c[COEFF_INDEX[n]])  # noqa: E731
    sneer = 0.5 * (g("noseSneerLeft") + g("noseSneerRight"))
    return {
        "inner": g("browInnerUp"),
        "outerR": g("browOuterUpRight"), "outerL": g("browOuterUpLeft"),
        "furrow": 0.5 * (g("browDownLeft") + g("browDownRight")),
        "nose": sneer,
        "nasoR": min(1.0, 0.5 * g("mouthSmileRight") + 0.5 * g("cheekSquintRight") + 0.6 * sneer),
        "nasoL": min(1.0, 0.5 * g("mouthSmileLeft") + 0.5 * g("cheekSquintLeft") + 0.6 * sneer),
        "crowR": g("cheekSquintRight"), "crowL": g("cheekSquintLeft"),
    }


class FoldPainter:
    def __init__(self, scale: float):
        self._lines = _lines()
        self._width = max(1, int(round(WIDTH * scale)))
        self._sigma = max(0.6, BLUR * scale)
        self._pad = int(np.ceil(3 * self._sigma)) + self._width + 1

    @staticmethod
    def _point(p, xy: np.ndarray) -> np.ndarray:
        if p[0] == "crow":  # outward from the eye corner, spread across the eye axis
            _, corner, inner, along, across = p
            e = xy[corner] - xy[inner]
            n = np.array([-e[1], e[0]])
            return xy[corner] + along * e + across * n
        return sum(w * xy[i] for i, w in p)

    def paint(self, out: np.ndarray, coeffs: np.ndarray, xy: np.ndarray) -> None:
        amounts = {k: min(a, 1.0) * DEPTH[k] for k, a in _amounts(coeffs).items() if a >= MIN_AMOUNT}
        if not amounts:
            return
        polys = [(np.array([self._point(p, xy) for p in line]), a)
                 for k, a in amounts.items() for line in self._lines[k]]
        allp = np.concatenate([p for p, _ in polys])
        h, w = out.shape[:2]
        x0, y0 = np.maximum(np.floor(allp.min(0)).astype(int) - self._pad, 0)
        x1, y1 = np.minimum(np.ceil(allp.max(0)).astype(int) + self._pad, (w, h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for pts, a in polys:
            local = np.round((pts - (x0, y0)) * 16).astype(np.int32)
            n = len(local) - 1
            for i in range(n):  # folds fade out at their ends
                taper = 0.45 if n > 1 and i in (0, n - 1) else 1.0
                cv2.line(mask, tuple(local[i]), tuple(local[i + 1]), int(round(255 * a * taper)), self._width,
                         lineType=cv2.LINE_AA, shift=4)
        shade = cv2.GaussianBlur(mask, (0, 0), self._sigma).astype(np.float32)
        shade *= np.float32(-MAX_DARK / 255.0)
        shade += np.float32(1.0)
        roi = out[y0:y1, x0:x1]
        roi[:] = (roi * shade[..., None]).astype(np.uint8)
