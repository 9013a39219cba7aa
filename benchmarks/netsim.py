"""A bad network in user space: seeded loss, jitter, reordering and outages on one WebRTC peer's sockets.

The kernel's netem is not always there (containers, CI), so the impairment sits in the peer itself:
`ImpairedPeer(pc, profile)` wraps the datagram sockets of an aiortc RTCPeerConnection's ICE
connection(s) (aioice `StunProtocol`s: `transport.sendto` out, `datagram_received` in), so every
datagram the peer sends or receives (RTP, RTCP, DTLS, STUN consent checks) goes through a `Direction`
that drops or delays it. Both directions are impaired, each with its own seeded random stream.

A `Profile` is what netem would be told:

* `loss`: each datagram is dropped with this probability;
* `delay_s`, `jitter_s`: each datagram is held `delay_s` + uniform(0, `jitter_s`); as with netem,
  independent delays reorder datagrams closer together than the jitter;
* `reorder`, `reorder_s`: besides, a datagram is held `reorder_s` longer with this probability
  (the next ones overtake it);
* outages: `Direction.down(seconds)` (or `ImpairedPeer.outage`) drops everything until then;
  `seconds=None` for ever (a peer that is gone).

Datagrams waiting out their delay are bounded (`max_queue` per direction, counted as `overflow`
beyond it): nothing is buffered without bound. The profile can be changed while the call runs
(`ImpairedPeer.set_profile`): a test connects on a clean link and impairs it once media flows.
Counters per direction: `passed`, `lost`, `outage`, `overflow`, `delayed`, `reordered`.

Used by tests/benchmarks/test_network_impairment.py and benchmarks/bench_network.py.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Callable

from streaming.liveness import ice_sockets

MAX_QUEUE = 256  # datagrams held for their delay, per direction (30 ms of 1 Mbit/s video is ~5)


@dataclass(frozen=True)
class Profile:
    loss: float = 0.0
    delay_s: float = 0.0
    jitter_s: float = 0.0
    reorder: float = 0.0
    reorder_s: float = 0.03

    def __post_init__(self) -> None:
        if not (0 <= self.loss <= 1 and 0 <= self.reorder <= 1):
            raise ValueError("loss and reorder are probabilities in [0, 1]")
        if min(self.delay_s, self.jitter_s, self.reorder_s) < 0:
            raise ValueError("delays are >= 0")

    @property
    def clean(self) -> bool:
        return self == Profile()

    def __str__(self) -> str:
        parts = [f"{100 * self.loss:g} % loss" if self.loss else "",
                 f"{1000 * self.delay_s:g} ms delay" if self.delay_s else "",
                 f"{1000 * self.jitter_s:g} ms jitter" if self.jitter_s else "",
                 f"{100 * self.reorder:g} % reordered by {1000 * self.reorder_s:g} ms" if self.reorder else ""]
        return ", ".join(p for p in parts if p) or "clean"


CLEAN = Profile()


class Direction:
    """One direction of the link: `push(datagram)` hands it to `deliver` now, later or never."""

    def __init__(self, deliver: Callable[..., None], profile: Profile = CLEAN, seed: int = 0,
                 max_queue: int = MAX_QUEUE, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._deliver = deliver
        self.profile = profile
        self._rng = random.Random(seed)
        self._max_queue = max_queue
        self._loop = loop
        self._held: set[asyncio.TimerHandle] = set()
        self._down_until: float | None = None  # an outage until this loop time (inf: for ever)
        self.counters = {"passed": 0, "lost": 0, "outage": 0, "overflow": 0, "delayed": 0, "reordered": 0}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def queued(self) -> int:
        return len(self._held)

    def down(self, seconds: float | None) -> None:
        """Drop everything for `seconds` from now (None: until `up()`); held datagrams are dropped too."""
        self._down_until = float("inf") if seconds is None else self.loop.time() + seconds
        for h in self._held:
            h.cancel()
        self.counters["outage"] += len(self._held)
        self._held.clear()

    def up(self) -> None:
        self._down_until = None

    def is_down(self) -> bool:
        if self._down_until is None:
            return False
        if self.loop.time() >= self._down_until:
            self._down_until = None
            return False
        return True

    def push(self, *datagram) -> None:
        p, rng, c = self.profile, self._rng, self.counters
        # draw every random number whatever happens, so that a seed gives the same pattern per datagram
        lost = rng.random() < p.loss
        delay = p.delay_s + p.jitter_s * rng.random()
        if rng.random() < p.reorder:
            delay += p.reorder_s
            c["reordered"] += 1
        if self.is_down():
            c["outage"] += 1
        elif lost:
            c["lost"] += 1
        elif delay <= 0:
            c["passed"] += 1
            self._deliver(*datagram)
        elif len(self._held) >= self._max_queue:
            c["overflow"] += 1
        else:
            c["delayed"] += 1
            handle: asyncio.TimerHandle | None = None

            def release() -> None:
                self._held.discard(handle)
                c["passed"] += 1
                self._deliver(*datagram)

            handle = self.loop.call_later(delay, release)
            self._held.add(handle)

    def close(self) -> None:
        for h in self._held:
            h.cancel()
        self._held.clear()


class ImpairedPeer:
    """Both directions of an aiortc peer connection's sockets through `Direction`s (install after
    setLocalDescription: the sockets exist once the candidates are gathered)."""

    def __init__(self, pc, profile: Profile = CLEAN, seed: int = 0, max_queue: int = MAX_QUEUE) -> None:
        self.outbound: list[Direction] = []
        self.inbound: list[Direction] = []
        for i, protocol in enumerate(ice_sockets(pc)):
            transport = protocol.transport
            send = Direction(_send_now(transport), profile, seed=2 * (seed * 1000 + i), max_queue=max_queue)
            recv = Direction(protocol.datagram_received, profile, seed=2 * (seed * 1000 + i) + 1,
                             max_queue=max_queue)
            transport.sendto = send.push
            protocol.datagram_received = recv.push
            self.outbound.append(send)
            self.inbound.append(recv)
        if not self.outbound:
            raise ValueError("no ICE sockets on this peer connection yet (call setLocalDescription first)")

    @property
    def directions(self) -> list[Direction]:
        return self.outbound + self.inbound

    def set_profile(self, profile: Profile, inbound: Profile | None = None) -> None:
        """The same profile both ways, or `inbound` for what the peer receives."""
        for d in self.outbound:
            d.profile = profile
        for d in self.inbound:
            d.profile = profile if inbound is None else inbound

    def outage(self, seconds: float | None) -> None:
        """Nothing passes either way for `seconds` (None: until `restore()`: a peer that is gone)."""
        for d in self.directions:
            d.down(seconds)

    def restore(self) -> None:
        for d in self.directions:
            d.up()

    def counters(self) -> dict[str, dict[str, int]]:
        def total(ds: list[Direction]) -> dict[str, int]:
            out: dict[str, int] = {}
            for d in ds:
                for k, v in d.counters.items():
                    out[k] = out.get(k, 0) + v
            return out
        return {"sent": total(self.outbound), "received": total(self.inbound)}

    def close(self) -> None:
        for d in self.directions:
            d.close()


def _send_now(transport):
    """The socket's own sendto; a datagram released after the socket closed is dropped."""
    sendto = transport.sendto

    def send(data, addr=None) -> None:
        if not transport.is_closing():
            sendto(data, addr)
    return send

