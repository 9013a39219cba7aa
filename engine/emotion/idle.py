"""Idle and listening life: blinks, slight head motion, breathing and gaze shifts.

Everything is a function of stream time and a seed, so a stream replays
identically and frames can be produced in any order. It runs while the
presenter is silent and while speaking (`vad` only scales it), and leaves the
mouth alone so it never competes with lip-sync.

* Blinks: intervals from a gamma distribution (shape 4, so neither metronomic
  nor clustered; mean 60/rate s, never below 1 s); each blink lasts 100-200 ms,
  closing in 40 % of it and reopening slower, as real lids do.
* Head: a sum of a few slow sinusoids per axis (0.05-0.35 Hz, random phases), a
  smooth never-repeating drift of about a degree, plus breathing (a 0.2-0.3 Hz
  pitch sway of about 0.4 degrees).
* Gaze: saccades every 1.5-5 s to a nearby point (often back to the camera),
  each a 60 ms smoothstep; smaller while speaking, when people hold the gaze.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import COEFF_INDEX, FaceState

_BL, _BR = COEFF_INDEX["eyeBlinkLeft"], COEFF_INDEX["eyeBlinkRight"]


@dataclass(frozen=True)
class IdleConfig:
    blinks_per_min: float = 15.0
    blink_ms: tuple[float, float] = (100.0, 200.0)
    head_deg: float = 1.2  # amplitude of the head drift per axis (roll 60 %)
    breath_deg: float = 0.4
    gaze_deg: tuple[float, float] = (7.0, 4.0)  # max yaw, pitch of a gaze shift
    gaze_interval_s: tuple[float, float] = (1.5, 5.0)
    saccade_ms: float = 60.0


class _EventTrack:
    """A reproducible sequence of (start, duration, payload) events, generated lazily in time order."""

    def __init__(self, seed: int, draw):
        self._seed, self._draw = seed, draw
        self._reset()

    def _reset(self) -> None:
        self._rng = np.random.default_rng(self._seed)
        self.events: list[tuple[float, float, tuple]] = []
        self._next_t = 0.0
        self._first = 0.0  # events before this were dropped

    def upto(self, t: float, prune: bool = True) -> list[tuple[float, float, tuple]]:
        if t < self._first:
            self._reset()  # a seek back past what was kept: replay from the start
        while self._next_t <= t + 1.0:
            gap, dur, payload = self._draw(self._rng)
            self._next_t += gap
            self.events.append((self._next_t, dur, payload))
        # keep a little history for queries slightly in the past
        while prune and len(self.events) > 2 and self.events[1][0] < t - 10.0:
            self._first = self.events[0][0] + self.events[0][1]
            self.events.pop(0)
        return self.events


class IdleLife:
    def __init__(self, seed: int = 0, config: IdleConfig = IdleConfig()):
        self.config = c = config
        rng = np.random.default_rng([seed, 1])
        self._head_f = rng.uniform(0.05, 0.35, (3, 3))
        self._head_p = rng.uniform(0, 2 * np.pi, (3, 3))
        self._head_a = rng.uniform(0.5, 1.0, (3, 3))
        self._head_a /= self._head_a.sum(1, keepdims=True)
        self._breath_f = rng.uniform(0.2, 0.3)
        self._breath_p = rng.uniform(0, 2 * np.pi)
        mean_gap = 60.0 / max(c.blinks_per_min, 1e-3)
        shape = 4.0

        def blink(r):
            gap = max(1.0, r.gamma(shape, mean_gap / shape))
            return gap, r.uniform(*c.blink_ms) / 1000.0, ()

        def gaze(r):
            gap = r.uniform(*c.gaze_interval_s)
            home = r.random() < 0.4
            target = (0.0, 0.0) if home else (r.uniform(-1, 1) * c.gaze_deg[0], r.uniform(-1, 1) * c.gaze_deg[1])
            return gap, c.saccade_ms / 1000.0, target

        self._blinks = _EventTrack(int(np.random.default_rng([seed, 2]).integers(2**31)), blink)
        self._gazes = _EventTrack(int(np.random.default_rng([seed, 3]).integers(2**31)), gaze)

    # -- components -------------------------------------------------------------
    def blink(self, t: float) -> float:
        """Lid closure 0..1 at time t."""
        for t0, dur, _ in self._blinks.upto(t):
            if t0 > t:
                break
            u = (t - t0) / dur
            if u < 0.4:
                return float(np.sin(0.5 * np.pi * u / 0.4))
            if u < 1.0:
                return float(np.cos(0.5 * np.pi * (u - 0.4) / 0.6))
        return 0.0

    def blink_events(self, until: float) -> list[tuple[float, float]]:
        """(start, duration) of every blink starting before `until` (from t = 0)."""
        track = _EventTrack(self._blinks._seed, self._blinks._draw)
        return [(t0, d) for t0, d, _ in track.upto(until, prune=False) if t0 < until]

    def head(self, t: float, vad: float = 0.0) -> np.ndarray:
        c = self.config
        drift = (self._head_a * np.sin(2 * np.pi * self._head_f * t + self._head_p)).sum(1)
        drift *= c.head_deg * (1.0 + 0.3 * vad) * np.array([1.0, 1.0, 0.6])
        drift[0] += c.breath_deg * np.sin(2 * np.pi * self._breath_f * t + self._breath_p)
        return drift

    def gaze(self, t: float, vad: float = 0.0) -> np.ndarray:
        pos = np.zeros(2)
        last = np.zeros(2)  # where the previous saccade landed
        for t0, dur, target in self._gazes.upto(t):
            if t0 > t:
                break
            s = min(max((t - t0) / dur, 0.0), 1.0)
            pos = last + (np.asarray(target, float) - last) * (s * s * (3 - 2 * s))
            last = np.asarray(target, float)
        return pos * (1.0 - 0.5 * vad)

    # -- all together -----------------------------------------------------------
    def apply(self, state: FaceState, vad: float = 0.0) -> FaceState:
        """Add idle life at state.t; `vad` in [0, 1] is how much the presenter is speaking."""
        t = float(state.t)
        vad = float(np.clip(vad, 0.0, 1.0))
        coeffs = np.array(state.coeffs, np.float64)
        b = self.blink(t)
        coeffs[_BL] = max(coeffs[_BL], b)
        coeffs[_BR] = max(coeffs[_BR], b)
        return FaceState(coeffs=coeffs, head=np.asarray(state.head) + self.head(t, vad),
                         gaze=np.asarray(state.gaze) + self.gaze(t, vad), t=t)
