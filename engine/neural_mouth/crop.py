"""Where the neural mouth looks: a square lower-face crop that follows the head, and its input masks.

Training (scripts/mouth/) and the renderer build the generator's input with these
functions only, so both see the same pixels. The crop is a similarity of the
frame: its axis is the line between the outer eye corners (which expressions
barely move), its side is SIDE outer-eye distances, and its centre sits at the
avatar's rest mouth centre shifted DOWN towards the chin, so an open jaw stays
inside. The mouth centre is given per avatar as an offset in eye units, so the
crop does not slide when the lips move.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..face_geometry import EYE_OUTER_L, EYE_OUTER_R, LIPS_INNER, LIPS_OUTER

RES = 96  # generator input side, px (docs/design/neural-mouth.md, "Crop resolution")
SIDE = 1.25  # crop side, in outer-eye distances: cheek to cheek, under the nose to below the chin
DOWN = 0.18  # crop centre below the mouth centre, in outer-eye distances
MOUTH_POINTS = (61, 291, 0, 17)  # corners, upper and lower lip middle: the mouth centre at rest
CHANNELS = 5  # RGB of the warped frame, inner-lip fill, outer-lip fill


def _eye_axes(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    r, l = np.asarray(xy[EYE_OUTER_R, :2], np.float64), np.asarray(xy[EYE_OUTER_L, :2], np.float64)
    d = l - r
    s = float(np.hypot(*d))
    if s < 1e-6:
        raise ValueError("degenerate landmarks: eye corners coincide")
    x = d / s
    return 0.5 * (r + l), x, s


def mouth_offset(landmarks: np.ndarray) -> np.ndarray:
    """(2,) the rest mouth centre relative to the eye midpoint, in the eye axis, in eye units."""
    mid, x, s = _eye_axes(landmarks)
    y = np.array([-x[1], x[0]])
    c = np.asarray(landmarks[list(MOUTH_POINTS), :2], np.float64).mean(axis=0) - mid
    return np.array([c @ x, c @ y]) / s


def crop_matrix(xy: np.ndarray, offset: np.ndarray, res: int = RES) -> np.ndarray:
    """2x3 affine taking frame pixels to crop pixels, for landmarks `xy` (N >= 478, 2+) in the frame."""
    mid, x, s = _eye_axes(xy)
    y = np.array([-x[1], x[0]])
    centre = mid + s * (offset[0] * x + (offset[1] + DOWN) * y)
    k = res / (SIDE * s)  # crop px per frame px
    rot = np.stack([x, y]) * k  # rows: crop x and y axes
    t = res / 2.0 - 0.5 - rot @ centre  # crop pixel centres at k + 0.5 ... (cv2 maps pixel centres)
    return np.c_[rot, t]


def to_crop(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return np.asarray(xy[:, :2], np.float64) @ m[:, :2].T + m[:, 2]


def lip_masks(xy_crop: np.ndarray, res: int = RES) -> np.ndarray:
    """(2, res, res) float32 in 0..1: the inner-lip (mouth opening) and outer-lip fills, anti-aliased."""
    out = np.zeros((2, res, res), np.float32)
    for k, loop in enumerate((LIPS_INNER, LIPS_OUTER)):
        m = np.zeros((res, res), np.uint8)
        pts = np.round(xy_crop[list(loop), :2] * 16).astype(np.int32)
        cv2.fillPoly(m, [pts], 255, lineType=cv2.LINE_AA, shift=4)
        out[k] = m * np.float32(1 / 255)
    return out


def cut(frame: np.ndarray, m: np.ndarray, res: int = RES) -> np.ndarray:
    """The crop of an RGB frame (res, res, 3) uint8; INTER_AREA-like quality from a linear warp of a blurred copy
    is not needed at ~1.3x reduction, so bilinear."""
    return cv2.warpAffine(frame, m, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def network_input(crop_rgb: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(1, CHANNELS, res, res) float32: RGB scaled to -1..1, then the two lip masks."""
    rgb = crop_rgb.astype(np.float32).transpose(2, 0, 1) * np.float32(2 / 255) - 1.0
    return np.concatenate([rgb, masks])[None]


def blend_weight(res: int = RES) -> np.ndarray:
    """(res, res) float32 feathered ellipse: where the generator's change is kept (1 inside, 0 at the crop edge)."""
    c = (res - 1) / 2.0
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float64)
    r = np.hypot((xx - c) / (0.46 * res), (yy - c) / (0.46 * res))
    w = np.clip((1.0 - r) / 0.22, 0.0, 1.0)
    return (w * w * (3 - 2 * w)).astype(np.float32)  # smoothstep: no visible edge
