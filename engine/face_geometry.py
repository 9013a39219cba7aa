"""Geometry of the 478-point MediaPipe face mesh: named landmarks, face frame, head pose.

The face frame is a rigid frame plus scale built from a few stable landmarks, so
that displacements measured on one face (the rig) can be applied to another:
x runs from the image-left outer eye corner to the image-right one, y runs down
towards the chin, z points into the image (MediaPipe's z grows away from the
camera), and the unit is the outer inter-ocular distance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_LANDMARKS = 478

# Landmark indices (MediaPipe face mesh topology, image-left = subject's right).
EYE_OUTER_R, EYE_OUTER_L = 33, 263
EYE_INNER_R, EYE_INNER_L = 133, 362
NOSE_TIP, NOSE_BRIDGE, CHIN, FOREHEAD = 1, 168, 152, 10
MOUTH_CORNER_R, MOUTH_CORNER_L = 61, 291
LIP_UPPER_INNER, LIP_LOWER_INNER = 13, 14
LIP_UPPER_OUTER, LIP_LOWER_OUTER = 0, 17
# Eye corners and nose bridge: expressions barely move them, so faces are aligned on these.
STABLE_LANDMARKS = (33, 133, 362, 263, 168, 6, 197, 195)
IRIS_R = (468, 469, 470, 471, 472)  # centre first
IRIS_L = (473, 474, 475, 476, 477)

# Closed contours, in order around the loop.
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
EYE_R = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
EYE_L = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
# Upper/lower lid points paired across the eye opening (upper, lower).
EYE_R_LIDS = ((246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155))
EYE_L_LIDS = ((466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382))
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


@dataclass(frozen=True)
class FaceFrame:
    """Rigid frame + scale of a face: image point p = origin + scale * axes @ q."""

    origin: np.ndarray  # (3,) eye midpoint in the landmarks' coordinates
    axes: np.ndarray  # (3, 3) columns are the face's x, y, z axes
    scale: float  # outer inter-ocular distance

    def to_face(self, pts: np.ndarray) -> np.ndarray:
        return (np.asarray(pts, np.float64) - self.origin) @ self.axes / self.scale

    def to_image(self, q: np.ndarray) -> np.ndarray:
        return self.origin + self.scale * (np.asarray(q, np.float64) @ self.axes.T)

    def vectors_to_image(self, v: np.ndarray) -> np.ndarray:
        """Displacements in face units -> displacements in landmark coordinates."""
        return self.scale * (np.asarray(v, np.float64) @ self.axes.T)


def face_frame(landmarks: np.ndarray) -> FaceFrame:
    """The face frame of one set of 478 (or 468) landmarks given as (N, 3) points."""
    p = np.asarray(landmarks, np.float64)
    if p.ndim != 2 or p.shape[0] < 468 or p.shape[1] != 3:
        raise ValueError(f"expected (478, 3) landmarks, got {p.shape}")
    r, l = p[EYE_OUTER_R], p[EYE_OUTER_L]
    x = l - r
    scale = float(np.linalg.norm(x))
    if scale < 1e-9:
        raise ValueError("degenerate landmarks: eye corners coincide")
    x /= scale
    origin = 0.5 * (r + l)
    y = p[CHIN] - origin
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return FaceFrame(origin=origin, axes=np.stack([x, y, z], axis=1), scale=scale)


def rotation_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Rotation (image coordinates, y down, z into the image) for angles in degrees.

    Applied as roll(z) . yaw(y) . pitch(x) to points in a head-centred frame.
    Positive yaw moves the nose towards image-left, positive pitch moves it down,
    positive roll turns the face clockwise as seen in the image.
    """
    a, b, c = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def head_pose(frame: FaceFrame) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees of a face frame, inverse of rotation_matrix."""
    m = frame.axes
    # m = Rz Ry Rx; m[2,0] = -sin(yaw)
    yaw = np.degrees(np.arcsin(np.clip(-m[2, 0], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(m[2, 1], m[2, 2]))
    roll = np.degrees(np.arctan2(m[1, 0], m[0, 0]))
    return float(pitch), float(yaw), float(roll)


def eye_aspect_ratio(pts: np.ndarray, side: str) -> float:
    """Mean lid gap over eye width (2D), ~0.25-0.35 open, < 0.1 closed."""
    p = np.asarray(pts, np.float64)[:, :2]
    lids, (a, b) = (EYE_R_LIDS, (33, 133)) if side == "right" else (EYE_L_LIDS, (263, 362))
    gaps = [np.linalg.norm(p[u] - p[d]) for u, d in lids[2:5]]
    return float(np.mean(gaps) / max(np.linalg.norm(p[a] - p[b]), 1e-9))


def eye_distance(pts: np.ndarray) -> float:
    """Outer inter-ocular distance (2D), the unit faces of any size are measured in."""
    p = np.asarray(pts, np.float64)
    return float(np.linalg.norm(p[EYE_OUTER_R, :2] - p[EYE_OUTER_L, :2]))


def mouth_opening(pts: np.ndarray) -> float:
    """Inner-lip gap over outer inter-ocular distance (2D), ~0 closed."""
    p = np.asarray(pts, np.float64)[:, :2]
    gap = np.mean([np.linalg.norm(p[u] - p[d]) for u, d in ((13, 14), (82, 87), (312, 317))])
    return float(gap / max(eye_distance(p), 1e-9))


def pixel_box(pts: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the pixels covering 2D points with a pixel to spare (and an anti-aliased edge),
    clipped to an image of this shape (h, w, ...); empty or thin when the points lie outside it."""
    h, w = shape[:2]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 2
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)
