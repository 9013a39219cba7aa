"""The denoiser: a small UNet with FiLM (scale-and-shift) conditioning on the face state.

Inputs: the noisy crop x_t, the time t in [0, 1], the condition images (the
meshwarp render of the same state = geometry hint, and the identity reference
crop) concatenated as channels, and the face-state vector. FiLM as in
EMOdiffhead eq. 12-13: each residual block normalises its features and applies
h * (1 + scale) + shift, with scale and shift predicted from an embedding of
(state, t). Output: a prediction of the clean crop x0, parameterised as the
hint plus a residual (the residual starts at zero, so an untrained model
already returns the hint and training only has to learn the corrections).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .bundle import INPUT_NAMES, OUTPUT_NAMES  # noqa: F401  (the ONNX interface)
from .data import COND_DIM


@dataclass(frozen=True)
class ModelConfig:
    res: int = 64
    base: int = 16  # channels at full resolution
    mults: tuple[int, ...] = (1, 2, 2)  # channel multiplier per level (each level halves the resolution)
    emb: int = 128
    cond_dim: int = COND_DIM

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mults"] = list(self.mults)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["mults"] = tuple(d["mults"])
        return cls(**d)


CONFIGS = {
    "tiny": ModelConfig(res=64, base=16, mults=(1, 2, 2), emb=96),
    "small": ModelConfig(res=96, base=16, mults=(1, 2, 4, 4), emb=128),
}


def _groups(c: int) -> int:
    return 8 if c % 8 == 0 else 1


class FiLMBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.n1 = nn.GroupNorm(_groups(cin), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.n2 = nn.GroupNorm(_groups(cout), cout, affine=False)
        self.film = nn.Linear(emb, 2 * cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        scale, shift = self.film(e)[:, :, None, None].chunk(2, dim=1)
        h = self.n2(h) * (1 + scale) + shift  # eq. 12-13: normalised features, scaled and shifted by the state
        h = self.c2(F.silu(h))
        return h + self.skip(x)


def time_features(t: torch.Tensor, n: int = 16) -> torch.Tensor:
    freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), n, device=t.device))
    a = t[:, None] * freqs[None] * math.pi
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class Denoiser(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        e = cfg.emb
        self.embed = nn.Sequential(nn.Linear(32 + cfg.cond_dim, e), nn.SiLU(), nn.Linear(e, e), nn.SiLU())
        chans = [cfg.base * m for m in cfg.mults]
        self.inp = nn.Conv2d(9, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        c = chans[0]
        for i, ch in enumerate(chans):
            self.down.append(FiLMBlock(c, ch, e))
            c = ch
            if i < len(chans) - 1:
                self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = FiLMBlock(c, c, e)
        self.up = nn.ModuleList()
        for i in reversed(range(len(chans))):
            self.up.append(FiLMBlock(c + chans[i], chans[i], e))
            c = chans[i]
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv2d(c, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t, t, hint, reference, state):
        e = self.embed(torch.cat([time_features(t), state], dim=1))
        h = self.inp(torch.cat([x_t, hint, reference], dim=1))
        skips = []
        for i, blk in enumerate(self.down):
            h = blk(h, e)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        h = self.mid(h, e)
        for blk in self.up:
            s = skips.pop()
            if h.shape[-1] != s.shape[-1]:
                h = F.interpolate(h, size=s.shape[-2:], mode="nearest")
            h = blk(torch.cat([h, s], dim=1), e)
        return hint + self.out(F.silu(self.out_norm(h)))


def ignore_unseen_inputs(model: Denoiser, cond, tol: float = 0.005) -> list[int]:
    """Make the model ignore state inputs that (almost) never varied in training; returns their indices.

    Their first-layer weights were never trained (a constant input carries no
    signal), so a value the training never showed (e.g. gaze, which the tracker
    does not measure) would shift the embedding at random. The constant's effect
    is folded into the bias and the column zeroed: the hint still shows them.
    """
    import numpy as np

    c = np.asarray(cond, np.float64)
    idx = [int(j) for j in np.flatnonzero(c.std(axis=0) < tol)]
    lin = model.embed[0]
    off = lin.in_features - c.shape[1]
    with torch.no_grad():
        for j in idx:
            lin.bias += lin.weight[:, off + j] * float(c[:, j].mean())
            lin.weight[:, off + j] = 0.0
    return idx
