"""EmoliveVideoGenerator and AvatarSession with real livekit rtc frames, no server.

The generator is driven the way AvatarRunner drives it: the voice pushed as rtc.AudioFrames (from the
agent's QueueAudioOutput in the end-to-end test), the output pulled item by item. Nothing sleeps: each
test pulls exactly what it asserts on, so the machine's load changes how long it takes, not what it sees.
AvatarRunner itself publishes into a connected room (it waits for the connection before the first frame),
so without a server its read loop is mirrored here; test_room_publishes_the_avatar runs the real runner
when LIVEKIT_URL (with LIVEKIT_API_KEY / LIVEKIT_API_SECRET) names a server.
"""
from __future__ import annotations

import asyncio
import logging
import os
from math import ceil

import numpy as np
import pytest

pytest.importorskip("livekit.agents", reason="the livekit extra is not installed")

from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AudioSegmentEnd, QueueAudioOutput  # noqa: E402

from emolive.livekit import EMOTION_ATTRIBUTE, AvatarSession, EmoliveVideoGenerator  # noqa: E402

FPS, RATE, SIZE, CHUNK = 25, 24_000, 256, 480  # 20 ms agent frames at 24 kHz
SPF = RATE // FPS  # voice samples per video frame


@pytest.fixture(scope="module")
def lk_parts():
    from streaming.parts import real_parts

    return real_parts(fps=FPS, size=SIZE)


@pytest.fixture
def gen(lk_parts):
    return EmoliveVideoGenerator(lk_parts, fps=FPS, sample_rate=RATE)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))  # a safety net only: every wait ends on an item


