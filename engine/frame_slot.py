"""The newest-frame slot between the render loop and the video sender.

The render loop puts each rendered frame here under its timeline index; the
video track takes, at each of its ticks, the newest frame not newer than the
tick (engine/scheduler.py says which frame is due when). Sans-I/O, like the
scheduler: no clock, no event loop.
"""
from __future__ import annotations

from collections import deque
from typing import Any


class FrameSlot:
    """The newest rendered frames (a few), so the sender takes the right one.

    Bounded: older frames fall out. `take(k)` returns the newest frame whose
    index is <= k: a frame rendered ahead is never shown early, and when
    rendering is late the previous frame is repeated (counted).
    """

    def __init__(self, capacity: int = 3) -> None:
        self._frames: deque[tuple[int, Any]] = deque(maxlen=capacity)
        self.repeats = 0
        self.sent = 0
        self.lag_frames: deque[int] = deque(maxlen=100)  # sent index - shown index, for the A/V offset

    def put(self, k: int, frame: Any) -> bool:
        """Keep frame k unless a newer one is already here (late renders lose)."""
        if self._frames and self._frames[-1][0] >= k:
            return False
        self._frames.append((k, frame))
        return True

    def take(self, k: int) -> tuple[int, Any] | None:
        best = None
        for item in self._frames:
            if item[0] <= k:
                best = item
        if best is None:
            return None
        self.sent += 1
        if best[0] < k:
            self.repeats += 1
        self.lag_frames.append(k - best[0])
        return best

    def newest_index(self) -> int | None:
        return self._frames[-1][0] if self._frames else None

    def clear(self) -> None:
        """Drop the frames held (the stream has ended); the counts stay."""
        self._frames.clear()
