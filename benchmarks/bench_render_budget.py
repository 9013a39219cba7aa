"""A slow renderer end to end with a fixed render budget and with `render_budget_s: auto`.

The real server app and aiortc client peers of `emolive bench` (profiler/bench.py: real audio model,
VP8 + Opus on loopback, frame marks read back at the receiver), one session per run, with the
diffusion renderer of a trained bundle forced onto the CPU (`serve` would fall back to meshwarp
without a GPU; its frames upscaled to twice their size, see Upscaled) or meshwarp; one run per
budget. Per run: frames rendered late / skipped / repeated, the A/V offset at the receiver,
server-added latency, voice delay, first frame, and the budget the session chose.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_render_budget.py --bundle build/diffusion/tiny \
        --budgets 0.02 auto --seconds 20 --json out/perf/render_budget.json
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _budget(text: str):
    return text if text == "auto" else float(text)


class Upscaled:
    """A renderer's frames at twice the size: the bench's frame marks need 320 px of width, a tiny
    diffusion bundle draws 256 (and 512 is what a session streams by default)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.size = (2 * inner.size[0], 2 * inner.size[1])

    def render(self, state):
        import cv2

        return cv2.resize(self.inner.render(state), (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)

    def close(self) -> None:
        getattr(self.inner, "close", lambda: None)()


def _parts(args, fps: int):
    from engine.renderers import create
    from streaming.parts import real_parts

    base = real_parts("meshwarp", fps=fps)
    if args.bundle is None:
        return base
    return dataclasses.replace(base, renderer_factory=lambda avatar: Upscaled(create(
        "diffusion", args.bundle, device="cpu", steps=args.steps, threads=1)))


async def one(args, budget, audio: str, workdir: Path) -> dict:
    from streaming import server
    from profiler.bench import Bench
    from streaming.config import load_config

    cfg = load_config(None, ice_loopback=True, port=0, max_sessions=1, session_idle_timeout_s=120.0,
                      render_budget_s=budget, render_threads=1)
    parts = _parts(args, cfg.fps)
    create_app = server.create_app
    server.create_app = lambda config, p=None, source=None: create_app(config, p or parts, source)
    try:
        bargs = types.SimpleNamespace(audio_rx_buffer="shallow", warmup=args.warmup, seconds=args.seconds)
        async with Bench(bargs, cfg, audio, workdir) as b:
            fig = await b.round(1)
    finally:
        server.create_app = create_app
    s = fig["per_session"][0]
    return {"render_budget_s": budget, "render_budget": s["render_budget"],
            "fps": fig["fps"], "frames_sent": s["frames_sent"], "frames_late": s["frames_late"],
            "frames_skipped": fig["drops"]["skipped"], "frames_repeated": fig["drops"]["repeated"],
            "av_offset_ms": fig["av_offset_ms"], "e2e_ms": {k: fig["e2e_ms"][k] for k in ("p50", "p95")},
            "voice_delay_at_placement_ms": s["voice_delay_at_placement_ms"], "first_frame_ms": fig["first_frame_ms"],
            "render_ms": {k: fig["stages"].get("render", {}).get(k) for k in ("p50_ms", "p95_ms", "p99_ms")},
            "load_average": fig["load_average"]}


async def run(args) -> list[dict]:
    from profiler.environment import speech_file

    workdir = Path(tempfile.mkdtemp(prefix="emolive-budget-"))
    audio, _ = speech_file(args.audio, workdir)
    out = []
    for budget in args.budgets:
        r = await one(args, budget, audio, workdir)
        out.append(r)
        av = r["av_offset_ms"] or {}
        print(f"budget {budget}: chose {r['render_budget']['budget_ms']} ms; late {r['frames_late']}, skipped "
              f"{r['frames_skipped']}, repeated {r['frames_repeated']} of {r['frames_sent']} sent; A/V offset "
              f"p50 {av.get('p50')} / p95 {av.get('p95')} ms; e2e p50 {r['e2e_ms']['p50']} ms; render p50 "
              f"{r['render_ms']['p50_ms']} ms", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", help="diffusion bundle, rendered on the CPU (default: meshwarp, default avatar)")
    p.add_argument("--steps", type=int, help="diffusion sampling steps (default: the bundle's)")
    p.add_argument("--budgets", nargs="+", type=_budget, default=[0.02, "auto"])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--audio", help="speech file (default: LibriSpeech from ../shared)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    results = asyncio.run(run(args))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": " ".join(["benchmarks/bench_render_budget.py", *(argv if argv is not None else sys.argv[1:])]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
