"""Running the neural mouth on meshwarp frames: one ONNX Runtime session per process, one NeuralMouth per renderer.

The generator sees the lower-face crop (crop.py) and returns the crop as it
should look; only its change, feathered by crop.blend_weight, is warped back and
added to the frame at full resolution, so the photo keeps its detail wherever
the generator leaves it alone. An avatar the generator would not serve well
(head turned, face too small, model missing, or a photo whose mouth it would
already alter at rest) gets plain meshwarp, with the reason logged once.
"""
from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path

import cv2
import numpy as np

from . import crop
from ..face_geometry import NUM_LANDMARKS, eye_distance

log = logging.getLogger(__name__)

ONNX_PATH = Path(__file__).resolve().parents[1] / "assets" / "neural_mouth.onnx"
INPUT_NAME, OUTPUT_NAME = "x", "y"  # model.py's names (not imported: model.py needs PyTorch)
MAX_TURN_DEG = 25.0  # the training faces are near-frontal; a photo turned further gets plain meshwarp
MIN_EYE_PX = 40.0  # outer-eye distance below which the crop is upscaled noise rather than a mouth
# Mean |change| (grey levels) the generator may make to the photo's own mouth at rest, where the blend
# weight exceeds SELF_CHECK_WEIGHT: a generator that already rewrites the unmoved photo does not know this face.
SELF_CHECK_MAX_CHANGE = 12.0
SELF_CHECK_WEIGHT = 0.5

_sessions: dict[str, object] = {}
_sessions_lock = threading.Lock()
_warned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # avatar -> reason already logged


def _providers(ort) -> list:
    """TensorRT or CUDA first when this ONNX Runtime has them (engines cached per user), else the CPU."""
    from ..avatar.default import cache_dir
    from ..diffusion.runtime import gpu_providers

    out: list = []
    for name in gpu_providers(ort.get_available_providers()):
        if name == "tensorrt":
            cache = cache_dir() / "trt" / "neural_mouth"
            cache.mkdir(parents=True, exist_ok=True)
            out.append(("TensorrtExecutionProvider", {"trt_engine_cache_enable": True,
                                                      "trt_engine_cache_path": str(cache)}))
        else:
            out.append("CUDAExecutionProvider")
    return out + ["CPUExecutionProvider"]


def load_session(path: str | Path = ONNX_PATH):
    """The process's ONNX Runtime session for `path`, created once: run() is thread-safe, so every renderer
    shares it. One thread each: a frame is one small crop, and the render pool already runs frames in parallel."""
    key = str(Path(path).resolve())
    with _sessions_lock:
        sess = _sessions.get(key)
        if sess is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            sess = ort.InferenceSession(key, sess_options=opts, providers=_providers(ort))
            _sessions[key] = sess
        return sess


