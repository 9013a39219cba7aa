"""The process's overload policy on the loop (engine/overload.py): counts, steps, admission, load report.

Once a second it counts, for every session, the frames due at its rate since the last tick and those of
them that did not leave with a new render, hands the sums to the governor, and gives each session the frame share
the governor chose. It also measures the process's CPU (all threads) over
the window, which the front (streaming/front.py) places new sessions by.
"""
from __future__ import annotations

import asyncio
import logging
import time
from fractions import Fraction
from typing import Any, Callable

from engine.overload import Governor, OverloadPolicy, Window

from .config import ServerConfig

log = logging.getLogger("emolive.server")

WINDOW_S = 1.0


def policy_for(config: ServerConfig) -> OverloadPolicy:
    return OverloadPolicy(enabled=config.overload_policy == "frame_rate", fps=config.fps,
                          min_fps=config.overload_min_fps)


class LoadGovernor:
    def __init__(self, config: ServerConfig, sessions: dict, clock: Callable[[], float] = time.monotonic,
                 cpu: Callable[[], float] = time.process_time) -> None:
        self.governor = Governor(policy_for(config))
        self._sessions = sessions  # session id -> SessionRunner (the app's)
        self._clock, self._cpu = clock, cpu
        self._seen: dict[str, tuple[int, int]] = {}  # session id -> (frames due, frames missed) at the last tick
        self._t, self._c = clock(), cpu()
        self.cpu = 0.0  # the process's CPU over the last window, in cores
        self._task: asyncio.Task | None = None

    @property
    def share(self) -> Fraction:
        return self.governor.share

    def refuses_new(self) -> bool:
        return self.governor.refuses_new()

    def tick(self) -> None:
        now, cpu = self._clock(), self._cpu()
        seconds = max(now - self._t, 1e-6)
        self.cpu = max(cpu - self._c, 0.0) / seconds
        self._t, self._c = now, cpu
        planned = missed = 0
        seen = {}
        for sid, runner in list(self._sessions.items()):
            c = runner.counters
            # Frames due at the session's rate since the last tick, and those that did not leave with a new
            # render: a repeat or a blank (frames_missed), or never sent by a sender behind the clock
            # (frames_unsent). A sender that does not run yet (ICE still connecting) counts nothing.
            now_counts = (c["frames_sent"] + c["frames_unsent"], c["frames_missed"] + c["frames_unsent"])
            if sid in self._seen:  # a session counts from its second window: its start (the blank frames before
                p0, m0 = self._seen[sid]  # its first render, its encoder's first keyframe) is not a load
                planned += now_counts[0] - p0
                missed += now_counts[1] - m0
            seen[sid] = now_counts
        self._seen = seen
        change = self.governor.observe(Window(seconds, planned, missed, len(self._sessions)))
        if change is not None:
            log.warning("video at %.1f fps for every session of this process (%d): %s", change.fps, len(seen),
                        change.reason)
            for runner in list(self._sessions.values()):
                runner.set_frame_share(change.share, change.reason)

    def report(self) -> dict[str, Any]:
        """For /health and the front: the level, its frame rate, the CPU and the last window's misses."""
        g = self.governor
        last = g.last
        return {"level": g.level, "fps": round(g.fps, 2), "cpu": round(self.cpu, 3),
                "missed": round(last.miss_share, 4) if last is not None else 0.0, "refusing": g.refuses_new()}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="load-governor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(WINDOW_S)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the policy must not end the server; the next window retries
                log.exception("the load governor failed")
