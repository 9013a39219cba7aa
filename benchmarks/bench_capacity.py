"""Capacity of `emolive serve` as deployed: K sessions against the real server process(es), K stepped up.

    .venv/bin/python benchmarks/bench_capacity.py --workers 2 --max-sessions 6 --seconds 15 --warmup 5 \
        --json out/perf/capacity_workers.json --markdown out/perf/capacity_workers.md

With `--client light` the viewers are benchmarks/light_peers.py (no decoding,
speech encoded once): stand-ins for remote viewers whose decoding is not this
machine's work. Unlike `emolive bench` (which runs the server inside the bench to read every
stage), this starts `python -m streaming.server --workers W` as its own
process tree and drives it with the bench's client peers
(profiler/client.py, another process: K aiortc peers that send real
speech and receive video and audio on loopback). Per step it reads each
session's counters from /metrics at the client's MEASURE_START and
MEASURE_END, and the CPU time of the server processes (front + workers) and
of the client from /proc. A step holds when every session sent >= 95 % of
the target fps and at most --max-drop-pct of its frames were dropped or
repeated, in the server's own counters; the frames the client received are
reported next to them. `--runs N` repeats the whole search N times (a fresh
server for every step of every run) and reports each run and the minimum over
runs, the capacity figure: the sessions held in every run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profiler.environment import BenchError, git_rev, machine_info, speech_file  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
COUNTERS = ("frames_sent", "frames_dropped", "frames_repeated", "frames_missed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """pid and its descendants (the front's workers)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])  # utime + stime of the process (all its threads)
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


_LINE = re.compile(r'^emolive_session_(\w+)\{(?:worker="(\d+)",)?session="([^"]+)"\} (\S+)$')


def _per_session(metrics: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for line in metrics.splitlines():
        m = _LINE.match(line)
        if m:
            key, worker, sid, value = m.groups()
            out.setdefault(sid, {})[key] = float(value)
            if worker is not None:
                out[sid]["worker"] = int(worker)
    return out


async def _get(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
            return await r.text()


async def _sessions_metrics(url: str, k: int, tries: int = 4) -> tuple[float, dict[str, dict[str, float]]]:
    """The per-session figures of /metrics and when they were read. The front leaves out a worker that did not
    answer it in time (a loaded machine): read again, up to `tries` times, until all k sessions are there."""
    for attempt in range(tries):
        t = time.monotonic()
        per_session = _per_session(await _get(url + "/metrics"))
        if len(per_session) >= k or attempt == tries - 1:
            return t, per_session
        await asyncio.sleep(0.25)


async def start_server(url: str, workers: str, max_sessions: int, config: str | None, start_timeout: float,
                       log=asyncio.subprocess.DEVNULL):
    """`python -m streaming.server` (front + workers) on loopback at url's port, its own process tree;
    returned once /health says ok (BenchError if it exits or does not come up in start_timeout). Its
    stdout and stderr go to log (a file object) if given."""
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streaming.server", "--port", url.rsplit(":", 1)[1], "--ice-loopback", "--workers",
        str(workers), "--max-sessions", str(max_sessions), *(["--config", config] if config else []),
        cwd=ROOT, stdout=log, stderr=log)
    try:
        for _ in range(int(start_timeout / 0.5)):
            try:
                if json.loads(await _get(url + "/health")).get("status") == "ok":
                    return server
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if server.returncode is not None:
                raise BenchError(f"the server exited with code {server.returncode} while starting")
            await asyncio.sleep(0.5)
        raise BenchError("the server did not start")
    except BaseException:
        await stop_server(server)
        raise


async def stop_server(server) -> None:
    """Terminate the server (the front ends its workers), killed if it has not exited after 30 s."""
    if server.returncode is None:
        server.terminate()
        try:
            await asyncio.wait_for(server.wait(), 30)
        except asyncio.TimeoutError:
            server.kill()


async def step(args, k: int, audio: str, workdir: Path, client_args: tuple[str, ...] = ()) -> dict:
    url = f"http://127.0.0.1:{_free_port()}"
    server = await start_server(url, args.workers, max(k, 1), args.config, args.start_timeout)
    try:
        out = workdir / f"client_{k}.json"
        peers = (["-m", "profiler.client"] if args.client == "full"
                 else [str(ROOT / "benchmarks" / "light_peers.py")])
        client = await asyncio.create_subprocess_exec(
            sys.executable, *peers, "--url", url, "--sessions", str(k), "--audio", audio,
            "--warmup", str(args.warmup), "--seconds", str(args.seconds), "--out", str(out), *client_args, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        marks: dict[str, dict] = {}
        load = {}
        while True:
            line = (await client.stdout.readline()).decode().strip()
            if not line:
                break
            word = line.split()[0]
            if word in ("MEASURE_START", "MEASURE_END"):
                pids = _tree(server.pid)
                t, per_session = await _sessions_metrics(url, k)
                marks[word] = {"t": t, "metrics": per_session,
                               "server_cpu_s": _cpu_s(pids), "client_cpu_s": _cpu_s([client.pid]),
                               "server_processes": len(pids)}
                load[word] = os.getloadavg()
        await client.wait()
        if set(marks) != {"MEASURE_START", "MEASURE_END"}:
            raise BenchError(f"the client peers did not complete (exit {client.returncode})")
    finally:
        await stop_server(server)
    a, b = marks["MEASURE_START"], marks["MEASURE_END"]
    span = b["t"] - a["t"]
    sessions = []
    for sid, end in b["metrics"].items():
        start = a["metrics"].get(sid, {})
        d = {c: end.get(c, 0.0) - start.get(c, 0.0) for c in COUNTERS}
        sent = d["frames_sent"]
        sessions.append({"session": sid, "worker": end.get("worker"), "fps_sent": round(sent / span, 2),
                         # frames sent that showed a new render (not a repeat or a blank): what a viewer sees move
                         "fps_shown": round((sent - d["frames_missed"]) / span, 2), "video_fps": end.get("video_fps"),
                         "dropped": int(d["frames_dropped"]), "repeated": int(d["frames_repeated"]),
                         "drop_pct": round(100.0 * (d["frames_dropped"] + d["frames_repeated"]) / max(sent, 1), 2),
                         "e2e_ms_p95": end.get("e2e_ms_p95"), "e2e_ms_p50": end.get("e2e_ms_p50"),
                         # the session's start, before the measured span: what a cold process pays shows here
                         "first_frame_ms": end.get("first_frame_ms"), "start_frames_sent": int(start.get(
                             "frames_sent", 0)), "start_dropped_repeated": int(start.get("frames_dropped", 0)
                                                                              + start.get("frames_repeated", 0))})
    peers = json.loads(out.read_text())
    received = _received_fps(peers, a["t"], b["t"])
    audio = _received_audio(peers, a["t"], b["t"])
    for x in sessions:
        x["audio_frames_per_s"] = audio.get(x["session"])
    fps_min = min((s["fps_sent"] for s in sessions), default=0.0)
    drop_max = max((s["drop_pct"] for s in sessions), default=100.0)
    holds = len(sessions) == k and fps_min >= 0.95 * args.fps and drop_max <= args.max_drop_pct
    return {"sessions": k, "holds": holds, "fps_sent_min": fps_min, "drop_pct_max": drop_max,
            "fps_received": received, "seconds": round(span, 2),
            "server_cpu_pct": round(100.0 * (b["server_cpu_s"] - a["server_cpu_s"]) / span, 1),
            "client_cpu_pct": round(100.0 * (b["client_cpu_s"] - a["client_cpu_s"]) / span, 1),
            "refused": [p["refused"] for p in peers["peers"] if p.get("refused")],
            "server_processes": b["server_processes"], "load_average": {"start": load.get("MEASURE_START"),
                                                                       "end": load.get("MEASURE_END")},
            "per_session": sessions}


def _received_fps(client: dict, t0: float, t1: float) -> list[float]:
    return [round(sum(1 for v in p["video"] if t0 <= v[0] <= t1) / (t1 - t0), 2) for p in client["peers"]
            if not p.get("refused")]


def _received_audio(client: dict, t0: float, t1: float) -> dict[str, float]:
    """Audio frames each peer received per second over the span (50 = every 20 ms frame), by the /metrics
    session label (the id's first 8 characters). Peers that do not keep arrival times are left out."""
    return {p["session_id"][:8]: round(sum(1 for a in p["audio"] if t0 <= a[0] <= t1) / (t1 - t0), 2)
            for p in client["peers"] if p.get("session_id") and isinstance(p.get("audio"), list)}


def _steps_table(steps: list[dict]) -> str:
    rows = ["| sessions | fps sent, min | dropped + repeated, max | fps received | server CPU (% of one core) "
            "| client CPU | e2e p95 per session (ms) | before the span: dropped + repeated, first frame (ms), worst "
            "| held |", "|---|---|---|---|---|---|---|---|---|"]
    for s in steps:
        e2e = ", ".join(f"{x['e2e_ms_p95']:.0f}" for x in s["per_session"] if x.get("e2e_ms_p95") is not None)
        start = [x for x in s["per_session"] if "start_dropped_repeated" in x]
        first = [x["first_frame_ms"] for x in start if x.get("first_frame_ms") is not None]
        worst = max(start, key=lambda x: x["start_dropped_repeated"], default=None)
        before = (f"{worst['start_dropped_repeated']} of {worst['start_frames_sent']}, {max(first, default=0):.0f}"
                  if worst else "")
        rows.append(f"| {s['sessions']} | {s['fps_sent_min']} | {s['drop_pct_max']} % | "
                    f"{min(s['fps_received'], default=0)}-{max(s['fps_received'], default=0)} | "
                    f"{s['server_cpu_pct']} | {s['client_cpu_pct']} | {e2e} | {before} | "
                    f"{'yes' if s['holds'] else 'no'} |")
    return "\n".join(rows) + "\n"


def _load_span(steps: list[dict]) -> str:
    """The 1-minute load averages the run's steps saw at their measurement marks, lowest-highest."""
    loads = [m[0] for s in steps for m in s["load_average"].values() if m]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"


def markdown(result: dict) -> str:
    runs = result.get("runs") or [{"capacity": result["capacity"], "steps": result["steps"]}]
    head = (f"Capacity: {result['capacity']} session(s) at {result['fps']} fps with {result['workers']} worker(s), "
            f"{result['client']} viewer peers")
    if len(runs) == 1:
        return head + "\n\n" + _steps_table(runs[0]["steps"])
    parts = [head + f" (the minimum over {len(runs)} runs: "
             + ", ".join(str(r["capacity"]) for r in runs) + ")\n"]
    for i, r in enumerate(runs, 1):
        parts.append(f"Run {i}: {r['capacity']} session(s) held (load average {_load_span(r['steps'])})\n\n"
                     + _steps_table(r["steps"]))
    return "\n".join(parts)


async def search(args, audio: str, workdir: Path) -> dict:
    """One capacity search: steps of K sessions, each against a fresh server, up from 1 until one does not
    hold (or the one --sessions step)."""
    steps = []
    ks = [args.sessions] if args.sessions else range(1, args.max_sessions + 1)
    for k in ks:
        s = await step(args, k, audio, workdir)
        print(f"{k} session(s): fps sent min {s['fps_sent_min']}, dropped+repeated max {s['drop_pct_max']} %, "
              f"server CPU {s['server_cpu_pct']} %, client CPU {s['client_cpu_pct']} %, "
              f"{'holds' if s['holds'] else 'does not hold'}", flush=True)
        steps.append(s)
        if not s["holds"] and not args.sessions:
            break
    held = [s["sessions"] for s in steps if s["holds"]]
    return {"capacity": max(held, default=0), "steps": steps}


async def main_async(args) -> dict:
    import tempfile

    runs = []
    with tempfile.TemporaryDirectory(prefix="emolive-capacity-") as tmp:
        audio, described = speech_file(args.audio, Path(tmp))
        for i in range(args.runs):
            if args.runs > 1:
                print(f"run {i + 1} of {args.runs}", flush=True)
            runs.append(await search(args, audio, Path(tmp)))
            if args.runs > 1:
                print(f"run {i + 1}: {runs[-1]['capacity']} session(s) held", flush=True)
    # The figure is the minimum over runs: a capacity that one run of several did not hold is not one.
    worst = min(runs, key=lambda r: r["capacity"])
    return {"capacity": worst["capacity"], "capacity_per_run": [r["capacity"] for r in runs],
            "workers": args.workers, "client": args.client, "fps": args.fps,
            "steps": worst["steps"], "runs": runs,
            "input": described, "command": " ".join(sys.argv), "git_rev": git_rev(), "machine": machine_info(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="1", help="as for emolive serve (a number or auto)")
    p.add_argument("--sessions", type=int, help="measure this many sessions only (default: step up from 1)")
    p.add_argument("--max-sessions", type=int, default=6)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--fps", type=int, default=25, help="the server's fps (from its config)")
    p.add_argument("--max-drop-pct", type=float, default=1.0)
    p.add_argument("--config", help="server settings YAML")
    p.add_argument("--client", choices=("full", "light"), default="full",
                   help="viewer peers: full (decode everything, as bench_client) or light (count frames, send "
                   "pre-encoded speech: stands in for remote viewers; benchmarks/light_peers.py)")
    p.add_argument("--audio")
    p.add_argument("--runs", type=int, default=1,
                   help="run the whole search this many times (a fresh server for every step) and report each "
                   "run and the minimum over runs")
    p.add_argument("--start-timeout", type=float, default=180.0)
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    try:
        result = asyncio.run(main_async(args))
    except BenchError as e:
        print(f"bench_capacity: {e}", file=sys.stderr)
        return 2
    write_outputs(result, markdown(result), args.json, args.markdown)
    return 0


def write_outputs(result: dict, text: str, json_path: str | None, markdown_path: str | None) -> None:
    """The result to --json, the markdown to --markdown (their folders made) and to stdout."""
    for path, content in ((json_path, json.dumps(result, indent=1)), (markdown_path, text)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    raise SystemExit(main())
