"""The streaming server in-process with a real aiortc client on loopback (real Opus + VP8).

The audio-to-expression model is a test double here (loudness -> jawOpen) until
the real one lands; renderer and emotion controller are the real ones.
"""
import asyncio
import json
import re

import numpy as np
import pytest

from server_harness import Server, connect, more_frames_sent

pytestmark = pytest.mark.timeout(180)


def test_speech_in_video_and_voice_out(parts, speech_wav):
    async def scenario():
        async with Server(parts) as server:
            pc, tracks, answer, player = await connect(server, speech_wav)
            assert answer["status"] == 200
            # 128 bits of hex: never a leading '-', which `emolive ctl --session ID` would read as an option.
            assert re.fullmatch(r"[0-9a-f]{32}", answer["session_id"]), answer["session_id"]
            runner = server.sessions[answer["session_id"]]
            async with server.http.ws_connect(f"{server.url}/ws?session={answer['session_id']}") as ws:
                await ws.send_json({"type": "subscribe", "stream": "face_state"})
                for _ in range(50):
                    if "video" in tracks and "audio" in tracks:
                        break
                    await asyncio.sleep(0.1)

                async def take_video(n):
                    return [await tracks["video"].recv() for _ in range(n)]

                async def take_audio(n):
                    return [await tracks["audio"].recv() for _ in range(n)]

                async def take_faces(n):
                    faces = []
                    while len(faces) < n:
                        msg = json.loads((await ws.receive()).data)
                        if msg["type"] == "face_state":
                            faces.append(msg)
                    return faces

                video, audio, faces = await asyncio.gather(take_video(100), take_audio(200), take_faces(100))
            stats = runner.stats()
            await pc.close()
            if player is not None and player.audio is not None:
                player.audio.stop()
            return video, audio, faces, stats

    video, audio, faces, stats = asyncio.run(scenario())
    # Video: 512x512 frames whose pts step by one 25 fps frame (90 kHz clock), derived from audio samples.
    assert video[0].width == 512 and video[0].height == 512
    steps = np.diff([f.pts for f in video])
    assert np.median(steps) == 3600 and np.all(steps > 0)
    # The presenter's voice came back (Opus round trip) ...
    pcm = np.concatenate([f.to_ndarray().reshape(-1).astype(np.float32) for f in audio])
    assert np.abs(pcm).max() > 1000
    # ... and moved the mouth, which also rested at some point.
    jaw = np.array([f["coeffs"]["jawOpen"] for f in faces])
    assert jaw.max() > 0.2 and jaw.min() < 0.05
    assert stats["audio_chunks_in"] > 50 and stats["speech_frames"] > 25


