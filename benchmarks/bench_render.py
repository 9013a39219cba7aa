"""Benchmark the meshwarp renderer end to end (FaceState -> 512x512 RGB frame) on one core.

Run:  .venv/bin/python benchmarks/bench_render.py [--frames 500] [--avatar DIR_OR_PHOTO] [--json OUT]

The states are a talking performance (jaw/lip motion, blinks, smile, head
sway of up to +-15 deg, gaze) so every part of the renderer is exercised:
rig, head rotation, depth sort, warp kernel, painted mouth, lashes. Reports
median / p95 / p99 per frame after a warm-up, plus the worst case (full head
turn) separately.
"""
from __future__ import annotations

import os

os.environ["NUMBA_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.avatar import load_avatar  # noqa: E402
from engine.renderers import create  # noqa: E402
from engine.types import FaceState  # noqa: E402


def performance(n: int, fps: float = 25.0) -> list[FaceState]:
    out = []
    for k in range(n):
        t = k / fps
        syl = max(0.0, math.sin(2 * math.pi * 3.3 * t))
        blink = math.exp(-(((t % 3.1) - 1.0) / 0.06) ** 2)
        smile = 0.5 + 0.5 * math.sin(2 * math.pi * 0.1 * t)
        out.append(FaceState.from_dict({
            "jawOpen": 0.6 * syl, "mouthLowerDownLeft": 0.3 * syl, "mouthLowerDownRight": 0.3 * syl,
            "mouthSmileLeft": 0.6 * smile, "mouthSmileRight": 0.6 * smile, "eyeBlinkLeft": blink,
            "eyeBlinkRight": blink, "browInnerUp": 0.3 * smile,
            "headYaw": 15 * math.sin(2 * math.pi * 0.2 * t), "headPitch": 6 * math.sin(2 * math.pi * 0.13 * t),
            "headRoll": 4 * math.sin(2 * math.pi * 0.07 * t), "gazeYaw": 10 * math.sin(2 * math.pi * 0.3 * t),
        }, t=t))
    return out


def time_states(r, states, repeat: int = 1) -> np.ndarray:
    ts = []
    for _ in range(repeat):
        for s in states:
            t0 = time.perf_counter()
            r.render(s)
            ts.append(time.perf_counter() - t0)
    return np.array(ts) * 1000.0


def summary(ms: np.ndarray) -> dict:
    return {"median_ms": round(float(np.median(ms)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "n": int(len(ms))}


def machine() -> dict:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        rev = ""
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "git_rev": rev,
            "load_avg": os.getloadavg()}


def write_json(path: str | None, result: dict) -> None:
    """The result as indented JSON at `path` (its folder made), when one is given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=500)
    p.add_argument("--runs", type=int, default=3, help="repeat the sequence; report the median run")
    p.add_argument("--avatar", default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    av = load_avatar(a.avatar)
    r = create("meshwarp", av)
    states = performance(a.frames)
    time_states(r, states[:50])  # warm-up (JIT, caches)
    runs = [time_states(r, states) for _ in range(a.runs)]
    best = sorted(runs, key=np.median)[len(runs) // 2]
    turn = time_states(r, [FaceState.from_dict({"headYaw": 15, "jawOpen": 0.8, "eyeBlinkLeft": 1})], repeat=200)
    result = {"size": list(av.size), "performance": summary(best), "full_turn_open_mouth": summary(turn),
              "runs_median_ms": [round(float(np.median(x)), 3) for x in runs], "machine": machine(),
              "command": "benchmarks/bench_render.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(f"meshwarp {av.size[1]}x{av.size[0]} on one core: talking performance median "
          f"{result['performance']['median_ms']} ms, p95 {result['performance']['p95_ms']} ms; "
          f"full turn + open mouth median {result['full_turn_open_mouth']['median_ms']} ms "
          f"(load avg {result['machine']['load_avg'][0]:.1f})")
    write_json(a.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
