"""Train the neural mouth on the pairs of scripts/mouth/build_data.py; export its ONNX file into engine/assets.

    .venv/bin/python scripts/mouth/train.py [--data out/mouth/pairs.npz] [--work out/mouth/train]
        [--steps 12000] [--batch 24] [--threads 2] [--seed 0] [--no-progress]
        [--init engine/assets/neural_mouth.pt --adversarial 0.1 --lr 5e-4]   (fine-tune with a lip critic)

Resumable: the state is saved to WORK/state.pt every --save-every steps and read back on start.
Previews (held-out pairs: meshwarp input | generator | real) go to WORK/preview_STEP.png.
At the end the EMA weights are exported to engine/assets/neural_mouth.onnx (+ .pt, + .json with
the configuration, data counts and held-out figures: mouth-region L1 and PSNR of the meshwarp
input and of the generator against the real frame, per held-out identity).

Loss (on what the renderer shows: the input plus the generator's change times the blend weight):
L1 + 0.5 x L1 of horizontal and vertical differences (keeps lip edges and teeth sharp), each
weighted 1 + LIP_WEIGHT inside the target's dilated lip region. Augmentations, the same on input
and target: mirror, per-channel gain, brightness, gamma, and a down-up resample (soft photos);
on the input alone: JPEG re-encoding at quality 35-90.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.neural_mouth.crop import blend_weight  # noqa: E402
from engine.neural_mouth.model import MouthNet, MouthNetConfig, export_onnx  # noqa: E402

ASSET = ROOT / "engine" / "assets" / "neural_mouth"
LIP_WEIGHT = 4.0
# Share of each batch drawn from each group (the rest: every other recording, uniformly):
# the London pairs carry the smile <-> neutral change; GRID s1 is one face and must not dominate.
GROUP_SHARE = {"london": 0.4, "grid_s1": 0.1}


def load(path: Path):
    d = np.load(path)
    split = d["split"]
    ident = d["identity"]
    parts = {}
    for name in ("train", "val"):
        k = split == name
        parts[name] = (torch.from_numpy(d["X"][k]), torch.from_numpy(d["M"][k]), torch.from_numpy(d["Y"][k]), ident[k])
    return parts


def group_of(ident: str) -> str:
    return "london" if ident.startswith("london_") else ("grid_s1" if ident == "grid_s1" else "other")


def sampling_probs(ident: np.ndarray) -> np.ndarray:
    groups = np.array([group_of(i) for i in ident])
    p = np.zeros(len(ident))
    rest = 1.0 - sum(GROUP_SHARE.values())
    for g in set(groups):
        k = groups == g
        p[k] = GROUP_SHARE.get(g, rest) / k.sum()
    return p / p.sum()


def to_tensors(x, m, y):
    x = x.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    y = y.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x, m.float() / 255.0, y


def jpeg(x: torch.Tensor, g: torch.Generator, p: float = 0.25) -> torch.Tensor:
    """Re-encode some inputs (uint8 NHWC) as JPEG at quality 35-90: photos arrive compressed, the generator
    must not copy block edges into the lips."""
    import cv2

    out = x.clone()
    pick = torch.rand(len(x), generator=g) < p
    quality = torch.randint(35, 91, (len(x),), generator=g)
    for k in torch.nonzero(pick).flatten().tolist():
        ok, buf = cv2.imencode(".jpg", out[k].numpy(), [cv2.IMWRITE_JPEG_QUALITY, int(quality[k])])
        out[k] = torch.from_numpy(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED))
    return out


def augment(x, m, y, g: torch.Generator):
    b = x.shape[0]
    flip = torch.rand(b, generator=g) < 0.5
    x, m, y = (torch.where(flip[:, None, None, None], t.flip(-1), t) for t in (x, m, y))
    gain = 1.0 + 0.15 * (torch.rand(b, 3, 1, 1, generator=g) * 2 - 1)
    bright = 0.08 * (torch.rand(b, 1, 1, 1, generator=g) * 2 - 1)
    gamma = torch.exp(0.2 * (torch.rand(b, 1, 1, 1, generator=g) * 2 - 1))

    def colour(t):
        u = ((t + 1) / 2 * gain + bright).clamp(1e-4, 1) ** gamma
        return u * 2 - 1

    x, y = colour(x), colour(y)
    soft = torch.rand(b, generator=g) < 0.3
    if soft.any():
        s = float(0.5 + 0.3 * torch.rand(1, generator=g))
        res = x.shape[-1]

        def resample(t):
            lo = F.interpolate(t, scale_factor=s, mode="bilinear", align_corners=False, antialias=True)
            return F.interpolate(lo, size=(res, res), mode="bilinear", align_corners=False)

        x = torch.where(soft[:, None, None, None], resample(x), x)
        y = torch.where(soft[:, None, None, None], resample(y), y)
    return x, m, y


def weights(m: torch.Tensor) -> torch.Tensor:
    lips = F.max_pool2d(m[:, 1:2], 9, stride=1, padding=4)  # the outer-lip fill, dilated ~4 px
    return 1.0 + LIP_WEIGHT * lips


def shown(model, x, bw):
    """What the renderer shows: the input plus the generator's change inside the blend weight."""
    return x[:, :3] + (model(x) - x[:, :3]) * bw


