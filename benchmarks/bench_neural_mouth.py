"""Benchmark the neural mouth on one core: NeuralMouth.apply alone, and meshwarp frames with and without it.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_neural_mouth.py [--frames 250] [--repeats 3]
          [--avatar DIR_OR_PHOTO] [--json OUT]

The states are bench_render's talking performance (jaw and lip motion, smile,
blinks, head sway). `apply` is timed on the frames the renderer draws before it
(warp and painted mouth interior), so it covers the crop, the inference and the
blend back; the renders are whole frames. ONNX Runtime runs one thread (as in
the server, where frames of several sessions render in parallel) and the
process is pinned to one core. Each measure reports the median and p95 per frame
of the median repeat, and the lowest repeat median (the least disturbed by
other load), with the load average before and after.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_render import machine, performance, time_states, write_json  # noqa: E402  (first: sets one thread before numpy)

import numpy as np  # noqa: E402

from engine.avatar import load_avatar  # noqa: E402
from engine.renderers import create  # noqa: E402


def time_apply(plain, mouth, states) -> np.ndarray:
    """ms per frame of `mouth.apply` on the frames `plain` (meshwarp without folds or neural mouth) draws."""
    ts = []
    for s in states:
        frame = plain.render(s)
        xy = np.ascontiguousarray(plain.deform(s)[:, :2], np.float32)
        t0 = time.perf_counter()
        mouth.apply(frame, xy)
        ts.append(time.perf_counter() - t0)
    return np.array(ts) * 1000.0


def measure(run, repeats: int) -> dict:
    runs = [run() for _ in range(repeats)]
    mid = sorted(runs, key=np.median)[len(runs) // 2]
    return {"median_ms": round(float(np.median(mid)), 3), "p95_ms": round(float(np.percentile(mid, 95)), 3),
            "min_run_median_ms": round(float(min(np.median(x) for x in runs)), 3),
            "runs_median_ms": [round(float(np.median(x)), 3) for x in runs], "n": int(len(mid))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=250)
    p.add_argument("--repeats", type=int, default=3, help="repeat each measure; report the median repeat")
    p.add_argument("--avatar", default=None)
    p.add_argument("--size", type=int, default=512, help="frame size when --avatar is a photo")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    av = load_avatar(a.avatar, size=a.size)
    with_mouth = create("meshwarp", av, neural_mouth=True)
    nm = with_mouth.neural_mouth
    if not nm.enabled:
        print(f"bench_neural_mouth: the neural mouth is off for this avatar: {nm.reason}", file=sys.stderr)
        return 2
    without = create("meshwarp", av, neural_mouth=False)
    plain = create("meshwarp", av, neural_mouth=False, folds=False)
    states = performance(a.frames)
    load_start = os.getloadavg()
    for r in (with_mouth, without):
        time_states(r, states[:25])  # warm-up: the kernel's paths, ONNX Runtime's first runs
    result = {
        "size": list(av.size), "repeats": a.repeats,
        "apply": measure(lambda: time_apply(plain, nm, states), a.repeats),
        "render_with_neural_mouth": measure(lambda: time_states(with_mouth, states), a.repeats),
        "render_without_neural_mouth": measure(lambda: time_states(without, states), a.repeats),
        "providers": list(nm._sess.get_providers()),
        "load_avg": {"start": list(load_start), "end": list(os.getloadavg())}, "machine": machine(),
        "command": "benchmarks/bench_neural_mouth.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    med = {k: result[k]["median_ms"] for k in ("apply", "render_with_neural_mouth", "render_without_neural_mouth")}
    print(f"neural mouth {av.size[1]}x{av.size[0]} on one core ({result['providers'][0]}): apply median "
          f"{med['apply']} ms; render {med['render_with_neural_mouth']} ms with, "
          f"{med['render_without_neural_mouth']} ms without (load avg {load_start[0]:.1f})")
    write_json(a.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
