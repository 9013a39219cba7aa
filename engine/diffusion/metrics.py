"""Image quality against real frames: PSNR, SSIM (Wang et al. 2004, Gaussian window) and mouth-region PSNR."""
from __future__ import annotations

import cv2
import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two uint8 images (11x11 Gaussian window, sigma 1.5), averaged over the channels."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return m.mean(axis=2) if m.ndim == 3 else m


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over the channels of two uint8 images."""
    return float(ssim_map(a, b).mean())


def scores(pred: np.ndarray, real: np.ndarray, mouth: tuple[int, int, int, int]) -> dict[str, float]:
    """PSNR, SSIM and mouth PSNR of one crop against the real crop; mouth = (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = mouth
    return {"psnr": psnr(pred, real), "ssim": ssim(pred, real),
            "mouth_psnr": psnr(pred[y0:y1, x0:x1], real[y0:y1, x0:x1])}


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}
