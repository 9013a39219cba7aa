"""`emolive serve --workers N`: sessions spread over N worker processes behind one front.

Why: one aiortc process tops out near 1.5 cores (the GIL), and a crash of one
process should end only the sessions it holds. The front serves the page,
admits offers (the server-wide --max-sessions), sends each to the worker with
the least measured load (its overload level, then its CPU: streaming/worker_pool.py
`pick`), refuses it (503 server_busy) when every worker is overloaded at its
floor (engine/overload.py), and relays that session's websockets (/ws, /push) and
DELETE to it; /health and /metrics gather all workers. Media does not pass
through here: the SDP answer carries the worker's own ICE candidates.
A worker that dies loses its sessions only; the front starts a new one.
"""
from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
from aiohttp import web

from .config import ServerConfig
from .control import HARD_SIZE_FACTOR, image_message_limit
from .push import HARD_FRAME_BYTES
from .app_common import CONFIG, MAX_OFFER_BYTES, add_routes
from .app_common import fail as _fail
from .app_common import guard as _guard
from .app_common import over_session_budget, read_offer_body
from .admission import BUSY_RETRY_S, retry_after_s
from .worker_pool import Worker, WorkerPool
from .whip import RETRY_AFTER_S

log = logging.getLogger("emolive.front")
POOL = web.AppKey("workers", object)


# -- routes -------------------------------------------------------------------------------------
def _forward_headers(request: web.Request) -> dict[str, str]:
    # The front has checked origin and token; the worker checks the token again (same settings).
    return {k: request.headers[k] for k in TO_WORKER if k in request.headers}


async def health(request: web.Request) -> web.Response:
    pool: WorkerPool = request.app[POOL]
    ready = [w for w in pool.workers if w.ready]
    return web.json_response({
        "status": "ok" if ready else "down", "sessions": pool.sessions(),
        "max_sessions": pool.config.max_sessions, "input": ready[0].input_kind if ready else "browser",
        "push": True, "recording": False,
        "workers": [{"slot": w.slot, "ready": w.ready, "sessions": len(w.sessions),
                     "pid": w.proc.pid if w.proc else None, "load": w.report} for w in pool.workers]},
        status=200 if ready else 503)


async def offer(request: web.Request) -> web.Response:
    if (denied := _guard(request)) is not None:
        return denied
    body = await read_offer_body(request)
    if isinstance(body, web.Response):
        return body
    return await admit(request, body, 200, lambda resp: json.loads(resp.text).get("session_id"))


# Headers the client sends that the worker needs, and those of the worker's answer that the client needs.
TO_WORKER = ("Authorization", "Content-Type", "If-Match")  # origin and token are checked here first
TO_CLIENT = ("Content-Type", "Location", "ETag", "Link", "Retry-After", "Accept-Post", "Accept-Patch")


async def forward(worker: Worker, request: web.Request, body: bytes) -> web.Response:
    """The request as it came (method, path, body, the headers the worker needs) and the worker's answer."""
    async with worker.http.request(request.method, worker.url(request.rel_url.path_qs), data=body,
                                   headers=_forward_headers(request)) as r:
        data = await r.read()
        return web.Response(status=r.status, body=data, headers={k: r.headers[k] for k in TO_CLIENT if k in r.headers})


async def admit(request: web.Request, body: bytes, created: int, session_of) -> web.Response:
    """An offer that opens a session (POST /offer, POST /whip): admitted here against max_sessions, the workers'
    overload (all refusing: server_busy) and the client's session budget, forwarded to the least loaded worker
    (WorkerPool.pick); `created` is the worker's status for a session opened, `session_of(response)` its id."""
    pool: WorkerPool = request.app[POOL]
    if pool.sessions() >= pool.config.max_sessions:
        pool.counters["rejected_full"] += 1
        return _fail(503, "server_full", f"all {pool.config.max_sessions} sessions are in use; try again later",
                     headers={"Retry-After": RETRY_AFTER_S})
    worker = pool.pick()
    if worker is None:
        if pool.busy():
            pool.counters["rejected_busy"] += 1
            return _fail(503, "server_busy", "every worker's sessions are at the lowest frame rate and a new one "
                         "would not hold: try again later", headers={"Retry-After": retry_after_s(BUSY_RETRY_S)})
        return _fail(503, "no_worker", "no worker process is running; see the server log",
                     headers={"Retry-After": RETRY_AFTER_S})
    if (limited := over_session_budget(pool.budget, request)) is not None:
        pool.counters["rejected_rate"] += 1
        return limited
    worker.pending += 1  # held before any await: admission cannot be raced
    status = 502
    try:
        resp = await forward(worker, request, body)
        status = resp.status
    except (aiohttp.ClientError, OSError) as e:
        return _fail(502, "worker_unavailable", f"the worker did not answer: {e}")
    finally:
        worker.pending -= 1
        if status != created:  # refused by the worker (bad offer, ...): it cost little, it does not count
            pool.budget.give_back(request.remote or "")
    if status == created and (sid := session_of(resp)):
        pool.routes[sid] = worker
        worker.adopt(sid)
        pool.counters["sessions_started"] += 1
    return resp


