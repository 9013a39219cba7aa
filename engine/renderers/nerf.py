"""`nerf`: an expression-conditioned NeRF of one person's head over meshwarp (docs/design/nerf.md).

meshwarp draws the whole frame for the state (torso, background and the face
as a 2D layer from the reference frame); the field, conditioned on the state's
coefficients and with its rays turned by the head pose, draws the head crop over
the bundle's static background, and the crop is pasted back through a feathered
mask, so frames keep the avatar's size.

Created with `create("nerf", avatar, bundle=DIR)` (or the bundle directory as
`avatar`). device "auto" uses a CUDA GPU through PyTorch and otherwise warns and
returns meshwarp (the CPU draws a 128 px head in about a second: not live);
device "cpu" asks for the compiled CPU kernel explicitly (offline renders,
tests, benchmarks); a broken bundle is a RendererError.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..nerf.bundle import NerfBundle, NerfBundleError, is_nerf_bundle, load_nerf_bundle
from ..nerf.weights import state_vector
from ..nerf.runtime import KernelCrops, TorchCrops, to_u8
from ..types import FaceState
from .base import RendererError, bundle_dir, create, register

log = logging.getLogger(__name__)


class NerfRenderer:
    name = "nerf"

    def __init__(self, bundle: NerfBundle, crops):
        self.bundle = bundle
        self._mw = create("meshwarp", bundle.avatar)
        self.size = self._mw.size
        self._crops = crops
        self.backend = crops.name
        self._box = bundle.box

    def crop(self, state: FaceState) -> np.ndarray:
        """The head crop (res x res uint8) the field draws for a state."""
        rgb, _ = self._crops(state_vector(state), state.head)
        if not np.all(np.isfinite(rgb)):
            raise RendererError("NeRF produced non-finite pixels")
        return to_u8(rgb)

    def render(self, state: FaceState) -> np.ndarray:
        return np.ascontiguousarray(self._box.paste(self._mw.render(state), self.crop(state)))

    def close(self) -> None:
        self._crops = None
        self._mw.close()


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@register("nerf", is_nerf_bundle)
def _create(avatar, bundle=None, device: str = "auto", neural_mouth: bool = False, **options):
    """The NeRF renderer of a bundle, or meshwarp (with a warning) when no GPU can draw it live.

    device: "auto" (a CUDA GPU, else fall back), "cuda", or "cpu" (the compiled kernel: slow, offline).
    A bundle draws its own person: the `avatar` argument is used only for the meshwarp fallback.
    """
    if options:
        raise RendererError(f"unknown nerf renderer options: {', '.join(sorted(options))}")
    if device not in ("auto", "cpu", "cuda"):
        raise RendererError(f"nerf device must be auto, cpu or cuda, got {device!r}")
    path = bundle_dir(avatar, bundle, is_nerf_bundle)
    if path is None:
        if avatar is None or isinstance(avatar, (str, Path)):
            raise RendererError(f"not a NeRF bundle (no nerf.json): {avatar}")
        log.warning("nerf renderer: no bundle given (bundle=DIR, made by `emolive avatar train --backend nerf`); "
                    "falling back to meshwarp")
        return create("meshwarp", avatar, neural_mouth=neural_mouth)
    try:
        b = load_nerf_bundle(path)
    except NerfBundleError as e:
        raise RendererError(str(e)) from None
    use_cuda = device == "cuda" or (device == "auto" and _cuda())
    if device == "cuda" and not _cuda():
        raise RendererError("nerf device cuda: no CUDA device here")
    if device == "auto" and not use_cuda:
        fallback = avatar if avatar is not None and not isinstance(avatar, (str, Path)) else b.avatar
        log.warning("nerf renderer: no CUDA device to draw it live; falling back to meshwarp "
                    "(device='cpu' renders it with the CPU kernel, offline)")
        return create("meshwarp", fallback, neural_mouth=neural_mouth)
    if use_cuda:
        crops = TorchCrops(b.config, b.arrays, b.occupancy, b.background, device="cuda")
    else:
        crops = KernelCrops(b.config, b.arrays, b.occupancy, b.background)
    return NerfRenderer(b, crops)
