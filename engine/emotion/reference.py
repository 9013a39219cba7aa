"""Emotion from a reference photo (the "image" emotion source of Xu et al., CVPR 2023).

Photo -> 478 landmarks (the mediapipe wheel's face mesh, engine/avatar/detect.py)
-> rig coefficients (engine/rig.py `fit_coefficients`, in face units) -> minus the
same fit of a population neutral face (mean over real neutral faces, committed
asset `emotion_neutral_fit.json`, scripts/emotion/make_neutral_reference.py), so
what is left is expression rather than identity -> a non-negative mixture of the
emotion directions (weighted NNLS) plus the residual as a custom direction.

The target applies the photo's whole expression (mixture directions + residual =
the measured expression), while its mixture and intensity say which emotions it
is closest to. Deterministic; about 100-300 ms on one core, mostly detection.
"""
from __future__ import annotations

import io
import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..types import BLENDSHAPE_NAMES, COEFF_INDEX, NUM_COEFFS
from .directions import EMOTIONS, EmotionError, load_directions
from .mixing import MAX_INTENSITY
from .target import EmotionTarget

NEUTRAL_ASSET = Path(__file__).resolve().parents[1] / "assets" / "emotion_neutral_fit.json"
MAX_BYTES = 12 * 1024 * 1024
MAX_PIXELS = 30_000_000
MIN_SIDE = 32
DETECT_SIDE = 1280  # larger photos are downscaled before detection (speed; faces stay > 64 px)

# Coefficients that carry expression (not blinks, gaze, sideways jaw, tongue).
EXPRESSION: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekSquintLeft", "cheekSquintRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "noseSneerLeft", "noseSneerRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "jawOpen",
)
_EXPR = np.array([COEFF_INDEX[n] for n in EXPRESSION])
# The mixture is read from the coefficients speech never drives: a photo taken mid-word
# opens the jaw and lips without any surprise (CREMA-D: every talking clip read as surprised).
EMOTION_ONLY = tuple(n for n in EXPRESSION if n.startswith(("brow", "cheek", "eye", "nose", "mouthSmile", "mouthFrown")))
_EMO = np.array([COEFF_INDEX[n] for n in EMOTION_ONLY])
DEADBAND_STD = 1.0  # a change smaller than this many population stds is identity, not expression
STD_FLOOR = 0.05  # weights 1 / (std + floor) in the mixture fit
MIN_INTENSITY = 0.08  # below this the photo is read as neutral


