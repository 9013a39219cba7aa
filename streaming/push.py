"""PCM push for TTS engines: `GET /push?session=ID` (websocket), s16le mono frames in, the avatar speaks them.

A TTS produces audio faster than real time. Pushed audio is resampled to the
engine rate into a bounded buffer (`push_buffer_s`) and fed to the session at
the pace of its outbound audio clock (`sources.feed_paced`), exactly as
microphone packets are fed. A frame that does not fit is refused whole with a
`buffer_full` error (nothing is half-played); `flush` drops what is pending
and interrupts the session's speech. docs/reference/protocol.md documents the messages.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any, Literal, Union

import numpy as np
from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .config import ServerConfig
from .control import TokenBucket
from .protocol import ErrorCode, ProtocolError, error_event, event
from .sources import PcmBuffer, StreamResampler, feed_paced

log = logging.getLogger(__name__)

MIN_RATE, MAX_RATE = 8_000, 192_000
MAX_FRAME_S = 1.0  # one binary frame carries at most this much audio
HARD_FRAME_BYTES = 4 * 2 * MAX_RATE  # beyond it aiohttp closes the socket with 1009


class _PushMsg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | int | None = None
    v: int = 1


class PushStart(_PushMsg):
    type: Literal["start"]
    sample_rate: int = Field(ge=MIN_RATE, le=MAX_RATE)
    format: Literal["s16le"] = "s16le"


class PushFlush(_PushMsg):
    type: Literal["flush", "interrupt", "clear"]


class PushStatus(_PushMsg):
    type: Literal["status"]


_adapter: TypeAdapter = TypeAdapter(Annotated[Union[PushStart, PushFlush, PushStatus], Field(discriminator="type")])
PUSH_TYPES = ("start", "flush", "interrupt", "clear", "status")


def parse_push_message(text: str) -> BaseModel:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(ErrorCode.bad_json, "message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.bad_json, "a message must be a JSON object")
    ref = data.get("id") if isinstance(data.get("id"), (str, int)) else None
    if data.get("type") not in PUSH_TYPES:
        raise ProtocolError(ErrorCode.unknown_type, f"unknown push message type {str(data.get('type'))[:40]!r}; "
                            "known: " + ", ".join(PUSH_TYPES), ref)
    try:
        return _adapter.validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or str(data.get("type"))
        raise ProtocolError(ErrorCode.bad_message, f"{where}: {first['msg']}", ref) from None


class PushFeed:
    """Buffered pushed audio of one session (a `PacedSource` for feed_paced); lives until drained after close."""

    def __init__(self, engine_rate: int, max_seconds: float) -> None:
        self.engine_rate = engine_rate
        self.buffer = PcmBuffer(int(max_seconds * engine_rate))
        self.rate: int | None = None  # the declared input rate, after `start`
        self._resampler: StreamResampler | None = None
        self._data = asyncio.Event()
        self.closed = False  # the pushing connection is gone: play what is left, then end
        self.on_drained = None  # callback when the buffer runs empty after audio
        self._had_audio = False
        self.counters = {"frames_in": 0, "frames_refused": 0, "samples_in": 0, "samples_fed": 0,
                         "samples_flushed": 0}

    # -- input (the connection) ---------------------------------------------
    def start(self, rate: int) -> None:
        if self._resampler is not None:
            self._settle()
        self.rate = rate
        self._resampler = StreamResampler(rate, self.engine_rate)

    def push(self, data: bytes) -> None:
        """One binary frame: s16le mono at the declared rate. ProtocolError when it cannot be taken."""
        if self.rate is None:
            raise ProtocolError(ErrorCode.no_start, 'send {"type": "start", "sample_rate": N} before audio')
        if len(data) % 2:
            raise ProtocolError(ErrorCode.bad_audio, f"odd byte count {len(data)}: s16le samples are 2 bytes")
        limit = int(MAX_FRAME_S * self.rate) * 2
        if len(data) > limit:
            raise ProtocolError(ErrorCode.too_large, f"frame of {len(data)} bytes is over {MAX_FRAME_S:g} s "
                                f"({limit} bytes at {self.rate} Hz); split it")
        pcm = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
        # Refuse before resampling, so a refused frame leaves the resampler untouched.
        need = int(np.ceil(len(pcm) * self.engine_rate / self.rate)) + 64
        if need > self.buffer.free:
            self.counters["frames_refused"] += 1
            raise ProtocolError(ErrorCode.buffer_full, f"push buffer full ({self.buffered_ms:.0f} ms pending, "
                                f"max {1000 * self.buffer.max_samples / self.engine_rate:.0f} ms); frame dropped, "
                                "send it again later")
        self.counters["frames_in"] += 1
        self.counters["samples_in"] += len(pcm)
        self._store(self._resampler.push(pcm))

    def flush(self) -> int:
        """Drop pending audio; returns how many engine samples were dropped."""
        dropped = self.buffer.clear()
        if self.rate is not None:
            self._resampler = StreamResampler(self.rate, self.engine_rate)  # its tail is dropped too
        self.counters["samples_flushed"] += dropped
        self._had_audio = False
        return dropped

    def close(self) -> None:
        if self._resampler is not None:
            self._settle()
        self.closed = True
        self._data.set()

    def _settle(self) -> None:
        """The resampler's tail (its filter delay) into the buffer, when it fits."""
        tail = self._resampler.push(np.zeros(0, np.float32), final=True)
        if len(tail) <= self.buffer.free:
            self._store(tail)

    def _store(self, pcm: np.ndarray) -> None:
        if len(pcm) and self.buffer.push(pcm):
            self._had_audio = True
            self._data.set()

    @property
    def buffered_ms(self) -> float:
        return 1000.0 * len(self.buffer) / self.engine_rate

    @property
    def active(self) -> bool:
        return not self.closed or len(self.buffer) > 0

    # -- output (feed_paced) --------------------------------------------------
    def take(self, n: int) -> np.ndarray | None:
        if not len(self.buffer):
            if self._had_audio:
                self._had_audio = False
                if self.on_drained is not None:
                    self.on_drained()
            return None if self.closed else np.zeros(0, np.float32)
        out = self.buffer.take(n)
        self.counters["samples_fed"] += len(out)
        return out

    async def wait(self) -> bool:
        while not len(self.buffer):
            if self.closed:
                return False
            self._data.clear()
            await self._data.wait()
        return True

    def status(self) -> dict[str, Any]:
        return {"sample_rate": self.rate, "buffered_ms": round(self.buffered_ms, 1),
                "max_buffer_ms": round(1000.0 * self.buffer.max_samples / self.engine_rate), **self.counters}


