"""Independent measurement of real or rendered frames with MediaPipe's Face Landmarker.

Used by the fitting/training scripts, evaluation and tests, never by the product
at run time: the `.task` bundle lives in ../shared/models and is not shipped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .types import BLENDSHAPE_NAMES

TASK_NAME = "face_landmarker_v2_with_blendshapes.task"


def shared_dir() -> Path | None:
    """../shared beside the repository (or $EMOLIVE_SHARED), or None when absent."""
    env = os.environ.get("EMOLIVE_SHARED") or os.environ.get("SHARED_DIR")
    cands = [Path(env)] if env else []
    cands.append(Path(__file__).resolve().parents[2] / "shared")
    for c in cands:
        if (c / "README.md").exists() and (c / "data").is_dir():
            return c
    return None


@dataclass(frozen=True)
class FaceMeasurement:
    landmarks: np.ndarray  # (478, 3) in pixels (x, y, z scaled like x)
    blendshapes: np.ndarray  # (52,) in BLENDSHAPE_NAMES order; tongueOut = 0 (not measured)
    matrix: np.ndarray | None  # (4, 4) facial transformation matrix


class Landmarker:
    """Face Landmarker over still images (mode='image') or a video stream (mode='video')."""

    def __init__(self, mode: str = "image", task_path: str | Path | None = None, num_faces: int = 1):
        import mediapipe as mp
        from mediapipe.tasks import python as mp_tasks
        from mediapipe.tasks.python import vision

        if task_path is None:
            sd = shared_dir()
            if sd is None:
                raise FileNotFoundError("../shared not present: cannot find the Face Landmarker .task")
            task_path = sd / "models" / TASK_NAME
        self._mp = mp
        self._video = mode == "video"
        opts = vision.FaceLandmarkerOptions(
            base_options=mp_tasks.BaseOptions(model_asset_path=str(task_path)),
            running_mode=vision.RunningMode.VIDEO if self._video else vision.RunningMode.IMAGE,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
            num_faces=num_faces,
        )
        self._lm = vision.FaceLandmarker.create_from_options(opts)
        self._ts = 0

    def close(self) -> None:
        self._lm.close()

    def __enter__(self) -> "Landmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> FaceMeasurement | None:
        """Measure the first face in an RGB uint8 image, or None when no face is found."""
        h, w = rgb.shape[:2]
        img = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        if self._video:
            ts = self._ts + 40 if timestamp_ms is None else int(timestamp_ms)
            self._ts = ts
            r = self._lm.detect_for_video(img, ts)
        else:
            r = self._lm.detect(img)
        if not r.face_landmarks:
            return None
        pts = np.array([[p.x * w, p.y * h, p.z * w] for p in r.face_landmarks[0]], np.float32)
        scores = {c.category_name: c.score for c in r.face_blendshapes[0]}
        bs = np.array([scores.get(n, 0.0) for n in BLENDSHAPE_NAMES], np.float32)
        mat = np.array(r.facial_transformation_matrixes[0], np.float32) if r.facial_transformation_matrixes else None
        return FaceMeasurement(landmarks=pts, blendshapes=bs, matrix=mat)


def read_video_rgb(path: str | Path) -> tuple[list[np.ndarray], float]:
    """All frames of a video as RGB arrays, and its frame rate."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, float(fps)
