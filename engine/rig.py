"""Linear expression rig: 52 coefficients -> displacements of the 478 face-mesh landmarks.

The basis was fitted on real faces measured with MediaPipe's Face Landmarker
(scripts/fit_rig.py, docs/design/rig.md); coefficients the data did not cover are
hand-built from FACS action units. Everything is in face units
(engine.face_geometry.face_frame): x along the eye-corner axis towards the
subject's left, y down, z into the image, unit = outer inter-ocular distance.
MediaPipe's "Left" names mean the subject's left (the image-right eye).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .face_geometry import NUM_LANDMARKS
from .types import BLENDSHAPE_NAMES, NUM_COEFFS

DEFAULT_PATH = Path(__file__).resolve().parent / "assets" / "rig.npz"
# Bony landmarks (eye corners, nose dorsum, face sides, forehead) that expressions barely
# move: a rigid fit on them removes the tilt that face_frame picks up when the chin moves.
RIGID_LANDMARKS = (33, 263, 133, 362, 168, 6, 197, 195, 127, 356, 234, 454, 10, 151)


def rigid_align(pts: np.ndarray, reference: np.ndarray, idx=RIGID_LANDMARKS, scale: bool = False) -> np.ndarray:
    """`pts` moved by the rotation + translation (and, with `scale`, the uniform scale) that best maps its
    `idx` onto `reference`'s."""
    p = np.asarray(pts, np.float64)
    a, b = p[list(idx)], np.asarray(reference, np.float64)[list(idx)]
    ca, cb = a.mean(0), b.mean(0)
    u, s, vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ np.diag(d) @ vt
    k = float((s * d).sum() / ((a - ca) ** 2).sum()) if scale else 1.0
    return (p - ca) @ r * k + cb


class Rig:
    """Basis (52, 478, 3) of displacement per unit coefficient, plus the mean neutral face."""

    def __init__(self, basis: np.ndarray, mean_face: np.ndarray, source: np.ndarray, meta: dict | None = None):
        self.basis = np.asarray(basis, np.float32)
        if self.basis.shape != (NUM_COEFFS, NUM_LANDMARKS, 3):
            raise ValueError(f"rig basis must be (52, 478, 3), got {self.basis.shape}")
        self.mean_face = np.asarray(mean_face, np.float32)
        self.source = np.asarray(source).astype(str)
        self.meta = meta or {}
        self.names = BLENDSHAPE_NAMES
        # (52, 1434): one matrix product per frame in displacements().
        self._flat = np.ascontiguousarray(self.basis.reshape(NUM_COEFFS, -1))

    def displacements(self, coeffs: np.ndarray) -> np.ndarray:
        """(52,) coefficients -> (478, 3) landmark displacements in face units."""
        c = np.asarray(coeffs, np.float32).reshape(NUM_COEFFS)
        return (c @ self._flat).reshape(NUM_LANDMARKS, 3)

    def face(self, coeffs: np.ndarray, neutral: np.ndarray | None = None) -> np.ndarray:
        """Landmarks (face units) of a neutral face (default the mean face) showing `coeffs`."""
        base = self.mean_face if neutral is None else np.asarray(neutral, np.float32)
        return base + self.displacements(coeffs)

    def fit_coefficients(self, landmarks_face_units: np.ndarray, reference_face_units: np.ndarray | None = None,
                         subset=None) -> np.ndarray:
        """Coefficients in [0, 1] whose displacements best explain a face's offset from a reference.

        The face is first rigidly aligned to the reference on bony landmarks (pose left
        over by face_frame). `subset`: names or indices of the coefficients allowed to
        move (others stay 0); default all. Bounded linear least squares (scipy lsq_linear).
        """
        from scipy.optimize import lsq_linear

        ref = self.mean_face if reference_face_units is None else np.asarray(reference_face_units, np.float64)
        face = rigid_align(landmarks_face_units, ref)
        target = (face - ref).reshape(-1)
        if subset is None:
            cols = np.arange(NUM_COEFFS)
        else:
            cols = np.array([BLENDSHAPE_NAMES.index(s) if isinstance(s, str) else int(s) for s in subset], int)
        a = self._flat[cols].T.astype(np.float64)
        res = lsq_linear(a, target, bounds=(0.0, 1.0), method="bvls")
        out = np.zeros(NUM_COEFFS, np.float32)
        out[cols] = res.x
        return out


@lru_cache(maxsize=4)
def _load(path: str) -> Rig:
    z = np.load(path, allow_pickle=False)
    meta = {k: z[k] for k in z.files if k not in ("basis", "mean_face", "source")}
    return Rig(z["basis"], z["mean_face"], z["source"], meta)


def load_rig(path: str | Path | None = None) -> Rig:
    """The rig stored at `path` (default the committed engine/assets/rig.npz), loaded once per path."""
    return _load(str(Path(path).resolve() if path is not None else DEFAULT_PATH))
