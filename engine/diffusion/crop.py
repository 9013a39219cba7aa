"""The fixed face crop of an identity: a square box in the avatar frame, chosen once from the reference."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..face_geometry import FACE_OVAL, LIPS_OUTER

FACE_MARGIN = 1.1  # box side over the face oval's larger extent
MOUTH_MARGIN = 1.6  # mouth box side over the outer lips' larger extent
FEATHER = 0.05  # share of the box side over which the pasted crop fades into the meshwarp frame (0.12: -1 dB)


@dataclass(frozen=True)
class CropBox:
    x0: int
    y0: int
    side: int  # pixels of the avatar frame
    res: int  # model resolution (res x res)

    def cut(self, img: np.ndarray) -> np.ndarray:
        """The box of an avatar-frame image, resized to the model resolution."""
        roi = img[self.y0:self.y0 + self.side, self.x0:self.x0 + self.side]
        return cv2.resize(roi, (self.res, self.res), interpolation=cv2.INTER_AREA)

    def paste(self, frame: np.ndarray, crop: np.ndarray) -> np.ndarray:
        """`frame` with the box replaced by `crop` (upscaled), blended through a feathered mask."""
        up = cv2.resize(crop, (self.side, self.side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        a = feather_mask(self.side)[..., None]
        out = frame.copy()
        roi = out[self.y0:self.y0 + self.side, self.x0:self.x0 + self.side].astype(np.float32)
        out[self.y0:self.y0 + self.side, self.x0:self.x0 + self.side] = np.clip(
            a * up + (1 - a) * roi + 0.5, 0, 255).astype(np.uint8)
        return out

    def to_dict(self) -> dict:
        return {"x0": self.x0, "y0": self.y0, "side": self.side, "res": self.res}


def feather_mask(side: int) -> np.ndarray:
    """1 in the middle, a linear ramp to 0 over FEATHER of the side at every edge."""
    ramp = max(1.0, FEATHER * side)
    d = np.minimum(np.arange(side) + 0.5, side - np.arange(side) - 0.5) / ramp
    r = np.clip(d, 0.0, 1.0).astype(np.float32)
    return np.minimum(r[:, None], r[None, :])


def face_box(landmarks: np.ndarray, frame_size: tuple[int, int], res: int, margin: float = FACE_MARGIN) -> CropBox:
    """The square box around the face oval of avatar-frame landmarks (side: `margin` x its extent), kept inside
    the frame."""
    p = np.asarray(landmarks)[list(FACE_OVAL), :2]
    lo, hi = p.min(0), p.max(0)
    side = int(round(margin * float((hi - lo).max())))
    side = min(side, frame_size[0], frame_size[1])
    c = (lo + hi) / 2
    x0 = int(np.clip(round(c[0] - side / 2), 0, frame_size[1] - side))
    y0 = int(np.clip(round(c[1] - side / 2), 0, frame_size[0] - side))
    return CropBox(x0=x0, y0=y0, side=side, res=int(res))


def mouth_box(landmarks: np.ndarray, box: CropBox) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the mouth region in crop pixels (model resolution)."""
    p = np.asarray(landmarks)[list(LIPS_OUTER), :2]
    c = (p.min(0) + p.max(0)) / 2
    half = MOUTH_MARGIN * float((p.max(0) - p.min(0)).max()) / 2
    k = box.res / box.side
    x0, x1 = (c[0] - half - box.x0) * k, (c[0] + half - box.x0) * k
    y0, y1 = (c[1] - half - box.y0) * k, (c[1] + half - box.y0) * k
    r = box.res
    return (int(np.clip(np.floor(y0), 0, r)), int(np.clip(np.ceil(y1), 0, r)),
            int(np.clip(np.floor(x0), 0, r)), int(np.clip(np.ceil(x1), 0, r)))
