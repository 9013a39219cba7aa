"""NeRF model and rendering sizes per named config (tiny: CI, small: this CPU, full: a GPU)."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class NerfConfig:
    res: int = 64  # crop resolution (res x res rays)
    levels: int = 8  # hash-grid levels
    log2_table: int = 14  # entries per level = 2**log2_table
    features: int = 2  # features per level
    min_res: int = 16  # coarsest grid resolution
    max_res: int = 256  # finest grid resolution
    expr_dim: int = 8  # learned code of the 52 coefficients
    hidden: int = 32  # width of the density and colour MLPs
    geo_features: int = 15  # density MLP outputs passed to the colour MLP (besides density)
    samples: int = 32  # samples per ray across the head volume
    occupancy_res: int = 32  # occupancy grid cells per side
    camera_distance: float = 4.0  # camera on the -z axis, head volume [-1, 1]^3: 28 deg field of view

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NerfConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown NeRF config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


CONFIGS = {
    "tiny": NerfConfig(),
    "small": NerfConfig(res=128, levels=12, log2_table=16, max_res=512, expr_dim=16, hidden=64, samples=48,
                        occupancy_res=48),
    "full": NerfConfig(res=512, levels=16, log2_table=19, max_res=2048, expr_dim=16, hidden=64, samples=64,
                       occupancy_res=64),
}
