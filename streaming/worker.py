"""One worker process of `emolive serve --workers N`: the full server app on a private unix socket.

The front process (streaming/front.py) starts it as
`python -m streaming.worker SOCKET` with the settings as JSON on stdin's first
line, forwards offers, websockets and metrics to it, and watches it. WebRTC
media goes straight between the viewer and this process (its own ICE
candidates are in the SDP answer), so a session's media never crosses the
front. The worker ends when its stdin closes: the front is gone, whatever
killed it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time

from aiohttp import web

from .app_common import CONFIG, PARTS, SESSIONS
from .config import ServerConfig
from .encoders import TunedVp8Encoder, warm_up_encoders
from .heap import freeze_startup_heap
from .parts import EngineUnavailable, warm_up_engine
from .server import create_app, prepare_default_avatar
from .sources import InputUnavailable

log = logging.getLogger("emolive.worker")


async def _sessions(request: web.Request) -> web.Response:
    """Live session ids (the socket is private to the front, which routes by them)."""
    return web.json_response({"sessions": list(request.app[SESSIONS])})


async def _loopback_call(frames: int = 5) -> int:
    """aiortc's first use in the process: two peer connections here call each other on this host (ICE, the
    DTLS handshake, SRTP, RTP out and in, the receivers' VP8 and Opus decoders) until `frames` video and
    audio frames have arrived, then hang up. Returns the frames that arrived."""
    from aiortc import RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

    caller, callee = RTCPeerConnection(), RTCPeerConnection()
    arrived = {"audio": 0, "video": 0}
    enough = asyncio.Event()
    pulls: list[asyncio.Task] = []

    async def pull(track) -> None:
        try:
            while True:
                await track.recv()
                arrived[track.kind] += 1
                if min(arrived.values()) >= frames:
                    enough.set()
        except MediaStreamError:
            pass

    callee.on("track", lambda track: pulls.append(asyncio.ensure_future(pull(track))))
    try:
        caller.addTrack(AudioStreamTrack())
        caller.addTrack(VideoStreamTrack())
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        await enough.wait()
    finally:
        for task in pulls:
            task.cancel()
        await asyncio.gather(*pulls, return_exceptions=True)
        await caller.close()
        await callee.close()
    return sum(arrived.values())


def warm_up(app: web.Application, engine=warm_up_engine, encoders=warm_up_encoders, peer=_loopback_call) -> dict:
    """Pay the process's first-call costs before it reports ready (the front serves once every worker
    answers /health): the engine run as a session runs it (audio model, emotion, renders of the default
    avatar), the tuned VP8 encoder and Opus on those frames, and a call between two peer connections on
    this host (streaming/loopback.py's candidates where ice_loopback is set). Without it the
    first session after a start paid them while streaming: its frames were late, dropped and repeated.
    Returns the seconds each part took."""
    config = app[CONFIG]
    t0 = time.perf_counter()
    frames = engine(app[PARTS], config.avatar, sample_rate=config.sample_rate)
    t1 = time.perf_counter()
    if config.video_encoder == "tuned":
        video = TunedVp8Encoder
    else:
        from aiortc.codecs.vpx import Vp8Encoder as video
    encoders(frames, sample_rate=config.sample_rate, video=video)
    t2 = time.perf_counter()
    asyncio.run(asyncio.wait_for(peer(), 20))
    t3 = time.perf_counter()
    took = {"engine_s": round(t1 - t0, 3), "encoders_s": round(t2 - t1, 3), "call_s": round(t3 - t2, 3)}
    log.info("warmed up: engine %.2f s, encoders %.2f s, call %.2f s", *took.values())
    return took


def _watch_front() -> None:
    """A daemon thread: at EOF on stdin (the front has gone), stop like on SIGTERM (sessions closed cleanly)."""
    def watch() -> None:
        sys.stdin.buffer.read()
        log.info("the front closed the pipe; stopping")
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=watch, name="front-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m streaming.worker SOCKET  (settings as JSON on stdin's first line)")
        return 2
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s worker{os.getpid()} %(name)s: "
                        "%(message)s")
    try:
        config = ServerConfig.model_validate_json(sys.stdin.buffer.readline())
        app = create_app(config)
        prepare_default_avatar(app)
        try:
            warm_up(app)
        except Exception:  # noqa: BLE001 - the process can serve; its first session pays the first calls
            log.warning("the warm-up failed; serving without it", exc_info=True)
        freeze_startup_heap()  # what the process keeps for good is built: closed sessions are collected cheaply
    except (ValueError, OSError, EngineUnavailable, InputUnavailable) as e:  # the front reports the exit
        print(f"emolive worker: {e}", file=sys.stderr)
        return 2
    app.router.add_get("/internal/sessions", _sessions)
    _watch_front()
    web.run_app(app, path=argv[0], print=None, access_log=None)  # the front logs the requests; polls are not news
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
