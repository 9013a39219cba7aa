"""DTLS cipher suites that let aiortc connect to peers whose certificate is RSA.

aiortc's DTLS context offers only ECDHE-ECDSA suites. A peer that presents an
RSA certificate (GStreamer's webrtcbin by default, so GStreamer WHIP and WHEP
clients; other stacks built on OpenSSL defaults) and takes the DTLS server role
then finds no suite it can use: the handshake fails with "no shared cipher"
and the call never carries media. `install()` adds the ECDHE-RSA counterparts
after aiortc's own suites, so an ECDSA peer still negotiates exactly what it
did; our own certificate stays ECDSA. Idempotent; `uninstall()` restores
aiortc's context (tests).
"""
from __future__ import annotations

from aiortc.rtcdtlstransport import RTCCertificate

_stock_context = RTCCertificate._create_ssl_context
ECDSA_SUITES = (b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:"
                b"ECDHE-ECDSA-AES256-SHA")
RSA_SUITES = b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"


def _context(self, srtp_profiles):
    ctx = _stock_context(self, srtp_profiles)
    ctx.set_cipher_list(ECDSA_SUITES + b":" + RSA_SUITES)
    return ctx


def install() -> None:
    RTCCertificate._create_ssl_context = _context


def uninstall() -> None:
    RTCCertificate._create_ssl_context = _stock_context
