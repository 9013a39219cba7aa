"""`emolive camera`: a session's avatar as a virtual webcam, so that it appears in Zoom, Meet or Teams.

It plays the session through WHEP (`POST /whep/ID`, the session opened with WHIP; without `--session`,
`POST /whep`: a session of its own on a server whose voice is its own, `--mic` or `--audio`) and hands every
decoded frame to a pyvirtualcam camera: v4l2loopback on Linux (load the module first:
`sudo modprobe v4l2loopback exclusive_caps=1 card_label=emolive`), OBS Virtual Camera on Windows and
macOS. With `--audio-device`, the avatar's voice plays on that output device (a virtual audio cable to
use as the call's microphone); without it the voice is not played. Frames are sent as they arrive,
already paced by the server's clock; a bounded audio queue (`AUDIO_QUEUE` blocks) drops its oldest
block when the device falls behind.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import queue
import sys

import numpy as np

log = logging.getLogger("emolive.camera")
SDP = {"Content-Type": "application/sdp"}
AUDIO_QUEUE = 25  # 20 ms blocks (0.5 s) waiting for the audio device


class CameraError(RuntimeError):
    """The camera or the session cannot be used; one line for the user."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emolive camera", description="Play a session's avatar into a virtual webcam.")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    p.add_argument("--session", help="a session opened with WHIP (the ID in its /whep/ID link); default: a session "
                   "of the camera's own, on a server started with --mic or --audio (POST /whep)")
    p.add_argument("--token", help="bearer token, if the server requires one")
    p.add_argument("--device", help="virtual camera device (e.g. /dev/video10); default: the first one found")
    p.add_argument("--backend", help="pyvirtualcam backend (v4l2loopback, obs, unitycapture); default: any")
    p.add_argument("--audio-device", help="output device for the voice (a name or index, see "
                   "`python -m sounddevice`); default: the voice is not played")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    return p


class AudioOut:
    """The voice to an output device, through a bounded queue (the device's callback thread pulls)."""

    def __init__(self, device, rate: int = 48_000) -> None:
        import sounddevice as sd

        self.blocks: queue.Queue = queue.Queue(maxsize=AUDIO_QUEUE)
        self._pending = np.zeros(0, np.float32)
        try:
            dev = int(device) if str(device).isdigit() else device
            self.stream = sd.OutputStream(samplerate=rate, channels=1, dtype="float32", device=dev,
                                          callback=self._callback)
            self.stream.start()
        except Exception as e:  # noqa: BLE001 - PortAudio's errors: no such device, none at all
            raise CameraError(f"cannot open the audio output {device!r}: {e}") from None

    def put(self, pcm: np.ndarray) -> None:
        try:
            self.blocks.put_nowait(pcm)
        except queue.Full:  # the device is behind: the oldest block goes
            try:
                self.blocks.get_nowait()
            except queue.Empty:
                pass
            self.blocks.put_nowait(pcm)

    def _callback(self, out, frames, _time, _status) -> None:
        while len(self._pending) < frames:
            try:
                self._pending = np.concatenate([self._pending, self.blocks.get_nowait()])
            except queue.Empty:
                break
        n = min(frames, len(self._pending))
        out[:n, 0] = self._pending[:n]
        out[n:, 0] = 0.0
        self._pending = self._pending[n:]

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


async def play(url: str, session: str | None, *, token: str | None = None, device: str | None = None,
               backend: str | None = None, audio_device: str | None = None, seconds: float | None = None,
               frames: int | None = None) -> int:
    """Play the session into the camera until `seconds` or `frames` (None: until cancelled); the frames sent."""
    import aiohttp
    import av
    import pyvirtualcam
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    if audio_device is not None or session is None:  # a session opened by POST /whep needs its voice's m-line
        pc.addTransceiver("audio", direction="recvonly")
    path, what = ("/whep", "the server's own session") if session is None else \
        (f"/whep/{session}", f"session {session!r}")
    tracks: dict = {}
    arrived = asyncio.Event()

    def on_track(track):
        tracks[track.kind] = track
        arrived.set()

    pc.on("track", on_track)
    headers = {**SDP, **({"Authorization": f"Bearer {token}"} if token else {})}
    cam, audio, sent, resource = None, None, 0, None
    try:
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            try:
                async with http.post(f"{url.rstrip('/')}{path}", data=pc.localDescription.sdp,
                                     headers=headers) as r:
                    body = await r.text()
                    if r.status != 201:
                        raise CameraError(f"the server refused to play {what}: {r.status} {body[:200]}")
                    resource = r.headers.get("Location")
            except aiohttp.ClientError as e:
                raise CameraError(f"cannot reach {url}: {e}") from None
            await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
            if audio_device is not None:
                audio = AudioOut(audio_device)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=48_000)

            async def voice():
                while "audio" not in tracks:
                    await asyncio.sleep(0.05)
                while True:
                    try:
                        frame = await tracks["audio"].recv()
                    except MediaStreamError:
                        return
                    for out in resampler.resample(frame):
                        audio.put(out.to_ndarray().reshape(-1))

            voice_task = asyncio.ensure_future(voice()) if audio is not None else None
            loop = asyncio.get_running_loop()
            end = None if seconds is None else loop.time() + seconds
            try:
                while "video" not in tracks:
                    try:
                        await asyncio.wait_for(arrived.wait(), 30)
                    except asyncio.TimeoutError:
                        raise CameraError(f"no video from {what} within 30 s") from None
                    arrived.clear()
                while (end is None or loop.time() < end) and (frames is None or sent < frames):
                    try:
                        frame = await tracks["video"].recv()
                    except MediaStreamError:
                        break
                    rgb = frame.to_ndarray(format="rgb24")
                    if cam is None:
                        try:
                            cam = pyvirtualcam.Camera(rgb.shape[1], rgb.shape[0], 25, device=device, backend=backend)
                        except (RuntimeError, KeyError) as e:
                            raise CameraError(f"no virtual camera: {str(e).splitlines()[0] if str(e) else e} "
                                              "(on Linux: sudo modprobe v4l2loopback exclusive_caps=1)") from None
                        log.info("playing %s into %s (%dx%d)", what, cam.device, rgb.shape[1], rgb.shape[0])
                    cam.send(np.ascontiguousarray(rgb))
                    sent += 1
            finally:
                if voice_task is not None:
                    voice_task.cancel()
                    await asyncio.gather(voice_task, return_exceptions=True)
                if resource is not None:
                    try:
                        async with http.delete(f"{url.rstrip('/')}{resource}", headers=headers):
                            pass
                    except aiohttp.ClientError:
                        pass
    finally:
        await pc.close()
        if cam is not None:
            cam.close()
        if audio is not None:
            audio.close()
    return sent


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="emolive camera: %(message)s")
    if args.seconds is not None and args.seconds <= 0:
        print("emolive camera: --seconds must be positive", file=sys.stderr)
        return 2
    try:
        sent = asyncio.run(play(args.url, args.session, token=args.token, device=args.device, backend=args.backend,
                                audio_device=args.audio_device, seconds=args.seconds))
    except CameraError as e:
        print(f"emolive camera: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"emolive camera: {sent} frames sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
