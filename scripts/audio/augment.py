"""Waveform augmentation for training: speed, gain/clipping, reverberation, noise, band-limiting.

Every function takes and returns 16 kHz float32 audio; speed also rescales the
100 Hz target time axis so labels stay on the sound they describe.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve, resample_poly

SR = 16000


def speed(x: np.ndarray, targets: list[np.ndarray], factor: float):
    """Play `factor` times faster (pitch moves with it); targets resampled to match (integer
    arrays, class labels, by the nearest step; the others linearly)."""
    up, down = 100, int(round(100 * factor))
    y = resample_poly(x, up, down).astype(np.float32)
    out = []
    for t in targets:
        n = int(np.ceil(t.shape[0] * up / down))
        src = np.arange(n) * down / up
        idx = np.arange(t.shape[0])
        if np.issubdtype(t.dtype, np.integer):
            out.append(t[np.minimum(np.round(src).astype(int), t.shape[0] - 1)])
        elif t.ndim == 1:
            out.append(np.interp(src, idx, t).astype(np.float32))
        else:
            out.append(np.stack([np.interp(src, idx, t[:, j]) for j in range(t.shape[1])], 1).astype(np.float32))
    return y, out


def colored_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    w = rng.standard_normal(n)
    if kind == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
    spec /= np.sqrt(f) if kind == "pink" else f
    y = np.fft.irfft(spec, n)
    return y / (y.std() + 1e-12)


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    p_sig = np.mean(x[np.abs(x) > 0.1 * np.abs(x).max()] ** 2) if np.any(x) else 1e-6
    p_noise = np.mean(noise ** 2) + 1e-12
    return (x + noise * np.sqrt(p_sig / p_noise / 10 ** (snr_db / 10))).astype(np.float32)


def reverb(x: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.3
    rir[: int(0.002 * SR)] = 0.0
    rir[0] = 1.0
    y = fftconvolve(x, rir)[: x.size]
    return (y * np.sqrt(np.sum(x ** 2) / (np.sum(y ** 2) + 1e-12))).astype(np.float32)


def telephone(x: np.ndarray) -> np.ndarray:
    """Through 8 kHz and back: nothing above 4 kHz, like 8 kHz input."""
    return resample_poly(resample_poly(x, 1, 2), 2, 1)[: x.size].astype(np.float32)


def random_augment(x, tg, vad, rng: np.random.Generator, babble_source=None, labels=None):
    """Augmented (x, tg, vad, labels); `labels` (integer classes per target step, or None) follow the speed."""
    if rng.random() < 0.5:
        series = [tg, vad] if labels is None else [tg, vad, labels]
        x, series = speed(x, series, rng.uniform(0.88, 1.12))
        tg, vad = series[:2]
        labels = series[2] if labels is not None else None
    if rng.random() < 0.3:
        x = reverb(x, rng.uniform(0.15, 0.7), rng)
    if rng.random() < 0.15:
        x = telephone(x)
    if rng.random() < 0.5:
        kind = rng.choice(["white", "pink", "brown", "babble"]) if babble_source is not None else "white"
        noise = babble_source(x.size) if kind == "babble" else colored_noise(x.size, kind, rng)
        x = add_noise(x, noise, rng.uniform(0.0, 30.0))
    peak = np.abs(x).max() + 1e-9
    x = x / peak * 10 ** (rng.uniform(-40.0, 6.0) / 20)  # peak from -40 dBFS to +6 dB (clipped)
    if rng.random() < 0.5:
        x = x + rng.standard_normal(x.size).astype(np.float32) * 10 ** (rng.uniform(-95, -60) / 20)
    return np.clip(x, -1.0, 1.0).astype(np.float32), tg, vad, labels
