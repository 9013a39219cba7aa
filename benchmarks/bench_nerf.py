"""Benchmark the NeRF renderer: ms per head crop and per full frame, per path (CPU kernel, PyTorch CPU / CUDA).

Run:  .venv/bin/python benchmarks/bench_nerf.py [--bundle DIR | --config tiny|small|full] [--frames 20]
      [--repeats 3] [--threads 2] [--json OUT]

With --bundle: the trained field and its occupancy grid (what a user gets).
With --config: an untrained field of that config with every occupancy cell set
(no empty space skipped: an upper bound) over the default avatar.
Per path: the head crop alone and the full frame (meshwarp + crop + paste);
per repeat the median over --frames frames of a talking performance after a
warm-up; reported: the minimum over repeats, with the load average.
"""
from __future__ import annotations

import os

os.environ.setdefault("GLOG_minloglevel", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def states(n: int):
    from engine.types import FaceState

    return [FaceState.from_dict({"jawOpen": 0.35 * (1 + np.sin(k / 3)), "mouthSmileLeft": 0.2,
                                 "mouthSmileRight": 0.2, "headYaw": 5 * np.sin(k / 20)}, t=k / 25) for k in range(n)]


def time_path(renderer, n: int, repeats: int) -> dict:
    seq = states(n + 2)
    renderer.render(seq[0])  # compile / warm up
    crop, frame = [], []
    for _ in range(repeats):
        c, f = [], []
        for s in seq[2:]:
            t0 = time.perf_counter()
            renderer.crop(s)
            c.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            renderer.render(s)
            f.append(time.perf_counter() - t0)
        crop.append(1000 * float(np.median(c)))
        frame.append(1000 * float(np.median(f)))
    return {"crop_ms": round(min(crop), 1), "frame_ms": round(min(frame), 1), "fps": round(1000 / min(frame), 1),
            "crop_ms_per_repeat": [round(v, 1) for v in crop]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle")
    src.add_argument("--config", choices=("tiny", "small", "full"))
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="numba / PyTorch threads")
    ap.add_argument("--torch-cpu", action="store_true", help="also time the PyTorch path on the CPU")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    import numba

    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
    from engine.nerf.bundle import load_nerf_bundle
    from engine.nerf.runtime import KernelCrops, TorchCrops
    from engine.renderers.nerf import NerfRenderer

    with tempfile.TemporaryDirectory() as tmp:
        if a.bundle:
            path = Path(a.bundle)
        else:
            from nerf_bundles import untrained_nerf_bundle

            from engine.avatar import load_avatar

            path = untrained_nerf_bundle(load_avatar(None, size=512), Path(tmp) / "b", config=a.config)
        b = load_nerf_bundle(path)
        args = (b.config, b.arrays, b.occupancy, b.background)
        res = {"source": str(a.bundle) if a.bundle else f"untrained {a.config}, all cells occupied",
               "crop_res": b.config.res, "samples": b.config.samples, "levels": b.config.levels,
               "occupied": round(float(b.occupancy.mean()), 3), "frame": list(b.avatar.size),
               "threads": a.threads, "cpu": platform.processor() or platform.machine(), "paths": {}}
        res["paths"]["cpu-kernel"] = time_path(NerfRenderer(b, KernelCrops(*args)), a.frames, a.repeats)
        try:
            import torch

            torch.set_num_threads(a.threads)
            if a.torch_cpu:
                res["paths"]["torch-cpu"] = time_path(NerfRenderer(b, TorchCrops(*args, device="cpu")), a.frames,
                                                      a.repeats)
            if torch.cuda.is_available():
                res["paths"]["torch-cuda"] = time_path(NerfRenderer(b, TorchCrops(*args, device="cuda")), a.frames,
                                                       a.repeats)
        except ImportError:
            pass
    res["load_average"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
