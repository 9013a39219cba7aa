"""Benchmark the triangle-warp kernel on a realistic full-frame 512x512 mesh.

Run:  .venv/bin/python benchmarks/bench_warp.py [--iters 200] [--json OUT]

The mesh is a Delaunay triangulation of a dense face-like cluster plus a border
grid (points on and beyond the image edge, so the whole frame is covered), with a
small smooth deformation of the destination positions. One core only.
"""
from __future__ import annotations

import os

# one core: set before numba/numpy start their thread pools
os.environ["NUMBA_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.warp import warmup, warp_triangles  # noqa: E402
from kernels.warp_reference import warp_triangles_ref  # noqa: E402

SIZE = 512


def make_image(size: int = SIZE) -> np.ndarray:
    """skimage's astronaut resized to size x size (a real photo-like texture)."""
    import cv2
    from skimage import data

    return np.ascontiguousarray(cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA))


def make_mesh(seed: int = 0, size: int = SIZE, n_face: int = 500):
    """(src_xy, dst_xy, triangles): face cluster + border grid, smooth deformation."""
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(seed)
    c = size / 2.0
    ang = rng.uniform(0, 2 * np.pi, n_face)
    rad = np.sqrt(rng.uniform(0, 1, n_face))
    face = np.stack([c + 0.22 * size * rad * np.cos(ang), c * 0.9 + 0.3 * size * rad * np.sin(ang)], 1)
    g = np.linspace(-8, size + 8, 11)
    gx, gy = np.meshgrid(g, g)
    grid = np.stack([gx.ravel(), gy.ravel()], 1)
    src = np.concatenate([face, grid]).astype(np.float32)
    tri = Delaunay(src).simplices.astype(np.int32)
    # smooth deformation: a head nod/turn-like displacement fading from the centre
    d = src - np.array([c, c * 0.9], np.float32)
    fall = np.exp(-(d ** 2).sum(1) / (2 * (0.25 * size) ** 2))[:, None]
    shift = np.stack([6.0 * np.sin(src[:, 1] / 60.0), 4.0 * np.cos(src[:, 0] / 70.0)], 1)
    dst = (src + fall * shift).astype(np.float32)
    return src, dst, tri


def time_it(fn, iters: int) -> np.ndarray:
    ts = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        ts[i] = (time.perf_counter() - t0) * 1e3
    return ts


def summary(ts: np.ndarray) -> dict:
    return {"median_ms": float(np.median(ts)), "p95_ms": float(np.percentile(ts, 95)),
            "min_ms": float(ts.min()), "iters": int(ts.size)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=200, help="fast-kernel iterations")
    ap.add_argument("--ref-iters", type=int, default=5, help="reference iterations")
    ap.add_argument("--json", type=Path, help="write figures and machine info here")
    args = ap.parse_args(argv)

    pinned = None
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        pinned = sorted(os.sched_getaffinity(0))

    src_img = make_image()
    src, dst, tri = make_mesh()
    out = np.zeros_like(src_img)
    t0 = time.perf_counter()
    warmup()
    warm_s = time.perf_counter() - t0

    fast = summary(time_it(lambda: warp_triangles(src_img, src, dst, tri, out), args.iters))
    ref_out = np.zeros_like(src_img)
    ref = summary(time_it(lambda: warp_triangles_ref(src_img, src, dst, tri, ref_out), args.ref_iters))
    diff = np.abs(out.astype(np.int16) - ref_out.astype(np.int16))

    res = {
        "size": [SIZE, SIZE], "triangles": int(len(tri)), "vertices": int(len(src)),
        "fast": fast, "reference": ref, "warmup_s": warm_s,
        "max_abs_diff": int(diff.max()), "equal_fraction": float((diff.max(2) == 0).mean()),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "pinned_cpus": pinned,
                    "numba": __import__("numba").__version__, "numpy": np.__version__},
    }
    print(f"mesh: {len(tri)} triangles, {len(src)} vertices, {SIZE}x{SIZE}")
    print(f"fast:      median {fast['median_ms']:.3f} ms  p95 {fast['p95_ms']:.3f} ms  ({fast['iters']} iters)")
    print(f"reference: median {ref['median_ms']:.1f} ms  p95 {ref['p95_ms']:.1f} ms  ({ref['iters']} iters)")
    print(f"fast vs reference: max abs diff {res['max_abs_diff']}, equal pixels {res['equal_fraction']:.6f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
