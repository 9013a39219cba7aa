"""Session churn: N sessions opened and closed one after another against the real server process tree.

    .venv/bin/python benchmarks/bench_churn.py --sessions 200 --json out/perf/churn.json

Starts `python -m streaming.server --workers W` (default 2, a front and two
worker processes, like benchmarks/bench_capacity.py) on a free port. Each
session is an aiortc peer in this process: it sends real speech (a LibriSpeech
file from ../shared, chosen at random) for 1-3 s (random, seeded), decodes the
video it receives, then closes its peer connection, as a browser tab that is
closed does; the next session starts once /health says 0 sessions. Every
--every sessions it records, per server process (front and workers, from
/proc): RSS, open fds and threads, and the live sessions (/health).

Reported: the least-squares slope of the server's total RSS (all its
processes) over the samples after --warm sessions, the growth from the sample
at --warm to the last one, and fds and threads at --warm against the end.
Targets: slope <= 0.1 MiB per session, growth <= 20 MiB, fds back to their
warm value, threads at the end no more than the most seen in the first half of
the run (the server's executors are bounded pools that start their threads
as work first overlaps, which may be after --warm; a leak keeps adding
threads to the end). Exit status 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from profiler.environment import BenchError, git_rev, machine_info  # noqa: E402

from bench_capacity import _free_port, _get, _tree, start_server, stop_server, write_outputs  # noqa: E402

SLOPE_MAX_MIB = 0.1  # per session, after the warm-up
GROWTH_MAX_MIB = 20.0
SPEECH_DIR = "data/speech/librispeech"
CLOSE_TIMEOUT_S = 60.0  # the server sees the peer leave (DTLS close, else ICE consent: 30 s)


def _proc(pid: int) -> dict | None:
    """RSS (MiB), threads and open fds of one process, from /proc."""
    try:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
        return {"rss_mib": round(int(status["VmRSS"].split()[0]) / 1024.0, 1),
                "threads": int(status["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd"))}
    except (OSError, KeyError, ValueError):
        return None


async def sample(url: str, server_pid: int, done: int) -> dict:
    health = json.loads(await _get(url + "/health"))
    roles = {server_pid: "front" if health.get("workers") else "server"}
    roles.update({w["pid"]: f"worker {w['slot']}" for w in health.get("workers") or [] if w.get("pid")})
    procs = {roles.get(p, f"pid {p}"): s for p in _tree(server_pid) if (s := _proc(p)) is not None}
    return {"sessions_done": done, "live_sessions": health.get("sessions"), "processes": procs,
            "rss_mib": round(sum(p["rss_mib"] for p in procs.values()), 1),
            "fds": sum(p["fds"] for p in procs.values()), "threads": sum(p["threads"] for p in procs.values()),
            "load": [round(x, 2) for x in os.getloadavg()]}


async def one_session(http, url: str, speech: str, seconds: float, connect_timeout: float) -> str:
    """Send `speech` for `seconds` once video has arrived, then close the peer; the session id."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer
    from aiortc.mediastreams import MediaStreamError

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    player = MediaPlayer(speech)
    pc.addTrack(player.audio)
    pc.addTransceiver("video", direction="recvonly")
    video = asyncio.Event()
    readers: list[asyncio.Task] = []

    async def read(track) -> None:  # decoded as a viewer would; audio read too, so nothing queues up
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            if track.kind == "video":
                video.set()

    pc.on("track", lambda track: readers.append(asyncio.ensure_future(read(track))))
    try:
        await pc.setLocalDescription(await pc.createOffer())
        async with http.post(url + "/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}) as r:
            answer = await r.json()
            if r.status != 200:
                raise BenchError(f"offer refused ({r.status}): {answer}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        await asyncio.wait_for(video.wait(), connect_timeout)
        await asyncio.sleep(seconds)
        return answer["session_id"]
    finally:
        player.audio.stop()
        await pc.close()
        for t in readers:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def until_idle(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while json.loads(await _get(url + "/health")).get("sessions"):
        if time.monotonic() > deadline:
            raise BenchError(f"the server still has sessions {timeout:.0f} s after the peer closed")
        await asyncio.sleep(0.2)


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def summarise(samples: list[dict], warm: int) -> dict:
    after = [s for s in samples if s["sessions_done"] >= warm]
    if not after:
        raise BenchError(f"no sample at or after session {warm}: run more sessions than --warm")
    first, last = after[0], samples[-1]
    k = slope([(s["sessions_done"], s["rss_mib"]) for s in after])
    growth = round(last["rss_mib"] - first["rss_mib"], 1)
    half = max(s["threads"] for s in samples if s["sessions_done"] <= samples[-1]["sessions_done"] / 2)
    result = {"warm_sessions": first["sessions_done"], "rss_slope_mib_per_session": None if k is None else round(k, 4),
              "rss_growth_mib": growth, "fds": {"warm": first["fds"], "end": last["fds"]},
              "threads": {"warm": first["threads"], "first_half_max": half, "end": last["threads"]}}
    result["ok"] = bool(k is not None and k <= SLOPE_MAX_MIB and growth <= GROWTH_MAX_MIB
                        and last["fds"] <= first["fds"] and last["threads"] <= half
                        and last["live_sessions"] == 0)
    return result


def table(samples: list[dict]) -> str:
    roles = sorted({r for s in samples for r in s["processes"]})
    head = ["sessions", "live", *(f"{r} RSS" for r in roles), "total RSS (MiB)", "fds", "threads", "load 1m"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in samples:
        rss = [f"{s['processes'][r]['rss_mib']:.1f}" if r in s["processes"] else "-" for r in roles]
        rows.append("| " + " | ".join([str(s["sessions_done"]), str(s["live_sessions"]), *rss, f"{s['rss_mib']:.1f}",
                                       str(s["fds"]), str(s["threads"]), f"{s['load'][0]:.2f}"]) + " |")
    return "\n".join(rows) + "\n"


def speech_files(explicit: list[str] | None) -> list[str]:
    if explicit:
        return explicit
    from engine.measure import shared_dir

    shared = shared_dir()
    found = sorted(str(p) for p in (Path(shared) / SPEECH_DIR).glob("*.wav")) if shared else []
    if not found:
        raise BenchError(f"no speech: ../shared/{SPEECH_DIR} is absent; pass --audio FILE")
    return found


async def run(args) -> dict:
    import aiohttp

    from streaming.loopback import include_loopback_candidates

    include_loopback_candidates()
    speech = speech_files(args.audio)
    rnd = random.Random(args.seed)
    url = f"http://127.0.0.1:{_free_port()}"
    server = await start_server(url, args.workers, args.max_sessions, args.config, args.start_timeout)
    samples: list[dict] = []
    try:
        samples.append(await sample(url, server.pid, 0))
        async with aiohttp.ClientSession() as http:
            for i in range(1, args.sessions + 1):
                await one_session(http, url, rnd.choice(speech), rnd.uniform(1.0, 3.0), args.connect_timeout)
                await until_idle(url, CLOSE_TIMEOUT_S)
                if i % args.every == 0 or i == args.sessions:
                    samples.append(s := await sample(url, server.pid, i))
                    print(f"{i:4d} sessions: RSS {s['rss_mib']:.1f} MiB, fds {s['fds']}, threads {s['threads']}, "
                          f"live {s['live_sessions']}, load {s['load'][0]:.2f}", flush=True)
    finally:
        await stop_server(server)
    return {"summary": summarise(samples, args.warm), "samples": samples, "workers": args.workers,
            "seed": args.seed, "speech": [os.path.basename(p) for p in speech], "command": " ".join(sys.argv),
            "git_rev": git_rev(), "machine": machine_info(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--workers", default="2", help="as for emolive serve (a number or auto)")
    p.add_argument("--max-sessions", type=int, default=4, help="the server's (serve's default)")
    p.add_argument("--warm", type=int, default=20, help="sessions before the slope and growth are counted")
    p.add_argument("--every", type=int, default=10, help="sample the server every this many sessions")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--audio", action="append", help="speech file(s) to send (default: LibriSpeech from ../shared)")
    p.add_argument("--config", help="server settings YAML")
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--start-timeout", type=float, default=180.0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except BenchError as e:
        print(f"bench_churn: {e}", file=sys.stderr)
        return 2
    write_outputs(result, table(result["samples"]), args.json, None)
    s = result["summary"]
    print(f"after {s['warm_sessions']} sessions: RSS slope {s['rss_slope_mib_per_session']} MiB/session "
          f"(target <= {SLOPE_MAX_MIB}), growth {s['rss_growth_mib']} MiB (<= {GROWTH_MAX_MIB}), fds "
          f"{s['fds']['warm']} -> {s['fds']['end']}, threads {s['threads']['warm']} -> {s['threads']['end']}; "
          f"load {os.getloadavg()[0]:.2f}; {result['git_rev']}")
    return 0 if s["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
