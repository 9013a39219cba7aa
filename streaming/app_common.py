"""The server app's shared keys and request guards (origin, token), used by the server and the front."""
from __future__ import annotations

import hmac
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from .admission import SessionBudget, retry_after_s
from .config import ServerConfig
from .parts import EngineParts
from .sources import ServerInput

STATIC = Path(__file__).parent / "static"
MAX_OFFER_BYTES = 64 * 1024

CONFIG = web.AppKey("config", ServerConfig)
PARTS = web.AppKey("parts", EngineParts)
SESSIONS = web.AppKey("sessions", dict)
POOL = web.AppKey("pool", ThreadPoolExecutor)
COUNTERS = web.AppKey("counters", dict)
INPUT = web.AppKey("input", ServerInput)
PUSHES = web.AppKey("pushes", dict)  # session id -> PushFeed of its pushing connection
RECORDERS = web.AppKey("recorders", list)
BUDGET = web.AppKey("session_budget", SessionBudget)  # sessions per client address
GOVERNOR = web.AppKey("load_governor", object)  # streaming/load_governor.py LoadGovernor of the process


def fail(status: int, code: str, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "reason": reason}, status=status, headers=headers)


async def read_offer_body(request: web.Request) -> bytes | web.Response:
    """The request's body, or 413 when it is over MAX_OFFER_BYTES (with or without a Content-Length)."""
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        return fail(413, "too_large", f"offer over {MAX_OFFER_BYTES} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:  # a body without a Content-Length, over the app's limit
        return fail(413, "too_large", f"offer over {MAX_OFFER_BYTES} bytes")
    if len(raw) > MAX_OFFER_BYTES:
        return fail(413, "too_large", f"offer over {MAX_OFFER_BYTES} bytes")
    return raw


def over_session_budget(budget: SessionBudget, request: web.Request) -> web.Response | None:
    """429 when the client has opened sessions faster than its budget (streaming/admission.py), else None
    with a token taken: give it back (budget.give_back(request.remote or "")) when no session comes of it."""
    wait = budget.take(request.remote or "")
    if wait <= 0:
        return None
    return fail(429, "rate_limited", f"this client opens sessions faster than {budget.rate:g} a second "
                f"(burst {budget.burst}); retry in {wait:.1f} s", headers={"Retry-After": retry_after_s(wait)})


def authorized(request: web.Request, config: ServerConfig) -> bool:
    if not config.token:
        return True
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else request.query.get("token", "")
    return hmac.compare_digest(given.encode(), config.token.encode())


def origin_ok(request: web.Request, config: ServerConfig) -> bool:
    """Browsers send Origin; scripts usually do not. Same host, or a listed origin."""
    origin = request.headers.get("Origin")
    if origin is None or origin in config.allowed_origins:
        return True
    host = request.headers.get("Host", "")
    return origin in (f"http://{host}", f"https://{host}")


def guard(request: web.Request) -> web.Response | None:
    config = request.app[CONFIG]
    if not origin_ok(request, config):
        return fail(403, "bad_origin", "this origin may not use the server")
    if not authorized(request, config):
        return fail(401, "unauthorized", "missing or wrong bearer token")
    return None


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")



class WorkerStartError(RuntimeError):
    """A worker process of `serve --workers N` could not start (its own log says why)."""


def add_routes(app: web.Application, *, health, metrics, offer, control, push, close) -> None:
    """The wire contract's routes (docs/reference/protocol.md), the same for the server and the front."""
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/offer", offer)
    app.router.add_get("/ws", control)
    app.router.add_get("/push", push)
    app.router.add_delete("/session/{sid}", close)
