"""CPU per emolive avatar in a LiveKit agent's process: what one avatar job costs before LiveKit publishes it.

Run:  .venv/bin/python benchmarks/bench_livekit_avatar.py [--avatars 1 2] [--seconds 20] [--warmup 5]
          [--size 512] [--fps 25] [--runs 3] [--audio WAV] [--json OUT]

Each avatar is an EmoliveVideoGenerator (the real engine: audio model, emotion and idle layers, meshwarp)
fed the benches' real speech (a LibriSpeech clip from ../shared, profiler.environment) as 20 ms
rtc.AudioFrames at 24 kHz, at real-time pace and up to 0.3 s ahead, as an agent's
QueueAudioOutput does, and read at real-time pace as AvatarRunner's synchroniser reads it (each video frame
taken when it is due). Measured after the warm-up: the process's CPU time (every thread) over the wall time,
in % of one core, per avatar; the video frames yielded per second per avatar; the frames it was late for
(yielded after their due time + one frame period). LiveKit's own work, converting the frames and encoding
and sending them (libwebrtc, in its native library), needs a LiveKit server and is not measured: it comes on
top. BLAS is pinned to one thread, as `emolive serve` pins it. Reports every run and the minimum over runs,
with the load average before and after.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.blas import pin_blas_threads  # noqa: E402

pin_blas_threads()

import numpy as np  # noqa: E402

RATE, CHUNK = 24_000, 480
AHEAD_S = 0.3


def speech(path: str | None) -> tuple[np.ndarray, str]:
    """int16 mono at RATE of the benches' speech (profiler.environment.speech_file), and what it is."""
    import tempfile

    from engine.audio.io import read_audio_file
    from engine.audio.resample import resample
    from profiler.environment import speech_file

    with tempfile.TemporaryDirectory() as tmp:
        file, what = speech_file(path, Path(tmp))
        pcm, rate = read_audio_file(file)
    return (np.clip(resample(pcm, rate, RATE), -1, 1) * 32767).astype(np.int16), what


async def feed(gen, pcm: np.ndarray, t0: float, stop: asyncio.Event) -> None:
    from livekit import rtc
    from livekit.agents.voice.avatar import AudioSegmentEnd

    sent = 0.0
    while not stop.is_set():
        for i in range(0, len(pcm), CHUNK):
            if stop.is_set():
                return
            ahead = sent - (time.perf_counter() - t0)
            if ahead > AHEAD_S:
                await asyncio.sleep(ahead - AHEAD_S)
            chunk = pcm[i:i + CHUNK]
            await gen.push_audio(rtc.AudioFrame(chunk.tobytes(), RATE, 1, len(chunk)))
            sent += len(chunk) / RATE
        await gen.push_audio(AudioSegmentEnd())


async def consume(gen, fps: int, t0: float, counts: dict, stop: asyncio.Event) -> None:
    from livekit import rtc

    k = 0
    async for item in gen:
        if stop.is_set():
            return
        if isinstance(item, rtc.VideoFrame):
            due = t0 + k / fps
            now = time.perf_counter()
            if now > due + 1.0 / fps:
                counts["late"] += 1
            elif now < due:
                await asyncio.sleep(due - now)
            k += 1
            counts["frames"] += 1


async def one_run(parts, n: int, pcm: np.ndarray, args) -> dict:
    from emolive.livekit import EmoliveVideoGenerator

    loop = asyncio.get_running_loop()
    gens = [await loop.run_in_executor(None, lambda: EmoliveVideoGenerator(parts, fps=args.fps, sample_rate=RATE))
            for _ in range(n)]
    stop = asyncio.Event()
    counts = [{"frames": 0, "late": 0} for _ in gens]
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(feed(g, pcm, t0, stop)) for g in gens]
    tasks += [asyncio.create_task(consume(g, args.fps, t0, c, stop)) for g, c in zip(gens, counts)]
    await asyncio.sleep(args.warmup)
    for c in counts:
        c.update(frames=0, late=0)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(args.seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    frames = [dict(c) for c in counts]
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for g in gens:
        await g.aclose()
    return {"avatars": n, "cpu_pct_per_avatar": round(100 * cpu / wall / n, 1),
            "fps_per_avatar": [round(f["frames"] / wall, 2) for f in frames],
            "late_frames": [f["late"] for f in frames]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--avatars", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--audio", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from streaming.parts import real_parts

    parts = real_parts(fps=args.fps, size=args.size)
    pcm, what = speech(args.audio)
    load0 = os.getloadavg()
    runs = []
    for n in args.avatars:
        for r in range(args.runs):
            res = asyncio.run(one_run(parts, n, pcm, args))
            runs.append(res)
            print(json.dumps(res), flush=True)
    load1 = os.getloadavg()
    summary = {}
    for n in args.avatars:
        mine = [r for r in runs if r["avatars"] == n]
        summary[n] = {"min_cpu_pct_per_avatar": min(r["cpu_pct_per_avatar"] for r in mine),
                      "max_cpu_pct_per_avatar": max(r["cpu_pct_per_avatar"] for r in mine),
                      "min_fps": min(min(r["fps_per_avatar"]) for r in mine),
                      "late_frames": sum(sum(r["late_frames"]) for r in mine)}
    out = {"size": args.size, "fps": args.fps, "seconds": args.seconds, "warmup": args.warmup, "speech": what,
           "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in load1],
           "runs": runs, "summary": summary}
    print(json.dumps({"summary": summary, "load": [out["load_before"][0], out["load_after"][0]]}))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
