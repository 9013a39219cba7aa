"""Audio marks for receiver-side A/V measurements: the audio twin of the frame id in the pixels.

In bench mode (`runner.mark_audio`), the outbound voice gets a short chirp
mixed in starting exactly at the timeline sample where video frame k begins,
for every k that is a multiple of `every` (default 25: one mark a second at
25 fps). A receiver that finds when each chirp started playing and when the
frame with id k was displayed has the A/V offset of what it presents.

The marker is a 10 ms linear chirp, 700 Hz -> 3.5 kHz, with 1 ms raised-cosine
ramps: inside the band every Opus mode codes (SILK's 8 kHz included), and
its 2.8 kHz bandwidth makes the matched filter's envelope peak about 0.4 ms
wide, so its onset is found to a fraction of a millisecond even after Opus
and with speech under it. The detector is a normalised matched filter (the
envelope of the correlation with the chirp and its quadrature twin, divided
by the energies), so it does not care about the chirp's phase after coding
or the level it is played at.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE = 48_000
DURATION_S = 0.010
F0, F1 = 700.0, 3500.0
RAMP_S = 0.001
LEVEL = 0.45  # peak amplitude: well above speech in its band, room left before clipping
THRESHOLD = 0.6  # normalised envelope; a clean mark scores > 0.9, speech alone < 0.35


def _chirp(rate: int, quadrature: bool) -> np.ndarray:
    n = round(DURATION_S * rate)
    t = np.arange(n) / rate
    phase = 2 * np.pi * (F0 * t + 0.5 * (F1 - F0) / DURATION_S * t * t)
    wave = np.sin(phase) if quadrature else np.cos(phase)
    ramp = round(RAMP_S * rate)
    env = np.ones(n)
    env[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    env[n - ramp:] = env[:ramp][::-1]
    return (LEVEL * env * wave).astype(np.float32)


def marker(rate: int = RATE) -> np.ndarray:
    """The mark's waveform (float32, starts at its first sample)."""
    return _chirp(rate, quadrature=False)


@dataclass(frozen=True)
class MarkPlan:
    """Where the marks sit on the timeline: mark m at the first sample of video frame m * every.

    `late` (samples) places the marks of odd m that much later: a test's known error, so that the
    instrument can be checked against it within one run (even marks are the reference).
    """

    samples_per_frame: int
    every: int = 25
    late: int = 0

    def __post_init__(self) -> None:
        if self.samples_per_frame <= 0 or self.every <= 0 or self.late < 0:
            raise ValueError("MarkPlan: samples_per_frame and every must be positive, late >= 0")

    @property
    def period(self) -> int:
        return self.every * self.samples_per_frame

    def frame(self, m: int) -> int:
        """The video frame whose first sample mark m is meant to start at."""
        return m * self.every

    def position(self, m: int) -> int:
        """The timeline sample where mark m actually starts."""
        return self.frame(m) * self.samples_per_frame + (self.late if m % 2 else 0)

    def mix(self, pcm: np.ndarray, start: int, rate: int = RATE) -> np.ndarray:
        """pcm (float, timeline samples [start, start + len)) with the overlapping marks added (a copy)."""
        out = np.array(pcm, np.float32, copy=True).reshape(-1)
        mk = marker(rate)
        n, L = len(out), len(mk)
        end = start + n
        # marks that may overlap [start, end): m from the one starting before start - L up
        m = max((start - L - self.late) // self.period, 0)
        while (p := self.position(m)) < end:
            lo, hi = max(p, start), min(p + L, end)
            if lo < hi:
                out[lo - start:hi - start] += mk[lo - p:hi - p]
            m += 1
        return out


def detect(signal: np.ndarray, rate: int = RATE, threshold: float = THRESHOLD) -> list[tuple[float, float]]:
    """Onsets of marks in a mono signal: [(sample index of the chirp's first sample, score 0..1)].

    Sub-sample precision from a parabola through the envelope peak; peaks closer than two mark
    lengths to a stronger one are the same mark.
    """
    from scipy.signal import fftconvolve

    x = np.asarray(signal, np.float64).reshape(-1)
    i_t, q_t = _chirp(rate, False).astype(np.float64), _chirp(rate, True).astype(np.float64)
    L = len(i_t)
    if len(x) < L:
        return []
    ci = fftconvolve(x, i_t[::-1], mode="valid")
    cq = fftconvolve(x, q_t[::-1], mode="valid")
    env = np.sqrt(ci * ci + cq * cq)
    e2 = np.concatenate([[0.0], np.cumsum(x * x)])
    local = np.sqrt(np.maximum(e2[L:] - e2[:-L], 1e-12))
    norm = np.sqrt(0.5 * (np.dot(i_t, i_t) + np.dot(q_t, q_t)))
    score = env / (local * norm)
    cand = np.flatnonzero(score > threshold)
    out: list[tuple[float, float]] = []
    taken_until = -1
    for i in cand:
        if i <= taken_until:
            continue
        lo, hi = i, min(i + 2 * L, len(env))
        j = lo + int(np.argmax(env[lo:hi]))  # the strongest peak of this group
        taken_until = j + 2 * L
        frac = 0.0
        if 0 < j < len(env) - 1:
            a, b, c = env[j - 1], env[j], env[j + 1]
            den = a - 2 * b + c
            if den < 0:
                frac = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
        out.append((j + frac, float(min(score[j], 1.0))))
    return out
