"""The load an emolive avatar worker reports to LiveKit, so that job dispatch spreads avatars over machines.

LiveKit Agents' dispatch sends a job to a worker whose reported load (0..1) is under `load_threshold`
(0.75 in production) and stops sending once it is over. Its default load is the machine's CPU use,
averaged over a few seconds: an avatar's cost shows there only after its job has started rendering, so a
burst of jobs can all land on one machine before the CPU figure rises. `avatar_load(max_avatars)` also
counts the jobs: a worker whose every job renders one avatar is full at `max_avatars` jobs (take it from
benchmarks/bench_livekit_avatar.py and the encoder's cost; docs/getting-started/scaling-out.md), whatever
the CPU says, and the CPU still counts when something else loads the machine.
"""
from __future__ import annotations

from collections.abc import Callable

import psutil


def avatar_load(max_avatars: int, *, cpu: bool = True) -> Callable[[object], float]:
    """A WorkerOptions.load_fnc: the larger of (running jobs / max_avatars) and, with `cpu`, the machine's
    CPU use (0..1) since the previous call."""
    if max_avatars < 1:
        raise ValueError(f"max_avatars must be at least 1, got {max_avatars}")
    psutil.cpu_percent(interval=None)  # the first call only starts the measurement

    def load(worker) -> float:
        jobs = len(getattr(worker, "active_jobs", ()))
        share = min(jobs / max_avatars, 1.0)
        if cpu:
            share = max(share, psutil.cpu_percent(interval=None) / 100.0)
        return share

    return load
