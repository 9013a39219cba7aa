"""A painted mouth interior (cavity, upper teeth, tongue) for lips opened beyond the photo.

A photo shows at most the mouth it was taken with; when the jaw opens further,
warping would smear the lips across the gap. Inside the deformed inner-lip
contour we paint a shaded interior, faded in by how much wider the gap is than
in the photo, so the photo's own mouth stays untouched at rest.
"""
from __future__ import annotations

import cv2
import numpy as np

from kernels.warp import blend_masked

from ..face_geometry import LIPS_INNER, pixel_box

# LIPS_INNER runs 78 (image-left corner) -> upper lip -> 308 (right corner) -> lower lip.
_UPPER = LIPS_INNER[:11]
_LOWER = LIPS_INNER[10:] + LIPS_INNER[:1]
_GAP_PAIRS = ((13, 14), (82, 87), (312, 317))

CAVITY = np.array([52.0, 18.0, 24.0])
TEETH = np.array([226.0, 222.0, 208.0])
TONGUE = np.array([158.0, 66.0, 72.0])
TEETH_FILL = 0.8  # most of a slight opening is teeth; the rest is the shadow above the lower lip
FADE_IN = 0.035  # extra gap (in inter-ocular units) over which the painted interior fades in


def _gap(xy: np.ndarray) -> float:
    return float(np.mean([xy[d, 1] - xy[u, 1] for u, d in _GAP_PAIRS]))


class MouthPainter:
    def __init__(self, rest_vertices: np.ndarray, scale: float):
        self._rest_gap = _gap(rest_vertices[:, :2])
        self._fade = FADE_IN * scale

    def paint(self, out: np.ndarray, xy: np.ndarray) -> None:
        strength = np.clip((_gap(xy) - self._rest_gap) / self._fade, 0.0, 1.0)
        if strength <= 0.0:
            return
        poly = xy[list(LIPS_INNER)]
        x0, y0, x1, y1 = pixel_box(poly, out.shape)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        bw, bh = x1 - x0, y1 - y0
        mask = np.zeros((bh, bw), np.uint8)
        local = np.round((poly - (x0, y0)) * 16).astype(np.int32)
        cv2.fillPoly(mask, [local], 255, lineType=cv2.LINE_AA, shift=4)
        alpha = mask.astype(np.float32) * np.float32(strength / 255.0)

        up, lo = xy[list(_UPPER)], xy[list(_LOWER)]
        xs = np.arange(x0, x1, dtype=np.float64)
        yu = np.interp(xs, *_sorted_xy(up))
        yl = np.interp(xs, *_sorted_xy(lo))
        ys = np.arange(y0, y1, dtype=np.float64)[:, None]
        gap = np.maximum(yl - yu, 1.0)[None, :]
        t = np.clip((ys - yu[None, :]) / gap, 0.0, 1.0)  # 0 at upper lip, 1 at lower lip
        cx = 0.5 * (poly[:, 0].min() + poly[:, 0].max())
        half_w = max(0.5 * np.ptp(poly[:, 0]), 1.0)
        side = np.clip(np.abs(xs - cx) / half_w, 0.0, 1.0)[None, :]

        colour = CAVITY * (1.0 - 0.35 * t[..., None])
        # Upper teeth: the incisors' crown (about 0.16 of the mouth width) hangs under the upper lip, so a
        # slight parting (a broad smile, a sneer's raised lip) shows teeth across most of the gap and only a
        # wide opening shows the cavity below them; darker to the corners.
        teeth_h = np.minimum(0.16 * 2 * half_w, TEETH_FILL * gap)
        in_teeth = np.clip((teeth_h - (ys - yu[None, :])) / 1.5, 0.0, 1.0) * (ys >= yu[None, :] - 1)
        teeth_shade = (1.0 - 0.55 * side ** 2) * (0.82 + 0.18 * np.clip((ys - yu[None, :]) / np.maximum(teeth_h, 1), 0, 1))
        colour = colour * (1 - in_teeth[..., None]) + (TEETH * teeth_shade[..., None]) * in_teeth[..., None]
        # Tongue: a soft ellipse resting on the lower lip.
        ty = yl[None, :] - 0.22 * gap
        e = ((xs[None, :] - cx) / (0.62 * half_w)) ** 2 + ((ys - ty) / np.maximum(0.32 * gap, 1.0)) ** 2
        tongue = np.clip(1.0 - e, 0.0, 1.0) ** 0.5 * 0.9
        colour = colour * (1 - tongue[..., None]) + TONGUE * tongue[..., None]
        overlay = np.clip(colour, 0, 255).astype(np.uint8)
        blend_masked(out[y0:y1, x0:x1], overlay, alpha)


def _sorted_xy(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(pts[:, 0])
    return pts[order, 0], pts[order, 1]
