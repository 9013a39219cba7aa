"""Arguments of `emolive avatar train --backend nerf`, with the per-config defaults."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..diffusion.train_data import add_run_args
from .config import CONFIGS

REPO = Path(__file__).resolve().parents[2]
DESCRIPTION = ("Train an expression-conditioned NeRF of one person's head from talking videos and write its bundle "
               "(docs/design/nerf.md).")
DEFAULTS = {  # per config: training steps, rays per step, learning rate of the hash tables (MLPs: a tenth)
    "tiny": dict(steps=500, rays=1024, lr=1e-2),
    "small": dict(steps=6000, rays=4096, lr=1e-2),
    "full": dict(steps=30000, rays=8192, lr=1e-2),
}


def grid_tiny_argv(shared: Path, out: Path, train=("bbaf2n", "bbaf3s", "bbaf4p"), heldout=("bbal6n",),
                   steps: int = 500, report: bool = True) -> list[str]:
    """Arguments of the CI-size run on GRID s1 clips (tiny config, 64x64): about a minute on one CPU core."""
    s1 = Path(shared) / "data" / "grid" / "s1"
    return ([str(s1 / f"{c}.mp4") for c in (*train, *heldout)] +
            ["--heldout-names", *heldout, "--out", str(out), "--config", "tiny", "--steps", str(steps),
             "--cache", str(Path(out) / "cache"), "--no-progress", "--preview-every", "0"] +
            ([] if report else ["--no-report"]))


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="emolive avatar train --backend nerf", description=DESCRIPTION)
    ap.add_argument("videos", nargs="+", help="talking videos of one person, or folders of them")
    ap.add_argument("--out", required=True, help="bundle directory to write")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="small")
    ap.add_argument("--size", type=int, default=None, help="crop resolution (default: the config's)")
    ap.add_argument("--steps", type=int, default=None, help="training steps")
    ap.add_argument("--rays", type=int, default=None, help="rays per step")
    ap.add_argument("--lr", type=float, default=None, help="learning rate of the hash tables")
    ap.add_argument("--mouth-weight", type=float, default=3.0, help="loss weight of the mouth box's pixels")
    ap.add_argument("--mask-weight", type=float, default=0.05,
                    help="weight of the loss that keeps the field's opacity on the segmented person")
    ap.add_argument("--sparsity", type=float, default=1e-2,
                    help="weight of the loss on every sample's opacity (empty space stays empty)")
    ap.add_argument("--device", default="cpu", help="PyTorch device of the training (cpu, cuda)")
    add_run_args(ap, cache=REPO / "build" / "nerf" / "cache", ckpt_every=250)
    a = ap.parse_args(argv)
    for k, v in DEFAULTS[a.config].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.steps < 1 or a.rays < 64:
        ap.error("--steps must be >= 1 and --rays >= 64")
    return a
