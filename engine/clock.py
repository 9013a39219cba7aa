"""Monotonic clocks, injectable so that timing logic is testable without sleeping.

Only pacing uses a clock: stream timestamps come from audio sample positions
(see engine.scheduler), never from the wall clock.
"""
from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale with an arbitrary origin."""
        ...


class MonotonicClock:
    """The real clock: time.monotonic, immune to wall-clock jumps (NTP, DST)."""

    def now(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, start: float = 1000.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        self._t += seconds

    def set(self, t: float) -> None:
        if t < self._t:
            raise ValueError("a monotonic clock cannot go back")
        self._t = float(t)
