"""The hash grid's layout, shared by the PyTorch module (hashgrid.py) and the CPU kernel's caller (numpy only)."""
from __future__ import annotations

import math

import numpy as np

PRIMES = (1, 2654435761, 805459861)


def level_resolutions(levels: int, min_res: int, max_res: int) -> np.ndarray:
    """(levels,) int64 grid resolution of every level."""
    if levels == 1:
        return np.array([min_res], np.int64)
    b = math.exp((math.log(max_res) - math.log(min_res)) / (levels - 1))
    return np.array([int(math.floor(min_res * b ** i + 1e-9)) for i in range(levels)], np.int64)


def dense_levels(res: np.ndarray, table: int) -> np.ndarray:
    """(levels,) bool: the level is indexed densely (all its corners fit in the table)."""
    return (res.astype(np.float64) + 1) ** 3 <= table
