"""The lower face's own neutral shape, learned from people photographed both smiling and at rest.

The rig undoes a photo's rest expression (engine/avatar/rest.py) in its own
coefficients, keeping only what exceeds a population deadband: a smiling photo
rendered neutral keeps most of its grin's geometry (mouth corners wide and up,
lips stretched), and a face-mesh model re-detects the smile on it. Real people
do not neutralise along the rig's directions either.

This model is a ridge regression, fitted on the London set's training people
(scripts/emotion/fit_rest_geometry.py): from the rig fit of a photo's landmarks
(minus the population neutral fit, the 28 expression coefficients) to the
displacement, in face units, that takes the photo's 478 landmarks to the same
person's neutral photo (aligned on the eye corners and nose bridge). Every
person's neutral photo is also a sample whose displacement is zero, so a face at
rest is left where it is; there is no bias term, so a face at the population
neutral is not moved at all. Features are clipped to the range seen in training,
so a photo beyond every training face is not extrapolated.

The asset holds only computed numbers (weights, feature ranges).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..face_geometry import NUM_LANDMARKS

log = logging.getLogger(__name__)

ASSET = Path(__file__).resolve().parents[1] / "assets" / "rest_geometry.npz"
FORMAT = "emolive-rest-geometry/1"
# The learned displacement takes over from the rig's below the eyes, where the paired photos teach it
# (a smile's mouth, cheeks and jaw); above, the rig's undo of any expression stays. Face-frame y (eye
# distances below the eye line): rig only above LOWER_FROM, learned only below LOWER_TO, smooth between.
LOWER_FROM, LOWER_TO = 0.25, 0.55


@dataclass(frozen=True)
class RestGeometry:
    features: tuple[str, ...]  # coefficient names, in the order of the weights' rows
    weights: np.ndarray  # (len(features), 478 * 3): features -> displacement in face units
    lo: np.ndarray  # (len(features),) training range of each feature
    hi: np.ndarray

    def displacement(self, features: np.ndarray) -> np.ndarray:
        """(478, 3) displacement in face units for (len(features),) features."""
        f = np.clip(np.asarray(features, np.float64), self.lo, self.hi)
        return (f @ self.weights).reshape(NUM_LANDMARKS, 3)


def save(path: Path, geometry: RestGeometry, meta: str) -> None:
    np.savez_compressed(path, format=np.array(FORMAT), features=np.array(geometry.features),
                        weights=geometry.weights.astype(np.float32), lo=geometry.lo.astype(np.float32),
                        hi=geometry.hi.astype(np.float32), meta=np.array(meta))


@lru_cache(maxsize=1)
def load_rest_geometry(path: Path = ASSET) -> RestGeometry | None:
    """The committed model, or None (logged once) when it is missing or malformed: the rig's undo alone is used."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT:
                raise ValueError(f"format {z['format']!s}, expected {FORMAT}")
            feats = tuple(str(n) for n in z["features"])
            w = z["weights"].astype(np.float64)
            lo, hi = z["lo"].astype(np.float64), z["hi"].astype(np.float64)
        if w.shape != (len(feats), NUM_LANDMARKS * 3) or lo.shape != (len(feats),) or hi.shape != (len(feats),):
            raise ValueError(f"weights {w.shape}, ranges {lo.shape} / {hi.shape} for {len(feats)} features")
        if not np.all(np.isfinite(w)):
            raise ValueError("non-finite weights")
    except (OSError, KeyError, ValueError) as e:
        log.warning("rest geometry model unusable (%s): smiling photos keep more of their smile at rest", e)
        return None
    return RestGeometry(features=feats, weights=w, lo=lo, hi=hi)


def features_of(coeffs: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """A photo's features: its fitted coefficients minus the population neutral fit, for `names`."""
    from ..emotion.reference import neutral_reference
    from ..types import COEFF_INDEX

    mean, _ = neutral_reference()
    idx = [COEFF_INDEX[n] for n in names]
    return np.asarray(coeffs, np.float64)[idx] - mean[idx]


def lower_weight(face_y: np.ndarray) -> np.ndarray:
    """(N,) share of the learned displacement per landmark from its face-frame y."""
    t = np.clip((np.asarray(face_y, np.float64) - LOWER_FROM) / (LOWER_TO - LOWER_FROM), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
