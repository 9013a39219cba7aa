"""Drawing a trained field's head crop: the CPU kernel (kernels/nerf.py) or PyTorch (CUDA, or CPU for tests)."""
from __future__ import annotations

import numpy as np

from .config import NerfConfig
from .encoding import dense_levels, level_resolutions
from .weights import frame_weights
from .rays import canonical_rays, ray_span

EARLY_STOP = 1e-4  # a ray stops marching once less than this share of light still comes through


class KernelCrops:
    """Head crops on the CPU with the compiled kernel; numpy and numba only."""

    name = "cpu-kernel"

    def __init__(self, cfg: NerfConfig, arrays: dict, occupancy: np.ndarray, background: np.ndarray):
        from kernels.nerf import render_frame

        self._render = render_frame
        self.cfg, self._arrays = cfg, arrays
        res = level_resolutions(cfg.levels, cfg.min_res, cfg.max_res)
        self._levels, self._dense = res, dense_levels(res, 2 ** cfg.log2_table)
        self._occ = np.ascontiguousarray(occupancy, np.uint8).reshape(-1)
        self._bg = np.ascontiguousarray(background.reshape(-1, 3), np.float32) / 255.0
        self._span = ray_span(cfg.camera_distance)

    def __call__(self, state: np.ndarray, head) -> tuple[np.ndarray, np.ndarray]:
        """(res, res, 3) float32 in [0, 1] and opacity (res, res)."""
        c = self.cfg
        o, d = canonical_rays(c.res, c.camera_distance, head)
        rgb, acc = self._render(frame_weights(self._arrays, state), self._levels, self._dense, self._occ,
                                c.occupancy_res, o, d, self._bg, c.samples, self._span[0], self._span[1],
                                EARLY_STOP)
        return rgb.reshape(c.res, c.res, 3), acc.reshape(c.res, c.res)


class TorchCrops:
    """Head crops with PyTorch on a device (the training code's renderer, CUDA graphs not used)."""

    def __init__(self, cfg: NerfConfig, arrays: dict, occupancy: np.ndarray, background: np.ndarray,
                 device: str = "cuda"):
        import torch

        from .model import NerfField
        from .render import Occupancy

        self.name = f"torch-{device}"
        self.cfg, self._device = cfg, device
        self._field = NerfField(cfg).to(device)
        self._field.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
        self._field.eval()
        near, far = ray_span(cfg.camera_distance)
        self._occ = Occupancy(cfg.occupancy_res, (far - near) / cfg.samples, torch.from_numpy(occupancy),
                              device=device)
        self._bg = torch.from_numpy(background.reshape(-1, 3).astype(np.float32) / 255.0).to(device)

    def __call__(self, state: np.ndarray, head) -> tuple[np.ndarray, np.ndarray]:
        from .render import render_crop

        rgb, acc = render_crop(self._field, self._occ, state, head, self._bg)
        return rgb.cpu().numpy(), acc.cpu().numpy()


def to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
