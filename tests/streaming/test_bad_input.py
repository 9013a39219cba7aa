"""Bad input found by benchmarks/bench_fuzz.py, each kept fixed: a clear error (code + message), nothing lost,
no session held, the media going on."""
import asyncio
import json
import threading

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from engine.emotion.prompt import DESCRIPTIONS
from streaming.config import ServerConfig
from streaming.control import OUTBOX_LIMIT, ControlConnection
from streaming.parts import EngineParts, default_emotion_factory
from streaming.sdp_check import BadOffer, check_offer
from streaming.server import create_app, prepare_default_avatar
from server_harness import Server, connect, more_frames_sent

pytestmark = pytest.mark.timeout(240)
DESCRIPTION_WORDS = {d for descs in DESCRIPTIONS.values() for d in descs}


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


def test_refusals_unread_name_the_request(parts, monkeypatch):  # noqa: F811
    """A message refused before it is read (over the large-message rate, or too large) still answers with its
    `id`, so a client waiting on that id (the page's photo upload) learns what became of it."""
    import streaming.control

    # a burst of 2 large messages and no token back during the test, however slowly a loaded machine runs it
    monkeypatch.setattr(streaming.control, "LARGE_RATE_PER_S", 1e-6)
    big = "A" * 40_000  # over ws_max_message_bytes: a large message

    async def scenario():
        async with Server(parts) as server:
            pc, tracks, answer, _ = await connect(server)
            sid = answer["session_id"]
            async with server.http.ws_connect(f"{server.url}/ws?session={sid}") as ws:
                for i in range(4):
                    await ws.send_str(json.dumps({"type": "reference_image", "id": f"photo-{i}", "image": big}))
                await ws.send_str(json.dumps({"type": "chat", "id": 7, "text": "A" * 20_000}))
                answers, errors = {}, 0

                async def collect():  # every refusal, named or not (stats events keep coming meanwhile)
                    nonlocal errors
                    while errors < 5:
                        msg = json.loads((await ws.receive()).data)
                        if msg["type"] == "error":
                            errors += 1
                            answers[msg.get("id")] = msg["code"]
                await asyncio.wait_for(collect(), 60)
            await pc.close()
            return answers

    answers = asyncio.run(scenario())
    assert set(answers) == {"photo-0", "photo-1", "photo-2", "photo-3", 7}, answers
    assert answers[7] == "too_large" and answers["photo-2"] == answers["photo-3"] == "rate_limited", answers
    assert answers["photo-0"] == answers["photo-1"] == "bad_image", answers  # read: zeros are not an image


def test_a_flood_of_control_messages_gets_every_answer(parts):  # noqa: F811
    """Over OUTBOX_LIMIT messages at once: every one is answered (reading waits while answers queue; the
    outbox would otherwise drop the oldest)."""
    async def scenario():
        async with Server(parts) as server:
            pc, tracks, answer, _ = await connect(server)
            sid = answer["session_id"]
            sent = server.sessions[sid].counters
            async with server.http.ws_connect(f"{server.url}/ws?session={sid}") as ws:
                n = 3 * OUTBOX_LIMIT
                for i in range(n):
                    await ws.send_str(json.dumps({"type": "get_state", "id": i}) if i % 2 else "not json")
                codes = []
                while len(codes) < n:
                    msg = json.loads((await ws.receive(timeout=60)).data)
                    if msg["type"] in ("state", "error"):
                        codes.append(msg.get("code", msg["type"]))
            frames = await more_frames_sent(sent)
            await pc.close()
            return codes, frames

    codes, frames = asyncio.run(scenario())
    assert len(codes) == 3 * OUTBOX_LIMIT and set(codes) <= {"state", "bad_json", "rate_limited"}, set(codes)
    assert codes.count("rate_limited") >= 3 * OUTBOX_LIMIT - 100 and frames > 0


def test_push_text_answers_survive_a_flood_of_refused_frames(parts):  # noqa: F811
    """A burst of frames over the rate limit fills the answer queue with refusals; the answers to the text
    messages behind them (flush, status) still come (only refusals beyond 64 are dropped)."""
    async def scenario():
        async with Server(parts) as server:
            pc, tracks, answer, _ = await connect(server)
            sid = answer["session_id"]
            async with server.http.ws_connect(f"{server.url}/push?session={sid}&sample_rate=16000") as ws:
                for _ in range(1000):
                    await ws.send_bytes(b"\0\0" * 160)
                await ws.send_str(json.dumps({"type": "flush", "id": "f"}))
                await ws.send_str(json.dumps({"type": "status", "id": "s"}))
                got = []
                while not any(m.get("id") == "s" for m in got):
                    got.append(json.loads((await ws.receive(timeout=60)).data))
            await pc.close()
            return got

    got = asyncio.run(scenario())
    kinds = [m["type"] for m in got]
    assert kinds[0] == "started" and "flushed" in kinds and kinds[-1] == "status"
    assert any(m.get("code") == "rate_limited" for m in got)


