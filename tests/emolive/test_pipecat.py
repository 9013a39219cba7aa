"""EmoliveVideoService in a real Pipecat pipeline: real speech in as TTSAudioRawFrames, an emotion frame,
an interruption in the middle of a segment; the frames that come out are checked, and the mouth is
re-measured on them with MediaPipe's Face Landmarker. Every wait is on a frame reaching the sink."""
from __future__ import annotations

import asyncio
from math import ceil

import numpy as np
import pytest

pytest.importorskip("pipecat", reason="the pipecat extra is not installed")

from pipecat.frames.frames import (EndFrame, InterruptionFrame, LLMTextFrame, OutputImageRawFrame,  # noqa: E402
                                   TextFrame, TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame, TTSTextFrame)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from emolive.pipecat import EmoliveEmotionFrame, EmoliveVideoService  # noqa: E402
from emolive.pipecat.avatar_engine import AvatarEngine  # noqa: E402

FPS, SIZE, TTS_RATE, CHUNK = 25, 512, 24_000, 480  # 20 ms TTS chunks at 24 kHz (resampled to the engine's 16)
WAIT_S = 60.0  # a safety net only: every wait ends on a frame


class Sink(FrameProcessor):
    """Records what leaves the service and wakes waiters as frames arrive."""

    def __init__(self):
        super().__init__()
        self.frames = []
        self._changed = asyncio.Condition()

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            self.frames.append(frame)
            async with self._changed:
                self._changed.notify_all()
        await self.push_frame(frame, direction)

    async def wait_for(self, predicate):
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self.frames)), WAIT_S)


def tts_frames(samples: np.ndarray, rate: int) -> list[TTSAudioRawFrame]:
    from engine.audio.resample import resample

    pcm = (np.clip(resample(samples, rate, TTS_RATE), -1, 1) * 32767).astype(np.int16)
    return [TTSAudioRawFrame(audio=pcm[i:i + CHUNK].tobytes(), sample_rate=TTS_RATE, num_channels=1)
            for i in range(0, len(pcm), CHUNK)]


def count(frames, cls, after=None, **meta):
    if after is not None and after not in frames:
        return 0
    start = 0 if after is None else frames.index(after) + 1
    return sum(1 for f in frames[start:] if isinstance(f, cls)
               and all(f.metadata.get("emolive", {}).get(k) == v for k, v in meta.items()))


def images(frames, speech: bool):
    return [f for f in frames if isinstance(f, OutputImageRawFrame) and f.metadata["emolive"]["speech"] == speech]


def rgb(frame: OutputImageRawFrame) -> np.ndarray:
    w, h = frame.size
    return np.frombuffer(frame.image, np.uint8).reshape(h, w, 3)


@pytest.fixture(scope="module")
def engine():
    e = AvatarEngine.build(None, SIZE, FPS, None, "meshwarp", True)
    yield e
    e.close()


@pytest.fixture(scope="module")
def landmarker(shared):
    from engine.measure import Landmarker

    with Landmarker() as lm:
        yield lm


def blendshape(landmarker, frame, name: str) -> float:
    from engine.types import BLENDSHAPE_NAMES

    m = landmarker.detect(rgb(frame))
    assert m is not None, "no face re-detected on an output frame"
    return float(m.blendshapes[BLENDSHAPE_NAMES.index(name)])


async def run(service, script):
    """Run [service, sink] in a real pipeline worker; `script(worker, sink)` drives it."""
    sink = Sink()
    worker = PipelineWorker(Pipeline([service, sink]), params=PipelineParams(), cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker, _frame):
        started.set()

    async def drive():
        await asyncio.wait_for(started.wait(), WAIT_S)
        await script(worker, sink)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner()
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), drive())
    return sink.frames


