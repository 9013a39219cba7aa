"""The sans-I/O session pipeline with a small test double for the audio model."""
import numpy as np

from engine.clock import FakeClock
from engine.scheduler import AVScheduler
from engine.session import Session, model_latency_s, scheduler_config_for
from speech_doubles import LoudnessModel


class Smile:
    def __init__(self):
        self.vads = []

    def apply(self, s, vad=0.0):
        self.vads.append(vad)
        return s.replace(mouthSmileLeft=0.5)


def make():
    model = LoudnessModel()
    cfg = scheduler_config_for(model_latency_s(model))
    sched = AVScheduler(cfg, FakeClock())
    sched.start()
    return Session(sched, LoudnessModel, Smile()), sched


def test_speech_reaches_the_frame_that_plays_it():
    session, sched = make()
    smile = session.emotion
    spf = sched.config.samples_per_video_frame
    loud = np.full(spf * 10, 0.8, np.float32)
    voice = np.concatenate([np.zeros(spf * 5, np.float32), loud, np.zeros(spf * 15, np.float32)])
    out, states, vads = [], {}, {}
    for chunk in np.split(voice, len(voice) // 960):  # real time: one 20 ms packet in, one out
        session.push_audio(chunk)
        frame, pts = sched.pull_audio()
        out.append(frame)
        if pts % spf == 0:  # video frame pts // spf falls due with this audio: render it
            states[pts // spf] = session.state_for(pts // spf)
            vads[pts // spf] = smile.vads[-1]
    # Locate where the loud audio sits in the outbound audio: the same frames must open the jaw.
    out = np.concatenate(out)
    loud_frames = sorted({i // spf for i in np.nonzero(out > 0.5)[0]})
    assert len(loud_frames) == 10
    for k in range(loud_frames[0] - 3, loud_frames[-1] + 3):
        state = states[k]
        assert state.t == k / 25
        assert state["mouthSmileLeft"] == 0.5
        assert (state["jawOpen"] > 0.5) == (k in loud_frames), k
        assert (vads[k] > 0.5) == (k in loud_frames), k  # the emotion layer hears who is speaking


def test_idle_when_there_is_no_input_and_pending_frames_are_bounded():
    session, sched = make()
    state = session.state_for(3)
    assert state["jawOpen"] == 0 and state.t == 3 / 25 and session.stats["idle_frames"] == 1
    for _ in range(200):  # nobody renders: the pending frames stay bounded
        session.push_audio(np.full(960, 0.5, np.float32))
        sched.pull_audio()
    assert session.pending_frames <= session._bound


def test_interrupt_drops_buffered_voice():
    session, sched = make()
    session.push_audio(np.full(9600, 0.8, np.float32))
    session.interrupt()
    assert session.pending_frames == 0
    assert not any(sched.pull_audio()[0].any() for _ in range(30))


def test_after_a_burst_the_drained_latency_keeps_lips_on_the_voice():
    """A stall then a burst raises the latency; the scheduler drains it in the pauses. Every frame's jaw
    still follows the audio that plays with it, and the latency is back at the target at the end."""
    session, sched = make()
    spf = sched.config.samples_per_video_frame
    rng = np.random.default_rng(1)
    parts = []
    for i in range(8):  # 0.6 s of voice, then a 0.5 s pause of room noise
        parts.append(np.full(int(0.6 * 48_000), 0.8, np.float32))
        parts.append((rng.standard_normal(int(0.5 * 48_000)) * 5e-4).astype(np.float32))
    voice = np.concatenate(parts)
    chunks = np.split(voice[: len(voice) // 960 * 960], len(voice) // 960)
    out, states, held = [], {}, []
    for i, chunk in enumerate(chunks):
        held.append(chunk)
        if not 60 <= i < 74:  # 280 ms without input, then it all comes at once
            for c in held:
                session.push_audio(c)
                m = session._model  # its time (samples fed since its restart) is the timeline's
                assert session._origin * spf + m.k * spf + len(m.buf) == sched.write_pos
            held = []
        frame, pts = sched.pull_audio()
        out.append(frame)
        if pts % spf == 0:
            states[pts // spf] = session.state_for(pts // spf)
    assert sched.stats["drained_samples"] > 0.2 * 48_000
    assert sched.buffered_latency_s <= sched.config.latency_s + 0.03
    out = np.concatenate(out)
    checked = 0
    for k, state in states.items():
        audio = out[k * spf:(k + 1) * spf]
        if len(audio) < spf or k < 20 or 28 <= k < 45:
            # During the stall the voice already in the delay line plays on, but its last frames wait for
            # the model's look-ahead (the input that is late): those few show idle whatever the drain does.
            continue
        loud = np.mean(np.abs(audio) > 0.5)
        if loud in (0.0, 1.0):  # frames that are all voice or all pause
            assert (state["jawOpen"] > 0.5) == (loud == 1.0), k
            checked += 1
    assert checked > 130
