"""Training data of one identity: the reference avatar, and per clip the real crops, hint crops and states.

The avatar (meshwarp bundle) is made from the most neutral early frame of the
first video. Each clip is tracked (engine.diffusion.track), rendered with
meshwarp for the same states (the geometry hint), and cut with the fixed crop.
Clips are cached as .npz under a cache folder keyed by the reference and the
resolution, so re-runs and resumed trainings skip the tracking.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..types import FaceState
from .crop import CropBox
from .hint import HINT_VERSION

log = logging.getLogger(__name__)
VIDEO_EXT = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".flv", ".m4v")
COND_DIM = 57  # 52 coefficients, head pose / 30 deg, gaze / 30 deg


def condition(state: FaceState) -> np.ndarray:
    """The conditioning vector of a face state (FiLM input)."""
    return np.concatenate([state.coeffs, np.asarray(state.head) / 30.0, np.asarray(state.gaze) / 30.0]).astype(
        np.float32)


def list_videos(paths) -> list[Path]:
    """Video files from files and folders (folders: their video files in name order)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_EXT)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"video not found: {p}")
    if not out:
        raise FileNotFoundError("no video files given")
    return list(dict.fromkeys(out))  # a video given twice is used once


def make_reference_avatar(video: Path, avatar_size: int):
    """(avatar, frame index): the avatar made from the most neutral of the video's first frames."""
    from ..avatar import avatar_from_image
    from ..measure import read_video_rgb
    from .track import pick_reference

    frames, _ = read_video_rgb(video)
    if not frames:
        raise FileNotFoundError(f"cannot read any frame of {video}")
    i = pick_reference(frames)
    av = avatar_from_image(frames[i], size=avatar_size, source=f"{video.name}#{i}")
    av.meta["reference_frame"] = int(i)
    return av, i


@dataclass
class ClipData:
    name: str
    target: np.ndarray  # (N, R, R, 3) uint8 real crops
    hint: np.ndarray  # (N, R, R, 3) uint8 meshwarp crops of the same states
    cond: np.ndarray  # (N, COND_DIM) float32
    found: np.ndarray  # (N,) bool
    mouth_open: np.ndarray  # (N,) float32 tracked mouth opening (nan where no face)

    def states(self) -> list[FaceState]:
        return [FaceState(coeffs=c[:52], head=c[52:55] * 30.0, gaze=c[55:57] * 30.0, t=i / 25.0)
                for i, c in enumerate(self.cond)]


def cache_key(avatar, box: CropBox) -> str:
    h = hashlib.sha256(np.ascontiguousarray(avatar.image).tobytes())
    h.update(repr(box.to_dict()).encode())
    h.update(HINT_VERSION.encode())
    return h.hexdigest()[:12]


def clip_data(video: Path, avatar, meshwarp, box: CropBox, cache_dir: Path | None = None) -> ClipData:
    """Track, render and crop one clip (cached)."""
    from ..measure import read_video_rgb
    from .track import track_frames

    dst = cache_dir / f"{video.stem}.npz" if cache_dir is not None else None
    if dst is not None and dst.exists():
        z = np.load(dst)
        return ClipData(video.stem, z["target"], z["hint"], z["cond"], z["found"], z["mouth_open"])
    frames, fps = read_video_rgb(video)
    if not frames:
        raise FileNotFoundError(f"cannot read any frame of {video}")
    tr = track_frames(frames, avatar, meshwarp, fps=fps)
    target = np.stack([box.cut(f) for f in tr.frames])
    hint = np.stack([box.cut(meshwarp.render(s)) for s in tr.states])
    cond = np.stack([condition(s) for s in tr.states])
    d = ClipData(video.stem, target, hint, cond, tr.found, tr.mouth_open.astype(np.float32))
    if dst is not None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.stem + ".tmp.npz")
        np.savez_compressed(tmp, target=d.target, hint=d.hint, cond=d.cond, found=d.found, mouth_open=d.mouth_open)
        tmp.rename(dst)
    return d
