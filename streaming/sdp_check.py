"""An offer's SDP, checked before a session is opened for it.

aiortc parses an SDP with asserts and bare indexing, and applies a remote
description step by step: an offer it cannot use may fail half-way with an
AttributeError or IndexError and leave a peer connection that then fails to
close. So `POST /offer` checks here first what aiortc will rely on, and a
malformed or hostile offer gets `400 bad_offer` with what is wrong before
anything is allocated for it.
"""
from __future__ import annotations

import re

from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS
from aiortc.rtcpeerconnection import find_common_codecs

MAX_MEDIA = 8  # m-lines in one offer (a browser sends 2 or 3: audio, video, maybe a data channel)
DIGEST_BYTES = {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*")


class BadOffer(ValueError):
    """The offer cannot start a session; the message says why (for a 400 bad_offer)."""


def check_offer(text: str, purpose: str = "session") -> None:
    """BadOffer unless `text` is an SDP offer the server can answer: it parses; 1..MAX_MEDIA m-lines of
    audio, video or one data channel, each with a unique mid, ICE credentials, well-formed DTLS
    fingerprints and a setup role; audio and video with rtcp-mux, a direction and a codec the
    server has; BUNDLE naming only those mids. What the media must be depends on `purpose`:
    "session" (the browser client: an audio m-line, and a video m-line the server can send to),
    "ingest" (WHIP: an audio m-line the client sends on) or "playback" (WHEP: audio or video the
    server can send to)."""
    try:
        desc = aiortc_sdp.SessionDescription.parse(text)
    except Exception as e:  # noqa: BLE001 - aiortc's parser raises anything from asserts to KeyError
        detail = str(e).splitlines()[0][:120] if str(e) else ""
        raise BadOffer(f"the SDP does not parse ({type(e).__name__}{': ' + detail if detail else ''})") from None
    if not desc.media:
        raise BadOffer("the offer has no media (m=) lines")
    if len(desc.media) > MAX_MEDIA:
        raise BadOffer(f"the offer has {len(desc.media)} m-lines; at most {MAX_MEDIA}")
    mids: list[str] = []
    receives_video = receives_audio = sends_audio = has_audio = False
    data_channels = 0
    for i, m in enumerate(desc.media, 1):
        where = f"m-line {i} ({str(m.kind)[:20]})"
        if m.kind not in ("audio", "video", "application"):
            raise BadOffer(f"{where}: media {str(m.kind)[:20]!r} is not supported (audio, video, application)")
        mid = m.rtp.muxId
        if not mid:
            raise BadOffer(f"{where}: no a=mid")
        if mid in mids:
            raise BadOffer(f"{where}: a=mid:{mid[:20]} is used twice")
        mids.append(mid)
        if not m.ice.usernameFragment or not m.ice.password:
            raise BadOffer(f"{where}: no ICE credentials (a=ice-ufrag, a=ice-pwd)")
        if m.dtls is None or not m.dtls.fingerprints:
            raise BadOffer(f"{where}: no DTLS fingerprint or setup role (a=fingerprint, a=setup)")
        for fp in m.dtls.fingerprints:
            size = DIGEST_BYTES.get(fp.algorithm.lower())
            if size is None:
                raise BadOffer(f"{where}: unsupported fingerprint algorithm {fp.algorithm[:20]!r} "
                               f"({', '.join(DIGEST_BYTES)})")
            if not _HEX_PAIRS.fullmatch(fp.value) or len(fp.value) != 3 * size - 1:
                raise BadOffer(f"{where}: malformed {fp.algorithm} fingerprint (expected {size} hex bytes "
                               "separated by ':')")
        if m.kind == "application":
            data_channels += 1
            if data_channels > 1:
                raise BadOffer(f"{where}: more than one data channel m-line")
            if m.profile not in ("DTLS/SCTP", "UDP/DTLS/SCTP"):
                raise BadOffer(f"{where}: profile {str(m.profile)[:30]!r} is not DTLS/SCTP")
            if m.profile == "DTLS/SCTP" and not (m.fmt and str(m.fmt[0]).isdigit()):
                raise BadOffer(f"{where}: DTLS/SCTP needs the SCTP port as its format")
            continue
        if not m.rtcp_mux:
            raise BadOffer(f"{where}: RTCP mux is required (a=rtcp-mux)")
        if m.direction not in aiortc_sdp.DIRECTIONS:
            raise BadOffer(f"{where}: no direction (a=sendrecv, sendonly, recvonly or inactive)")
        if not find_common_codecs(CODECS[m.kind], m.rtp.codecs):
            have = ", ".join(sorted({c.mimeType.split("/")[1] for c in CODECS[m.kind]} - {"rtx"}))
            raise BadOffer(f"{where}: no codec in common with the server ({have})")
        if m.kind == "video" and m.direction in ("recvonly", "sendrecv"):
            receives_video = True
        receives_audio = receives_audio or (m.kind == "audio" and m.direction in ("recvonly", "sendrecv"))
        sends_audio = sends_audio or (m.kind == "audio" and m.direction in ("sendonly", "sendrecv"))
        has_audio = has_audio or m.kind == "audio"
    if purpose == "ingest":
        if not sends_audio:
            raise BadOffer("the offer sends no voice: WHIP needs an audio m-line with a=sendonly or a=sendrecv")
    elif purpose == "playback":
        if not (receives_video or receives_audio):
            raise BadOffer("the offer receives nothing: WHEP needs a=recvonly audio or video m-lines")
    else:
        if not receives_video:
            raise BadOffer("the offer receives no video: it needs a video m-line with a=recvonly or a=sendrecv")
        if not has_audio:  # the session's voice track goes out on it (a=recvonly when the client sends no voice)
            raise BadOffer("the offer has no audio m-line (a=recvonly if the client sends no voice)")
    for group in desc.group:
        if group.semantic == "BUNDLE":
            for item in group.items:
                if item not in mids:
                    raise BadOffer(f"BUNDLE names {str(item)[:20]!r}, which no m-line has")
