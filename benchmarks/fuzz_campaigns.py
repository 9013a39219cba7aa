"""The fuzz campaign's four categories run against the server: control websocket messages, /offer bodies,
/push streams and reference images sent, each answer checked and counted in the category's Tally
(benchmarks/bench_fuzz.py).
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # imported on its own, not through bench_fuzz.py
    sys.path.insert(0, str(ROOT))

from streaming.config import ServerConfig  # noqa: E402
from streaming.control import HARD_SIZE_FACTOR, image_message_limit  # noqa: E402
from fuzz_cases import CHUNKED  # noqa: E402
from fuzz_clients import ANSWER_S, ControlClient, Pacer, Tally  # noqa: E402

IMAGE_ANSWER_S = 60.0  # reading a face is ~300 ms of CPU; several at once on a loaded machine take longer
CONNECTIONS_PER_TARGET = 5
WITNESS_CONNECTIONS = 2
_DEFAULTS = ServerConfig()
WS_HARD_BYTES = max(_DEFAULTS.ws_max_message_bytes * HARD_SIZE_FACTOR, image_message_limit(_DEFAULTS) + 1024)


async def _chunks(data: bytes, size: int = 65_536):
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def ws_campaign(http, url: str, sessions: list[str], witness: str, work: list, tally: Tally) -> None:
    queues = {sid: [] for sid in sessions + [witness]}
    for i, w in enumerate(work):  # about a fifth of the traffic goes to the witness's own session
        sid = witness if i % 5 == 4 else sessions[i % len(sessions)]
        queues[sid].append(w)
    clients = []
    for sid, items in queues.items():
        k = WITNESS_CONNECTIONS if sid == witness else CONNECTIONS_PER_TARGET
        for j in range(k):
            clients.append((ControlClient(http, url, sid, tally), items[j::k]))

    async def drive(client: ControlClient, items: list) -> None:
        await client.open()
        try:
            for w in items:
                if client.gone:
                    break
                if w[0] == "flood":
                    await client.flood(w[1])
                else:
                    await client.one(*w)
        finally:
            await client.close()

    await asyncio.gather(*(drive(c, items) for c, items in clients))


async def sdp_campaign(http, url: str, cases: list, tally: Tally, concurrency: int = 3) -> None:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)

    async def one(kind, body, headers) -> None:
        async with sem:
            tally.sent += 1
            tally.kinds[kind] += 1
            data = json.dumps(body).encode() if isinstance(body, dict) else body
            if "Content-Type" not in headers and isinstance(body, dict):
                headers = {"Content-Type": "application/json"}
            if CHUNKED in headers:
                headers = {"Content-Type": "application/json"}
                data = _chunks(data)
            try:
                async with http.post(url + "/offer", data=data, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=ANSWER_S * 2)) as r:
                    status, text = r.status, await r.text()
            except asyncio.TimeoutError:
                tally.codes["(no answer)"] += 1
                tally.bad(kind, f"no answer within {ANSWER_S * 2:.0f} s")
                return
            except aiohttp.ClientError as e:
                tally.codes["(dropped)"] += 1
                tally.bad(kind, f"connection dropped: {type(e).__name__} {e}")
                return
            try:
                answer = json.loads(text)
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                tally.codes[f"{status} (not JSON)"] += 1
                tally.bad(kind, f"{status} answered with non-JSON {text[:120]!r}")
                return
            code = f"{status} {answer.get('error', 'answer' if status == 200 else '?')}"
            tally.codes[code] += 1
            if status >= 500 and answer.get("error") != "server_full":
                tally.bad(kind, f"{code}: {answer.get('reason', '')[:200]}")
            elif status == 200:
                sid = answer.get("session_id")
                if not sid or "sdp" not in answer:
                    tally.bad(kind, f"200 without a session: {text[:120]!r}")
                    return
                async with http.delete(f"{url}/session/{sid}") as r:
                    if r.status not in (200, 404):  # 404: it closed itself already (its ICE failed at once)
                        tally.bad(kind, f"DELETE of an offered session answered {r.status}")
            elif status != 200 and ("error" not in answer or "reason" not in answer):
                tally.bad(kind, f"{status} without error and reason: {text[:120]!r}")

    await asyncio.gather(*(one(*c) for c in cases))


async def push_campaign(http, url: str, sessions: list[str], scripts: list, tally: Tally) -> None:
    import aiohttp

    async def run_one(sid: str, kind: str, query: str, steps: list) -> None:
        tally.kinds[kind] += 1
        tally.sent += 1
        try:
            ws = await http.ws_connect(f"{url}/push?session={sid}{query}", max_msg_size=0)
        except aiohttp.WSServerHandshakeError as e:
            tally.codes[f"http {e.status}"] += 1
            if e.status >= 500 or not query:
                tally.bad(kind, f"push refused with {e.status}: {e.message}")
            return
        answers: list[dict] = []
        closed: list[int] = []
        texts = 0

        async def read() -> None:
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    closed.append(ws.close_code if ws.close_code is not None else -1)
                    return
                answers.append(json.loads(msg.data))

        reader = asyncio.get_running_loop().create_task(read())
        expect_close = False
        try:
            for step in steps:
                if closed:
                    break
                if step[0] == "text":
                    texts += 1
                    await ws.send_str(step[1])
                elif step[0] == "bin":
                    expect_close = expect_close or len(step[1]) > 1_536_000
                    await ws.send_bytes(step[1])
                elif step[0] == "flood":
                    for _ in range(step[1]):
                        await ws.send_bytes(b"\0\0" * 160)
                elif step[0] == "second":
                    try:
                        second = await http.ws_connect(f"{url}/push?session={sid}")
                        tally.bad(kind, "a second pusher was accepted")
                        await second.close()
                    except aiohttp.WSServerHandshakeError as e:
                        tally.codes[f"http {e.status} (second pusher)"] += 1
                        if e.status != 409:
                            tally.bad(kind, f"second pusher refused with {e.status}, not 409")
                elif step[0] == "abort":
                    ws._conn.transport.abort()  # the client vanishes without a close
                    tally.codes["(aborted by the client)"] += 1
                    return
                await asyncio.sleep(0.02)
            if not closed:
                texts += 2
                await ws.send_str(json.dumps({"type": "flush"}))
                await ws.send_str(json.dumps({"type": "status", "id": "end"}))
                deadline = time.monotonic() + ANSWER_S
                while not closed and not any(a.get("id") == "end" for a in answers) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            for a in answers:
                tally.codes[a.get("code", a["type"])] += 1
                if a.get("code") == "internal":
                    tally.bad(kind, f"internal error {a.get('message')!r}")
            text_answers = sum(1 for a in answers if a["type"] in ("started", "status", "flushed")
                               or a.get("code") in ("bad_json", "bad_message", "unknown_type", "too_large")
                               and "frame" not in a.get("message", ""))
            if closed:
                tally.codes[f"close {closed[0]}"] += 1
                if not expect_close:
                    tally.bad(kind, f"push socket closed ({closed[0]}) unasked")
            elif not any(a.get("id") == "end" for a in answers):
                tally.codes["(no answer)"] += 1
                tally.bad(kind, f"no status answer within {ANSWER_S:.0f} s")
            elif text_answers < texts:
                tally.bad(kind, f"{text_answers} answers to {texts} text messages")
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if not ws.closed:
                await ws.close()

    for i, (kind, query, steps) in enumerate(scripts):  # one pusher per session at a time
        await run_one(sessions[i % len(sessions)], kind, query, steps)


async def image_campaign(http, url: str, sessions: list[str], cases: list, tally: Tally) -> None:
    clients = [ControlClient(http, url, sid, tally) for sid in sessions for _ in range(2)]
    for c in clients:
        c.pacer = Pacer(0.9, 1)  # images: 1/s per connection on the server (burst 2)
        await c.open()
    try:
        async def drive(client: ControlClient, items: list) -> None:
            for kind, image in items:
                if client.gone:
                    break
                payload = json.dumps({"type": "reference_image", "image": image, "transition_ms": 0})
                await client.one(f"image_{kind}", payload, "close" if len(payload) > WS_HARD_BYTES else "answer",
                                 IMAGE_ANSWER_S)
                # an accepted photo's expression is set; the next image changes it again

        await asyncio.gather(*(drive(c, cases[i::len(clients)]) for i, c in enumerate(clients)))
    finally:
        for c in clients:
            await c.close()
