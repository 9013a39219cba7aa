"""The A/V scheduler on a fake clock: latency, gaps, drops, pts from audio samples, drift."""
import numpy as np
import pytest

from engine.clock import FakeClock
from engine.frame_slot import FrameSlot
from engine.scheduler import AVScheduler, SchedulerConfig

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
    s, clock = make()
    s.write(np.ones(960, np.float32))
    for _ in range(20):  # output runs 400 ms past the written input
        clock.advance(0.02)
        s.pull_audio()
    p = s.write(np.ones(960, np.float32))
    assert p.accepted and not p.restart and p.gap > 0
    # placed the latency after the sample playing now (the clock's position)
    assert p.position - s.timeline_now() == round(CFG.latency_s * 48_000)


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


# -- drain: latency given back after a burst, in pauses only ---------------------------------------

DRAIN_CFG = SchedulerConfig(sample_rate=48_000, fps=25, frame_samples=960, min_latency_s=0.1, jitter_s=0.02,
                            max_backlog_s=0.4, resync_gap_s=1.0, render_lead_s=0.04)
RNG = np.random.default_rng(5)


def talk(seconds_loud=1.0, seconds_pause=0.4, cycles=20, rate=48_000):
    """Speech-like input: loud stretches with distinct sample values (> 0.2), pauses of room noise (-66 dBFS)."""
    parts, n_loud = [], 0
    for _ in range(cycles):
        n = int(seconds_loud * rate)
        parts.append((0.2 + 0.6 * ((np.arange(n_loud, n_loud + n) % 9973) / 9973)).astype(np.float32))
        n_loud += n
        parts.append((RNG.standard_normal(int(seconds_pause * rate)) * 5e-4).astype(np.float32))
    return np.concatenate(parts)


def stream(s, clock, pcm, stalls=(), chunk=960):
    """Real time, one chunk in and one audio frame out every 20 ms; during a stall (start, length in chunks)
    input is held back and then arrives in one burst. Returns the output audio and W - R after each step."""
    chunks = [pcm[i:i + chunk] for i in range(0, len(pcm) - chunk + 1, chunk)]
    stall_at = dict(stalls)
    held, out, latency = [], [], []
    hold_until = -1
    for i, c in enumerate(chunks):
        if i in stall_at:
            hold_until = i + stall_at[i]
        held.append(c)
        if i >= hold_until:
            for h in held:
                s.write(h)
            held = []
        clock.advance(chunk / 48_000)
        out.append(s.pull_audio()[0])
        latency.append(s.write_pos - s.read_pos if s.write_pos is not None else None)
    return np.concatenate(out), latency


def test_latency_returns_to_target_after_a_burst_and_speech_is_never_dropped():
    s = AVScheduler(DRAIN_CFG, FakeClock())
    s.start()
    target = round(DRAIN_CFG.latency_s * 48_000)
    pcm = talk()
    # A 280 ms input stall at 3 s, 6.4 s and 12.1 s (inside speech): each would add ~260 ms for good.
    out, lat = stream(s, s.clock, pcm, stalls=((150, 14), (320, 14), (605, 14)))
    lat = np.array(lat, float)
    for start in (150, 320, 605):
        burst_peak = lat[start + 14]
        assert burst_peak - target > 0.2 * 48_000  # the burst did raise the latency
        # Back at the target (within one chunk: W - R is sampled after the write) within 3 s.
        back = np.nonzero(lat[start + 14:] <= target + 960 + DRAIN_CFG.drain_above_s * 48_000)[0]
        assert len(back) and back[0] <= 150, (start, back[:1])
    assert lat[-100:].max() <= target + 960 + DRAIN_CFG.drain_above_s * 48_000
    assert s.stats["drained_samples"] > 3 * 0.2 * 48_000
    assert s.stats["input_dropped_samples"] == 0
    # Every loud (speech) sample that went in came out, in order and unchanged.
    loud_in = pcm[pcm > 0.1]
    loud_out = out[out > 0.1]
    n = len(loud_out)
    assert n > 0.9 * len(loud_in[: n + 48_000])
    np.testing.assert_array_equal(loud_out, loud_in[:n])


def test_continuous_speech_keeps_its_latency_until_a_pause():
    s = AVScheduler(DRAIN_CFG, FakeClock())
    s.start()
    pcm = talk(seconds_loud=6.0, seconds_pause=1.0, cycles=1)
    _, lat = stream(s, s.clock, pcm, stalls=((50, 14),))
    lat = np.array(lat, float)
    high = lat[70]
    assert np.all(lat[70:300] == high)  # 4.6 s of speech after the burst: nothing drained
    assert lat[-1] < high - 0.2 * 48_000  # the pause gives it back
    assert s.stats["drained_samples"] > 0


def test_transient_early_arrivals_are_not_drained():
    """Jitter that does not last (a packet early, then on time) is no excess: nothing is dropped."""
    s = AVScheduler(DRAIN_CFG, FakeClock())
    s.start()
    quiet = (RNG.standard_normal(48_000 * 10) * 5e-4).astype(np.float32)
    chunks = [quiet[i:i + 960] for i in range(0, len(quiet), 960)]
    for i in range(0, len(chunks) - 1, 2):
        s.write(chunks[i])
        if i % 10 == 0:  # every 200 ms one packet comes 20 ms early (before the frame it would follow)
            s.write(chunks[i + 1])
            s.clock.advance(0.02)
            s.pull_audio()
        else:
            s.clock.advance(0.02)
            s.pull_audio()
            s.write(chunks[i + 1])
        s.clock.advance(0.02)
        s.pull_audio()
    assert s.stats["drained_samples"] == 0 and s.stats["gap_samples"] == 0


