"""`emolive serve --publish-whip URL`: every session's avatar and voice pushed to a WHIP server (RFC 9725);
the control websocket's `publish` message does the same for one session, to a URL its client names.

The session's avatar goes out like a WHEP viewer's (streaming/fanout.py): rendered once, a bounded copy
(the newest video frame, 200 ms of audio) feeds one more peer connection and encoder, so the session's own
media path is unchanged and a slow or absent WHIP server never holds it up. The publisher POSTs a
send-only audio + video offer (`Content-Type: application/sdp`, `Authorization: Bearer TOKEN` when a token
is set), expects `201 Created` with the SDP answer and a `Location`, and DELETEs that resource when the
session ends. `{session}` in the URL is replaced by the session id.

The session owns its publisher: a task of its runner, cancelled when the session closes; the publisher then
DELETEs its resource (at most DELETE_TIMEOUT_S), closes its peer connection, its encoder and its HTTP client.
A failed publish never disturbs the session: it is logged with its category, counted in /metrics
(`emolive_whip_publish_errors_total{category=...}`) and retried:

| category | what | then |
| --- | --- | --- |
| unreachable | no connection to the server, or no answer within HTTP_TIMEOUT_S | retried with backoff |
| unauthorized | 401 or 403 (a missing or wrong token) | not retried: publishing ends for that session |
| rejected | another 4xx (a wrong URL, an offer the server cannot use) | not retried |
| busy | 429 or 503 | retried after the server's Retry-After (at most RETRY_AFTER_MAX_S), else with backoff |
| server_error | another 5xx, a 3xx left unfollowed | retried with backoff |
| bad_answer | a 2xx without an SDP answer or Location, or an answer aiortc refuses | retried with backoff |
| media | no ICE + DTLS connection within connect_timeout_s, or the connection was lost later | retried with backoff |
| delete | the DELETE at the end failed (the server will time the resource out) | counted only |

Backoff: BACKOFF_FIRST_S after the first failure, doubled after each next one up to BACKOFF_MAX_S; a
publish that connected starts the count again.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from urllib.parse import urljoin

import aiohttp
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from .encoders import install_tuned_encoder
from .fanout import Fanout

log = logging.getLogger("emolive.whip_publish")

SDP = "application/sdp"
CATEGORIES = ("unreachable", "unauthorized", "rejected", "busy", "server_error", "bad_answer", "media", "delete")
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 30.0
RETRY_AFTER_MAX_S = 60.0
HTTP_TIMEOUT_S = 10.0  # the POST, its answer included
DELETE_TIMEOUT_S = 10.0  # the DELETE when the session ends: its close waits at most this long for it
MAX_ANSWER_BYTES = 64 * 1024


class PublishError(Exception):
    """One failed publish: `category` (CATEGORIES), and whether trying again can help."""

    def __init__(self, category: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.category = category
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return self.category in ("unauthorized", "rejected")


def target_url(template: str, session_id: str) -> str:
    return template.replace("{session}", session_id)


def backoff_s(failures: int) -> float:
    """Seconds to wait after the n-th failure in a row (n >= 1)."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, failures - 1))


def category_of(status: int) -> str:
    """The category of a POST answered with this status (not 201)."""
    if status in (401, 403):
        return "unauthorized"
    if status in (429, 503):
        return "busy"
    if status in (408, 425):  # a timeout or "too early": worth another try
        return "server_error"
    if 400 <= status < 500:
        return "rejected"
    if 200 <= status < 300:
        return "bad_answer"
    return "server_error"


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None  # an HTTP date is not followed: the backoff applies
    return min(RETRY_AFTER_MAX_S, float(value.strip()))


@dataclass
class Publishing:
    """The server's publishing settings and figures (app[PUBLISH]); each session's publisher reports here."""

    url: str | None  # every session is published here (--publish-whip); None: only on a control client's ask
    token: str | None
    connect_timeout_s: float
    video_encoder: str = "tuned"
    max_bitrate: int = 1_000_000
    errors: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CATEGORIES})
    counters: dict[str, int] = field(default_factory=lambda: {"attempts": 0, "started": 0, "ended": 0})
    live: int = 0  # publishers connected now
    allow: tuple[str, ...] | None = None  # URL prefixes a control client may publish to (None: any)

    def attach(self, runner, hub: Fanout) -> "WhipPublisher":
        """Publish this session from now on; its runner owns the task (cancelled when the session closes)."""
        publisher = WhipPublisher(self, runner.id, hub)
        runner.spawn(publisher.run(), "whip-publish")
        return publisher


