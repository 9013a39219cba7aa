"""Past capacity through the real server on loopback (engine/overload.py): sessions whose frames cannot be
drawn in time step down to a frame rate, all of them alike; the control connection is told; only the frames
shown are sent; the voice goes on; the process's load is in /health and /metrics."""
import asyncio
import json
import time

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from engine.overload import shown
from speech_doubles import RmsLoudnessModel
from streaming.app_common import GOVERNOR
from streaming.parts import EngineParts, default_emotion_factory
from server_harness import Server, connect, until

pytestmark = pytest.mark.timeout(240)

SIZE = 64
RENDER_S = 0.07  # longer than a 25 fps frame (40 ms); the render loop draws one frame at a time


class SlowRenderer:
    """Takes RENDER_S per frame. A sleep stands for the cost of an overloaded process without loading the
    machine: whatever the machine's load, 25 fps cannot be kept (over 40 % of the frames missed) and 12.5 can."""

    def render(self, state):
        time.sleep(RENDER_S)
        return np.full((SIZE, SIZE, 3), 128, np.uint8)


def test_overloaded_sessions_step_down_together_and_keep_their_voice():
    parts = EngineParts(RmsLoudnessModel, default_emotion_factory, lambda avatar: SlowRenderer(), 0.04)

    async def scenario():
        async with Server(parts) as server:
            clients = [await connect(server) for _ in range(2)]
            assert all(c[2]["status"] == 200 for c in clients)
            runners = [server.sessions[c[2]["session_id"]] for c in clients]
            sent = {r.id: [] for r in runners}
            audio = {r.id: [] for r in runners}
            for r in runners:
                r.video_out.tap = lambda pts, yuv, r=r: sent[r.id].append((pts, r.frame_share))
                r.audio_out.tap = lambda pts, s16, r=r: audio[r.id].append(pts)
            events = []
            async with server.http.ws_connect(f"{server.url}/ws?session={runners[0].id}") as ws:
                async def read():
                    async for msg in ws:
                        events.append(json.loads(msg.data))
                reader = asyncio.ensure_future(read())
                await until(lambda: any(e.get("type") == "video_rate" for e in events), "a video_rate event", 120)
                lowered = {r.id: len(sent[r.id]) for r in runners}
                voice = {r.id: len(audio[r.id]) for r in runners}
                await until(lambda: all(len(sent[r.id]) >= lowered[r.id] + 20 for r in runners),
                            "20 more frames sent by each session", 60)
                async with server.http.get(server.url + "/health") as resp:
                    health = await resp.json()
                # Read together: a level may change later (when one session has closed, the other's may rise).
                health["shares"] = [r.frame_share for r in runners]
                async with server.http.get(server.url + "/metrics") as resp:
                    metrics = await resp.text()
                stats = [r.stats() for r in runners]
                reader.cancel()
            for c in clients:
                await c[0].close()
            return runners, sent, audio, lowered, voice, events, health, metrics, stats

    runners, sent, audio, lowered, voice, events, health, metrics, stats = asyncio.run(scenario())
    event = next(e for e in events if e.get("type") == "video_rate")
    assert event["fps"] < 25 and "frames missed" in event["reason"]
    assert health["shares"][0] == health["shares"][1] < 1  # one level for every session of the process
    origin = runners[0].scheduler.video_pts(0)
    for r in runners:
        after = sent[r.id][lowered[r.id]:]
        # Each frame sent at the reduced rate is one that the share shows; the first after each change may
        # have been chosen at the share before it.
        wrong = [pts for pts, share in after if not shown((pts - origin) // 3600, share)]
        changes = 1 + sum(a[1] != b[1] for a, b in zip(after, after[1:]))
        assert len(wrong) <= changes, (len(wrong), changes, len(after))
        assert len(audio[r.id]) > voice[r.id] + 25  # the voice went on: audio frames were sent meanwhile
        pts = np.array(audio[r.id])
        assert np.all(np.diff(pts) > 0)
    load = health["load"]
    assert load["level"] >= 1 and load["fps"] == pytest.approx(25 * float(health["shares"][0]), abs=0.01)
    assert "emolive_overload_level " in metrics and 'emolive_session_video_fps{session="' in metrics
    assert all(s["video_fps"] < 25 for s in stats)


def test_a_process_that_misses_frames_at_its_floor_refuses_new_sessions_with_retry_after():
    parts = EngineParts(RmsLoudnessModel, default_emotion_factory, lambda avatar: SlowRenderer(), 0.04)

    async def scenario():
        # overload_min_fps 25: the floor is full rate, so frames missed there mean a new session would not hold
        async with Server(parts, overload_min_fps=25) as server:
            pc, _, answer, _ = await connect(server)
            assert answer["status"] == 200
            governor = server.app[GOVERNOR]
            await until(governor.refuses_new, "the process refusing new sessions", 60)
            other = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            other.addTransceiver("audio", direction="sendrecv")
            other.addTransceiver("video", direction="recvonly")
            await other.setLocalDescription(await other.createOffer())
            async with server.http.post(server.url + "/offer",
                                        json={"sdp": other.localDescription.sdp, "type": "offer"}) as r:
                refused = (r.status, await r.json(), r.headers.get("Retry-After"))
            async with server.http.post(server.url + "/whip", data="v=0\r\n",
                                        headers={"Content-Type": "application/sdp"}) as r:
                whip = (r.status, await r.json())
            async with server.http.get(server.url + "/metrics") as r:
                metrics = await r.text()
            await other.close()
            await pc.close()
            return refused, whip, metrics, len(server.sessions)

    refused, whip, metrics, open_sessions = asyncio.run(scenario())
    status, body, retry_after = refused
    assert status == 503 and body["error"] == "server_busy" and "would not hold" in body["reason"]
    assert retry_after == "10"
    assert "emolive_rejected_busy_total 1" in metrics and open_sessions == 1
    assert whip[0] == 400  # an unusable offer is refused for what it is first
