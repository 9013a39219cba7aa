"""PCM intake: validate a chunk of any common layout/dtype and return mono float64 in [-1, 1]."""
from __future__ import annotations

import numpy as np

from .errors import AudioInputError

MAX_CHANNELS = 8
_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0, np.dtype(np.int8): 128.0}


def to_mono(pcm, channels: int | None = None) -> tuple[np.ndarray, int]:
    """(mono float64 samples, number of non-finite samples replaced by 0).

    Accepts 1-D mono (or interleaved when `channels` > 1), or 2-D (samples,
    channels); a (channels, samples) array with <= 8 rows and more columns is
    also recognised. int16/int32/int8/uint8 are scaled to [-1, 1), floats are
    taken as they are (NaN/inf -> 0, then clipped to [-1, 1]).
    """
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        raise AudioInputError("raw bytes given: wrap them with np.frombuffer(buf, np.int16) (or the right dtype)")
    a = np.asarray(pcm)
    if a.dtype == object or a.dtype.kind not in "iuf":
        raise AudioInputError(f"PCM must be int16/int32/uint8 or float32/float64 samples, got dtype {a.dtype}")
    if a.ndim == 0:
        raise AudioInputError("PCM must be an array of samples, got a scalar")
    if a.ndim == 1 and channels not in (None, 1):
        if not 1 <= int(channels) <= MAX_CHANNELS or a.size % int(channels):
            raise AudioInputError(f"{a.size} interleaved samples cannot be split into {channels} channels")
        a = a.reshape(-1, int(channels))
    elif a.ndim == 2:
        if a.shape[1] > MAX_CHANNELS and a.shape[0] <= MAX_CHANNELS:
            a = a.T  # channels-first
        if a.shape[1] > MAX_CHANNELS:
            raise AudioInputError(f"PCM array of shape {a.shape}: expected (samples, channels<= {MAX_CHANNELS})")
    elif a.ndim > 2:
        raise AudioInputError(f"PCM must be 1-D or 2-D, got shape {a.shape}")
    if a.dtype.kind == "u":
        if a.dtype != np.uint8:
            raise AudioInputError(f"unsigned PCM other than uint8 is not supported (got {a.dtype})")
        x = (a.astype(np.float64) - 128.0) / 128.0
    elif a.dtype.kind == "i":
        scale = _INT_SCALE.get(a.dtype)
        if scale is None:
            raise AudioInputError(f"integer PCM must be int8/int16/int32, got {a.dtype}")
        x = a.astype(np.float64) / scale
    else:
        x = a.astype(np.float64)
    bad = ~np.isfinite(x)
    n_bad = int(bad.sum())
    if n_bad:
        x = np.where(bad, 0.0, x)
    if x.ndim == 2:
        x = x.mean(axis=1)
    return np.clip(x, -1.0, 1.0), n_bad
