"""Benchmark the diffusion renderer: ms per frame per provider/backend and step count (1, 2, 4).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_diffusion.py [BUNDLE] [--frames 30] [--json OUT]
      [--synthetic-res 256]

Per provider (ONNX Runtime CPU, and CUDA / TensorRT when present) and the
PyTorch backend: the full render (meshwarp frame + hint crop + N denoiser calls
+ paste) and one denoiser call alone, median and p95 after a warm-up.
`--synthetic-res R` also times one denoiser call of the bundle's architecture at
R x R with random weights (the issue's speed goal is stated at 256 x 256).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.diffusion.bundle import load_diffusion_bundle  # noqa: E402
from engine.diffusion.runtime import NoSuitableDevice, OrtRunner, TorchRunner  # noqa: E402
from engine.renderers.diffusion import DiffusionRenderer  # noqa: E402
from engine.types import FaceState  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def states(n: int) -> list[FaceState]:
    return [FaceState.from_dict({"jawOpen": 0.35 * (1 + np.sin(k / 3)), "mouthSmileLeft": 0.2,
                                 "mouthSmileRight": 0.2, "eyeBlinkLeft": float(k % 40 == 0),
                                 "headYaw": 5 * np.sin(k / 20)}, t=k / 25) for k in range(n)]


def stats(ms: list[float]) -> dict:
    a = np.array(ms)
    return {"median_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2)}


def time_renderer(r: DiffusionRenderer, frames: int) -> dict:
    seq = states(frames + 3)
    for s in seq[:3]:
        r.render(s)
    ms = []
    for s in seq[3:]:
        t0 = time.perf_counter()
        r.render(s)
        ms.append(1000 * (time.perf_counter() - t0))
    return stats(ms)


def time_call(runner, res: int, cond_dim: int, calls: int) -> dict:
    rng = np.random.default_rng(0)
    img = lambda: rng.uniform(-1, 1, (1, 3, res, res)).astype(np.float32)  # noqa: E731
    x = [rng.standard_normal((1, 3, res, res)).astype(np.float32), np.full(1, 0.5, np.float32), img(), img(),
         rng.random((1, cond_dim)).astype(np.float32)]
    for _ in range(3):
        runner(*x)
    ms = []
    for _ in range(calls):
        t0 = time.perf_counter()
        runner(*x)
        ms.append(1000 * (time.perf_counter() - t0))
    return stats(ms)


def runners(b, threads: int):
    import onnxruntime as ort

    yield "onnxruntime CPUExecutionProvider", OrtRunner(b.onnx_path, device="cpu", threads=threads)
    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()):
        r = OrtRunner(b.onnx_path, device="cuda", threads=threads)
        yield f"onnxruntime {r.providers[0]}", r
    import torch

    torch.set_num_threads(threads)
    yield "torch cpu", TorchRunner(b, device="cpu")
    try:
        yield "torch cuda (CUDA graph)", TorchRunner(b, device="auto")
    except NoSuitableDevice as e:
        print(f"skipped torch cuda: {e}", file=sys.stderr)


def synthetic(b, res: int, threads: int, calls: int) -> dict:
    from engine.diffusion.export import export_onnx
    from engine.diffusion.model import Denoiser, ModelConfig

    cfg = ModelConfig.from_dict(dict(b.model_config, res=res))
    with tempfile.TemporaryDirectory() as d:
        path = export_onnx(Denoiser(cfg), Path(d) / "synthetic.onnx")
        runner = OrtRunner(path, device="cpu", threads=threads)
        return {"res": res, "onnxruntime CPUExecutionProvider": time_call(runner, res, cfg.cond_dim, calls)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", nargs="?", default=str(REPO / "build" / "diffusion" / "s1_small"))
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--synthetic-res", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    b = load_diffusion_bundle(a.bundle)
    res = {"bundle": a.bundle, "model": b.model_config, "frame_size": list(b.avatar.size), "threads": a.threads,
           "cpu": platform.processor() or platform.machine(), "results": {}}
    print(f"bundle {a.bundle}: crop {b.box.res}x{b.box.res}, frame {b.avatar.size[0]}x{b.avatar.size[1]}, "
          f"{a.threads} thread(s)")
    for name, runner in runners(b, a.threads):
        row = {"denoiser_call": time_call(runner, b.box.res, b.model_config["cond_dim"], a.frames)}
        for s in a.steps:
            row[f"frame_{s}_steps"] = time_renderer(DiffusionRenderer(b, runner, steps=s), a.frames)
        res["results"][name] = row
        print(f"{name:40s} call {row['denoiser_call']['median_ms']:7.1f} ms | " + " | ".join(
            f"{s} steps {row[f'frame_{s}_steps']['median_ms']:7.1f} ms/frame" for s in a.steps))
    if a.synthetic_res:
        res["synthetic"] = synthetic(b, a.synthetic_res, a.threads, max(5, a.frames // 3))
        print(f"synthetic {a.synthetic_res}x{a.synthetic_res} denoiser call (random weights), ONNX Runtime CPU: "
              f"{res['synthetic']['onnxruntime CPUExecutionProvider']['median_ms']:.1f} ms")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
