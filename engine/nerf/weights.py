"""The field's parameters as numpy arrays: the state vector, a frame's kernel weights, the expected shapes.

Numpy only, so the CPU renderer (kernels/nerf.py) runs without importing PyTorch.
"""
from __future__ import annotations

import numpy as np

from ..types import FaceState
from .config import NerfConfig

STATE_DIM = 54  # 52 coefficients, gaze (yaw, pitch) / 30 deg
STATE_STD_FLOOR = 0.02  # an input that barely moved in training is scaled as if it moved this much
STATE_Z_MAX = 4.0  # standardised inputs are clamped: states far beyond the training video stay bounded


def expected_shapes(cfg: NerfConfig) -> dict[str, tuple[int, ...]]:
    """name -> shape of every parameter of a field of this config (model.NerfField's state_dict)."""
    lf, e, h, g = cfg.levels * cfg.features, cfg.expr_dim, cfg.hidden, cfg.geo_features
    return {"grid.tables": (cfg.levels, 2 ** cfg.log2_table, cfg.features),
            "state_mean": (STATE_DIM,), "state_std": (STATE_DIM,),
            "expr.0.weight": (32, STATE_DIM), "expr.0.bias": (32,), "expr.2.weight": (e, 32), "expr.2.bias": (e,),
            "d1.weight": (h, lf + e), "d1.bias": (h,), "d2.weight": (1 + g, h), "d2.bias": (1 + g,),
            "c1.weight": (h, g + e), "c1.bias": (h,), "c2.weight": (3, h), "c2.bias": (3,)}


def state_vector(state: FaceState) -> np.ndarray:
    return np.concatenate([np.asarray(state.coeffs, np.float32),
                           np.asarray(state.gaze, np.float32) / 30.0]).astype(np.float32)


def frame_weights(arrays: dict[str, np.ndarray], state: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays kernels/nerf.py renders one frame with: the state's code (the same for every sample of a
    frame) folded into the first layers' biases; float32, row-major. Numpy only: the CPU path needs no torch."""
    s = np.asarray(state, np.float32)
    s = np.clip((s - arrays["state_mean"]) / arrays["state_std"], -STATE_Z_MAX, STATE_Z_MAX).astype(np.float32)
    e = arrays["expr.2.weight"] @ np.maximum(arrays["expr.0.weight"] @ s + arrays["expr.0.bias"], 0.0) \
        + arrays["expr.2.bias"]
    d1, c1 = arrays["d1.weight"], arrays["c1.weight"]
    lf = d1.shape[1] - len(e)
    g = c1.shape[1] - len(e)
    f = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    return {"tables": f(arrays["grid.tables"]),
            "d1_w": f(d1[:, :lf]), "d1_b": f(arrays["d1.bias"] + d1[:, lf:] @ e),
            "d2_w": f(arrays["d2.weight"]), "d2_b": f(arrays["d2.bias"]),
            "c1_w": f(c1[:, :g]), "c1_b": f(arrays["c1.bias"] + c1[:, g:] @ e),
            "c2_w": f(arrays["c2.weight"]), "c2_b": f(arrays["c2.bias"])}
