"""Cost of the audio->expression model per 40 ms of audio on one core (target <= 2 ms).

Times (a) the ONNX model alone on the 4 feature frames that 40 ms of audio
yields, and (b) the whole streaming path (48 kHz int16 chunk -> intake ->
resampler -> log-mel -> model -> frame) per 40 ms chunk. Prints median and p95.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_audio_model.py [--iters 2000] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from engine.audio import AudioToExpression  # noqa: E402
from engine.audio.model import ExpressionModel, onnx_predictor  # noqa: E402


def stats(ts: list[float]) -> dict[str, float]:
    a = np.array(ts) * 1000.0
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)), "mean_ms": float(a.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    model = ExpressionModel(onnx_predictor(threads=1))
    feats = (rng.standard_normal((4, 40)) - 5).astype(np.float32)
    for _ in range(50):
        model.step(feats)
    ts = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        model.step(feats)
        ts.append(time.perf_counter() - t0)
    model_stats = stats(ts)

    eng = AudioToExpression(model=model)
    chunk = 1920  # 40 ms at 48 kHz
    audio = (rng.standard_normal(chunk * (args.iters + 50)) * 3000).astype(np.int16)
    ts = []
    for i in range(args.iters + 50):
        t0 = time.perf_counter()
        eng.push(audio[i * chunk:(i + 1) * chunk], 48000)
        if i >= 50:
            ts.append(time.perf_counter() - t0)
    pipe_stats = stats(ts)
    res = {"model_per_40ms": model_stats, "pipeline_per_40ms_48k": pipe_stats, "iters": args.iters,
           "threads": 1, "target_ms": 2.0}
    print(f"model per 40 ms of audio (4 frames, 1 thread): median {model_stats['median_ms']:.3f} ms, "
          f"p95 {model_stats['p95_ms']:.3f} ms")
    print(f"full streaming path per 40 ms chunk at 48 kHz:  median {pipe_stats['median_ms']:.3f} ms, "
          f"p95 {pipe_stats['p95_ms']:.3f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
