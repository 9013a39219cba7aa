"""reference_image over the control websocket, with a real smiling portrait: the avatar's received frames
smile (mouth corners re-detected); bad images get errors; the media goes on."""
import asyncio
import base64
import json

import numpy as np
import pytest

from engine.face_geometry import EYE_OUTER_L, EYE_OUTER_R, MOUTH_CORNER_L, MOUTH_CORNER_R
from server_harness import tracks_ready
from server_harness import Server, connect, more_frames_sent

pytestmark = pytest.mark.timeout(240)
pytest.importorskip("engine.emotion.reference")


def _mouth_width(pts):
    """Mouth corner distance in inter-ocular units: a smile widens it."""
    return float(np.linalg.norm(pts[MOUTH_CORNER_L, :2] - pts[MOUTH_CORNER_R, :2])
                 / np.linalg.norm(pts[EYE_OUTER_L, :2] - pts[EYE_OUTER_R, :2]))


def test_reference_photo_sets_the_expression(parts, shared, redetect):  # noqa: F811
    smiling = (shared / "data" / "expressions" / "london" / "smiling" / "001_08.jpg").read_bytes()

    async def scenario():
        async with Server(parts) as server:
            pc, tracks, answer, _ = await connect(server)
            sid = answer["session_id"]
            await tracks_ready(tracks, ("video",))
            async with server.http.ws_connect(f"{server.url}/ws?session={sid}") as ws:

                async def ask(payload):
                    await ws.send_str(payload if isinstance(payload, str) else json.dumps(payload))
                    while True:
                        msg = json.loads((await ws.receive(timeout=30)).data)
                        if msg["type"] in ("state", "error"):
                            return msg

                async def frames(n):
                    for _ in range(100):  # the client's queue: drop what waited, keep fresh frames
                        if tracks["video"]._queue.qsize() == 0:
                            break
                        await tracks["video"].recv()
                    return [(await tracks["video"].recv()).to_ndarray(format="rgb24") for _ in range(n)]

                counters = server.sessions[sid].counters
                # Each change shows from the next frame rendered; frames queued at the client before it
                # are dropped by frames(). Wait on frames sent after the change, not on time.
                await ask({"type": "set_idle", "enabled": False})
                await more_frames_sent(counters, 12)
                before = await frames(8)
                state = await ask({"type": "reference_image", "id": "r1", "transition_ms": 0,
                                   "image": base64.b64encode(smiling).decode()})
                await more_frames_sent(counters, 12)
                after = await frames(8)
                now = await ask({"type": "get_state"})
                sent_before_bad = counters["frames_sent"]
                bad = [await ask(m) for m in (
                    {"type": "set_emotion_image", "image": base64.b64encode(b"not an image at all").decode()},
                    {"type": "reference_image", "image": "%%% not base64 %%%"},
                    {"type": "reference_image", "image": "A" * 2_796_208},  # 4 bytes over 2 MiB decoded
                    json.dumps({"type": "prompt", "text": "x" * 20_000}))]
                still = await ask({"type": "get_state"})
                await frames(5)  # the media stream goes on after the bad messages
            sent = server.sessions[sid].counters["frames_sent"] - sent_before_bad
            await pc.close()
            return state, now, before, after, bad, still, sent

    state, now, before, after, bad, still, sent = asyncio.run(scenario())
    assert state["type"] == "state" and state["id"] == "r1", state
    assert now["emotion"]["custom"] and now["emotion"]["mixture"].get("happy", 0) > 0.3, now["emotion"]
    w0 = np.median([_mouth_width(redetect(f)) for f in before])
    w1 = np.median([_mouth_width(redetect(f)) for f in after])
    assert w1 > w0 * 1.05, (w0, w1)  # the avatar smiles on the frames the client received
    assert [b.get("code") for b in bad] == ["bad_image", "bad_image", "too_large", "too_large"], bad
    assert still["type"] == "state" and sent >= 5
