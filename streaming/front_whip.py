"""The front's side of WHIP and WHEP: a WHIP offer is admitted like any offer (sessions, the client's budget)
and forwarded to a worker; a session's resources (/whip/ID, /whep/ID, /whep/ID/VIEWER) go to the worker that
holds it. Bodies and the headers the protocols define pass through unchanged."""
from __future__ import annotations

import aiohttp
from aiohttp import web

from .app_common import fail, guard, over_session_budget, read_offer_body
from .front import POOL, admit, forward
from .whip import add_routes


def setup(app: web.Application) -> None:
    add_routes(app, whip_post=open_session, whip_delete=relay, whip_patch=relay, whep_post=whep_post,
               whep_head=relay, whep_delete=relay, whep_default=open_session)


async def open_session(request: web.Request) -> web.Response:
    """POST /whip and POST /whep (a session voiced by the server's own input) open a session: admitted like
    any offer; its id is the last part of the Location."""
    if (denied := guard(request)) is not None:
        return denied
    body = await read_offer_body(request)
    if isinstance(body, web.Response):
        return body
    return await admit(request, body, 201, lambda resp: resp.headers.get("Location", "").rsplit("/", 1)[-1])


async def whep_post(request: web.Request) -> web.Response:
    """A viewer draws on its client's session budget here: behind the front, workers see only the front."""
    if (denied := guard(request)) is not None:
        return denied
    pool = request.app[POOL]
    worker = pool.routes.get(request.match_info["sid"])
    if worker is None:
        return _no_session()
    if (limited := over_session_budget(pool.budget, request)) is not None:
        pool.counters["rejected_rate"] += 1
        return limited
    resp = await _relay_to(worker, request)
    if resp.status != 201:
        pool.budget.give_back(request.remote or "")
    return resp


async def relay(request: web.Request) -> web.Response:
    if (denied := guard(request)) is not None:
        return denied
    worker = request.app[POOL].routes.get(request.match_info["sid"])
    if worker is None:
        return _no_session()
    return await _relay_to(worker, request)


def _no_session() -> web.Response:
    return fail(404, "no_session", "no such session (closed, or never opened)")


async def _relay_to(worker, request: web.Request) -> web.Response:
    body = await read_offer_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        return await forward(worker, request, body)
    except (aiohttp.ClientError, OSError) as e:
        return fail(502, "worker_unavailable", f"the session's worker did not answer: {e}")
