"""The photo's own expression ("rest expression"), so a renderer can start emotions from a neutral face.

A portrait that smiles with teeth reads as happy whatever emotion is applied on
top of it. At avatar creation we measure the photo's expression the way a
reference photo's is measured (engine/emotion/reference.py): rig fit of the
landmarks minus the population neutral fit, keeping only what exceeds the
neutral mean by more than one population std (smaller offsets are identity).
The result, in rig coefficients, is stored in the bundle (avatar.json
`rest_expression`); meshwarp subtracts its displacement so that the neutral
state shows a neutral face. Bundles written before this existed are measured
from their stored landmarks when loaded.
"""
from __future__ import annotations

import numpy as np

from ..types import BLENDSHAPE_NAMES, COEFF_INDEX, NUM_COEFFS

META_KEY = "rest_expression"


def measure_rest(landmarks: np.ndarray) -> np.ndarray:
    """(52,) rig coefficients of the expression a face shows beyond a population neutral face."""
    from ..emotion.reference import expression_of, fit_face

    return expression_of(fit_face(landmarks))


def to_meta(rest: np.ndarray) -> dict[str, float]:
    return {n: round(float(v), 4) for n, v in zip(BLENDSHAPE_NAMES, rest) if v >= 1e-4}


def from_meta(entry) -> np.ndarray | None:
    """The stored rest expression, or None when the entry is absent or malformed."""
    if not isinstance(entry, dict):
        return None
    out = np.zeros(NUM_COEFFS)
    for n, v in entry.items():
        if n not in COEFF_INDEX or not isinstance(v, (int, float)) or not np.isfinite(v):
            return None
        out[COEFF_INDEX[n]] = float(np.clip(v, 0.0, 1.0))
    return out


def rest_expression(avatar) -> np.ndarray:
    """The avatar's rest expression: stored in the bundle, else measured from its landmarks."""
    stored = from_meta(avatar.meta.get(META_KEY))
    return stored if stored is not None else measure_rest(avatar.landmarks)


def rest_offset(landmarks: np.ndarray, rest: np.ndarray, rig=None) -> np.ndarray:
    """(478, 3) displacement in face units that takes the photo's face to the same face at rest.

    `rest`: the photo's rest expression (rig coefficients, `rest_expression`). Above the eyes the rig's
    undo of it (`rig`: the renderer's, default the committed one); below them the learned lower-face
    displacement (rest_geometry.py), blended smoothly."""
    from ..emotion.reference import fit_face
    from ..face_geometry import face_frame
    from ..rig import load_rig
    from .rest_geometry import features_of, load_rest_geometry, lower_weight

    undo = -(rig or load_rig()).displacements(rest).astype(np.float64)
    model = load_rest_geometry()
    if model is None or not np.any(rest):
        # A photo with no measurable rest expression is left as it is (the learned model would move a
        # neutral face by its residual noise, about 1 % of an eye distance).
        return undo
    learned = model.displacement(features_of(fit_face(landmarks), model.features))
    w = lower_weight(face_frame(landmarks).to_face(landmarks)[:, 1])[:, None]
    return w * learned + (1.0 - w) * undo