def test_drain_keeps_the_timeline_and_the_model_in_step():
    """Placements of kept input are contiguous: the model's time (samples fed) is the timeline's."""
    s = AVScheduler(DRAIN_CFG, FakeClock())
    s.start()
    pcm = talk(cycles=6)
    chunks = [pcm[i:i + 960] for i in range(0, len(pcm) - 959, 960)]
    fed, origin, skipped_any, next_pos = 0, None, False, None
    for i, c in enumerate(chunks):
        burst = [c] if not 100 <= i < 114 else []
        if i == 114:
            burst = chunks[100:115]
        for b in burst:
            p = s.write(b)
            if p.accepted:
                if p.restart:
                    origin, fed = p.position, 0
                if next_pos is not None and not p.restart:
                    assert p.position - p.gap == next_pos  # right after what was kept (and the gap's silence)
                fed += p.gap + len(b) - p.skip
                skipped_any |= p.skip > 0
                next_pos = p.position + len(b) - p.skip
                assert origin + fed == s.write_pos  # model time == timeline
            else:
                assert p.drained and p.position == s.write_pos
        s.clock.advance(0.02)
        s.pull_audio()
    assert s.stats["drained_samples"] > 0


def test_drain_can_be_switched_off():
    from dataclasses import replace

    s = AVScheduler(replace(DRAIN_CFG, drain=False), FakeClock())
    s.start()
    _, lat = stream(s, s.clock, talk(cycles=4), stalls=((50, 14),))
    assert s.stats["drained_samples"] == 0 and lat[-1] > round(DRAIN_CFG.latency_s * 48_000) + 0.2 * 48_000


def test_no_drift_with_repeated_stalls_over_ten_minutes():
    s = AVScheduler(DRAIN_CFG, FakeClock())
    s.start()
    pcm = talk(cycles=430)  # 10 min
    stalls = tuple((i, 12) for i in range(300, 29_000, 1000))  # a 240 ms stall every 20 s
    _, lat = stream(s, s.clock, pcm, stalls=stalls)
    target = round(DRAIN_CFG.latency_s * 48_000)
    late = np.array(lat[-1000:], float)
    early = np.array(lat[250:300], float)
    assert late.max() <= target + 960 + DRAIN_CFG.drain_above_s * 48_000
    assert abs(np.median(late) - np.median(early)) <= 960
    assert s.stats["input_dropped_samples"] == 0


def test_latency_is_counted_from_the_sample_playing_now_not_from_the_read_position():
    """The audio sender pulls each frame at its start, so R runs up to 20 ms ahead of the clock: the drain
    brings the voice delay (placed position - the clock's position) to the target, whatever the phase."""
    s = AVScheduler(DRAIN_CFG, FakeClock())
    s.start()
    quiet = (RNG.standard_normal(48_000 * 4) * 5e-4).astype(np.float32)
    delays = []
    for i in range(0, len(quiet), 960):
        s.pull_audio()  # at the frame's start: R = now + 960
        s.clock.advance(0.002)  # input arrives 2 ms into the frame
        p = s.write(quiet[i:i + 960])
        if p.accepted:
            delays.append(p.position - s.timeline_now())
        s.clock.advance(0.018)
    target = round(DRAIN_CFG.latency_s * 48_000)
    assert s.stats["gap_samples"] == 0
    assert target <= min(delays[-50:]) and max(delays[-50:]) <= target + DRAIN_CFG.drain_above_s * 48_000 + 1


def test_a_late_audio_sender_does_not_make_input_overflow():
    """When the outbound audio is pulled late (R behind the clock), input is placed after R, not after
    the clock: the delay line (which ends at R) must not fill up and drop the voice."""
    s, clock = make()
    for _ in range(10):
        s.write(np.ones(960, np.float32))
        clock.advance(0.02)
        s.pull_audio()
    clock.advance(0.15)  # the audio sender stalls (less than max_audio_lag_s), then catches up frame by frame
    accepted = []
    for _ in range(50):
        accepted.append(s.write(np.ones(960, np.float32)).accepted)  # input keeps coming in real time
        clock.advance(0.02)
        for _ in range(3):
            if s.audio_deadline() <= clock.now():
                s.pull_audio()
    assert s.audio_deadline() > clock.now()  # caught up
    assert all(accepted) and s.stats["input_dropped_samples"] == 0 and s.stats["audio_skipped_samples"] == 0


def test_an_audio_sender_far_behind_the_clock_skips_ahead_and_input_follows():
    s, clock = make()
    for _ in range(10):
        s.write(np.ones(960, np.float32))
        clock.advance(0.02)
        s.pull_audio()
    clock.advance(2.16)  # the sender is starved for 2.16 s: six laps of the delay line's ring, exactly
    frame, pts = s.pull_audio()
    assert s.stats["audio_skipped_samples"] > 1.9 * 48_000
    assert pts % 960 == 0 and 0 <= s.timeline_now() - pts < 960  # the frame playing now
    p = s.write(np.full(960, 0.5, np.float32))  # input is placed after the clock again, not seconds in the past
    assert p.accepted and p.position - s.timeline_now() >= round(CFG.latency_s * 48_000)
    # the voice that was in the line (ones) is gone, not replayed a ring lap later: silence, then the new input
    out = np.concatenate([frame] + [s.pull_audio()[0] for _ in range(30)])
    assert set(np.unique(out)) == {0.0, 0.5}
