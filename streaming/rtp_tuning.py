"""A shallow inbound audio buffer for aiortc: each Opus packet goes to the decoder as soon as it is in order.

aiortc's RTCRtpReceiver keeps inbound audio in `JitterBuffer(capacity=16, prefetch=4)`: a packet is decoded
only once four later packets are in, so the server sees the voice 80 ms after it arrived (the bench's
`rx_buffer` stage); after a lost packet it waits until 16 packets pile up and then stays that deep (one
packet out per packet in). The server does not need that buffer: its scheduler places input on the audio
timeline with its own jitter headroom (`jitter_s`) and bridges late or missing input with silence.

AudioJitterBuffer releases a packet in the same call that brings it in when every earlier packet is in.
A missing packet is waited for only until `reorder_packets` later ones are in (a reordered packet arrives
in that time), then given up: the decoder goes on with the next one. Each packet out is one packet in, so
a wait leaves at most `reorder_packets - 1` packets queued behind it (20 ms with the default of 2).

`install()` wraps RTCRtpReceiver.__init__ (aiortc has no option for this; the buffer is a private
attribute) so that audio receivers made afterwards use it; video keeps aiortc's buffer. Idempotent;
`uninstall()` restores aiortc's (the bench uses it to measure both).
"""
from __future__ import annotations

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver

SLOT = "_RTCRtpReceiver__jitter_buffer"  # aiortc's private attribute (name-mangled)
MAX_MISORDER = 100  # packets this far behind mean the sender restarted its numbering (as aiortc)


def _delta(a: int, b: int) -> int:
    """a - b in 16-bit sequence-number arithmetic, in [-32768, 32767]."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


class AudioJitterBuffer:
    """aiortc's JitterBuffer interface (`add(packet) -> (pli_flag, frame or None)`), for one-packet audio frames."""

    def __init__(self, capacity: int = 16, reorder_packets: int = 2) -> None:
        if capacity < 2 or not 1 <= reorder_packets < capacity:
            raise ValueError("need capacity >= 2 and 1 <= reorder_packets < capacity")
        self._capacity = capacity
        self._reorder = reorder_packets
        self._next: int | None = None  # the sequence number to release next
        self._packets: dict = {}  # sequence number -> packet, waiting (bounded by capacity)
        self.stats = {"released": 0, "lost": 0, "late": 0, "resets": 0}

    @property
    def capacity(self) -> int:
        return self._capacity

    def add(self, packet) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._next is None:
            self._next = seq
        d = _delta(seq, self._next)
        if d < 0:
            if -d < MAX_MISORDER:
                self.stats["late"] += 1  # given up already, or a duplicate
                return False, None
            self._reset(seq)
        elif d >= self._capacity:
            self._reset(seq)  # a jump longer than the buffer: start again here
        self._packets[seq] = packet
        return False, self._release()

    def _reset(self, seq: int) -> None:
        self._packets.clear()
        self._next = seq
        self.stats["resets"] += 1

    def _release(self) -> JitterFrame | None:
        packet = self._packets.pop(self._next, None)
        if packet is None:
            if not self._packets:
                return None
            ahead = {s: _delta(s, self._next) for s in self._packets}
            if max(ahead.values()) < self._reorder:
                return None  # the missing packet may still come
            oldest = min(ahead, key=ahead.get)
            self.stats["lost"] += ahead[oldest]
            self._next = oldest
            packet = self._packets.pop(oldest)
        self._next = (self._next + 1) & 0xFFFF
        self.stats["released"] += 1
        return JitterFrame(data=packet._data, timestamp=packet.timestamp)


_stock_init = RTCRtpReceiver.__init__


def install(reorder_packets: int = 2) -> None:
    """Audio receivers created from now on use AudioJitterBuffer (idempotent)."""

    def __init__(self, kind, transport) -> None:
        _stock_init(self, kind, transport)
        if kind == "audio" and hasattr(self, SLOT):  # an aiortc without the slot is left alone
            setattr(self, SLOT, AudioJitterBuffer(reorder_packets=reorder_packets))

    __init__._emolive_shallow = True  # type: ignore[attr-defined]
    RTCRtpReceiver.__init__ = __init__


def uninstall() -> None:
    RTCRtpReceiver.__init__ = _stock_init


def installed() -> bool:
    return getattr(RTCRtpReceiver.__init__, "_emolive_shallow", False)
