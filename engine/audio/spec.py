"""What the speech model outputs: the speech-driven ARKit coefficients plus voice activity.

Only jaw, lip, cheek-puff and tongue coefficients are driven by speech. Smile,
frown and cheek squint are left to the emotion layer, everything else stays 0.
"""
from __future__ import annotations

from ..types import BLENDSHAPE_NAMES, COEFF_INDEX

SPEECH_COEFFS: tuple[str, ...] = (
    "jawOpen", "jawForward", "jawLeft", "jawRight", "mouthClose",
    "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthDimpleLeft", "mouthDimpleRight", "cheekPuff", "tongueOut",
)
SPEECH_INDEX: tuple[int, ...] = tuple(COEFF_INDEX[n] for n in SPEECH_COEFFS)
N_SPEECH = len(SPEECH_COEFFS)
N_OUT = N_SPEECH + 1  # + voice-activity logit (last channel)
assert all(n in BLENDSHAPE_NAMES for n in SPEECH_COEFFS)

# Mouth opening implied by a coefficient vector: jaw drop plus lower-lip drop minus
# lip closure. On GRID s1 frames this tracks the landmark lip gap with r = 0.98
# (0.92 for jawOpen alone), so it is what evaluation compares with the video.
MOUTH_OPEN_WEIGHTS: dict[str, float] = {"jawOpen": 1.0, "mouthLowerDownLeft": 0.5, "mouthLowerDownRight": 0.5,
                                        "mouthClose": -1.0}


def mouth_open_proxy(coeffs_by_name) -> float:
    """Scalar mouth opening from a FaceState (or any name -> value mapping)."""
    return float(sum(w * coeffs_by_name[n] for n, w in MOUTH_OPEN_WEIGHTS.items()))
