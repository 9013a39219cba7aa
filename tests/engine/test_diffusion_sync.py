"""A renderer slower than real time (the diffusion renderer on a CPU) keeps audio and video in sync.

Discrete-event run of the live engine's policy (streaming/runner.py) on a fake
clock: audio is written and played every 20 ms; the render loop asks the
scheduler which frame to draw next (it skips frames that can no longer be on
time) and each render takes RENDER_S; the sender takes, at each frame's
deadline, the newest rendered frame that is not early (engine.scheduler.FrameSlot).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.clock import FakeClock
from engine.frame_slot import FrameSlot
from engine.scheduler import AVScheduler, SchedulerConfig

CFG = SchedulerConfig(sample_rate=48_000, fps=25, frame_samples=960, min_latency_s=0.12, jitter_s=0.06,
                      max_backlog_s=0.3, resync_gap_s=1.0, render_lead_s=0.04)
TICK = 0.005


def simulate(render_s: float, seconds: float = 30.0):
    clock = FakeClock()
    s = AVScheduler(CFG, clock)
    s.start()
    slot = FrameSlot(capacity=3)
    spf = CFG.samples_per_video_frame
    k, busy_until, rendering, dropped = s.video_index_due() - 1, None, None, 0
    audio_pts, lags, shown_log = [], [], []
    next_audio, next_video = 0.0, 0
    for _ in range(int(seconds / TICK)):
        now = clock.now()
        if now >= next_audio - 1e-9:  # input arrives and audio plays in 20 ms frames
            s.write(np.full(960, 0.1, np.float32))
            audio_pts.append(s.pull_audio()[1])
            next_audio += 0.02
        if rendering is not None and now >= busy_until - 1e-9:
            if not slot.put(rendering, f"frame {rendering}"):
                dropped += 1
            rendering = None
        if rendering is None:
            nk, skipped = s.next_render_index(k)
            if now >= s.render_start_time(nk) - 1e-9:
                dropped += skipped
                k, rendering, busy_until = nk, nk, now + render_s
        if now >= s.video_deadline(next_video) - 1e-9:  # the sender's tick for frame next_video
            due = s.video_index_due()
            got = slot.take(due)
            if got is not None:
                assert got[0] <= due  # never shown early
                lags.append(due - got[0])
                shown_log.append((now, got[0]))
            next_video = due + 1
        clock.advance(TICK)
    return np.array(audio_pts), np.array(lags), dropped, shown_log


@pytest.mark.parametrize("render_s", [0.013, 0.13, 0.31])
def test_slow_renderer_drops_frames_and_keeps_av_sync(render_s):
    audio_pts, lags, dropped, shown = simulate(render_s)
    # Audio never waits for video: continuous 20 ms frames.
    assert np.all(np.diff(audio_pts) == 960)
    frame_s = 1.0 / CFG.fps
    # A frame lands at most one render time after its deadline and is shown until the next one lands
    # (one more render time): the face trails the voice by at most ~2 render times, whatever the speed.
    bound = math.ceil(2 * render_s / frame_s) + 2
    assert lags.max() <= bound, (lags.max(), bound)
    # No drift: the video lag behind the audio is as large at the end as in the first seconds.
    n = len(lags)
    assert abs(lags[-n // 4:].mean() - lags[n // 8: n // 4].mean()) < 1.0
    if render_s > frame_s:
        assert dropped > 0  # frames that could not be on time were skipped, not queued
        shown_idx = [k for _, k in shown]
        assert len(set(shown_idx)) < len(shown_idx)  # and the newest frame was repeated meanwhile
    else:
        assert dropped == 0 and lags.max() == 0
