"""NeRF bundles for tests that need one but not its quality: an untrained field over the default avatar."""
from __future__ import annotations

from pathlib import Path


def untrained_nerf_bundle(avatar, out: Path, config: str = "tiny", seed: int = 0) -> Path:
    """A valid bundle whose field is freshly initialised (seeded) and whose tables are perturbed so it draws a
    visible, state-dependent head; occupancy all set, background cut from the avatar."""
    import numpy as np
    import torch

    from engine.avatar import save_avatar
    from engine.diffusion.crop import face_box, mouth_box
    from engine.nerf.bundle import save_nerf_bundle
    from engine.nerf.config import CONFIGS
    from engine.nerf.data import HEAD_MARGIN
    from engine.nerf.model import NerfField, field_arrays

    cfg = CONFIGS[config]
    field = NerfField(cfg, seed=seed)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        field.grid.tables.add_(torch.randn(field.grid.tables.shape, generator=g) * 0.5)
    box = face_box(avatar.landmarks, avatar.size, cfg.res, margin=HEAD_MARGIN)
    save_avatar(avatar, out / "avatar")
    meta = {"model": cfg.to_dict(), "crop": box.to_dict(), "mouth_box": list(mouth_box(avatar.landmarks, box)),
            "training": {"config": config, "steps": 0}}
    save_nerf_bundle(out, field_arrays(field), np.ones(cfg.occupancy_res ** 3, bool), box.cut(avatar.image), meta)
    return out
