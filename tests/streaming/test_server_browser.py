"""End to end with a real headless Chromium (selenium + Debian chromedriver) and a fake microphone."""
import base64
import io
import shutil

import numpy as np
import pytest

from engine.face_geometry import LIPS_OUTER
from streaming.server import SESSIONS
from server_harness import ThreadedServer, chromium, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),
              pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs Debian chromium-driver")]


# In the page: every decoded frame of the avatar video, as the compositor gets it
# (requestVideoFrameCallback), drawn to a 128x128 canvas and kept as grey levels with its
# presentation time, on the page's own clock (performance.now), in a ring of 200 frames.
CAPTURE_JS = """
const v = document.getElementById('avatar');
const c = document.createElement('canvas'); c.width = 128; c.height = 128;
const ctx = c.getContext('2d', {willReadFrequently: true});
window.cap = {frames: [], sent: []};
function grab(now, meta) {
  ctx.drawImage(v, 0, 0, 128, 128);
  const rgba = ctx.getImageData(0, 0, 128, 128).data, g = new Uint8Array(128 * 128);
  for (let i = 0; i < g.length; i++) g[i] = (rgba[4 * i] + 2 * rgba[4 * i + 1] + rgba[4 * i + 2]) >> 2;
  cap.frames.push({t: meta.presentationTime, rx: meta.receiveTime, g: g});
  if (cap.frames.length > 200) cap.frames.shift();
  v.requestVideoFrameCallback(grab);
}
v.requestVideoFrameCallback(grab);
window.capSend = (msg) => { cap.sent.push(performance.now()); emolive.send(msg); return cap.sent.at(-1); };
window.capFrames = (t0) => cap.frames.filter((f) => f.t >= t0).map(
  (f) => [f.t, f.rx, btoa(String.fromCharCode.apply(null, f.g))]);
window.capRtc = async () => { const out = {}; (await emolive.pc.getStats()).forEach((s) => {
  if (s.type === 'inbound-rtp') out[s.kind] = {jitter_buffer_ms: 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount,
    target_ms: 1000 * s.jitterBufferTargetDelay / s.jitterBufferEmittedCount,
    decode_ms: s.totalDecodeTime ? 1000 * s.totalDecodeTime / s.framesDecoded : null}; }); return out; };
window.capStill = () => { const c2 = document.createElement('canvas'); c2.width = v.videoWidth;
  c2.height = v.videoHeight; c2.getContext('2d').drawImage(v, 0, 0); return c2.toDataURL('image/png'); };
"""


def _frames(driver, t0):
    rows = driver.execute_script("return capFrames(arguments[0])", t0)
    return [(t, rx, np.frombuffer(base64.b64decode(g), np.uint8).reshape(128, 128)) for t, rx, g in rows]


def _mouth_box(driver, redetect):
    """The mouth region (in 128x128 capture pixels), from landmarks re-detected on a full decoded frame."""
    from PIL import Image

    png = base64.b64decode(driver.execute_script("return capStill()").split(",", 1)[1])
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    lips = redetect(rgb)[list(LIPS_OUTER), :2] * (128 / rgb.shape[1])
    (x0, y0), (x1, y1) = lips.min(0), lips.max(0)
    pad = 0.35 * (x1 - x0)
    return slice(max(int(y0 - pad), 0), int(y1 + pad) + 1), slice(max(int(x0 - pad), 0), int(x1 + pad) + 1)


def _captured_since(driver, t0) -> int:
    return driver.execute_script("return cap.frames.filter((f) => f.t >= arguments[0]).length", t0)


def emotion_change_ms(driver, redetect, msg, settle_frames=30, watch_frames=37, max_frames=150):
    """Send `msg` from the page; ms from sending to the first decoded frame whose mouth region differs
    from the settled face by more than the frame-to-frame noise seen before the command (None: no change).
    Counted in decoded frames, not seconds: a loaded page decodes fewer frames a second, so it watches
    longer (up to max_frames after the command, within the capture ring of 200)."""
    box = _mouth_box(driver, redetect)
    t_start = driver.execute_script("return performance.now()")
    wait_for(lambda: _captured_since(driver, t_start) >= settle_frames, timeout=60)
    t_send = driver.execute_script("return capSend(arguments[0])", msg)
    watched = watch_frames
    while True:
        wait_for(lambda: _captured_since(driver, t_send) >= watched, timeout=60)
        frames = _frames(driver, t_start)
        before = [g[box].astype(np.float32) for t, _, g in frames if t < t_send]
        after = [(t, rx, g[box].astype(np.float32)) for t, rx, g in frames if t >= t_send]
        base = np.median(before, axis=0)
        noise = max(float(np.abs(b - base).mean()) for b in before)
        # A frame whose last packet came before the command cannot show it (it only waited in the jitter
        # buffer); a change counts when it holds for three frames (not a coding artefact).
        change = [(t, rx, float(np.abs(g - base).mean())) for t, rx, g in after if rx is None or rx >= t_send]
        threshold = max(3 * noise, noise + 1.0)
        first = next(((t, rx) for i, (t, rx, d) in enumerate(change)
                      if all(dd > threshold for _, _, dd in change[i:i + 3])), None)
        if first is not None or watched >= max_frames:
            break
        watched += 25
    if first is None:
        return None, None, noise
    # (sent -> presented, sent -> its last packet received: the server and network part)
    return first[0] - t_send, (first[1] - t_send if first[1] else None), noise


