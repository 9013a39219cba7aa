"""An emotion target: what the presenter asks for (mixture + intensity, or a custom expression).

Specs as a user types them: "happy", "happy:0.8", "happy:0.7+surprised:0.3@0.9"
(a mixture with weights, then an overall intensity after '@'). A reference
photo gives a custom coefficient direction, carried in `direction`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .directions import EMOTIONS, EmotionError, normalise_mixture
from .mixing import MAX_INTENSITY, clamp_intensity


@dataclass(frozen=True, eq=False)
class EmotionTarget:
    mixture: dict[str, float] = field(default_factory=lambda: {"neutral": 1.0})  # normalised weights
    intensity: float = 1.0  # clamped to [0, MAX_INTENSITY]
    direction: np.ndarray | None = None  # optional (52,) custom expression (reference photo), at k = 1
    confidence: float = 1.0
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mixture", normalise_mixture(self.mixture))
        object.__setattr__(self, "intensity", clamp_intensity(self.intensity))
        if self.direction is not None:
            object.__setattr__(self, "direction", np.asarray(self.direction, np.float64).reshape(-1))

    def amounts(self) -> np.ndarray:
        """Per-emotion amount k * w_i in EMOTIONS order (what the controller blends)."""
        v = np.zeros(len(EMOTIONS))
        for k, w in self.mixture.items():
            v[EMOTIONS.index(k)] = w * self.intensity
        return v

    def dominant(self) -> str:
        return max(self.mixture.items(), key=lambda kv: kv[1])[0]


def neutral() -> EmotionTarget:
    return EmotionTarget()


def parse_spec(spec: str) -> EmotionTarget:
    """Parse "happy", "happy:0.8" or "happy:0.7+surprised:0.3@0.9" (EmotionError if malformed).

    With a single emotion the number after ':' is the intensity; with several
    they are weights, and '@x' gives the intensity (default 1).
    """
    text = str(spec).strip()
    if not text:
        raise EmotionError("empty emotion spec")
    body, _, at = text.partition("@")
    parts = [p.strip() for p in body.replace(",", "+").split("+") if p.strip()]
    weights: dict[str, float] = {}
    for p in parts:
        name, _, num = p.partition(":")
        try:
            w = float(num) if num.strip() else 1.0
        except ValueError:
            raise EmotionError(f"bad number in emotion spec {p!r}") from None
        weights[name] = weights.get(name, 0.0) + w
    try:
        k = float(at) if at.strip() else None
    except ValueError:
        raise EmotionError(f"bad intensity in emotion spec {text!r}") from None
    if len(weights) == 1 and k is None:
        (name, w), = weights.items()
        if w < 0:
            raise EmotionError(f"intensity must be >= 0 in {text!r}")
        return EmotionTarget(mixture={name: 1.0}, intensity=min(w, MAX_INTENSITY))
    return EmotionTarget(mixture=weights, intensity=1.0 if k is None else k)


def coerce(target) -> EmotionTarget:
    """Accept an EmotionTarget, a spec string or a {emotion: weight} mapping."""
    if isinstance(target, EmotionTarget):
        return target
    if isinstance(target, str):
        return parse_spec(target)
    if isinstance(target, Mapping):
        return EmotionTarget(mixture=dict(target), intensity=1.0)
    raise EmotionError(f"cannot use {type(target).__name__} as an emotion target")
