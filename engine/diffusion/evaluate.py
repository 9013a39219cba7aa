"""Held-out quality of a denoiser against the real crops, side by side with the meshwarp hint."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .data import ClipData
from .metrics import mean_scores, scores
from .sampler import frame_noise, sample

# denoise(x_t, t, hint, reference, state) on batches (numpy, NCHW in [-1, 1]) -> x0
DenoiseFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def to_model(img_u8: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1]."""
    x = img_u8.astype(np.float32) / 127.5 - 1.0
    return np.moveaxis(x, -1, -3).copy()


def to_image(x: np.ndarray) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) uint8."""
    return np.clip((np.moveaxis(np.asarray(x, np.float32), -3, -1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def generate(denoise: DenoiseFn, hint_u8: np.ndarray, ref_u8: np.ndarray, cond: np.ndarray, steps: int,
             seed: int = 0, mix: float = 1.0, mix_steps: int = 0, batch: int = 32) -> np.ndarray:
    """Crops (N, R, R, 3) uint8 for hint crops and condition vectors, sampled in batches with one fixed noise."""
    r = hint_u8.shape[1]
    noise = frame_noise((1, 3, r, r), seed)
    ref = to_model(ref_u8)[None]
    out = []
    for i in range(0, len(hint_u8), batch):
        h = to_model(hint_u8[i:i + batch])
        c = cond[i:i + batch].astype(np.float32)
        n = len(h)
        rb = np.repeat(ref, n, axis=0)
        fn = lambda x, t: denoise(np.broadcast_to(x, h.shape).astype(np.float32),  # noqa: E731
                                  np.full(n, t, np.float32), h, rb, c)
        out.append(to_image(sample(fn, np.repeat(noise, n, axis=0), steps, anchor=h, mix=mix, mix_steps=mix_steps)))
    return np.concatenate(out)


def evaluate(denoise: DenoiseFn | None, clips: list[ClipData], ref_u8: np.ndarray, mouth, steps_list=(1, 2, 4),
             seed: int = 0, **mix) -> dict:
    """{"meshwarp": scores, "diffusion": {steps: scores}, "frames": n} over the frames where a face was tracked."""
    hint_rows, rows = [], {s: [] for s in steps_list}
    n = 0
    t0 = time.perf_counter()
    for c in clips:
        keep = np.flatnonzero(c.found)
        n += len(keep)
        for k in keep:
            hint_rows.append(scores(c.hint[k], c.target[k], mouth))
        if denoise is None:
            continue
        for s in steps_list:
            pred = generate(denoise, c.hint[keep], ref_u8, c.cond[keep], s, seed, **mix)
            rows[s] += [scores(p, c.target[k], mouth) for p, k in zip(pred, keep)]
    out = {"frames": n, "meshwarp": mean_scores(hint_rows),
           "seconds": round(time.perf_counter() - t0, 1)}
    if denoise is not None:
        out["diffusion"] = {str(s): mean_scores(r) for s, r in rows.items()}
    return out
