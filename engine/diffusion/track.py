"""Talking video -> per-frame face states, in the frame of an avatar made from a reference frame.

Uses only the wheel's face mesh (as engine.avatar does). Per frame: the 478-point
mesh, mapped into the avatar frame by the avatar's alignment; the face state
(rig coefficients relative to the reference's own mesh, head pose relative to
the reference); and a stabilising similarity (scale + translation) that brings
the real frame onto where meshwarp puts the face for that state, because a
face state has no head translation and GRID speakers drift by a few pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..face_geometry import FaceFrame, face_frame, head_pose, mouth_opening
from ..rig import RIGID_LANDMARKS, load_rig
from ..types import FaceState


class TrackError(RuntimeError):
    """A video cannot be tracked (no face, unreadable file)."""


class FaceMeshTracker:
    """The wheel's face mesh in tracking mode (one instance per clip: no state leaks between clips)."""

    def __init__(self):
        import mediapipe as mp

        self._fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                                                   min_detection_confidence=0.5, min_tracking_confidence=0.5)

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        res = self._fm.process(np.ascontiguousarray(rgb))
        if not res.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        return np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark], np.float64)

    def close(self) -> None:
        self._fm.close()


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """2x3 similarity applied to (N, 3) points; z scaled like x."""
    p = np.asarray(pts, np.float64)
    out = np.empty_like(p)
    out[:, :2] = p[:, :2] @ m[:, :2].T + m[:, 2]
    out[:, 2] = p[:, 2] * float(np.hypot(m[0, 0], m[1, 0]))
    return out


def relative_pose(frame: FaceFrame, reference: FaceFrame) -> tuple[float, float, float]:
    """(pitch, yaw, roll) of `frame` relative to `reference`, in meshwarp's convention."""
    rel = frame.axes @ reference.axes.T
    return head_pose(FaceFrame(origin=np.zeros(3), axes=rel, scale=1.0))


def face_state(lm_avatar: np.ndarray, ref_landmarks: np.ndarray, rig=None, t: float = 0.0) -> FaceState:
    """Face state of avatar-frame landmarks relative to the reference's own landmarks."""
    rig = rig or load_rig()
    ff, rf = face_frame(lm_avatar), face_frame(ref_landmarks)
    coeffs = rig.fit_coefficients(ff.to_face(lm_avatar), rf.to_face(ref_landmarks))
    return FaceState(coeffs=coeffs, head=relative_pose(ff, rf), t=t)


def stabiliser(lm_avatar: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """2x3 scale + translation mapping the bony landmarks of `lm_avatar` onto `predicted` (least squares)."""
    idx = list(RIGID_LANDMARKS)
    a, b = lm_avatar[idx, :2], predicted[idx, :2]
    ca, cb = a.mean(0), b.mean(0)
    s = float(np.sum((a - ca) * (b - cb)) / max(np.sum((a - ca) ** 2), 1e-9))
    s = float(np.clip(s, 0.8, 1.25))
    t = cb - s * ca
    return np.array([[s, 0.0, t[0]], [0.0, s, t[1]]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 affine outer∘inner."""
    o = np.vstack([outer, [0, 0, 1]])
    i = np.vstack([inner, [0, 0, 1]])
    return (o @ i)[:2]


@dataclass
class TrackedClip:
    states: list[FaceState]  # one per frame (neutral where no face was found)
    found: np.ndarray  # (N,) bool
    frames: np.ndarray  # (N, S, S, 3) uint8: real frames warped into the avatar frame and stabilised
    mouth_open: np.ndarray  # (N,) mouth_opening of the tracked mesh (nan where no face)


def track_frames(frames: list[np.ndarray], avatar, meshwarp, rig=None, fps: float = 25.0) -> TrackedClip:
    """Track video frames (RGB) of the avatar's person; `meshwarp` renders the avatar (for stabilising)."""
    rig = rig or load_rig()
    align = np.asarray(avatar.meta["alignment"], np.float64)
    size = avatar.size
    tracker = FaceMeshTracker()
    states, found, out, mo = [], [], [], []
    try:
        for i, rgb in enumerate(frames):
            lm = tracker(rgb)
            t = i / fps
            if lm is None:
                states.append(FaceState.neutral(t))
                found.append(False)
                mo.append(np.nan)
                out.append(cv2.warpAffine(rgb, align, (size[1], size[0]), flags=cv2.INTER_AREA,
                                          borderMode=cv2.BORDER_REPLICATE))
                continue
            lm_av = apply_affine(align, lm)
            st = face_state(lm_av, avatar.landmarks, rig, t)
            pred = meshwarp.deform(st)
            m = compose(stabiliser(lm_av, pred), align)
            out.append(cv2.warpAffine(rgb, m, (size[1], size[0]), flags=cv2.INTER_AREA,
                                      borderMode=cv2.BORDER_REPLICATE))
            states.append(st)
            found.append(True)
            mo.append(mouth_opening(lm))
    finally:
        tracker.close()
    return TrackedClip(states=states, found=np.array(found), frames=np.stack(out), mouth_open=np.array(mo))


def pick_reference(frames: list[np.ndarray], first: int = 15) -> int:
    """Index of the most neutral of the first frames (smallest mouth opening): GRID clips start in silence."""
    tracker = FaceMeshTracker()
    best, best_i = np.inf, None
    try:
        for i, rgb in enumerate(frames[:first]):
            lm = tracker(rgb)
            if lm is not None and mouth_opening(lm) < best:
                best, best_i = mouth_opening(lm), i
    finally:
        tracker.close()
    if best_i is None:
        raise TrackError("no face found in the first frames of the reference video")
    return best_i