def test_browser_speaks_and_sees_the_avatar(parts, speech_wav, redetect):  # noqa: F811
    with ThreadedServer(parts) as server:
        driver = chromium(speech_wav)
        try:
            faces = []
            driver.get(server.url)
            driver.execute_script("emolive.start()")
            sid = wait_for(lambda: driver.execute_script("return emolive.sessionId"))
            wait_for(lambda: driver.execute_script("return document.getElementById('avatar').videoWidth > 0"))
            driver.execute_script(CAPTURE_JS)
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
            # Emotion commands, timed on decoded frames in the page: idle motion off so that only the
            # command changes the face; the speech has ended, the mouth is at rest.
            driver.execute_script("emolive.send({type:'set_idle', enabled:false})")
            n0 = len(faces)
            changes = [emotion_change_ms(driver, redetect, {"type": "set_emotion", "emotion": name,
                                                            "intensity": 1.0, "transition_ms": 0})
                       for name in ("happy", "surprised", "neutral", "sad", "neutral")]
            rtc = driver.execute_async_script("capRtc().then(arguments[arguments.length - 1])")
            # The page says what was asked as soon as the answer comes, not the face mid-transition.
            driver.execute_script("emolive.send({type:'set_emotion', emotion:'surprised', intensity:0.6, "
                                  "transition_ms:3000})")
            def status():
                return driver.execute_script("return document.getElementById('status').textContent")

            wait_for(lambda: "surprised" in status(), timeout=30)
            shown = status()
            print("emotion command -> first changed frame (presented ms, received ms, noise):", changes, rtc)
            # The face states the server rendered agree (the command reached the pipeline).
            assert any(f["coeffs"]["mouthSmileLeft"] > before + 0.1 for f in faces[n0:])
            errors = driver.execute_script("return emolive.errors")
        finally:
            driver.quit()
    total, dropped = quality
    # Decoded and presented; how many the page dropped for lateness follows its load (0-3 % idle).
    assert total > 50 and dropped <= 0.5 * total
    assert stats["audio_chunks_in"] > 100 and stats["speech_frames"] > 50
    jaw = np.array([f["coeffs"]["jawOpen"] for f in faces])
    assert jaw.max() > 0.2, "the mouth never moved while the speech played"
    assert np.sum(jaw < 0.05) > 10, "the mouth never rested in the silence"
    assert not errors
    assert shown == "emotion: surprised 1.00 at 0.60", shown
    # Every command visibly changed the mouth region of the decoded frames ...
    assert all(shown is not None for shown, _, _ in changes), changes
    # ... and the frames showing it reached the browser within a second of the command (median of five):
    # the command is not queued behind media. How much less than that is a figure of the machine's load
    # (100-250 ms idle, docs/design/streaming.md has them and the breakdown); printed above, not judged here.
    assert float(np.median([rx for _, rx, _ in changes])) <= 1000, (changes, rtc)


def test_browser_without_microphone_plays_the_server_file(parts, speech_wav):  # noqa: F811
    """--audio FILE: the page asks for no microphone (Chromium has none here) and still gets the avatar."""
    with ThreadedServer(parts, audio=str(speech_wav)) as server:
        driver = chromium()  # no fake devices: getUserMedia would fail
        try:
            faces = []
            driver.get(server.url)
            wait_for(lambda: driver.execute_script("return emolive.input") == "file")
            driver.execute_script("emolive.start()")
            sid = wait_for(lambda: driver.execute_script("return emolive.sessionId"))
            runner = server.call(lambda: server.app[SESSIONS][sid])
            server.call(lambda: runner.face_listeners.add(faces.append))
            wait_for(lambda: len(faces) > 150, timeout=60)
            decoded = driver.execute_script("return document.getElementById('avatar').getVideoPlaybackQuality()"
                                            ".totalVideoFrames")
            state = driver.execute_script("return [emolive.micUsed, emolive.errors]")
        finally:
            driver.quit()
    assert state == [False, []] and decoded > 50
    jaw = np.array([f["coeffs"]["jawOpen"] for f in faces])
    assert jaw.max() > 0.2 and np.sum(jaw < 0.05) > 5  # the file's speech, then its silence


def test_a_page_opened_with_the_token_connects_and_shows_its_session(parts, speech_wav):  # noqa: F811
    """serve --token T: the page opened as /?token=T sends it with the offer and the control websocket, and
    shows the session id that `emolive ctl --session` needs."""
    with ThreadedServer(parts, token="page-token") as server:
        driver = chromium(speech_wav)
        try:
            driver.get(server.url + "?token=page-token")
            driver.execute_script("emolive.start()")
            sid = wait_for(lambda: driver.execute_script("return emolive.sessionId"))
            wait_for(lambda: driver.execute_script("return emolive.ws && emolive.ws.readyState === 1"))
            driver.execute_script("emolive.send({type: 'set_emotion', emotion: 'happy', intensity: 0.5})")
            wait_for(lambda: "happy" in driver.execute_script("return document.getElementById('status').textContent"))
            shown = driver.execute_script("return document.getElementById('session').textContent")
            errors = driver.execute_script("return emolive.errors")
            driver.get(server.url)  # without the token: refused, said on the page
            driver.execute_script("emolive.start()")
            refused = wait_for(lambda: driver.execute_script("return emolive.errors.join(' ')"))
        finally:
            driver.quit()
    assert shown == f"session {sid}" and errors == []
    assert "unauthorized" in refused
