"""WHIP in, WHEP out: the standard HTTP signalling of RFC 9725 (ingest) and of the WHEP draft (playback).

`POST /whip` with an SDP offer (OBS, GStreamer's whipclientsink, FFmpeg, a browser) opens a session whose
voice is the offer's audio; video offered with it is accepted and set inactive (the client sends none).
The answer names, in `Link` headers, where to play the avatar (`/whep/ID`), the session's control
websocket and its PCM push. `POST /whep/ID` with a receive-only offer adds a viewer: every viewer of a
session gets the same avatar, rendered once (streaming/fanout.py), through its own peer connection and
encoder. A browser session (POST /offer) can be played the same way (`share`): its viewers get copies of what
its own peer connection sends. `DELETE` on the resource a `Location` header named ends the session or the viewer; `PATCH`
takes trickled candidates (an ICE restart is refused with 422); `OPTIONS` answers CORS preflights.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from .app_common import BUDGET, CONFIG, COUNTERS, INPUT, fail, guard, origin_ok, over_session_budget, read_offer_body
from .encoders import install_tuned_encoder
from .fanout import Fanout
from .runner import SessionRunner
from .sdp_check import BadOffer, check_offer
from .session_open import open_session
from .whip_publish import PUBLISH, SessionPublish
from .whip_publish import attach as publish_whip

log = logging.getLogger("emolive.server")

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
WHIP = web.AppKey("whip", dict)  # session id -> WhipSession
CLOSING = web.AppKey("whip_closing", set)  # viewers' peer connections being closed (awaited at shutdown)
RETRY_AFTER_S = "5"
REL_WHEP, REL_CONTROL, REL_PUSH = "urn:emolive:whep", "urn:emolive:control", "urn:emolive:push"


@dataclass
class Viewer:
    pc: RTCPeerConnection
    tracks: dict
    encoders: list = field(default_factory=list)


@dataclass
class WhipSession:
    runner: SessionRunner
    hub: Fanout
    etag: str
    viewers: dict[str, Viewer] = field(default_factory=dict)
    ingest: bool = True  # opened with POST /whip (False: a browser session shared for WHEP viewers)
    publish: SessionPublish | None = None  # what its control clients publish (made on the first ask)


def session_publish(app: web.Application, sid: str) -> SessionPublish | None:
    """The control lane's publishing of a session (shared by its control connections), None if it is gone."""
    entry = app[WHIP].get(sid)
    if entry is None:
        return None
    if entry.publish is None:
        entry.publish = SessionPublish(app[PUBLISH], entry.runner, entry.hub)
    return entry.publish


def setup(app: web.Application) -> None:
    """The routes of a serving process (the server alone, or a worker behind the front)."""
    app[WHIP] = {}
    app[CLOSING] = set()
    add_routes(app, whip_post=whip_post, whip_delete=whip_delete, whip_patch=whip_patch, whep_post=whep_post,
               whep_head=whep_head, whep_delete=whep_delete, whep_default=whep_default)


def add_routes(app: web.Application, *, whip_post, whip_delete, whip_patch, whep_post, whep_head,
               whep_delete, whep_default) -> None:
    """The WHIP/WHEP routes (the same paths for the server and the front, which relays them)."""
    app.router.add_post("/whip", whip_post)
    app.router.add_post("/whep", whep_default)
    app.router.add_route("OPTIONS", "/whep", preflight)
    app.router.add_route("OPTIONS", "/whip", preflight)
    app.router.add_delete("/whip/{sid}", whip_delete)
    app.router.add_patch("/whip/{sid}", whip_patch)
    app.router.add_route("OPTIONS", "/whip/{sid}", preflight)
    app.router.add_post("/whep/{sid}", whep_post)
    app.router.add_route("HEAD", "/whep/{sid}", whep_head)
    app.router.add_route("OPTIONS", "/whep/{sid}", preflight)
    app.router.add_delete("/whep/{sid}/{vid}", whep_delete)
    app.router.add_route("OPTIONS", "/whep/{sid}/{vid}", preflight)
    app.on_response_prepare.append(cors_headers)


async def shutdown(app: web.Application) -> None:
    """After the sessions have closed: wait for their viewers' peer connections to close."""
    await asyncio.gather(*list(app[CLOSING]), return_exceptions=True)


# -- requests ------------------------------------------------------------------------------------
def _content_type_is(request: web.Request, expected: str) -> bool:
    return request.content_type.lower() == expected


