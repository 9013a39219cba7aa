"""The emotion space: each MEAD emotion is a direction in the 52-coefficient space.

A direction d (plus a small head-pose offset in degrees) is what gets added to a
speech-driven face state at intensity k = 1 (EMOdiffhead's editing direction
d_y = e_y - e_n). The directions are a committed asset computed by
scripts/emotion/calibrate_directions.py from FACS prototypes (engine/emotion/facs.py)
calibrated on real faces; docs/design/emotion.md tells where each one comes from.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

from ..types import BLENDSHAPE_NAMES, COEFF_INDEX, NUM_COEFFS

EMOTIONS: tuple[str, ...] = ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised")
ASSET = Path(__file__).resolve().parents[1] / "assets" / "emotion_directions.json"

# Other names people use for the same categories.
ALIASES: dict[str, str] = {
    "anger": "angry", "mad": "angry", "disgust": "disgusted", "fearful": "fear", "afraid": "fear",
    "scared": "fear", "happiness": "happy", "joy": "happy", "sadness": "sad", "surprise": "surprised",
    "calm": "neutral", "none": "neutral", "contemptuous": "contempt",
}


class EmotionError(ValueError):
    """An emotion name or mixture given by a user is malformed."""


def canonical(name: str) -> str:
    """The canonical emotion name for a name or alias (case-insensitive)."""
    n = str(name).strip().lower()
    n = ALIASES.get(n, n)
    if n not in EMOTIONS:
        raise EmotionError(f"unknown emotion {name!r}; known: {', '.join(EMOTIONS)}")
    return n


def normalise_mixture(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights made canonical, non-negative and summing to 1; empty or all-zero -> neutral."""
    acc: dict[str, float] = {}
    for k, v in weights.items():
        w = float(v)
        if not np.isfinite(w) or w < 0:
            raise EmotionError(f"weight of {k!r} must be a finite number >= 0, got {v!r}")
        name = canonical(k)
        acc[name] = acc.get(name, 0.0) + w
    total = sum(acc.values())
    if total <= 1e-12:
        return {"neutral": 1.0}
    return {k: v / total for k, v in acc.items() if v > 0}


@dataclass(frozen=True, eq=False)
class EmotionSpace:
    coeffs: np.ndarray  # (len(EMOTIONS), 52) direction per emotion at k = 1
    head: np.ndarray  # (len(EMOTIONS), 3) head (pitch, yaw, roll) offset in degrees at k = 1
    sources: dict[str, str]  # emotion -> one line on where its direction comes from
    # Directions the reference-photo reader explains a photo with, where they differ from the render
    # directions: render levels are tuned on how the warp reads to FER-2013, the reader keeps the
    # levels it was validated with (docs/design/emotion.md, Decisions: one set of directions for renderer
    # and reader). None: the render directions.
    read_coeffs: np.ndarray | None = None

    @property
    def read(self) -> np.ndarray:
        """(len(EMOTIONS), 52) directions a measured face is explained by."""
        return self.coeffs if self.read_coeffs is None else self.read_coeffs

    def direction(self, emotion: str) -> np.ndarray:
        return self.coeffs[EMOTIONS.index(canonical(emotion))]

    def mix(self, weights: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(coeff direction, head offset) of a mixture, weights normalised (EmoTalker eq. 3)."""
        w = normalise_mixture(weights)
        vec = np.zeros(len(EMOTIONS))
        for k, v in w.items():
            vec[EMOTIONS.index(k)] = v
        return vec @ self.coeffs, vec @ self.head

    def to_json(self) -> dict:
        out = {}
        for i, e in enumerate(EMOTIONS):
            nz = {n: round(float(v), 4) for n, v in zip(BLENDSHAPE_NAMES, self.coeffs[i]) if abs(v) >= 1e-4}
            out[e] = {"coeffs": nz, "head": [round(float(x), 3) for x in self.head[i]], "source": self.sources.get(e, "")}
            if not np.array_equal(self.read[i], self.coeffs[i]):
                out[e]["read"] = {n: round(float(v), 4) for n, v in zip(BLENDSHAPE_NAMES, self.read[i])
                                  if abs(v) >= 1e-4}
        return {"format": "emolive-emotion-directions/1", "emotions": out}

    @classmethod
    def from_json(cls, data: Mapping) -> "EmotionSpace":
        em = data["emotions"]
        coeffs = np.zeros((len(EMOTIONS), NUM_COEFFS))
        head = np.zeros((len(EMOTIONS), 3))
        sources = {}
        for i, e in enumerate(EMOTIONS):
            entry = em.get(e, {})
            for n, v in entry.get("coeffs", {}).items():
                coeffs[i, COEFF_INDEX[n]] = float(v)
            head[i] = np.asarray(entry.get("head", [0, 0, 0]), float)
            sources[e] = entry.get("source", "")
        coeffs[EMOTIONS.index("neutral")] = 0.0  # neutral adds nothing, by definition
        head[EMOTIONS.index("neutral")] = 0.0
        read_coeffs = coeffs.copy()
        for i, e in enumerate(EMOTIONS[1:], start=1):
            if "read" in em.get(e, {}):
                read_coeffs[i] = 0.0
                for n, v in em[e]["read"].items():
                    read_coeffs[i, COEFF_INDEX[n]] = float(v)
        if np.array_equal(read_coeffs, coeffs):
            read_coeffs = None
        return cls(coeffs=coeffs, head=head, sources=sources, read_coeffs=read_coeffs)


@lru_cache(maxsize=4)
def load_directions(path: str | None = None) -> EmotionSpace:
    """The committed emotion space (cached), or one from another JSON file."""
    p = Path(path) if path else ASSET
    return EmotionSpace.from_json(json.loads(p.read_text()))
