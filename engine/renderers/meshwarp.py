"""`meshwarp`: the default CPU renderer, a piecewise-affine warp of the avatar's photo.

Per frame: rig displacements (expression) and a head rotation move the mesh
vertices; only triangles that moved are redrawn over a copy of the photo, far
ones first so the face overlaps itself correctly during turns; then a painted
mouth interior fills the lips' opening beyond what the photo already shows, the
neural mouth (engine/neural_mouth) redraws the lower face, expression folds
(forehead lines, brow furrows, nasolabial folds...) are shaded in (folds.py),
and closing lids end in a lash line.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from kernels.warp import warp_triangles, warmup

from ..avatar.mesh import GROUP_OUTER
from ..face_geometry import (EYE_L_LIDS, EYE_R_LIDS, IRIS_L, IRIS_R, LIPS_INNER, NUM_LANDMARKS, face_frame,
                             rotation_matrix)
from ..rig import load_rig
from ..types import COEFF_INDEX, NUM_COEFFS, FaceState
from .base import register
from .eyes import EyePainter
from .folds import FoldPainter
from .mouth import MouthPainter

MOVE_EPS = 0.01  # px: a triangle whose vertices all moved less is left as the photo shows it
# Head-rotation pivot in face units (eye midpoint origin): behind the eyes, towards the neck.
PIVOT_FACE = np.array([0.0, 0.45, 1.1])
EYE_R_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_L_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
GAZE_GAIN = 0.22  # iris travel per unit sin(angle), in inter-ocular units
LID_SHARE = 0.85  # of the lid gap the upper lid travels in a blink; the lower lid does the rest
# A closing lid would stretch the dark lash line over the eye; the lid's source edge slides
# up past the lashes instead (inter-ocular units), so the lid shows skin and the lashes
# end at the lid margin.
LASH_SHIFT = 0.06


# Inner-lip points paired across the mouth (upper, lower), corner to corner (the same columns as
# UPPER_LIP_ROWS[0] and LOWER_LIP_ROWS[0] below).
LIP_PAIRS = tuple(zip(LIPS_INNER[1:10], LIPS_INNER[11:][::-1]))
SEAL_RELEASE_JAW = 0.2  # speech jawOpen at which a photo's sealed lips are fully parted again
# mouthClose (ARKit: lips meet over an open jaw) is drawn as a share of the opening it
# cancels: mouthClose / (jawOpen + half the lower-lip drop) of the inner-lip gap closes.
# Below this opening the share saturates (a tiny gap needs no precise ratio).
CLOSE_MIN_OPENING = 0.02
# Closing over an open jaw, the lower lip rises as a body to meet the upper lip, which comes
# down a little, its inner edge most: shares of the inner-lip gap per row, inner row first.
# Moving only the inner edges would stretch the lower lip down to the dropped chin, a shape
# that still reads as an open mouth (re-detected: 0.087 -> 0.089 inter-ocular at jawOpen 0.15).
LOWER_LIP_ROWS = ((95, 88, 178, 87, 14, 317, 402, 318, 324), (96, 89, 179, 86, 15, 316, 403, 319, 325),
                  (77, 90, 180, 85, 16, 315, 404, 320, 307), (146, 91, 181, 84, 17, 314, 405, 321, 375))
UPPER_LIP_ROWS = ((191, 80, 81, 82, 13, 312, 311, 310, 415), (183, 42, 41, 38, 12, 268, 271, 272, 407),
                  (184, 74, 73, 72, 11, 302, 303, 304, 408), (185, 40, 39, 37, 0, 267, 269, 270, 409))
LOWER_ROW_SHARE = (0.7, 0.7, 0.7, 0.7)
UPPER_ROW_SHARE = (0.3, 0.2, 0.1, 0.05)


GAIN_ASSET = Path(__file__).resolve().parents[1] / "assets" / "render_gain.json"

# Action-unit shapes the fitted rig lacks, added to emotion-only columns (speech never drives
# them: lip-sync is unchanged). Both were missing when re-detected (docs/design/emotion.md, "How the renderer shows emotion").
# AU4: the corrugator pulls the brows down AND together; the rig's browDown mostly lowers them.
# Each point it moves also moves towards the midline by this share of its (gained) vertical travel.
KNIT_SHARE = 0.8
# AU9 + AU10: the levator labii raises the upper lip with the nose wrinkle (the rig's noseSneer
# moves only the nose wings). Upper-lip rise at noseSneer L + R = 1 (face units: 0.04 = 3.6 mm),
# full at the philtrum, tapering to a third at the corners; the lower lip stays, so lips part.
SNEER_LIP_RISE = 0.06
UPPER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291,  # outer contour, corner to corner
             76, 184, 74, 73, 72, 11, 302, 303, 304, 408, 306,
             62, 183, 42, 41, 38, 12, 268, 271, 272, 407, 292,
             78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)  # inner contour
# AU9's other appearance changes (FACS manual): the brows, mostly their heads, are pulled down towards the
# wrinkled nose root and the lower lids are pushed up. The rig's noseSneer has neither: it borrows these shares
# of the same side's (knitted) browDown and of its eyeSquint column.
SNEER_BROW = 0.5
SNEER_LID = 0.5


@lru_cache(maxsize=1)
def load_render_gain() -> np.ndarray:
    """(52,) multiplier of each rig column in this renderer (1 where the asset says nothing)."""
    g = np.ones(NUM_COEFFS)
    if GAIN_ASSET.exists():
        for name, v in json.loads(GAIN_ASSET.read_text())["gain"].items():
            g[COEFF_INDEX[name]] = float(v)
    return g


def _seal_lips(lm: np.ndarray, frame) -> np.ndarray:
    """Displacement (478, 3) that closes a photo's parted lips (teeth showing).

    Undoing the fitted rest expression narrows the gap, but a fit of a few mouth
    columns rarely closes it; each inner-lip pair still apart meets halfway (a
    neutral face's lips touch: the rig's mean face has a gap of 0.006 inter-ocular),
    so the lips cover the teeth at rest.
    """
    y = frame.axes[:, 1]
    up, lo = np.array([u for u, _ in LIP_PAIRS]), np.array([d for _, d in LIP_PAIRS])
    gap = np.maximum((lm[lo] - lm[up]) @ y, 0.0)
    out = np.zeros_like(lm)
    out[up] = 0.5 * gap[:, None] * y
    out[lo] = -0.5 * gap[:, None] * y
    return out


# The lip rows with the share of a column's gap each moves by when the lips close (y grows down: the lower
# lip moves up, +, the upper lip down, -): the inner rows first, the upper lip's outer rows least.
_LIP_UP, _LIP_LO = np.array(UPPER_LIP_ROWS[0]), np.array(LOWER_LIP_ROWS[0])
_LIP_ROWS = [(np.array(r), s) for r, s in zip(LOWER_LIP_ROWS, LOWER_ROW_SHARE)] \
    + [(np.array(r), -s) for r, s in zip(UPPER_LIP_ROWS, UPPER_ROW_SHARE)]


def _lip_gap(pts: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per lip column, corner to corner: the inner-lip gap along the face's y (negative where lips cross)."""
    return (pts[_LIP_LO] - pts[_LIP_UP]) @ y


