"""PCM push (/push) on loopback: pushed TTS audio comes back on the outbound audio track and drives the
model; bad input (no start, wrong rate, odd bytes, huge frames, too fast) gets errors; the media goes on."""
import asyncio
import json

import aiohttp
import numpy as np
import pytest

from engine.audio.io import read_audio_file
from streaming.push import PushFeed
from streaming.protocol import ProtocolError
from streaming.sources import resample
from server_harness import aligned_r, best_lag, envelope, received_pcm, tracks_ready
from server_harness import Server, connect, more_frames_sent

pytestmark = pytest.mark.timeout(240)
AUTH = {"Authorization": "Bearer s3cret"}


def test_push_feed_refuses_whole_frames_and_flushes():
    feed = PushFeed(48_000, max_seconds=1.0)
    with pytest.raises(ProtocolError, match="start"):
        feed.push(b"\0\0")
    feed.start(16_000)
    with pytest.raises(ProtocolError, match="odd byte count"):
        feed.push(b"\0\0\0")
    with pytest.raises(ProtocolError, match="over 1 s"):
        feed.push(bytes(2 * 16_001))
    half = (np.ones(8_000) * 1000).astype("<i2").tobytes()  # 0.5 s
    feed.push(half)
    with pytest.raises(ProtocolError, match="buffer full"):
        feed.push(half + half[:4000])  # would not fit: refused whole, nothing half-stored
    assert feed.counters["frames_refused"] == 1 and 23_000 < len(feed.buffer) < 24_100
    out = feed.take(960)
    assert len(out) == 960 and abs(float(out[-1]) - 1000 / 32768) < 1e-3  # resampled, level kept
    assert feed.flush() > 20_000 and len(feed.buffer) == 0


def test_pushed_audio_is_spoken_and_bad_input_does_not_stop_the_stream(parts, speech_wav):  # noqa: F811
    pcm, rate = read_audio_file(speech_wav)
    tts = resample(pcm, rate, 24_000)  # a TTS at 24 kHz
    s16 = (np.clip(tts, -1, 1) * 32767).astype("<i2").tobytes()

    async def scenario():
        async with Server(parts, token="s3cret") as server:
            pc, tracks, answer, _ = await connect(server, headers=AUTH)
            sid = answer["session_id"]
            runner = server.sessions[sid]
            await tracks_ready(tracks)
            url = f"{server.url}/push?session={sid}"
            async with server.http.get(url) as r:
                unauth = r.status
            async with server.http.ws_connect(url, headers=AUTH) as ws:
                try:  # one pusher per session
                    await server.http.ws_connect(url, headers=AUTH)
                    busy = None
                except aiohttp.WSServerHandshakeError as e:
                    busy = e.status

                async def answer_of(payload):
                    await (ws.send_bytes(payload) if isinstance(payload, bytes) else ws.send_str(payload))
                    return json.loads((await ws.receive()).data)

                bad = [await answer_of(p) for p in (
                    b"\0\0", json.dumps({"type": "start", "sample_rate": 1000}), "{oops", json.dumps({"type": "x"}))]
                started = await answer_of(json.dumps({"type": "start", "sample_rate": 24_000, "id": 3}))
                bad += [await answer_of(p) for p in (b"\0\0\0", bytes(2 * 24_000 * 2))]
                # Faster than real time: the whole utterance at once, in 100 ms frames.
                step = 2 * 2400
                for i in range(0, len(s16), step):
                    await ws.send_bytes(s16[i:i + step])
                audio = await asyncio.gather(*[tracks["audio"].recv() for _ in range(400)])
                drained = json.loads((await ws.receive(timeout=10)).data)
                speech_frames = runner.stats()["speech_frames"]
                # Too fast: 25 s of audio into a 20 s buffer; then flush what is pending.
                loud = (np.random.default_rng(0).normal(0, 3000, 24_000)).astype("<i2").tobytes()
                for _ in range(25):
                    await ws.send_bytes(loud)
                await ws.send_str(json.dumps({"type": "status"}))
                refused = []
                while True:
                    msg = json.loads((await ws.receive(timeout=10)).data)
                    if msg["type"] == "status":
                        status = msg
                        break
                    refused.append(msg)
                flushed = await answer_of(json.dumps({"type": "flush"}))
                sent_before = runner.counters["frames_sent"]
                sent_after = await more_frames_sent(runner.counters)
            await pc.close()
            return unauth, busy, bad, started, audio, drained, speech_frames, refused, status, flushed, \
                sent_before, sent_after

    (unauth, busy, bad, started, audio, drained, speech_frames, refused, status, flushed,
     sent_before, sent_after) = asyncio.run(scenario())
    assert unauth == 401 and busy == 409
    assert [b.get("code") for b in bad] == ["no_start", "bad_message", "bad_json", "unknown_type",
                                            "bad_audio", "too_large"]
    assert started["type"] == "started" and started["id"] == 3 and started["engine_rate"] == 48_000
    # What was pushed is what the session sends back (Opus round trip), delayed by the pipeline latency.
    got = received_pcm(audio)
    got_env, tts_env = envelope(got, 48_000), envelope(tts, 24_000)
    lag, r = best_lag(got_env, tts_env, 100)
    # Under load the scheduler may drain pauses or skip late audio, which bends a single-lag envelope
    # correlation (0.68 seen once in CI) and moves its best lag (-3 frames seen once, aligned r 0.89)
    # without losing the speech: compared in order, gaps allowed.
    aligned = aligned_r(got_env, tts_env, max_lag=100)
    assert aligned > 0.8, (lag, r, aligned)
    assert drained["type"] == "drained" and speech_frames > 80
    assert refused and all(m["code"] == "buffer_full" for m in refused)
    # Full (frames were refused) and never beyond its 20 s bound; how much of it already played while the
    # 25 frames went in depends on the machine's speed, so the level is not pinned.
    assert 0 < status["buffered_ms"] <= 20_000 and status["frames_refused"] == len(refused)
    assert flushed["type"] == "flushed" and 0 < flushed["dropped_ms"] <= status["buffered_ms"]
    assert flushed["buffered_ms"] == 0
    assert sent_after > sent_before  # the stream went on through all of it
