"""How many sessions one client may open per second: a budget per client address.

Opening a session is the costliest thing a client can ask for (a peer
connection with its DTLS certificate and ICE gathering, the session's runner
and renderer, and their teardown), and it lands on the worker that streams
other people's sessions. Without a budget, one client that opens and closes
sessions in a loop takes a core from every viewer. Offers that are refused
for what they are (bad SDP, too large, server full) are cheap and are not
counted; only an offer that is let through to open a session takes a token,
and it is given back when no session came of it. A WHEP viewer's peer connection costs about as
much and draws on the same budget.

The table of addresses is bounded (`MAX_CLIENTS`, least recently seen
forgotten first): a flood from many addresses cannot grow it.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Callable

MAX_CLIENTS = 4096


class SessionBudget:
    """Token buckets per client address: `rate_per_s` sessions a second, `burst` at once."""

    def __init__(self, rate_per_s: float | None, burst: int, now: Callable[[], float] = time.monotonic,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.rate, self.burst, self.now, self.max_clients = rate_per_s, burst, now, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, at)

    @property
    def enabled(self) -> bool:
        return self.rate is not None

    def _tokens(self, client: str, t: float) -> float:
        tokens, at = self._buckets.get(client, (float(self.burst), t))
        return min(float(self.burst), tokens + (t - at) * self.rate)

    def take(self, client: str) -> float:
        """Take a token for `client`; 0.0 when granted, else the seconds until one is free."""
        if not self.enabled:
            return 0.0
        t = self.now()
        tokens = self._tokens(client, t)
        if tokens < 1.0:
            self._store(client, tokens, t)
            return (1.0 - tokens) / self.rate
        self._store(client, tokens - 1.0, t)
        return 0.0

    def give_back(self, client: str) -> None:
        """The offer a token was taken for opened no session."""
        if self.enabled:
            t = self.now()
            self._store(client, min(float(self.burst), self._tokens(client, t) + 1.0), t)

    def _store(self, client: str, tokens: float, t: float) -> None:
        self._buckets[client] = (tokens, t)
        self._buckets.move_to_end(client)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


# server_busy (engine/overload.py, "Admission"): a level holds at least its up_after_s (5 s) before it may climb;
# twice that
BUSY_RETRY_S = 10.0


def retry_after_s(wait_s: float) -> str:
    """The Retry-After header's value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))
