"""The talkinghead stream: chunks of the voice sent and the frames rendered for it, on the audio clock."""
from __future__ import annotations

import asyncio
import base64
import json
from types import SimpleNamespace

import numpy as np
import pytest

from engine.types import BLENDSHAPE_NAMES, FaceState
from streaming.config import ServerConfig
from streaming.control import CHUNK_BACKLOG, ControlConnection
from streaming.protocol import TalkingHeadChunk, parse_message
from streaming.talkinghead import CHUNK_FRAMES, TalkingHeadStream

SPF = 1920  # 48 kHz / 25 fps


class Frame:
    """What AudioOutTrack hands its mirrors: an audio frame with its timeline pts."""

    def __init__(self, pts, s16):
        self.pts, self._s16 = pts, s16

    def to_ndarray(self):
        return self._s16.reshape(1, -1)


def _runner():
    return SimpleNamespace(id="abcdefgh1234", frame_listeners=set(), audio_out=SimpleNamespace(mirrors=[]),
                           scheduler=SimpleNamespace(config=SimpleNamespace(sample_rate=48_000,
                                                                            samples_per_video_frame=SPF)))


def _stream():
    runner = _runner()
    stream, got = TalkingHeadStream(runner), []
    stream.add(got.append)
    return runner, stream, got


def _play(runner, start, n, value=lambda pos: pos % 1000):
    """Send n outbound audio frames of 960 samples from timeline sample `start` through the track's mirrors."""
    for i in range(n):
        pts = start + 960 * i
        s16 = np.array([value(p) for p in range(pts, pts + 960)], np.int16)
        for mirror in list(runner.audio_out.mirrors):
            mirror(Frame(pts, s16))


def _render(runner, frames):
    for k, jaw in frames.items():
        for listener in list(runner.frame_listeners):
            listener(k, FaceState.from_dict({"jawOpen": jaw}))


def test_a_chunk_is_the_audio_sent_and_the_frames_rendered_for_it():
    runner, stream, got = _stream()
    _render(runner, {k: 0.1 * (k - 9) for k in range(10, 16)})
    _play(runner, 10 * SPF, 2 * CHUNK_FRAMES)  # frames 10..14: one chunk
    assert len(got) == 1
    msg = TalkingHeadChunk.model_validate(got[0])  # the wire schema
    assert (msg.sample, msg.frame, msg.t, msg.sample_rate) == (10 * SPF, 10, 10 * SPF / 48_000, 48_000)
    audio = np.frombuffer(base64.b64decode(msg.audio), "<i2")
    assert np.array_equal(audio, np.arange(10 * SPF, 15 * SPF) % 1000)
    (anim,) = msg.anims
    assert anim.name == "blendshapes" and anim.delay == 0 and anim.dt == [40.0] * 5
    assert sorted(anim.vs) == sorted(BLENDSHAPE_NAMES) and all(len(v) == 5 for v in anim.vs.values())
    assert anim.vs["jawOpen"] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert json.loads(json.dumps(got[0])) == got[0]  # plain JSON


def test_a_frame_not_rendered_repeats_the_one_before_it():
    runner, stream, got = _stream()
    _render(runner, {0: 0.3, 1: 0.6, 3: 0.9})  # 2 and 4 were skipped as late
    _play(runner, 0, 10)
    assert got[0]["anims"][0]["vs"]["jawOpen"] == pytest.approx([0.3, 0.6, 0.6, 0.9, 0.9])


def test_an_audio_jump_closes_the_chunk_and_durations_add_up_to_its_audio():
    runner, stream, got = _stream()
    _render(runner, {k: 0.5 for k in range(0, 20)})
    _play(runner, 0, 3)  # 0..2880: frame 0 whole, frame 1 half
    _play(runner, 20 * 960, 10)  # the sender skipped ahead to sample 19200 (frame 10)
    first, second = got
    assert first["anims"][0]["dt"] == [40.0, 20.0] and (first["sample"], first["frame"]) == (0, 0)
    assert len(base64.b64decode(first["audio"])) == 2 * 2880
    assert (second["sample"], second["frame"], second["anims"][0]["dt"]) == (19_200, 10, [40.0] * 5)


def test_the_last_subscriber_leaving_unhooks_the_stream():
    runner, stream, got = _stream()
    assert runner.frame_listeners and runner.audio_out.mirrors
    stream.discard(got.append)
    assert not runner.frame_listeners and not runner.audio_out.mirrors


def test_subscribe_accepts_the_talkinghead_stream():
    assert parse_message({"type": "subscribe", "stream": "talkinghead"}).stream == "talkinghead"
    assert parse_message({"type": "unsubscribe", "stream": "talkinghead"}).stream == "talkinghead"


def test_a_slow_subscriber_loses_its_oldest_chunks_and_says_how_many():
    class Socket:
        closed = False

        def __init__(self):
            self.sent = []

        async def send_str(self, text):
            self.sent.append(json.loads(text))

    async def scenario():
        ws = Socket()
        conn = ControlConnection(ws, SimpleNamespace(), ServerConfig())
        for i in range(CHUNK_BACKLOG + 5):  # the client read nothing meanwhile
            conn.send_chunk({"type": "talkinghead", "sample": i})
        conn.send({"type": "state"})  # an answer queued after them goes first
        writer = asyncio.get_running_loop().create_task(conn._writer())
        while len(ws.sent) < CHUNK_BACKLOG + 1:
            await asyncio.sleep(0)
        writer.cancel()
        return ws.sent

    sent = asyncio.run(scenario())
    assert sent[0]["type"] == "state"
    assert [m["sample"] for m in sent[1:]] == list(range(5, CHUNK_BACKLOG + 5))
    assert {m["dropped"] for m in sent[1:]} == {5}
