"""The A/V scheduler on a fake clock: latency, gaps, drops, pts from audio samples, drift."""
import numpy as np
import pytest

from engine.clock import FakeClock
from engine.scheduler import AVScheduler, FrameSlot, SchedulerConfig

CFG = SchedulerConfig(sample_rate=48_000, fps=25, frame_samples=960, min_latency_s=0.1, jitter_s=0.04,
                      max_backlog_s=0.2, resync_gap_s=1.0, render_lead_s=0.04)


def make():
    clock = FakeClock()
    s = AVScheduler(CFG, clock)
    s.start()
    return s, clock


def ramp(start, n):
    return (np.arange(start, start + n) % 1000 / 1000.0).astype(np.float32)


def test_output_is_input_delayed_by_exactly_the_latency():
    s, clock = make()
    out = []
    fed = 0
    for i in range(100):
        p = s.write(ramp(fed, 960))
        fed += 960
        if i == 0:
            assert p.restart and p.position % CFG.samples_per_video_frame == 0
            delay = p.position - s.read_pos
            assert delay >= round(CFG.latency_s * 48_000)
        frame, pts = s.pull_audio()
        assert pts == i * 960
        out.append(frame)
    out = np.concatenate(out)
    assert np.all(out[:delay] == 0)
    np.testing.assert_array_equal(out[delay:], ramp(0, len(out) - delay))


def test_audio_never_waits_for_input_and_plays_silence():
    s, _ = make()
    for i in range(10):
        frame, pts = s.pull_audio()
        assert pts == i * 960 and not frame.any()
    assert s.stats["silent_audio_frames"] == 10


def test_short_gap_inserts_silence_and_tells_the_model():
    s, _ = make()
    s.write(np.ones(960, np.float32))
    for _ in range(20):  # output runs 400 ms past the written input
        s.pull_audio()
    p = s.write(np.ones(960, np.float32))
    assert p.accepted and not p.restart and p.gap > 0
    assert p.position - s.read_pos == round(CFG.latency_s * 48_000)


def test_long_gap_restarts_the_model_on_a_frame_boundary():
    s, _ = make()
    s.write(np.ones(960, np.float32))
    for _ in range(100):  # 2 s of silence out
        s.pull_audio()
    p = s.write(np.ones(960, np.float32))
    assert p.restart and p.gap == 0 and p.position % CFG.samples_per_video_frame == 0


def test_input_beyond_the_backlog_is_dropped():
    s, _ = make()
    accepted = [s.write(np.ones(960, np.float32)).accepted for _ in range(40)]
    assert not all(accepted)
    assert s.buffered_latency_s <= CFG.latency_s + CFG.max_backlog_s + 960 / 48_000
    assert s.stats["input_dropped_samples"] > 0


def test_video_pts_and_deadlines_derive_from_audio_positions():
    s, clock = make()
    assert s.video_pts(25) == 90_000 and s.video_position(25) == 48_000
    # The audio frame at sample 48000 and video frame 25 fall due together.
    for _ in range(50):
        s.pull_audio()
    assert s.audio_deadline() == pytest.approx(s.video_deadline(25))
    clock.advance(1.0)
    assert s.video_index_due() == 25


def test_render_skips_frames_that_can_no_longer_be_on_time():
    s, clock = make()
    assert s.next_render_index(-1) == (0, 0)
    clock.advance(0.5)  # the renderer stalled for half a second
    k, skipped = s.next_render_index(0)
    assert k == 13 and skipped == 12
    assert s.video_deadline(k) > clock.now()


def test_no_drift_after_ten_minutes():
    s, clock = make()
    s.write(np.ones(960, np.float32))
    lat0 = None
    for i in range(25 * 60 * 10 * 2):  # 10 min of 20 ms frames
        clock.advance(0.02)
        s.write(np.ones(960, np.float32))
        s.pull_audio()
        if i == 500:
            lat0 = s.buffered_latency_s
    assert s.buffered_latency_s == lat0
    assert s.audio_deadline() - s.video_deadline(s.read_pos // CFG.samples_per_video_frame) == 0
    assert s.video_index_due() == s.read_pos // CFG.samples_per_video_frame


def test_frame_slot_keeps_newest_repeats_when_late_and_never_shows_early():
    slot = FrameSlot(capacity=2)
    assert slot.take(0) is None
    slot.put(0, "a")
    slot.put(1, "b")
    assert not slot.put(1, "late")
    assert slot.take(0) == (0, "a")
    assert slot.take(3) == (1, "b") and slot.repeats == 1
    slot.put(2, "c")
    slot.put(3, "d")  # capacity 2: frame 1 falls out
    assert slot.take(1) is None
    assert list(slot.lag_frames) == [0, 2]