def _move_lips(d: np.ndarray, gap: np.ndarray, y: np.ndarray) -> None:
    """Close each column of the lips by `gap` (negative: part them), in place on `d`."""
    for row, row_share in _LIP_ROWS:
        d[row] -= (row_share * gap)[:, None] * y


def _uncross_lips(lm: np.ndarray, frame) -> np.ndarray:
    """Displacement (478, 3) that parts lips which cross over each other until they just meet.

    The learned rest shape (engine/avatar/rest_geometry.py) moves a grin's lips towards a closed mouth
    as a whole; for a wide-open grin it overshoots, the lower inner lip above the upper one, and a jaw
    opening for speech would then only uncross them. Each column of the lips moves apart by the share
    mouthClose uses to bring them together (the lower lip more, the upper lip's inner rows most).
    """
    y = frame.axes[:, 1]
    out = np.zeros_like(lm)
    _move_lips(out, np.minimum(_lip_gap(lm, y), 0.0), y)
    return out


def _shape_aus(basis: np.ndarray, face: np.ndarray) -> None:
    """Add the AU4 knit and AU9's brow, lid and upper-lip changes to a gained rig basis (52, 478*3), face units, in place.

    `face`: the avatar's landmarks in its face frame (x: the side of a point, y down).
    """
    side = np.sign(face[:NUM_LANDMARKS, 0])
    for name in ("browDownLeft", "browDownRight"):
        row = basis[COEFF_INDEX[name]].reshape(NUM_LANDMARKS, 3)
        row[:, 0] -= KNIT_SHARE * np.abs(row[:, 1]) * side
    for side_name in ("Left", "Right"):
        basis[COEFF_INDEX["noseSneer" + side_name]] += (SNEER_BROW * basis[COEFF_INDEX["browDown" + side_name]]
                                                       + SNEER_LID * basis[COEFF_INDEX["eyeSquint" + side_name]])
    lip = np.array(UPPER_LIP)
    x = face[lip, 0] - 0.5 * (face[61, 0] + face[291, 0])
    half = max(0.5 * abs(face[291, 0] - face[61, 0]), 1e-6)
    u = np.clip(x / half, -1.0, 1.0)
    rise = SNEER_LIP_RISE * (1.0 - (2.0 / 3.0) * u ** 2)
    for name, s in (("noseSneerLeft", 1.0), ("noseSneerRight", -1.0)):
        share = np.clip(0.5 + 0.5 * s * u * np.sign(face[291, 0] - face[61, 0]), 0.0, 1.0)
        row = basis[COEFF_INDEX[name]].reshape(NUM_LANDMARKS, 3)
        row[lip, 1] -= rise * share  # y grows down


