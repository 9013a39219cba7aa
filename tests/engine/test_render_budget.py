"""render_budget_s: auto - the render lead follows the renderer's measured speed (simulated time, no sleeps)."""
from __future__ import annotations

import asyncio
import logging
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from pydantic import ValidationError

from engine.clock import FakeClock
from engine.frame_slot import FrameSlot
from engine.render_budget import BudgetPolicy, choose_budget, fixed_budget, probe_states, time_renders
from engine.scheduler import AVScheduler
from engine.session import Session, scheduler_config_for
from streaming.config import ServerConfig, load_config

POLICY = BudgetPolicy()
LOOKAHEAD = 0.04


# -- choosing the budget from render times -------------------------------------------------------

def test_the_budget_follows_the_render_time():
    for render_s in (0.005, 0.03, 0.12):
        b = choose_budget([render_s] * 12, fps=25)
        assert b.budget_s == pytest.approx(POLICY.scale * render_s + POLICY.margin_s)
        assert b.mode == "auto" and b.n == 12 and b.p50_s == pytest.approx(render_s)
    slower = choose_budget([0.05] * 12, 25).budget_s
    assert slower > choose_budget([0.03] * 12, 25).budget_s


def test_one_outlier_does_not_decide_the_budget():
    times = [0.010] * 11 + [0.400]  # one preemption among twelve renders
    assert choose_budget(times, 25).budget_s < 0.05


def test_the_budget_is_clamped_and_says_why():
    fast = choose_budget([0.0], 25)
    assert fast.budget_s == POLICY.min_s and fast.warning is None
    slow = choose_budget([0.6] * 5, 25)
    assert slow.budget_s == POLICY.max_s
    assert "1.21 s would be needed" in slow.warning and "capped at 1 s" in slow.warning


def test_a_renderer_slower_than_the_frame_rate_is_warned_about_with_the_share_skipped():
    b = choose_budget([0.1] * 8, 25)  # 100 ms per frame at 25 fps: 10 fps rendered, 60 % skipped
    assert "about 60 % of the frames will be skipped" in b.warning and "10.0 of 25 fps" in b.warning
    assert choose_budget([0.035] * 8, 25).warning is None  # slower than 20 ms, faster than 40 ms: no warning


def test_bad_times_are_refused():
    with pytest.raises(ValueError):
        choose_budget([], 25)
    with pytest.raises(ValueError):
        choose_budget([0.01, float("nan")], 25)
    with pytest.raises(ValueError):
        fixed_budget(-1)


# -- timing warm renders on an injected clock --------------------------------------------------------

class SimulatedRenderer:
    """Renders take a known simulated time on a FakeClock: the first one (cold) much longer."""

    def __init__(self, clock: FakeClock, render_s: float, cold_s: float = 1.0, size=(32, 48)) -> None:
        self.clock, self.render_s, self.cold_s = clock, render_s, cold_s
        self.size = size
        self.calls: list = []

    def render(self, state):
        self.clock.advance(self.cold_s if not self.calls else self.render_s)
        self.calls.append(state)
        return np.zeros((*self.size, 3), np.uint8)


def test_warm_renders_are_timed_after_the_warm_up_over_representative_states():
    clock = FakeClock()
    r = SimulatedRenderer(clock, 0.004)
    first, times = time_renders(r.render, clock.now)
    assert first.shape == (32, 48, 3)
    assert times == [pytest.approx(0.004)] * POLICY.max_timed  # the 1 s cold render is not among them
    n = len(probe_states())
    assert r.calls[0]["jawOpen"] == 0.0  # the first (neutral) drawing is the one returned: the blank frame
    assert max(s["jawOpen"] for s in r.calls) > 0.5 and max(s["mouthSmileLeft"] for s in r.calls) > 0.5
    # no state is drawn twice: each timed round varies the states a little
    assert len({s["jawOpen"] for s in r.calls[n:]}) > POLICY.max_timed // n


def test_a_slow_renderer_is_timed_only_a_few_times():
    clock = FakeClock()
    r = SimulatedRenderer(clock, 0.1)  # three 0.1 s renders are over the 0.2 s time cap
    _, times = time_renders(r.render, clock.now)
    assert len(times) == POLICY.min_timed


# -- the scheduler takes the measured budget before it starts -------------------------------------

