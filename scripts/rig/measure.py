"""Measure the rig's real faces: MediaPipe landmarks and 52 blendshapes per source file, cached.

Raw pixel landmarks + blendshapes are cached per source file under build/rig_cache/.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine import face_geometry as fg
from engine.measure import Landmarker, read_video_rgb
from engine.types import NUM_COEFFS

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "rig_cache"
NL = fg.NUM_LANDMARKS
GRID_STEP = 8  # every 8th s1 clip in name order -> 125 clips


def _sources(sd: Path) -> list[tuple[str, str, Path, str]]:
    """(dataset, subject, path, kind) for every file measured. kind: video | image | video_up."""
    d = sd / "data"
    out = []
    s1 = sorted((d / "grid" / "s1").glob("*.mp4"))[::GRID_STEP]
    out += [("grid_s1", "s1", p, "video") for p in s1]
    for p in sorted((d / "grid" / "multi_speaker").glob("*.mp4")):
        if p.stem != "bbaf2n":  # byte-identical to s1/bbaf2n
            out.append(("grid_multi", p.stem, p, "video"))
    for p in sorted((d / "expressions" / "london" / "neutral").glob("*.jpg")):
        out.append(("london", p.stem.split("_")[0], p, "image"))
    for p in sorted((d / "expressions" / "london" / "smiling").glob("*.jpg")):
        out.append(("london", p.stem.split("_")[0], p, "image"))
    for p in sorted((d / "expressions" / "cremad").iterdir()):
        if p.suffix in (".flv", ".mp4"):
            out.append(("cremad", p.stem.split("_")[0], p, "video_up"))
    out.append(("pexels", "wolfganglanger", d / "expressions" / "pexels" / "WolfgangLanger_Pexels.mp4", "video"))
    return out


def _cache_path(dataset: str, path: Path) -> Path:
    return CACHE / dataset / f"{path.parent.name}_{path.stem}.npz"


def _measure_file(path: Path, kind: str, image_lm) -> dict:
    import cv2

    if kind == "image":
        frames = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)]
        lm, scale = image_lm(), 1.0
    else:
        frames, _ = read_video_rgb(path)
        # CREMA-D faces are ~60 px wide: upscale 3x so the detector and mesh see them.
        scale = 3.0 if kind == "video_up" else 1.0
        lm = Landmarker(mode="video")
    pts = np.zeros((len(frames), NL, 3), np.float32)
    bs = np.zeros((len(frames), NUM_COEFFS), np.float32)
    ok = np.zeros(len(frames), bool)
    try:
        for i, rgb in enumerate(frames):
            if scale != 1.0:
                rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            m = lm.detect(rgb) if kind == "image" else lm.detect(rgb, timestamp_ms=i * 40)
            if m is not None:
                pts[i], bs[i], ok[i] = m.landmarks / scale, m.blendshapes, True
    finally:
        if kind != "image":
            lm.close()
    return {"landmarks": pts, "blendshapes": bs, "ok": ok}


def measure_all(sd: Path) -> list[dict]:
    """Measure (or load from cache) every source; one record per file."""
    srcs = _sources(sd)
    recs = []
    still: list[Landmarker] = []

    def image_lm() -> Landmarker:  # created only when a still is not cached yet
        if not still:
            still.append(Landmarker(mode="image"))
        return still[0]

    try:
        for dataset, subject, path, kind in tqdm(srcs, desc="measure", unit="file"):
            cp = _cache_path(dataset, path)
            if cp.exists():
                z = dict(np.load(cp))
            else:
                z = _measure_file(path, kind, image_lm)
                cp.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(cp, **z)
            recs.append({"dataset": dataset, "subject": subject, "name": path.stem,
                         "folder": path.parent.name, **z})
    finally:
        for lm in still:
            lm.close()
    return recs