@lru_cache(maxsize=1)
def neutral_reference() -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the fitted coefficients of real neutral faces, (52,) each."""
    if not NEUTRAL_ASSET.exists():
        raise EmotionError("reference-photo emotions need engine/assets/emotion_neutral_fit.json "
                           "(scripts/emotion/make_neutral_reference.py)")
    d = json.loads(NEUTRAL_ASSET.read_text())
    mean, std = np.zeros(NUM_COEFFS), np.zeros(NUM_COEFFS)
    for n, v in d["mean"].items():
        mean[COEFF_INDEX[n]] = float(v)
    for n, v in d["std"].items():
        std[COEFF_INDEX[n]] = float(v)
    return mean, std


def decode_image(data: bytes | np.ndarray) -> np.ndarray:
    """RGB uint8 image from encoded bytes or an array; EmotionError with a clear message otherwise."""
    if isinstance(data, np.ndarray):
        a = data
        if a.dtype != np.uint8:
            raise EmotionError(f"image array must be uint8, got {a.dtype}")
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise EmotionError(f"image array must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
        a = a[..., :3]
    elif isinstance(data, (bytes, bytearray, memoryview)):
        a = _decode_bytes(bytes(data))
    else:
        raise EmotionError(f"image must be bytes or a numpy array, got {type(data).__name__}")
    h, w = a.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise EmotionError(f"image too small: {w}x{h} pixels (need at least {MIN_SIDE})")
    if h * w > MAX_PIXELS:
        raise EmotionError(f"image too large: {w}x{h} pixels (limit {MAX_PIXELS // 1_000_000} MP)")
    return np.ascontiguousarray(a)


def _decode_bytes(data: bytes) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise EmotionError("empty image")
    if len(data) > MAX_BYTES:
        raise EmotionError(f"image too large: {len(data)} bytes (limit {MAX_BYTES})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:  # checked before decoding the pixels
                    raise EmotionError(f"image too large: {w}x{h} pixels (limit {MAX_PIXELS // 1_000_000} MP)")
                # A JPEG decodes at 1/2, 1/4 or 1/8 scale for a fraction of the CPU: a 30 MP photo need not be
                # decoded whole, as detection works at DETECT_SIDE (never less than that is kept on either side).
                im.draft("RGB", (DETECT_SIDE, DETECT_SIDE))
                im.load()
                return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except EmotionError:
        raise
    except UnidentifiedImageError:
        raise EmotionError("not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise EmotionError("image too large (decompression bomb guard)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise EmotionError(f"cannot decode image: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def detect_landmarks(rgb: np.ndarray) -> np.ndarray:
    """(478, 3) landmarks of the largest face; EmotionError when there is none or it is too small."""
    import cv2

    from ..avatar.detect import detect_face
    from ..avatar.errors import AvatarError

    h, w = rgb.shape[:2]
    s = min(1.0, DETECT_SIDE / max(h, w))
    img = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else rgb
    try:
        return detect_face(img).landmarks
    except AvatarError as e:
        raise EmotionError(f"reference image: {e}") from None


def fit_face(landmarks: np.ndarray) -> np.ndarray:
    """Rig coefficients (52,) of a face's landmarks against the rig's mean face (identity included)."""
    from ..face_geometry import face_frame
    from ..rig import load_rig

    q = face_frame(landmarks).to_face(landmarks)
    return load_rig().fit_coefficients(q).astype(np.float64)


def expression_of(coeffs: np.ndarray) -> np.ndarray:
    """The expression part of fitted coefficients: above the population neutral by more than a deadband."""
    mean, std = neutral_reference()
    e = np.zeros(NUM_COEFFS)
    e[_EXPR] = np.maximum(np.asarray(coeffs)[_EXPR] - mean[_EXPR] - DEADBAND_STD * std[_EXPR], 0.0)
    return e


def mixture_of(expression: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative amounts per emotion (EMOTIONS order) best explaining an expression, and the weighted R^2."""
    from scipy.optimize import nnls

    _, std = neutral_reference()
    space = load_directions()
    wts = 1.0 / (std[_EMO] + STD_FLOOR)
    # The reader's directions (not the render levels): (n_coeffs, n_emotions).
    d = space.read[:, _EMO].T * wts[:, None]
    y = expression[_EMO] * wts
    # Contempt (FACS-only, one-sided smile + dimple) is left out: a neutral face's own
    # left/right asymmetry is as large as its direction, so photos cannot tell them apart.
    d[:, [EMOTIONS.index("neutral"), EMOTIONS.index("contempt")]] = 0.0
    amounts, _ = nnls(d, y)
    ss = float(y @ y)
    r2 = 1.0 - float(np.sum((d @ amounts - y) ** 2)) / ss if ss > 1e-12 else 0.0
    return amounts, r2


def target_from_landmarks(landmarks: np.ndarray) -> EmotionTarget:
    e = expression_of(fit_face(landmarks))
    amounts, r2 = mixture_of(e)
    k = float(amounts.sum())
    if k < MIN_INTENSITY:
        return EmotionTarget(mixture={"neutral": 1.0}, intensity=0.0, confidence=0.6,
                             reason=f"the face shows no expression beyond a neutral face (amount {k:.2f})")
    kk = min(k, MAX_INTENSITY)
    space = load_directions()
    residual = e - amounts @ space.coeffs  # what the emotion directions do not explain
    mix = {em: float(a) for em, a in zip(EMOTIONS, amounts) if a > 1e-3}
    top = sorted(mix.items(), key=lambda kv: -kv[1])[:3]
    shown = [BLENDSHAPE_NAMES[i] for i in np.argsort(-e)[:3] if e[i] > 0.02]
    conf = float(np.clip(max(r2, 0.0), 0.0, 1.0) * min(1.0, k / 0.3))
    reason = (f"reference photo: {', '.join(f'{n} {a:.2f}' for n, a in top)} (expression explained {max(r2, 0):.0%}; "
              f"strongest: {', '.join(shown)})")
    return EmotionTarget(mixture=mix, intensity=kk, direction=residual / kk, confidence=conf, reason=reason)


def target_from_image(data: bytes | np.ndarray) -> EmotionTarget:
    """The emotion of the face in a reference photo (encoded bytes or an RGB array).

    The target's mixture/intensity name the closest emotions; its `direction`
    carries the rest of the photo's expression, so a controller applies the
    photo's measured expression as a whole. EmotionError for undecodable or
    over-sized images, or when no usable face is found.
    """
    return target_from_landmarks(detect_landmarks(decode_image(data)))