def test_the_scheduler_is_reconfigured_before_start_only():
    clock = FakeClock()
    s = AVScheduler(scheduler_config_for(LOOKAHEAD, render_budget_s=0.02), clock)
    session = Session(s, lambda: None, emotion=None)
    bound = session._bound
    s.reconfigure(scheduler_config_for(LOOKAHEAD, render_budget_s=0.5, render_expected_s=0.2))
    assert s.config.render_lead_s == 0.5 and s.config.min_latency_s == pytest.approx(LOOKAHEAD + 0.5)
    assert session._bound > bound  # frames wait longer for their render time: the pending bound follows
    with pytest.raises(ValueError, match="fps"):
        s.reconfigure(scheduler_config_for(LOOKAHEAD, fps=30))
    assert s.render_start_time(10) == pytest.approx(s.video_deadline(10) - 0.5)  # (this starts the clock)
    with pytest.raises(RuntimeError, match="before it starts"):
        s.reconfigure(scheduler_config_for(LOOKAHEAD))


def test_a_late_renderer_skips_to_the_first_frame_it_can_still_finish():
    clock = FakeClock()
    s = AVScheduler(scheduler_config_for(LOOKAHEAD, render_budget_s=0.25, render_expected_s=0.1), clock)
    s.start()
    clock.advance(0.5)  # frame 12 is due now (0.48 s), 13 at 0.52 s
    k, skipped = s.next_render_index(5)
    assert k == 15 and skipped == 9  # 0.6 s: the first frame due at least 100 ms from now
    assert s.video_deadline(k) >= clock.now() + 0.1 > s.video_deadline(k - 1)
    # On time (the frame's start time not yet passed): nothing is skipped.
    assert s.next_render_index(k) == (k + 1, 0)
    # The render time seen lately in the stream overrides the measured one (0: the old rule, below).
    assert s.next_render_index(5, expected_s=0.2) == (18, 12)  # 0.72 s
    assert s.next_render_index(5, expected_s=0.0) == (13, 7)
    # Without a measured render time the old rule: the first frame not yet due.
    s0 = AVScheduler(scheduler_config_for(LOOKAHEAD, render_budget_s=0.25), clock)
    s0.start()
    clock.advance(0.5)
    assert s0.next_render_index(5) == (13, 7)


def simulate(render_s: float, budget, seconds: float = 20.0, tick: float = 0.002):
    """The runner's render policy on a fake clock: renders of render_s, one at a time; the sender takes
    the newest frame not newer than the one due at each deadline. Returns (late, skipped, mean lag)."""
    rb = budget if not isinstance(budget, float) else fixed_budget(budget)
    clock = FakeClock()
    s = AVScheduler(scheduler_config_for(LOOKAHEAD, render_budget_s=rb.budget_s,
                                         render_expected_s=rb.p50_s or 0.0), clock)
    s.start()
    slot = FrameSlot(capacity=3)
    k, rendering, done_at, late, skipped, lags, next_video = s.video_index_due() - 1, None, 0.0, 0, 0, [], 0
    for _ in range(int(seconds / tick)):
        now = clock.now()
        if rendering is not None and now >= done_at - 1e-9:
            late += done_at > s.video_deadline(rendering) + 1e-9
            slot.put(rendering, rendering)
            rendering = None
        if rendering is None:
            nk, sk = s.next_render_index(k)
            if now >= s.render_start_time(nk) - 1e-9:
                k, rendering, done_at, skipped = nk, nk, now + render_s, skipped + sk
        if now >= s.video_deadline(next_video) - 1e-9:
            got = slot.take(next_video)
            if got is not None:
                lags.append(next_video - got[0])
            next_video += 1
        clock.advance(tick)
    return late, skipped, float(np.mean(lags))


def _auto(render_s: float):
    clock = FakeClock()
    r = SimulatedRenderer(clock, render_s)
    return choose_budget(time_renders(r.render, clock.now)[1], 25)


def test_a_renderer_slower_than_the_fixed_budget_is_late_with_it_and_on_time_with_auto():
    render_s = 0.03  # slower than 20 ms, faster than the 40 ms frame interval
    late, skipped, lag = simulate(render_s, 0.02)
    assert late > 400 and lag > 0.9  # every frame misses its deadline by 10 ms: the face trails by a frame
    late, skipped, lag = simulate(render_s, _auto(render_s))
    assert late == 0 and skipped <= 1 and lag == 0.0  # (frame 0, due at the start, cannot be on time)


def test_a_renderer_slower_than_the_frame_rate_renders_the_frames_it_can_finish():
    render_s = 0.1
    late_fixed, _, lag_fixed = simulate(render_s, 0.02)
    late, skipped, lag = simulate(render_s, _auto(render_s))
    assert late == 0 and late_fixed > 100
    assert 0.55 < skipped / (skipped + 200) < 0.65  # ~60 % skipped as warned: 10 of 25 fps rendered
    assert lag < lag_fixed  # a shown frame is never later than its own time: only the repeats lag


# -- the session opens with the measured budget -----------------------------------------------------

