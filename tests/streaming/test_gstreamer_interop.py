"""GStreamer's WebRTC stack (webrtcbin: libnice, its own DTLS with an RSA certificate, libsrtp) as the
presenter and as the viewer: a WHIP publisher sends speech into /whip, a WHEP player plays the session's
avatar from /whep/ID, both through tests/gst_webrtc.py run with the system Python. The player's frames are
re-detected: the mouth moves with the voice it hears. Skipped where the system Python has no GStreamer
(scripts/setup.sh installs it)."""
from __future__ import annotations

import asyncio
import json
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from server_harness import Server
from streaming import dtls_ciphers

pytestmark = pytest.mark.timeout(180)

CLIENT = Path(__file__).resolve().parents[1] / "gst_webrtc.py"
SYSTEM_PYTHON = "/usr/bin/python3"
SIZE = 256
FRAMES = 100


@lru_cache(maxsize=1)
def gstreamer_missing() -> str | None:
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0'); "
             "from gi.repository import Gst; Gst.init(None); "
             "assert all(Gst.ElementFactory.find(e) for e in ('webrtcbin', 'opusenc', 'vp8dec', 'wavparse'))")
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"no system Python: {e}"
    return None if r.returncode == 0 else "GStreamer's WebRTC elements or python3-gi missing: " + \
        r.stderr.decode(errors="replace").strip().splitlines()[-1]


@pytest.fixture(scope="module")
def long_speech(speech_wav, tmp_path_factory):
    """The speech three times over (about 13 s), so a player started after the publisher still hears it."""
    out = tmp_path_factory.mktemp("gst") / "long.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(speech_wav), "-filter_complex",
                    "[0]asplit=3[a][b][c];[a][b][c]concat=n=3:v=0:a=1", str(out)], check=True)
    return out


class GstClient:
    """One tests/gst_webrtc.py process; its JSON events read line by line."""

    def __init__(self, *args: str):
        self.args = [SYSTEM_PYTHON, "-X", "faulthandler", str(CLIENT), *args]
        self.proc = None
        self.events: list[dict] = []

    async def start(self) -> "GstClient":
        self.proc = await asyncio.create_subprocess_exec(*self.args, stdout=asyncio.subprocess.PIPE,
                                                         stderr=asyncio.subprocess.PIPE)
        return self

    async def event(self, name: str, timeout: float = 60.0) -> dict:
        """The next event called `name` (or the client's error, or its end, as a failure)."""
        async def read():
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    err = (await self.proc.stderr.read()).decode(errors="replace")[-800:]
                    raise AssertionError(f"the GStreamer client ended before '{name}': {self.events} {err}")
                ev = json.loads(line)
                self.events.append(ev)
                if ev["event"] in (name, "error"):
                    return ev

        return await asyncio.wait_for(read(), timeout)

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


def mouth_openings(path: Path, redetect) -> np.ndarray:
    from engine.face_geometry import mouth_opening

    frames = np.fromfile(path, np.uint8).reshape(-1, SIZE, SIZE, 3)
    return np.array([mouth_opening(redetect(f)) for f in frames[::2]])


def test_gstreamer_publishes_the_voice_and_plays_the_avatar(parts, long_speech, redetect, tmp_path):
    why = gstreamer_missing()
    if why:
        pytest.skip(why)
    frames_path = tmp_path / "frames.rgb"

    async def scenario():
        async with Server(parts) as server:
            pub = await GstClient("publish", f"{server.url}/whip", str(long_speech)).start()
            player = None
            try:
                created = await pub.event("created")
                assert created["event"] == "created", created
                sid = created["location"].rsplit("/", 1)[1]
                player = await GstClient("play", f"{server.url}/whep/{sid}", "--frames", str(FRAMES),
                                         "--size", str(SIZE), "--out", str(frames_path)).start()
                playing = await player.event("created")
                done = await player.event("done", timeout=120)
                ended = await pub.event("deleted", timeout=120)
                return created, playing, done, ended, len(server.sessions)
            finally:
                for c in (pub, player):
                    if c is not None:
                        await c.stop()

    created, playing, done, ended, left = asyncio.run(scenario())
    assert created["content_type"].startswith("application/sdp") and created["etag"]
    assert playing["event"] == "created" and playing["location"].startswith(created["location"].replace(
        "/whip/", "/whep/") + "/"), playing
    assert done["event"] == "done" and done["video_frames"] == FRAMES and done["audio_buffers"] > 0, done
    assert done["audio_peak"] > 0.05, done  # the publisher's voice, relayed to the player
    assert ended["status"] == 200 and left == 0
    opening = mouth_openings(frames_path, redetect)
    assert opening.max() - opening.min() > 0.03, opening.round(3)  # the mouth moves with the voice


def test_without_rsa_suites_gstreamer_cannot_connect(parts, speech_wav):
    """What streaming/dtls_ciphers.py fixes: aiortc alone offers ECDSA suites only, and GStreamer's DTLS
    server (an RSA certificate) finds no shared cipher."""
    why = gstreamer_missing()
    if why:
        pytest.skip(why)

    async def scenario():
        async with Server(parts) as server:
            dtls_ciphers.uninstall()  # after create_app installed them
            pub = await GstClient("publish", f"{server.url}/whip", str(speech_wav)).start()
            try:
                first = await pub.event("created")
                failed = await pub.event("error")
                return first, failed
            finally:
                await pub.stop()
                dtls_ciphers.install()

    first, failed = asyncio.run(scenario())
    assert first["event"] == "created"  # the offer is answered: the failure is the handshake's
    assert failed["event"] == "error", failed
