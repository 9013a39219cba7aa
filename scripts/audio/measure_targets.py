"""Measure per-frame mouth targets on real talking-face videos (GRID s1, GRID multi-speaker, CREMA-D).

For every video frame: the 52 Face Landmarker blendshapes and the landmark mouth
opening (engine.face_geometry.mouth_opening). One .npz per clip under
build/audio/measure/<set>/ so the run can be resumed and used while it grows.

    .venv/bin/python scripts/audio/measure_targets.py --sets multi cremad s1
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from engine.face_geometry import mouth_opening  # noqa: E402
from engine.measure import Landmarker, read_video_rgb, shared_dir  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "build" / "audio" / "measure"


def clip_list(sd: Path, name: str) -> list[Path]:
    if name == "s1":
        return sorted((sd / "data/grid/s1").glob("*.mp4"))
    if name == "multi":
        return sorted((sd / "data/grid/multi_speaker").glob("*.mp4"))
    if name == "cremad":
        return sorted((sd / "data/expressions/cremad").glob("1001_DFA_*.flv"))
    raise SystemExit(f"unknown set {name}")


def measure_clip(path: Path) -> dict[str, np.ndarray]:
    frames, fps = read_video_rgb(path)
    n = len(frames)
    bs = np.zeros((n, 52), np.float32)
    mo = np.zeros(n, np.float32)
    found = np.zeros(n, bool)
    # A fresh tracker per clip: no landmark state leaks between clips.
    with Landmarker(mode="video") as lm:
        for i, rgb in enumerate(frames):
            m = lm.detect(rgb, timestamp_ms=int(round(i * 1000.0 / fps)))
            if m is None:
                continue
            found[i] = True
            bs[i] = m.blendshapes
            mo[i] = mouth_opening(m.landmarks)
    return {"blendshapes": bs, "mouth_open": mo, "found": found, "fps": np.float32(fps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["multi", "cremad", "s1"])
    ap.add_argument("--limit", type=int, default=0, help="at most this many clips per set (0 = all)")
    args = ap.parse_args()
    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not present")
    for name in args.sets:
        clips = clip_list(sd, name)[: args.limit or None]
        out = OUT / name
        out.mkdir(parents=True, exist_ok=True)
        for path in tqdm(clips, desc=f"measure {name}"):
            dst = out / f"{path.stem}.npz"
            if dst.exists():
                continue
            res = measure_clip(path)
            tmp = dst.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **res)
            tmp.rename(dst)


if __name__ == "__main__":
    main()
