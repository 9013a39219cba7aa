"""Face detection and 478-point mesh on a photo with the models shipped in the mediapipe wheel.

A full-range detector finds every face first (so small or off-centre faces are
found), then the face mesh runs on a square crop around the largest one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import AvatarError

log = logging.getLogger(__name__)

MIN_FACE_PX = 64  # narrower faces carry too little detail to animate


@dataclass(frozen=True)
class DetectedFace:
    landmarks: np.ndarray  # (478, 3) pixels of the input image (z scaled like x)
    box: tuple[float, float, float, float]  # x, y, w, h in pixels
    faces_found: int


def _detect_in(rgb: np.ndarray, fd) -> list[tuple[float, float, float, float, float]]:
    h, w = rgb.shape[:2]
    s = min(1.0, 640 / max(h, w))
    img = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else rgb
    res = fd.process(np.ascontiguousarray(img))
    out = []
    for d in res.detections or []:
        b = d.location_data.relative_bounding_box
        out.append((b.xmin * w, b.ymin * h, b.width * w, b.height * h, float(d.score[0])))
    return out


def _merge(boxes):
    """Drop boxes mostly inside a better one (the same face seen from overlapping tiles)."""
    kept = []
    for b in sorted(boxes, key=lambda b: -b[4] * b[2] * b[3]):
        ok = True
        for k in kept:
            ix = max(0.0, min(b[0] + b[2], k[0] + k[2]) - max(b[0], k[0]))
            iy = max(0.0, min(b[1] + b[3], k[1] + k[3]) - max(b[1], k[1]))
            if ix * iy > 0.4 * min(b[2] * b[3], k[2] * k[3]):
                ok = False
                break
        if ok:
            kept.append(b)
    return kept


def _detect_boxes(rgb: np.ndarray) -> list[tuple[float, float, float, float, float]]:
    """Faces at any position and size: the whole image first, then ever smaller overlapping tiles."""
    import mediapipe as mp

    h, w = rgb.shape[:2]
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as full, \
            mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as near:
        boxes = []
        for level in range(4):
            side = int(max(h, w) / 2 ** level)
            if level and side < 160:
                break
            ys = range(0, max(h - side, 0) + 1, max(side // 2, 1)) if level else [0]
            for y0 in sorted(set(list(ys) + ([max(h - side, 0)] if level else []))):
                xs = range(0, max(w - side, 0) + 1, max(side // 2, 1)) if level else [0]
                for x0 in sorted(set(list(xs) + ([max(w - side, 0)] if level else []))):
                    tile = rgb if not level else rgb[y0:y0 + side, x0:x0 + side]
                    found = _detect_in(tile, full) or (_detect_in(tile, near) if level == 0 else [])
                    boxes += [(x + x0, y + y0, bw, bh, sc) for x, y, bw, bh, sc in found]
            # Level 1 always runs: it finds the smaller second faces the whole view misses.
            if boxes and level >= 1:
                break
    return _merge(boxes)


def _mesh_on_crop(rgb: np.ndarray, box) -> np.ndarray | None:
    import mediapipe as mp

    h, w = rgb.shape[:2]
    x, y, bw, bh = box[:4]
    cx, cy, side = x + bw / 2, y + bh / 2, max(bw, bh) * 2.2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = int(round(cx + side / 2)), int(round(cy + side / 2))
    pad = ((max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w)), (0, 0))
    crop = np.pad(rgb, pad, mode="edge")[y0 + pad[0][0]: y1 + pad[0][0], x0 + pad[1][0]: x1 + pad[1][0]]
    scale = min(1.0, 768 / crop.shape[0])
    if scale < 1:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                         min_detection_confidence=0.5) as fm:
        res = fm.process(np.ascontiguousarray(crop))
    if not res.multi_face_landmarks:
        return None
    ch, cw = crop.shape[:2]
    pts = np.array([[p.x * cw, p.y * ch, p.z * cw] for p in res.multi_face_landmarks[0].landmark], np.float64)
    pts /= scale
    pts[:, 0] += x0
    pts[:, 1] += y0
    return pts.astype(np.float32)


def detect_face(rgb: np.ndarray) -> DetectedFace:
    """The 478-point mesh of the largest face in an RGB image; AvatarError when unusable."""
    boxes = _detect_boxes(rgb)
    if not boxes:
        # The detector can miss very large close-ups; the mesh's own detector may not.
        h, w = rgb.shape[:2]
        boxes = [(w * 0.25, h * 0.25, w * 0.5, h * 0.5, 0.0)]
        found = 0
    else:
        found = len(boxes)
    box = max(boxes, key=lambda b: b[2] * b[3])
    if found > 1:
        log.warning("%d faces found; using the largest (%.0fx%.0f px)", found, box[2], box[3])
    pts = _mesh_on_crop(rgb, box)
    if pts is None:
        raise AvatarError("no face found in the photo")
    width = float(np.ptp(pts[:, 0]))
    if width < MIN_FACE_PX:
        raise AvatarError(f"face too small: {width:.0f} px wide (need at least {MIN_FACE_PX} px)")
    return DetectedFace(landmarks=pts, box=tuple(map(float, box[:4])), faces_found=max(found, 1))
