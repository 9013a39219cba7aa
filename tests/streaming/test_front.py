"""`serve --workers N`: the front spreads sessions over worker processes, relays control, isolates crashes."""
import asyncio
import json
import os
import shutil
import signal
import threading

import aiohttp
import pytest

from streaming.config import ServerConfig, worker_count
from server_harness import AUTH, Front, connect
from streaming.front import POOL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
async def frames(track, n, timeout=20.0):
    for _ in range(n):
        await asyncio.wait_for(track.recv(), timeout)


def test_sessions_spread_relay_and_survive_a_worker_crash():
    async def scenario():
        async with Front(workers=2, max_sessions=3) as front:
            a = await connect(front, headers=AUTH)
            b = await connect(front, headers=AUTH)
            pcs = [a[0], b[0]]
            try:
                assert a[2]["status"] == 200 and b[2]["status"] == 200, (a[2], b[2])
                await asyncio.gather(frames(a[1]["video"], 5), frames(b[1]["video"], 5))
                status, text = await front.get("/health")
                health = json.loads(text)
                assert status == 200 and health["sessions"] == 2
                assert sorted(w["sessions"] for w in health["workers"]) == [1, 1]  # one per process

                # Control goes to the session's own worker and back.
                sid = a[2]["session_id"]
                async with front.http.ws_connect(f"{front.url}/ws?session={sid}", headers=AUTH) as ws:
                    await ws.send_str(json.dumps({"type": "set_emotion", "emotion": "happy", "intensity": 0.8}))
                    event = await _next_event(ws, {"state", "error"})
                    assert event["type"] == "state", event
                    await ws.send_str("{not json")
                    event = await _next_event(ws, {"error"})
                    assert event["type"] == "error"
                assert await _refused(front, "nope") == 404

                # Without the token: refused at the front.
                async with front.http.post(front.url + "/offer", json={"sdp": "x", "type": "offer"}) as r:
                    assert r.status == 401
                c = await connect(front, headers=AUTH)
                pcs.append(c[0])
                assert c[2]["status"] == 200
                d = await connect(front, headers=AUTH)
                pcs.append(d[0])
                assert d[2]["status"] == 503 and d[2]["error"] == "server_full"

                # Kill the process holding session a: b (on the other worker) keeps streaming.
                health = json.loads((await front.get("/health"))[1])
                pid_a = _pid_of(front, a[2]["session_id"])
                os.kill(pid_a, signal.SIGKILL)
                await frames(b[1]["video"], 50)  # two seconds of b's video after the crash
                for _ in range(240):  # the front notices, forgets a's session and starts a new worker
                    health = json.loads((await front.get("/health"))[1])
                    if all(w["ready"] for w in health["workers"]) and pid_a not in [w["pid"] for w in
                                                                                    health["workers"]]:
                        break
                    await asyncio.sleep(0.5)
                else:
                    pytest.fail(f"the crashed worker was not replaced: {health}")
                metrics = (await front.get("/metrics"))[1]
                assert "emolive_front_worker_exits_total 1" in metrics
                assert 'emolive_sessions{worker="0"}' in metrics and 'emolive_sessions{worker="1"}' in metrics
                assert await _refused(front, a[2]["session_id"]) == 404  # gone with its worker
            finally:
                for pc in pcs:
                    await pc.close()
    asyncio.run(scenario())


async def _refused(front, sid):
    try:
        async with front.http.ws_connect(f"{front.url}/ws?session={sid}", headers=AUTH):
            return None
    except aiohttp.WSServerHandshakeError as e:
        return e.status


def _pid_of(front, sid):
    return front.app[POOL].routes[sid].proc.pid


async def _next_event(ws, types, timeout=10.0):
    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        event = json.loads(msg.data)
        if event.get("type") in types:
            return event


def test_worker_count_settings():
    assert worker_count(ServerConfig(workers=3)) == 3
    assert 1 <= worker_count(ServerConfig(workers="auto", max_sessions=2)) <= 2
    assert worker_count(ServerConfig(mic=True)) == 1 and worker_count(ServerConfig(record="out.mp4")) == 1
    with pytest.raises(ValueError, match="--mic"):
        worker_count(ServerConfig(workers=2, mic=True))
    with pytest.raises(ValueError, match="--record"):
        worker_count(ServerConfig(workers=2, record="out.mp4"))
    with pytest.raises(ValueError):
        ServerConfig(workers="many")


@pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs Debian chromium-driver")
def test_browser_client_through_the_front(speech_wav):  # noqa: F811
    """The README's main command serves through the front by default: the page, the offer, the
    relayed control websocket and the worker's media all work from a real browser."""
    from server_harness import chromium, wait_for
    loop = asyncio.new_event_loop()
    front = Front(workers=2, max_sessions=2)
    front.config = front.config.model_copy(update={"token": None})
    loop.run_until_complete(front.__aenter__())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    driver = chromium(speech_wav)
    try:
        driver.get(front.url)
        driver.execute_script("emolive.start()")
        wait_for(lambda: driver.execute_script("return emolive.sessionId"))
        wait_for(lambda: driver.execute_script(
            "return document.getElementById('avatar').getVideoPlaybackQuality().totalVideoFrames > 50"), timeout=60)
        wait_for(lambda: driver.execute_script("return emolive.ws && emolive.ws.readyState === 1"))
        driver.execute_script("emolive.send({type: 'set_emotion', emotion: 'surprised', intensity: 0.9})")
        # state events describe the emotion of the last frame rendered: ask until the change shows
        state = wait_for(lambda: driver.execute_script(
            "emolive.send({type: 'get_state'}); const s = emolive.lastState;"
            "return s && s.emotion.mixture.surprised ? s : null"), timeout=10, step=0.3)
        wait_for(lambda: driver.execute_script("return emolive.stats && emolive.stats.fps > 0"))
        errors = driver.execute_script("return emolive.errors")
    finally:
        driver.quit()
        asyncio.run_coroutine_threadsafe(front.__aexit__(None, None, None), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
    assert state["emotion"]["mixture"]["surprised"] > 0.5
    assert not errors


def test_a_session_answered_during_a_poll_keeps_its_route():
    """The worker's session list may be older than an offer answered while the poll was in flight."""
    from streaming.worker_pool import Worker

    class SlowWorker(Worker):
        def __init__(self):
            super().__init__(0, "/nonexistent.sock")
            self.http = self

        def get(self, url, timeout=None):
            return self

        async def __aenter__(self):
            if not self._given:
                self.adopt("new-session")  # the offer is answered now; the worker's list below predates it
            return self

        async def __aexit__(self, *exc):
            return False

        async def json(self):
            return {"sessions": ["old-session"]}

    w = SlowWorker()
    asyncio.run(w.poll())
    assert w.sessions == {"old-session", "new-session"}
    asyncio.run(w.poll())  # a later poll is believed: the new session has closed there
    assert w.sessions == {"old-session"}
