"""emolive's streaming server: aiohttp routes, session admission, auth, metrics; `run` / `main` entry points."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import ServerConfig, livelink_target, load_config, worker_count
from .control import HARD_SIZE_FACTOR, ControlConnection, image_message_limit
from .admission import SessionBudget
from .app_common import (BUDGET, CONFIG, COUNTERS, GOVERNOR, INPUT, MAX_OFFER_BYTES, PARTS, POOL, PUSHES, RECORDERS,
                         SESSIONS, WorkerStartError, add_routes, fail as _fail, guard as _guard)
from .heap import freeze_startup_heap
from .livelink import LiveLinkSender
from .livelink_out import LIVELINK, LiveLinkOut
from .load_governor import LoadGovernor
from .metrics import metrics
from .parts import EngineParts, EngineUnavailable, UnsupportedRequest, real_parts
from .push import HARD_FRAME_BYTES, PushConnection, PushFeed
from .session_io import build_input
from .session_open import open_session
from .sources import InputUnavailable, ServerInput
from . import whip, whip_publish
from .warm_up import warm_up

log = logging.getLogger("emolive.server")


class OfferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sdp: str = Field(min_length=1, max_length=MAX_OFFER_BYTES)
    type: str = Field(pattern="^offer$")
    avatar: str | None = Field(None, max_length=512)
    emotion: str | None = Field(None, max_length=200)


async def health(request: web.Request) -> web.Response:
    app = request.app
    # `input` tells the browser client whether to capture its microphone ("browser") or not.
    return web.json_response({"status": "ok", "sessions": len(app[SESSIONS]),
                              "max_sessions": app[CONFIG].max_sessions, "input": app[INPUT].kind,
                              "push": True, "recording": app[CONFIG].record is not None,
                              "load": app[GOVERNOR].report()})


async def offer(request: web.Request) -> web.Response:
    if (denied := _guard(request)) is not None:
        return denied
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        return _fail(413, "too_large", f"offer over {MAX_OFFER_BYTES} bytes")
    try:
        body = OfferRequest.model_validate(json.loads(await request.text()))
    except web.HTTPRequestEntityTooLarge:  # a body without a Content-Length, over the app's limit
        return _fail(413, "too_large", f"offer over {MAX_OFFER_BYTES} bytes")
    except (ValueError, RecursionError, ValidationError) as e:
        return _fail(400, "bad_offer", f"expected JSON {{sdp, type: 'offer', avatar?, emotion?}}: {e}".strip()[:300])
    opened = await open_session(request, body.sdp, avatar=body.avatar, emotion=body.emotion)
    if isinstance(opened, web.Response):
        return opened
    whip.share(request.app, opened)  # its avatar can be played at /whep/ID too
    return web.json_response({"sdp": opened.answer_sdp, "type": "answer", "session_id": opened.runner.id})


async def control_ws(request: web.Request) -> web.StreamResponse:
    app = request.app
    if (denied := _guard(request)) is not None:
        return denied
    runner = app[SESSIONS].get(request.query.get("session", ""))
    if runner is None:
        return _fail(404, "no_session", "no such session (closed, or never opened)")
    config = app[CONFIG]
    # reference_image messages may be larger (base64 of ws_max_image_bytes); the others are held to
    # ws_max_message_bytes by the connection itself.
    hard = max(config.ws_max_message_bytes * HARD_SIZE_FACTOR, image_message_limit(config) + 1024)
    ws = web.WebSocketResponse(max_msg_size=hard, heartbeat=20)
    await ws.prepare(request)
    await ControlConnection(ws, runner, config, publish=whip.session_publish(app, runner.id)).run()
    return ws


async def push_ws(request: web.Request) -> web.StreamResponse:
    """PCM push (TTS): binary s16le frames into one session's voice input (streaming/push.py)."""
    app = request.app
    if (denied := _guard(request)) is not None:
        return denied
    sid = request.query.get("session", "")
    runner = app[SESSIONS].get(sid)
    if runner is None:
        return _fail(404, "no_session", "no such session (closed, or never opened)")
    rate = request.query.get("sample_rate")
    if rate is not None and not rate.isdigit():
        return _fail(400, "bad_request", "sample_rate must be an integer (Hz)")
    pushes = app[PUSHES]
    if (old := pushes.get(sid)) is not None and not old.closed:
        return _fail(409, "busy", "another connection is pushing to this session")
    config = app[CONFIG]
    feed = PushFeed(config.sample_rate, config.push_buffer_s)
    pushes[sid] = feed
    ws = web.WebSocketResponse(max_msg_size=HARD_FRAME_BYTES, heartbeat=20)
    await ws.prepare(request)
    try:
        await PushConnection(ws, runner, config, feed).run(int(rate) if rate is not None else None)
    finally:
        if pushes.get(sid) is feed and not feed.active:
            pushes.pop(sid, None)
    return ws


