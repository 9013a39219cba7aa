"""Fast piecewise-affine triangle warp (numba) and a masked alpha blend.

Same semantics as `kernels.warp_reference.warp_triangles_ref` (see its docstring):
1/256-pixel fixed-point destination vertices, exact integer edge functions with a
top-left fill rule (crack-free, no double draw on shared edges), clamp-to-edge
bilinear sampling rounded with floor(v + 0.5).

Speed comes from computing each row's covered x-span exactly from the integer edge
functions (one division per edge per row) instead of testing every pixel of the
bounding box, from a cheaper path for triangles whose samples need no clamping,
unsigned indices (no negative-index wraparound code), a uint8->float table and
FMA. The affine map is evaluated directly per pixel in float64 (no accumulated
drift), so results agree with the reference bit for bit in all but rare ties.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

SUBPIXEL = 256  # must match kernels.warp_reference.SUBPIXEL
# uint8 -> float64 by table lookup: measured faster than 12 int->float converts per pixel
_LUT = np.arange(256, dtype=np.float64)
_MARGIN = 1e-6  # slack (pixels) for float rounding in the interior-triangle test


@njit(cache=True, nogil=True, inline="always")
def _edge(xa, ya, xb, yb):
    """(a, b, c, bias) of the edge function a*X + b*Y + c; bias 0 on top-left edges, else -1."""
    a = ya - yb
    b = xb - xa
    c = xa * yb - xb * ya
    bias = 0 if (a > 0 or (a == 0 and b > 0)) else -1
    return a, b, c, bias


@njit(cache=True, nogil=True, inline="always")
def _clip_span(a, k, lo, hi):
    """Narrow [lo, hi] to the pixels px with a*SUBPIXEL*px + k >= 0 (exact integer math)."""
    A = a * SUBPIXEL
    if A > 0:
        m = -(k // A)  # ceil(-k / A)
        if m > lo:
            lo = m
    elif A < 0:
        m = k // (-A)  # floor(k / -A)
        if m < hi:
            hi = m
    elif k < 0:
        hi = lo - 1
    return lo, hi


@njit(cache=True, nogil=True, inline="always")
def _lerp3(srcf, outf, o, q00, q01, q10, q11, wx, wy):
    """Bilinear blend of 3 channels, rounded half up (same expression order as the reference)."""
    # unsigned indices: numba then skips its negative-index wraparound code
    o = np.uint64(o)
    q00 = np.uint64(q00)
    q01 = np.uint64(q01)
    q10 = np.uint64(q10)
    q11 = np.uint64(q11)
    for c in range(3):
        ch = np.uint64(c)
        p00 = _LUT[srcf[q00 + ch]]
        p01 = _LUT[srcf[q01 + ch]]
        p10 = _LUT[srcf[q10 + ch]]
        p11 = _LUT[srcf[q11 + ch]]
        top = p00 + wx * (p01 - p00)
        bot = p10 + wx * (p11 - p10)
        outf[o + ch] = np.uint8(np.int64(top + wy * (bot - top) + 0.5))


@njit(cache=True, nogil=True, inline="always")
def _row_interior(srcf, outf, w, obase, lo, hi, ax, ay, rx, ry):
    """One span whose samples are known to lie inside [0, W-1) x [0, H-1): no clamping."""
    stride = w * 3
    for px in range(lo, hi + 1):
        fxp = np.float64(px)
        sx = ax * fxp + rx
        sy = ay * fxp + ry
        ix = np.int64(sx)
        iy = np.int64(sy)
        q00 = iy * stride + ix * 3
        _lerp3(srcf, outf, obase + px * 3, q00, q00 + 3, q00 + stride, q00 + stride + 3, sx - ix, sy - iy)


@njit(cache=True, nogil=True, inline="always")
def _row_clamped(srcf, outf, w, h, obase, lo, hi, ax, ay, rx, ry):
    """One span with clamp-to-edge source addressing."""
    wmax = w - 1.0
    hmax = h - 1.0
    for px in range(lo, hi + 1):
        fxp = np.float64(px)
        sx = min(max(ax * fxp + rx, 0.0), wmax)
        sy = min(max(ay * fxp + ry, 0.0), hmax)
        ix = np.int64(sx)
        iy = np.int64(sy)
        q00 = (iy * w + ix) * 3
        q01 = q00 + 3 if ix < w - 1 else q00
        dy = w * 3 if iy < h - 1 else 0
        _lerp3(srcf, outf, obase + px * 3, q00, q01, q00 + dy, q01 + dy, sx - ix, sy - iy)


# 'contract' (FMA) only: no reassociation, so rounding stays that of the reference
@njit(cache=True, nogil=True, fastmath={'contract'})
def _warp_kernel(src, src_xy, dst_xy, tris, draw, out):
    h, w = src.shape[0], src.shape[1]
    h2, w2 = out.shape[0], out.shape[1]
    wmax = w - 1.0
    hmax = h - 1.0
    srcf = src.reshape(-1)
    outf = out.reshape(-1)
    for n in range(draw.shape[0]):
        t = draw[n]
        i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
        x0 = np.int64(math.floor(np.float64(dst_xy[i0, 0]) * SUBPIXEL + 0.5))
        y0 = np.int64(math.floor(np.float64(dst_xy[i0, 1]) * SUBPIXEL + 0.5))
        x1 = np.int64(math.floor(np.float64(dst_xy[i1, 0]) * SUBPIXEL + 0.5))
        y1 = np.int64(math.floor(np.float64(dst_xy[i1, 1]) * SUBPIXEL + 0.5))
        x2 = np.int64(math.floor(np.float64(dst_xy[i2, 0]) * SUBPIXEL + 0.5))
        y2 = np.int64(math.floor(np.float64(dst_xy[i2, 1]) * SUBPIXEL + 0.5))
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if area == 0:
            continue
        if area < 0:  # make the interior the positive side of every edge
            x1, y1, x2, y2 = x2, y2, x1, y1

        # dst -> src affine map from the unsnapped vertices (float64)
        d0x = np.float64(dst_xy[i0, 0])
        d0y = np.float64(dst_xy[i0, 1])
        e1x = np.float64(dst_xy[i1, 0]) - d0x
        e1y = np.float64(dst_xy[i1, 1]) - d0y
        e2x = np.float64(dst_xy[i2, 0]) - d0x
        e2y = np.float64(dst_xy[i2, 1]) - d0y
        det = e1x * e2y - e2x * e1y
        if det == 0.0:
            continue
        s0x = np.float64(src_xy[i0, 0])
        s0y = np.float64(src_xy[i0, 1])
        f1 = np.float64(src_xy[i1, 0]) - s0x
        f2 = np.float64(src_xy[i2, 0]) - s0x
        ax = (f1 * e2y - f2 * e1y) / det
        bx = (f2 * e1x - f1 * e2x) / det
        cx = s0x - ax * d0x - bx * d0y
        f1 = np.float64(src_xy[i1, 1]) - s0y
        f2 = np.float64(src_xy[i2, 1]) - s0y
        ay = (f1 * e2y - f2 * e1y) / det
        by = (f2 * e1x - f1 * e2x) / det
        cy = s0y - ay * d0x - by * d0y

        # pixel-centre bounding box, clipped to the output
        bx_lo = max(0, -((-min(x0, x1, x2)) // SUBPIXEL))
        bx_hi = min(w2 - 1, max(x0, x1, x2) // SUBPIXEL)
        by_lo = max(0, -((-min(y0, y1, y2)) // SUBPIXEL))
        by_hi = min(h2 - 1, max(y0, y1, y2) // SUBPIXEL)
        if bx_lo > bx_hi:
            continue
        # When the snapped triangle's image in src lies strictly inside [0, W-1) x [0, H-1),
        # every sample needs no clamping and its +1 neighbours exist: take the cheaper path.
        inv = 1.0 / SUBPIXEL
        u0, v0 = np.float64(x0) * inv, np.float64(y0) * inv
        u1, v1 = np.float64(x1) * inv, np.float64(y1) * inv
        u2, v2 = np.float64(x2) * inv, np.float64(y2) * inv
        sx0, sx1, sx2 = ax * u0 + bx * v0 + cx, ax * u1 + bx * v1 + cx, ax * u2 + bx * v2 + cx
        sy0, sy1, sy2 = ay * u0 + by * v0 + cy, ay * u1 + by * v1 + cy, ay * u2 + by * v2 + cy
        interior = (min(sx0, sx1, sx2) >= _MARGIN and max(sx0, sx1, sx2) <= wmax - _MARGIN
                    and min(sy0, sy1, sy2) >= _MARGIN and max(sy0, sy1, sy2) <= hmax - _MARGIN)
        a0, b0, c0, g0 = _edge(x0, y0, x1, y1)
        a1, b1, c1, g1 = _edge(x1, y1, x2, y2)
        a2, b2, c2, g2 = _edge(x2, y2, x0, y0)

        for py in range(by_lo, by_hi + 1):
            Y = np.int64(py) * SUBPIXEL
            lo, hi = _clip_span(a0, b0 * Y + c0 + g0, bx_lo, bx_hi)
            lo, hi = _clip_span(a1, b1 * Y + c1 + g1, lo, hi)
            lo, hi = _clip_span(a2, b2 * Y + c2 + g2, lo, hi)
            if lo > hi:
                continue
            fyr = np.float64(py)
            if interior:
                _row_interior(srcf, outf, w, py * w2 * 3, lo, hi, ax, ay, bx * fyr + cx, by * fyr + cy)
            else:
                _row_clamped(srcf, outf, w, h, py * w2 * 3, lo, hi, ax, ay, bx * fyr + cx, by * fyr + cy)


def _prepare(src, src_xy, dst_xy, triangles, out, draw):
    if src.dtype != np.uint8 or src.ndim != 3 or src.shape[2] != 3:
        raise ValueError("src must be (H, W, 3) uint8")
    if out.dtype != np.uint8 or out.ndim != 3 or out.shape[2] != 3 or not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous (H2, W2, 3) uint8")
    src = np.ascontiguousarray(src)
    src_xy = np.ascontiguousarray(src_xy, dtype=np.float32)
    dst_xy = np.ascontiguousarray(dst_xy, dtype=np.float32)
    triangles = np.ascontiguousarray(triangles, dtype=np.int32)
    if draw is None:
        draw = np.arange(len(triangles), dtype=np.int32)
    else:
        draw = np.ascontiguousarray(draw, dtype=np.int32)
    return src, src_xy, dst_xy, triangles, draw


def warp_triangles(src, src_xy, dst_xy, triangles, out, draw=None) -> None:
    """Fast `warp_triangles_ref`: draw dst triangles sampling `src`, into `out` in place.

    The compiled kernel releases the GIL, so several renderers may call this from
    worker threads (on different `out` arrays).
    """
    src, src_xy, dst_xy, triangles, draw = _prepare(src, src_xy, dst_xy, triangles, out, draw)
    _warp_kernel(src, src_xy, dst_xy, triangles, draw, out)


@njit(cache=True, nogil=True)
def _alpha_box(alpha):
    """Half-open (y0, y1, x0, x1) box of alpha > 0; y0 == y1 when empty."""
    h, w = alpha.shape
    y0, y1, x0, x1 = h, 0, w, 0
    for y in range(h):
        row = alpha[y]
        for x in range(w):
            if row[x] > 0.0:
                if y < y0:
                    y0 = y
                y1 = y + 1
                if x < x0:
                    x0 = x
                if x + 1 > x1:
                    x1 = x + 1
    if y1 == 0:
        return 0, 0, 0, 0
    return y0, y1, x0, x1


@njit(cache=True, nogil=True)
def _blend_kernel(dst, overlay, alpha, y0, y1, x0, x1):
    for y in range(y0, y1):
        drow = dst[y]
        orow = overlay[y]
        arow = alpha[y]
        for x in range(x0, x1):
            a = np.float64(arow[x])
            if a <= 0.0:
                continue
            if a > 1.0:
                a = 1.0
            for ch in range(3):
                d = np.float64(drow[x, ch])
                v = d + a * (np.float64(orow[x, ch]) - d)
                drow[x, ch] = np.uint8(np.int64(v + 0.5))


def blend_masked(dst, overlay, alpha, box=None):
    """dst = round(dst + alpha * (overlay - dst)) in place, only where alpha > 0.

    dst, overlay (H, W, 3) uint8; alpha (H, W) float32 in [0, 1]. `box` is the
    half-open (y0, y1, x0, x1) region that holds every alpha > 0 (computed when
    None). Returns the box used, so callers can reuse it for a fixed mask.
    """
    if dst.shape != overlay.shape or dst.shape[:2] != alpha.shape:
        raise ValueError("dst, overlay (H, W, 3) and alpha (H, W) must agree")
    alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    if box is None:
        box = _alpha_box(alpha)
    y0, y1, x0, x1 = (int(v) for v in box)
    h, w = alpha.shape
    y0, x0 = max(0, y0), max(0, x0)
    y1, x1 = min(h, y1), min(w, x1)
    if y0 < y1 and x0 < x1:
        _blend_kernel(dst, overlay, alpha, y0, y1, x0, x1)
    return (y0, y1, x0, x1)


def warmup() -> None:
    """Compile (or load from the numba cache) every kernel on a tiny input."""
    src = np.zeros((4, 4, 3), np.uint8)
    xy = np.array([[0, 0], [3, 0], [0, 3], [3, 3]], np.float32)
    tris = np.array([[0, 1, 2], [1, 3, 2]], np.int32)
    out = np.zeros_like(src)
    warp_triangles(src, xy, xy, tris, out)
    alpha = np.zeros((4, 4), np.float32)
    alpha[1, 1] = 0.5
    blend_masked(out, src, alpha)
