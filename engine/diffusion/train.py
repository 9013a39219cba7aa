"""Train a per-identity diffusion renderer from talking videos and write its bundle (docs/design/diffusion.md).

    python -m engine.diffusion.train VIDEO_OR_DIR... --out DIR [--config tiny|small] [--size R] [--steps N]

Phases, each resumable from DIR/train/state.pt: tracking (cached), base
training (x0 prediction, cosine schedule), progressive distillation down to
`--target-steps`, ONNX export, then a held-out report (report.json / .md).
A preview PNG (rows: real, meshwarp hint, 4-step sample) is written every
`--preview-every` steps.
"""
from __future__ import annotations

import argparse
import copy
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

from .crop import face_box, mouth_box
from .data import ClipData, cache_key, clip_data, list_videos, make_reference_avatar
from .distill import distill_targets, student_times
from .evaluate import evaluate, generate, to_model
from .model import CONFIGS, Denoiser, ModelConfig, ignore_unseen_inputs

log = logging.getLogger("emolive.diffusion.train")
REPO = Path(__file__).resolve().parents[2]
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


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="emolive avatar train --backend diffusion", description=__doc__.splitlines()[0])
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
    ap.add_argument("--heldout", type=int, default=None,
                    help="hold out the last N videos for the report (default ~10%%; one video: its last 15%%)")
    ap.add_argument("--heldout-names", nargs="*", default=None, help="hold out these videos (file stems)")
    ap.add_argument("--max-clips", type=int, default=0, help="use at most this many training videos (0 = all)")
    ap.add_argument("--avatar-size", type=int, default=256)
    ap.add_argument("--cache", default=str(REPO / "build" / "diffusion" / "cache"))
    ap.add_argument("--preview-every", type=int, default=250)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-resume", action="store_true", help="start over even if DIR/train/state.pt exists")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--no-report", action="store_true", help="skip the held-out evaluation and speed report")
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


def prepare(a, out: Path):
    """Reference avatar, crop, and the tracked training / held-out clips."""
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
    box = face_box(avatar.landmarks, avatar.size, a.size)
    mouth = mouth_box(avatar.landmarks, box)
    cache = Path(a.cache) / cache_key(avatar, box)
    train, held = [], []
    for v in tqdm(train_v + held_v, desc="track", disable=a.no_progress):
        (train if v in train_v else held).append(clip_data(v, avatar, mw, box, cache))
    if not held_v:  # one video: its last 15% is the held-out part
        c = train[0]
        cut = int(len(c.found) * 0.85)
        train, held = [_slice(c, slice(0, cut), "")], [_slice(c, slice(cut, None), "#heldout")]
    ref = box.cut(avatar.image)
    return avatar, box, mouth, ref, train, held


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


# ----------------------------------------------------------------------------- training

def _lr(step: int, total: int, lr: float) -> float:
    warm = min(1.0, (step + 1) / 50)
    return lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step / max(total, 1), 1.0))))


def _ema_update(ema: Denoiser, model: Denoiser, decay: float, step: int) -> None:
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.mul_(d).add_(pm.detach(), alpha=1 - d)


def torch_denoise(model: Denoiser):
    def run(x, t, hint, ref, cond):
        with torch.no_grad():
            return model(*(torch.from_numpy(np.ascontiguousarray(v)) for v in (x, t, hint, ref, cond))).numpy()
    return run


