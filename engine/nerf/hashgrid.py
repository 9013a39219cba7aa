"""instant-NGP's multiresolution hash encoding of 3D positions (Müller et al. 2022), in PyTorch.

Level l has a grid of resolution N_l = floor(min_res * b**l), b chosen so the
last level is max_res. A point in [-1, 1]^3 is scaled to [0, N_l] per axis;
the 8 corners of its cell are looked up in the level's table of `features`
values, and trilinearly interpolated. A level whose (N_l + 1)^3 corners fit in
the table indexes it densely (x + y (N+1) + z (N+1)^2); a finer one hashes the
corner with the spatial hash (x * 1) xor (y * 2654435761) xor (z * 805459861)
mod table size, collisions left to training to resolve.
kernels/nerf.py computes exactly this; tests compare the two.
"""
from __future__ import annotations

import torch

from .encoding import PRIMES, dense_levels, level_resolutions

INIT_SCALE = 1e-4  # tables start near zero (instant-NGP: uniform in +-1e-4)


class HashGrid(torch.nn.Module):
    def __init__(self, levels: int, log2_table: int, features: int, min_res: int, max_res: int, seed: int = 0):
        super().__init__()
        self.levels, self.features, self.table = levels, features, 2 ** log2_table
        res = level_resolutions(levels, min_res, max_res)
        self.register_buffer("res", torch.from_numpy(res), persistent=False)
        self.register_buffer("dense", torch.from_numpy(dense_levels(res, self.table)), persistent=False)
        g = torch.Generator().manual_seed(seed)
        self.tables = torch.nn.Parameter(
            (torch.rand(levels, self.table, features, generator=g) * 2 - 1) * INIT_SCALE)
        # Corner offsets of a cell, in the order the kernel visits them (bit 0: x, bit 1: y, bit 2: z).
        off = torch.tensor([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], dtype=torch.int64)
        self.register_buffer("corners", off, persistent=False)

    @property
    def out_dim(self) -> int:
        return self.levels * self.features

    def index(self, cell: torch.Tensor, level: int) -> torch.Tensor:
        """Table index of integer corners (..., 3) at a level."""
        x, y, z = cell.unbind(-1)
        if bool(self.dense[level]):
            n = int(self.res[level]) + 1
            return x + y * n + z * n * n
        h = (x * PRIMES[0]) ^ (y * PRIMES[1]) ^ (z * PRIMES[2])
        return h & (self.table - 1)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        """(P, 3) positions in [-1, 1] (clamped) -> (P, levels * features)."""
        u = ((p.clamp(-1.0, 1.0) + 1.0) * 0.5).to(self.tables.dtype)
        out = []
        for lv in range(self.levels):
            n = int(self.res[lv])
            pos = u * n
            cell = torch.clamp(pos.floor().long(), 0, n - 1)
            f = pos - cell.to(pos.dtype)  # in [0, 1]
            acc = 0.0
            for c in range(8):
                o = self.corners[c]
                w = torch.where(o.bool(), f, 1.0 - f).prod(-1, keepdim=True)
                acc = acc + w * self.tables[lv][self.index(cell + o, lv)]
            out.append(acc)
        return torch.cat(out, dim=-1)
