"""The diffusion bundle on disk (docs/design/diffusion.md): the denoiser (ONNX + PyTorch weights), crop, config, avatar.

    DIR/diffusion.json   format "emolive-diffusion", version 1, model config, crop and mouth boxes, sampling
                         defaults (steps, seed, identity mix), distillation and training summary
    DIR/denoiser.onnx    the x0-predicting denoiser (inputs x_t, t, hint, reference, state; output x0)
    DIR/denoiser.pt      the same weights as a PyTorch state_dict (PyTorch / CUDA-graph path)
    DIR/reference.png    the identity reference crop (res x res) fed to every call
    DIR/avatar/          the meshwarp avatar bundle (docs/reference/avatar-format.md) made from the reference frame;
                         renders the full frame and the geometry hint
    DIR/report.json|md   held-out quality and speed measured at the end of training
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.manifest import read_manifest
from .crop import CropBox

FORMAT = "emolive-diffusion"
VERSION = 1
# The denoiser's ONNX interface: NCHW images in [-1, 1], t in [0, 1] (B,), state (B, 57) as data.condition.
INPUT_NAMES = ("x_t", "t", "hint", "reference", "state")
OUTPUT_NAMES = ("x0",)


class BundleError(RuntimeError):
    """A diffusion bundle is missing or malformed."""


@dataclass(eq=False)
class DiffusionBundle:
    path: Path
    avatar: object  # engine.avatar.Avatar
    box: CropBox
    mouth: tuple[int, int, int, int]
    reference: np.ndarray  # (res, res, 3) uint8
    meta: dict = field(default_factory=dict)

    @property
    def onnx_path(self) -> Path:
        return self.path / "denoiser.onnx"

    @property
    def torch_path(self) -> Path:
        return self.path / "denoiser.pt"

    @property
    def model_config(self) -> dict:
        return self.meta["model"]

    @property
    def steps(self) -> int:
        return int(self.meta.get("sampling", {}).get("steps", 4))

    @property
    def seed(self) -> int:
        return int(self.meta.get("sampling", {}).get("seed", 0))


def is_bundle(path) -> bool:
    return path is not None and (Path(path) / "diffusion.json").is_file()


def write_meta(out: Path, meta: dict) -> None:
    meta = dict(meta, format=FORMAT, version=VERSION)
    tmp = out / "diffusion.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.rename(out / "diffusion.json")


def load_diffusion_bundle(path) -> DiffusionBundle:
    """Load a bundle directory; BundleError with a one-line reason on anything malformed."""
    from PIL import Image

    from ..avatar import AvatarError, load_bundle

    d = Path(path)
    meta = read_manifest(d, "diffusion.json", FORMAT, VERSION, BundleError, "a diffusion bundle")
    try:
        box = CropBox(**meta["crop"])
        mouth = tuple(int(v) for v in meta["mouth_box"])
        ref = np.asarray(Image.open(d / "reference.png").convert("RGB"))
        avatar = load_bundle(d / "avatar")
    except (KeyError, TypeError, ValueError, OSError, AvatarError) as e:
        raise BundleError(f"corrupt diffusion bundle {d}: {e}") from None
    from .hint import HINT_VERSION

    if meta.get("hint", HINT_VERSION) != HINT_VERSION:
        raise BundleError(f"diffusion bundle {d} was trained on hint {meta.get('hint')!r}; this engine renders "
                          f"{HINT_VERSION!r}: retrain it")
    if not (d / "denoiser.onnx").is_file():
        raise BundleError(f"diffusion bundle without denoiser.onnx: {d}")
    h, w = avatar.size
    if ref.shape != (box.res, box.res, 3) or box.x0 + box.side > w or box.y0 + box.side > h or len(mouth) != 4:
        raise BundleError(f"inconsistent diffusion bundle: {d}")
    return DiffusionBundle(path=d, avatar=avatar, box=box, mouth=mouth, reference=ref, meta=meta)