def voice(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A voiced sound (harmonics of a gliding pitch, loudness at a syllable rate), int16."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 2 * np.pi * np.cumsum(130.0 + 25.0 * np.sin(2 * np.pi * 0.8 * t + seed)) / rate
    x = sum(np.sin(h * pitch) / h for h in range(1, 6)) * (0.25 + 0.2 * np.sin(2 * np.pi * 4.0 * t))
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def frames_of(pcm: np.ndarray, rate: int = RATE, chunk: int = CHUNK, channels: int = 1) -> list[rtc.AudioFrame]:
    step = chunk * channels
    return [rtc.AudioFrame(pcm[i:i + step].tobytes(), rate, channels, len(pcm[i:i + step]) // channels)
            for i in range(0, len(pcm), step)]


async def push_all(gen, frames, end: bool = True):
    for f in frames:
        await gen.push_audio(f)
    if end:
        await gen.push_audio(AudioSegmentEnd())


async def pull(it, gen, until, out=None):
    """Items with their timeline time, up to and including the first that `until` accepts."""
    out = [] if out is None else out
    while True:
        item = await it.__anext__()
        out.append((item, gen.timestamp))
        if until(item, out):
            return out


def rgba(frame: rtc.VideoFrame) -> np.ndarray:
    return np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 4)


def kinds(items):
    return [type(i).__name__ for i, _ in items]


def test_pacing_interleaving_and_segment_ends(gen):
    async def main():
        it = gen.__aiter__()
        out = await pull(it, gen, lambda i, o: len(o) == 3)  # idle frames first
        ends = []
        for n in (int(1.5 * RATE) + 77, RATE // 2):  # segments that end inside a frame period and on one
            pcm = voice(n / RATE)[:n]
            feeder = asyncio.create_task(push_all(gen, frames_of(pcm)))
            start = len(out)
            await pull(it, gen, lambda i, o: isinstance(i, AudioSegmentEnd), out)
            await feeder
            ends.append((start, len(out), pcm))
        await gen.push_audio(AudioSegmentEnd())  # an end with no voice before it is echoed at once
        await pull(it, gen, lambda i, o: isinstance(i, AudioSegmentEnd), out)
        await gen.aclose()
        return out, ends

    out, ends = run(main())
    videos = [(i, t) for i, t in out if isinstance(i, rtc.VideoFrame)]
    assert all(v.width == SIZE and v.height == SIZE and v.type == rtc.VideoBufferType.RGBA for v, _ in videos)
    # Video frames sit on consecutive frame instants, whatever came between them.
    assert [t for _, t in videos] == pytest.approx([k / FPS for k in range(len(videos))])
    times = [t for i, t in out if not isinstance(i, AudioSegmentEnd)]
    assert times == sorted(times), "items leave in timeline order"
    for start, stop, pcm in ends:
        seg = out[start:stop]
        audio = [(i, t) for i, t in seg if isinstance(i, rtc.AudioFrame)]
        # The voice comes back whole and unchanged, each slice right after the frame at its instant.
        sent = np.concatenate([np.frombuffer(a.data, np.int16) for a, _ in audio])
        assert np.array_equal(sent, pcm)
        for n, (a, t) in enumerate(audio):
            assert a.sample_rate == RATE and a.num_channels == 1
            prev, prev_t = seg[seg.index((a, t)) - 1]
            assert isinstance(prev, rtc.VideoFrame) and prev_t == t
        # fps frames per second of voice: one frame per started frame period, and no more.
        speech_video = sum(1 for i, _ in seg[seg.index(audio[0]) - 1:] if isinstance(i, rtc.VideoFrame))
        assert speech_video == ceil(len(pcm) * FPS / RATE)
        assert isinstance(seg[-1][0], AudioSegmentEnd) and isinstance(seg[-2][0], rtc.AudioFrame)
    assert kinds(out).count("AudioSegmentEnd") == 3 and isinstance(out[-1][0], AudioSegmentEnd)
    assert gen.stats["segments"] == 2 and gen.stats["speech_frames"] == sum(ceil(len(p) * FPS / RATE)
                                                                              for _, _, p in ends)


def test_idle_frames_while_silent(gen):
    async def main():
        it = gen.__aiter__()
        out = await pull(it, gen, lambda i, o: len(o) == 60)
        await gen.aclose()
        return out

    out = run(main())
    assert kinds(out) == ["VideoFrame"] * 60
    assert [t for _, t in out] == pytest.approx([k / FPS for k in range(60)])
    pics = [rgba(v).astype(np.int16) for v, _ in out]
    assert max(np.abs(p - pics[0]).mean() for p in pics) > 0.05, "idle life moves the face"
    assert gen.stats["speech_frames"] == 0


def test_clear_buffer_stops_the_speech_within_a_frame(gen):
    async def main():
        it = gen.__aiter__()
        pcm = voice(3.0)
        interrupted = False

        async def agent_speaks():  # stops at the interruption; its push in flight then is from before it
            for f in frames_of(pcm):
                if interrupted:
                    return
                await gen.push_audio(f)

        feeder = asyncio.create_task(agent_speaks())  # waits on the bounded input queue
        out = await pull(it, gen, lambda i, o: sum(isinstance(x, rtc.AudioFrame) for x, _ in o) == 12)
        interrupted = True
        gen.clear_buffer()  # what AvatarRunner does when the agent is interrupted
        cut = len(out)
        await pull(it, gen, lambda i, o: len(o) == cut + 20, out)
        await feeder
        again = voice(0.4, seed=1)
        feeder = asyncio.create_task(push_all(gen, frames_of(again)))
        start = len(out)
        await pull(it, gen, lambda i, o: isinstance(i, AudioSegmentEnd), out)
        await feeder
        await gen.aclose()
        return out, cut, start, pcm, again

    out, cut, start, pcm, again = run(main())
    after = out[cut:start]
    voice_after = sum(i.samples_per_channel for i, _ in after if isinstance(i, rtc.AudioFrame))
    assert voice_after <= SPF, "speech goes on after clear_buffer"
    assert voice_after == 0 and kinds(after) == ["VideoFrame"] * 20  # idle frames, no segment end
    before = np.concatenate([np.frombuffer(i.data, np.int16) for i, _ in out[:cut] if isinstance(i, rtc.AudioFrame)])
    assert np.array_equal(before, pcm[:len(before)])
    times = [t for i, t in out if isinstance(i, rtc.VideoFrame)]
    assert times == pytest.approx([k / FPS for k in range(len(times))]), "no frame instant skipped or repeated"
    # The next segment plays whole, from its own start.
    sent = np.concatenate([np.frombuffer(i.data, np.int16) for i, _ in out[start:] if isinstance(i, rtc.AudioFrame)])
    assert np.array_equal(sent, again)
    assert gen.stats["interruptions"] == 1 and gen.stats["segments"] == 1


def mouth_width(redetect, frame: rtc.VideoFrame) -> float:
    """Mouth corner to corner over the outer eye corners, on the face re-detected in the frame."""
    p = redetect(np.ascontiguousarray(rgba(frame)[:, :, :3]))
    return float(np.linalg.norm(p[61, :2] - p[291, :2]) / np.linalg.norm(p[33, :2] - p[263, :2]))


def test_emotion_specs_change_the_next_frames(gen, caplog, redetect):
    async def main():
        it = gen.__aiter__()
        before = await pull(it, gen, lambda i, o: len(o) == 3)
        with caplog.at_level(logging.ERROR, logger="emolive.livekit"):
            bad = await gen.set_emotion("hapy:0.8")
        unchanged = gen.emotion["target"]
        ok = await gen.set_emotion("happy:1.0", transition_ms=0)
        after = await pull(it, gen, lambda i, o: len(o) == 10)
        mix = await gen.set_emotion("happy:0.7+surprised:0.3@0.9")
        mix_target = gen.emotion["target"]
        sentence = await gen.set_emotion("very happy with a little surprised")
        await gen.aclose()
        return before, after, bad, unchanged, ok, mix, mix_target, sentence

    before, after, bad, unchanged, ok, mix, mix_target, sentence = run(main())
    assert bad is False and "hapy" in caplog.text and "stays as it was" in caplog.text
    assert unchanged["mixture"] == {"neutral": 1.0}
    assert ok and mix and sentence
    assert mix_target["mixture"] == pytest.approx({"happy": 0.7, "surprised": 0.3})
    assert mix_target["intensity"] == pytest.approx(0.9)
    # The change shows within the frames that follow (frames already rendered ahead may still be neutral):
    # the face differs from the neutral one well beyond idle life.
    a, b = rgba(before[-1][0]).astype(np.int16), rgba(after[-1][0]).astype(np.int16)
    idle = np.abs(rgba(before[0][0]).astype(np.int16) - a).mean()
    assert np.abs(b - a).mean() > 3 * idle + 0.3, (np.abs(b - a).mean(), idle)
    # Re-detected on the frames: a smile widens the mouth (it reaches its target within a few frames).
    w0, w1 = mouth_width(redetect, before[-1][0]), mouth_width(redetect, after[-1][0])
    assert w1 > w0 * 1.05, (w0, w1)


def test_bad_audio_is_resampled_mixed_or_refused(gen, caplog):
    async def main():
        it = gen.__aiter__()
        out = await pull(it, gen, lambda i, o: len(o) == 1)
        mono48 = voice(0.5, rate=48_000)
        stereo = np.repeat(voice(0.3, seed=2), 2)  # interleaved L R
        async def agent_speaks():
            await gen.push_audio(rtc.AudioFrame(b"", RATE, 1, 0))  # empty: nothing to say
            await gen.push_audio(rtc.AudioFrame(voice(0.02, rate=4000).tobytes(), 4000, 1, 80))  # no such rate
            await push_all(gen, frames_of(mono48, 48_000, 960), end=False)
            await push_all(gen, frames_of(stereo, RATE, CHUNK, channels=2))

        with caplog.at_level(logging.ERROR, logger="emolive.livekit"):
            feeder = asyncio.create_task(agent_speaks())
            await pull(it, gen, lambda i, o: isinstance(i, AudioSegmentEnd), out)
            await feeder
        await gen.aclose()
        return out, mono48, stereo

    out, mono48, stereo = run(main())
    audio = [i for i, _ in out if isinstance(i, rtc.AudioFrame)]
    assert all(a.sample_rate == RATE and a.num_channels == 1 for a in audio)
    n = sum(a.samples_per_channel for a in audio)
    assert n == len(mono48) // 2 + len(stereo) // 2  # 48 kHz halved (the resampler's tail included), stereo mixed
    assert gen.stats["bad_audio_frames"] == 1 and "unsupported sample rate" in caplog.text
    assert sum(isinstance(i, rtc.VideoFrame) for i, _ in out[1:]) >= ceil(n * FPS / RATE)


def test_avatar_session_wires_the_agent_and_reads_the_emotion_attribute(lk_parts):
    from livekit.agents import AgentSession

    class Participant:
        identity = "front-end"

    async def main():
        agent_session, room = AgentSession(), rtc.Room()
        avatar = AvatarSession(parts=lk_parts, fps=FPS, sample_rate=RATE)
        await avatar.start(agent_session, room)
        wired = agent_session.output.audio is avatar.audio_output and avatar.audio_output.sample_rate == RATE
        room.emit("participant_attributes_changed", {EMOTION_ATTRIBUTE: "sad:0.6"}, Participant())
        room.emit("participant_attributes_changed", {"other": "x"}, Participant())
        await asyncio.gather(*avatar._tasks)
        target = avatar.generator.emotion["target"]
        await avatar.aclose()
        return wired, target

    wired, target = run(main())
    assert wired
    assert target["mixture"] == {"sad": 1.0} and target["intensity"] == pytest.approx(0.6)


def test_agent_voice_through_queue_audio_output_moves_the_mouth(gen, grid_speech):
    """In-process mode end to end: the agent's side writes real speech into QueueAudioOutput; the runner's
    read loop (mirrored) hands it to the generator; the mouth re-detected on the frames follows the words."""
    from engine.audio.resample import resample
    from engine.measure import Landmarker
    from engine.types import BLENDSHAPE_NAMES

    samples, rate, speech_mask = grid_speech
    pcm = (np.clip(resample(samples, rate, RATE), -1, 1) * 32767).astype(np.int16)
    finished = []

    async def main():
        audio_out = QueueAudioOutput(sample_rate=RATE)
        audio_out.on("playback_finished", finished.append)

        async def runner_reads():  # AvatarRunner._read_audio
            async for f in audio_out:
                await gen.push_audio(f)

        reader = asyncio.create_task(runner_reads())
        it = gen.__aiter__()
        out = await pull(it, gen, lambda i, o: len(o) == 2)
        for f in frames_of(pcm):  # the agent's TTS, as AgentSession writes it
            await audio_out.capture_frame(f)
        audio_out.flush()
        await pull(it, gen, lambda i, o: isinstance(i, AudioSegmentEnd), out)
        played = sum(i.duration for i, _ in out if isinstance(i, rtc.AudioFrame))
        audio_out.notify_playback_finished(played, interrupted=False)  # as AvatarRunner does on the end
        await audio_out.wait_for_playout()
        reader.cancel()
        await gen.aclose()
        return out, played

    out, played = run(main())
    assert played == pytest.approx(len(pcm) / RATE)
    assert finished and finished[0].interrupted is False and finished[0].playback_position == pytest.approx(played)
    first_voice = next(n for n, (i, _) in enumerate(out) if isinstance(i, rtc.AudioFrame))
    speech = [i for i, _ in out[first_voice - 1:] if isinstance(i, rtc.VideoFrame)]
    assert len(speech) == len(speech_mask)
    jaw_i = BLENDSHAPE_NAMES.index("jawOpen")
    with Landmarker() as lm:
        jaw = []
        for v in speech:
            m = lm.detect(np.ascontiguousarray(rgba(v)[:, :, :3]))
            assert m is not None, "no face re-detected on an output frame"
            jaw.append(float(m.blendshapes[jaw_i]))
    jaw = np.array(jaw)
    talking, silent = jaw[speech_mask].mean(), jaw[~speech_mask].mean()
    assert talking > 2 * silent and talking > silent + 0.02, (talking, silent)


@pytest.mark.skipif(not os.environ.get("LIVEKIT_URL"), reason="needs a LiveKit server: set LIVEKIT_URL, "
                    "LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
def test_room_publishes_the_avatar(lk_parts):
    """The real AvatarRunner in a real room: a viewer receives avatar_video frames and avatar_audio."""
    from livekit import api
    from livekit.agents import AgentSession

    def token(identity: str, room_name: str) -> str:
        grants = api.VideoGrants(room_join=True, room=room_name)
        return api.AccessToken().with_identity(identity).with_grants(grants).to_jwt()

    async def main():
        name = f"emolive-test-{os.getpid()}"
        agent_room, viewer = rtc.Room(), rtc.Room()
        tracks: dict[str, rtc.Track] = {}
        got = asyncio.Event()

        @viewer.on("track_subscribed")
        def _subscribed(track, _publication, _participant):
            tracks[track.name] = track
            if {"avatar_video", "avatar_audio"} <= set(tracks):
                got.set()

        await viewer.connect(os.environ["LIVEKIT_URL"], token("viewer", name))
        await agent_room.connect(os.environ["LIVEKIT_URL"], token("agent", name))
        avatar = AvatarSession(parts=lk_parts, fps=FPS, sample_rate=RATE)
        await avatar.start(AgentSession(), agent_room)
        for f in frames_of(voice(1.0)):
            await avatar.audio_output.capture_frame(f)
        avatar.audio_output.flush()
        await got.wait()
        stream = rtc.VideoStream(tracks["avatar_video"])
        sizes = []
        async for event in stream:
            sizes.append((event.frame.width, event.frame.height))
            if len(sizes) == 10:
                break
        await stream.aclose()
        await avatar.aclose()
        await agent_room.disconnect()
        await viewer.disconnect()
        return sizes

    assert run(main()) == [(SIZE, SIZE)] * 10


def test_avatar_load_counts_the_jobs_and_the_cpu(monkeypatch):
    """The load reported to LiveKit's dispatch: jobs over the avatars a worker holds, or the CPU if higher."""
    import emolive.livekit.load as load_module
    from emolive.livekit import avatar_load
    from livekit.agents import Worker

    assert isinstance(Worker.active_jobs, property)  # what the load reads on LiveKit's worker
    cpu = iter([5.0, 10.0, 10.0, 90.0, 10.0, 0.0, 0.0])  # psutil.cpu_percent: each start, then one per call
    monkeypatch.setattr(load_module.psutil, "cpu_percent", lambda interval=None: next(cpu))

    class FakeWorker:
        active_jobs: list = []

    w = FakeWorker()
    load = avatar_load(3)
    assert load(w) == pytest.approx(0.10)  # no job: the CPU
    w.active_jobs = ["a", "b"]
    assert load(w) == pytest.approx(2 / 3)  # two of three avatars, the CPU at 10 %
    assert load(w) == pytest.approx(0.90)  # something else loads the machine
    w.active_jobs = ["a", "b", "c", "d"]
    assert load(w) == 1.0
    assert avatar_load(2, cpu=False)(w) == 1.0 and avatar_load(8, cpu=False)(w) == 0.5
    with pytest.raises(ValueError):
        avatar_load(0)