async def close_session(request: web.Request) -> web.Response:
    if (denied := _guard(request)) is not None:
        return denied
    runner = request.app[SESSIONS].get(request.match_info["sid"])
    if runner is None:
        return _fail(404, "no_session", "no such session")
    await runner.close("closed by client")
    return web.json_response({"closed": runner.id})


async def _shutdown(app: web.Application) -> None:
    await app[GOVERNOR].stop()
    await asyncio.gather(*(r.close("server shutdown") for r in list(app[SESSIONS].values())),
                         return_exceptions=True)
    await whip.shutdown(app)
    await app[INPUT].stop()
    loop = asyncio.get_running_loop()
    for rec in app[RECORDERS]:  # every recording is finalised (moov written) before the process ends
        rec.finish()
        await loop.run_in_executor(None, rec.join)
    app[POOL].shutdown(wait=True)


async def _start_input(app: web.Application) -> None:
    await app[INPUT].start()


async def _start_governor(app: web.Application) -> None:
    app[GOVERNOR].start()


def create_app(config: ServerConfig, parts: EngineParts | None = None,
               source: ServerInput | None = None) -> web.Application:
    """The aiohttp application; `parts` defaults to the real engine (EngineUnavailable if it is not there),
    `source` to the input the config names (InputUnavailable if it cannot be used)."""
    if config.ice_loopback:
        from .loopback import include_loopback_candidates

        include_loopback_candidates()
    from .rtp_tuning import install as shallow_audio_receive_buffer

    shallow_audio_receive_buffer()  # the scheduler has its own jitter headroom: no 80 ms hold in aiortc
    from .aiortc_speedups import install as aiortc_speedups

    aiortc_speedups()
    from .dtls_ciphers import install as dtls_rsa_peers

    dtls_rsa_peers()  # GStreamer's WHIP / WHEP clients present RSA certificates
    app = web.Application(client_max_size=MAX_OFFER_BYTES * 2)
    app[CONFIG] = config
    app[INPUT] = source if source is not None else build_input(config)  # a bad --audio / --mic fails first
    app[PARTS] = parts or real_parts(config.renderer, fps=config.fps, neural_mouth=config.neural_mouth)
    app[SESSIONS] = {}
    app[GOVERNOR] = LoadGovernor(config, app[SESSIONS])
    app[POOL] = ThreadPoolExecutor(config.render_threads, thread_name_prefix="emolive-render")
    app[COUNTERS] = {"sessions_started": 0, "rejected_full": 0, "rejected_rate": 0, "rejected_busy": 0,
                     "recordings": 0}
    app[BUDGET] = SessionBudget(config.client_session_rate_per_s, config.client_session_burst)
    app[PUSHES] = {}
    app[RECORDERS] = []
    if config.livelink is not None:  # a host that does not resolve fails here, at start
        app[LIVELINK] = LiveLinkOut(config.livelink, app[COUNTERS], config.fps)
    add_routes(app, health=health, metrics=metrics, offer=offer, control=control_ws, push=push_ws,
               close=close_session)
    whip.setup(app)
    whip_publish.setup(app, config)
    app.on_startup.append(_start_input)
    app.on_startup.append(_start_governor)
    app.on_shutdown.append(_shutdown)
    return app


def prepare_default_avatar(app: web.Application) -> None:
    """Build the default avatar and its renderer once before serving: the first offer must not pay
    for the avatar build and the warp kernel's load before its first frame; a bad --avatar fails
    here, at start, with its own message. The text prompts' sentence encoder is loaded here too
    (prepare_prompt_reader)."""
    config = app[CONFIG]
    try:
        app[PARTS].renderer_factory(config.avatar).close()
    except Exception as e:  # noqa: BLE001 - AvatarError, RendererError, ...: the operator's to fix
        raise EngineUnavailable(f"cannot prepare the avatar {config.avatar or '(default)'}: {e}") from e
    prepare_prompt_reader(app)


def prepare_prompt_reader(app: web.Application) -> None:
    """Load the sentence encoder that reads text prompts before serving. Loaded by the first prompt that is
    not a lexicon word, it took seconds of CPU from a serving process (on a loaded 2-core machine, long
    enough for a streaming peer's ICE consent checks to fail). A build without prompts has nothing to load."""
    try:
        app[PARTS].emotion_factory(None).read_prompt("a quiet kind of cheerfulness")
    except UnsupportedRequest:
        pass


