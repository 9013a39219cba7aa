"""An asyncio event loop on virtual time, for tests of real-time code paths that have no real I/O.

The loop's clock only moves when every task is waiting: a select that would block for t seconds
returns at once and the clock jumps t ahead. `asyncio.sleep`, `wait_for` timeouts and
`loop.call_later` all run on it, so pacing code (senders waiting for deadlines, grace periods) gives
the same result on an idle machine and on a loaded one, and a test of a 10-minute stream takes
milliseconds. Use it with `LoopClock` as the engine's clock so that both read the same time.
"""
from __future__ import annotations

import asyncio
import selectors


class _InstantSelector(selectors.DefaultSelector):
    """Polls without blocking and tells the loop how long it would have waited."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped = 0.0

    def select(self, timeout=None):
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self.skipped += timeout
        elif not ready and timeout is None:
            # Nothing scheduled and nothing ready: the loop would sleep forever (a deadlock in the test).
            raise RuntimeError("virtual-time loop: every task waits and no timer is set")
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 1000.0) -> None:
        self._vt_selector = _InstantSelector()
        super().__init__(self._vt_selector)
        self._start = start

    def time(self) -> float:
        return self._start + self._vt_selector.skipped


class LoopClock:
    """The engine's Clock protocol read off the running loop (its virtual time in these tests)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        return self._loop.time()


def run(main_factory, start: float = 1000.0):
    """Run `main_factory(loop)` (a coroutine function taking the loop) to completion on virtual time."""
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(main_factory(loop))
    finally:
        loop.close()