def loss_fn(out, y, w):
    l1 = ((out - y).abs() * w).mean()
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    grad = ((dx(out) - dx(y)).abs() * w[..., :, 1:]).mean() + ((dy(out) - dy(y)).abs() * w[..., 1:, :]).mean()
    return l1 + 0.5 * grad


def evaluate(model, val, bw, batch: int = 64) -> dict:
    """Per held-out identity: lip-region L1 and PSNR (of the blended crop) for the meshwarp input and the generator."""
    xs, ms, ys, ident = val
    sums: dict[str, np.ndarray] = {}
    model.eval()
    with torch.no_grad():
        for i in range(0, len(xs), batch):
            x, m, y = to_tensors(xs[i:i + batch], ms[i:i + batch], ys[i:i + batch])
            xin = torch.cat([x, m], 1)
            out = shown(model, xin, bw)
            lips = (F.max_pool2d(m[:, 1:2], 9, stride=1, padding=4) > 0.5).float()
            n = lips.sum((1, 2, 3)).clamp(min=1) * 3
            for name, pred in (("meshwarp", x), ("neural", out)):
                err = (pred - y) / 2  # 0..1 units
                l1 = ((err.abs() * lips).sum((1, 2, 3)) / n).numpy()
                mse = ((err ** 2 * lips).sum((1, 2, 3)) / n).numpy()
                for k, idn in enumerate(ident[i:i + batch]):
                    s = sums.setdefault(f"{idn}|{name}", np.zeros(3))
                    s += (l1[k], mse[k], 1)
    out = {}
    # PSNR of the identity's pooled squared error: a pair the warp already reproduces (a photo onto its
    # own landmarks) would otherwise count as an unbounded PSNR and swamp the mean.
    for key, (l1, mse, n) in sums.items():
        idn, name = key.split("|")
        psnr = -10 * np.log10(max(mse / n, 1e-10))
        out.setdefault(idn, {})[name] = {"lip_l1": round(l1 / n, 4), "lip_psnr_db": round(psnr, 2), "pairs": int(n)}
    return out


