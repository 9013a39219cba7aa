"""Combine a speech-driven face state with an emotion: linear editing that leaves lip-sync alone.

emotional = speech + k * sum_i w_i d_i (EMOdiffhead eq. 14-15, EmoTalker eq. 3 for
mixtures), weights normalised, k clamped to [0, MAX_INTENSITY], coefficients to [0, 1].

Three rules keep the emotion from fighting the voice:
* mouth-opening coefficients (jawOpen, lower/upper lip down/up) may only be raised
  by an emotion, never lowered, so a frown cannot close a mouth that speech opened;
* an emotion's own mouth opening (surprise's dropped jaw, a laugh's parted lips) is a
  pose of the silent face: it fades out as the presenter speaks (`speaking`, a smoothed
  voice activity in [0, 1]), so mid-sentence the voice alone opens and closes the mouth
  and bilabials still close;
* lip-closing coefficients (mouthClose, press, roll, pucker, funnel, chin raise)
  are speech's: an emotion adds them only while speech keeps the mouth at rest,
  fading out as speech opens the jaw (anger's pressed lips at rest, not mid-word).

Optional EmoHead-style refinement (`MixConfig(refine=True)`): when speech and the
emotion share coefficients, clamping at 1 eats part of the emotion ("expression
collapse"). The refinement measures how far the result moved along the emotion's
unit normal n, and pushes the missing amount along n's free coefficients (not at
a bound, not speech-protected) until the intended displacement k<d, n> is reached.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..types import COEFF_INDEX, NUM_COEFFS, FaceState
from .directions import EmotionSpace, load_directions

MAX_INTENSITY = 1.5
OPENING = ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight")
CLOSING = ("mouthClose", "mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper",
           "mouthPucker", "mouthFunnel", "mouthShrugLower", "mouthShrugUpper")
_OPEN_IDX = np.array([COEFF_INDEX[n] for n in OPENING])
_CLOSE_IDX = np.array([COEFF_INDEX[n] for n in CLOSING])
_PROTECTED = np.zeros(NUM_COEFFS, bool)
_PROTECTED[_OPEN_IDX] = True
_PROTECTED[_CLOSE_IDX] = True
# jawOpen at which speech fully owns the lip-closing coefficients.
JAW_FULL_SPEECH = 0.2


@dataclass(frozen=True)
class MixConfig:
    refine: bool = False  # EmoHead-style push along the emotion normal
    protect_speech: bool = True  # the two lip-sync rules above
    head_scale: float = 1.0  # scale of the emotions' head-pose offsets
    refine_iters: int = 4


def clamp_intensity(k: float) -> float:
    k = float(k)
    return float(np.clip(k, 0.0, MAX_INTENSITY)) if np.isfinite(k) else 0.0


def emotion_delta(speech: np.ndarray, direction: np.ndarray, k: float, protect: bool = True,
                  speaking: float = 0.0) -> np.ndarray:
    """The coefficient change an emotion applies on top of a speech state (`speaking` in [0, 1])."""
    delta = k * np.asarray(direction, np.float64)
    if protect:
        quiet = 1.0 - float(np.clip(speaking, 0.0, 1.0)) if np.isfinite(speaking) else 1.0
        delta[_OPEN_IDX] = np.maximum(delta[_OPEN_IDX], 0.0) * quiet
        openness = float(np.clip(speech[COEFF_INDEX["jawOpen"]] / JAW_FULL_SPEECH, 0.0, 1.0))
        delta[_CLOSE_IDX] = np.where(delta[_CLOSE_IDX] > 0, delta[_CLOSE_IDX] * (1.0 - openness), delta[_CLOSE_IDX])
        delta[COEFF_INDEX["mouthClose"]] = 0.0
    return delta


def refine_along_normal(speech: np.ndarray, edited: np.ndarray, delta: np.ndarray, iters: int = 4) -> np.ndarray:
    """Push a clamped result along the emotion normal until its displacement matches delta's."""
    n = np.where(_PROTECTED, 0.0, delta)
    norm = np.linalg.norm(n)
    if norm < 1e-9:
        return edited
    n = n / norm
    want = float(delta @ n)
    x = edited.copy()
    for _ in range(iters):
        missing = want - float((x - speech) @ n)
        if missing <= 1e-4:
            break
        free = ((n > 0) & (x < 1.0 - 1e-6)) | ((n < 0) & (x > 1e-6))
        nf = np.where(free & ~_PROTECTED, n, 0.0)
        gain = float(nf @ n)
        if gain < 1e-9:
            break
        x = np.clip(x + nf * (missing / gain), 0.0, 1.0)
    return x


def apply_emotion(state: FaceState, mixture: Mapping[str, float], intensity: float,
                  space: EmotionSpace | None = None, config: MixConfig = MixConfig(),
                  speaking: float = 0.0) -> FaceState:
    """The speech state edited by a mixture of emotions at an intensity (`speaking`: see emotion_delta)."""
    space = space or load_directions()
    k = clamp_intensity(intensity)
    direction, head = space.mix(mixture)
    speech = np.asarray(state.coeffs, np.float64)
    delta = emotion_delta(speech, direction, k, config.protect_speech, speaking)
    out = np.clip(speech + delta, 0.0, 1.0)
    if config.refine:
        out = refine_along_normal(speech, out, delta, config.refine_iters)
    return FaceState(coeffs=out, head=np.asarray(state.head) + config.head_scale * k * head, gaze=state.gaze, t=state.t)
