"""`emolive camera`: a WHIP session's avatar through WHEP into a virtual webcam (a recording backend here:
this machine loads no v4l2loopback), and one clear line when there is no camera or no such session."""
import asyncio

import numpy as np
import pyvirtualcam
import pytest

from server_harness import Server, publish
from streaming import whip
from streaming.camera import CameraError, main, play

pytestmark = pytest.mark.timeout(180)


class RecordingCamera:
    """A pyvirtualcam backend that keeps what it is sent."""

    frames: list = []

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self.size, self.closed = (width, height), False

    def send(self, frame):  # pyvirtualcam hands its backends the picture as flat RGB bytes
        w, h = self.size
        RecordingCamera.frames.append(np.array(frame, copy=True).reshape(h, w, 3))

    def close(self):
        self.closed = True

    def device(self):
        return "recording"

    def native_fourcc(self):
        return None


pyvirtualcam.register_backend("recording", RecordingCamera)


def test_the_avatar_reaches_the_virtual_camera(parts, speech_wav):  # noqa: F811
    RecordingCamera.frames = []

    async def scenario():
        async with Server(parts) as server:
            pc, (status, headers, _), _, _ = await publish(server, speech_wav)
            sid = headers["Location"].rsplit("/", 1)[1]
            sent = await play(server.url, sid, backend="recording", frames=20)
            left = len(server.app[whip.WHIP][sid].viewers)
            await pc.close()
            return status, sent, left

    status, sent, left = asyncio.run(scenario())
    assert status == 201 and sent == 20 and len(RecordingCamera.frames) == 20
    assert all(f.shape == (512, 512, 3) and f.dtype == np.uint8 for f in RecordingCamera.frames)
    assert max(float(f.std()) for f in RecordingCamera.frames) > 10  # a picture, not a blank
    assert left == 0  # the camera's viewer is deleted when it stops


def test_without_a_session_the_camera_plays_the_servers_own_voice(parts, speech_wav):  # noqa: F811
    """No --session: POST /whep opens a session of the camera's own on a server voiced by a file; stopping
    ends it. A server whose voices come from its clients says so in one line."""
    RecordingCamera.frames = []

    async def scenario():
        async with Server(parts, audio=str(speech_wav), audio_loop=True) as server:
            sent = await play(server.url, None, backend="recording", frames=20)
            await asyncio.gather(*server.app[whip.CLOSING])
            left = len(server.sessions)
        async with Server(parts) as browser_input:
            with pytest.raises(CameraError, match="own session: 404 .*--audio"):
                await play(browser_input.url, None, backend="recording", frames=1)
        return sent, left

    sent, left = asyncio.run(scenario())
    assert sent == 20 and len(RecordingCamera.frames) == 20
    assert max(float(f.std()) for f in RecordingCamera.frames) > 10
    assert left == 0  # the camera's session ends with it


def test_no_camera_and_no_session_are_one_clear_line(parts, capsys):  # noqa: F811
    async def scenario():
        async with Server(parts) as server:
            pc, (_, headers, _), _, _ = await publish(server, video=False)
            sid = headers["Location"].rsplit("/", 1)[1]
            try:
                with pytest.raises(CameraError, match="no virtual camera"):
                    await play(server.url, sid, backend="v4l2loopback", device="/dev/video-none", frames=1)
                with pytest.raises(CameraError, match="404"):
                    await play(server.url, "no-such-session", backend="recording", frames=1)
            finally:
                await pc.close()
            return server.url

    url = asyncio.run(scenario())
    assert main(["--url", url, "--session", "x", "--seconds", "0"]) == 2
    assert capsys.readouterr().err.strip() == "emolive camera: --seconds must be positive"
