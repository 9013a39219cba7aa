"""End to end with a real headless Chromium (selenium + Debian chromedriver) and a fake microphone."""
import asyncio
import shutil
import threading
import time

import numpy as np
import pytest
from aiohttp import web

from streaming.config import ServerConfig
from streaming.server import SESSIONS, create_app
from test_server_loopback import parts, speech_wav  # noqa: F401  (shared fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),
              pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs Debian chromium-driver")]


class ThreadedServer:
    """The server on its own event loop thread, so that selenium's blocking calls can run here."""

    def __init__(self, parts):
        self.loop = asyncio.new_event_loop()
        self.app = create_app(ServerConfig(ice_loopback=True, port=0), parts)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())

    def __enter__(self):
        self.thread.start()
        self.ready.wait(30)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)

    def call(self, fn):
        """Run fn() on the server's loop thread and return its result."""
        async def wrap():
            return fn()
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(10)


def chromium(wav):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={wav}%noloop", "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def wait_for(predicate, timeout=30.0, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def test_browser_speaks_and_sees_the_avatar(parts, speech_wav):  # noqa: F811
    with ThreadedServer(parts) as server:
        driver = chromium(speech_wav)
        try:
            faces = []
            driver.get(server.url)
            driver.execute_script("emolive.start()")
            sid = wait_for(lambda: driver.execute_script("return emolive.sessionId"))
            runner = server.call(lambda: server.app[SESSIONS][sid])
            server.call(lambda: runner.face_listeners.add(faces.append))
            wait_for(lambda: driver.execute_script(
                "const v=document.getElementById('avatar'); return v.getVideoPlaybackQuality().totalVideoFrames > 50"))
            # The speech wav plays ~4 s: collect face states until well after it.
            wait_for(lambda: len(faces) > 200, timeout=60)
            quality = driver.execute_script(
                "const q=document.getElementById('avatar').getVideoPlaybackQuality();"
                "return [q.totalVideoFrames, q.droppedVideoFrames]")
            stats = server.call(runner.stats)
            before = server.call(lambda: runner.last_state["mouthSmileLeft"])
            driver.execute_script("emolive.send({type:'set_emotion', emotion:'happy', intensity:1.0, transition_ms:0})")
            n0 = len(faces)
            # The 300 ms target is measured by the benchmark, not asserted here (shared CPUs).
            wait_for(lambda: any(f["coeffs"]["mouthSmileLeft"] > before + 0.1 for f in faces[n0:]), timeout=10)
            errors = driver.execute_script("return emolive.errors")
        finally:
            driver.quit()
    total, dropped = quality
    assert total > 50 and dropped <= 0.05 * total
    assert stats["audio_chunks_in"] > 100 and stats["speech_frames"] > 50
    jaw = np.array([f["coeffs"]["jawOpen"] for f in faces])
    assert jaw.max() > 0.2, "the mouth never moved while the speech played"
    assert np.sum(jaw < 0.05) > 10, "the mouth never rested in the silence"
    assert not errors
