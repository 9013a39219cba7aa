"""What each WHEP viewer of one session costs: server CPU with 0, 1, 2, ... viewers of a WHIP session.

Starts `python -m streaming.server --workers 1` as its own process, publishes real speech to `/whip` from
an aiortc client in this process, then adds viewers one at a time (aiortc receivers that decode what
they get) and measures, for each count, the server process's CPU over `--seconds` and the frames each
viewer received. The session renders once whatever the count: what a viewer adds is its encoder, its
packets and their encryption.

    .venv/bin/python benchmarks/bench_whep.py [--viewers 4] [--seconds 10] [--json OUT] [--markdown OUT]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_capacity import _cpu_s, _free_port, start_server, stop_server  # noqa: E402  (before numpy)
from profiler.environment import speech_file  # noqa: E402

SDP = {"Content-Type": "application/sdp"}


async def _viewer(http, url: str, sid: str, counts: dict):
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tasks = []

    async def read(track):
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            counts[track.kind] += 1

    pc.on("track", lambda t: tasks.append(asyncio.ensure_future(read(t))))
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(f"{url}/whep/{sid}", data=pc.localDescription.sdp, headers=SDP) as r:
        if r.status != 201:
            raise RuntimeError(f"WHEP refused: {r.status} {await r.text()}")
        answer = await r.text()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc, tasks


async def bench(args) -> dict:
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer

    from streaming.loopback import include_loopback_candidates

    include_loopback_candidates()
    url = f"http://127.0.0.1:{_free_port()}"
    server = await start_server(url, "1", 2, None, args.start_timeout)
    workdir = tempfile.TemporaryDirectory(prefix="emolive-bench-whep-")
    rows, pcs = [], []
    try:
        async with aiohttp.ClientSession() as http:
            publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pcs.append(publisher)
            player = MediaPlayer(speech_file(args.audio, Path(workdir.name))[0], loop=True)
            publisher.addTransceiver(player.audio, direction="sendonly")
            await publisher.setLocalDescription(await publisher.createOffer())
            async with http.post(url + "/whip", data=publisher.localDescription.sdp, headers=SDP) as r:
                if r.status != 201:
                    raise RuntimeError(f"WHIP refused: {r.status} {await r.text()}")
                sid = r.headers["Location"].rsplit("/", 1)[1]
                answer = await r.text()
            await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            counts = []
            for n in range(args.viewers + 1):
                if n:
                    c = {"audio": 0, "video": 0}
                    pc, _ = await _viewer(http, url, sid, c)
                    pcs.append(pc)
                    counts.append(c)
                await asyncio.sleep(args.settle)
                before = [dict(c) for c in counts]
                t0, cpu0 = time.monotonic(), _cpu_s([server.pid])
                await asyncio.sleep(args.seconds)
                dt, cpu = time.monotonic() - t0, _cpu_s([server.pid]) - cpu0
                fps = [round((c["video"] - b["video"]) / dt, 1) for c, b in zip(counts, before)]
                rows.append({"viewers": n, "server_cpu_pct": round(100 * cpu / dt, 1), "viewer_fps": fps,
                             "load1": round(os.getloadavg()[0], 2)})
                print(f"{n} viewer(s): server CPU {rows[-1]['server_cpu_pct']} % of one core, fps {fps}, "
                      f"load {rows[-1]['load1']}", flush=True)
    finally:
        for pc in pcs:
            await pc.close()
        await stop_server(server)
        workdir.cleanup()
    base = rows[0]["server_cpu_pct"]
    per = [round(r["server_cpu_pct"] - p["server_cpu_pct"], 1) for p, r in zip(rows, rows[1:])]
    return {"rows": rows, "cpu_per_extra_viewer_pct": per, "no_viewer_cpu_pct": base,
            "command": " ".join([Path(sys.executable).name, *sys.argv]), "seconds": args.seconds}


def markdown(r: dict) -> str:
    lines = ["| viewers | server CPU (% of one core) | fps per viewer | load |", "|---|---|---|---|"]
    lines += [f"| {x['viewers']} | {x['server_cpu_pct']} | {', '.join(map(str, x['viewer_fps'])) or '-'} | "
              f"{x['load1']} |" for x in r["rows"]]
    return "\n".join(lines) + f"\n\nEach extra viewer: {r['cpu_per_extra_viewer_pct']} % of one core.\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--viewers", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0, help="measured per viewer count")
    p.add_argument("--settle", type=float, default=4.0, help="seconds after a viewer joins, before measuring")
    p.add_argument("--start-timeout", type=float, default=180.0)
    p.add_argument("--audio", help="the publisher's speech (default: LibriSpeech from ../shared, else espeak-ng)")
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    if not 0 <= args.viewers <= 16 or args.seconds <= 0:
        p.error("--viewers must be 0..16 and --seconds positive")
    r = asyncio.run(bench(args))
    text = markdown(r)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
