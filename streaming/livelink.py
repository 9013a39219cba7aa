"""Sends face states to Unreal (a MetaHuman) as Live Link Face UDP datagrams.

The packet layout is `engine.io.livelink`; this is the socket. One datagram per
frame, sent without blocking: a datagram the kernel cannot take at once, or that
fails to go out (no route, a receiver that went away), is dropped and counted (the
next frame replaces it). `emolive serve --livelink HOST:PORT` sends every session's
frames this way (streaming/livelink_out.py).
"""
from __future__ import annotations

import ipaddress
import socket

from engine.io.livelink import DEFAULT_PORT, decode_livelink, encode_livelink
from engine.types import FaceState

__all__ = ["LiveLinkSender", "decode_livelink", "encode_livelink", "DEFAULT_PORT"]


class LiveLinkSender:
    """A UDP socket sending Live Link Face packets to `host`:`port`.

    `host` is an IP address or a resolvable name (resolved once, here); a bad host
    or port raises ValueError. Use as a context manager or call `close()`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, subject: str = "emolive",
                 device_id: str = "emolive", fps: int = 25) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"Live Link port must be an integer in 1..65535, got {port!r}")
        if not isinstance(host, str) or not host.strip():
            raise ValueError(f"Live Link host must be a non-empty host name or IP address, got {host!r}")
        if not isinstance(fps, int) or fps < 1:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        try:
            family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except (socket.gaierror, UnicodeError) as e:
            raise ValueError(f"Live Link host {host!r} does not resolve: {e}") from None
        if ipaddress.ip_address(addr[0].split("%")[0]).is_unspecified:
            raise ValueError(f"Live Link host {host!r} is the unspecified address; give the receiver's address")
        self.address = addr
        self.subject, self.device_id, self.fps = subject, device_id, fps
        self.sent = 0
        self.dropped = 0
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def send(self, state: FaceState, frame_number: int) -> bool:
        """Send one frame; False when the datagram was dropped (socket buffer full, receiver gone)."""
        if self._sock is None:
            raise ValueError("LiveLinkSender is closed")
        packet = encode_livelink(state, subject=self.subject, device_id=self.device_id,
                                 frame_number=frame_number, fps=self.fps)
        try:
            self._sock.sendto(packet, self.address)
        except OSError:  # full buffer, ICMP unreachable from a prior send, no route: dropped, never raised
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @property
    def closed(self) -> bool:
        return self._sock is None

    def __enter__(self) -> "LiveLinkSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
