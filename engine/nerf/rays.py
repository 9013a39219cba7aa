"""The camera and the head pose: rays of a crop's pixels in the head's canonical frame.

Camera model (fixed for every avatar): a pinhole on the -z axis at
`camera_distance` from the head volume's centre, looking +z, with the focal
length that maps the z = 0 plane's [-1, 1]^2 onto the crop; image axes as the
rest of the engine (x right, y down, z into the picture). The head volume is the
cube [-1, 1]^3. A head pose (pitch, yaw, roll) rotates the head about the
volume's centre as meshwarp does (face_geometry.rotation_matrix): world = R q,
so a ray is carried into the canonical frame by R^T.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..face_geometry import rotation_matrix


@lru_cache(maxsize=8)
def pixel_rays(res: int, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """World origin (3,) and unit directions (res*res, 3) of the pixels, row-major; read-only (cached: every
    frame of a renderer turns the same rays)."""
    c = (np.arange(res, dtype=np.float64) + 0.5) / res * 2.0 - 1.0
    y, x = np.meshgrid(c, c, indexing="ij")
    d = np.stack([x, y, np.full_like(x, distance)], -1).reshape(-1, 3)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.array([0.0, 0.0, -distance])
    o.flags.writeable = d.flags.writeable = False
    return o, d


def canonical_rays(res: int, distance: float, head) -> tuple[np.ndarray, np.ndarray]:
    """Origin (3,) and directions (res*res, 3) in the canonical head frame for a head pose (degrees)."""
    o, d = pixel_rays(res, distance)
    r = rotation_matrix(*(float(a) for a in head))
    return (o @ r).astype(np.float32), (d @ r).astype(np.float32)  # row vectors: v @ R == R^T v


def ray_span(distance: float) -> tuple[float, float]:
    """Near and far distances along any ray: the sphere that holds the cube, whatever the rotation."""
    return distance - math.sqrt(3.0), distance + math.sqrt(3.0)
