"""The WHEP player page (streaming/static/player.html) in a real headless Chromium: a presenter's page
(fake microphone, looping speech) starts a session, a second browser opens the page's player link and
plays the session through /whep with a plain RTCPeerConnection. Checked against what the server has and
what the second browser decodes: the viewer is counted, frames arrive and the re-detected mouth moves with
the voice, the voice itself is heard, leaving the page lets the viewer go, and a bad link says why."""
import base64
import io
import shutil

import numpy as np
import pytest

from engine.face_geometry import LIPS_OUTER
from server_harness import ThreadedServer, wait_for
from streaming import whip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),
              pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs Debian chromium-driver")]

SIDE = 128
FRAMES = 100
# In the player: every presented frame, drawn to a 128x128 canvas, kept as grey levels (a ring of 150).
CAPTURE_JS = """
const v = document.getElementById('avatar');
const c = document.createElement('canvas'); c.width = 128; c.height = 128;
const ctx = c.getContext('2d', {willReadFrequently: true});
window.cap = [];
function grab() {
  ctx.drawImage(v, 0, 0, 128, 128);
  const rgba = ctx.getImageData(0, 0, 128, 128).data, g = new Uint8Array(128 * 128);
  for (let i = 0; i < g.length; i++) g[i] = (rgba[4 * i] + 2 * rgba[4 * i + 1] + rgba[4 * i + 2]) >> 2;
  cap.push(btoa(String.fromCharCode.apply(null, g)));
  if (cap.length > 150) cap.shift();
  v.requestVideoFrameCallback(grab);
}
v.requestVideoFrameCallback(grab);
window.capStill = () => { const c2 = document.createElement('canvas'); c2.width = v.videoWidth;
  c2.height = v.videoHeight; c2.getContext('2d').drawImage(v, 0, 0); return c2.toDataURL('image/png'); };
window.audioEnergy = async () => { let e = 0; (await player.pc.getStats()).forEach((s) => {
  if (s.type === 'inbound-rtp' && s.kind === 'audio') e = s.totalAudioEnergy || 0; }); return e; };
"""


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def viewers(server, sid) -> int:
    return server.call(lambda: len(server.app[whip.WHIP][sid].viewers) if sid in server.app[whip.WHIP] else -1)


def regions(driver, redetect):
    """(mouth, forehead) boxes in capture pixels: the lips re-detected on a full decoded frame, and a box of
    the same size above the eyes."""
    from PIL import Image

    png = base64.b64decode(js(driver, "return capStill()").split(",", 1)[1])
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    p = redetect(rgb)[:, :2] * (SIDE / rgb.shape[1])
    lips = p[list(LIPS_OUTER)]
    (x0, y0), (x1, y1) = lips.min(0), lips.max(0)
    pad = 0.3 * (x1 - x0)
    mouth = (slice(int(y0 - pad), int(y1 + pad) + 1), slice(int(x0 - pad), int(x1 + pad) + 1))
    h = mouth[0].stop - mouth[0].start
    brow = int(min(p[105, 1], p[334, 1]))  # the brows' upper edge
    forehead = (slice(max(brow - h, 0), brow), mouth[1])
    return mouth, forehead


def test_the_player_page_plays_a_session_in_a_second_browser(parts, speech_wav, redetect):  # noqa: F811
    from profiler.browser import chromium

    with ThreadedServer(parts) as server:
        presenter = chromium(str(speech_wav), loop=True)
        viewer = chromium(None)
        try:
            presenter.get(server.url)
            wait_for(lambda: js(presenter, "return emolive.input") == "browser")
            js(presenter, "document.getElementById('start').click()")
            wait_for(lambda: js(presenter, "return !!(emolive.pc && emolive.pc.connectionState === 'connected')"),
                     timeout=60)
            sid = js(presenter, "return emolive.sessionId")
            link = js(presenter, "return document.getElementById('playerLink').href")
            assert link == f"{server.url}static/player.html?session={sid}", link
            assert not js(presenter, "return document.getElementById('playerLink').hidden")

            viewer.get(link)
            wait_for(lambda: js(viewer, "return player.state") == "playing", timeout=60)
            assert viewers(server, sid) == 1
            js(viewer, CAPTURE_JS)
            wait_for(lambda: js(viewer, "return cap.length") >= FRAMES, timeout=90)
            size = js(viewer, "const v = document.getElementById('avatar'); return [v.videoWidth, v.videoHeight]")
            mouth, forehead = regions(viewer, redetect)
            grey = np.stack([np.frombuffer(base64.b64decode(g), np.uint8).reshape(SIDE, SIDE)
                             for g in js(viewer, "return cap")]).astype(np.float32)
            energy = viewer.execute_async_script("audioEnergy().then(arguments[0])")
            counted = js(viewer, "return player.frames")

            viewer.get("about:blank")  # leaving the page DELETEs the viewer
            wait_for(lambda: viewers(server, sid) == 0, timeout=30)
            still_running = server.call(lambda: not server.app[whip.WHIP][sid].runner.closing)

            viewer.get(f"{server.url}static/player.html?session=nosuchsession")
            wait_for(lambda: js(viewer, "return player.state") == "failed", timeout=30)
            refused = js(viewer, "return player.error")
        finally:
            presenter.quit()
            viewer.quit()

    assert size == [512, 512] and counted >= FRAMES
    assert energy > 0, "the viewer heard nothing"
    # The mouth moves with the voice: its region changes from frame to frame far more than the forehead's.
    change = {name: float(np.abs(np.diff(grey[(slice(None),) + box], axis=0)).mean())
              for name, box in (("mouth", mouth), ("forehead", forehead))}
    print("player: mean grey change per frame", change, "audio energy", energy, "frames presented", counted)
    assert change["mouth"] > 2 * change["forehead"] and change["mouth"] > 0.5, change
    assert still_running  # a viewer leaving does not end the session
    assert refused.startswith("404 no_session"), refused