def preview(model: Denoiser, held: list[ClipData], ref, path: Path, steps: int) -> None:
    c = held[0]
    k = np.flatnonzero(c.found)
    k = k[np.linspace(0, len(k) - 1, min(6, len(k))).astype(int)]
    pred = generate(torch_denoise(model.eval()), c.hint[k], ref, c.cond[k], steps)
    rows = [np.concatenate(list(x), axis=1) for x in (c.target[k], c.hint[k], pred)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def save_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.rename(path)


def run_phases(a, cfg: ModelConfig, frames: Frames, held, ref, work: Path) -> tuple[Denoiser, Denoiser, dict]:
    """Base training then distillation rounds; returns (teacher EMA, final student EMA, log)."""
    g = torch.Generator().manual_seed(a.seed)
    torch.manual_seed(a.seed)
    state_path = work / "state.pt"
    st = torch.load(state_path, weights_only=False) if state_path.exists() and not a.no_resume else None
    rounds = int(round(math.log2(a.teacher_steps / a.target_steps)))
    model, ema = Denoiser(cfg), Denoiser(cfg)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    phase, rnd, step, teacher = "base", 0, 0, None
    info = {"base_steps": a.steps, "distill_rounds": rounds, "distill_steps": a.distill_steps, "losses": {}}
    if st is not None:
        if st.get("config") != cfg.to_dict():
            raise ValueError(f"{state_path} was made with another model configuration ({st.get('config')}); "
                             "use --no-resume or another --out")
        phase, rnd, step, info = st["phase"], st["round"], st["step"], st["info"]
        g.set_state(st["rng"])
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        if st.get("teacher") is not None:
            teacher = Denoiser(cfg)
            teacher.load_state_dict(st["teacher"])
        log.info("resuming: phase %s round %d step %d", phase, rnd, step)
    t_start = time.perf_counter() - info.get("seconds", 0.0)

    def checkpoint():
        info["seconds"] = time.perf_counter() - t_start
        save_state(state_path, {"phase": phase, "round": rnd, "step": step, "info": info, "config": cfg.to_dict(),
                                "rng": g.get_state(), "model": model.state_dict(),
                                "ema": ema.state_dict(), "opt": opt.state_dict(),
                                "teacher": teacher.state_dict() if teacher is not None else None})

    while phase != "done":
        total = a.steps if phase == "base" else a.distill_steps
        n_teacher = a.teacher_steps // 2 ** rnd
        lr = a.lr if phase == "base" else a.lr * 0.5
        desc = "train" if phase == "base" else f"distill {n_teacher}->{n_teacher // 2}"
        bar = tqdm(total=total, initial=step, desc=desc, disable=a.no_progress)
        losses = []
        while step < total:
            model.train()
            for grp in opt.param_groups:
                grp["lr"] = _lr(step, total, lr)
            x0, hint, rf, cond = frames.batch(a.batch, g)
            eps = torch.randn(x0.shape, generator=g)
            if phase == "base":
                t = torch.rand(a.batch, generator=g)
            else:
                t = student_times(a.batch, n_teacher, g)
            al, sg = torch.cos(math.pi * t / 2)[:, None, None, None], torch.sin(math.pi * t / 2)[:, None, None, None]
            x_t = al * x0 + sg * eps
            target = x0 if phase == "base" else distill_targets(teacher, x_t, t, n_teacher, (hint, rf, cond))
            pred = model(x_t, t, hint, rf, cond)
            loss = ((pred - target) ** 2 * frames.weight).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            _ema_update(ema, model, a.ema, step)
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if a.preview_every and step % a.preview_every == 0 and held:
                steps_now = a.teacher_steps if phase == "base" else n_teacher // 2
                preview(ema, held, ref, work / f"preview_{desc.split()[0]}{rnd}_{step:06d}.png", min(steps_now, 4))
            if step % a.ckpt_every == 0 or step == total:
                info["losses"][f"{phase}{rnd}"] = float(np.mean(losses[-50:]))
                checkpoint()
        bar.close()
        if phase == "base":
            torch.save(ema.state_dict(), work / "base.pt")
        nxt = 0 if phase == "base" else rnd + 1
        if nxt < rounds:
            # The next round's teacher is this phase's EMA model; the student starts from it.
            teacher = copy.deepcopy(ema).eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
            model.load_state_dict(ema.state_dict())
            opt = torch.optim.Adam(model.parameters(), lr=a.lr * 0.5)
            phase, rnd, step = "distill", nxt, 0
        else:
            phase = "done"
        checkpoint()
    base = Denoiser(cfg)
    base.load_state_dict(torch.load(work / "base.pt"))
    return base.eval(), ema.eval(), info


# ----------------------------------------------------------------------------- bundle and report

def bench_renderer(out: Path, steps_list=(1, 2, 4), frames: int = 10, threads: int = 1) -> dict:
    """ms per full frame (meshwarp + denoiser steps + paste) of the bundle's renderer, ONNX Runtime on the CPU."""
    from ..renderers.diffusion import _create
    from ..types import FaceState

    res = {}
    for s in steps_list:
        r = _create(str(out), device="cpu", steps=s, threads=threads)
        states = [FaceState.from_dict({"jawOpen": 0.3 * (i % 3), "mouthSmileLeft": 0.2}) for i in range(frames + 2)]
        r.render(states[0])
        t0 = time.perf_counter()
        for st in states[2:]:
            r.render(st)
        res[str(s)] = round(1000 * (time.perf_counter() - t0) / frames, 1)
        r.close()
    return {"CPUExecutionProvider": res}


def write_report(out: Path, report: dict) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    h = report["heldout"]
    lines = [f"# Diffusion renderer report: {out.name}", "",
             f"Held-out: {report['data']['heldout_frames']} frames of {len(report['data']['heldout'])} clip(s); "
             f"crop {report['crop']['res']}x{report['crop']['res']} px. Higher is better.", "",
             "| renderer | steps | PSNR dB | SSIM | mouth PSNR dB |", "|---|---|---|---|---|"]
    m = h["meshwarp"]
    lines.append(f"| meshwarp | - | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['mouth_psnr']:.2f} |")
    for name, block in (("diffusion (distilled, ONNX Runtime)", h.get("diffusion", {})),
                        ("undistilled base (PyTorch)", h.get("base", {}))):
        for s, v in block.items():
            lines.append(f"| {name} | {s} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['mouth_psnr']:.2f} |")
    lines += ["", "ms per frame (full render, this machine): " +
              ", ".join(f"{p} {s} steps {ms} ms" for p, d in report["speed"].items() for s, ms in d.items()), ""]
    (out / "report.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, a.threads))
    from ..avatar import AvatarError
    from .track import TrackError

    base_cfg = CONFIGS[a.config]
    a.size = a.size or base_cfg.res
    if not 32 <= a.size <= 512 or a.size % 8:
        print("error: --size must be a multiple of 8 in 32..512", file=sys.stderr)
        return 2
    cfg = ModelConfig.from_dict(dict(base_cfg.to_dict(), res=a.size))
    out = Path(a.out)
    work = out / "train"
    try:
        work.mkdir(parents=True, exist_ok=True)
        avatar, box, mouth, ref, train, held = prepare(a, out)
        frames = Frames(train, ref, mouth)
        log.info("%d training frames from %d clip(s), %d held-out clip(s)", len(frames), len(train), len(held))
        base, student, info = run_phases(a, cfg, frames, held, ref, work)
    except (OSError, ValueError, AvatarError, TrackError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cond = frames.cond.numpy()
    ignored = ignore_unseen_inputs(student, cond)
    ignore_unseen_inputs(base, cond)

    from .export import save_bundle
    from .runtime import OrtRunner

    meta = save_bundle(out, student, box, mouth, ref, steps=a.target_steps, seed=a.seed, extra={
        "state_inputs": {"ignored": ignored, "min": cond.min(0).round(4).tolist(),
                         "max": cond.max(0).round(4).tolist()},
        "distillation": {"method": "progressive", "teacher_steps": a.teacher_steps, "student_steps": a.target_steps,
                         "rounds": info["distill_rounds"], "steps_per_round": a.distill_steps},
        "training": {"config": a.config, "base_steps": a.steps, "batch": a.batch, "seconds": round(info["seconds"]),
                     "losses": info["losses"], "train_clips": [c.name for c in train],
                     "heldout_clips": [c.name for c in held], "train_frames": len(frames)}})
    runner = OrtRunner(out / "denoiser.onnx", device="cpu", threads=a.threads)
    report = {"config": a.config, "crop": box.to_dict(), "mouth_box": list(mouth),
              "data": {"train": [c.name for c in train], "heldout": [c.name for c in held],
                       "train_frames": len(frames), "heldout_frames": int(sum(c.found.sum() for c in held))}}
    if held and not a.no_report:
        h = evaluate(runner, held, ref, mouth, steps_list=sorted({1, 2, a.target_steps}), seed=a.seed)
        hb = evaluate(torch_denoise(base), held, ref, mouth, steps_list=(a.teacher_steps,), seed=a.seed)
        h["base"] = hb["diffusion"]
        report["heldout"] = h
    report["speed"] = {} if a.no_report else bench_renderer(out, threads=a.threads)
    report["training"] = meta["training"]
    if "heldout" in report:
        write_report(out, report)
    else:
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    log.info("bundle written to %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