class NeuralMouth:
    """The neural mouth of one avatar. `apply(frame, xy)` redraws the lower face of a frame in place.

    `enabled` is False, with `reason` saying why, when the avatar is one the generator should not draw.
    """

    def __init__(self, avatar, onnx_path: str | Path = ONNX_PATH):
        self._sess = None
        res = crop.RES
        w = crop.blend_weight(res)
        self._weight = np.ascontiguousarray(np.broadcast_to(w, (3, res, res)))
        self._check_mask = w > SELF_CHECK_WEIGHT
        self._chw = np.empty((3, res, res), np.float32)
        self._hwc = np.empty((res, res, 3), np.float32)
        self.reason: str | None = self._refusal(avatar, Path(onnx_path))
        self.enabled = self.reason is None
        if self.reason is not None:
            self._sess = None
            self._warn(avatar)

    def _refusal(self, avatar, onnx_path: Path) -> str | None:
        """Why this avatar gets plain meshwarp, or None."""
        pitch, yaw = float(avatar.pose[0]), float(avatar.pose[1])
        turn = max(abs(yaw), abs(pitch))
        if not turn <= MAX_TURN_DEG:
            return f"head turned {turn:.0f} degrees in the photo (the neural mouth needs {MAX_TURN_DEG:.0f} or less)"
        eyes = eye_distance(avatar.landmarks)
        if not eyes >= MIN_EYE_PX:
            return f"face too small: {eyes:.0f} px between the outer eye corners (at least {MIN_EYE_PX:.0f})"
        try:
            self._offset = crop.mouth_offset(avatar.landmarks)
        except ValueError as e:
            return f"the photo's landmarks cannot place the mouth crop ({e})"
        if not onnx_path.is_file():
            return f"the neural mouth model is missing ({onnx_path})"
        try:
            self._sess = load_session(onnx_path)
        except Exception as e:  # noqa: BLE001 - ONNX Runtime raises its own types for a bad file
            return f"the neural mouth model cannot be loaded ({onnx_path}: {e})"
        xy = np.asarray(avatar.mesh.vertices[:, :2], np.float64)
        m = self._matrix(xy)
        if m is None:
            return "the photo's landmarks cannot place the mouth crop"
        try:
            change = self._change(np.ascontiguousarray(avatar.image), xy, m)
        except Exception as e:  # noqa: BLE001 - a model of another signature fails here, not on a frame
            return f"the neural mouth model cannot run ({onnx_path}: {e})"
        mean = float(np.abs(change[:, self._check_mask]).mean())
        if not mean <= SELF_CHECK_MAX_CHANGE:
            return f"the photo's mouth is unlike the faces the neural mouth learned (mean change {mean:.1f})"
        return None

    def _warn(self, avatar) -> None:
        try:
            if _warned.get(avatar) == self.reason:
                return
            _warned[avatar] = self.reason
        except TypeError:  # an avatar that cannot be weakly referenced: warn every time
            pass
        log.warning("neural mouth off, plain meshwarp: %s", self.reason)

    def _matrix(self, xy: np.ndarray) -> np.ndarray | None:
        """The crop matrix for the frame's vertices, or None where they place no crop (degenerate, not finite)."""
        if not np.isfinite(xy[:NUM_LANDMARKS]).all():
            return None
        try:
            m = crop.crop_matrix(xy, self._offset)
        except ValueError:
            return None
        return m if np.isfinite(m).all() else None

    def _change(self, frame: np.ndarray, xy: np.ndarray, m: np.ndarray) -> np.ndarray:
        """(3, RES, RES) float32: the generator's change to the crop in grey levels, unweighted (a reused buffer)."""
        x = crop.network_input(crop.cut(frame, m), crop.lip_masks(crop.to_crop(m, xy)))
        y = self._sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        d = np.subtract(y[0], x[0, :3], out=self._chw)
        d *= np.float32(127.5)  # -1..1 -> grey levels
        return d

    def apply(self, frame: np.ndarray, xy: np.ndarray) -> None:
        """Redraw the lower face of `frame` (H, W, 3) uint8 in place; `xy` (V >= 478, 2): the frame's vertices."""
        if not self.enabled:
            return
        m = self._matrix(xy)
        box = None if m is None else _frame_box(m, frame.shape[1], frame.shape[0])
        if box is None:
            return
        d = self._change(frame, xy, m)
        d *= self._weight
        self._hwc[...] = d.transpose(1, 2, 0)
        x0, y0, x1, y1 = box
        # The crop matrix maps frame pixels to crop pixels; shifted by the box origin it maps box pixels,
        # which is the inverse map warpAffine wants: no matrix inversion, the same sampling as crop.cut.
        to_crop = m.copy()
        to_crop[:, 2] += m[:, :2] @ (x0, y0)
        back = cv2.warpAffine(self._hwc, to_crop, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        region = frame[y0:y1, x0:x1]
        cv2.add(region, back, dst=region, dtype=cv2.CV_8U)  # rounds and saturates to 0..255


def _frame_box(m: np.ndarray, w: int, h: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) half-open frame-pixel box holding the crop square, clipped to the frame; None if empty."""
    r = crop.RES - 0.5
    corners = np.array([[-0.5, -0.5], [r, -0.5], [-0.5, r], [r, r]])
    inv = cv2.invertAffineTransform(m)
    pts = np.clip(corners @ inv[:, :2].T + inv[:, 2], -1.0, max(w, h) + 1.0)  # a far-off crop stays an int
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    return int(x0), int(y0), int(x1), int(y1)