PUBLISH = web.AppKey("whip_publish", Publishing)


def setup(app: web.Application, config) -> None:
    """The process's publishing settings and figures; with `publish_whip` set, every session it opens is
    published, and a control client may publish its own session anywhere `publish_whip_allow` lets it."""
    allow = None if config.publish_whip_allow is None else tuple(config.publish_whip_allow)
    app[PUBLISH] = Publishing(config.publish_whip, config.publish_whip_token, config.session_idle_timeout_s,
                              config.video_encoder, config.video_max_bitrate, allow=allow)


def attach(app: web.Application, runner, hub: Fanout) -> None:
    if (publishing := app.get(PUBLISH)) is not None and publishing.url:
        publishing.attach(runner, hub)


class PublishNotAllowed(Exception):
    """A control client named a URL the server does not publish to (publish_whip_allow)."""


class SessionPublish:
    """What a session's control lane publishes (`publish` / `unpublish`): at most one WHIP publish at a time,
    beside any `--publish-whip` one. The session owns it: its publisher is a task of the session's runner,
    cancelled (its resource DELETEd) by `unpublish`, by a new `publish`, or when the session closes."""

    def __init__(self, publishing: Publishing, runner, hub: Fanout) -> None:
        self.publishing = publishing
        self.runner = runner
        self.hub = hub
        self.publisher: WhipPublisher | None = None
        self._task: asyncio.Task | None = None

    def check(self, url: str) -> str:
        """The URL to POST to ({session} replaced), or PublishNotAllowed."""
        allow = self.publishing.allow
        if allow is not None and not any(url.startswith(prefix) for prefix in allow):
            raise PublishNotAllowed(f"this server does not publish to {url[:100]!r} (publish_whip_allow: "
                                    + (", ".join(allow) if allow else "none") + ")")
        return target_url(url, self.runner.id)

    async def start(self, url: str, token: str | None) -> None:
        target = self.check(url)
        await self.stop()
        self.publisher = WhipPublisher(self.publishing, self.runner.id, self.hub, url=target, token=token)
        self._task = self.runner.spawn(self.publisher.run(), "whip-publish-ctl")

    async def stop(self) -> bool:
        """End the current publish (its resource DELETEd); False when there was none."""
        task, self._task = self._task, None
        if task is None:
            return False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    def describe(self) -> dict | None:
        """{url, state} of the current publish (no token), or None."""
        p = self.publisher
        if p is None or self._task is None:
            return None
        return {"url": p.url, "state": p.state}


