"""Bad input found by benchmarks/bench_fuzz.py, each kept fixed: a clear error (code + message), nothing lost,
no session held, the media going on."""
import asyncio
import json

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from streaming.sdp_check import BadOffer, check_offer
from test_server_loopback import Server, connect, parts  # noqa: F401  (shared fixture)

pytestmark = pytest.mark.timeout(240)


async def _offer_sdp(audio="recvonly", video="recvonly", data=False) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if audio:
        pc.addTransceiver("audio", direction=audio)
    if video:
        pc.addTransceiver("video", direction=video)
    if data:
        pc.createDataChannel("chat")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def _hostile(sdp: str) -> dict[str, str]:
    """Offers that made aiortc fail half-way (500 engine_error, or a 500 page when the half-made peer
    connection then failed to close, leaving the session's slot and worker thread behind)."""
    lines = sdp.split("\r\n")
    first_m = next(i for i, x in enumerate(lines) if x.startswith("m="))
    return {
        "truncated in the first m-line": "\r\n".join(lines[:first_m + 3]) + "\r\n",  # no setup: dtls None
        "m=text": sdp.replace("m=audio", "m=text"),
        "m=application with RTP": sdp.replace("m=video", "m=application"),
        "no codec in common": sdp.replace("VP8", "AV1").replace("H264", "H265"),
        "bad fingerprint": sdp.replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 ZZ:", 1),
        "unknown fingerprint algorithm": sdp.replace("sha-256", "sha-999"),
        "BUNDLE naming a missing mid": sdp.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 7 0 1"),
        "mangled ssrc": sdp.replace("a=ssrc:", "a=ssrc:x", 1),
        "many m-lines": sdp + "".join(f"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:x{i}\r\n" for i in range(40)),
        "no media": "\r\n".join(lines[:first_m]) + "\r\n",
    }


def test_check_offer_refuses_what_aiortc_cannot_use_and_keeps_real_offers():
    async def offers():
        return (await _offer_sdp("sendrecv"), await _offer_sdp("recvonly"), await _offer_sdp(data=True),
                await _offer_sdp(audio=None), await _offer_sdp(video="sendonly"))

    sendrecv, recvonly, data, video_only, no_video_in = asyncio.run(offers())
    for sdp in (sendrecv, recvonly, data):
        check_offer(sdp)
    for name, sdp in {**_hostile(sendrecv), "no audio m-line": video_only, "video not received": no_video_in,
                      "not SDP": "hello"}.items():
        with pytest.raises(BadOffer) as e:
            check_offer(sdp)
        assert str(e.value), name


def test_hostile_offers_get_json_errors_and_hold_no_session(parts):  # noqa: F811
    async def scenario():
        async with Server(parts) as server:
            sdp = await _offer_sdp("sendrecv")
            answers = {}

            async def post(name, data, headers=None):
                async with server.http.post(server.url + "/offer", data=data,
                                            headers=headers or {"Content-Type": "application/json"}) as r:
                    answers[name] = (r.status, await r.json(content_type=None))

            for name, bad in _hostile(sdp).items():
                await post(name, json.dumps({"sdp": bad, "type": "offer"}))
            await post("JSON nested 5000 deep", b"[" * 5000 + b"]" * 5000)

            async def chunks():  # no Content-Length: aiohttp's own 413 page, not the protocol's JSON, before
                for _ in range(4):
                    yield b"x" * 65_536
            await post("200 KB without a Content-Length", chunks())
            left = dict(server.sessions)
            pc, tracks, ok, _ = await connect(server)  # a good offer still opens a session
            await pc.close()
            return answers, left, ok

    answers, left, ok = asyncio.run(scenario())
    for name, (status, body) in answers.items():
        want = (413, "too_large") if "Content-Length" in name else (400, "bad_offer")
        assert (status, body.get("error")) == want and body.get("reason"), (name, status, body)
    assert left == {}  # no session (worker thread, renderer, slot) left behind by a refused offer
    assert ok["status"] == 200
