"""The NeRF bundle on disk (docs/design/nerf.md).

    DIR/nerf.json        format "emolive-nerf", version 1: model config, head crop and mouth boxes, state ranges,
                         training summary
    DIR/field.npz        the field's parameters (float32, PyTorch state_dict names)
    DIR/occupancy.npy    the occupancy grid (bool, occupancy_res^3, flat index x + y r + z r^2)
    DIR/background.png   the static background layer behind the head (res x res)
    DIR/avatar/          the meshwarp avatar of the reference frame: draws the frame the head crop is pasted into
    DIR/report.json|md   held-out quality and speed measured at the end of training
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..diffusion.crop import CropBox
from ..io.manifest import read_manifest
from .config import NerfConfig

FORMAT = "emolive-nerf"
VERSION = 1


class NerfBundleError(RuntimeError):
    """A NeRF bundle is missing or malformed."""


@dataclass(eq=False)
class NerfBundle:
    path: Path
    avatar: object  # engine.avatar.Avatar
    config: NerfConfig
    box: CropBox
    mouth: tuple[int, int, int, int]
    arrays: dict  # name -> float32 array
    occupancy: np.ndarray  # (occupancy_res^3,) bool
    background: np.ndarray  # (res, res, 3) uint8
    meta: dict = field(default_factory=dict)


def is_nerf_bundle(path) -> bool:
    return path is not None and (Path(path) / "nerf.json").is_file()


def save_nerf_bundle(out: Path, arrays: dict, occupancy: np.ndarray, background: np.ndarray, meta: dict) -> None:
    """Write the bundle files (the avatar/ folder is written before training)."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "field.tmp.npz", **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
    (out / "field.tmp.npz").rename(out / "field.npz")
    np.save(out / "occupancy.tmp.npy", np.asarray(occupancy, bool).reshape(-1))
    (out / "occupancy.tmp.npy").rename(out / "occupancy.npy")
    Image.fromarray(background).save(out / "background.png")
    tmp = out / "nerf.json.tmp"
    tmp.write_text(json.dumps(dict(meta, format=FORMAT, version=VERSION), indent=2) + "\n")
    tmp.rename(out / "nerf.json")


def load_nerf_bundle(path) -> NerfBundle:
    """Load a bundle directory; NerfBundleError with a one-line reason on anything malformed."""
    from PIL import Image

    from ..avatar import AvatarError, load_bundle
    from .weights import expected_shapes

    d = Path(path)
    meta = read_manifest(d, "nerf.json", FORMAT, VERSION, NerfBundleError, "a NeRF bundle")
    try:
        cfg = NerfConfig.from_dict(meta["model"])
        box = CropBox(**meta["crop"])
        mouth = tuple(int(v) for v in meta["mouth_box"])
        with np.load(d / "field.npz") as z:
            arrays = {k: np.ascontiguousarray(z[k], np.float32) for k in z.files}
        occ = np.load(d / "occupancy.npy").astype(bool).reshape(-1)
        bg = np.asarray(Image.open(d / "background.png").convert("RGB"))
        avatar = load_bundle(d / "avatar")
    except (KeyError, TypeError, ValueError, OSError, AvatarError) as e:
        raise NerfBundleError(f"corrupt NeRF bundle {d}: {e}") from None
    expected = expected_shapes(cfg)
    got = {k: tuple(v.shape) for k, v in arrays.items()}
    if got != expected:
        raise NerfBundleError(f"NeRF bundle {d}: field.npz does not match its config "
                              f"({sorted(set(expected) ^ set(got)) or 'array shapes differ'})")
    if not all(np.all(np.isfinite(v)) for v in arrays.values()):
        raise NerfBundleError(f"NeRF bundle {d}: field.npz holds non-finite weights")
    h, w = avatar.size
    if (box.res != cfg.res or occ.shape != (cfg.occupancy_res ** 3,) or bg.shape != (cfg.res, cfg.res, 3)
            or box.x0 + box.side > w or box.y0 + box.side > h or len(mouth) != 4):
        raise NerfBundleError(f"inconsistent NeRF bundle: {d}")
    return NerfBundle(path=d, avatar=avatar, config=cfg, box=box, mouth=mouth, arrays=arrays, occupancy=occ,
                      background=bg, meta=meta)
