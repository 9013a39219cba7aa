"""A serving process's first calls, paid before it reports ready: the engine as a session runs it, the
encoders, and a call between two peer connections on this host. Without it the first session after a start
paid them while streaming: its frames were late, dropped and repeated."""
from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from .app_common import CONFIG, PARTS
from .encoders import TunedVp8Encoder, warm_up_encoders
from .parts import warm_up_engine

log = logging.getLogger("emolive.server")


async def loopback_call(frames: int = 5) -> int:
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


def warm_up(app: web.Application, engine=warm_up_engine, encoders=warm_up_encoders, peer=loopback_call) -> dict:
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
