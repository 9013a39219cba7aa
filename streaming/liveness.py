"""A peer that has gone quiet is closed: nothing received from it for `peer_timeout_s` ends its session.

A viewer whose network or machine vanishes without a DTLS close (a closed laptop lid, a lost radio
link, a killed browser) still holds its session: the server goes on rendering and encoding for it.
aiortc notices only through ICE consent freshness (aioice: a check every 4-6 s, failed after six
unanswered in a row), which closes the connection about 30 s later; then the session's
"connectionstatechange" -> "failed" closes it. A live peer sends something far more often: RTCP
receiver reports (about every second while media flows), its own consent checks (every ~5 s), its
voice if it sends any. So the server watches every datagram arriving on the session's ICE sockets
and closes the session once none has come for `peer_timeout_s` while connected. An outage shorter than
that (a radio handover, a few seconds of loss) is ridden out: the session goes on when packets flow again.
"""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class PeerActivity:
    """The loop time of the last datagram received on a peer connection's ICE sockets."""

    def __init__(self, pc) -> None:
        self._loop = asyncio.get_running_loop()
        self.last = self._loop.time()
        for protocol in ice_sockets(pc):
            self._watch(protocol)

    def _watch(self, protocol) -> None:
        received = protocol.datagram_received

        def datagram_received(data, addr) -> None:
            self.last = self._loop.time()
            received(data, addr)
        protocol.datagram_received = datagram_received

    def quiet_for(self) -> float:
        return self._loop.time() - self.last


def ice_sockets(pc) -> list:
    """aioice's sockets (StunProtocol) under pc's transports, each connection once (one with BUNDLE)."""
    seen, out = set(), []
    for t in pc.getTransceivers():
        dtls = t.receiver.transport or t.sender.transport
        conn = getattr(getattr(dtls, "transport", None), "_connection", None)  # RTCIceTransport -> aioice
        if conn is not None and id(conn) not in seen:
            seen.add(id(conn))
            out.extend(getattr(conn, "_protocols", ()))
    return out


async def watch_peer(runner, timeout_s: float) -> None:
    """Close the runner's session once its connected peer has sent nothing for timeout_s (run as one of
    its tasks, after setLocalDescription: the sockets exist once the candidates are gathered)."""
    activity = PeerActivity(runner.pc)
    step = min(1.0, timeout_s / 4)
    while True:
        await asyncio.sleep(step)
        if runner.pc.connectionState == "connected" and activity.quiet_for() >= timeout_s:
            log.info("session %s: nothing from the peer for %.1f s", runner.id[:6], activity.quiet_for())
            await runner.close(f"peer gone (nothing received for {timeout_s:g} s)")  # spares its calling task
            return