async def _read_sdp(request: web.Request) -> str | web.Response:
    if not _content_type_is(request, SDP):
        return fail(415, "unsupported_media_type", f"expected Content-Type: {SDP}")
    raw = await read_offer_body(request)
    if isinstance(raw, web.Response):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return fail(400, "bad_offer", "the offer is not UTF-8 text")


def _with_retry_after(resp: web.Response) -> web.Response:
    if resp.status == 503:
        resp.headers.setdefault("Retry-After", RETRY_AFTER_S)
    return resp


def _sdp_response(sdp: str, location: str, etag: str, links: list[str] = ()) -> web.Response:
    headers = {"Location": location, "ETag": f'"{etag}"'}
    if links:
        headers["Link"] = ", ".join(links)
    return web.Response(status=201, text=sdp, content_type=SDP, headers=headers)


def _query_text(request: web.Request, name: str, limit: int) -> str | None | web.Response:
    value = request.query.get(name)
    if value is not None and (not value or len(value) > limit):
        return fail(400, "bad_request", f"{name} must be 1 to {limit} characters")
    return value


# -- WHIP: the voice in ----------------------------------------------------------------------------
async def whip_post(request: web.Request) -> web.Response:
    app = request.app
    if (denied := guard(request)) is not None:
        return denied
    sdp = await _read_sdp(request)
    if isinstance(sdp, web.Response):
        return sdp
    avatar, emotion = _query_text(request, "avatar", 512), _query_text(request, "emotion", 200)
    for v in (avatar, emotion):
        if isinstance(v, web.Response):
            return v
    opened = await open_session(request, sdp, avatar=avatar, emotion=emotion, send_media=False)
    if isinstance(opened, web.Response):
        return _with_retry_after(opened)
    runner = opened.runner
    sid = runner.id
    hub = Fanout(runner.audio_out, runner.video_out)
    runner.spawn(hub.pump("audio"), "fanout-audio")  # the session's clock runs whether or not anyone watches
    runner.spawn(hub.pump("video"), "fanout-video")
    entry = WhipSession(runner, hub, etag=secrets.token_hex(8))
    app[WHIP][sid] = entry
    opened.cleanups.append(lambda: _session_closed(app, sid))
    publish_whip(app, runner, hub)  # --publish-whip: pushed to a WHIP server too (a task of the session)
    return _sdp_response(opened.answer_sdp, f"/whip/{sid}", entry.etag,
                         [f'</whep/{sid}>; rel="{REL_WHEP}"', f'</ws?session={sid}>; rel="{REL_CONTROL}"',
                          f'</push?session={sid}>; rel="{REL_PUSH}"'])


def share(app: web.Application, opened) -> None:
    """A browser session (POST /offer, an Opened of session_open) can be played over WHEP at /whep/ID: its
    viewers get copies of the frames its own peer connection sends (Fanout.mirror), at that pace."""
    runner = opened.runner
    hub = Fanout(runner.audio_out, runner.video_out)
    hub.mirror()
    app[WHIP][runner.id] = WhipSession(runner, hub, etag=secrets.token_hex(8), ingest=False)
    opened.cleanups.append(lambda: _session_closed(app, runner.id))
    publish_whip(app, runner, hub)  # --publish-whip: pushed to a WHIP server too (a task of the session)


def _session(request: web.Request) -> WhipSession | None:
    """The session named in the path that can be played (opened with WHIP, or a shared browser session)."""
    entry = request.app[WHIP].get(request.match_info["sid"])
    return entry if entry is not None and not entry.runner.closing else None


def _whip_session(request: web.Request) -> WhipSession | None:
    """The session named in the path, if it was opened with WHIP (its /whip/ID resource)."""
    entry = _session(request)
    return entry if entry is not None and entry.ingest else None