def test_control_protocol_answers_and_survives_bad_input(parts):
    async def scenario():
        # 1 message/s after a burst of 20: the flood below runs dry however slowly a loaded machine
        # works through it (it would take 30 s to refill), and the 10 messages before it fit the burst.
        async with Server(parts, ws_rate_per_s=1, ws_burst=20, ws_max_message_bytes=2048) as server:
            pc, tracks, answer, _ = await connect(server)
            sid = answer["session_id"]
            got = []
            async with server.http.ws_connect(f"{server.url}/ws?session={sid}") as ws:

                async def ask(payload):
                    await (ws.send_str(payload) if isinstance(payload, str) else ws.send_json(payload))
                    while True:
                        msg = json.loads((await ws.receive()).data)
                        if msg["type"] in ("state", "error"):
                            got.append(msg)
                            return msg

                hello = json.loads((await ws.receive()).data)
                assert hello["type"] == "hello" and hello["session_id"] == sid
                happy = await ask({"type": "set_emotion", "emotion": "happy", "intensity": 0.8,
                                   "transition_ms": 250, "id": 7})
                mix = await ask({"type": "set_emotion", "mixture": {"happy": 0.7, "surprised": 0.3},
                                 "intensity": 1.0})
                prompt = await ask({"type": "prompt", "text": "very happy with a little surprised"})
                # The state reports the emotion of the last frame rendered: wait for the transition to
                # play out on rendered frames (however fast the machine renders them).
                # (One question a second: the bucket refills as fast as it is asked.)
                for _ in range(30):
                    state = await ask({"type": "get_state"})
                    if state["type"] == "state" and state["emotion"]["mixture"].get("happy", 0) > 0.5:
                        break
                    await asyncio.sleep(1.0)
                errors = [await ask(bad) for bad in (
                    "{not json", "[1, 2]", {"type": "dance"}, {"type": "set_emotion", "emotion": "happy",
                                                               "intensity": 7},
                    {"type": "set_emotion", "emotion": "grumpy"}, "x" * 5000, {"type": "get_state", "v": 99})]
                # Sent at once, not one round trip at a time: on a loaded machine the
                # bucket would refill between round trips and never run dry.
                for _ in range(40):
                    await ws.send_json({"type": "get_state"})
                flood = []
                while len(flood) < 40:
                    msg = json.loads((await ws.receive()).data)
                    if msg["type"] in ("state", "error"):
                        flood.append(msg)
                for _ in range(100):  # the bucket refills (1 message/s)
                    after = await ask({"type": "interrupt"})
                    if after["type"] == "state":
                        break
                    await asyncio.sleep(0.2)
            counters = server.sessions[sid].counters
            frames_before = counters["frames_sent"]
            frames_after = await more_frames_sent(counters)  # the media kept flowing after all that
            await pc.close()
            return happy, mix, prompt, state, errors, flood, after, frames_before, frames_after

    happy, mix, prompt, state, errors, flood, after, before, after_frames = asyncio.run(scenario())
    assert happy["type"] == "state" and happy["id"] == 7
    assert mix["type"] == "state"
    assert prompt["type"] in ("state", "error")
    if prompt["type"] == "error":
        assert prompt["code"] == "unsupported"  # no prompt parser in this build
    assert state["emotion"]["mixture"].get("happy", 0) > 0.5
    assert [e["code"] for e in errors] == ["bad_json", "bad_json", "unknown_type", "bad_message",
                                           "unknown_emotion", "too_large", "unsupported_version"]
    assert any(m["type"] == "error" and m["code"] == "rate_limited" for m in flood)
    assert after["type"] == "state"  # still answering after all that
    assert after_frames > before  # and the media kept flowing


def test_admission_control_answers_503_with_a_reason(parts):
    async def scenario():
        async with Server(parts, max_sessions=1) as server:
            pc1, _, first, _ = await connect(server)
            pc2, _, second, _ = await connect(server)
            async with server.http.get(server.url + "/health") as r:
                health = await r.json()
            await pc1.close()
            await pc2.close()
            return first, second, health

    first, second, health = asyncio.run(scenario())
    assert first["status"] == 200
    assert second["status"] == 503 and second["error"] == "server_full" and "1 sessions" in second["reason"]
    assert health["sessions"] == 1


def test_disconnect_cleans_up_everything(parts):
    async def scenario():
        async with Server(parts) as server:
            pc, tracks, answer, _ = await connect(server)
            runner = server.sessions[answer["session_id"]]
            for _ in range(50):
                if "video" in tracks:
                    break
                await asyncio.sleep(0.1)
            await tracks["video"].recv()
            async with server.http.get(server.url + "/metrics") as r:
                metrics = await r.text()
            await pc.close()  # the peer leaves: DTLS close -> server side closes
            await asyncio.wait_for(runner.closed.wait(), 30)
            return runner, server.sessions.copy(), metrics

    runner, sessions, metrics = asyncio.run(scenario())
    assert "emolive_sessions 1" in metrics and "emolive_session_fps" in metrics
    assert sessions == {}
    assert not runner.tasks
    assert runner.worker._shutdown
    assert runner.pc.connectionState == "closed"
    assert runner.audio_out.readyState == "ended" and runner.video_out.readyState == "ended"
