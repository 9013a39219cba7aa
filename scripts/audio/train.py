"""Train the causal audio->expression net on real GRID s1 + synthetic espeak-ng speech.

Reads build/audio/real_s1.npz and build/audio/synthetic.npz (build_dataset.py),
augments on the fly (augment.py), trains on CPU with one torch thread and one
data worker, and writes engine/assets/audio_expression.pt (weights + config).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/audio/train.py --epochs 30 --vtlp 0.6
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from augment import colored_noise, random_augment  # noqa: E402

from engine.audio.features import logmel, mel_filterbank  # noqa: E402
from engine.audio.net import ExpressionNet  # noqa: E402
from engine.audio.spec import MOUTH_OPEN_WEIGHTS, N_SPEECH, SPEECH_COEFFS  # noqa: E402

BUILD = ROOT / "build" / "audio"
FRAMES = 300  # 3 s crops
JAW = SPEECH_COEFFS.index("jawOpen")
CLOSE = SPEECH_COEFFS.index("mouthClose")
# mouth-opening proxy (engine.audio.spec) as a weight vector over the speech outputs
MOUTH_W = torch.tensor([MOUTH_OPEN_WEIGHTS.get(n, 0.0) for n in SPEECH_COEFFS])
HP_WIN = 51  # ~0.5 s at 100 Hz: the slow envelope removed by the evaluation


class Data(torch.utils.data.Dataset):
    """Items 0..n_real-1 are real clips, the rest synthetic utterances; each call re-augments."""

    def __init__(self, real: dict, synth: dict, real_idx: np.ndarray, augment: bool, seed: int, vtlp: float = 0.6):
        self.real, self.synth, self.real_idx, self.augment, self.seed = real, synth, real_idx, augment, seed
        self.vtlp = vtlp  # probability of a vocal-tract-length warp per item
        self.a_off = np.concatenate([[0], np.cumsum(synth["audio_len"])]) if synth else None
        self.t_off = np.concatenate([[0], np.cumsum(synth["target_len"])]) if synth else None
        self.n_synth = len(synth["audio_len"]) if synth else 0
        self.calls = 0

    def __len__(self) -> int:
        return len(self.real_idx) + self.n_synth

    def _get(self, i: int):
        if i < len(self.real_idx):
            j = self.real_idx[i]
            return (self.real["audio"][j], self.real["target"][j], self.real["vad"][j], self.real["mask"][j],
                    _phones(self.real, j, self.real["target"].shape[1]))
        k = i - len(self.real_idx)
        x = self.synth["audio"][self.a_off[k]:self.a_off[k + 1]]
        t0, t1 = self.t_off[k], self.t_off[k + 1]
        ph = self.synth["phone"][t0:t1] if "phone" in self.synth else np.zeros(t1 - t0, np.int16)
        return x, self.synth["target"][t0:t1], self.synth["vad"][t0:t1], np.ones(t1 - t0, bool), ph

    def __getitem__(self, i: int):
        # deterministic per (seed, item, visit): reruns draw the same augmentations
        rng = np.random.default_rng([self.seed, i, self.calls])
        self.calls += 1
        x, tg, vad, mask, ph = self._get(i)
        x = x.astype(np.float32)
        if self.augment and rng.random() < 0.06:
            # No speech at all, only a noise floor: the mouth must stay shut and voice activity low.
            x = (colored_noise(x.size, rng.choice(["white", "pink", "brown"]), rng)
                 * 10 ** (rng.uniform(-90, -35) / 20)).astype(np.float32)
            tg, vad, ph = np.zeros_like(tg), np.zeros_like(vad), np.zeros_like(ph)
        elif self.augment:
            def babble(n):
                parts = [self._get(int(rng.integers(len(self))))[0] for _ in range(3)]
                b = sum(np.resize(p, n) for p in parts)
                return b / (b.std() + 1e-9)
            x, tg, vad, ph = random_augment(x, tg, vad, rng, babble, ph)
            mask = np.interp(np.arange(tg.shape[0]), np.linspace(0, tg.shape[0] - 1, mask.size), mask) > 0.999
        n = min(tg.shape[0], len(x) // 160 + 1)
        if n > FRAMES:  # random 3 s crop (at 10 ms steps, matching the feature grid)
            s = int(rng.integers(0, n - FRAMES + 1)) if self.augment else 0
            x, tg, vad, mask = x[s * 160:(s + FRAMES) * 160 + 160], tg[s:s + FRAMES], vad[s:s + FRAMES], mask[s:s + FRAMES]
            ph = ph[s:s + FRAMES]
        # vocal-tract-length perturbation: the real data has one male voice
        fb = mel_filterbank(warp=rng.uniform(0.9, 1.25)) if self.augment and rng.random() < self.vtlp else None
        f = logmel(x, fb)[:FRAMES]
        m = min(f.shape[0], tg.shape[0])
        pad = FRAMES - m
        f = np.pad(f[:m], ((0, pad), (0, 0)), constant_values=np.log(1e-8))
        tg = np.pad(tg[:m], ((0, pad), (0, 0)))
        vad = np.pad(vad[:m], (0, pad))
        mask = np.pad(mask[:m], (0, pad))
        ph = np.pad(ph[:m], (0, FRAMES - min(m, ph.shape[0])))[:FRAMES]
        return torch.from_numpy(f), torch.from_numpy(tg.astype(np.float32)), torch.from_numpy(vad.astype(np.float32)), \
            torch.from_numpy(mask.astype(np.float32)), torch.from_numpy(ph.astype(np.int64))


def _phones(real: dict, j: int, n: int) -> np.ndarray:
    return real["phone"][j] if "phone" in real else np.zeros(n, np.int16)


def loss_fn(net: ExpressionNet, f, tg, vad, mask, ph=None, phone_head=None, phone_weight: float = 0.0):
    fs, hs = net.initial_state(f.shape[0])
    out, _, _, h = net(f, fs, hs, hidden=True)
    d = net.delay
    y, t, v, m = out[:, d:], tg[:, :-d], vad[:, :-d], mask[:, :-d]
    w = torch.ones(N_SPEECH)
    w[JAW] = 4.0
    w[CLOSE] = 4.0  # lips closed mid-word (m, b, p): rare frames that every viewer sees
    coeff = ((y[..., :N_SPEECH] - t) ** 2 * w).mean(-1)
    coeff = (coeff * m).sum() / m.sum().clamp(min=1) * 20.0
    bce = torch.nn.functional.binary_cross_entropy_with_logits(y[..., N_SPEECH], v)
    # Fast mouth motion matters most: also fit the mouth opening with its 0.5 s moving average removed.
    mp, mt = y[..., :N_SPEECH] @ MOUTH_W, t @ MOUTH_W

    def hp(s):
        return s - torch.nn.functional.avg_pool1d(s[:, None], HP_WIN, 1, HP_WIN // 2, count_include_pad=False)[:, 0]
    fast = (((hp(mp) - hp(mt)) ** 2) * m).sum() / m.sum().clamp(min=1) * 40.0
    total = coeff + 0.2 * bce + fast
    if phone_head is not None and phone_weight > 0:
        # Which phoneme sounds (espeak-ng's labels, on the same delayed step): a speaker-independent
        # description of the sound for the shared features; the head is dropped after training.
        logits = phone_head(h)[:, :, d:]
        total = total + phone_weight * torch.nn.functional.cross_entropy(logits, ph[:, :-d])
    return total, coeff.item(), bce.item(), y


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-12))


def hp_np(x: np.ndarray) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    return x - uniform_filter1d(x, HP_WIN, mode="nearest")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--channels", type=int, default=96)
    ap.add_argument("--delay", type=int, default=6, help="look-ahead in 10 ms frames")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vtlp", type=float, default=0.6, help="probability of vocal-tract-length perturbation")
    ap.add_argument("--phone-weight", type=float, default=0.0,
                    help="weight of the training-only phoneme classification head (0: none)")
    ap.add_argument("--out", default=str(ROOT / "engine" / "assets" / "audio_expression.pt"))
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    real = dict(np.load(BUILD / "real_s1.npz"))
    synth = dict(np.load(BUILD / "synthetic.npz")) if (BUILD / "synthetic.npz").exists() else None
    idx = np.arange(len(real["names"]))
    val_idx, train_idx = idx[idx % 20 == 0], idx[idx % 20 != 0]  # 5 % of s1 clips for monitoring
    train = Data(real, synth, train_idx, True, args.seed, args.vtlp)
    val = Data(real, None, val_idx, False, args.seed)
    net = ExpressionNet(channels=args.channels, delay=args.delay)
    n_phones = len(real["phones"]) if "phones" in real else 1
    phone_head = torch.nn.Conv1d(args.channels, n_phones, 1) if args.phone_weight > 0 else None
    feats = np.concatenate([logmel(real["audio"][j]) for j in train_idx[:200]])
    net.feat_mean.copy_(torch.from_numpy(feats.mean(0)))
    net.feat_std.copy_(torch.from_numpy(feats.std(0) + 1e-3))
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch, shuffle=True, num_workers=1,
                                         persistent_workers=True, drop_last=True)
    params = list(net.parameters()) + (list(phone_head.parameters()) if phone_head is not None else [])
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * len(loader)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.05)
    vf, vt, vv, vm, _ = (torch.stack(z) for z in zip(*[val[i] for i in range(len(val))]))
    print(f"train items {len(train)} (real {len(train_idx)}), val clips {len(val)}, params "
          f"{sum(p.numel() for p in net.parameters())}", flush=True)
    bar = tqdm(total=steps, desc="train", mininterval=5)
    for ep in range(args.epochs):
        net.train()
        for f, tg, vad, mask, ph in loader:
            loss, lc, lb, _ = loss_fn(net, f, tg, vad, mask, ph, phone_head, args.phone_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(coeff=f"{lc:.3f}", vad=f"{lb:.3f}")
        net.eval()
        with torch.no_grad():
            _, lc, lb, y = loss_fn(net, vf, vt, vv, vm)
        d = args.delay
        mp, mt = (y[..., :N_SPEECH] @ MOUTH_W).numpy(), (vt[:, :-d] @ MOUTH_W).numpy()
        rs = [pearson(mp[i], mt[i]) for i in range(len(val))]
        hs = [pearson(hp_np(mp[i]), hp_np(mt[i])) for i in range(len(val))]
        tqdm.write(f"epoch {ep + 1}: val coeff {lc:.4f} vad {lb:.4f} mouth r {np.mean(rs):.3f} "
                   f"envelope-removed r {np.mean(hs):.3f}")
        torch.save({"state_dict": net.state_dict(), "config": {"channels": args.channels, "delay": args.delay,
                    "dilations": list(net.dilations)}, "epoch": ep + 1}, args.out)
    bar.close()


if __name__ == "__main__":
    main()
