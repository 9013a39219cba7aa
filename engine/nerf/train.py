"""Train an expression-conditioned NeRF of one person's head from talking videos and write its bundle.

    python -m engine.nerf.train VIDEO_OR_DIR... --out DIR [--config tiny|small|full] [--steps N]

Tracking, segmentation and the background layer (engine/nerf/data.py, cached),
then training on random rays of random frames: photometric loss (the mouth box
weighted), a small loss that keeps the field's opacity on the segmented
person (so the background layer shows where the person is not); the occupancy
grid is re-measured every OCCUPANCY_EVERY steps. A sparsity loss on the samples'
opacity empties the space no ray needs filled, so the grid can skip it. Resumable from
DIR/train/state.pt; preview PNGs (rows: real, NeRF) every --preview-every
steps; at the end the bundle and a held-out report (report.json / .md).
"""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..face_geometry import rotation_matrix
from .config import CONFIGS, NerfConfig
from .data import NerfClip, prepare, static_background
from .model import NerfField, field_arrays
from .rays import pixel_rays, ray_span
from .render import Occupancy, render_crop, render_rays
from .runtime import to_u8
from .train_args import grid_tiny_argv, parse_args

__all__ = ["main", "grid_tiny_argv"]
log = logging.getLogger("emolive.nerf.train")
OCCUPANCY_EVERY = 16
OCCUPANCY_FROM = 64  # the field is shapeless before this step: everything stays occupied
FRAMES_PER_STEP = 8  # rays of a step come from this many frames (one state code and pose each)
MOUTH_SHARE_DIV = 4  # 1/4 of a step's rays are drawn in the mouth box: speech changes little else


class TrainRays:
    """All training frames in memory; random rays of random frames as tensors."""

    def __init__(self, clips: list[NerfClip], cfg: NerfConfig, bg: np.ndarray, mouth, mouth_weight: float,
                 device: str):
        keep = [np.flatnonzero(c.found) for c in clips]
        self.target = torch.from_numpy(np.concatenate([c.target[k] for c, k in zip(clips, keep)]))
        if len(self.target) < 2:
            raise ValueError("fewer than 2 tracked training frames: is the face visible in the videos?")
        self.person = torch.from_numpy(np.concatenate([c.person[k] for c, k in zip(clips, keep)]))
        self.state = torch.from_numpy(np.concatenate([c.state[k] for c, k in zip(clips, keep)]))
        heads = np.concatenate([c.head[k] for c, k in zip(clips, keep)])
        self.rot = torch.from_numpy(np.stack([rotation_matrix(*map(float, h)) for h in heads]).astype(np.float32))
        o, d = pixel_rays(cfg.res, cfg.camera_distance)
        self.origin = torch.from_numpy(o.astype(np.float32))
        self.dirs = torch.from_numpy(d.astype(np.float32))
        self.bg = torch.from_numpy(bg.reshape(-1, 3).astype(np.float32) / 255.0)
        w = np.ones((cfg.res, cfg.res), np.float32)
        y0, y1, x0, x1 = mouth
        w[y0:y1, x0:x1] = mouth_weight  # the mouth is what speech changes: weight its errors more
        self.weight = torch.from_numpy((w / w.mean()).reshape(-1))
        yy, xx = np.mgrid[y0:y1, x0:x1]
        self.mouth_pix = torch.from_numpy((yy * cfg.res + xx).reshape(-1).astype(np.int64))
        self.res, self.device = cfg.res, device

    def __len__(self) -> int:
        return len(self.target)

    def batch(self, n: int, g: torch.Generator):
        k = FRAMES_PER_STEP
        f = torch.randint(0, len(self), (k,), generator=g).repeat_interleave(n // k)
        pix = torch.randint(0, self.res * self.res, (len(f),), generator=g)
        m = len(f) // MOUTH_SHARE_DIV  # a quarter of the rays from the mouth box, spread over the frames
        pick = torch.randperm(len(f), generator=g)[:m]
        pix[pick] = self.mouth_pix[torch.randint(0, len(self.mouth_pix), (m,), generator=g)]
        rot = self.rot[f]  # row vectors: v @ R == R^T v carries world rays into the head's frame
        origins = torch.einsum("j,njk->nk", self.origin, rot)
        dirs = torch.einsum("nj,njk->nk", self.dirs[pix], rot)
        target = self.target.reshape(len(self), -1, 3)[f, pix].float() / 255.0
        person = self.person.reshape(len(self), -1)[f, pix].float() / 255.0
        d = self.device
        return (origins.to(d), dirs.to(d), self.state[f].to(d), self.bg[pix].to(d), target.to(d), person.to(d),
                self.weight[pix].to(d))


def _lr(step: int, total: int) -> float:
    warm = min(1.0, (step + 1) / 50)
    return warm * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * min(step / max(total, 1), 1.0))))


