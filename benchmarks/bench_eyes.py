"""Cost of the eye painter (engine/renderers/eyes.py) per frame, on one core.

Run:  .venv/bin/python benchmarks/bench_eyes.py [--frames 2000] [--avatar DIR_OR_PHOTO] [--size 512]

Times EyePainter.paint alone on the deformed vertices of three states: rest (the lid gap is measured and
nothing is painted), a blink (the same), and eyeWide L + R = 1 with a gaze (both eyeballs painted); and a
whole meshwarp render of the widened state with the painter on and off. Medians and p95 over --frames calls
after a warm-up. Timings on a shared machine are noisy: record the load average with the figure.
"""
from __future__ import annotations

import os

os.environ["NUMBA_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.avatar import load_avatar  # noqa: E402
from engine.renderers.meshwarp import MeshWarpRenderer  # noqa: E402
from engine.types import FaceState  # noqa: E402


def _time(fn, n: int) -> tuple[float, float]:
    for _ in range(min(50, n)):
        fn()
    ts = np.empty(n)
    for k in range(n):
        t0 = time.perf_counter()
        fn()
        ts[k] = time.perf_counter() - t0
    return float(np.median(ts) * 1e3), float(np.percentile(ts, 95) * 1e3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--avatar", default=None, help="bundle directory or photo (default: the built-in avatar)")
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    av = load_avatar(args.avatar, size=args.size)
    on, off = MeshWarpRenderer(av, rest=True), MeshWarpRenderer(av, rest=True, eyes=False)
    painter = on._eyes
    states = {
        "rest": FaceState.neutral(),
        "blink": FaceState.from_dict({"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}),
        "eyeWide = 1, gaze 10 deg": FaceState.from_dict({"eyeWideLeft": 1.0, "eyeWideRight": 1.0, "gazeYaw": 10.0}),
    }
    print(f"avatar {args.avatar or 'default'} {av.size[1]}x{av.size[0]}, {args.frames} calls each, one core; "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| what | painted eyes | median ms | p95 ms |\n|---|---|---|---|")
    for name, s in states.items():
        xy = np.ascontiguousarray(on.deform(s)[:, :2], np.float32)
        frame = on.render(s)
        painted = sum(v > 0 for v in painter.strength(xy))
        med, p95 = _time(lambda: painter.paint(frame, xy), args.frames)
        print(f"| EyePainter.paint, {name} | {painted} | {med:.3f} | {p95:.3f} |")
    wide = states["eyeWide = 1, gaze 10 deg"]
    for label, r in (("on", on), ("off", off)):
        med, p95 = _time(lambda: r.render(wide), max(args.frames // 4, 1))
        print(f"| whole render, eyeWide = 1, painter {label} | {2 if label == 'on' else 0} | {med:.3f} | {p95:.3f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
