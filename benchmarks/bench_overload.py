"""Past capacity: what each session gets when `emolive serve` carries more sessions than it can hold.

    .venv/bin/python benchmarks/bench_overload.py --workers 2 --sessions 8 --seconds 15 --warmup 8 --runs 2 \
        --json out/perf/overload.json --markdown out/perf/overload.md

For each run, the same K light viewer peers (benchmarks/light_peers.py, offers refused are noted) against a
fresh server with `overload_policy: frame_rate` (engine/overload.py: every session of an overloaded worker
shows fewer frames, alike) and then with `none` (full rate, frames repeated when late). Per session: the
frames sent per second, the frames per second that showed a new render (a repeat or a blank does not),
the rate its worker had chosen at the end, the audio frames the viewer received per second (50: every
20 ms frame), e2e p95; per step the offers refused, the server's CPU and the load average.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_capacity import step, write_outputs  # noqa: E402
from profiler.environment import BenchError, git_rev, machine_info, speech_file  # noqa: E402

POLICIES = ("frame_rate", "none")


def _summary(s: dict) -> dict:
    per = s["per_session"]
    shown = [x["fps_shown"] for x in per]
    audio = [x["audio_frames_per_s"] for x in per if x.get("audio_frames_per_s") is not None]
    return {"sessions": len(per), "refused": len(s["refused"]), "fps_shown_min": min(shown, default=0.0),
            "fps_shown_max": max(shown, default=0.0), "audio_min": min(audio, default=0.0),
            "server_cpu_pct": s["server_cpu_pct"], "load": s["load_average"]}


def _table(rows: list[tuple[int, str, dict]]) -> str:
    out = ["| run | policy | sessions (refused) | per session: fps sent / fps shown / rate chosen | "
           "fps shown min-max | audio frames/s received, min | e2e p95 (ms) | server CPU (% of a core) | load |",
           "|---|---|---|---|---|---|---|---|---|"]
    for run, policy, s in rows:
        sm = _summary(s)
        per = "; ".join(f"{x['fps_sent']:.1f} / {x['fps_shown']:.1f} / {x.get('video_fps') or '?'}"
                        for x in sorted(s["per_session"], key=lambda x: x["fps_shown"]))
        e2e = ", ".join(f"{x['e2e_ms_p95']:.0f}" for x in s["per_session"] if x.get("e2e_ms_p95") is not None)
        loads = [m[0] for m in s["load_average"].values() if m]
        load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
        out.append(f"| {run} | {policy} | {sm['sessions']} ({sm['refused']}) | {per} | {sm['fps_shown_min']}-"
                   f"{sm['fps_shown_max']} | {sm['audio_min']} | {e2e} | {s['server_cpu_pct']} | {load} |")
    return "\n".join(out) + "\n"


async def main_async(args) -> dict:
    rows = []
    with tempfile.TemporaryDirectory(prefix="emolive-overload-") as tmp:
        audio, described = speech_file(args.audio, Path(tmp))
        for run in range(1, args.runs + 1):
            for policy in POLICIES:
                config = Path(tmp) / f"{policy}.yaml"
                config.write_text(f"overload_policy: {policy}\noverload_min_fps: {args.min_fps}\n", encoding="utf-8")
                step_args = argparse.Namespace(workers=args.workers, config=str(config), client="light",
                                               start_timeout=args.start_timeout, warmup=args.warmup,
                                               seconds=args.seconds, fps=args.fps, max_drop_pct=1.0)
                s = await step(step_args, args.sessions, audio, Path(tmp),
                               ("--allow-refused", "--stagger", str(args.stagger)))
                sm = _summary(s)
                print(f"run {run}, {policy}: {sm['sessions']} sessions ({sm['refused']} refused), fps shown "
                      f"{sm['fps_shown_min']}-{sm['fps_shown_max']}, audio min {sm['audio_min']}/s, "
                      f"server CPU {s['server_cpu_pct']} %", flush=True)
                rows.append((run, policy, s))
    return {"rows": [{"run": r, "policy": p, **s} for r, p, s in rows], "sessions": args.sessions,
            "stagger_s": args.stagger,
            "workers": args.workers, "fps": args.fps, "min_fps": args.min_fps, "input": described,
            "command": " ".join(sys.argv), "git_rev": git_rev(), "machine": machine_info(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def markdown(result: dict) -> str:
    head = (f"{result['sessions']} light viewer sessions offered to {result['workers']} worker(s) at "
            f"{result['fps']} fps (overload_min_fps {result['min_fps']}), git {result['git_rev']}\n\n")
    return head + _table([(r["run"], r["policy"], r) for r in result["rows"]])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="2")
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=8.0,
                   help="after the last peer connected: time for the policy to settle before the span")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--min-fps", type=float, default=12.5)
    p.add_argument("--stagger", type=float, default=0.3,
                   help="seconds between one viewer's first frames and the next viewer's offer: longer lets the "
                   "policy settle between arrivals, so later offers meet a process at its floor")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--audio")
    p.add_argument("--start-timeout", type=float, default=180.0)
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    if args.runs < 1 or args.sessions < 1:
        p.error("--runs and --sessions must be at least 1")
    try:
        result = asyncio.run(main_async(args))
    except BenchError as e:
        print(f"bench_overload: {e}", file=sys.stderr)
        return 2
    write_outputs(result, markdown(result), args.json, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