def preview(field: NerfField, occ: Occupancy, held: list[NerfClip], bg: torch.Tensor, path: Path) -> None:
    c = held[0]
    k = np.flatnonzero(c.found)
    k = k[np.linspace(0, len(k) - 1, min(6, len(k))).astype(int)]
    pred = [to_u8(render_crop(field, occ, c.state[i], c.head[i], bg)[0].cpu().numpy()) for i in k]
    rows = [np.concatenate(list(c.target[k]), axis=1), np.concatenate(pred, axis=1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def save_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.rename(path)


def train(a, cfg: NerfConfig, rays: TrainRays, held: list[NerfClip], work: Path) -> tuple[NerfField, Occupancy, dict]:
    dev = a.device
    g = torch.Generator().manual_seed(a.seed)
    field = NerfField(cfg, seed=a.seed)
    field.set_state_stats(rays.state)
    field = field.to(dev)
    near, far = ray_span(cfg.camera_distance)
    occ = Occupancy(cfg.occupancy_res, (far - near) / cfg.samples, device=dev)
    grid_params = [field.grid.tables]
    mlp_params = [p for n, p in field.named_parameters() if not n.startswith("grid.")]
    opt = torch.optim.Adam([{"params": grid_params, "lr": a.lr}, {"params": mlp_params, "lr": a.lr / 10}],
                           betas=(0.9, 0.99), eps=1e-15)
    step, info = 0, {"losses": {}, "occupied": None}
    # The occupancy grid's sample of codes is drawn from the fresh seed, before a checkpoint's random state is
    # restored: a resumed run draws what the uninterrupted one did, and goes on bit for bit from there.
    codes_src = rays.state[torch.randperm(len(rays), generator=g)[:256]].to(dev)
    state_path = work / "state.pt"
    if state_path.exists() and not a.no_resume:
        st = torch.load(state_path, weights_only=False, map_location=dev)
        if st.get("config") != cfg.to_dict():
            raise ValueError(f"{state_path} was made with another model configuration ({st.get('config')}); "
                             "use --no-resume or another --out")
        step, info = st["step"], st["info"]
        g.set_state(st["rng"])
        field.load_state_dict(st["field"])
        opt.load_state_dict(st["opt"])
        occ.bits = st["occ_bits"].to(dev)
        occ.density = None if st["occ_density"] is None else st["occ_density"].to(dev)
        log.info("resuming at step %d", step)
    t_start = time.perf_counter() - info.get("seconds", 0.0)
    bg_full = rays.bg.to(dev)
    bar = tqdm(total=a.steps, initial=step, desc="train", disable=a.no_progress)
    losses = []
    while step < a.steps:
        field.train()
        for grp, base in zip(opt.param_groups, (a.lr, a.lr / 10)):
            grp["lr"] = base * _lr(step, a.steps)
        o, d, s, bg, target, person, w = rays.batch(a.rays, g)
        rgb, acc, alpha = render_rays(field, o, d, field.code(s), bg, occ, cfg.samples, near, far, g, with_alpha=True)
        photo = (((rgb - target) ** 2).sum(-1) * w).mean()
        loss = photo + a.mask_weight * ((acc - person) ** 2).mean() + a.sparsity * alpha.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(photo.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if step >= OCCUPANCY_FROM and step % OCCUPANCY_EVERY == 0:
            with torch.no_grad():
                info["occupied"] = occ.update(field, field.code(codes_src), g)
        if a.preview_every and step % a.preview_every == 0 and held:
            preview(field.eval(), occ, held, bg_full, work / f"preview_{step:06d}.png")
        if step % a.ckpt_every == 0 or step == a.steps:
            info["losses"][str(step)] = float(np.mean(losses[-50:]))
            info["seconds"] = time.perf_counter() - t_start
            save_state(state_path, {"step": step, "info": info, "config": cfg.to_dict(), "rng": g.get_state(),
                                    "field": field.state_dict(), "opt": opt.state_dict(), "occ_bits": occ.bits.cpu(),
                                    "occ_density": None if occ.density is None else occ.density.cpu()})
    bar.close()
    return field.eval(), occ, info


def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, a.threads))
    from ..avatar import AvatarError
    from ..diffusion.track import TrackError

    base = CONFIGS[a.config]
    a.size = a.size or base.res
    if not 16 <= a.size <= 1024 or a.size % 8:
        print("error: --size must be a multiple of 8 in 16..1024", file=sys.stderr)
        return 2
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA device here", file=sys.stderr)
        return 2
    cfg = NerfConfig.from_dict(dict(base.to_dict(), res=a.size))
    out = Path(a.out)
    work = out / "train"
    try:
        work.mkdir(parents=True, exist_ok=True)
        avatar, box, mouth, train_clips, held = prepare(a, out)
        bg = static_background(train_clips)
        rays = TrainRays(train_clips, cfg, bg, mouth, a.mouth_weight, a.device)
        log.info("%d training frames from %d clip(s), %d held-out clip(s)", len(rays), len(train_clips), len(held))
        field, occ, info = train(a, cfg, rays, held, work)
    except (OSError, ValueError, AvatarError, TrackError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .bundle import save_nerf_bundle
    from .report import held_out_report

    field = field.cpu()
    states = rays.state.numpy()
    meta = {"model": cfg.to_dict(), "crop": box.to_dict(), "mouth_box": list(mouth),
            "state_inputs": {"min": states.min(0).round(4).tolist(), "max": states.max(0).round(4).tolist()},
            "training": {"config": a.config, "steps": a.steps, "rays": a.rays, "seconds": round(info["seconds"]),
                         "losses": info["losses"], "occupied": info["occupied"],
                         "train_clips": [c.name for c in train_clips], "heldout_clips": [c.name for c in held],
                         "train_frames": len(rays), "device": a.device}}
    save_nerf_bundle(out, field_arrays(field), occ.bits.cpu().numpy(), bg, meta)
    report = {"config": a.config, "crop": box.to_dict(), "mouth_box": list(mouth), "training": meta["training"],
              "data": {"train": [c.name for c in train_clips], "heldout": [c.name for c in held],
                       "train_frames": len(rays), "heldout_frames": int(sum(c.found.sum() for c in held))}}
    if held and not a.no_report:
        held_out_report(out, report, held)
    else:
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    log.info("bundle written to %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
