"""Opening a session from an SDP offer: admission, the session's runner and peer connection, and what
closes them. Shared by `POST /offer` (the JSON offer of the browser client) and `POST /whip` (RFC 9725)."""
from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from engine.emotion import EmotionError

from .admission import BUSY_RETRY_S, retry_after_s
from .app_common import BUDGET, CONFIG, COUNTERS, GOVERNOR, INPUT, PARTS, POOL, SESSIONS, fail, over_session_budget
from .livelink_out import LIVELINK
from .liveness import watch_peer
from .parts import EngineUnavailable
from .runner import SessionRunner
from .sdp_check import BadOffer, check_offer
from .session_io import attach_browser_audio, start_recording

log = logging.getLogger("emolive.server")


@dataclass
class Opened:
    runner: SessionRunner
    answer_sdp: str
    cleanups: list[Callable[[], None]] = field(default_factory=list)  # run when the session closes


async def open_session(request: web.Request, sdp: str, *, avatar: str | None = None, emotion: str | None = None,
                       send_media: bool = True) -> web.Response | Opened:
    """A session for this offer, or the error response that refuses it. `send_media`: the avatar and the
    voice go back on this peer connection (False: it only brings the voice in)."""
    app = request.app
    config, sessions = app[CONFIG], app[SESSIONS]
    try:
        check_offer(sdp, "session" if send_media else "ingest")  # before anything is allocated: aiortc fails half-way on offers it cannot use
    except BadOffer as e:
        return fail(400, "bad_offer", str(e))
    if len(sessions) >= config.max_sessions:
        app[COUNTERS]["rejected_full"] += 1
        return fail(503, "server_full", f"all {config.max_sessions} sessions are in use; try again later")
    governor = app[GOVERNOR]
    if governor.refuses_new():  # engine/overload.py, "Admission"
        app[COUNTERS]["rejected_busy"] += 1
        return fail(503, "server_busy", f"the sessions here are at the lowest frame rate ({governor.governor.fps:.1f} "
                    "fps) and a new one would not hold: try again later",
                    headers={"Retry-After": retry_after_s(BUSY_RETRY_S)})
    if (limited := over_session_budget(app[BUDGET], request)) is not None:
        app[COUNTERS]["rejected_rate"] += 1
        return limited
    # Hex, not urlsafe base64: an id that begins with '-' reads as an option on a command line (`ctl --session`).
    sid = secrets.token_hex(16)
    cleanups = []  # run when the session closes, whatever closes it
    input_attached: list[bool] = []  # the server-side input was attached (on the first "connected")

    def on_closed(r: SessionRunner) -> None:
        sessions.pop(r.id, None)
        for fn in cleanups:
            fn()

    try:
        runner = SessionRunner(sid, app[PARTS], config, app[POOL], avatar=avatar or config.avatar,
                               emotion=emotion, on_closed=on_closed)
    except EmotionError as e:
        app[BUDGET].give_back(request.remote or "")
        return fail(400, "unknown_emotion", str(e))
    runner.set_frame_share(governor.share)  # the level every session of the process is at
    sessions[sid] = runner  # reserved before any await: admission cannot be raced
    stage = "engine"
    try:
        await runner.open()
        stage = "offer"
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        runner.pc = pc

        @pc.on("track")
        def _on_track(track):
            if track.kind == "audio":
                attach_browser_audio(app, runner, track)

        @pc.on("connectionstatechange")
        async def _on_state():
            if pc.connectionState == "connected" and not input_attached and not runner.closed.is_set():
                # A server-side input starts when the viewer can see it, not while ICE is connecting.
                input_attached.append(True)
                if (detach := app[INPUT].attach(runner)) is not None:
                    cleanups.append(detach)
            elif pc.connectionState in ("failed", "closed"):
                await runner.close(f"peer connection {pc.connectionState}")

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if send_media:
            pc.addTrack(runner.audio_out)
            pc.addTrack(runner.video_out)
        else:  # ingest only (WHIP): the avatar is played elsewhere; video offered with the voice is not wanted
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    transceiver.direction = "inactive"
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as e:
        sessions.pop(sid, None)
        app[BUDGET].give_back(request.remote or "")
        await _close_failed(runner)
        if stage == "offer" and not isinstance(e, OSError):  # aiortc refused an offer check_offer let through
            log.warning("offer refused by aiortc: %s: %s", type(e).__name__, e)
            return fail(400, "bad_offer", f"cannot use the offer: {type(e).__name__}: {e}".strip()[:300])
        if isinstance(e, (ValueError, OSError)) and not isinstance(e, EngineUnavailable):
            return fail(400, "bad_request", f"cannot start the session: {e}")
        log.exception("session setup failed")
        return fail(500, "engine_error", f"cannot start the session: {e}")
    if config.record is not None:
        start_recording(app, runner, cleanups)
    if (livelink := app.get(LIVELINK)) is not None:
        cleanups.append(livelink.attach(runner))
    runner.start()
    runner.spawn(_connect_watchdog(runner, config.session_idle_timeout_s), "watchdog")
    runner.spawn(watch_peer(runner, config.peer_timeout_s), "liveness")
    app[COUNTERS]["sessions_started"] += 1
    return Opened(runner, pc.localDescription.sdp, cleanups)



async def _close_failed(runner: SessionRunner) -> None:
    """Close a session whose setup failed, even when aiortc cannot close its half-set-up peer connection
    (the session's worker thread and renderer must not be left behind)."""
    pc, runner.pc = runner.pc, None
    try:
        await runner.close("setup failed")
    finally:
        if pc is not None:
            try:
                await pc.close()
            except Exception as e:  # noqa: BLE001 - aiortc's close dereferences transports it never made
                log.warning("the failed offer's peer connection did not close cleanly: %s: %s", type(e).__name__, e)


async def _connect_watchdog(runner: SessionRunner, timeout: float) -> None:
    """A session whose peer never connects is closed, so abandoned offers do not hold a slot."""
    await asyncio.sleep(timeout)
    if runner.pc is None or runner.pc.connectionState != "connected":
        await runner.close("peer never connected")  # close() spares its calling task