def _lash_colour(img: np.ndarray, rest: np.ndarray) -> tuple[int, int, int]:
    """The darkest quarter of the pixels along the upper lids: this face's own lash colour."""
    pts = np.round(rest[list(EYE_R_UPPER + EYE_L_UPPER), :2]).astype(int)
    h, w = img.shape[:2]
    px = img[np.clip(pts[:, 1], 0, h - 1), np.clip(pts[:, 0], 0, w - 1)].astype(np.float64)
    dark = px[np.argsort(px.sum(axis=1))[: max(2, len(px) // 4)]]
    return tuple(int(c) for c in dark.mean(axis=0))


def _fit_blinks(basis_px: np.ndarray, rest: np.ndarray) -> None:
    """Make eyeBlink close this avatar's own eyes exactly.

    A rig fitted on many faces closes an average eye; this photo's lid gap may be
    wider. At blink = 1 each upper/lower lid pair meets at one point, and the iris
    points contract towards that line so no triangle folds over. `rest`: the
    landmarks at the neutral state (the photo's, moved by the rest offset).
    """
    for name, lids, iris in (("eyeBlinkRight", EYE_R_LIDS, IRIS_R), ("eyeBlinkLeft", EYE_L_LIDS, IRIS_L)):
        row = basis_px[COEFF_INDEX[name]].reshape(NUM_LANDMARKS, 3)
        ups, los = np.array([u for u, _ in lids]), np.array([d for _, d in lids])
        meet = rest[ups] + LID_SHARE * (rest[los] - rest[ups])
        row[ups] = meet - rest[ups]
        row[los] = meet - rest[los]
        order = np.argsort(meet[:, 0])
        for i in iris:
            y = np.interp(rest[i, 0], meet[order, 0], meet[order, 1])
            row[i] = (0.0, y - rest[i, 1], 0.0)


class MeshWarpRenderer:
    name = "meshwarp"

    def __init__(self, avatar, rig=None, mouth_interior: bool = True, gain=None, folds: bool = True,
                 rest: bool = False, au_shapes: bool = True, eyes: bool = True, neural_mouth: bool = False,
                 lip_close: bool = True):
        """`rest`: render states relative to the photo's own expression (engine/avatar/rest.py), so the
        neutral state un-smiles a smiling photo; off, the neutral state is the photo (the diffusion
        hint and its tracking rely on that). The registered "meshwarp" renderer turns it on.
        `au_shapes`: add the AU4 knit and the AU9/10 upper-lip rise (off only to measure them).
        `eyes`: paint a sclera and a round iris when the lids open wider than at rest (eyes.py).
        `neural_mouth`: redraw the lower face with the neural mouth (engine/neural_mouth); off by default
        (docs/design/neural-mouth.md says what it does and does not yet do). An avatar it refuses renders as
        without it: `self.neural_mouth.reason` says why.
        `lip_close`: draw mouthClose by closing the lips over the opening (off: the rig's own mouthClose
        column, as the diffusion renderer's geometry hint was trained with)."""
        self.avatar = avatar
        self.size = avatar.size
        self._src = np.ascontiguousarray(avatar.image)
        m = avatar.mesh
        self._v0 = m.vertices.astype(np.float64)
        self._src_xy = np.ascontiguousarray(m.vertices[:, :2], np.float32)
        self._tris = np.ascontiguousarray(m.triangles, np.int32)
        self._outer = np.flatnonzero(m.groups == GROUP_OUTER).astype(np.int32)
        self._inner = np.flatnonzero(m.groups != GROUP_OUTER).astype(np.int32)
        self._weight = m.head_weight.astype(np.float64)[:, None]
        self._ring = np.flatnonzero(m.parent >= 0)
        self._ring_parent = m.parent[self._ring]
        self._ring_follow = m.follow[self._ring].astype(np.float64)[:, None]

        frame = face_frame(avatar.landmarks)
        rig = rig or load_rig()
        # Per-coefficient render gain (emotion-only coefficients): what the 2D warp of a photo
        # loses, measured by re-detecting rendered frames (scripts/emotion/calibrate_render_gain.py).
        gain = load_render_gain() if gain is None else np.asarray(gain, np.float64)
        # The gained basis with the AU shapes the rig lacks, mapped once into this avatar's pixels:
        # (52, 478*3). The rest expression below stays in plain rig units.
        shaped = rig.basis.reshape(rig.basis.shape[0], -1) * gain[:, None]
        if au_shapes:
            _shape_aus(shaped, frame.to_face(avatar.landmarks))
        basis_px = frame.vectors_to_image(shaped.reshape(-1, 3)).reshape(rig.basis.shape[0], -1)
        # The photo's own expression, undone as a fixed offset (a measured geometry, not an emotion to make
        # readable, so without the render gain): the rig's undo above the eyes, the lower face's learned rest
        # shape below (engine/avatar/rest.py); ring points follow as usual.
        self._rest = np.zeros(NUM_COEFFS)
        off = np.zeros_like(self._v0)
        self._seal = None
        if rest:
            from ..avatar.rest import rest_expression, rest_offset

            self._rest = rest_expression(avatar)
            d0 = frame.vectors_to_image(rest_offset(avatar.landmarks, self._rest, rig))
            d0 += _uncross_lips(self._v0[:NUM_LANDMARKS] + d0, frame)
            off[:NUM_LANDMARKS] = d0
            off[self._ring] = self._ring_follow * d0[self._ring_parent]
            seal = _seal_lips(self._v0[:NUM_LANDMARKS] + d0, frame)
            if np.abs(seal).max() > MOVE_EPS:
                self._seal = seal
        self._base = self._v0 + off
        self._rest_c = self._rest / gain  # the rest expression in this renderer's coefficient units
        _fit_blinks(basis_px, self._base[:NUM_LANDMARKS])
        self._jaw = COEFF_INDEX["jawOpen"]
        self._close = COEFF_INDEX["mouthClose"] if lip_close else None
        self._lower_down = (COEFF_INDEX["mouthLowerDownLeft"], COEFF_INDEX["mouthLowerDownRight"])
        if lip_close:
            # mouthClose is drawn by closing the gap the other coefficients open (deform), not by its rig
            # column: that column is a fixed 0.06 eye-distance lip travel, far less than a jaw's opening.
            basis_px[self._close] = 0.0
        self._basis = np.ascontiguousarray(basis_px)
        self._pivot = frame.to_image(PIVOT_FACE)
        self._axes = frame.axes
        self._gaze_px = GAZE_GAIN * frame.scale
        self._iris = np.array(IRIS_R + IRIS_L)
        self._mouth = MouthPainter(self._v0, frame.scale) if mouth_interior else None
        self._folds = FoldPainter(frame.scale) if folds else None
        self._eyes = EyePainter(self._src, self._v0, self._base, frame.scale) if eyes else None
        self.neural_mouth = None
        if neural_mouth:
            from ..neural_mouth.runtime import NeuralMouth  # ONNX Runtime is loaded only when asked for

            self.neural_mouth = NeuralMouth(avatar)  # refused: its apply() draws nothing, reason logged
        self._lids = [(COEFF_INDEX[n], np.array([u for u, _ in lids])) for n, lids in
                      (("eyeBlinkRight", EYE_R_LIDS), ("eyeBlinkLeft", EYE_L_LIDS))]
        self._lash_shift = LASH_SHIFT * frame.scale
        self._lash_px = max(1, int(round(0.018 * frame.scale)))
        self._lash_rgb = _lash_colour(self._src, self._v0)
        warmup()

    def deform(self, state: FaceState) -> np.ndarray:
        """Destination vertex positions (V, 3) in pixels for a face state."""
        p = self._base.copy()
        d = (np.asarray(state.coeffs, np.float64) @ self._basis).reshape(NUM_LANDMARKS, 3)
        if self._seal is not None:
            # The sealed lips part again as speech opens the jaw: closed at rest and on bilabials,
            # the photo's own lip opening plus the speech's mid-word (the photo's teeth show, as
            # that person's do when they talk). Inner-lip points only: the ring never sees it.
            d = d + (1.0 - min(float(state.coeffs[self._jaw]) / SEAL_RELEASE_JAW, 1.0)) * self._seal
        share = self._close_share(state.coeffs)
        if share > 0.0:
            self._close_lips(p, d, share)
        p[:NUM_LANDMARKS] += d
        p[self._ring] += self._ring_follow * d[self._ring_parent]
        gy, gp = np.radians(state.gaze)
        if gy or gp:
            shift = self._gaze_px * (self._axes @ np.array([-np.sin(gy), np.sin(gp), 0.0]))
            p[self._iris] += shift
        pitch, yaw, roll = (float(a) for a in state.head)
        if pitch or yaw or roll:
            r = rotation_matrix(pitch, yaw, roll)
            rotated = self._pivot + (p - self._pivot) @ r.T
            p += self._weight * (rotated - p)
        return p

    def _close_share(self, coeffs) -> float:
        """The share of the lip opening that mouthClose cancels, in [0, 1]."""
        close = float(coeffs[self._close]) if self._close is not None else 0.0
        if close <= 0.0:
            return 0.0
        opening = float(coeffs[self._jaw]) + 0.5 * sum(float(coeffs[i]) for i in self._lower_down)
        return min(close / max(opening, CLOSE_MIN_OPENING), 1.0)

    def _close_lips(self, p: np.ndarray, d: np.ndarray, share: float) -> None:
        """Bring the lips together by `share` of their opening, in place on `d`."""
        y = self._axes[:, 1]
        _move_lips(d, share * np.maximum(_lip_gap(p, y) + _lip_gap(d, y), 0.0), y)  # the gap is linear

    def _lid_sources(self, state: FaceState) -> np.ndarray:
        src = self._src_xy
        for k, ups in self._lids:
            b = float(state.coeffs[k])
            if b > 0.0:
                if src is self._src_xy:
                    src = src.copy()
                src[ups, 1] -= np.float32(b * self._lash_shift)
        return src

    def render(self, state: FaceState) -> np.ndarray:
        p = self.deform(state)
        dst_xy = np.ascontiguousarray(p[:, :2], np.float32)
        moved_v = np.abs(dst_xy - self._src_xy).max(axis=1) > MOVE_EPS
        moved_t = moved_v[self._tris].any(axis=1)
        outer = self._outer[moved_t[self._outer]]
        inner = self._inner[moved_t[self._inner]]
        # Far triangles first: z grows into the image, so sort by mean depth, largest first.
        depth = p[self._tris[inner], 2].sum(axis=1)
        inner = inner[np.argsort(-depth, kind="stable")]
        draw = np.concatenate([outer, inner]).astype(np.int32)
        src_xy = self._lid_sources(state)
        out = self._src.copy()
        if len(draw):
            warp_triangles(self._src, src_xy, dst_xy, self._tris, out, draw)
        if self._mouth is not None:
            self._mouth.paint(out, dst_xy)
        if self.neural_mouth is not None:
            # Before the folds: the generator learned from warped frames with the painted interior, no folds.
            self.neural_mouth.apply(out, dst_xy)
        if self._folds is not None:
            # Folds the photo already shows are not drawn again.
            self._folds.paint(out, np.asarray(state.coeffs) - self._rest_c, dst_xy)
        if self._eyes is not None:
            self._eyes.paint(out, dst_xy)
        self._paint_lashes(out, state, dst_xy)
        return out

    def _paint_lashes(self, out: np.ndarray, state: FaceState, xy: np.ndarray) -> None:
        """A closed lid ends in a lash line: drawn along the lid margin as the eye closes."""
        for (k, _), contour in zip(self._lids, (EYE_R_UPPER, EYE_L_UPPER)):
            a = float(np.clip((state.coeffs[k] - 0.4) / 0.5, 0.0, 1.0))
            if a <= 0.0:
                continue
            pts = xy[list(contour)]
            x0, y0 = np.maximum(np.floor(pts.min(axis=0)).astype(int) - 4, 0)
            x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 5
            roi = out[y0:y1, x0:x1]
            if roi.size == 0:
                continue
            over = roi.copy()
            cv2.polylines(over, [np.round((pts - (x0, y0)) * 16).astype(np.int32)], False, self._lash_rgb,
                          self._lash_px, lineType=cv2.LINE_AA, shift=4)
            roi[:] = (roi * (1.0 - a) + over * a).astype(np.uint8)

    def close(self) -> None:
        pass


@register("meshwarp")
def _create(avatar, **options) -> MeshWarpRenderer:
    options.setdefault("rest", True)
    return MeshWarpRenderer(avatar, **options)
