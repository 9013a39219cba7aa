"""Cosine noise schedule and the deterministic (DDIM, eta = 0) few-step sampler for an x0-predicting model.

Written once for numpy arrays and torch tensors alike (only arithmetic, .clip
and scalar coefficients), so training, distillation and the ONNX Runtime path
share it. Images are in [-1, 1].
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np


def alpha_sigma(t: float) -> tuple[float, float]:
    """Cosine schedule: x_t = alpha x0 + sigma eps, alpha = cos(pi t / 2), sigma = sin(pi t / 2)."""
    return math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)


def time_grid(steps: int) -> np.ndarray:
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return np.linspace(1.0, 0.0, steps + 1)


def ddim_step(x_t, x0, t: float, s: float):
    """Move x_t at time t to time s < t along the prediction x0 (eps implied by x_t and x0)."""
    at, st = alpha_sigma(t)
    as_, ss = alpha_sigma(s)
    if s <= 0.0:
        return x0
    eps = (x_t - at * x0) * (1.0 / st)
    return as_ * x0 + ss * eps


def sample(denoise: Callable, noise, steps: int, anchor=None, mix: float = 1.0, mix_steps: int = 0):
    """x0 from pure noise in `steps` model calls; `denoise(x_t, t) -> x0`.

    Identity-preserving inference (EmoTalker): for the first `mix_steps` steps the
    noisy latent is mixed with the anchor image (here the meshwarp render of the
    identity) noised to the same level: x_t <- mix * x_t + (1 - mix) * q(anchor, t).
    The same `noise` is used for that, so a fixed seed gives a fixed result.
    """
    x = noise
    ts = time_grid(steps)
    x0 = None
    for i in range(steps):
        t, s = float(ts[i]), float(ts[i + 1])
        if anchor is not None and i < mix_steps and mix < 1.0:
            at, st = alpha_sigma(t)
            x = mix * x + (1.0 - mix) * (at * anchor + st * noise)
        x0 = denoise(x, t).clip(-1.0, 1.0)
        x = ddim_step(x, x0, t, s)
    return x0


def frame_noise(shape, seed: int) -> np.ndarray:
    """The fixed starting noise: the same seed for every frame keeps video temporally stable."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