def preview(model, val, bw, path: Path, n: int = 8) -> None:
    from PIL import Image

    xs, ms, ys, _ = val
    idx = np.linspace(0, len(xs) - 1, n).astype(int)
    x, m, y = to_tensors(xs[idx], ms[idx], ys[idx])
    model.eval()
    with torch.no_grad():
        out = shown(model, torch.cat([x, m], 1), bw)
    rows = torch.cat([x[:, :3], out, y], 3)  # per pair: input | generator | real
    img = ((torch.cat(list(rows), 1).permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).byte().numpy()
    Image.fromarray(img).save(path)


class LipCritic(torch.nn.Module):
    """A small patch discriminator on the crop and its lip masks: 12 x 12 patch scores at 96 px.

    L1 alone averages the teeth of many people into a grey band; the critic, asked only about
    patches on and around the lips, makes the generator commit to sharp teeth and lip edges."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        act = torch.nn.LeakyReLU(0.2)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(5, w, 4, 2, 1), act, torch.nn.Conv2d(w, 2 * w, 4, 2, 1), act,
            torch.nn.Conv2d(2 * w, 4 * w, 4, 2, 1), act, torch.nn.Conv2d(4 * w, 1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([rgb, m], 1))


def lip_patches(m: torch.Tensor) -> torch.Tensor:
    """Weights of the critic's patches: the dilated outer-lip fill at patch resolution, normalised."""
    w = F.adaptive_max_pool2d(F.max_pool2d(m[:, 1:2], 9, stride=1, padding=4), 12)
    return w / w.sum((1, 2, 3), keepdim=True).clamp(min=1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("out/mouth/pairs.npz"))
    ap.add_argument("--work", type=Path, default=Path("out/mouth/train"))
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--preview-every", type=int, default=2000)
    ap.add_argument("--asset", type=Path, default=ASSET, help="output path stem (.onnx, .pt, .json are added)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--init", type=Path, help="start from these generator weights (a .pt this script exported)")
    ap.add_argument("--adversarial", type=float, default=0.0,
                    help="weight of the lip critic's loss (0: L1 and gradient L1 only)")
    a = ap.parse_args(argv)
    if not a.data.exists():
        print(f"{a.data} not found: build it with scripts/mouth/build_data.py", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    parts = load(a.data)
    xs, ms, ys, ident = parts["train"]
    probs = torch.from_numpy(sampling_probs(ident))
    bw = torch.from_numpy(blend_weight())[None, None]
    cfg = MouthNetConfig()
    model, ema = MouthNet(cfg), MouthNet(cfg)
    if a.init is not None:
        model.load_state_dict(torch.load(a.init, weights_only=True))
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.99))
    critic = LipCritic() if a.adversarial > 0 else None
    opt_c = torch.optim.Adam(critic.parameters(), lr=a.lr, betas=(0.5, 0.99)) if critic is not None else None
    g = torch.Generator().manual_seed(a.seed)
    a.work.mkdir(parents=True, exist_ok=True)
    state_path = a.work / "state.pt"
    step, seconds, history = 0, 0.0, []
    if state_path.exists():
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"]), ema.load_state_dict(st["ema"]), opt.load_state_dict(st["opt"])
        if critic is not None:
            critic.load_state_dict(st["critic"]), opt_c.load_state_dict(st["opt_c"])
        g.set_state(st["rng"])
        step, seconds, history = st["step"], st["seconds"], st["history"]
        print(f"resuming at step {step}", flush=True)
    t0 = time.perf_counter() - seconds

    def save():
        torch.save({"step": step, "seconds": time.perf_counter() - t0, "history": history, "rng": g.get_state(),
                    "model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    **({"critic": critic.state_dict(), "opt_c": opt_c.state_dict()} if critic is not None else {})},
                   state_path)

    bar = tqdm(total=a.steps, initial=step, desc="neural mouth", disable=a.no_progress)
    running = []
    while step < a.steps:
        model.train()
        lr = a.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / a.steps)))
        for grp in opt.param_groups:
            grp["lr"] = lr
        idx = torch.multinomial(probs, a.batch, replacement=True, generator=g)
        x, m, y = augment(*to_tensors(jpeg(xs[idx], g), ms[idx], ys[idx]), g)
        out = shown(model, torch.cat([x, m], 1), bw)
        loss = loss_fn(out, y, weights(m))
        if critic is not None:
            # Hinge loss on lip patches: the critic first (on a detached output), then the generator.
            pw = lip_patches(m)
            loss_c = ((F.relu(1 - critic(y, m)) + F.relu(1 + critic(out.detach(), m))) * pw).sum((1, 2, 3)).mean()
            opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            opt_c.step()
            loss = loss + a.adversarial * (-(critic(out, m) * pw).sum((1, 2, 3)).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(0.999, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(decay).add_(pm, alpha=1 - decay)
        step += 1
        running.append(loss.item())
        bar.update(1)
        if step % 100 == 0:
            history.append((step, float(np.mean(running))))
            bar.set_postfix(loss=f"{np.mean(running):.4f}")
            running = []
        if step % a.save_every == 0 or step == a.steps:
            save()
        if step % a.preview_every == 0 or step == a.steps:
            preview(ema, parts["val"], bw, a.work / f"preview_{step:06d}.png")
    bar.close()
    held = evaluate(ema, parts["val"], bw)
    mean = {k: round(float(np.mean([v[k]["lip_psnr_db"] for v in held.values()])), 2) for k in ("meshwarp", "neural")}
    a.asset.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(ema, a.asset.with_suffix(".onnx"))
    torch.save(ema.state_dict(), a.asset.with_suffix(".pt"))
    report = {
        "model": cfg.to_dict(), "steps": a.steps, "batch": a.batch, "lr": a.lr, "seed": a.seed,
        "init": None if a.init is None else a.init.name, "adversarial": a.adversarial,
        "train_seconds": round(time.perf_counter() - t0, 1), "threads": a.threads,
        "train_pairs": int(len(xs)), "train_identities": int(len(set(ident))),
        "val_pairs": int(len(parts["val"][0])), "val_identities": int(len(set(parts["val"][3]))),
        "loss_history": history[-20:], "held_out_mean_lip_psnr_db": mean, "held_out": held,
    }
    a.asset.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"held_out_mean_lip_psnr_db": mean, "train_seconds": report["train_seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
