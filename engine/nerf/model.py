"""The field: hash-encoded position + a learned code of the face state -> density and colour.

    e      = expr(z)    z: coeffs[52], gaze[2] / 30 standardised (52+2 -> 32 -> expr_dim, ReLU)
    raw    = density_mlp([hash(q), e])                       (-> hidden -> 1 + geo_features, ReLU)
    sigma  = exp(min(raw[0], 15))                            (instant-NGP's truncated exponential)
    rgb    = sigmoid(colour_mlp([raw[1:], e]))               (-> hidden -> 3, ReLU)

q is the sample position in the head's canonical frame (the ray rotated by the
head pose, engine/nerf/rays.py), so pose is geometry and the state code only
changes the face (EmoHead's θ(α̂, x) -> (c, σ); no view direction: the camera
hardly moves relative to a talking head).
"""
from __future__ import annotations

import numpy as np
import torch

from .config import NerfConfig
from .hashgrid import HashGrid
from .weights import STATE_DIM, STATE_STD_FLOOR, STATE_Z_MAX, frame_weights

SIGMA_MAX_LOG = 15.0
INIT_LOG_SIGMA = -2.0


class NerfField(torch.nn.Module):
    def __init__(self, cfg: NerfConfig, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.cfg = cfg
        self.grid = HashGrid(cfg.levels, cfg.log2_table, cfg.features, cfg.min_res, cfg.max_res, seed=seed)
        # The state is standardised with its training mean and spread before the encoder (set by the trainer):
        # a talking video moves most coefficients by a few hundredths, too little for the code to notice.
        self.register_buffer("state_mean", torch.zeros(STATE_DIM))
        self.register_buffer("state_std", torch.ones(STATE_DIM))
        self.expr = torch.nn.Sequential(torch.nn.Linear(STATE_DIM, 32), torch.nn.ReLU(),
                                        torch.nn.Linear(32, cfg.expr_dim))
        self.d1 = torch.nn.Linear(self.grid.out_dim + cfg.expr_dim, cfg.hidden)
        self.d2 = torch.nn.Linear(cfg.hidden, 1 + cfg.geo_features)
        self.c1 = torch.nn.Linear(cfg.geo_features + cfg.expr_dim, cfg.hidden)
        self.c2 = torch.nn.Linear(cfg.hidden, 3)
        with torch.no_grad():  # start as a thin haze (sigma ~ 0.14): rays see the background, density grows
            self.d2.bias[0] = INIT_LOG_SIGMA  # where the photometric loss asks for it

    def set_state_stats(self, states: torch.Tensor) -> None:
        """Standardise with these training states' mean and spread (floored at STATE_STD_FLOOR)."""
        self.state_mean.copy_(states.mean(0))
        self.state_std.copy_(states.std(0).clamp_min(STATE_STD_FLOOR))

    def code(self, states: torch.Tensor) -> torch.Tensor:
        """(B, STATE_DIM) -> (B, expr_dim)."""
        z = ((states - self.state_mean) / self.state_std).clamp(-STATE_Z_MAX, STATE_Z_MAX)
        return self.expr(z)

    def forward(self, q: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, 3) canonical positions and (P, expr_dim) codes -> sigma (P,), rgb (P, 3)."""
        h = torch.relu(self.d1(torch.cat([self.grid(q), e], -1)))
        raw = self.d2(h)
        sigma = torch.exp(torch.clamp(raw[:, 0], max=SIGMA_MAX_LOG))
        c = torch.relu(self.c1(torch.cat([raw[:, 1:], e], -1)))
        return sigma, torch.sigmoid(self.c2(c))

    def density(self, q: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.d1(torch.cat([self.grid(q), e], -1)))
        return torch.exp(torch.clamp(self.d2(h)[:, 0], max=SIGMA_MAX_LOG))

    def kernel_weights(self, state: np.ndarray) -> dict[str, np.ndarray]:
        """The arrays kernels/nerf.py renders one frame with (see frame_weights)."""
        return frame_weights(field_arrays(self), state)


def field_arrays(field: NerfField) -> dict[str, np.ndarray]:
    """The field's parameters as float32 numpy arrays, by state_dict name (what a bundle's field.npz holds)."""
    return {k: np.ascontiguousarray(v.detach().cpu().numpy(), np.float32) for k, v in field.state_dict().items()}
