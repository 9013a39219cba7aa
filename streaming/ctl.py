"""`emolive ctl`: steer a running session from a terminal or a script over the control websocket."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import websockets

from engine.emotion import EmotionError, parse_spec


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="emolive ctl", description="Send control commands to a session.")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    p.add_argument("--session", required=True, help="session id (from POST /offer)")
    p.add_argument("--token", help="bearer token, if the server requires one")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("set-emotion", help="e.g. happy:0.8 or happy:0.7+surprised:0.3@0.9")
    e.add_argument("spec")
    e.add_argument("--transition-ms", type=float, default=250.0)
    pr = sub.add_parser("prompt", help='e.g. "very happy with a little surprised"')
    pr.add_argument("text")
    sub.add_parser("state", help="print the session state")
    sub.add_parser("interrupt", help="drop the buffered speech")
    t = sub.add_parser("tail", help="print events (stats, errors; --face for face states) until Ctrl-C")
    t.add_argument("--face", action="store_true")
    pb = sub.add_parser("publish", help="push the session's avatar and voice to a WHIP server (an SFU's ingest)")
    pb.add_argument("whip_url", help="the WHIP endpoint; {session} becomes the session id")
    pb.add_argument("--whip-token", help="the WHIP server's bearer token (also EMOLIVE_PUBLISH_WHIP_TOKEN)")
    sub.add_parser("unpublish", help="end what `publish` started (its WHIP resource is DELETEd)")
    ps = sub.add_parser("push", help="speak an audio file through the session (the /push endpoint, as a TTS would)")
    ps.add_argument("file", help="wav, flac, mp3, ...")
    ps.add_argument("--ahead", type=float, default=3.0, help="seconds of audio sent ahead of playback (default 3)")
    return p


def command_message(args) -> dict | None:
    """The protocol message for a command (None for tail). EmotionError on a bad spec."""
    if args.command == "set-emotion":
        target = parse_spec(args.spec)
        msg = {"type": "set_emotion", "intensity": min(target.intensity, 1.0), "transition_ms": args.transition_ms}
        if len(target.mixture) == 1:
            msg["emotion"] = target.dominant()
        else:
            msg["mixture"] = target.mixture
        return msg
    if args.command == "prompt":
        return {"type": "prompt", "text": args.text}
    if args.command == "state":
        return {"type": "get_state"}
    if args.command == "interrupt":
        return {"type": "interrupt"}
    if args.command == "publish":
        token = args.whip_token or os.environ.get("EMOLIVE_PUBLISH_WHIP_TOKEN")
        return {"type": "publish", "url": args.whip_url, **({"token": token} if token else {})}
    if args.command == "unpublish":
        return {"type": "unpublish"}
    return None


def ws_url(base: str, session: str, route: str = "ws") -> str:
    base = base.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[4:]
    return f"{base}/{route}?session={session}"


async def push_file(args, out=sys.stdout) -> int:
    """Stream a file to /push at about real time (args.ahead seconds ahead), then wait until it is played."""
    import time

    import numpy as np

    from engine.audio.io import read_audio_file

    pcm, rate = read_audio_file(args.file)  # AudioInputError (a ValueError) on a bad file
    if not 8_000 <= rate <= 192_000:
        from .sources import resample

        pcm, rate = resample(pcm, rate, 48_000), 48_000
    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
    step = 2 * (rate // 10)  # 100 ms frames
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    async with websockets.connect(ws_url(args.url, args.session, "push"), additional_headers=headers,
                                  max_size=2 ** 20) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": rate}))
        started = json.loads(await ws.recv())
        if started.get("type") != "started":
            print(json.dumps(started), file=out)
            return 1
        t0, refused = time.monotonic(), 0
        for i in range(0, len(data), step):
            ahead = i / 2 / rate - (time.monotonic() - t0)
            if ahead > args.ahead:
                await asyncio.sleep(ahead - args.ahead)
            await ws.send(data[i:i + step])
        while True:  # errors for refused frames come before the end of playback
            event = json.loads(await ws.recv())
            if event.get("type") == "error":
                refused += 1
                print(json.dumps(event), file=out)
            elif event.get("type") == "drained":
                print(json.dumps({"pushed_s": round(len(pcm) / rate, 3), "sample_rate": rate,
                                  "frames_refused": refused}), file=out)
                return 1 if refused else 0


async def run(args, out=sys.stdout) -> int:
    if args.command == "push":
        return await push_file(args, out)
    msg = command_message(args)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    async with websockets.connect(ws_url(args.url, args.session), additional_headers=headers) as ws:
        if msg is not None:
            await ws.send(json.dumps({**msg, "id": 1}))
            async for raw in ws:
                event = json.loads(raw)
                if event.get("type") in ("state", "error") and event.get("id") == 1:
                    print(json.dumps(event, indent=2), file=out)
                    return 1 if event["type"] == "error" else 0
            return 1
        if args.face:
            await ws.send(json.dumps({"type": "subscribe", "stream": "face_state"}))
        async for raw in ws:
            print(raw, file=out, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except (EmotionError, ValueError) as e:  # a bad spec, an unreadable audio file
        print(f"emolive ctl: {e}", file=sys.stderr)
        return 2
    except (OSError, websockets.exceptions.WebSocketException) as e:
        print(f"emolive ctl: cannot reach the session at {ws_url(args.url, args.session)}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
