"""The fuzz campaign's control websocket client and its tally: one connection paced under the server's rate
limit that sends a message, waits for its one answer (or the documented close) and counts what came back
(benchmarks/bench_fuzz.py).
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # imported on its own, not through bench_fuzz.py
    sys.path.insert(0, str(ROOT))

from profiler.environment import BenchError  # noqa: E402

ANSWER_S = 30.0  # a message, offer or push answer later than this is a hang (the machine may be loaded)
WS_PACE = 18.0  # messages/s per connection outside floods (the server allows 20/s, burst 40)


class Tally:
    """What one category sent and got back."""

    def __init__(self, t0: float | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        self.sent = 0
        self.kinds: Counter = Counter()
        self.codes: Counter = Counter()
        self.unexpected: list[str] = []
        self.unexpected_n = 0

    def bad(self, kind: str, what: str) -> None:
        self.unexpected_n += 1
        if len(self.unexpected) < 40:
            self.unexpected.append(f"{kind} at {time.monotonic() - self.t0:.1f} s: {what}"[:300])

    def report(self) -> dict:
        return {"sent": self.sent, "kinds": dict(self.kinds), "codes": dict(sorted(self.codes.items())),
                "unexpected": self.unexpected_n, "unexpected_examples": self.unexpected}


def _short(payload) -> str:
    return repr(payload[:80] if isinstance(payload, (str, bytes)) else payload)


class Pacer:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.t = rate, burst, burst, time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)

    def empty(self) -> None:
        self.tokens = -self.burst  # after a flood the server's bucket is empty too: wait for it to refill


class ControlClient:
    """One control websocket connection; reconnects after a close the campaign caused."""

    def __init__(self, http, url: str, sid: str, tally: Tally) -> None:
        self.http, self.url, self.sid, self.tally = http, url, sid, tally
        self.ws = None
        self.pacer = Pacer(WS_PACE, WS_PACE * 1.5)
        self.events: asyncio.Queue = asyncio.Queue()
        self.reader: asyncio.Task | None = None
        self.closed_with: int | None = None
        self.gone: str | None = None  # the session went away: this connection stops

    async def open(self) -> None:
        import aiohttp

        self.ws = await self.http.ws_connect(f"{self.url}/ws?session={self.sid}", max_msg_size=0,
                                             timeout=aiohttp.ClientWSTimeout(ws_close=5))
        self.events = asyncio.Queue()
        self.closed_with = None
        self.reader = asyncio.get_running_loop().create_task(self._read())
        hello = await self.next(ANSWER_S, ("hello",))
        if hello is None or hello.get("type") != "hello":
            raise BenchError(f"no hello on the control websocket of {self.sid[:6]}: {hello}")

    async def _read(self) -> None:
        import aiohttp

        while True:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.events.put_nowait(json.loads(msg.data))
            else:
                self.closed_with = self.ws.close_code if self.ws.close_code is not None else -1
                self.events.put_nowait(None)
                return

    async def next(self, timeout: float, types=("state", "error")):
        """The next event of these types; None when the socket closed; "timeout" past the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = await asyncio.wait_for(self.events.get(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                return "timeout"
            if ev is None or ev.get("type") in types:
                return ev

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)

    async def send(self, payload) -> None:
        import aiohttp

        if isinstance(payload, tuple):  # a text frame with raw (invalid UTF-8) bytes
            await self.ws.send_frame(payload[1], aiohttp.WSMsgType.TEXT)
        elif isinstance(payload, bytes):
            await self.ws.send_bytes(payload)
        else:
            await self.ws.send_str(payload)

    async def one(self, kind: str, payload, expected: str, timeout: float = ANSWER_S) -> None:
        """Send one message and check its answer."""
        tally = self.tally
        await self.pacer.take()
        tally.sent += 1
        tally.kinds[kind] += 1
        try:
            await self.send(payload)
        except (ConnectionError, RuntimeError) as e:
            if expected == "close":  # the server closed (1009) while the client was still writing the frame
                tally.codes["close (while sending)"] += 1
            else:
                tally.bad(kind, f"send failed: {e} {_short(payload)}")
            await self.reopen()
            return
        ev = await self.next(timeout)
        if expected == "either":
            tally.codes[f"close {self.closed_with}" if ev is None else str(ev) if ev == "timeout"
                        else ev.get("code", ev["type"])] += 1
            if ev == "timeout":
                tally.bad(kind, f"no answer within {timeout:.0f} s to {_short(payload)}")
            await self.reopen()
        elif ev == "timeout":
            tally.codes["(no answer)"] += 1
            tally.bad(kind, f"no answer within {timeout:.0f} s to {_short(payload)}")
            await self.reopen()  # a late answer must not be taken for the next message's
        elif ev is None:
            tally.codes[f"close {self.closed_with}"] += 1
            if expected != "close":
                tally.bad(kind, f"connection closed ({self.closed_with}) where an answer was due: {_short(payload)}")
            await self.reopen()
        else:
            code = ev.get("code", ev["type"])
            tally.codes[code] += 1
            if expected == "close":
                tally.bad(kind, f"answered {code} where a close was expected: {_short(payload)}")
            if code == "internal":
                tally.bad(kind, f"internal error {ev.get('message')!r} for {_short(payload)}")

    async def flood(self, msgs: list) -> None:
        tally = self.tally
        tally.sent += len(msgs)
        tally.kinds["flood"] += len(msgs)
        for m in msgs:
            await self.ws.send_str(m)
        got = 0
        while got < len(msgs):
            ev = await self.next(ANSWER_S)
            if ev == "timeout" or ev is None:
                tally.codes["(no answer)" if ev == "timeout" else f"close {self.closed_with}"] += len(msgs) - got
                tally.bad("flood", f"{got} of {len(msgs)} flood messages answered ({ev or 'closed'})")
                await self.reopen()
                return
            got += 1
            code = ev.get("code", ev["type"])
            tally.codes[code] += 1
            if code == "internal":
                tally.bad("flood", f"internal error {ev.get('message')!r}")
        self.pacer.empty()

    async def reopen(self) -> None:
        import aiohttp

        await self.close()
        try:
            await self.open()
        except (aiohttp.ClientError, BenchError) as e:
            self.gone = f"cannot reconnect: {e}"
            self.tally.bad("session", f"{self.sid[:6]}: {self.gone}")
