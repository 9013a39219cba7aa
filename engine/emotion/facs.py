"""FACS action-unit prototypes of the basic emotions, mapped to ARKit coefficients.

Prototypes follow Ekman & Friesen's EMFACS / Friesen & Ekman (1983) as tabulated
by Matsumoto & Ekman, "Facial expression analysis", Scholarpedia 3(5):4237 (2008):
happy AU6+12, sad AU1+4+15, surprise AU1+2+5B+26, fear AU1+2+4+5+7+20+26,
anger AU4+5+7+23, disgust AU9+15+16, contempt unilateral AU12+14 (R12A+R14A).
They are the starting point and the fallback of the calibrated directions
(see engine/emotion/directions.py and scripts/emotion/calibrate_directions.py).
"""
from __future__ import annotations

import numpy as np

from ..types import COEFF_INDEX, NUM_COEFFS

# FACS intensity letters A (trace) .. E (maximum) as coefficient values.
INTENSITY = {"A": 0.2, "B": 0.35, "C": 0.55, "D": 0.8, "E": 1.0}

# AU -> ARKit coefficients (and weight). Bilateral AUs map to both sides; a
# trailing "L" in an AU code (e.g. "12L") selects the subject's left side only.
AU_TO_ARKIT: dict[str, tuple[tuple[str, float], ...]] = {
    "1": (("browInnerUp", 1.0),),
    "2": (("browOuterUpLeft", 1.0), ("browOuterUpRight", 1.0)),
    "4": (("browDownLeft", 1.0), ("browDownRight", 1.0)),
    "5": (("eyeWideLeft", 1.0), ("eyeWideRight", 1.0)),
    "6": (("cheekSquintLeft", 1.0), ("cheekSquintRight", 1.0), ("eyeSquintLeft", 0.3), ("eyeSquintRight", 0.3)),
    "7": (("eyeSquintLeft", 1.0), ("eyeSquintRight", 1.0)),
    "9": (("noseSneerLeft", 1.0), ("noseSneerRight", 1.0)),
    "10": (("mouthUpperUpLeft", 1.0), ("mouthUpperUpRight", 1.0)),
    "12": (("mouthSmileLeft", 1.0), ("mouthSmileRight", 1.0)),
    "14": (("mouthDimpleLeft", 1.0), ("mouthDimpleRight", 1.0)),
    "15": (("mouthFrownLeft", 1.0), ("mouthFrownRight", 1.0)),
    "16": (("mouthLowerDownLeft", 1.0), ("mouthLowerDownRight", 1.0)),
    "17": (("mouthShrugLower", 1.0),),
    "20": (("mouthStretchLeft", 1.0), ("mouthStretchRight", 1.0)),
    "23": (("mouthPressLeft", 0.6), ("mouthPressRight", 0.6)),
    "26": (("jawOpen", 1.0),),
}

# Emotion -> list of (AU, intensity letter). Letters not given in the source
# prototypes are set to C (marked), except 5B as the prototype states.
PROTOTYPES: dict[str, tuple[tuple[str, str], ...]] = {
    "neutral": (),
    "happy": (("6", "C"), ("12", "D")),
    "sad": (("1", "C"), ("4", "B"), ("15", "C"), ("17", "B")),
    "surprised": (("1", "D"), ("2", "D"), ("5", "B"), ("26", "C")),
    "fear": (("1", "C"), ("2", "C"), ("4", "C"), ("5", "C"), ("7", "B"), ("20", "D"), ("26", "A")),
    "angry": (("4", "D"), ("5", "B"), ("7", "C"), ("23", "C")),
    "disgusted": (("9", "D"), ("15", "C"), ("16", "B")),
    "contempt": (("12L", "C"), ("14L", "C")),
}


def au_vector(au: str, value: float) -> np.ndarray:
    """The 52-coefficient vector of one action unit at a given intensity."""
    left_only = au.endswith("L")
    out = np.zeros(NUM_COEFFS, np.float64)
    for name, w in AU_TO_ARKIT[au.rstrip("L")]:
        if left_only and name.endswith("Right"):
            continue
        out[COEFF_INDEX[name]] = max(out[COEFF_INDEX[name]], w * value)
    return out


def prototype(emotion: str) -> np.ndarray:
    """The FACS prototype of an emotion as a 52-coefficient direction (neutral = 0)."""
    out = np.zeros(NUM_COEFFS, np.float64)
    for au, letter in PROTOTYPES[emotion]:
        out = np.maximum(out, au_vector(au, INTENSITY[letter]))
    return out


def support(emotion: str) -> np.ndarray:
    """Boolean mask of the coefficients the prototype of an emotion uses."""
    return prototype(emotion) > 0


# Small head-pose offsets (pitch, yaw, roll in degrees; + pitch = nod down) at
# k = 1. Directions of movement after Wallbott, "Bodily expression of emotion",
# Eur. J. Soc. Psychol. 28 (1998): sadness lowers the head, anger pushes it
# forward/down, surprise and joy lift it; contempt tilts it back and sideways
# (Matsumoto & Ekman 2004). Amplitudes are kept small so the 2D warp stays clean.
HEAD_PRIORS: dict[str, tuple[float, float, float]] = {
    "neutral": (0.0, 0.0, 0.0),
    "happy": (-1.5, 0.0, 0.0),
    "sad": (6.0, 0.0, 0.0),
    "surprised": (-3.0, 0.0, 0.0),
    "fear": (-1.5, 0.0, 0.0),
    "angry": (2.5, 0.0, 0.0),
    "disgusted": (1.0, 3.0, 0.0),
    "contempt": (-2.0, 0.0, 3.0),
}
