"""Timing hooks on aiortc's media path (codec calls, packet arrival, send) for a session's profiler.

aiortc has no public hooks, so these wrap a few of its per-object methods:
`RTCRtpSender._next_encoded_frame` (recv -> encode -> returns; the sender
sends the packets and calls it again, so its next call marks the frame's
departure), the sender's encoder object (its `encode` is the codec call, run
in an executor thread), `RTCRtpReceiver._handle_rtp_packet` (packet arrival)
and the receivers' decoders (stamped into `frame.opaque`). Each hook checks
that the attribute exists and otherwise leaves aiortc alone: the session then
reports fewer stages, never fails.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Callable

log = logging.getLogger(__name__)

_SENDER_ENCODER = "_RTCRtpSender__encoder"  # aiortc's private slot for the sender's codec


class TimedEncoder:
    """An aiortc encoder whose `encode` (run in an executor thread) reports (start, end, frame)."""

    def __init__(self, inner: Any, on_encode: Callable[[float, float, Any], None], now: Callable[[], float]) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_on_encode", on_encode)
        object.__setattr__(self, "_now", now)

    def encode(self, frame, force_keyframe: bool = False):
        t0 = self._now()
        try:
            return self._inner.encode(frame, force_keyframe)
        finally:
            self._on_encode(t0, self._now(), frame)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value) -> None:  # e.g. target_bitrate from REMB feedback
        setattr(self._inner, name, value)


def instrument_sender(sender: Any, on_next: Callable[[], None], on_encoded: Callable[[Any], None],
                      on_encode: Callable[[float, float, Any], None], now: Callable[[], float]) -> bool:
    """Call on_next() when the sender asks for its next frame (the previous one's packets are sent),
    on_encoded(encoded) when a frame is encoded, and time the codec call itself. False if not possible."""
    original = getattr(sender, "_next_encoded_frame", None)
    if original is None or getattr(original, "_emolive_timed", False):
        return False

    async def timed(codec):
        on_next()
        encoded = await original(codec)
        inner = getattr(sender, _SENDER_ENCODER, None)
        if inner is not None and not isinstance(inner, TimedEncoder):
            # The encoder exists after the first frame: from the next one, time its calls.
            setattr(sender, _SENDER_ENCODER, TimedEncoder(inner, on_encode, now))
        if encoded is not None:
            on_encoded(encoded)
        return encoded

    timed._emolive_timed = True  # type: ignore[attr-defined]
    sender._next_encoded_frame = timed
    return True


class PacketArrivals:
    """Arrival times of a receiver's RTP packets, keyed by the pts its decoded frames will carry."""

    def __init__(self, capacity: int = 256) -> None:
        self._origin: int | None = None
        self._times: dict[int, float] = {}
        self._order: deque[int] = deque()
        self._capacity = capacity

    def add(self, rtp_timestamp: int, t: float) -> None:
        if self._origin is None:
            self._origin = rtp_timestamp  # aiortc's TimestampMapper starts decoded pts at the first one
        pts = (rtp_timestamp - self._origin) % (1 << 32)
        if pts not in self._times:
            self._times[pts] = t
            self._order.append(pts)
            if len(self._order) > self._capacity:
                self._times.pop(self._order.popleft(), None)

    def pop(self, pts: int | None) -> float | None:
        return None if pts is None else self._times.pop(pts, None)


def instrument_receiver(receiver: Any, arrivals: PacketArrivals, now: Callable[[], float]) -> bool:
    original = getattr(receiver, "_handle_rtp_packet", None)
    if original is None or getattr(original, "_emolive_timed", False):
        return False

    async def timed(packet, arrival_time_ms: int):
        arrivals.add(packet.timestamp, now())
        return await original(packet, arrival_time_ms=arrival_time_ms)

    timed._emolive_timed = True  # type: ignore[attr-defined]
    receiver._handle_rtp_packet = timed
    return True


class _TimedDecoder:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def decode(self, encoded_frame):
        t0 = time.monotonic()
        frames = self._inner.decode(encoded_frame)
        t1 = time.monotonic()
        for f in frames:
            f.opaque = ("emolive-decode", t0, t1)
        return frames

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def decode_times(frame: Any) -> tuple[float, float] | None:
    """(start, end) of the decode that produced `frame`, on time.monotonic, if it was timed."""
    tag = getattr(frame, "opaque", None)
    if isinstance(tag, tuple) and len(tag) == 3 and tag[0] == "emolive-decode":
        return tag[1], tag[2]
    return None


def install_decode_timing() -> bool:
    """Stamp decode times into every frame aiortc's receivers decode (process-wide, idempotent)."""
    try:
        import aiortc.rtcrtpreceiver as receiver_module
    except ImportError:
        return False
    original = receiver_module.get_decoder
    if getattr(original, "_emolive_timed", False):
        return True

    def get_decoder(codec):
        return _TimedDecoder(original(codec))

    get_decoder._emolive_timed = True  # type: ignore[attr-defined]
    receiver_module.get_decoder = get_decoder
    return True
