"""Measure per-frame mouth targets on real talking-face videos (GRID s1, GRID multi-speaker, CREMA-D).

For every video frame: the 52 Face Landmarker blendshapes and the landmark mouth
opening (engine.face_geometry.mouth_opening). One .npz per clip under
build/audio/measure/<set>/ (tracking, `--mode video`) or build/audio/measure_image/<set>/
(every frame detected on its own, `--mode image`), so the run can be resumed and used
while it grows. Tracking smooths the landmarks and trails the real mouth by about half
a frame; image mode does not.

    .venv/bin/python scripts/audio/measure_targets.py --sets s1 --mode image
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

BUILD = Path(__file__).resolve().parents[2] / "build" / "audio"


def out_dir(mode: str) -> Path:
    return BUILD / ("measure" if mode == "video" else "measure_image")


def clip_list(sd: Path, name: str) -> list[Path]:
    if name == "s1":
        return sorted((sd / "data/grid/s1").glob("*.mp4"))
    if name == "multi":
        return sorted((sd / "data/grid/multi_speaker").glob("*.mp4"))
    if name == "cremad":
        return sorted((sd / "data/expressions/cremad").glob("1001_DFA_*.flv"))
    raise SystemExit(f"unknown set {name}")


def measure_clip(path: Path, mode: str = "video") -> dict[str, np.ndarray]:
    frames, fps = read_video_rgb(path)
    n = len(frames)
    bs = np.zeros((n, 52), np.float32)
    mo = np.zeros(n, np.float32)
    found = np.zeros(n, bool)
    # A fresh tracker per clip: no landmark state leaks between clips.
    with Landmarker(mode=mode) as lm:
        for i, rgb in enumerate(frames):
            m = lm.detect(rgb, timestamp_ms=int(round(i * 1000.0 / fps))) if mode == "video" else lm.detect(rgb)
            if m is None:
                continue
            found[i] = True
            bs[i] = m.blendshapes
            mo[i] = mouth_opening(m.landmarks)
    return {"blendshapes": bs, "mouth_open": mo, "found": found, "fps": np.float32(fps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["multi", "cremad", "s1"])
    ap.add_argument("--mode", choices=["video", "image"], default="video",
                    help="landmarker mode: tracking (video) or every frame on its own (image)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many clips per set (0 = all)")
    args = ap.parse_args()
    sd = shared_dir()
    if sd is None:
        raise SystemExit("../shared not present")
    for name in args.sets:
        clips = clip_list(sd, name)[: args.limit or None]
        out = out_dir(args.mode) / name
        out.mkdir(parents=True, exist_ok=True)
        for path in tqdm(clips, desc=f"measure {name}"):
            dst = out / f"{path.stem}.npz"
            if dst.exists():
                continue
            res = measure_clip(path, args.mode)
            tmp = dst.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **res)
            tmp.rename(dst)


if __name__ == "__main__":
    main()
