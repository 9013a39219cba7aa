"""`diffusion`: a per-identity, few-step diffusion renderer over meshwarp (docs/design/diffusion.md).

meshwarp draws the whole frame for the state; the denoiser, conditioned on the
state (FiLM), the identity reference crop and the meshwarp crop as a geometry
hint, redraws the face crop in a few deterministic DDIM steps from a fixed
noise (same seed every frame, so video does not flicker); the crop is pasted
back through a feathered mask, so frames keep the avatar's size.

Created with `create("diffusion", avatar, bundle=DIR)` (or the bundle directory
as `avatar`). Without a bundle, or with no GPU and no explicit device="cpu", it
warns and returns the meshwarp renderer of the avatar instead; a broken bundle
is a RendererError.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..diffusion.bundle import BundleError, DiffusionBundle, is_bundle, load_diffusion_bundle
from ..diffusion.data import COND_DIM, condition
from ..diffusion.evaluate import to_image, to_model
from ..diffusion.hint import hint_renderer
from ..diffusion.runtime import NoSuitableDevice, make_runner
from ..diffusion.sampler import frame_noise, sample
from ..predictor import PredictorError
from ..types import FaceState
from .base import RendererError, bundle_dir, create, register

log = logging.getLogger(__name__)


class DiffusionRenderer:
    name = "diffusion"

    def __init__(self, bundle: DiffusionBundle, runner, steps: int | None = None, seed: int | None = None,
                 identity_mix: float = 1.0, identity_mix_steps: int = 0):
        self.bundle = bundle
        self._mw = hint_renderer(bundle.avatar)
        self.size = self._mw.size
        self.steps = int(bundle.steps if steps is None else steps)
        if not 1 <= self.steps <= 64:
            raise RendererError(f"diffusion steps must be 1..64, got {self.steps}")
        if not 0.0 <= identity_mix <= 1.0:
            raise RendererError(f"identity_mix must be in [0, 1], got {identity_mix}")
        self._runner = runner
        self.backend = getattr(runner, "name", type(runner).__name__)
        self._box = bundle.box
        self._ref = to_model(bundle.reference)[None]
        self._noise = frame_noise((1, 3, self._box.res, self._box.res), bundle.seed if seed is None else seed)
        self._mix, self._mix_steps = float(identity_mix), int(identity_mix_steps)
        rng = bundle.meta.get("state_inputs", {})
        # States beyond what training showed are clamped to its range: the hint still shows them in full.
        self._lo = np.asarray(rng.get("min", np.full(COND_DIM, -np.inf)), np.float32)
        self._hi = np.asarray(rng.get("max", np.full(COND_DIM, np.inf)), np.float32)

    def crop(self, state: FaceState, frame: np.ndarray | None = None) -> np.ndarray:
        """The generated face crop (res x res uint8) for a state; `frame` = its meshwarp render if known."""
        frame = self._mw.render(state) if frame is None else frame
        hint = to_model(self._box.cut(frame))[None]
        cond = np.clip(condition(state), self._lo, self._hi)[None]

        def denoise(x, t):
            return self._runner(x, np.full(1, t, np.float32), hint, self._ref, cond)

        x0 = sample(denoise, self._noise, self.steps, anchor=hint, mix=self._mix, mix_steps=self._mix_steps)
        if not np.all(np.isfinite(x0)):
            raise RendererError("diffusion model produced non-finite pixels")
        return to_image(x0[0])

    def render(self, state: FaceState) -> np.ndarray:
        frame = self._mw.render(state)
        return np.ascontiguousarray(self._box.paste(frame, self.crop(state, frame)))

    def close(self) -> None:
        self._runner = None


@register("diffusion", is_bundle)
def _create(avatar, bundle=None, device: str = "auto", backend: str = "onnxruntime", threads: int = 1,
            steps: int | None = None, seed: int | None = None, identity_mix: float = 1.0,
            identity_mix_steps: int = 0, neural_mouth: bool = False, **meshwarp_options):
    """The diffusion renderer of a bundle, or meshwarp (with a warning) when it cannot run here.

    device: "auto" (a GPU or fall back), "cuda", or "cpu" (explicit: slow, for tests and benchmarks).
    A bundle renders its own identity: the `avatar` argument is used only for the meshwarp fallback.
    `neural_mouth` applies to that fallback only (the denoiser redraws the mouth itself).
    """
    meshwarp_options["neural_mouth"] = neural_mouth
    path = bundle_dir(avatar, bundle, is_bundle)
    if path is None:
        if avatar is None or isinstance(avatar, (str, Path)):
            raise RendererError(f"not a diffusion bundle (no diffusion.json): {avatar}")
        log.warning("diffusion renderer: no bundle given (bundle=DIR, made by `emolive avatar train --backend "
                    "diffusion`); falling back to meshwarp")
        return create("meshwarp", avatar, **meshwarp_options)  # what a meshwarp session gets
    try:
        b = load_diffusion_bundle(path)
    except BundleError as e:
        raise RendererError(str(e)) from None
    try:
        runner = make_runner(b, backend=backend, device=device, threads=threads)
    except NoSuitableDevice as e:
        fallback = avatar if avatar is not None and not isinstance(avatar, (str, Path)) else b.avatar
        log.warning("diffusion renderer: no suitable device (%s); falling back to meshwarp", e)
        return create("meshwarp", fallback, **meshwarp_options)
    except PredictorError as e:
        raise RendererError(str(e)) from None
    meshwarp_options.pop("neural_mouth")
    if meshwarp_options:
        raise RendererError(f"unknown diffusion renderer options: {', '.join(sorted(meshwarp_options))}")
    if avatar is not None and not isinstance(avatar, (str, Path)) and avatar is not b.avatar:
        log.info("diffusion bundle %s renders its own identity; the session avatar is used only as a fallback", path)
    return DiffusionRenderer(b, runner, steps=steps, seed=seed, identity_mix=identity_mix,
                             identity_mix_steps=identity_mix_steps)
