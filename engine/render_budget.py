"""The render budget from the renderer's measured speed (`render_budget_s: auto`).

The render budget is the scheduler's render lead (a frame starts rendering this
long before it is due) and a part of the voice delay (look-ahead + render
budget + jitter). A fixed 20 ms fits meshwarp on a CPU; a slower renderer (the
diffusion renderer without a GPU, a big avatar, a slow laptop) misses its
deadlines with it, and the face trails the voice. In auto mode a session times
a few warm renders of representative face states when it opens and takes a
high percentile of them, scaled, plus a margin.

Sans-I/O: the caller passes the draw function and the clock; nothing here
sleeps, spawns or logs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .types import FaceState

AUTO = "auto"


@dataclass(frozen=True)
class BudgetPolicy:
    # Of the timed renders: with ~12 of them p90 lies between the 2nd and 3rd slowest, so one
    # outlier (a preemption, a GC pause) does not decide the budget.
    quantile: float = 90.0
    # In the stream a render shares the cores with the other sessions, the encoders and the event
    # loop: on the 2-core machine meshwarp's ~3 ms warm render became ~15 ms p99 (docs/design/performance.md).
    scale: float = 2.0
    # Face state (emotion + idle life) on the session worker and the hand-overs loop -> worker -> render pool.
    margin_s: float = 0.010
    min_s: float = 0.010
    max_s: float = 1.0
    max_timed: int = 12
    min_timed: int = 3
    # The probe delays the session's first frame: stop timing after this (keeping min_timed), counted
    # after the warm-up renders.
    time_cap_s: float = 0.2

    def __post_init__(self) -> None:
        if not (0 < self.quantile <= 100 and self.scale >= 1 and self.margin_s >= 0 and 0 < self.min_s <= self.max_s
                and 1 <= self.min_timed <= self.max_timed and self.time_cap_s > 0):
            raise ValueError("bad render budget policy")


@dataclass(frozen=True)
class RenderBudget:
    """The budget a session runs with, and how it was found."""

    budget_s: float
    mode: str  # "auto" (measured at open) or "fixed" (the configured number)
    p50_s: float | None = None  # of the timed warm renders (auto)
    p95_s: float | None = None
    n: int = 0
    warning: str | None = None  # the renderer cannot keep up: what will happen

    def as_stats(self) -> dict[str, Any]:
        ms = (lambda v: None if v is None else round(1000.0 * v, 2))
        return {"mode": self.mode, "budget_ms": ms(self.budget_s), "probe_p50_ms": ms(self.p50_s),
                "probe_p95_ms": ms(self.p95_s), "probe_n": self.n}


def probe_states() -> list[FaceState]:
    """What a session shows: a neutral face, speech (jaw and lips open), an emotion with a head turn."""
    neutral = FaceState.neutral()
    speaking = FaceState.from_dict({"jawOpen": 0.55, "mouthFunnel": 0.2, "mouthLowerDownLeft": 0.3,
                                    "mouthLowerDownRight": 0.3, "headPitch": 2.0})
    emotional = FaceState.from_dict({"mouthSmileLeft": 0.8, "mouthSmileRight": 0.8, "cheekSquintLeft": 0.5,
                                     "cheekSquintRight": 0.5, "browInnerUp": 0.4, "jawOpen": 0.25,
                                     "headYaw": 10.0, "headRoll": -4.0, "gazeYaw": 5.0})
    return [neutral, speaking, emotional]


def _varied(state: FaceState, i: int) -> FaceState:
    """The state a little changed per round, so that no renderer-side cache answers a repeat."""
    return state.replace(jawOpen=min(1.0, state["jawOpen"] + 0.02 * i), t=0.04 * i)


def time_renders(draw: Callable[[FaceState], Any], now: Callable[[], float],
                 policy: BudgetPolicy = BudgetPolicy()) -> tuple[Any, list[float]]:
    """Draw each probe state once to warm up (untimed for the budget), then time renders cycling
    through them until max_timed or the time cap. Returns (the first, neutral, drawing; the durations)."""
    states = probe_states()
    first = None
    for i, s in enumerate(states):
        out = draw(s)
        if i == 0:
            first = out
    t_start = now()  # a cold first render (a kernel compiling, a model loading) must not use up the cap
    times: list[float] = []
    i = 0
    while len(times) < policy.max_timed and (len(times) < policy.min_timed or now() - t_start < policy.time_cap_s):
        state = _varied(states[i % len(states)], 1 + i // len(states))
        t0 = now()
        draw(state)
        times.append(now() - t0)
        i += 1
    return first, times


def choose_budget(times: list[float], fps: int, policy: BudgetPolicy = BudgetPolicy()) -> RenderBudget:
    """The budget for renders that took `times` seconds: scale x the chosen percentile + the margin,
    clamped to [min_s, max_s]; a warning when the renderer cannot keep the frame rate or the budget."""
    if not times:
        raise ValueError("no renders were timed")
    arr = np.asarray(times, np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("render times must be finite and non-negative")
    q = float(np.percentile(arr, policy.quantile))
    p50, p95 = float(np.percentile(arr, 50)), float(np.percentile(arr, 95))
    wanted = policy.scale * q + policy.margin_s
    budget = min(max(wanted, policy.min_s), policy.max_s)
    period = 1.0 / fps
    warning = None
    if p50 > period:
        # One render at a time: the renderer draws 1/p50 frames per second, the others are skipped.
        rate = 1.0 / p50
        warning = (f"the renderer takes {1000 * p50:.0f} ms per frame (p50 of {len(times)}), more than the "
                   f"{1000 * period:.0f} ms frame interval at {fps} fps: about {100 * (1 - period / p50):.0f} % "
                   f"of the frames will be skipped ({rate:.1f} of {fps} fps rendered)")
    if wanted > policy.max_s:
        over = (f"a render budget of {wanted:.2f} s would be needed (p{policy.quantile:g} {1000 * q:.0f} ms); "
                f"capped at {policy.max_s:g} s: frames slower than that will be late and skipped")
        warning = over if warning is None else f"{warning}; {over}"
    return RenderBudget(budget, AUTO, p50, p95, len(times), warning)


def fixed_budget(seconds: float) -> RenderBudget:
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a fixed render budget must be a positive number of seconds, got {seconds!r}")
    return RenderBudget(float(seconds), "fixed")
