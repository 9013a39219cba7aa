"""A three.js client in headless Chromium: loads a GLB with the 52 ARKit morph targets, subscribes to the
session's `talkinghead` stream on the control websocket and applies each frame's `vs` by
`morphTargetDictionary`, as a TalkingHead client does; the server plays real recorded speech."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from engine.types import BLENDSHAPE_NAMES
from streaming.server import SESSIONS
from streaming.talkinghead import stream_of
from glb import morph_quad_glb
from server_harness import ThreadedServer, chromium, wait_for

THREE = Path(__file__).resolve().parents[2] / "node_modules" / "three"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs Debian chromium-driver"),
              pytest.mark.skipif(not (THREE / "build" / "three.module.js").is_file(),
                                 reason="needs three from npm (scripts/setup.sh: node_modules/three)")]

# The client: GLTFLoader, the control websocket, morphTargetInfluences by name; what it applied to jawOpen
# per frame, and each chunk's audio (decoded from base64 int16) as [sample, samples, rms].
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script type="importmap">{"imports": {"three": "/three/build/three.module.js",
                                      "three/addons/": "/three/examples/jsm/"}}</script>
</head><body><script type="module">
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
window.th = {applied: [], audio: [], errors: [], subscribed: false, targets: 0};
try {
  const gltf = await new GLTFLoader().loadAsync('/3d/face.glb');
  let mesh = null;
  gltf.scene.traverse((o) => { if (o.isMesh) mesh = o; });
  const dict = mesh.morphTargetDictionary, influences = mesh.morphTargetInfluences;
  th.targets = Object.keys(dict).length;
  const sid = new URLSearchParams(location.search).get('session');
  const ws = new WebSocket(`ws://${location.host}/ws?session=${sid}`);
  ws.onopen = () => ws.send(JSON.stringify({type: 'subscribe', stream: 'talkinghead', id: 'th'}));
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === 'state' && msg.id === 'th') th.subscribed = true;
    if (msg.type === 'error') th.errors.push(msg.code + ': ' + msg.message);
    if (msg.type !== 'talkinghead') return;
    const pcm = new Int16Array(Uint8Array.from(atob(msg.audio), (c) => c.charCodeAt(0)).buffer);
    let ss = 0;
    for (const s of pcm) ss += s * s;
    th.audio.push([msg.sample, pcm.length, Math.sqrt(ss / Math.max(pcm.length, 1))]);
    for (const anim of msg.anims) {
      anim.dt.forEach((dt, i) => {
        for (const [name, values] of Object.entries(anim.vs)) influences[dict[name]] = values[i];
        th.applied.push([msg.frame + i, influences[dict.jawOpen]]);
      });
    }
  };
} catch (e) { th.errors.push(String(e)); }
</script></body></html>"""


@pytest.fixture(scope="module")
def digits_wav(shared, tmp_path_factory):
    """Real recorded speech (FSDD digits "three", "seven", "three") with silence before, between and after."""
    fsdd = shared / "data" / "speech" / "fsdd"
    clips = [fsdd / "3_george_0.wav", fsdd / "7_lucas_0.wav", fsdd / "3_theo_0.wav"]
    out = tmp_path_factory.mktemp("digits") / "digits.wav"
    gaps = [0.8, 0.6, 0.6, 1.2]
    inputs = ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono"]
    for c in clips:
        inputs += ["-i", str(c)]
    chain, labels = [], []
    for i, gap in enumerate(gaps):
        chain.append(f"[0]atrim=0:{gap}[s{i}]")
        labels.append(f"[s{i}]")
        if i < len(clips):
            chain.append(f"[{i + 1}]aresample=48000[c{i}]")
            labels.append(f"[c{i}]")
    graph = ";".join(chain) + ";" + "".join(labels) + f"concat=n={len(labels)}:v=0:a=1"
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-ar", "48000", "-ac", "1",
                    str(out)], check=True)
    return out


