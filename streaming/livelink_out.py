"""`emolive serve --livelink HOST:PORT`: every session's rendered face states to Unreal as Live Link Face packets.

Each session has its own UDP socket (streaming/livelink.py) and its own Live Link subject,
`emolive-` + the first 8 characters of its session id (the label /metrics gives the session), so
Unreal lists one subject per session. One datagram per rendered frame, numbered with the frame's
timeline index (frame k shows the outbound audio sample k * 48000 / fps), sent from the render loop
without blocking: a datagram that cannot go out at once is dropped and counted in /metrics
(`emolive_livelink_packets_dropped_total`; sent ones in `emolive_livelink_packets_sent_total`).
"""
from __future__ import annotations

import logging
from typing import Callable

from aiohttp import web

from .config import livelink_target
from .livelink import LiveLinkSender

log = logging.getLogger(__name__)

SENT, DROPPED = "livelink_packets_sent", "livelink_packets_dropped"


def subject_for(session_id: str) -> str:
    """The Live Link subject of a session."""
    return f"emolive-{session_id[:8]}"


class LiveLinkOut:
    """The server's Live Link target: resolved once, at start (a bad host or port is a ValueError then)."""

    def __init__(self, target: str, counters: dict, fps: int) -> None:
        host, port = livelink_target(target)
        probe = LiveLinkSender(host, port, fps=fps)  # resolves the name now, not in every session's setup
        self.host, self.port = probe.address[0], probe.address[1]
        probe.close()
        self.fps = fps
        self.counters = counters
        counters.setdefault(SENT, 0)
        counters.setdefault(DROPPED, 0)

    def attach(self, runner) -> Callable[[], None]:
        """Send the session's rendered frames from now on; returns what stops it (run when the session closes)."""
        sender = LiveLinkSender(self.host, self.port, subject=subject_for(runner.id), fps=self.fps)
        counters = self.counters

        def on_frame(k: int, state) -> None:
            try:
                ok = sender.send(state, frame_number=k)
            except Exception:  # noqa: BLE001 - never the render loop's failure
                log.exception("session %s: Live Link packet not sent", runner.id[:6])
                ok = False
            counters[SENT if ok else DROPPED] += 1

        runner.frame_listeners.add(on_frame)
        log.info("session %s: Live Link to %s:%d, subject %s", runner.id[:6], self.host, self.port,
                 sender.subject)

        def detach() -> None:
            runner.frame_listeners.discard(on_frame)
            sender.close()
        return detach


LIVELINK = web.AppKey("livelink", LiveLinkOut)
