"""The fuzz campaign's bad input, generated from a seed: control websocket messages and floods, /offer bodies
mutated from real aiortc offers, /push stream scripts and reference images (benchmarks/bench_fuzz.py).

The same seed, base offers and portraits give the same cases.
"""
from __future__ import annotations

import base64
import functools
import io
import json
import random

VALID = [
    {"type": "get_state"},
    {"type": "set_emotion", "emotion": "happy", "intensity": 0.6},
    {"type": "set_emotion", "mixture": {"happy": 0.5, "surprised": 0.3}, "transition_ms": 100},
    {"type": "set_idle", "enabled": True, "amount": 1.0},
    {"type": "prompt", "text": "a little happy"},
    {"type": "subscribe", "stream": "stats"},
    {"type": "unsubscribe", "stream": "face_state"},
]
ODD_VALUES = [None, True, False, "", "x", [], {}, [1, 2], {"a": 1}, -1, 0, 1e308, -1e308, float("inf"),
              float("-inf"), float("nan"), 10**30, -(10**30), "NaN", "1", 0.5, "\u0000", "\ud800"]


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
