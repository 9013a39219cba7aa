"""What a diffusion-renderer training run is given: its arguments, and its tracked clips held as training frames.

Arguments of `emolive avatar train --backend diffusion` with the per-config defaults; the
reference avatar, face crop and tracked training / held-out clips; all training frames in memory.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .crop import face_box, mouth_box
from .data import ClipData, cache_key, clip_data, list_videos, make_reference_avatar
from .evaluate import to_model
from .model import CONFIGS

REPO = Path(__file__).resolve().parents[2]
# The command's one-line description: the first line of engine/diffusion/train.py's docstring.
DESCRIPTION = "Train a per-identity diffusion renderer from talking videos and write its bundle (docs/design/diffusion.md)."
DEFAULTS = {  # per config: base steps, batch, distillation steps per round, teacher steps
    "tiny": dict(steps=300, batch=8, distill_steps=100, teacher_steps=8, lr=2e-3, ema=0.99),
    "small": dict(steps=3000, batch=8, distill_steps=400, teacher_steps=16, lr=1e-3, ema=0.998),
}


def grid_tiny_argv(shared: Path, out: Path, train=("bbaf2n", "bbaf3s", "bbaf4p"), heldout=("bbal6n",),
                   steps: int = 200, distill_steps: int = 60, report: bool = True) -> list[str]:
    """Arguments of the CI-size run on GRID s1 clips (tiny config, 64x64): minutes on one CPU core."""
    s1 = Path(shared) / "data" / "grid" / "s1"
    return ([str(s1 / f"{c}.mp4") for c in (*train, *heldout)] +
            ["--heldout-names", *heldout, "--out", str(out), "--config", "tiny", "--steps", str(steps),
             "--distill-steps", str(distill_steps), "--cache", str(Path(out) / "cache"), "--no-progress",
             "--preview-every", "0"] + ([] if report else ["--no-report"]))


def add_run_args(ap: argparse.ArgumentParser, cache: Path, ckpt_every: int) -> None:
    """The options every per-person trainer takes (diffusion, nerf): data split, avatar, cache, checkpoints,
    previews, threads, seed, resume, progress, report."""
    ap.add_argument("--heldout", type=int, default=None,
                    help="hold out the last N videos for the report (default ~10%%; one video: its last 15%%)")
    ap.add_argument("--heldout-names", nargs="*", default=None, help="hold out these videos (file stems)")
    ap.add_argument("--max-clips", type=int, default=0, help="use at most this many training videos (0 = all)")
    ap.add_argument("--avatar-size", type=int, default=256, help="side of the avatar frame made from the reference")
    ap.add_argument("--cache", default=str(cache))
    ap.add_argument("--preview-every", type=int, default=250)
    ap.add_argument("--ckpt-every", type=int, default=ckpt_every)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-resume", action="store_true", help="start over even if DIR/train/state.pt exists")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--no-report", action="store_true", help="skip the held-out evaluation and speed report")


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="emolive avatar train --backend diffusion", description=DESCRIPTION)
    ap.add_argument("videos", nargs="+", help="talking videos of one person, or folders of them")
    ap.add_argument("--out", required=True, help="bundle directory to write")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="small")
    ap.add_argument("--size", type=int, default=None, help="model resolution (default: the config's)")
    ap.add_argument("--steps", type=int, default=None, help="base training steps")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--ema", type=float, default=None, help="EMA decay of the weights used for sampling")
    ap.add_argument("--distill-steps", type=int, default=None, help="training steps per distillation round")
    ap.add_argument("--teacher-steps", type=int, default=None, help="sampling steps of the undistilled model")
    ap.add_argument("--target-steps", type=int, default=4, help="sampling steps after distillation (<= 4)")
    add_run_args(ap, cache=REPO / "build" / "diffusion" / "cache", ckpt_every=200)
    a = ap.parse_args(argv)
    for k, v in DEFAULTS[a.config].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if not 1 <= a.target_steps <= 4:
        ap.error("--target-steps must be 1..4")
    if a.teacher_steps < a.target_steps or a.teacher_steps & (a.teacher_steps - 1) or \
            a.target_steps & (a.target_steps - 1):
        ap.error("--teacher-steps and --target-steps must be powers of two, teacher >= target")
    return a


# ----------------------------------------------------------------------------- data

def split_videos(videos: list[Path], a) -> tuple[list[Path], list[Path]]:
    if a.heldout_names:
        names = set(a.heldout_names)
        held = [v for v in videos if v.stem in names]
        if len(held) != len(names):
            raise FileNotFoundError(f"held-out videos not among the inputs: {sorted(names - {v.stem for v in held})}")
        train = [v for v in videos if v.stem not in names]
    elif len(videos) == 1:
        return videos, []
    else:
        n = a.heldout if a.heldout is not None else max(1, len(videos) // 10)
        train, held = videos[:len(videos) - n], videos[len(videos) - n:]
    if a.max_clips:
        train = train[:a.max_clips]
    if not train:
        raise ValueError("no training videos left after holding out")
    return train, held


def _slice(c: ClipData, sl: slice, suffix: str) -> ClipData:
    return ClipData(c.name + suffix, c.target[sl], c.hint[sl], c.cond[sl], c.found[sl], c.mouth_open[sl])


def prepare_clips(a, out: Path, box_of, clip_of, sliced):
    """The reference avatar (made once, then loaded from DIR/avatar), its crop box and mouth box, and the tracked
    training / held-out clips of a run's arguments; one video: its last 15% is the held-out part.
    box_of(avatar) -> CropBox; clip_of(video, avatar, meshwarp, box) -> clip; sliced(clip, slice, suffix)."""
    from ..avatar import load_bundle, save_avatar
    from .hint import hint_renderer

    videos = list_videos(a.videos)
    train_v, held_v = split_videos(videos, a)
    if (out / "avatar" / "avatar.json").exists():
        avatar = load_bundle(out / "avatar")
    else:
        avatar, _ = make_reference_avatar(train_v[0], a.avatar_size)
        save_avatar(avatar, out / "avatar")
    mw = hint_renderer(avatar)
    box = box_of(avatar)
    mouth = mouth_box(avatar.landmarks, box)
    train, held = [], []
    for v in tqdm(train_v + held_v, desc="track", disable=a.no_progress):
        (train if v in train_v else held).append(clip_of(v, avatar, mw, box))
    if not held_v:
        c = train[0]
        cut = int(len(c.found) * 0.85)
        train, held = [sliced(c, slice(0, cut), "")], [sliced(c, slice(cut, None), "#heldout")]
    return avatar, box, mouth, train, held


def prepare(a, out: Path):
    """Reference avatar, crop, and the tracked training / held-out clips."""
    def clip_of(v, avatar, mw, box):
        return clip_data(v, avatar, mw, box, Path(a.cache) / cache_key(avatar, box))

    avatar, box, mouth, train, held = prepare_clips(
        a, out, lambda av: face_box(av.landmarks, av.size, a.size), clip_of, _slice)
    return avatar, box, mouth, box.cut(avatar.image), train, held


class Frames:
    """All training frames in memory (uint8), drawn as float batches."""

    def __init__(self, clips: list[ClipData], ref: np.ndarray, mouth):
        keep = [np.flatnonzero(c.found) for c in clips]
        self.target = torch.from_numpy(np.concatenate([c.target[k] for c, k in zip(clips, keep)]))
        self.hint = torch.from_numpy(np.concatenate([c.hint[k] for c, k in zip(clips, keep)]))
        self.cond = torch.from_numpy(np.concatenate([c.cond[k] for c, k in zip(clips, keep)]))
        if len(self.target) < 2:
            raise ValueError("fewer than 2 tracked training frames: is the face visible in the videos?")
        self.ref = torch.from_numpy(to_model(ref))
        r = ref.shape[0]
        w = torch.ones(1, 1, r, r)
        y0, y1, x0, x1 = mouth
        w[..., y0:y1, x0:x1] = 3.0  # the mouth is what speech changes: weight its errors more
        self.weight = w / w.mean()

    def __len__(self) -> int:
        return len(self.target)

    def batch(self, n: int, g: torch.Generator):
        i = torch.randint(0, len(self), (n,), generator=g)
        f = lambda u: u[i].permute(0, 3, 1, 2).float() / 127.5 - 1.0  # noqa: E731
        return f(self.target), f(self.hint), self.ref.expand(n, -1, -1, -1), self.cond[i]
