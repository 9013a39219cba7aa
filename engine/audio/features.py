"""Streaming log-mel features at 100 frames/s over 16 kHz audio.

Frame n is centred on sample n * HOP (a WIN-sample Hann window, zeros before
the stream start), so it can be computed once samples up to n*HOP + WIN/2 have
arrived: 12.5 ms of look-ahead. Chunking never changes a frame.
"""
from __future__ import annotations

import numpy as np

SR = 16000
HOP = 160  # 10 ms
WIN = 400  # 25 ms
N_FFT = 512
N_MELS = 40
FMIN, FMAX = 60.0, 7600.0
FRAME_RATE = SR / HOP
LOG_FLOOR = 1e-8  # ~ -80 dB power: keeps log finite in digital silence


def _mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _imel(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SR, warp: float = 1.0) -> np.ndarray:
    """(n_fft//2+1, n_mels) triangular filters, area-normalised (Slaney style).

    warp > 1 reads each band from warp times lower frequencies, as if the vocal
    tract were shorter (training-time vocal-tract-length perturbation only).
    """
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    edges = np.minimum(_imel(np.linspace(_mel(FMIN), _mel(FMAX), n_mels + 2)) / warp, sr / 2 - 1.0)
    fb = np.zeros((freqs.size, n_mels))
    for i in range(n_mels):
        lo, c, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (freqs - lo) / (c - lo)
        down = (hi - freqs) / (hi - c)
        fb[:, i] = np.maximum(0.0, np.minimum(up, down)) * (2.0 / (hi - lo))
    return fb


_FB = mel_filterbank()
_WINDOW = np.hanning(WIN + 2)[1:-1]  # periodic-free Hann without zero end points


def frames_to_logmel(frames: np.ndarray, fb: np.ndarray | None = None) -> np.ndarray:
    """(n, WIN) sample windows -> (n, N_MELS) float32 log-mel power."""
    spec = np.fft.rfft(frames * _WINDOW, n=N_FFT, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    return np.log(power @ (_FB if fb is None else fb) + LOG_FLOOR).astype(np.float32)


class LogMelStream:
    """Push 16 kHz mono float samples, get the log-mel frames that became computable."""

    def __init__(self, fb: np.ndarray | None = None):
        self._fb = fb
        self._buf = np.zeros(WIN // 2, np.float64)  # zeros before the stream start
        self._buf_start = -(WIN // 2)  # absolute sample index of _buf[0]
        self._n = 0  # samples received
        self._next = 0  # next frame index

    @property
    def samples_in(self) -> int:
        return self._n

    @property
    def frames_out(self) -> int:
        return self._next

    def _emit(self, end: int) -> np.ndarray:
        if end <= self._next:
            return np.zeros((0, N_MELS), np.float32)
        starts = np.arange(self._next, end) * HOP - WIN // 2 - self._buf_start
        idx = starts[:, None] + np.arange(WIN)[None, :]
        out = frames_to_logmel(self._buf[idx], self._fb)
        self._next = end
        drop = self._next * HOP - WIN // 2 - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return out

    def push(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64).reshape(-1)
        self._buf = np.concatenate([self._buf, x])
        self._n += x.size
        # frame n complete when n*HOP + WIN/2 <= n_samples
        end = (self._n - WIN // 2) // HOP + 1 if self._n >= WIN // 2 else 0
        return self._emit(end)

    def pad_and_flush(self, extra_frames: int = 0) -> np.ndarray:
        """Zero-pad the end and emit every frame centred inside the audio plus `extra_frames` more."""
        end = -(-self._n // HOP) + extra_frames  # frames n with n*HOP < n_samples, then extra
        need = (end - 1) * HOP + WIN // 2 - self._n
        if need > 0:
            self._buf = np.concatenate([self._buf, np.zeros(need)])
        return self._emit(end)


def logmel(x: np.ndarray, fb: np.ndarray | None = None) -> np.ndarray:
    """Offline features of a whole 16 kHz signal (same frames as the stream, no extra)."""
    s = LogMelStream(fb)
    return np.concatenate([s.push(x), s.pad_and_flush()])
