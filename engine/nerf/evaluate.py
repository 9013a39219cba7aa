"""Held-out quality of a NeRF against the real crops (EmoHead's Table I protocol), beside meshwarp.

PSNR, SSIM and mouth-region PSNR on the head crop, and the landmark distance
(LMD): the lips' 40 landmarks re-detected by the wheel's face mesh on the
rendered and on the real crop (both upscaled to LMD_SIDE), their mean distance
in pixels of that side. Frames where either detection fails are left out of the
LMD and counted.
"""
from __future__ import annotations

import time
from typing import Callable

import cv2
import numpy as np

from ..diffusion.metrics import mean_scores, scores
from ..face_geometry import LIPS_INNER, LIPS_OUTER
from ..types import FaceState
from .data import NerfClip

LMD_SIDE = 256
LIPS = LIPS_OUTER + LIPS_INNER
CropFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (state (54,), head (3,)) -> (R, R, 3) uint8


class LipDetector:
    def __init__(self):
        import mediapipe as mp

        self._fm = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                                                   min_detection_confidence=0.3)

    def __call__(self, crop: np.ndarray) -> np.ndarray | None:
        img = cv2.resize(crop, (LMD_SIDE, LMD_SIDE), interpolation=cv2.INTER_CUBIC)
        res = self._fm.process(np.ascontiguousarray(img))
        if not res.multi_face_landmarks:
            return None
        lm = res.multi_face_landmarks[0].landmark
        return np.array([[lm[i].x * LMD_SIDE, lm[i].y * LMD_SIDE] for i in LIPS])

    def close(self) -> None:
        self._fm.close()


def face_state(state: np.ndarray, head: np.ndarray, t: float = 0.0) -> FaceState:
    """The FaceState of a clip row (54-vector + head pose), as the renderers take it."""
    return FaceState(coeffs=np.asarray(state[:52], np.float64), head=tuple(float(v) for v in head),
                     gaze=tuple(float(v) * 30.0 for v in state[52:54]), t=t)


def evaluate(renderers: dict[str, CropFn], clips: list[NerfClip], mouth, every: int = 1) -> dict:
    """{"frames": n, name: {psnr, ssim, mouth_psnr, lmd, lmd_frames}} over held-out frames with a tracked face."""
    det = LipDetector()
    out: dict = {}
    t0 = time.perf_counter()
    try:
        real_lips = {}
        rows = {k: [] for k in renderers}
        lmd = {k: [] for k in renderers}
        n = 0
        for ci, c in enumerate(clips):
            for k in np.flatnonzero(c.found)[::every]:
                n += 1
                real = c.target[k]
                if (ci, k) not in real_lips:
                    real_lips[(ci, k)] = det(real)
                for name, fn in renderers.items():
                    pred = fn(c.state[k], c.head[k])
                    rows[name].append(scores(pred, real, mouth))
                    pl = det(pred)
                    if pl is not None and real_lips[(ci, k)] is not None:
                        lmd[name].append(float(np.linalg.norm(pl - real_lips[(ci, k)], axis=1).mean()))
    finally:
        det.close()
    out["frames"] = n
    for name in renderers:
        out[name] = dict(mean_scores(rows[name]), lmd=float(np.mean(lmd[name])) if lmd[name] else None,
                         lmd_frames=len(lmd[name]))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
