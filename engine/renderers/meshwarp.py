"""`meshwarp`: the default CPU renderer, a piecewise-affine warp of the avatar's photo.

Per frame: rig displacements (expression) and a head rotation move the mesh
vertices; only triangles that moved are redrawn over a copy of the photo, far
ones first so the face overlaps itself correctly during turns; then a painted
mouth interior fills the lips' opening beyond what the photo already shows.
"""
from __future__ import annotations

import numpy as np

from kernels.warp import warp_triangles, warmup

from ..avatar.mesh import GROUP_OUTER
from ..face_geometry import EYE_OUTER_L, EYE_OUTER_R, IRIS_L, IRIS_R, NUM_LANDMARKS, face_frame, rotation_matrix
from ..rig import load_rig
from ..types import FaceState
from .base import register
from .mouth import MouthPainter

MOVE_EPS = 0.01  # px: a triangle whose vertices all moved less is left as the photo shows it
# Head-rotation pivot in face units (eye midpoint origin): behind the eyes, towards the neck.
PIVOT_FACE = np.array([0.0, 0.45, 1.1])
GAZE_GAIN = 0.22  # iris travel per unit sin(angle), in inter-ocular units


class MeshWarpRenderer:
    name = "meshwarp"

    def __init__(self, avatar, rig=None, mouth_interior: bool = True):
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
        # Rig basis mapped once into this avatar's pixels: (52, 478*3).
        basis_px = frame.vectors_to_image(rig.basis.reshape(-1, 3)).reshape(rig.basis.shape[0], -1)
        self._basis = np.ascontiguousarray(basis_px)
        self._pivot = frame.to_image(PIVOT_FACE)
        self._axes = frame.axes
        self._gaze_px = GAZE_GAIN * frame.scale
        self._iris = np.array(IRIS_R + IRIS_L)
        self._scale = frame.scale
        self._mouth = MouthPainter(self._v0, frame.scale) if mouth_interior else None
        warmup()

    def deform(self, state: FaceState) -> np.ndarray:
        """Destination vertex positions (V, 3) in pixels for a face state."""
        p = self._v0.copy()
        d = (np.asarray(state.coeffs, np.float64) @ self._basis).reshape(NUM_LANDMARKS, 3)
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
        out = self._src.copy()
        if len(draw):
            warp_triangles(self._src, self._src_xy, dst_xy, self._tris, out, draw)
        if self._mouth is not None:
            self._mouth.paint(out, dst_xy)
        return out

    def close(self) -> None:
        pass


@register("meshwarp")
def _create(avatar, **options) -> MeshWarpRenderer:
    return MeshWarpRenderer(avatar, **options)