async def whip_delete(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    entry = _whip_session(request)
    if entry is None:
        return fail(404, "no_session", "no such WHIP session (closed, or never opened)")
    await entry.runner.close("ended by the WHIP client")
    return web.Response(status=200)


def _ice_ufrag(sdp: str) -> str | None:
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line.split(":", 1)[1].strip()
    return None


async def whip_patch(request: web.Request) -> web.Response:
    """Trickled candidates (RFC 8840 fragments): added to the session's peer connection. A new ufrag is an
    ICE restart, which this server does not do: 422, and the client starts a new session."""
    if (denied := guard(request)) is not None:
        return denied
    entry = _whip_session(request)
    if entry is None:
        return fail(404, "no_session", "no such WHIP session (closed, or never opened)")
    if not _content_type_is(request, SDPFRAG):
        return fail(415, "unsupported_media_type", f"expected Content-Type: {SDPFRAG}")
    match = request.headers.get("If-Match")
    if match is not None and match.strip() not in ("*", f'"{entry.etag}"'):
        return fail(412, "precondition_failed", "If-Match does not name this session's ETag")
    raw = await read_offer_body(request)
    if isinstance(raw, web.Response):
        return raw
    text = raw.decode("utf-8", "replace")
    pc = entry.runner.pc
    ufrag = _ice_ufrag(text)
    if pc is None or pc.remoteDescription is None:
        return fail(409, "state", "the session has no remote description")
    if ufrag is not None and ufrag != _ice_ufrag(pc.remoteDescription.sdp):
        return fail(422, "ice_restart_unsupported", "ICE restart is not supported: end the session and start a new one")
    mid = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("a=mid:"):
            mid = line[6:]
        elif line.startswith("a=candidate:"):
            try:
                candidate = candidate_from_sdp(line[len("a=candidate:"):])
            except (ValueError, IndexError) as e:
                return fail(400, "bad_request", f"cannot read the candidate {line[:80]!r}: {e}")
            candidate.sdpMid = mid
            try:
                await pc.addIceCandidate(candidate)
            except Exception as e:  # noqa: BLE001 - aiortc refuses candidates for unknown mids and the like
                return fail(400, "bad_request", f"cannot use the candidate {line[:80]!r}: {e}")
    return web.Response(status=204)


# -- WHEP: the avatar out --------------------------------------------------------------------------
async def whep_default(request: web.Request) -> web.Response:
    """POST /whep: a session voiced by the server's own input (--audio, --mic), opened for this player, so a
    WHEP client (OBS's WHEP source, a player) needs one fixed URL. Its resource is the session
    (`Location: /session/ID`, DELETE ends it); others watch it at /whep/ID (the `Link`)."""
    app = request.app
    if (denied := guard(request)) is not None:
        return denied
    if app[INPUT].kind == "browser":
        return fail(404, "no_session", "this server takes each session's voice from its client: play a session "
                    "by its id (/whep/ID), or serve with --audio FILE or --mic to play the server's own voice at "
                    "/whep")
    sdp = await _read_sdp(request)
    if isinstance(sdp, web.Response):
        return sdp
    opened = await open_session(request, sdp)  # the avatar and the server's voice go to this player
    if isinstance(opened, web.Response):
        return _with_retry_after(opened)
    share(app, opened)
    sid = opened.runner.id
    return _sdp_response(opened.answer_sdp, f"/session/{sid}", app[WHIP][sid].etag,
                         [f'</whep/{sid}>; rel="{REL_WHEP}"', f'</ws?session={sid}>; rel="{REL_CONTROL}"'])


async def whep_post(request: web.Request) -> web.Response:
    app = request.app
    if (denied := guard(request)) is not None:
        return denied
    entry = _session(request)
    if entry is None:
        return fail(404, "no_session", "no such session to play (closed, or never opened)")
    sdp = await _read_sdp(request)
    if isinstance(sdp, web.Response):
        return sdp
    try:
        check_offer(sdp, "playback")
    except BadOffer as e:
        return fail(400, "bad_offer", str(e))
    config = app[CONFIG]
    if len(entry.viewers) >= config.whep_max_viewers:
        return _with_retry_after(fail(503, "viewers_full", f"this session already has {config.whep_max_viewers} "
                                      "viewers (whep_max_viewers)"))
    # A viewer's peer connection costs like a session's: it draws on the same budget per client address.
    if (limited := over_session_budget(app[BUDGET], request)) is not None:
        return limited
    runner = entry.runner
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer = Viewer(pc, entry.hub.viewer())
    vid = secrets.token_hex(12)
    entry.viewers[vid] = viewer
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        offered = {t.kind for t in pc.getTransceivers()}
        for kind in ("audio", "video"):  # what the viewer asked for: video alone (a camera) is fine
            if kind in offered:
                pc.addTrack(viewer.tracks[kind])
        for transceiver in pc.getTransceivers():
            transceiver.direction = "sendonly"  # a viewer's media, if it offers any, is not wanted
        if config.video_encoder == "tuned":
            for sender in pc.getSenders():
                if sender.track is viewer.tracks["video"]:
                    install_tuned_encoder(sender, max_bitrate=config.video_max_bitrate, owned=viewer.encoders)
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as e:  # noqa: BLE001 - aiortc refused an offer check_offer let through
        app[BUDGET].give_back(request.remote or "")
        await _remove_viewer(entry, vid)
        log.warning("WHEP offer refused by aiortc: %s: %s", type(e).__name__, e)
        return fail(400, "bad_offer", f"cannot use the offer: {type(e).__name__}: {e}".strip()[:300])

    @pc.on("connectionstatechange")
    async def _on_state():
        if pc.connectionState in ("failed", "closed"):
            await _remove_viewer(entry, vid)

    runner.spawn(_viewer_watchdog(entry, vid, config.session_idle_timeout_s), f"whep-{vid[:6]}")
    app[COUNTERS]["whep_viewers_started"] = app[COUNTERS].get("whep_viewers_started", 0) + 1
    return _sdp_response(pc.localDescription.sdp, f"/whep/{runner.id}/{vid}", entry.etag)


async def whep_head(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    if _session(request) is None:
        return web.Response(status=404)
    return web.Response(status=200, content_type=SDP)


async def whep_delete(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    entry = _session(request)
    vid = request.match_info["vid"]
    if entry is None or vid not in entry.viewers:
        return fail(404, "no_viewer", "no such viewer (gone, or never added)")
    await _remove_viewer(entry, vid)
    return web.Response(status=200)


async def _viewer_watchdog(entry: WhipSession, vid: str, timeout: float) -> None:
    """A viewer whose peer never connects is let go, so abandoned offers hold no encoder."""
    await asyncio.sleep(timeout)
    viewer = entry.viewers.get(vid)
    if viewer is not None and viewer.pc.connectionState != "connected":
        await _remove_viewer(entry, vid)


async def _remove_viewer(entry: WhipSession, vid: str) -> None:
    viewer = entry.viewers.pop(vid, None)
    if viewer is None:
        return
    entry.hub.remove(viewer.tracks)
    await _close_viewer(viewer)


async def _close_viewer(viewer: Viewer) -> None:
    await viewer.pc.close()
    viewer.pc.remove_all_listeners()
    loop = asyncio.get_running_loop()
    for encoder in viewer.encoders:  # each encoder's own thread ends with its viewer
        await loop.run_in_executor(None, encoder.close)
    viewer.encoders.clear()


def _session_closed(app: web.Application, sid: str) -> None:
    """The session closed (whoever closed it): its viewers go too; the closing is owned by app[CLOSING]."""
    entry = app[WHIP].pop(sid, None)
    if entry is None or not entry.viewers:
        return
    viewers = list(entry.viewers.values())
    entry.viewers.clear()

    async def close_all():
        await asyncio.gather(*(_close_viewer(v) for v in viewers), return_exceptions=True)

    task = asyncio.get_running_loop().create_task(close_all(), name=f"{sid[:6]}-whep-close")
    app[CLOSING].add(task)
    task.add_done_callback(app[CLOSING].discard)


# -- CORS -------------------------------------------------------------------------------------------
async def preflight(request: web.Request) -> web.Response:
    """OPTIONS: what the resource accepts, and CORS for origins the server allows."""
    path = request.path
    collection = path in ("/whip", "/whep") or (path.startswith("/whep/") and path.count("/") == 2)
    headers = {"Allow": "OPTIONS, POST" if collection else "OPTIONS, DELETE, PATCH" if path.startswith("/whip/")
               else "OPTIONS, DELETE"}
    if collection:
        headers["Accept-Post"] = SDP
    if path.startswith("/whip/"):
        headers["Accept-Patch"] = SDPFRAG
    origin = request.headers.get("Origin")
    if origin is not None and origin_ok(request, request.app[CONFIG]):
        headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                        "Access-Control-Allow-Methods": headers["Allow"],
                        "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
                        "Access-Control-Expose-Headers": "Location, Link, ETag, Retry-After",
                        "Access-Control-Max-Age": "600"})
    return web.Response(status=204, headers=headers)


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every WHIP/WHEP response (on_response_prepare): a page on an allowed origin may read it."""
    if not request.path.startswith(("/whip", "/whep")) or request.method == "OPTIONS":
        return
    origin = request.headers.get("Origin")
    if origin is not None and origin_ok(request, request.app[CONFIG]):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Location, Link, ETag, Retry-After"
        response.headers["Vary"] = "Origin"