class PushConnection:
    """One pushing websocket: validated messages in, one answer per text message, errors for refused frames."""

    def __init__(self, ws: web.WebSocketResponse, runner, config: ServerConfig, feed: PushFeed) -> None:
        self.ws, self.runner, self.config, self.feed = ws, runner, config, feed
        self.bucket = TokenBucket(config.push_frames_per_s, 2 * int(config.push_frames_per_s),
                                  asyncio.get_running_loop().time())
        feed.on_drained = lambda: self._send(event("drained", **feed.status()))
        self._out: asyncio.Queue[dict] = asyncio.Queue(maxsize=64)
        self.dropped_events = 0

    def _send(self, msg: dict) -> None:
        """A refused frame's error or `drained`: dropped (counted) when 64 are waiting for the client."""
        try:
            self._out.put_nowait(msg)
        except asyncio.QueueFull:  # a client that does not read its answers loses them, not the stream
            self.dropped_events += 1

    async def _answer(self, msg: dict) -> None:
        """The answer to a text message is never dropped: while 64 events wait for the writer, reading
        the client's next message waits too (a flood of refused frames must not swallow it)."""
        await self._out.put(msg)

    async def _writer(self) -> None:
        while True:
            msg = await self._out.get()
            await self.ws.send_str(json.dumps(msg))

    async def run(self, start_rate: int | None = None) -> None:
        writer = asyncio.get_running_loop().create_task(self._writer())
        self.runner.spawn(feed_paced(self.runner.scheduler, self.feed, self.runner.on_audio_in), "push")
        try:
            if start_rate is not None:
                await self._answer(self._on_text(json.dumps({"type": "start", "sample_rate": start_rate})))
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    self._on_binary(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await self._answer(self._on_text(msg.data))
                elif msg.type == WSMsgType.ERROR:
                    break
                if self.runner.closed.is_set():
                    break
            while not self._out.empty() and not self.ws.closed:
                await self.ws.send_str(json.dumps(self._out.get_nowait()))
        finally:
            self.feed.close()  # what is buffered still plays; then the feeder ends
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    def _on_binary(self, data: bytes) -> None:
        try:
            if not self.bucket.take(asyncio.get_running_loop().time()):
                raise ProtocolError(ErrorCode.rate_limited, f"over {self.config.push_frames_per_s:g} frames/s; "
                                    "frame dropped (send fewer, larger frames)")
            self.feed.push(data)
        except ProtocolError as e:
            self._send(error_event(e.code, e.message))

    def _on_text(self, text: str) -> dict:
        """The answer to one text message."""
        ref = None
        try:
            if len(text) > 4096:
                raise ProtocolError(ErrorCode.too_large, "text messages are at most 4096 bytes")
            msg = parse_push_message(text)
            ref = msg.id
            if msg.type == "start":
                self.feed.start(msg.sample_rate)
                out = event("started", **self.feed.status(), engine_rate=self.feed.engine_rate,
                            max_frame_bytes=int(MAX_FRAME_S * msg.sample_rate) * 2)
            elif msg.type == "status":
                out = event("status", **self.feed.status())
            else:  # flush / interrupt / clear: pending pushed audio and the speech in the pipeline go
                dropped = self.feed.flush()
                r = self.runner
                r.scheduler.clear_input()
                r.spawn(r.run_in_session(r.session.forget_speech), "push-flush")
                out = event("flushed", dropped_ms=round(1000.0 * dropped / self.feed.engine_rate, 1),
                            **self.feed.status())
        except ProtocolError as e:
            out = error_event(e.code, e.message, e.ref if e.ref is not None else ref)
        if ref is not None and out["type"] != "error":
            out["id"] = ref
        return out
