"""Floods and bad input against `emolive serve` as deployed, counted: the server must answer every one with a
clear error, lose nothing, not crash, and keep a live session streaming at 25 fps.

    .venv/bin/python benchmarks/bench_fuzz.py --workers 2 --ws 10000 --sdp 500 --push 40 --images 40 --seed 1 \
        --json out/reliability/fuzz.json

It starts `python -m streaming.server --workers W` as its own process tree
(as benchmarks/bench_capacity.py does), opens a "witness" session in another
process (benchmarks/light_peers.py's peer: sends speech, counts the video
frames it receives without decoding them) and two target sessions (aiortc
peers that receive and count), then runs four seeded campaigns at once:

* ws: control websocket messages (malformed JSON, wrong types, huge values,
  unknown types and versions, binary frames, invalid UTF-8, oversize frames,
  floods) on several connections to the targets and to the witness's own
  session; each message must get exactly one `state` or `error` answer
  (never `internal`), or the documented close (1009 over the hard size limit,
  1007 for invalid UTF-8);
* sdp: POST /offer with malformed or hostile bodies and SDP (truncated,
  lines dropped or mangled, bad fingerprints, wrong or missing media, many
  m-lines, many candidates, huge, not JSON); the answer must be a JSON
  error with a 4xx status, or a 200 with a session (closed again at once);
* push: /push streams (audio before start, bad rates, odd bytes, frames over
  1 s and over the hard limit, floods, overfilled buffers, a second pusher);
* images: reference_image with bad images (not base64, random bytes,
  truncated and bit-flipped photos, tiny, blank, decompression bombs, odd
  formats, over the size limit) and real portraits from ../shared.

It reports per category what was sent, the status / error codes seen, the
unexpected outcomes (a 5xx, a dropped connection where an answer was due, no
answer within the deadline, an `internal` error), the server processes that
exited or were replaced (their pids and /health), sessions left open, the
witness's received fps per second (min, median) and its longest gap between
frames, the RSS of every server process before and after, the load average
and the git revision.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from profiler.environment import BenchError, git_rev, machine_info, speech_file  # noqa: E402
from streaming.config import ServerConfig  # noqa: E402
from streaming.control import HARD_SIZE_FACTOR, image_message_limit  # noqa: E402
from bench_capacity import _cpu_s, _free_port, _tree, start_server, stop_server, write_outputs  # noqa: E402

ANSWER_S = 30.0  # a message, offer or push answer later than this is a hang (the machine may be loaded)
IMAGE_ANSWER_S = 60.0  # reading a face is ~300 ms of CPU; several at once on a loaded machine take longer
WS_PACE = 18.0  # messages/s per connection outside floods (the server allows 20/s, burst 40)
CONNECTIONS_PER_TARGET = 5
WITNESS_CONNECTIONS = 2
VALID = [
    {"type": "get_state"},
    {"type": "set_emotion", "emotion": "happy", "intensity": 0.6},
    {"type": "set_emotion", "mixture": {"happy": 0.5, "surprised": 0.3}, "transition_ms": 100},
    {"type": "set_idle", "enabled": True, "amount": 1.0},
    {"type": "prompt", "text": "a little happy"},
    {"type": "subscribe", "stream": "stats"},
    {"type": "unsubscribe", "stream": "face_state"},
]
_DEFAULTS = ServerConfig()
WS_HARD_BYTES = max(_DEFAULTS.ws_max_message_bytes * HARD_SIZE_FACTOR, image_message_limit(_DEFAULTS) + 1024)
ODD_VALUES = [None, True, False, "", "x", [], {}, [1, 2], {"a": 1}, -1, 0, 1e308, -1e308, float("inf"),
              float("-inf"), float("nan"), 10**30, -(10**30), "NaN", "1", 0.5, "\u0000", "\ud800"]


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


# -- generators (seeded) --------------------------------------------------------------------------------------
def ws_message(rng: random.Random) -> tuple[str, object, str]:
    """(kind, payload, expected): payload is text, bytes, or ("raw_text", bytes) (a text frame with these bytes);
    expected is "answer" (one state or error event) or "close" (the server closes the socket)."""
    k = rng.choices(["valid", "wrong_type", "extra_field", "huge_value", "huge_id", "malformed_json", "not_object",
                     "unknown_type", "bad_version", "surrogates", "deep_nesting", "big_int", "binary",
                     "oversize", "invalid_utf8", "mixture_huge", "close_to_limit"],
                    [10, 12, 4, 12, 4, 12, 4, 5, 5, 3, 3, 2, 6, 3, 1, 2, 2])[0]
    base = dict(rng.choice(VALID))
    if k == "valid":
        return k, json.dumps(base), "answer"
    if k in ("wrong_type", "huge_value"):
        fields = [f for f in base if f != "type"] or ["emotion"]
        pool = ODD_VALUES if k == "wrong_type" else [1e308, -1e308, float("inf"), float("nan"), 10**30,
                                                     10**300, "x" * rng.randrange(100, 15000), 2**63, -(2**63)]
        if k == "huge_value" and rng.random() < 0.3:
            base = {"type": "set_emotion", "emotion": "happy", "at_t": rng.choice([1e308, 1e12, float("inf"),
                                                                                   2**64, 86400.0 * 365])}
        else:
            base[rng.choice(fields + ["intensity", "transition_ms", "at_t", "amount"])] = rng.choice(pool)
        try:
            return k, json.dumps(base), "answer"
        except (ValueError, OverflowError):
            return k, json.dumps({"type": "get_state"}), "answer"
    if k == "extra_field":
        base[rng.choice(["foo", "__proto__", "", "type2", "x" * 60])] = rng.choice(ODD_VALUES[:10])
        return k, json.dumps(base), "answer"
    if k == "huge_id":
        base["id"] = rng.choice([10**rng.randrange(19, 300), -(10**40), "x" * rng.randrange(1000, 15000),
                                 [1, 2], {"a": 1}, 1.5, None, True])
        return k, json.dumps(base), "answer"
    if k == "malformed_json":
        text = json.dumps(base)
        return k, rng.choice([
            text[:rng.randrange(max(len(text) - 1, 1))],
            text + rng.choice(["}", "]", ",", "x", " {}"]),
            text.replace('"', "'"),
            "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(1, 300))),
            "".join(chr(rng.randrange(0x80, 0xD7FF)) for _ in range(rng.randrange(1, 200))),
            "", " ", "{", "{]", '{"type": }', '{"type": "get_state",}', "NaN", "Infinity", '{"a": 1e999999}',
            "\x00" * rng.randrange(1, 100), "\ufeff" + text]), "answer"
    if k == "not_object":
        return k, rng.choice(["[]", "1", '"get_state"', "null", "true", "-0.0", '[{"type": "get_state"}]',
                              "1e400"]), "answer"
    if k == "unknown_type":
        base["type"] = rng.choice(["nope", "", "GET_STATE", "get_state ", None, 1, [], {}, "x" * 1000, "hello",
                                   "closed", "error", "state"])
        return k, json.dumps(base), "answer"
    if k == "bad_version":
        base["v"] = rng.choice([0, 2, -1, "1", 1.5, None, [1], 10**20, True, "x" * 500])
        return k, json.dumps(base), "answer"
    if k == "surrogates":
        return k, rng.choice(['{"type": "prompt", "text": "\\ud800\\udfff\\ud800 happy"}',
                              '{"type": "set_emotion", "emotion": "\\udc00"}',
                              '{"type": "set_emotion", "mixture": {"\\ud800": 0.5}}',
                              '{"type": "get_state", "id": "\\ud800"}',
                              '{"type": "\\ud800"}']), "answer"
    if k == "deep_nesting":
        d = rng.choice([50, 500, 3000, 7000])
        return k, rng.choice(["[" * d + "]" * d, '{"a":' * d + "1" + "}" * d, "[" * d,
                              '{"type": "get_state", "id": ' + "[" * d + "]" * d + "}"]), "answer"
    if k == "big_int":
        digits = rng.choice([20, 400, 4000, 5000, 12000])
        field = rng.choice(["v", "id", "intensity", "transition_ms"])
        return k, '{"type": "get_state", "%s": %s}' % (field, "9" * digits), "answer"
    if k == "binary":
        return k, rng.randbytes(rng.randrange(0, 3000)), "answer"
    if k == "oversize":
        size = rng.choice([16_385, 40_000, 65_537, 300_000, 1_000_000])
        if rng.random() < 0.25:  # over the hard limit (a reference_image's size): the server closes (1009)
            return k, '{"type": "reference_image", "image": "' + "A" * 3_000_000 + '"}', "close"
        fill = "x" * size
        return k, rng.choice([json.dumps({"type": "prompt", "text": fill}), fill,
                              '{"type": "reference_image", "image": "' + fill + '"}',
                              json.dumps({"type": "get_state", "id": fill})]), "answer"
    if k == "invalid_utf8":
        # aiohttp closes with 1007, at once or at the next message (a split sequence at the end of a frame
        # is waiting for its rest), or passes what it decoded on: an answer or a close, then a new connection
        return k, ("raw_text", rng.choice([b"\xff\xfe", b'{"type": "get_state"}\xc3', b"\xed\xa0\x80"])), "either"
    if k == "mixture_huge":
        n = rng.choice([17, 100, 500])
        return k, json.dumps({"type": "set_emotion", "mixture": {f"e{i}": 0.1 for i in range(n)}}), "answer"
    # close_to_limit: just under the size limit (accepted for parsing)
    return k, json.dumps({"type": "prompt", "text": "y" * rng.choice([499, 500, 501, 16_000])}), "answer"


def flood(rng: random.Random) -> list:
    n = rng.choice([rng.randrange(60, 200), rng.randrange(200, 600)])
    return [rng.choice([json.dumps({"type": "get_state"}), "not json", json.dumps({"type": "nope"}),
                        json.dumps({"type": "set_emotion", "emotion": rng.choice(["happy", "sad", "angry"])})])
            for _ in range(n)]


def _lines(sdp: str) -> list[str]:
    return [x for x in sdp.replace("\r\n", "\n").split("\n") if x]


def _sdp(lines: list[str]) -> str:
    return "\r\n".join(lines) + "\r\n"


def _media_blocks(sdp: str) -> tuple[list[str], list[list[str]]]:
    head, blocks = [], []
    for line in _lines(sdp):
        if line.startswith("m="):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
        else:
            head.append(line)
    return head, blocks


def sdp_case(rng: random.Random, bases: dict[str, str]) -> tuple[str, object, dict]:
    """(kind, body, headers): body is a dict (sent as JSON), str or bytes."""
    k = rng.choices(["valid", "truncated", "line_dropped", "line_mangled", "token_swapped", "bad_fingerprint",
                     "wrong_media", "no_video", "many_mlines", "many_candidates", "bad_candidate", "huge",
                     "not_sdp", "bad_body", "hostile_fields"],
                    [3, 8, 8, 10, 8, 8, 6, 3, 4, 2, 4, 3, 4, 6, 4])[0]
    name = rng.choice(sorted(bases))
    sdp = bases[name]
    lines = _lines(sdp)
    if k == "valid":
        return f"valid_{name}", {"sdp": sdp, "type": "offer"}, {}
    if k == "truncated":
        s = sdp[:rng.randrange(len(sdp))]
    elif k == "line_dropped":
        for _ in range(rng.randrange(1, 4)):
            del lines[rng.randrange(len(lines))]
        s = _sdp(lines)
    elif k == "line_mangled":
        j = rng.randrange(len(lines))
        line = lines[j]
        cut = rng.randrange(len(line) + 1)
        lines[j] = rng.choice([line[:cut], line[:cut] + rng.choice(["x", " ", ":", "999999999999999999999", "-1",
                                                                    "", "a=", "\x00", "é", " " * 3, "/"]) + line[cut:],
                               line.split(" ")[0], line + " " + " ".join(["9"] * rng.randrange(1, 40)),
                               line[:2] + "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(60)))])
        s = _sdp(lines)
    elif k == "token_swapped":
        old = rng.choice(["UDP/TLS/RTP/SAVPF", "opus", "VP8", "actpass", " 9 ", "IN IP4", "sendrecv", "recvonly",
                          "audio", "video", "BUNDLE", "rtcp-mux", "ice-ufrag", "ice-pwd", "mid", "48000", "90000",
                          "typ host", "udp", "apt="])
        s = sdp.replace(old, rng.choice(["", "x", "-5", "99999", "application", "H265", "inactive", "RTP/AVP",
                                         "sendonly", "holdconn", " "]))
    elif k == "bad_fingerprint":
        fp = [x for x in lines if x.startswith("a=fingerprint:")]
        rest = [x for x in lines if not x.startswith("a=fingerprint:")]
        variant = rng.randrange(6)
        if variant == 0:
            s = _sdp(rest)  # none
        else:
            bad = {1: "a=fingerprint:sha-999 AB:CD", 2: "a=fingerprint:sha-256 ZZ:" + ":".join(["00"] * 31),
                   3: "a=fingerprint:sha-256 " + ":".join(["AB"] * 5), 4: "a=fingerprint:sha-256",
                   5: "a=fingerprint:" + "x" * rng.randrange(1, 2000)}[variant]
            at = lines.index(fp[0]) if fp else len(lines)
            s = _sdp(rest[:at] + [bad] * rng.choice([1, 1, 50]) + rest[at:])
    elif k == "wrong_media":
        head, blocks = _media_blocks(sdp)
        kind = rng.choice(["text", "image", "application", "message", "x"])
        for b in blocks:
            if rng.random() < 0.7:
                b[0] = b[0].replace("m=audio", f"m={kind}").replace("m=video", f"m={kind}")
        if rng.random() < 0.4:  # video with codecs the server does not have
            blocks = [[x.replace("VP8", "AV1").replace("H264", "H265") for x in b] for b in blocks]
        s = _sdp(head + [x for b in blocks for x in b])
    elif k == "no_video":
        head, blocks = _media_blocks(sdp)
        keep = [b for b in blocks if not b[0].startswith("m=video")]
        s = _sdp(head + [x for b in keep for x in b])
    elif k == "many_mlines":
        head, blocks = _media_blocks(sdp)
        n = rng.choice([5, 20, 60, 150])
        extra = []
        for i in range(n):
            b = list(rng.choice(blocks))
            extra += [x.replace("a=mid:", "a=mid:x%d" % i) if x.startswith("a=mid:") else x for x in b
                      if not x.startswith(("a=ssrc", "a=msid", "a=candidate"))]
        s = _sdp(head + [x for b in blocks for x in b] + extra)[:60_000]
    elif k == "many_candidates":
        at = next(i for i, x in enumerate(lines) if x.startswith("a=candidate"))
        cands = [f"a=candidate:{i} 1 udp {2130706431 - i} 10.{rng.randrange(256)}.{rng.randrange(256)}."
                 f"{rng.randrange(1, 255)} {rng.randrange(1024, 65535)} typ host" for i in range(rng.choice([50, 600]))]
        s = _sdp(lines[:at] + cands + lines[at:])[:60_000]
    elif k == "bad_candidate":
        at = next(i for i, x in enumerate(lines) if x.startswith("a=candidate"))
        bad = rng.choice(["a=candidate:", "a=candidate:1 1 udp x 1.2.3.4 abc typ host",
                          "a=candidate:1 1 udp 1 999.999.1.1 70000 typ host", "a=candidate:1 1 tcp 1 ::1 9 typ",
                          "a=candidate:1 1 udp 1 not-an-ip 5000 typ relay raddr x rport y",
                          "a=candidate:1 1 udp 1 1.2.3.4 5000 typ host " + "generation 0 " * 200])
        s = _sdp(lines[:at] + [bad] + lines[at:])
    elif k == "huge":
        size = rng.choice([70_000, 200_000, 1_000_000])
        s = sdp + "a=x-filler:" + "z" * size + "\r\n"
        if rng.random() < 0.4:  # without a Content-Length
            return "huge_chunked", json.dumps({"sdp": s, "type": "offer"}).encode(), {CHUNKED: "1"}
    elif k == "not_sdp":
        s = rng.choice(["", "v=0", "hello", "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(500))),
                        rng.randbytes(300).decode("latin-1"), "v=0\r\n" * 2000, "m=" * 1000])
    elif k == "bad_body":
        body = rng.choice([b"", b"not json", b"[]", b"null", b"1", b'"offer"', json.dumps({"sdp": sdp}).encode(),
                           json.dumps({"type": "offer"}).encode(), json.dumps({"sdp": 5, "type": "offer"}).encode(),
                           json.dumps({"sdp": None, "type": "offer"}).encode(),
                           json.dumps({"sdp": sdp, "type": "answer"}).encode(),
                           json.dumps({"sdp": [sdp], "type": "offer"}).encode(),
                           b"[" * 5000 + b"]" * 5000, b'{"sdp": ' * 3000 + b"1" + b"}" * 3000,
                           rng.randbytes(2000), json.dumps({"sdp": sdp, "type": "offer"}).encode()[:-3],
                           b"\xff\xfe" + json.dumps({"sdp": sdp, "type": "offer"}).encode()])
        return "bad_body", body, rng.choice([{}, {"Content-Type": "application/json"}, {"Content-Type": "text/plain"}])
    else:  # hostile_fields
        field, value = rng.choice([
            ("avatar", "/etc/passwd"), ("avatar", "../" * 40 + "etc/shadow"), ("avatar", "\x00"),
            ("avatar", "x" * 600), ("avatar", "http://example.com/a.png"), ("avatar", ""), ("avatar", "/dev/zero"),
            ("avatar", "/proc/self/environ"), ("avatar", 5), ("emotion", "furious"), ("emotion", "happy:2"),
            ("emotion", "x" * 300), ("emotion", "happy:0.5+" * 30), ("emotion", ""), ("emotion", ["happy"]),
            ("emotion", "happy@-1"), ("emotion", "nan"), ("emotion", "happy:nan")])
        return f"hostile_{field}", {"sdp": sdp, "type": "offer", field: value}, {}
    return k, {"sdp": s, "type": "offer"}, {}


CHUNKED = "X-Bench-Chunked"  # a marker in a case's headers: send the body without a Content-Length


async def _chunks(data: bytes, size: int = 65_536):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def push_script(rng: random.Random) -> tuple[str, str, list]:
    """(kind, query, steps): steps are ("text", str), ("bin", bytes), ("flood", n), ("second",) or ("abort",)."""
    rate = rng.choice([8000, 16_000, 22_050, 24_000, 44_100, 48_000])
    start = ("text", json.dumps({"type": "start", "sample_rate": rate}))
    noise = lambda s: (rng.randbytes(2 * int(rate * s)))  # noqa: E731 - random s16le, loud
    k = rng.choice(["no_start", "bad_rate", "bad_query", "odd_bytes", "over_1s", "over_hard_limit", "flood",
                    "overfill", "garbage_text", "restart_rates", "second_pusher", "abort", "normal", "flush_mid"])
    query = ""
    if k == "no_start":
        steps = [("bin", noise(0.1)), ("bin", b""), start, ("bin", noise(0.1))]
    elif k == "bad_rate":
        steps = [("text", json.dumps({"type": "start", "sample_rate": rng.choice(
            [0, -1, 7999, 192_001, 10**12, 1.5, "16000", None, True, [16000], float("inf")])}, allow_nan=True)),
            ("text", json.dumps({"type": "start", "sample_rate": rate, "format": rng.choice(["f32le", "", 5])})),
            ("bin", noise(0.05))]
    elif k == "bad_query":
        query = "&sample_rate=" + rng.choice(["abc", "-5", "1e5", "", "99999999999999999999999", "16000.0", "%00"])
        steps = [("bin", noise(0.05))]
    elif k == "odd_bytes":
        steps = [start, ("bin", rng.randbytes(rng.choice([1, 3, 4801]))), ("bin", noise(0.05))]
    elif k == "over_1s":
        steps = [start, ("bin", noise(1.0) + b"\0\0"), ("bin", noise(0.05))]
    elif k == "over_hard_limit":
        steps = [start, ("bin", b"\0" * (1_600_000))]
    elif k == "flood":
        steps = [start, ("flood", rng.choice([300, 600, 1000]))]
    elif k == "overfill":
        steps = [start] + [("bin", noise(1.0)) for _ in range(25)]
    elif k == "garbage_text":
        steps = [start] + [("text", rng.choice(["{", "[]", "null", json.dumps({"type": "nope"}),
                                                json.dumps({"type": "status", "extra": 1}), "x" * 5000,
                                                '{"type": "start", "sample_rate": ' + "9" * 5000 + "}",
                                                "[" * 3000 + "]" * 3000, json.dumps({"type": None})]))
                           for _ in range(rng.randrange(3, 10))]
    elif k == "restart_rates":
        steps = []
        for _ in range(rng.randrange(3, 12)):
            r = rng.choice([8000, 11_025, 16_000, 48_000, 96_000, 192_000])
            steps += [("text", json.dumps({"type": "start", "sample_rate": r})), ("bin", rng.randbytes(2 * r // 20))]
    elif k == "second_pusher":
        steps = [start, ("bin", noise(0.1)), ("second",)]
    elif k == "abort":
        steps = [start, ("bin", noise(0.2)), ("abort",)]
    elif k == "flush_mid":
        steps = [start, ("bin", noise(0.5)), ("text", json.dumps({"type": rng.choice(["flush", "interrupt", "clear"])})),
                 ("bin", noise(0.2))]
    else:
        steps = [start] + [("bin", noise(0.1)) for _ in range(10)]
    return k, query, steps


@functools.lru_cache(maxsize=8)
def _png(size: tuple[int, int], mode: str = "L", color=128) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def image_case(rng: random.Random, portraits: list[bytes]) -> tuple[str, object]:
    """(kind, image field value): base64 text, or something else that is not an image string."""
    from PIL import Image

    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    photo = rng.choice(portraits) if portraits else _png((256, 256), "RGB", (200, 150, 120))
    k = rng.choice(["portrait", "truncated", "bitflip", "random_bytes", "not_base64", "empty", "tiny", "blank",
                    "bomb", "formats", "exif", "oversize", "wrong_type", "base64_spaces"])
    if k == "portrait":
        return k, b64(photo)
    if k == "truncated":
        return k, b64(photo[:rng.randrange(10, len(photo))])
    if k == "bitflip":
        b = bytearray(photo)
        for _ in range(rng.randrange(1, 50)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return k, b64(bytes(b))
    if k == "random_bytes":
        return k, b64(rng.randbytes(rng.randrange(1, 100_000)))
    if k == "not_base64":
        return k, rng.choice(["%%%", "abc", "A" * 1001, "====", "\u00e9\u00e9\u00e9\u00e9", "AAA="[:3]])
    if k == "empty":
        return k, ""
    if k == "tiny":
        return k, b64(_png((1, 1)))
    if k == "blank":
        return k, b64(_png((640, 480), "RGB", (90, 90, 90)))
    if k == "bomb":
        return k, b64(rng.choice([_png((20_000, 20_000), "1", 0), _png((5_400, 5_400), "L", 0),
                                  _jpeg_claiming(65_000, 65_000, photo)]))
    if k == "formats":
        im = Image.open(io.BytesIO(photo))
        im.load()
        fmt, mode = rng.choice([("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"), ("WEBP", "RGB"), ("JPEG", "L"),
                                ("JPEG", "CMYK"), ("PNG", "RGBA"), ("PNG", "I;16"), ("PNG", "LA"), ("ICO", "RGB"),
                                ("PPM", "RGB")])
        buf = io.BytesIO()
        try:
            im.convert(mode).save(buf, fmt)
        except (OSError, ValueError, KeyError):
            im.convert("RGB").save(buf, "PNG")
        return f"format_{fmt.lower()}", b64(buf.getvalue())
    if k == "exif":
        im = Image.open(io.BytesIO(photo)).convert("RGB")
        exif = Image.Exif()
        exif[0x0112] = rng.choice([0, 2, 5, 8, 9, 255, 65535])  # orientation, some out of range
        buf = io.BytesIO()
        im.save(buf, "JPEG", exif=exif.tobytes())
        data = bytearray(buf.getvalue())
        if rng.random() < 0.5:  # damage the EXIF block
            at = data.find(b"Exif")
            for i in range(at + 10, min(at + 60, len(data))):
                if rng.random() < 0.3:
                    data[i] = rng.randrange(256)
        return k, b64(bytes(data))
    if k == "oversize":
        return k, "A" * rng.choice([2_796_208, 2_800_000])  # over 2 MiB decoded
    if k == "wrong_type":
        return k, rng.choice([123, None, ["a"], {"b": 1}, True])
    return k, "\n".join(b64(photo)[i:i + 76] for i in range(0, len(b64(photo)), 76))  # base64_spaces


def _jpeg_claiming(w: int, h: int, photo: bytes) -> bytes:
    """A JPEG whose frame header claims w x h pixels (the data stays small)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(photo)).convert("RGB").resize((64, 64)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    at = data.find(b"\xff\xc0")
    if at > 0:
        data[at + 5:at + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    return bytes(data)


# -- the server, the watch on it ----------------------------------------------------------------------------
def rss_mb(pids: list[int]) -> dict[str, float]:
    out = {}
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[str(p)] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
    return out


class Watch:
    """Polls /health and the process tree: any server process that goes away, or a worker that is replaced."""

    def __init__(self, server, url: str, http) -> None:
        self.server, self.url, self.http = server, url, http
        self.first_pids = set(_tree(server.pid))
        self.seen_pids = set(self.first_pids)
        self.health_failures = 0
        self.health_polls = 0
        self.worker_pids: dict[int, set[int]] = {}
        self.sessions_max = 0
        # The witness's frames as the server counts them sending (/metrics), beside what its receiver got:
        # on one machine the receiver shares the cores with the attacker and may fall behind on its own.
        self.witness: str | None = None
        self.witness_sent: list[tuple[float, int]] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        import aiohttp

        while True:
            self.seen_pids |= set(_tree(self.server.pid))
            self.health_polls += 1
            try:
                async with self.http.get(self.url + "/health", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    h = await r.json()
                    if r.status != 200:
                        self.health_failures += 1
                for w in h.get("workers", []):
                    if w.get("pid"):
                        self.worker_pids.setdefault(w["slot"], set()).add(w["pid"])
                self.sessions_max = max(self.sessions_max, h.get("sessions", 0))
            except Exception:  # noqa: BLE001 - counted: /health did not answer
                self.health_failures += 1
            if self.witness:
                await self._witness_sent()
            await asyncio.sleep(0.5)

    async def _witness_sent(self) -> None:
        import aiohttp

        name, label = "emolive_session_frames_sent{", f'session="{self.witness[:8]}"'  # the front adds worker=
        try:
            async with self.http.get(self.url + "/metrics", timeout=aiohttp.ClientTimeout(total=5)) as r:
                text = await r.text()
        except Exception:  # noqa: BLE001 - a missed sample; /health failures are what count
            return
        for line in text.splitlines():
            if line.startswith(name) and label in line:
                self.witness_sent.append((time.monotonic(), int(float(line.rsplit(" ", 1)[1]))))
                return

    async def stop(self) -> dict:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        alive = set(_tree(self.server.pid)) if self.server.returncode is None else set()
        # The front and its workers as they were when serving began; a short-lived child a process
        # spawns later (a library probing the system) is not a server process ending.
        gone = sorted(p for p in self.first_pids if p not in alive)
        return {"server_exited": self.server.returncode is not None, "processes_gone": gone,
                "transient_children": len(self.seen_pids - self.first_pids - alive),
                "worker_replacements": sum(len(p) - 1 for p in self.worker_pids.values()),
                "health_polls": self.health_polls, "health_failures": self.health_failures}


def log_errors(path: Path) -> dict:
    """Tracebacks and ERROR lines in the server's log, the distinct last lines of each traceback."""
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.splitlines()
    last_lines, in_tb = Counter(), False
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            in_tb = True
        elif in_tb and line and not line.startswith((" ", "Traceback")) and not line.startswith("During handling"):
            last_lines[line[:200]] += 1
            in_tb = False
    return {"tracebacks": sum(last_lines.values()), "error_lines": sum(" ERROR " in x for x in lines),
            "exceptions": dict(last_lines.most_common(20))}


# -- peers ------------------------------------------------------------------------------------------------------
class Target:
    """An aiortc peer that receives a session's video and audio and counts the frames (no decoding)."""

    def __init__(self) -> None:
        self.counts: dict[str, list] = {"video": [], "audio": []}
        self.pc = None
        self.session_id: str | None = None

    async def connect(self, http, url: str) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from light_peers import install_counting_decoders

        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        install_counting_decoders(self.counts)  # receivers take their decoder when the first packet comes
        await pc.setLocalDescription(await pc.createOffer())
        async with http.post(url + "/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as r:
            answer = await r.json()
            if r.status != 200:
                raise BenchError(f"target offer refused: {r.status} {answer}")
        self.session_id = answer["session_id"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


async def _first_video(counts: dict, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if counts["video"]:
            return
        await asyncio.sleep(0.05)
    raise BenchError(f"no video within {timeout:.0f} s")


async def base_offers() -> dict[str, str]:
    """Real aiortc offers: the shapes a client sends (the campaign mutates them)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    out = {}
    for name, kinds in (("sendrecv", [("audio", "sendrecv"), ("video", "recvonly")]),
                        ("recvonly", [("audio", "recvonly"), ("video", "recvonly")]),
                        ("video_only", [("video", "recvonly")]),
                        ("datachannel", [("audio", "sendrecv"), ("video", "recvonly"), ("data", None)])):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for kind, direction in kinds:
            if kind == "data":
                pc.createDataChannel("chat")
            else:
                pc.addTransceiver(kind, direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        out[name] = pc.localDescription.sdp
        await pc.close()
    return out


def sent_stats(samples: list[tuple[float, int]], t0: float, t1: float) -> dict:
    """The server's frames_sent counter sampled (time, count): fps over each span of about a second."""
    inside = [s for s in samples if t0 <= s[0] <= t1]
    rates, i = [], 0
    for j in range(1, len(inside)):
        if inside[j][0] - inside[i][0] >= 0.95:
            rates.append((inside[j][1] - inside[i][1]) / (inside[j][0] - inside[i][0]))
            i = j
    return {"samples": len(inside), "fps_per_span": [round(r, 1) for r in rates],
            "fps_min": round(min(rates), 1) if rates else None,
            "fps_median": round(statistics.median(rates), 1) if rates else None}


def witness_stats(video: list, t0: float, t1: float) -> dict:
    """Received video of the witness between t0 and t1: frames per whole second, longest gap, RTP order."""
    times = [t for t, _ in video if t0 <= t <= t1]
    secs = int(t1 - t0)
    per_s = [0] * max(secs, 0)
    for t in times:
        i = int(t - t0)
        if i < secs:
            per_s[i] += 1
    stamps = [ts for t, ts in video if t0 <= t <= t1]
    back = sum(1 for a, b in zip(stamps, stamps[1:]) if ((b - a) % 2**32) > 2**31)  # RTP time going back
    gaps = [b - a for a, b in zip(times, times[1:])]
    return {"seconds": round(t1 - t0, 1), "frames": len(times), "fps_mean": round(len(times) / max(t1 - t0, 1e-9), 2),
            "fps_min": min(per_s, default=0), "fps_median": statistics.median(per_s) if per_s else 0,
            "fps_per_s": per_s, "gap_max_ms": round(1000 * max(gaps, default=t1 - t0), 1),
            "rtp_steps_back": back, "frames_after": sum(1 for t, _ in video if t > t1)}


async def peers_child(args) -> int:
    """The media peers, in their own process (the campaign's work cannot starve them): the witness (sends
    speech, receives) and the targets (receive). Prints WITNESS <id>, TARGET <id>..., READY; runs until
    STOP (or EOF) on stdin; writes their received frames to --out."""
    import aiohttp

    from light_peers import Peer, opus_file
    from profiler.client import say
    from streaming.loopback import include_loopback_candidates

    include_loopback_candidates()
    with tempfile.TemporaryDirectory(prefix="emolive-witness-") as tmp:
        audio = opus_file(args.audio, args.witness_seconds, Path(tmp) / "speech.ogg")
        witness = Peer(0)
        targets = [Target() for _ in range(args.targets)]
        async with aiohttp.ClientSession() as http:
            try:
                await witness.connect(http, args.url, audio)
                await _first_video(witness.counts)
                say(f"WITNESS {witness.session_id}")
                for t in targets:  # one at a time: the counting decoders are taken per process
                    await t.connect(http, args.url)
                    await _first_video(t.counts)
                    say(f"TARGET {t.session_id}")
                say("READY")
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # STOP, or EOF
            finally:
                await asyncio.gather(witness.close(), *(t.close() for t in targets), return_exceptions=True)
    Path(args.out).write_text(json.dumps({
        "witness": {"session_id": witness.session_id, "video": witness.counts["video"],
                    "audio_frames": len(witness.counts["audio"])},
        "targets": [{"session_id": t.session_id, "video": t.counts["video"], "audio_frames": len(t.counts["audio"])}
                    for t in targets]}), encoding="utf-8")
    say("DONE")
    return 0


# -- the campaigns ---------------------------------------------------------------------------------------------
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


def generate(counts: dict[str, int], seed: int, bases: dict[str, str], portraits: list[bytes]) -> dict[str, list]:
    """Every category's cases, from the seed, before anything runs (generating bombs takes seconds)."""
    rng = random.Random(seed)
    ws: list = []
    while sum(len(w[1]) if w[0] == "flood" else 1 for w in ws) < counts["ws"]:
        ws.append(("flood", flood(rng)) if rng.random() < 0.004 else ws_message(rng))  # floods: about half
    rng_sdp, rng_push, rng_img = (random.Random(seed + i) for i in (1, 2, 3))
    return {"ws": ws, "sdp": [sdp_case(rng_sdp, bases) for _ in range(counts["sdp"])],
            "push": [push_script(rng_push) for _ in range(counts["push"])],
            "images": [image_case(rng_img, portraits) for _ in range(counts["images"])]}


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


async def session_alive(http, url: str, sid: str) -> bool:
    import aiohttp

    try:
        async with http.ws_connect(f"{url}/ws?session={sid}") as ws:
            await ws.send_str(json.dumps({"type": "get_state"}))
            for _ in range(10):
                msg = await ws.receive(timeout=10)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return False
                if json.loads(msg.data)["type"] == "state":
                    return True
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False
    return False


async def campaign(args, audio: str, workdir: Path) -> dict:
    import aiohttp

    from engine.measure import shared_dir

    shared = shared_dir()
    portraits = sorted((Path(shared) / "data" / "portraits").glob("*.*")) if shared else []
    counts = {"ws": args.ws, "sdp": args.sdp, "push": args.push, "images": args.images}
    cases = generate(counts, args.seed, await base_offers(), [p.read_bytes() for p in portraits])
    log_path = Path(args.log) if args.log else workdir / "server.log"
    url = f"http://127.0.0.1:{_free_port()}"
    with open(log_path, "wb") as log:
        server = await start_server(url, args.workers, args.max_sessions, args.config, args.start_timeout, log)
    peers = None
    try:
        async with aiohttp.ClientSession() as http:
            watch = Watch(server, url, http)
            peers = await asyncio.create_subprocess_exec(
                sys.executable, str(Path(__file__).resolve()), "--peers-child", "--url", url, "--audio", audio,
                "--out", str(workdir / "peers.json"), "--witness-seconds", str(args.witness_seconds), cwd=ROOT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            witness_sid, sids = None, []
            while True:
                line = (await asyncio.wait_for(peers.stdout.readline(), 180)).decode().strip()
                if not line:
                    raise BenchError(f"the peers ended before streaming (exit {await peers.wait()})")
                word, _, rest = line.partition(" ")
                if word == "WITNESS":
                    witness_sid = watch.witness = rest
                elif word == "TARGET":
                    sids.append(rest)
                elif word == "READY":
                    break
            await asyncio.sleep(args.settle)
            tb = time.monotonic()
            await asyncio.sleep(args.baseline)  # the witness with the targets streaming, before any bad input
            pids = _tree(server.pid)
            rss_before = rss_mb(pids)
            load_before = os.getloadavg()
            cpu_before = _cpu_s(pids)
            tallies = {c: Tally() for c in ("ws", "sdp", "push", "images")}
            t0 = time.monotonic()
            print(f"campaign: ws {args.ws}, sdp {args.sdp}, push {args.push}, images {args.images} "
                  f"(seed {args.seed}) against {url}, {len(pids)} server process(es)", flush=True)

            async def timed(name, coro):
                start = time.monotonic()
                await coro
                print(f"  {name}: {tallies[name].sent} sent in {time.monotonic() - start:.1f} s, "
                      f"{tallies[name].unexpected_n} unexpected", flush=True)
                return round(time.monotonic() - start, 1)

            durations = await asyncio.gather(
                timed("ws", ws_campaign(http, url, sids, witness_sid, cases["ws"], tallies["ws"])),
                timed("sdp", sdp_campaign(http, url, cases["sdp"], tallies["sdp"])),
                timed("push", push_campaign(http, url, sids, cases["push"], tallies["push"])),
                timed("images", image_campaign(http, url, sids, cases["images"], tallies["images"])))
            t1 = time.monotonic()
            load_after = os.getloadavg()
            cpu_pct = round(100.0 * (_cpu_s(_tree(server.pid)) - cpu_before) / (t1 - t0), 1)
            await asyncio.sleep(POLL_SETTLE_S)  # the front's session poll catches up with the closed offers
            async with http.get(url + "/health") as r:
                health = await r.json()
            alive = {sid[:8]: await session_alive(http, url, sid) for sid in [witness_sid] + sids}
            rss_after = rss_mb(_tree(server.pid))
            watched = await watch.stop()
            peers.stdin.write(b"STOP\n")
            await peers.stdin.drain()
            await asyncio.wait_for(peers.wait(), 60)
            peers = None
            seen = json.loads((workdir / "peers.json").read_text())
    finally:
        if peers is not None and peers.returncode is None:
            peers.kill()
        await stop_server(server)
    return {
        "categories": {c: t.report() for c, t in tallies.items()},
        "durations_s": dict(zip(tallies, durations)), "campaign_s": round(t1 - t0, 1),
        "unexpected": sum(t.unexpected_n for t in tallies.values()),
        "crashes": len(watched["processes_gone"]) + watched["worker_replacements"] + int(watched["server_exited"]),
        "watch": watched, "server_log": log_errors(log_path),
        "sessions_after": health.get("sessions"), "sessions_expected_after": 1 + len(sids),
        "sessions_alive": alive, "sessions_disturbed": sum(not a for a in alive.values()),
        "witness": witness_stats([tuple(v) for v in seen["witness"]["video"]], t0, t1),
        "witness_baseline": witness_stats([tuple(v) for v in seen["witness"]["video"]], tb, t0),
        "witness_sent": sent_stats(watch.witness_sent, t0, t1),
        "witness_sent_baseline": sent_stats(watch.witness_sent, tb, t0),
        "targets": [witness_stats([tuple(v) for v in t["video"]], t0, t1) for t in seen["targets"]],
        "rss_mb": {"before": rss_before, "after": rss_after,
                   "before_total": round(sum(rss_before.values()), 1), "after_total": round(sum(rss_after.values()), 1)},
        "load_average": {"before": load_before, "after": load_after},
        "server_cpu_pct": cpu_pct,
    }


POLL_SETTLE_S = 3.0


async def main_async(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="emolive-fuzz-") as tmp:
        audio, described = speech_file(args.audio, Path(tmp))
        result = await campaign(args, audio, Path(tmp))
    result.update({"workers": args.workers, "seed": args.seed, "counts": {"ws": args.ws, "sdp": args.sdp,
                                                                          "push": args.push, "images": args.images},
                   "input": described, "command": " ".join(sys.argv), "git_rev": git_rev(),
                   "machine": machine_info(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return result


def summary(r: dict) -> str:
    w = r["witness"]
    rows = ["| category | sent | codes seen | unexpected |", "|---|---|---|---|"]
    for c, t in r["categories"].items():
        codes = ", ".join(f"{k} {v}" for k, v in sorted(t["codes"].items(), key=lambda kv: -kv[1]))
        rows.append(f"| {c} | {t['sent']} | {codes} | {t['unexpected']} |")
    lb, la = r["load_average"]["before"], r["load_average"]["after"]
    return ("\n".join(rows) + "\n\n"
            f"crashes {r['crashes']} (server processes gone {r['watch']['processes_gone']}, worker replacements "
            f"{r['watch']['worker_replacements']}, /health failures {r['watch']['health_failures']} of "
            f"{r['watch']['health_polls']}); unexpected outcomes {r['unexpected']}; sessions disturbed "
            f"{r['sessions_disturbed']}; sessions open after {r['sessions_after']} (expected "
            f"{r['sessions_expected_after']}); server log: {r['server_log']['tracebacks']} tracebacks\n"
            f"witness over {w['seconds']} s: {w['frames']} frames, fps per second min {w['fps_min']} median "
            f"{w['fps_median']}, mean {w['fps_mean']}, longest gap {w['gap_max_ms']} ms (before the campaign, "
            f"{r['witness_baseline']['seconds']} s: min {r['witness_baseline']['fps_min']} median "
            f"{r['witness_baseline']['fps_median']}, longest gap {r['witness_baseline']['gap_max_ms']} ms)\n"
            f"witness as the server sent it: fps per second min {r['witness_sent']['fps_min']} median "
            f"{r['witness_sent']['fps_median']} (before the campaign: min {r['witness_sent_baseline']['fps_min']} "
            f"median {r['witness_sent_baseline']['fps_median']})\n"
            f"RSS (MB) before {r['rss_mb']['before']} = {r['rss_mb']['before_total']}, after {r['rss_mb']['after']} = "
            f"{r['rss_mb']['after_total']}; load average before {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f}, after "
            f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; server CPU {r['server_cpu_pct']} % of one core over the campaign "
            f"({r['campaign_s']} s); {r['git_rev']}\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="2", help="as for emolive serve (2 as deployed on this machine; 1: one process)")
    p.add_argument("--ws", type=int, default=10_000, help="control websocket messages")
    p.add_argument("--sdp", type=int, default=500, help="offers")
    p.add_argument("--push", type=int, default=40, help="/push streams")
    p.add_argument("--images", type=int, default=40, help="reference_image messages")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-sessions", type=int, default=12)
    p.add_argument("--config", help="server settings YAML")
    p.add_argument("--audio", help="the witness's speech (default: LibriSpeech from ../shared, else espeak-ng)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds between the sessions' start and the campaign")
    p.add_argument("--baseline", type=float, default=10.0, help="seconds the witness is measured before the campaign")
    p.add_argument("--start-timeout", type=float, default=180.0)
    p.add_argument("--witness-seconds", type=float, default=400.0, help="speech the witness has to send (looped)")
    p.add_argument("--json")
    p.add_argument("--markdown", help="the summary table and figures, as printed")
    p.add_argument("--log", help="keep the server's log in this file")
    p.add_argument("--peers-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--targets", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.peers_child:
        return asyncio.run(peers_child(args))
    try:
        result = asyncio.run(main_async(args))
    except BenchError as e:
        print(f"bench_fuzz: {e}", file=sys.stderr)
        return 2
    write_outputs(result, summary(result), args.json, args.markdown)  # and prints the summary
    return 0 if result["crashes"] == 0 and result["unexpected"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
