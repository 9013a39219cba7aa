"""Train a per-identity diffusion renderer from talking videos and write its bundle (docs/design/diffusion.md).

    python -m engine.diffusion.train VIDEO_OR_DIR... --out DIR [--config tiny|small] [--size R] [--steps N]

Phases, each resumable from DIR/train/state.pt: tracking (cached), base
training (x0 prediction, cosine schedule), progressive distillation down to
`--target-steps`, ONNX export, then a held-out report (report.json / .md).
A preview PNG (rows: real, meshwarp hint, 4-step sample) is written every
`--preview-every` steps.

Here: the command's main and the training phases; its arguments and data are
in train_data.py, the speed report and report files in train_report.py.
"""
from __future__ import annotations

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

from .data import ClipData
from .distill import distill_targets, student_times
from .evaluate import evaluate, generate
from .model import CONFIGS, Denoiser, ModelConfig, ignore_unseen_inputs
from .train_data import Frames, grid_tiny_argv, parse_args, prepare
from .train_report import bench_renderer, write_report

__all__ = ["main", "grid_tiny_argv"]
log = logging.getLogger("emolive.diffusion.train")


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
