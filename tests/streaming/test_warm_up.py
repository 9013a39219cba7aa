"""A worker pays its first-call costs before it reports ready: the warm-up runs the engine, the encoders and
a peer-to-peer call, and the worker runs it before it serves."""
import asyncio
import io
import sys

import numpy as np
import pytest

from engine.types import FaceState, SpeechFrame
from streaming import warm_up as warming
from streaming import worker
from streaming.app_common import CONFIG, PARTS
from streaming.config import ServerConfig
from streaming.encoders import TunedVp8Encoder, warm_up_encoders
from streaming.parts import EngineParts, warm_up_engine

SIZE = 64


class CountingModel:
    """Stands in for the audio model: one frame per 40 ms pushed, voiced where the chunk is not silent."""

    def __init__(self):
        self.samples = 0
        self.voiced_chunks = 0
        self.silent_chunks = 0

    def push(self, pcm, sample_rate):
        start = self.samples
        self.samples += len(pcm)
        loud = float(np.abs(pcm).max()) > 0.01
        self.voiced_chunks += loud
        self.silent_chunks += not loud
        step = sample_rate // 25
        return [SpeechFrame(FaceState.neutral(k / 25), 1.0 if loud else 0.0)
                for k in range(-(-start // step), -(-self.samples // step))]


class CountingEmotion:
    def __init__(self):
        self.applied = []
        self.idled = 0

    def idle(self, state, vad):
        self.idled += 1
        return state

    def apply(self, state, vad=0.0):
        out = state.replace(t=state.t)
        self.applied.append(out)
        return out


class CountingRenderer:
    def __init__(self):
        self.rendered = []
        self.closed = False

    def render(self, state):
        self.rendered.append(state)
        return np.zeros((SIZE, SIZE, 3), np.uint8)

    def close(self):
        self.closed = True


def counting_parts():
    made = {"models": [], "emotions": [], "renderers": [], "avatars": []}

    def model():
        made["models"].append(CountingModel())
        return made["models"][-1]

    def emotion(initial):
        made["emotions"].append(CountingEmotion())
        return made["emotions"][-1]

    def renderer(avatar):
        made["avatars"].append(avatar)
        made["renderers"].append(CountingRenderer())
        return made["renderers"][-1]

    return EngineParts(model, emotion, renderer, 0.07), made


def test_engine_warm_up_runs_the_model_on_silence_and_voice_and_renders_its_states():
    parts, made = counting_parts()
    frames = warm_up_engine(parts, "my-avatar", sample_rate=48_000, seconds=1.0, renders=6)
    (model,), (emotion,), (renderer,) = made["models"], made["emotions"], made["renderers"]
    assert model.samples == 2 * 48_000  # a second of silence, then a second of voice, in 20 ms chunks
    assert model.silent_chunks == 50 and model.voiced_chunks == 50
    assert emotion.idled == emotion.applied.__len__() == 50  # every face state through idle life and emotion
    assert made["avatars"] == ["my-avatar"]
    assert len(renderer.rendered) == 6 and renderer.closed
    voiced = {id(s) for s in emotion.applied[25:]}  # the states the voiced second gave
    assert sum(id(s) in voiced for s in renderer.rendered) == 5  # the neutral face, then the speaking ones
    assert len(frames) == 6 and all(f.shape == (SIZE * 3 // 2, SIZE) and f.dtype == np.uint8 for f in frames)


class CountingEncoder:
    made = 0

    def __init__(self):
        CountingEncoder.made += 1
        self.encoded = []
        self.closed = False

    def encode(self, frame, force_keyframe=False):
        self.encoded.append((getattr(frame, "width", None), getattr(frame, "height", None), frame.format.name,
                             frame.pts, force_keyframe))
        return [b""], 0

    def close(self):
        self.closed = True


def test_encoder_warm_up_encodes_every_frame_and_some_audio():
    videos, audios = [], []

    def video():
        videos.append(CountingEncoder())
        return videos[-1]

    def audio():
        audios.append(CountingEncoder())
        return audios[-1]

    frames = [np.zeros((SIZE * 3 // 2, SIZE), np.uint8)] * 4
    warm_up_encoders(frames, sample_rate=48_000, video=video, audio=audio, audio_frames=3)
    (v,), (a,) = videos, audios
    assert [e[:4] for e in v.encoded] == [(SIZE, SIZE, "yuv420p", i * 3600) for i in range(4)]
    assert [e[4] for e in v.encoded] == [True, False, False, False] and v.closed
    assert [(e[2], e[3]) for e in a.encoded] == [("s16", i * 960) for i in range(3)]


def test_encoder_warm_up_with_the_real_encoders():
    """The tuned VP8 encoder and aiortc's Opus encoder take what the warm-up gives them."""
    made = []

    def video():
        made.append(TunedVp8Encoder())
        return made[-1]

    warm_up_encoders([np.full((SIZE * 3 // 2, SIZE), 128, np.uint8)] * 2, video=video)
    assert made[0].codec is not None  # the codec was built and used
    assert made[0]._thread is not None and made[0]._thread._shutdown  # and its thread ended


def test_loopback_call_carries_audio_and_video():
    arrived = asyncio.run(asyncio.wait_for(warming.loopback_call(frames=3), 30))
    assert arrived >= 6


def test_warm_up_runs_engine_encoders_and_call_in_turn():
    config = ServerConfig(avatar="face.png", sample_rate=48_000)
    parts, _ = counting_parts()
    app = {CONFIG: config, PARTS: parts}
    calls = []
    rendered = [np.zeros((6, 4), np.uint8)]

    def engine(p, avatar, sample_rate):
        calls.append(("engine", p is parts, avatar, sample_rate))
        return rendered

    def encoders(frames, sample_rate, video):
        calls.append(("encoders", frames is rendered, sample_rate, video))

    async def peer():
        calls.append(("call",))

    took = worker.warm_up(app, engine=engine, encoders=encoders, peer=peer)
    assert calls == [("engine", True, "face.png", 48_000), ("encoders", True, 48_000, TunedVp8Encoder),
                     ("call",)]
    assert set(took) == {"engine_s", "encoders_s", "call_s"}


@pytest.fixture
def fake_worker_start(monkeypatch):
    """worker.main with its app, warm-up and serving replaced by recorders of the order they ran in."""
    order = []
    monkeypatch.setattr(worker, "prepare_default_avatar", lambda app: order.append("prepare_default_avatar"))
    monkeypatch.setattr(worker, "freeze_startup_heap", lambda: order.append("freeze_startup_heap"))
    monkeypatch.setattr(worker, "_watch_front", lambda: None)

    monkeypatch.setattr(worker, "create_app", lambda config: order.append("create_app") or _Routed())
    monkeypatch.setattr(worker.web, "run_app", lambda app, **kw: order.append("serve"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(ServerConfig().model_dump_json().encode() + b"\n")))
    return order


class _Routed(dict):
    class router:  # noqa: N801 - stands in for the app's router
        @staticmethod
        def add_get(path, handler):
            pass


def test_worker_warms_up_before_it_serves(fake_worker_start, monkeypatch):
    monkeypatch.setattr(worker, "warm_up", lambda app: fake_worker_start.append("warm_up"))
    assert worker.main(["sock"]) == 0
    assert fake_worker_start == ["create_app", "prepare_default_avatar", "warm_up", "freeze_startup_heap", "serve"]


def test_worker_serves_when_the_warm_up_fails(fake_worker_start, monkeypatch):
    def fails(app):
        fake_worker_start.append("warm_up")
        raise RuntimeError("no network")

    monkeypatch.setattr(worker, "warm_up", fails)
    assert worker.main(["sock"]) == 0
    assert fake_worker_start[-2:] == ["freeze_startup_heap", "serve"]