def _runner(config: ServerConfig, render_s: float):
    from speech_doubles import RmsLoudnessModel
    from streaming.parts import EngineParts, default_emotion_factory
    from streaming.runner import SessionRunner

    clock = FakeClock()
    renderer = SimulatedRenderer(clock, render_s)
    parts = EngineParts(RmsLoudnessModel, default_emotion_factory, lambda avatar: renderer, LOOKAHEAD)
    pool = ThreadPoolExecutor(1)
    return SessionRunner("budget-session-000000", parts, config, pool, clock=clock), pool, renderer


def _open(config: ServerConfig, render_s: float):
    async def scenario():
        runner, pool, renderer = _runner(config, render_s)
        try:
            await runner.open()
            return runner, renderer
        finally:
            runner.worker.shutdown(wait=True)
            pool.shutdown()
    return asyncio.run(scenario())


def test_an_auto_session_opens_with_the_budget_of_its_renderer(caplog):
    runner, renderer = _open(ServerConfig(render_budget_s="auto"), 0.015)
    want = POLICY.scale * 0.015 + POLICY.margin_s
    cfg = runner.scheduler.config
    assert cfg.render_lead_s == pytest.approx(want) and cfg.min_latency_s == pytest.approx(LOOKAHEAD + want)
    assert cfg.render_expected_s == pytest.approx(0.015)
    assert runner.blank_frame is not None and runner.blank_frame.shape == (48, 48)  # I420 of 32x48
    st = runner.stats()
    assert st["render_budget_ms"] == pytest.approx(1000 * want, abs=0.01)
    assert st["render_budget"] == {"mode": "auto", "budget_ms": pytest.approx(1000 * want, abs=0.01),
                                   "probe_p50_ms": 15.0, "probe_p95_ms": 15.0, "probe_n": POLICY.max_timed}
    with caplog.at_level(logging.WARNING, logger="streaming.runner"):
        _open(ServerConfig(render_budget_s="auto"), 0.1)
    assert any("60 % of the frames will be skipped" in r.getMessage() for r in caplog.records)


def test_a_fixed_budget_is_kept_and_nothing_is_timed():
    runner, renderer = _open(ServerConfig(render_budget_s=0.05), 0.03)
    cfg = runner.scheduler.config
    assert cfg.render_lead_s == 0.05 and cfg.render_expected_s == 0.0
    assert len(renderer.calls) == 1  # only the blank frame
    st = runner.stats()
    assert st["render_budget"] == {"mode": "fixed", "budget_ms": 50.0, "probe_p50_ms": None, "probe_p95_ms": None,
                                   "probe_n": 0}


def test_metrics_carry_the_budget_and_its_probe():
    from streaming.app_common import COUNTERS, GOVERNOR, RECORDERS, SESSIONS
    from streaming.load_governor import LoadGovernor
    from streaming.metrics import metrics

    auto, _ = _open(ServerConfig(render_budget_s="auto"), 0.015)
    fixed, _ = _open(ServerConfig(), 0.03)
    sessions = {"a" * 8: auto, "f" * 8: fixed}
    app = {SESSIONS: sessions, COUNTERS: {}, RECORDERS: [], GOVERNOR: LoadGovernor(ServerConfig(), sessions)}
    text = asyncio.run(metrics(types.SimpleNamespace(app=app))).text
    assert 'emolive_session_render_budget_ms{session="ffffffff"} 20.0' in text
    assert 'emolive_session_render_budget_ms{session="aaaaaaaa"} 40.0' in text
    assert 'emolive_session_render_probe_ms{session="aaaaaaaa",quantile="0.95"} 15.0' in text
    assert 'emolive_session_render_probe_count{session="aaaaaaaa"} 12' in text
    assert 'render_probe_ms{session="ffffffff"' not in text
    assert 'emolive_session_frames_late{session="aaaaaaaa"} 0' in text  # rendered after their due time


# -- settings --------------------------------------------------------------------------------------

def test_config_accepts_auto_and_numbers(tmp_path):
    assert ServerConfig().render_budget_s == 0.02
    assert ServerConfig(render_budget_s=0.05).render_budget_s == 0.05
    assert ServerConfig(render_budget_s="0.05").render_budget_s == 0.05  # environment / command line
    y = tmp_path / "s.yaml"
    y.write_text("render_budget_s: auto\n")
    cfg = load_config(y)
    assert cfg.render_budget_s == "auto"
    assert ServerConfig.model_validate_json(cfg.model_dump_json()).render_budget_s == "auto"  # to worker processes


@pytest.mark.parametrize("bad", [-1, 0, 1.5, "fast", "", None, True, float("nan")])
def test_bad_budgets_are_a_clear_config_error(bad):
    with pytest.raises(ValidationError, match=r"render_budget_s must be 'auto' or seconds in \(0, 1\]"):
        ServerConfig(render_budget_s=bad)
