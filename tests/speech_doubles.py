"""A test double of the audio-to-expression model for the streaming tests.

One frame per 40 ms of audio at 25 fps, jawOpen from the chunk's loudness,
40 ms look-ahead: frame k (time k/25) shows audio [k, k+1) x 40 ms and is final
once that audio is in, 40 ms after the frame's time (the scheduler counts the
look-ahead from the frame's time, as the real model's 72.5 ms). Subclasses
choose how loudness is measured.
"""
from __future__ import annotations

import numpy as np

from engine.types import FaceState, SpeechFrame


class LoudnessModel:
    """jawOpen = mean absolute amplitude of the chunk; speaking above 0.1."""

    latency_s = 0.04

    def __init__(self):
        self.buf = np.zeros(0, np.float32)
        self.k = 0

    def measure(self, chunk: np.ndarray) -> tuple[float, float]:
        amp = float(np.abs(chunk).mean())
        return amp, float(amp > 0.1)

    def push(self, pcm, sample_rate):
        self.buf = np.concatenate([self.buf, pcm])
        spf = sample_rate // 25
        out = []
        while len(self.buf) >= spf:
            jaw, vad = self.measure(self.buf[:spf])
            out.append(SpeechFrame(FaceState.neutral(self.k / 25).replace(jawOpen=jaw), vad=vad))
            self.buf = self.buf[spf:]
            self.k += 1
        return out


class RmsLoudnessModel(LoudnessModel):
    """jawOpen = 8 x RMS (clipped to 1), speaking above an RMS of 0.01: suits real speech levels."""

    def measure(self, chunk: np.ndarray) -> tuple[float, float]:
        rms = float(np.sqrt(np.mean(chunk ** 2)))
        return min(rms * 8.0, 1.0), float(rms > 0.01)