def test_speech_emotion_and_interruption(engine, grid_speech, landmarker):
    samples, rate, speech_mask = grid_speech
    voice = tts_frames(samples, rate)
    half = len(voice) // 2
    service = EmoliveVideoService(engine=engine, fps=FPS)
    marks = {}

    async def script(worker, sink):
        # Idle life before anyone speaks (paced by the clock: wait for two frames of it).
        await sink.wait_for(lambda fr: len(images(fr, False)) >= 2)
        marks["start1"] = TTSStartedFrame()
        await worker.queue_frames([marks["start1"], *voice, TTSStoppedFrame()])
        await sink.wait_for(lambda fr: count(fr, TTSStoppedFrame) == 1)
        # A bad spec is ignored; the good one after it holds.
        await worker.queue_frames([EmoliveEmotionFrame("hapy:0.8"), EmoliveEmotionFrame("happy:0.8", 0.0)])
        marks["start2"] = TTSStartedFrame()
        await worker.queue_frames([marks["start2"], *voice[:half]])
        # The interruption lands once half of the second segment's voice has come out.
        await sink.wait_for(lambda fr: count(fr, TTSAudioRawFrame, after=marks["start2"]) >= half - 10)
        marks["interrupt"] = InterruptionFrame()
        await worker.queue_frame(marks["interrupt"])
        await sink.wait_for(lambda fr: marks["interrupt"] in fr)
        await worker.queue_frame(TTSStoppedFrame())
        await sink.wait_for(lambda fr: count(fr, OutputImageRawFrame, after=marks["interrupt"]) >= 5)

    frames = asyncio.run(run(service, script))
    i1, i2, ii = (frames.index(marks[k]) for k in ("start1", "start2", "interrupt"))
    seg1 = frames[i1:i2]
    # Frames: the configured size, one per 1 / fps of voice (from sample positions), in timeline order.
    assert all(f.size == (SIZE, SIZE) and len(f.image) == SIZE * SIZE * 3 for f in images(frames, True))
    n_voice = sum(len(f.audio) // 2 for f in voice)
    assert count(seg1, OutputImageRawFrame, speech=True) == ceil(n_voice * FPS / TTS_RATE)
    ks = [f.metadata["emolive"]["frame"] for f in frames if isinstance(f, OutputImageRawFrame)]
    assert ks == sorted(ks) and len(set(ks)) == len(ks)
    assert all(f.pts == f.metadata["emolive"]["frame"] * 1_000_000_000 // FPS
               for f in frames if isinstance(f, OutputImageRawFrame))
    # The voice comes out unchanged and in order: all of segment 1, a prefix of segment 2, nothing after.
    out_audio = [f for f in frames if isinstance(f, TTSAudioRawFrame)]
    assert out_audio[:len(voice)] == voice and all(a is b for a, b in zip(out_audio, voice))
    second = out_audio[len(voice):]
    assert half - 10 <= len(second) < half and all(a is b for a, b in zip(second, voice))
    # After the interruption: no voice and no speech-driven frames, only idle life.
    after = frames[ii + 1:]
    assert not any(isinstance(f, TTSAudioRawFrame) for f in after) and not images(after, True)
    assert len(images(after, False)) >= 5
    # Each speech image comes right before the voice that plays from its instant on. An idle frame may
    # still leave between TTSStartedFrame and the first voice (the segment starts with its voice).
    first = images(seg1, True)[0]
    k0 = first.metadata["emolive"]["frame"]
    assert seg1.index(first) < seg1.index(voice[0]), "the first speech frame comes before the first voice"
    pos = 0
    for f in seg1:
        if isinstance(f, TTSAudioRawFrame):
            pos += len(f.audio) // 2
        elif isinstance(f, OutputImageRawFrame) and f.metadata["emolive"]["frame"] >= k0:
            at = (f.metadata["emolive"]["frame"] - k0) * TTS_RATE // FPS
            assert pos <= at < pos + CHUNK + 1

    # The mouth moves with the speech (re-measured on the output, per the clip's word alignment) and
    # rests after the interruption.
    jaw = np.array([blendshape(landmarker, f, "jawOpen") for f in images(seg1, True)])
    assert len(jaw) == len(speech_mask)
    talking, silent = jaw[speech_mask].mean(), jaw[~speech_mask].mean()
    # Each service's idle life is drawn afresh, which moves both means: talking - silent measured 0.0187-0.0237
    # over seven runs on the default avatar at rest (talking 0.032-0.037, silent 0.012-0.014).
    assert talking > 2 * silent and talking > silent + 0.01, (talking, silent)
    assert np.percentile(jaw[speech_mask], 90) - np.percentile(jaw[speech_mask], 10) > 0.03
    rest = [blendshape(landmarker, f, "jawOpen") for f in images(after, False)[-3:]]
    # Which idle frames these are depends on the wall-clock pacing of idle life; over the happy pose one of
    # them may open the jaw a little, so the rest is judged by the middle one.
    # Compared with the open half of the speech: the lips close on m, b and p, so half the speech frames read
    # as shut as a rest (median 0.02-0.03), while the happy pose holds the silent jaw a little open (up to 0.06).
    opened = np.percentile(jaw[speech_mask], 75)
    assert np.median(rest) < opened, (rest, opened)
    # The emotion frame took effect: the target is happy at 0.8, and the face smiles more than before.
    target = service.emotion["target"]
    assert target["mixture"] == {"happy": 1.0} and target["intensity"] == pytest.approx(0.8)

    def smile(f):
        return blendshape(landmarker, f, "mouthSmileLeft") + blendshape(landmarker, f, "mouthSmileRight")

    before = np.mean([smile(f) for f in images(frames[:i1], False)])
    assert np.mean([smile(f) for f in images(after, False)[-3:]]) > before + 0.1
    assert service.stats["interruptions"] == 1


def test_expressive_tags_in_passing_text_set_the_emotion(engine, landmarker):
    """Tags an LLM writes for an expressive TTS (<<delivery>>, [[sound]], [audio tag], Cartesia's emotion tag)
    set the avatar's emotion as their text frame passes; the frames go on unchanged; other brackets and
    pacing do nothing; the option turns it off. The cheerful face is re-measured on the output."""
    service = EmoliveVideoService(engine=engine, fps=FPS)
    seen = {}

    def target():
        t = service.emotion["target"]
        return {k: round(v, 3) for k, v in t["mixture"].items()}, round(t["intensity"], 3)

    async def send(worker, sink, frame, idle_after=0):
        await worker.queue_frame(frame)
        await sink.wait_for(lambda fr: frame in fr and count(fr, OutputImageRawFrame, after=frame) >= idle_after)
        return target()

    async def script(worker, sink):
        seen["calm"] = await send(worker, sink, TextFrame("<emotion value='calm'/> Hello."), idle_after=10)
        seen["calm_frames"] = images(sink.frames, False)[-3:]
        cheerful = TTSTextFrame("<<cheerful>> Good to see you again!", "sentence")
        seen["cheerful"] = await send(worker, sink, cheerful, idle_after=15)  # 250 ms transition: 6 frames
        seen["cheerful_frames"] = images(sink.frames, False)[-3:]
        seen["passed"] = cheerful in sink.frames and cheerful.text == "<<cheerful>> Good to see you again!"
        seen["not_tags"] = await send(worker, sink, LLMTextFrame("See note [1], <<slow: 4821>> and ^^this^^."))
        seen["sigh"] = await send(worker, sink, LLMTextFrame("Oh well [[sigh]]"))
        seen["audio_tag"] = await send(worker, sink, TextFrame("[surprised] Really?"))
        seen["two"] = await send(worker, sink, TextFrame("<<angry>> No! <emotion value=\"scared\"/> Wait."))

    asyncio.run(run(service, script))
    assert seen["calm"][0] == {"neutral": 1.0}
    assert seen["cheerful"] == ({"happy": 1.0}, 0.7) and seen["passed"]
    assert seen["not_tags"] == seen["cheerful"]  # "[1]", pacing and emphasis name no emotion
    assert seen["sigh"] == ({"sad": 1.0}, 0.4)
    assert seen["audio_tag"] == ({"surprised": 1.0}, 0.8)
    assert seen["two"] == ({"fear": 1.0}, 0.8)  # in order: the last tag of a frame holds
    assert service.stats["tags"] == 6

    def smile(f):
        return blendshape(landmarker, f, "mouthSmileLeft") + blendshape(landmarker, f, "mouthSmileRight")

    before = np.mean([smile(f) for f in seen["calm_frames"]])
    assert np.mean([smile(f) for f in seen["cheerful_frames"]]) > before + 0.1

    off = EmoliveVideoService(engine=engine, fps=FPS, expressive_tags=False)
    kept = {}

    async def untouched(worker, sink):
        await sink.wait_for(lambda fr: len(images(fr, False)) >= 1)
        kept["before"] = off.emotion["target"]
        tagged = TextFrame("<<cheerful>> [[laugh]]")
        await worker.queue_frame(tagged)
        await sink.wait_for(lambda fr: tagged in fr)
        kept["after"] = off.emotion["target"]

    asyncio.run(run(off, untouched))
    assert kept["after"] == kept["before"] and off.stats["tags"] == 0
