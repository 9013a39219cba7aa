"""The meshwarp renderer the diffusion renderer uses: geometry hint, full frame and tracking stabiliser.

Pinned to the plain piecewise-affine warp (no per-coefficient emotion render
gain, no painted folds): the hint is a geometry prior the model was trained
on, so it must not change when meshwarp's cosmetic tuning does; real folds
and expression detail come from the data instead.
"""
from __future__ import annotations

import numpy as np

from ..types import NUM_COEFFS

HINT_VERSION = "meshwarp-plain-1"  # stored in bundles and cache keys


def hint_renderer(avatar):
    """A MeshWarpRenderer with the plain warp (imported here: engine.renderers imports this package)."""
    from ..renderers.meshwarp import MeshWarpRenderer

    return MeshWarpRenderer(avatar, gain=np.ones(NUM_COEFFS), folds=False, lip_close=False)
