"""Training data of a NeRF avatar: tracked head crops, person masks, face states, poses and the static background.

Tracking is the diffusion trainer's (engine/diffusion/track.py): each frame is
mapped into the avatar frame of the reference (the most neutral early frame of
the first video) and stabilised, and its face state (52 coefficients, head pose
relative to the reference) fitted with the project's rig. The NeRF's crop is a
box around the whole head (HEAD_MARGIN x the face oval: hair, ears, neck). The
wheel's selfie segmentation separates the person from the background on every
stabilised frame; the background layer the field is composited over is the
per-pixel median of the crops where no person was seen (inpainted where a person
always was). Clips are cached as .npz keyed by the reference, the box and
DATA_VERSION.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..diffusion.crop import CropBox
from .weights import state_vector

log = logging.getLogger(__name__)
DATA_VERSION = "nerf-data-1"
HEAD_MARGIN = 1.6  # the NeRF crop's side over the face oval's larger extent
PERSON = 0.5  # selfie-segmentation confidence above which a pixel is the person


@dataclass
class NerfClip:
    name: str
    target: np.ndarray  # (N, R, R, 3) uint8 real crops, stabilised in the avatar frame
    person: np.ndarray  # (N, R, R) uint8 person confidence 0..255
    state: np.ndarray  # (N, 54) float32 model.state_vector
    head: np.ndarray  # (N, 3) float32 head pose (pitch, yaw, roll) in degrees
    found: np.ndarray  # (N,) bool: a face was tracked
    mouth_open: np.ndarray  # (N,) float32 tracked mouth opening (nan where no face)

    def sliced(self, sl: slice, suffix: str) -> "NerfClip":
        return NerfClip(self.name + suffix, self.target[sl], self.person[sl], self.state[sl], self.head[sl],
                        self.found[sl], self.mouth_open[sl])


class PersonSegmenter:
    """The wheel's selfie segmentation (landscape model): RGB frame -> person confidence in [0, 1]."""

    def __init__(self):
        import mediapipe as mp

        self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self._seg.process(np.ascontiguousarray(rgb)).segmentation_mask

    def close(self) -> None:
        self._seg.close()


def cache_key(avatar, box: CropBox) -> str:
    h = hashlib.sha256(np.ascontiguousarray(avatar.image).tobytes())
    h.update(repr(box.to_dict()).encode())
    h.update(DATA_VERSION.encode())
    return h.hexdigest()[:12]


def nerf_clip(video: Path, avatar, meshwarp, box: CropBox, cache_dir: Path | None = None) -> NerfClip:
    """Track, segment and crop one clip (cached)."""
    from ..diffusion.track import track_frames
    from ..measure import read_video_rgb

    dst = cache_dir / f"{video.stem}.npz" if cache_dir is not None else None
    if dst is not None and dst.exists():
        z = np.load(dst)
        return NerfClip(video.stem, z["target"], z["person"], z["state"], z["head"], z["found"], z["mouth_open"])
    frames, fps = read_video_rgb(video)
    if not frames:
        raise FileNotFoundError(f"cannot read any frame of {video}")
    tr = track_frames(frames, avatar, meshwarp, fps=fps)
    seg = PersonSegmenter()
    try:
        person = np.stack([box.cut(np.clip(seg(f) * 255.0 + 0.5, 0, 255).astype(np.uint8)) for f in tr.frames])
    finally:
        seg.close()
    c = NerfClip(video.stem, np.stack([box.cut(f) for f in tr.frames]), person,
                 np.stack([state_vector(s) for s in tr.states]),
                 np.array([s.head for s in tr.states], np.float32), tr.found, tr.mouth_open.astype(np.float32))
    if dst is not None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.stem + ".tmp.npz")
        np.savez_compressed(tmp, target=c.target, person=c.person, state=c.state, head=c.head, found=c.found,
                            mouth_open=c.mouth_open)
        tmp.rename(dst)
    return c


def static_background(clips: list[NerfClip]) -> np.ndarray:
    """(R, R, 3) uint8: per pixel, the median of the crops where it showed no person; inpainted elsewhere."""
    target = np.concatenate([c.target for c in clips])
    person = np.concatenate([c.person for c in clips]) >= PERSON * 255
    r = target.shape[1]
    bg = np.zeros((r, r, 3), np.uint8)
    seen = (~person).sum(0)
    never = seen == 0
    data = np.where(person[..., None], np.nan, target.astype(np.float32))
    with warnings.catch_warnings():  # pixels never free of the person are all-NaN: inpainted below
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(data, axis=0)
    bg[~never] = np.clip(med[~never] + 0.5, 0, 255).astype(np.uint8)
    if never.all():
        return np.full((r, r, 3), np.median(target.reshape(-1, 3), axis=0).astype(np.uint8))
    if never.any():
        bg = cv2.inpaint(bg, never.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    return bg


def prepare(a, out: Path):
    """(avatar, head box, mouth box, training clips, held-out clips) of a training run's arguments."""
    from ..diffusion.crop import face_box
    from ..diffusion.train_data import prepare_clips

    def clip_of(v, avatar, mw, box):
        return nerf_clip(v, avatar, mw, box, Path(a.cache) / cache_key(avatar, box))

    return prepare_clips(a, out, lambda av: face_box(av.landmarks, av.size, a.size, margin=HEAD_MARGIN), clip_of,
                         NerfClip.sliced)
