"""Volume rendering of the field along rays, with the occupancy grid (PyTorch: training, CUDA, reference).

Samples are evenly spaced over the span that holds the head volume (jittered
within their interval in training); a sample outside the cube or in an empty
occupancy cell has no density and costs nothing. Standard emission-absorption
compositing over a background colour per ray:
    alpha_i = 1 - exp(-sigma_i delta),  T_i = exp(-sum_{j<i} sigma_j delta),  w_i = alpha_i T_i
    rgb = sum w_i c_i + (1 - sum w_i) bg
kernels/nerf.py is the CPU path of the same computation (plus early ray termination).
"""
from __future__ import annotations

import torch

from .model import NerfField

OCCUPIED_SIGMA_DELTA = 1e-2  # a cell is occupied while a sample in it could stop 1 % of the light
OCCUPANCY_DECAY = 0.8  # per update (instant-NGP: 0.95 over far longer runs): old densities fade unless seen again


class Occupancy:
    """A res^3 grid over the canonical cube: cell (x, y, z) at flat index x + y res + z res^2."""

    def __init__(self, res: int, delta: float, bits: torch.Tensor | None = None, device: str = "cpu"):
        self.res, self.delta = int(res), float(delta)
        self.density: torch.Tensor | None = None  # not measured yet: everything occupied
        self.bits = (torch.ones(self.res ** 3, dtype=torch.bool, device=device) if bits is None
                     else bits.bool().reshape(-1).to(device))

    def cell(self, q: torch.Tensor) -> torch.Tensor:
        c = torch.clamp(((q + 1.0) * 0.5 * self.res).floor().long(), 0, self.res - 1)
        return c[..., 0] + c[..., 1] * self.res + c[..., 2] * self.res * self.res

    def mask(self, q: torch.Tensor) -> torch.Tensor:
        inside = (q.abs() <= 1.0).all(-1)
        return inside & self.bits[self.cell(q)]

    @torch.no_grad()
    def update(self, field: NerfField, codes: torch.Tensor, g: torch.Generator) -> float:
        """Re-measure every cell's density at a random point with a random code; returns the occupied share."""
        n = self.res
        idx = torch.arange(n ** 3)
        xyz = torch.stack([idx % n, (idx // n) % n, idx // (n * n)], -1).float()
        q = ((xyz + torch.rand(xyz.shape, generator=g)) / n * 2.0 - 1.0).to(codes.device)
        e = codes[torch.randint(0, len(codes), (len(q),), generator=g).to(codes.device)]
        sig = torch.cat([field.density(q[i:i + 65536], e[i:i + 65536]) for i in range(0, len(q), 65536)])
        self.density = sig if self.density is None else torch.maximum(self.density * OCCUPANCY_DECAY, sig)
        self.bits = self.density * self.delta > OCCUPIED_SIGMA_DELTA
        return float(self.bits.float().mean())


def sample_t(n_rays: int, samples: int, near: float, far: float, g: torch.Generator | None) -> torch.Tensor:
    """(R, S) distances along the rays: interval midpoints, or uniform within each interval when g is given."""
    u = torch.rand(n_rays, samples, generator=g) if g is not None else torch.full((n_rays, samples), 0.5)
    return near + (torch.arange(samples).float() + u) * ((far - near) / samples)  # CPU: the generator is a CPU one


def render_rays(field: NerfField, origins: torch.Tensor, dirs: torch.Tensor, codes: torch.Tensor,
                bg: torch.Tensor, occ: Occupancy, samples: int, near: float, far: float,
                g: torch.Generator | None = None, with_alpha: bool = False):
    """Colour (R, 3) and opacity (R,) of rays: origins (R, 3) or (3,), dirs (R, 3), codes (R, E), bg (R, 3);
    with_alpha: also the samples' alpha (R, S), for a sparsity loss."""
    n = len(dirs)
    delta = (far - near) / samples
    dev = dirs.device
    t = sample_t(n, samples, near, far, g).to(dev)
    q = origins.reshape(-1, 1, 3) + t[..., None] * dirs[:, None, :]  # (R, S, 3)
    m = occ.mask(q)
    sigma = torch.zeros(n, samples, device=dev)
    rgb = torch.zeros(n, samples, 3, device=dev)
    if bool(m.any()):
        where = m.nonzero(as_tuple=True)
        s, c = field(q[m], codes[where[0]])
        sigma = sigma.index_put(where, s)
        rgb = rgb.index_put(where, c)
    tau = sigma * delta
    alpha = 1.0 - torch.exp(-tau)
    trans = torch.exp(-(torch.cumsum(tau, 1) - tau))
    w = alpha * trans
    acc = w.sum(1)
    out = (w[..., None] * rgb).sum(1) + (1.0 - acc)[:, None] * bg
    return (out, acc, alpha) if with_alpha else (out, acc)


@torch.no_grad()
def render_crop(field: NerfField, occ: Occupancy, state, head, bg: torch.Tensor, chunk: int = 8192
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One frame's crop (res, res, 3) in [0, 1] and opacity (res, res) for a state vector (54,) and head pose;
    bg (res * res, 3) in [0, 1]. Midpoint samples: deterministic."""
    from .rays import canonical_rays, ray_span

    cfg = field.cfg
    dev = bg.device
    o, d = canonical_rays(cfg.res, cfg.camera_distance, head)
    o, d = torch.from_numpy(o).to(dev), torch.from_numpy(d).to(dev)
    code = field.code(torch.as_tensor(state, dtype=torch.float32, device=dev)[None])
    near, far = ray_span(cfg.camera_distance)
    rgb, acc = [], []
    for i in range(0, len(d), chunk):
        c, a = render_rays(field, o, d[i:i + chunk], code.expand(len(d[i:i + chunk]), -1), bg[i:i + chunk], occ,
                           cfg.samples, near, far)
        rgb.append(c)
        acc.append(a)
    return torch.cat(rgb).reshape(cfg.res, cfg.res, 3), torch.cat(acc).reshape(cfg.res, cfg.res)
