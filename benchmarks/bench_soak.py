"""Long runs: K sessions with speech looping against the real server process tree for M minutes, per 10-s window.

    .venv/bin/python benchmarks/bench_soak.py --minutes 10 --sessions 2 --json out/perf/soak_10min.json

Starts `python -m streaming.server --workers W` as its own process tree
(benchmarks/bench_capacity.py's start_server) with `bench_marks: true`: every
session stamps its frame ids into the pixels and mixes an audio mark in at the
first sample of every 25th frame (streaming/frame_marks.py,
streaming/audio_marks.py). The bench's client peers
(profiler/client.py --window, another process) send the speech file
looping, decode video and audio and report what they received every window.

Per window and session: the A/V offset at the receiver, the median over the
window's marks (bench_figures' pairing of marks and frame ids; positive: the
picture is late) of decoded frame k's return time minus the return time of the
decoded audio holding the mark at frame k's first sample (the client peer's
stock aiortc audio receive path is in it: in one run it held the audio ~180 ms
longer from its first 20 s to its end, the packets' arrival unchanged), the same at RTP arrival (before the client's buffers:
the server's part) and on the timeline (frame k's video pts against the mark's
audio pts: whole frame periods when a frame went out late, nothing else); fps
received, frame-id gaps and repeats at the receiver; fps sent, frames dropped
(renders skipped) and repeated from the server's /metrics; the RSS of every
server process (front, workers), their CPU and the load average. At the end,
against the targets: the drift of the offset at RTP arrival (median over the
first minute against the median over the last) within 5 ms; the timeline's
median slip off the frame grid within 1 ms in every window; the server's RSS
grows at most 20 MiB after minute 1 (all its processes together); no
sustained drops (two windows in a row in which a session had more than 1 % of
its frames dropped or repeated, at the server or as frame-id gaps at the
receiver). Runs shorter than 3 minutes compare their first and last thirds.
After the client peers have closed, the server must be back at 0 sessions.

The parts, beside this file: soak_received.py (what each client peer received,
read), soak_figures.py (the windows, minutes and summary against the targets),
soak_report.py (the printed rows and the markdown).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from profiler.environment import BenchError, git_rev, machine_info, speech_file  # noqa: E402  (before numpy)

from bench_capacity import (_cpu_s, _free_port, _get, _per_session, _tree, start_server, stop_server,  # noqa: E402
                            write_outputs)
from soak_figures import DRIFT_MAX_MS, DROP_PCT, RSS_GROWTH_MAX_MIB, SUSTAINED, span_figures, summarise  # noqa: E402
from soak_received import SLIP_MAX_MS, Received  # noqa: E402
from soak_report import _row, markdown  # noqa: E402

CLOSE_TIMEOUT_S = 45.0  # the server closes a session whose peer left (ICE/DTLS ends; 30 s idle at most)


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


async def _snapshot(url: str, server_pid: int, t: float) -> dict:
    """The server now: per-session counters (/metrics), sessions (/health), RSS and CPU of each of its processes."""
    health = json.loads(await _get(url + "/health"))
    roles = {server_pid: "front" if health.get("workers") else "server"}
    for w in health.get("workers") or []:
        if w.get("pid"):
            roles[w["pid"]] = f"worker {w['slot']}"
    pids = _tree(server_pid)
    rss = {roles.get(p, f"pid {p}"): _rss_mib(p) for p in pids}
    return {"t": t, "metrics": _per_session(await _get(url + "/metrics")), "sessions": health.get("sessions"),
            "workers": {r: p for p, r in roles.items()}, "rss_mib": {r: round(v, 1) for r, v in rss.items() if v},
            "cpu_s": _cpu_s(pids), "load": os.getloadavg()}


async def _server_config(path: str | None, out: Path) -> str:
    import yaml

    settings = {}
    if path:
        settings = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    settings["bench_marks"] = True
    out.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return str(out)


async def soak(args) -> dict:
    seconds = 60.0 * args.minutes
    with tempfile.TemporaryDirectory(prefix="emolive-soak-") as tmp:
        tmp = Path(tmp)
        audio, described = speech_file(args.audio, tmp)
        config = await _server_config(args.config, tmp / "server.yaml")
        url = f"http://127.0.0.1:{_free_port()}"
        log_path = Path(args.server_log) if args.server_log else tmp / "server.log"
        with open(log_path, "wb") as log:
            server = await start_server(url, args.workers, args.sessions, config, args.start_timeout, log=log)
            try:
                result = await _drive(args, url, server, audio, seconds, tmp)
            except BenchError as e:
                tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
                raise BenchError(f"{e}\n--- server log (end) ---\n{tail}") from e
            finally:
                await stop_server(server)
        result["server_exit"] = server.returncode
    result.update({"input": described, "command": " ".join(sys.argv), "git_rev": git_rev(),
                   "machine": machine_info(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return result


async def _drive(args, url: str, server, audio: str, seconds: float, tmp: Path) -> dict:
    out = tmp / "client.json"
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "profiler.client", "--url", url, "--sessions", str(args.sessions),
        "--audio", audio, "--warmup", str(args.warmup), "--seconds", str(seconds), "--window", str(args.window),
        "--out", str(out), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        limit=1 << 26)  # a WINDOW line holds every frame of the window
    snaps: list[dict] = []
    windows: list[dict] = []
    received: dict[str, Received] = {}
    errors: list[str] = []
    load_start = os.getloadavg()
    try:
        while line := (await client.stdout.readline()).decode():
            word, _, rest = line.strip().partition(" ")
            if word == "SESSION":
                received[rest] = Received(rest)
            elif word == "ERROR":
                errors.append(rest)
            elif word in ("MEASURE_START", "WINDOW"):
                t, _, data = rest.partition(" ")
                snaps.append(await _snapshot(url, server.pid, float(t)))
                if word == "WINDOW":
                    for p in json.loads(data)["peers"]:
                        if p["session_id"] in received:
                            received[p["session_id"]].add(p["video"], p["audio_marks"])
                    # the marks of a window's last moments may come with the next: its row is provisional
                    windows.append(span_figures(snaps, len(snaps) - 2, len(snaps) - 1, received, args.fps))
                    print(_row(windows[-1]), flush=True)
        await client.wait()
    finally:
        if client.returncode is None:
            client.kill()
            await client.wait()
    if errors or len(snaps) < 2 or not out.exists():
        raise BenchError(f"the client peers did not complete (exit {client.returncode}): {'; '.join(errors)}")
    # the final figures from everything the peers recorded (the marks found after the last window included)
    if args.client_json:
        Path(args.client_json).write_bytes(out.read_bytes())
    final = {p["session_id"]: p for p in json.loads(out.read_text())["peers"] if p.get("session_id")}
    for sid in received:
        if sid in final:
            received[sid] = Received(sid)
            received[sid].add(final[sid]["video"], final[sid]["audio_marks"])
            received[sid].add_rtp(final[sid].get("rtp") or {})
            received[sid].set_timeline_zero(snaps[0]["t"], snaps[-1]["t"], args.fps)
    windows = [span_figures(snaps, k, k + 1, received, args.fps) for k in range(len(snaps) - 1)]
    per_minute = max(1, round(60.0 / args.window))
    minutes = [span_figures(snaps, k, min(k + per_minute, len(snaps) - 1), received, args.fps)
               for k in range(0, len(snaps) - 1, per_minute)]
    summary = summarise(snaps, windows, received, args.fps)
    bookkeeping = await _bookkeeping(url, server, snaps, received)
    summary["checks"]["bookkeeping"] = bookkeeping["intact"]
    summary["pass"] = all(summary["checks"].values())
    return {"settings": {"minutes": args.minutes, "sessions": args.sessions, "workers": args.workers,
                         "window_s": args.window, "warmup_s": args.warmup, "fps": args.fps},
            "targets": {"drift_max_ms": DRIFT_MAX_MS, "timeline_slip_max_ms": SLIP_MAX_MS,
                        "rss_growth_max_mib": RSS_GROWTH_MAX_MIB,
                        "drop_window_pct": DROP_PCT, "sustained_windows": SUSTAINED},
            "load_average": {"start": [round(x, 2) for x in load_start],
                             "end": [round(x, 2) for x in os.getloadavg()]},
            "summary": summary, "bookkeeping": bookkeeping, "minutes": minutes, "windows": windows}


async def _bookkeeping(url: str, server, snaps: list[dict], received: dict[str, Received]) -> dict:
    """Sessions the server held in every window; once the peers have closed, how long until it holds none."""
    t = time.monotonic()
    after = None
    while time.monotonic() - t < CLOSE_TIMEOUT_S and server.returncode is None:
        after = json.loads(await _get(url + "/health")).get("sessions")
        if after == 0:
            break
        await asyncio.sleep(0.25)
    held = [s["sessions"] for s in snaps]
    seen = sorted({sid for s in snaps for sid in s["metrics"]})
    workers = [s["workers"] for s in snaps]
    same_workers = all(w == workers[0] for w in workers)
    intact = (all(h == len(received) for h in held) and seen == sorted(s[:8] for s in received) and after == 0
              and same_workers)
    return {"sessions_per_window": held, "sessions_in_metrics": len(seen), "client_sessions": len(received),
            "sessions_after_close": after, "closed_after_s": round(time.monotonic() - t, 2),
            "worker_processes_unchanged": same_workers, "intact": intact}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--sessions", type=int, default=2)
    p.add_argument("--workers", default="auto", help="as for emolive serve (a number or auto)")
    p.add_argument("--window", type=float, default=10.0, help="seconds per reported window")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds after every peer has video, before measuring")
    p.add_argument("--fps", type=int, default=25, help="the server's fps (from its config)")
    p.add_argument("--config", help="server settings YAML (bench_marks is switched on in a copy)")
    p.add_argument("--audio", help="speech to send, looping (default: the bench's LibriSpeech file)")
    p.add_argument("--start-timeout", type=float, default=180.0)
    p.add_argument("--server-log", help="keep the server's log here")
    p.add_argument("--client-json", help="keep what the client peers recorded here")
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.window <= 0 or args.sessions < 1 or args.minutes * 60 < 3 * args.window:
        p.error("--minutes, --window and --sessions must be positive, the run at least three windows long")
    try:
        result = asyncio.run(soak(args))
    except BenchError as e:
        print(f"bench_soak: {e}", file=sys.stderr)
        return 2
    write_outputs(result, markdown(result), args.json, args.markdown)
    return 0 if result["summary"]["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
