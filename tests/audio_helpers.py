"""Shared bits of the audio tests: a speech-like synthetic signal and jawOpen series."""
from __future__ import annotations

import numpy as np


def speechlike(seconds: float = 3.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Voiced bursts (harmonic source through moving formants) separated by pauses, float32 mono."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    src = np.sign(np.sin(2 * np.pi * np.cumsum(f0) / sr)) * 0.3 + 0.05 * rng.standard_normal(t.size)
    env = np.clip(np.sin(2 * np.pi * 2.2 * t), 0, None) ** 0.5 * (t > 0.3) * (t < seconds - 0.4)
    spec = np.fft.rfft(src * env)
    f = np.fft.rfftfreq(t.size, 1 / sr)
    spec *= np.exp(-((f - 700) / 400) ** 2) + 0.6 * np.exp(-((f - 1500) / 500) ** 2) + 0.05
    return (np.fft.irfft(spec, t.size) * 3).astype(np.float32)


def jaw(frames) -> np.ndarray:
    return np.array([f.state["jawOpen"] for f in frames])


def pearson(a, b) -> float:
    a, b = np.asarray(a, float) - np.mean(a), np.asarray(b, float) - np.mean(b)
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-12))