def _route(request: web.Request, sid: str):
    return request.app[POOL].routes.get(sid)


async def relay_ws(request: web.Request) -> web.StreamResponse:
    """/ws and /push: the session's worker speaks; frames and close codes pass both ways unchanged."""
    if (denied := _guard(request)) is not None:
        return denied
    worker = _route(request, request.query.get("session", ""))
    if worker is None:
        return _fail(404, "no_session", "no such session (closed, or never opened)")
    config = request.app[CONFIG]
    limit = max(config.ws_max_message_bytes * HARD_SIZE_FACTOR, image_message_limit(config) + 1024,
                HARD_FRAME_BYTES) + 1024  # the worker enforces the real limits and answers with its errors
    try:
        upstream = await worker.http.ws_connect(worker.url(request.rel_url.path_qs), max_msg_size=limit,
                                                headers=_forward_headers(request))
    except aiohttp.WSServerHandshakeError as e:
        return _fail(e.status, "refused", e.message or "the session's worker refused the connection")
    except (aiohttp.ClientError, OSError) as e:
        return _fail(502, "worker_unavailable", f"the session's worker did not answer: {e}")
    ws = web.WebSocketResponse(max_msg_size=limit, heartbeat=20)
    await ws.prepare(request)

    closed_by: dict[str, tuple[int, bytes]] = {}

    async def pump(src, dst, side: str) -> None:
        while True:
            msg = await src.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            else:  # CLOSE carries (code, reason); CLOSED / ERROR end the relay too
                if msg.type == aiohttp.WSMsgType.CLOSE:
                    closed_by[side] = (int(msg.data or 1000), (msg.extra or "").encode()[:120])
                return

    down = asyncio.ensure_future(pump(upstream, ws, "worker"))
    up = asyncio.ensure_future(pump(ws, upstream, "client"))
    try:
        await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (down, up):
            t.cancel()
        await asyncio.gather(down, up, return_exceptions=True)
        # Whoever closed first, the other side gets its code and reason.
        code, reason = closed_by.get("worker") or closed_by.get("client") or (1000, b"")
        if code in (1005, 1006, 1015) or not 1000 <= code < 5000:  # codes that may not be sent
            code = 1000
        if not upstream.closed:
            await upstream.close(code=code, message=reason)
        if not ws.closed:
            await ws.close(code=code, message=reason)
    return ws


async def close_session(request: web.Request) -> web.Response:
    if (denied := _guard(request)) is not None:
        return denied
    worker = _route(request, request.match_info["sid"])
    if worker is None:
        return _fail(404, "no_session", "no such session")
    async with worker.http.delete(worker.url(request.rel_url.path_qs), headers=_forward_headers(request)) as r:
        return web.Response(text=await r.text(), status=r.status, content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    """The front's figures, then every worker's with a worker label (one TYPE line per metric)."""
    pool: WorkerPool = request.app[POOL]
    lines = ["# TYPE emolive_workers gauge", f"emolive_workers {sum(w.ready for w in pool.workers)}"]
    for name, value in pool.counters.items():
        lines += [f"# TYPE emolive_front_{name}_total counter", f"emolive_front_{name}_total {value}"]
    typed: set[str] = set()
    for w in pool.workers:
        if not w.ready:
            continue
        try:
            async with w.http.get(w.url("/metrics"), timeout=aiohttp.ClientTimeout(total=5)) as r:
                text = await r.text()
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            continue
        lines += _labelled(text, w.slot, typed)
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def _labelled(text: str, slot: int, typed: set[str]) -> list[str]:
    out = []
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            if line not in typed:
                typed.add(line)
                out.append(line)
            continue
        name, _, value = line.rpartition(" ")
        if "{" in name:
            name = name.replace("{", f'{{worker="{slot}",', 1)
        else:
            name = f'{name}{{worker="{slot}"}}'
        out.append(f"{name} {value}")
    return out


async def _start(app: web.Application) -> None:
    await app[POOL].start()


async def _stop(app: web.Application) -> None:
    await app[POOL].stop()


def create_front(config: ServerConfig, workers: int) -> web.Application:
    app = web.Application(client_max_size=MAX_OFFER_BYTES * 2)
    app[CONFIG] = config
    app[POOL] = WorkerPool(config, workers)
    add_routes(app, health=health, metrics=metrics, offer=offer, control=relay_ws, push=relay_ws,
               close=close_session)
    from . import front_whip  # imports the session machinery; the front needs it only for its routes

    front_whip.setup(app)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app
