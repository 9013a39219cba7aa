"""Core value types of the engine: the face state and the names of its coefficients.

A face state is what every stage exchanges: the audio model produces it, the
emotion layer edits it, renderers draw it, and the control websocket streams it.
Coefficients use the 52 ARKit blendshape names so that the same stream can drive
3D avatars. Values are in [0, 1]; head angles and gaze are in degrees.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

# ARKit order as MediaPipe's Face Landmarker emits it (its `_neutral` dropped),
# plus ARKit's `tongueOut`, which MediaPipe does not produce.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
NUM_COEFFS = len(BLENDSHAPE_NAMES)
COEFF_INDEX: dict[str, int] = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}

POSE_NAMES: tuple[str, ...] = ("headPitch", "headYaw", "headRoll")
GAZE_NAMES: tuple[str, ...] = ("gazeYaw", "gazePitch")
ALL_KEYS: tuple[str, ...] = BLENDSHAPE_NAMES + POSE_NAMES + GAZE_NAMES

# Angles beyond these are clamped: the 2D warp renderer cannot show more.
MAX_HEAD_DEG = 30.0
MAX_GAZE_DEG = 30.0


class FaceStateError(ValueError):
    """A face state given by a user (file, message) is malformed."""


def _frozen_array(values, shape: tuple[int, ...]) -> np.ndarray:
    a = np.array(values, dtype=np.float32).reshape(shape)
    a.flags.writeable = False
    return a


def _clean(values, shape: tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    """A frozen float32 copy with NaN -> 0 and values clamped to [lo, hi] (infinities to the bounds)."""
    a = np.array(values, dtype=np.float32).reshape(shape)
    a[np.isnan(a)] = 0.0
    np.maximum(a, lo, out=a)
    np.minimum(a, hi, out=a)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class FaceState:
    """One frame of face: expression coefficients, head pose and gaze.

    `coeffs` has one value per name in BLENDSHAPE_NAMES (0..1). `head` is
    (pitch, yaw, roll) in degrees relative to the avatar's own photo: positive
    yaw turns the face towards the image's left (the subject's right), positive
    pitch nods down, positive roll tilts clockwise in the image. `gaze` is
    (yaw, pitch) of the eyes in degrees, same signs. `t` is the stream time in
    seconds (derived from audio sample positions, never from wall time).
    """

    coeffs: np.ndarray = field(default_factory=lambda: _frozen_array(np.zeros(NUM_COEFFS), (NUM_COEFFS,)))
    head: np.ndarray = field(default_factory=lambda: _frozen_array(np.zeros(3), (3,)))
    gaze: np.ndarray = field(default_factory=lambda: _frozen_array(np.zeros(2), (2,)))
    t: float = 0.0

    def __post_init__(self) -> None:
        # Built several times per frame per session: plain ufuncs, not np.clip/nan_to_num (10x the overhead).
        object.__setattr__(self, "coeffs", _clean(self.coeffs, (NUM_COEFFS,), 0.0, 1.0))
        object.__setattr__(self, "head", _clean(self.head, (3,), -MAX_HEAD_DEG, MAX_HEAD_DEG))
        object.__setattr__(self, "gaze", _clean(self.gaze, (2,), -MAX_GAZE_DEG, MAX_GAZE_DEG))
        object.__setattr__(self, "t", float(self.t))

    def __getitem__(self, name: str) -> float:
        if name in COEFF_INDEX:
            return float(self.coeffs[COEFF_INDEX[name]])
        if name in POSE_NAMES:
            return float(self.head[POSE_NAMES.index(name)])
        if name in GAZE_NAMES:
            return float(self.gaze[GAZE_NAMES.index(name)])
        raise KeyError(name)

    def replace(self, **values: float) -> "FaceState":
        """A copy with some named values changed (coefficients, pose or gaze), or `t`."""
        t = values.pop("t", self.t)
        d = self.to_dict()
        d.update(values)
        return FaceState.from_dict(d, t=t)

    def to_dict(self) -> dict[str, float]:
        out = {n: float(v) for n, v in zip(BLENDSHAPE_NAMES, self.coeffs)}
        out.update({n: float(v) for n, v in zip(POSE_NAMES, self.head)})
        out.update({n: float(v) for n, v in zip(GAZE_NAMES, self.gaze)})
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, float], t: float = 0.0) -> "FaceState":
        """Build from named values; missing keys are 0, unknown keys raise FaceStateError."""
        unknown = sorted(k for k in values if k not in COEFF_INDEX and k not in POSE_NAMES and k not in GAZE_NAMES)
        if unknown:
            raise FaceStateError(f"unknown face-state keys: {', '.join(unknown)}")
        coeffs = np.zeros(NUM_COEFFS, np.float32)
        head = np.zeros(3, np.float32)
        gaze = np.zeros(2, np.float32)
        for k, v in values.items():
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise FaceStateError(f"value of {k!r} is not a number: {v!r}") from None
            if not np.isfinite(x):
                raise FaceStateError(f"value of {k!r} is not finite: {v!r}")
            if k in COEFF_INDEX:
                coeffs[COEFF_INDEX[k]] = x
            elif k in POSE_NAMES:
                head[POSE_NAMES.index(k)] = x
            else:
                gaze[GAZE_NAMES.index(k)] = x
        return cls(coeffs=coeffs, head=head, gaze=gaze, t=t)

    @classmethod
    def neutral(cls, t: float = 0.0) -> "FaceState":
        return cls(t=t)


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """A rendered RGB frame (H, W, 3 uint8) with the stream time it shows."""

    image: np.ndarray
    t: float
    index: int


@dataclass(frozen=True, eq=False)
class SpeechFrame:
    """The speech-driven face state of one video frame and its voice-activity score (0..1)."""

    state: FaceState
    vad: float

    @property
    def t(self) -> float:
        return self.state.t