def test_reading_a_prompt_does_not_hold_the_session_worker(parts):  # noqa: F811
    """The first prompt that is not a lexicon word loads the sentence encoder (5-9 s on a loaded machine):
    it ran on the session's worker, which also makes the face states, so the face and every other command
    of the session waited for it."""
    started, release = threading.Event(), threading.Event()

    def slow_reader(text):
        started.set()
        release.wait(60)
        from engine.emotion.prompt import parse_prompt

        return parse_prompt("happy")

    def emotion_factory(*args, **kwargs):
        emo = default_emotion_factory(*args, **kwargs)
        emo._prompt = slow_reader
        return emo

    slow = EngineParts(parts.model_factory, emotion_factory, parts.renderer_factory, parts.model_latency_s)

    async def scenario():
        async with Server(slow) as server:
            pc, tracks, answer, _ = await connect(server)
            sid = answer["session_id"]
            sent = server.sessions[sid].counters
            async with server.http.ws_connect(f"{server.url}/ws?session={sid}") as ws, \
                    server.http.ws_connect(f"{server.url}/ws?session={sid}") as other:
                await ws.send_str(json.dumps({"type": "prompt", "text": "a mood words cannot name", "id": 1}))
                await asyncio.get_running_loop().run_in_executor(None, started.wait, 60)
                await other.send_str(json.dumps({"type": "get_state", "id": 2}))  # runs on the session worker
                while (state := json.loads((await other.receive(timeout=60)).data))["type"] != "state":
                    pass
                frames = await more_frames_sent(sent, 5)  # face states are made while the prompt is read
                release.set()
                while (done := json.loads((await ws.receive(timeout=60)).data))["type"] not in ("state", "error"):
                    pass
            await pc.close()
            return state, frames, done

    try:
        state, frames, done = asyncio.run(scenario())
    finally:
        release.set()
    assert state["id"] == 2 and frames > 0
    assert done["type"] == "state" and done["id"] == 1  # and the prompt was applied


def test_a_command_racing_the_session_close_gets_no_session():
    class ClosingRunner:
        id = "s" * 24
        closing = True
        listeners, face_listeners = set(), set()

        async def run_in_session(self, fn, *args):
            raise RuntimeError("cannot schedule new futures after shutdown")  # its worker is shut down

    async def scenario():
        conn = ControlConnection(None, ClosingRunner(), ServerConfig())
        await conn._on_text(json.dumps({"type": "get_state", "id": 9}))
        return list(conn.outbox)

    (event,) = asyncio.run(scenario())
    assert event["type"] == "error" and event["code"] == "no_session", event


def test_the_prompt_reader_is_loaded_before_serving(parts):  # noqa: F811
    """Loaded by the first prompt mid-stream, the sentence encoder took 5-40 s of a loaded machine's CPU from
    the serving process: a witness session's ICE consent failed during the fuzz campaign."""
    read = []

    def emotion_factory(*args, **kwargs):
        emo = default_emotion_factory(*args, **kwargs)
        emo._prompt = read.append
        return emo

    counting = EngineParts(parts.model_factory, emotion_factory, parts.renderer_factory, parts.model_latency_s)
    prepare_default_avatar(create_app(ServerConfig(), counting))
    assert len(read) == 1 and read[0] not in DESCRIPTION_WORDS  # a phrase the lexicon does not have


def test_image_base64_is_read_as_clients_write_it():
    """Plain, wrapped in lines as `base64` prints it, or a data URL: the same bytes; anything else bad_image."""
    import base64

    from streaming.control import decode_image_b64
    from streaming.protocol import ProtocolError

    data = bytes(range(256)) * 4
    plain = base64.b64encode(data).decode()
    wrapped = "\n".join(plain[i:i + 76] for i in range(0, len(plain), 76)) + "\n"
    for text in (plain, wrapped, "data:image/png;base64," + plain):
        assert decode_image_b64(text, 2048) == data
    for bad, code in (("%%% not base64 %%%", "bad_image"), ("data:image/png," + plain, "bad_image"),
                      ("data:image/png;base64", "bad_image"), (plain, "too_large")):
        with pytest.raises(ProtocolError) as e:
            decode_image_b64(bad, 2048 if code != "too_large" else 1000)
        assert e.value.code == code, bad
