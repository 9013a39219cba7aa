"""A frame id in the pixels, for receiver-side measurements: which timeline frame a decoded picture shows.

The bench asks the server to stamp each rendered frame's timeline index into
the top-left corner of its luma plane: 20 blocks of 16x16 pixels, two
calibration blocks (white, black), 16 bits of the index (mod 65536) and two
check bits (the bit count mod 4). Blocks this large survive VP8 at the
bitrates aiortc uses; the check bits reject a misread.
"""
from __future__ import annotations

import numpy as np

BLOCK = 16
BITS = 16
WHITE, BLACK = 235, 16
WIDTH = BLOCK * (2 + BITS + 2)


def _bits(k: int) -> list[int]:
    k %= 1 << BITS
    data = [(k >> i) & 1 for i in range(BITS)]
    check = sum(data) % 4
    return [1, 0] + data + [check & 1, check >> 1]


def stamp(yuv_i420: np.ndarray, k: int) -> None:
    """Write frame id k into an I420 frame (rows 0..h-1 of the array are the luma plane), in place."""
    if yuv_i420.shape[1] < WIDTH or yuv_i420.shape[0] < BLOCK:
        return
    for i, bit in enumerate(_bits(k)):
        yuv_i420[:BLOCK, i * BLOCK:(i + 1) * BLOCK] = WHITE if bit else BLACK


def read(luma: np.ndarray) -> int | None:
    """The frame id stamped into a decoded luma plane, or None when there is none or it does not check."""
    if luma.shape[1] < WIDTH or luma.shape[0] < BLOCK:
        return None
    c = BLOCK // 4  # the centre of each block: edges blur under compression
    means = luma[c:BLOCK - c, :WIDTH].reshape(BLOCK - 2 * c, 2 + BITS + 2, BLOCK)[:, :, c:BLOCK - c].mean(axis=(0, 2))
    hi, lo = means[0], means[1]
    if hi - lo < 60:
        return None
    bits = (means > (hi + lo) / 2).astype(int)
    data = bits[2:2 + BITS]
    k = int(sum(int(b) << i for i, b in enumerate(data)))
    check = int(bits[2 + BITS]) | (int(bits[3 + BITS]) << 1)
    return k if check == int(data.sum()) % 4 else None