def _serve_client(app: web.Application) -> None:
    glb = morph_quad_glb(list(BLENDSHAPE_NAMES))

    async def page(_):
        return web.Response(text=PAGE, content_type="text/html")

    async def face(_):
        return web.Response(body=glb, content_type="model/gltf-binary")

    app.router.add_get("/3d/page.html", page)
    app.router.add_get("/3d/face.glb", face)
    app.router.add_static("/three/", THREE)


def test_a_three_js_client_moves_its_morph_targets_with_the_speech(parts, digits_wav):  # noqa: F811
    server = ThreadedServer(parts, audio=str(digits_wav), audio_loop=True)
    _serve_client(server.app)  # same origin as the control websocket
    sent: dict[int, float] = {}  # frame -> the jawOpen the server sent in its talkinghead chunks
    rendered: dict[int, float] = {}  # frame -> the jawOpen of the face_state rendered for it
    with server:
        driver = chromium()
        try:
            driver.get(server.url)  # the presenter's page opens the session (no microphone: the server's file)
            wait_for(lambda: driver.execute_script("return emolive.input") == "file")
            driver.execute_script("emolive.start()")
            sid = wait_for(lambda: driver.execute_script("return emolive.sessionId"))
            runner = server.call(lambda: server.app[SESSIONS][sid])

            def keep(msg):
                for i, v in enumerate(msg["anims"][0]["vs"]["jawOpen"]):
                    sent[msg["frame"] + i] = v

            server.call(lambda: stream_of(runner).add(keep))
            server.call(lambda: runner.face_listeners.add(lambda m: rendered.__setitem__(m["frame"],
                                                                                        m["coeffs"]["jawOpen"])))
            driver.switch_to.new_window("tab")
            driver.get(f"{server.url}3d/page.html?session={sid}")
            wait_for(lambda: driver.execute_script("return th.subscribed || th.errors.length > 0"), timeout=60)
            # One loop of the file is 4.9 s: 150 frames of the timeline hold a whole one, speech and silence,
            # counted in frames applied, however slowly a loaded machine gets there.
            wait_for(lambda: driver.execute_script(
                "const a = th.applied; return a.length > 0 && a.at(-1)[0] - a[0][0] >= 150 || th.errors.length > 0"),
                timeout=120)
            applied, audio, errors, targets = driver.execute_script(
                "return [th.applied, th.audio, th.errors, th.targets]")
        finally:
            driver.quit()
    assert errors == [] and targets == 52
    page = {int(k): v for k, v in applied}
    # The page's influences are the values the server sent for the same frames, exactly ...
    assert len(page) > 100 and all(k in sent and sent[k] == v for k, v in page.items())
    # ... and those are the face states rendered for those frames (frames not rendered repeat the one before).
    both = [k for k in page if k in rendered]
    assert len(both) > 100 and max(abs(page[k] - rendered[k]) for k in both) < 2e-4
    # The mouth moves with the speech: open while the digits are spoken, shut in the silence between them.
    jaw = np.array([v for _, v in applied])
    assert np.std(jaw) > 0.05 and jaw.max() > 0.2, (np.std(jaw), jaw.max())
    by_chunk: dict[int, list[float]] = {}
    for k, v in applied:
        by_chunk.setdefault(k // 5, []).append(v)  # 5 frames a chunk
    loudness = {sample // 9600: rms for sample, _, rms in audio}
    peak = max(loudness.values())
    loud = [np.mean(by_chunk[c]) for c, rms in loudness.items() if rms > 0.3 * peak and c in by_chunk]
    quiet = [np.mean(by_chunk[c]) for c, rms in loudness.items() if rms < 1e-3 * peak and c in by_chunk]
    assert len(loud) >= 3 and len(quiet) >= 5, (len(loud), len(quiet))
    assert np.median(loud) > 0.15 and np.median(quiet) < 0.05, (np.median(loud), np.median(quiet))
    # The audio is the voice the session played: whole 200 ms chunks of 48 kHz samples, on the audio clock.
    assert all(n == 9600 and sample % 9600 == 0 for sample, n, _ in audio[1:-1])
