"""Streaming polyphase resampler to 16 kHz whose output does not depend on chunking.

Output sample m sits at input position m * M / L (L/M = out/in rate, reduced).
It is a windowed-sinc dot product over a fixed window of absolute input
positions, computed only once every input sample it needs has arrived, so
any split of the input gives the same samples as one pass (samples before the
stream start are zeros, flush() pads the end with zeros).
"""
from __future__ import annotations

from math import gcd

import numpy as np

from .errors import AudioInputError

TARGET_RATE = 16000
MIN_RATE, MAX_RATE = 8000, 96000
_ZERO_CROSSINGS = 16  # sinc lobes each side: ~80 dB image rejection with a Kaiser window


def check_rate(sample_rate) -> int:
    try:
        r = int(sample_rate)
    except (TypeError, ValueError):
        raise AudioInputError(f"sample rate must be an integer in Hz, got {sample_rate!r}") from None
    if r != sample_rate or not MIN_RATE <= r <= MAX_RATE:
        raise AudioInputError(f"unsupported sample rate {sample_rate!r}: expected an integer in [{MIN_RATE}, {MAX_RATE}] Hz")
    return r


class StreamResampler:
    """Resample a mono float stream from `rate_in` to `rate_out` (default 16 kHz)."""

    def __init__(self, rate_in: int, rate_out: int = TARGET_RATE):
        self.rate_in = check_rate(rate_in)
        self.rate_out = int(rate_out)
        g = gcd(self.rate_in, self.rate_out)
        self.up, self.down = self.rate_out // g, self.rate_in // g
        self.identity = self.up == self.down
        # Low-pass at 92 % of the lower Nyquist, in cycles per input sample.
        fc = 0.5 * min(1.0, self.up / self.down) * 0.92
        self.half = int(np.ceil(_ZERO_CROSSINGS / (2 * fc)))
        k = np.arange(-self.half + 1, self.half + 1)  # tap i = base + k, d = frac - k
        frac = np.arange(self.up)[:, None] / self.up
        d = frac - k[None, :]
        win = np.kaiser(2 * self.half + 1, 8.6)
        w = np.interp(d, np.arange(-self.half, self.half + 1), win, left=0.0, right=0.0)
        taps = 2 * fc * np.sinc(2 * fc * d) * w
        self.taps = taps / taps.sum(axis=1, keepdims=True)  # unity DC gain for every phase
        self._k = k
        self._taps_rev = np.ascontiguousarray(self.taps[0][::-1])
        self._buf = np.zeros(0, np.float64)
        self._buf_start = 0  # absolute input index of _buf[0]
        self._n_in = 0
        self._m = 0  # next output index

    def _emit(self, m_end: int) -> np.ndarray:
        if m_end <= self._m:
            return np.zeros(0, np.float32)
        if self.up == 1:
            y = self._emit_decimate(m_end)
        else:
            y = self._emit_polyphase(m_end)
        self._m = m_end
        # Drop input no future output can reach.
        keep_from = (self._m * self.down) // self.up - self.half + 1
        drop = min(max(0, keep_from - self._buf_start), self._buf.size)
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return y.astype(np.float32)

    def _emit_decimate(self, m_end: int) -> np.ndarray:
        # Integer decimation (48 kHz -> 16 kHz): one phase, so each output is the same
        # filter over a window that steps by `down`; a C convolution over the span is
        # ~25x cheaper than gathering windows (the streaming hot path, per session).
        first = self._m * self.down + int(self._k[0]) - self._buf_start
        last = (m_end - 1) * self.down + int(self._k[-1]) - self._buf_start
        seg = self._window(first, last + 1)
        return np.convolve(seg, self._taps_rev, "valid")[::self.down]

    def _emit_polyphase(self, m_end: int) -> np.ndarray:
        m = np.arange(self._m, m_end, dtype=np.int64)
        pos = m * self.down
        base, phase = pos // self.up, pos % self.up
        idx = base[:, None] + self._k[None, :] - self._buf_start
        valid = (idx >= 0) & (idx < self._buf.size)  # outside = before stream start / flushed end: zeros
        x = np.where(valid, self._buf[np.clip(idx, 0, max(self._buf.size - 1, 0))] if self._buf.size else 0.0, 0.0)
        return (x * self.taps[phase]).sum(axis=1)

    def _window(self, lo: int, hi: int) -> np.ndarray:
        """_buf[lo:hi] with zeros outside it (before the stream start, after a flushed end)."""
        if lo >= 0 and hi <= self._buf.size:
            return self._buf[lo:hi]
        out = np.zeros(hi - lo, np.float64)
        a, b = max(lo, 0), min(hi, self._buf.size)
        if b > a:
            out[a - lo:b - lo] = self._buf[a:b]
        return out

    def push(self, x: np.ndarray) -> np.ndarray:
        """Append input samples; return the output samples that became computable."""
        x = np.asarray(x, np.float64).reshape(-1)
        if self.identity:
            self._n_in += x.size
            return x.astype(np.float32)
        self._buf = np.concatenate([self._buf, x])
        self._n_in += x.size
        # Output m needs inputs up to base + half, i.e. base + half < n_in.
        last_base = self._n_in - 1 - self.half
        m_end = 0 if last_base < 0 else (last_base * self.up) // self.down + 1
        return self._emit(m_end)

    def flush(self) -> np.ndarray:
        """The remaining outputs up to the end of the input (zero padding after it)."""
        if self.identity:
            return np.zeros(0, np.float32)
        m_end = -(-self._n_in * self.up // self.down)  # ceil: outputs with position < n_in
        return self._emit(m_end)


def resample(x: np.ndarray, rate_in: int, rate_out: int = TARGET_RATE) -> np.ndarray:
    """Offline resampling with the same filter as the stream (one push + flush)."""
    r = StreamResampler(rate_in, rate_out)
    return np.concatenate([r.push(x), r.flush()])