class WhipPublisher:
    """One session's publish: one attempt at a time, each with its own peer connection and viewer tracks."""

    def __init__(self, publishing: Publishing, session_id: str, hub: Fanout, url: str | None = None,
                 token: str | None = None) -> None:
        """`url` / `token`: a control client's target; by default the server's (--publish-whip)."""
        self.publishing = publishing
        self.sid = session_id
        self.hub = hub
        self.url = url if url is not None else target_url(publishing.url, session_id)
        self.token = token if url is not None else publishing.token
        self.state = "idle"  # idle, offering, connecting, connected, retrying, stopped
        self.resource: str | None = None  # the Location of the current publish
        self._pc: RTCPeerConnection | None = None
        self._tracks: dict | None = None
        self._encoders: list = []
        self._http: aiohttp.ClientSession | None = None
        self._connected = False

    async def run(self) -> None:
        failures = 0
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
        try:
            while True:
                self._connected = False
                try:
                    await self._publish_once()
                except PublishError as e:
                    self.publishing.errors[e.category] += 1
                    await self._teardown()
                    if e.permanent:
                        self.state = "stopped"
                        log.error("session %s: WHIP publish to %s failed (%s): %s; not retried, the session goes "
                                  "on unpublished", self.sid[:6], self.url, e.category, e)
                        return
                    failures = 1 if self._connected else failures + 1
                    delay = e.retry_after if e.retry_after is not None else backoff_s(failures)
                    self.state = "retrying"
                    log.warning("session %s: WHIP publish to %s failed (%s): %s; retrying in %.0f s",
                                self.sid[:6], self.url, e.category, e, delay)
                    await asyncio.sleep(delay)
        finally:
            self.state = "stopped"
            await self._teardown()
            await self._http.close()

    async def _publish_once(self) -> None:
        """Offer, answer, connect, then stay until the connection is lost (a PublishError in every case)."""
        publishing = self.publishing
        publishing.counters["attempts"] += 1
        self.state = "offering"
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        tracks = self._tracks = self.hub.viewer()
        pc.addTransceiver(tracks["audio"], direction="sendonly")
        video = pc.addTransceiver(tracks["video"], direction="sendonly")
        if publishing.video_encoder == "tuned":
            install_tuned_encoder(video.sender, max_bitrate=publishing.max_bitrate, owned=self._encoders)
        changed = asyncio.Event()
        pc.on("connectionstatechange", changed.set)
        await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers every candidate first: no trickle
        answer = await self._post(pc.localDescription.sdp)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except Exception as e:  # noqa: BLE001 - aiortc refuses answers in many ways
            raise PublishError("bad_answer", f"cannot use the answer: {type(e).__name__}: {e}"[:300]) from None
        self.state = "connecting"
        try:
            await asyncio.wait_for(self._until(pc, changed, ("connected", "failed", "closed")),
                                   publishing.connect_timeout_s)
        except asyncio.TimeoutError:
            raise PublishError("media", f"no connection within {publishing.connect_timeout_s:.0f} s") from None
        if pc.connectionState != "connected":
            raise PublishError("media", f"the connection {pc.connectionState} before it was up")
        self._connected = True
        self.state = "connected"
        publishing.counters["started"] += 1
        publishing.live += 1
        log.info("session %s: published to %s (resource %s)", self.sid[:6], self.url, self.resource)
        try:
            await self._until(pc, changed, ("failed", "closed"))
        finally:
            publishing.live -= 1
            publishing.counters["ended"] += 1
        raise PublishError("media", f"the connection to the WHIP server was lost ({pc.connectionState})")

    @staticmethod
    async def _until(pc: RTCPeerConnection, changed: asyncio.Event, states: tuple[str, ...]) -> None:
        while pc.connectionState not in states:
            changed.clear()
            await changed.wait()

    async def _post(self, offer: str) -> str:
        headers = {"Content-Type": SDP}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            async with self._http.post(self.url, data=offer, headers=headers) as r:
                body = (await r.content.read(MAX_ANSWER_BYTES + 1)).decode("utf-8", "replace")
                status, location = r.status, r.headers.get("Location")
                retry_after, content_type, final_url = _retry_after(r.headers.get("Retry-After")), r.content_type, r.url
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            raise PublishError("unreachable", f"{type(e).__name__}: {e}".strip()[:300]) from None
        if status != 201:
            detail = " ".join(body.split())[:200]
            raise PublishError(category_of(status), f"HTTP {status}" + (f": {detail}" if detail else ""),
                               retry_after if status in (429, 503) else None)
        if not location:
            raise PublishError("bad_answer", "201 without a Location header")
        self.resource = urljoin(str(final_url), location)  # a relative Location is relative to the URL posted to
        if content_type != SDP or not body.startswith("v=0") or len(body) > MAX_ANSWER_BYTES:
            raise PublishError("bad_answer", f"the answer is not an SDP body (Content-Type {content_type!r})")
        return body

    async def _teardown(self) -> None:
        """End the current attempt: DELETE its resource, close its peer connection and encoder, drop its tracks."""
        resource, self.resource = self.resource, None
        if resource is not None:
            await self._delete(resource)
        pc, self._pc = self._pc, None
        if pc is not None:
            await pc.close()
            pc.remove_all_listeners()
        tracks, self._tracks = self._tracks, None
        if tracks is not None:
            self.hub.remove(tracks)
        loop = asyncio.get_running_loop()
        for encoder in self._encoders:  # each encoder's own thread ends with its publish
            await loop.run_in_executor(None, encoder.close)
        self._encoders.clear()

    async def _delete(self, resource: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with self._http.delete(resource, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=DELETE_TIMEOUT_S)) as r:
                status = r.status
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            self.publishing.errors["delete"] += 1
            log.warning("session %s: DELETE %s failed (delete): %s: %s", self.sid[:6], resource, type(e).__name__, e)
            return
        if status >= 300 and status != 404:  # 404: the server has already let it go
            self.publishing.errors["delete"] += 1
            log.warning("session %s: DELETE %s failed (delete): HTTP %d", self.sid[:6], resource, status)