def run(config: ServerConfig, parts: EngineParts | None = None) -> None:
    """Serve until interrupted (Ctrl-C)."""
    app = create_app(config, parts)
    prepare_default_avatar(app)
    try:
        warm_up(app)
    except Exception:  # noqa: BLE001 - the process can serve; its first session pays the first calls
        log.warning("the warm-up failed; serving without it", exc_info=True)
    freeze_startup_heap()  # what the process keeps for good is built: closed sessions are collected cheaply
    log.info("emolive serving on http://%s:%d/", config.host, config.port)
    web.run_app(app, host=config.host, port=config.port, print=None)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="emolive serve", description="Stream emotional talking heads.")
    p.add_argument("--config", help="YAML settings file (configs/server.yaml)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--avatar", help="default avatar (image or bundle) for sessions")
    p.add_argument("--renderer")
    p.add_argument("--neural-mouth", action=argparse.BooleanOptionalAction, default=None,
                   help="meshwarp with (or without) the neural mouth (config: neural_mouth; default: off)")
    p.add_argument("--fps", type=int)
    p.add_argument("--max-sessions", type=int)
    p.add_argument("--workers", help="processes to spread the sessions over: a number (1: everything in this "
                   "process) or 'auto' (the default: one per core, at most --max-sessions; 1 with --mic/--record)")
    p.add_argument("--token", help="require this bearer token (or set EMOLIVE_TOKEN)")
    p.add_argument("--ice-loopback", action="store_true", default=None, help="offer 127.0.0.1 as ICE candidate")
    p.add_argument("--audio", metavar="FILE", help="play this file (wav, flac, mp3, ...) as every session's voice "
                   "instead of the browser's microphone")
    p.add_argument("--loop", action="store_true", default=None, help="with --audio: play the file in a loop")
    p.add_argument("--mic", action="store_true", default=None, help="use the local microphone as the voice input")
    p.add_argument("--mic-device", help="with --mic: input device index or name (python -m sounddevice lists them)")
    p.add_argument("--livelink", metavar="HOST:PORT", help="send every session's face to Unreal (a MetaHuman) as "
                   "Live Link Face UDP packets, subject emolive-<session id's first 8 characters> (port 11111 "
                   "when left out)")
    p.add_argument("--publish-whip", metavar="URL", help="push every session's avatar and voice to this WHIP server "
                   "(an SFU's WHIP ingest); {session} in the URL is replaced by the session id")
    p.add_argument("--publish-whip-token", metavar="TOKEN", help="with --publish-whip: send Authorization: Bearer "
                   "TOKEN (or set EMOLIVE_PUBLISH_WHIP_TOKEN)")
    p.add_argument("--record", metavar="OUT.mp4", help="record what each session sends (OUT.mp4, then "
                   "OUT-<session>.mp4)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _workers_arg(value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    if not value.isdigit():
        raise ValueError(f"--workers must be a number or 'auto', got {value!r}")
    return int(value)


def run_front(config: ServerConfig, workers: int) -> None:
    """Serve with the sessions spread over worker processes (streaming/front.py)."""
    from .front import create_front

    build_input(config)  # a bad --audio fails here with its message, not in every worker
    log.info("emolive on http://%s:%d/: starting %d worker processes", config.host, config.port, workers)
    web.run_app(create_front(config, workers), host=config.host, port=config.port, print=None)


def _check_writable(path: str) -> None:
    """--record: fail at start, not at the first session, when the folder cannot take the file."""
    folder = Path(path).resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".emolive-write-test-{secrets.token_hex(4)}"
    probe.touch()
    probe.unlink()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, host=args.host, port=args.port, avatar=args.avatar,
                             renderer=args.renderer, neural_mouth=args.neural_mouth, fps=args.fps,
                             max_sessions=args.max_sessions,
                             token=args.token, ice_loopback=args.ice_loopback, audio=args.audio,
                             audio_loop=args.loop, mic=args.mic,
                             mic_device=int(args.mic_device) if args.mic_device and args.mic_device.isdigit()
                             else args.mic_device, record=args.record, livelink=args.livelink,
                             publish_whip=args.publish_whip, publish_whip_token=args.publish_whip_token,
                             workers=_workers_arg(args.workers))
        workers = worker_count(config)
        if config.livelink is not None and workers > 1:  # each worker resolves it too; fail once, here
            LiveLinkSender(*livelink_target(config.livelink)).close()
        if config.record is not None:
            _check_writable(config.record)
        if workers > 1:
            run_front(config, workers)
        else:
            run(config)
    except (OSError, ValueError, EngineUnavailable, InputUnavailable, WorkerStartError) as e:  # bad settings, ...
        print(f"emolive serve: {e}", file=sys.stderr)  # one line, on stderr like every other command
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
