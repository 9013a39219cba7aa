"""Plain NumPy reference for the piecewise-affine triangle warp.

Defines the exact semantics that the fast kernel (`kernels.warp`) reproduces:

* Coverage: destination vertices are snapped to 1/256 pixel (fixed point) and a
  pixel centre (integer x, y) is inside when all three integer edge functions
  are > 0, or == 0 on a top-left edge. Exact integer arithmetic plus the top-left
  rule means triangles sharing an edge never both draw, and never both skip, a
  pixel on that edge. Either winding is drawn; zero snapped area draws nothing.
* Mapping: the dst->src affine map comes from the unsnapped float vertices.
* Sampling: source coordinates clamp to [0, W-1] x [0, H-1], then bilinear
  interpolation as lerp(lerp(row0), lerp(row1)) and rounding with floor(v + 0.5).
"""
from __future__ import annotations

import numpy as np

SUBPIXEL = 256  # fixed-point steps per pixel for destination vertices


def snap(xy: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> int64 fixed point (round half up)."""
    return np.floor(np.asarray(xy, np.float64) * SUBPIXEL + 0.5).astype(np.int64)


def edge_coeffs(pa, pb):
    """Integer (a, b, c, bias) of E(P) = a*Px + b*Py + c for the directed edge a->b.

    E is the cross product (b - a) x (P - a): positive on the interior side of a
    triangle with positive area. bias is 0 on a top-left edge and -1 otherwise so
    that `E + bias >= 0` is the inclusion test.
    """
    a = int(pa[1] - pb[1])
    b = int(pb[0] - pa[0])
    c = int(pa[0] * pb[1] - pb[0] * pa[1])
    top_left = a > 0 or (a == 0 and b > 0)
    return a, b, c, 0 if top_left else -1


def affine_dst_to_src(d, s):
    """(ax, bx, cx, ay, by, cy) with src = (ax*x + bx*y + cx, ay*x + by*y + cy), or None."""
    d = np.asarray(d, np.float64)
    s = np.asarray(s, np.float64)
    e1x, e1y = d[1, 0] - d[0, 0], d[1, 1] - d[0, 1]
    e2x, e2y = d[2, 0] - d[0, 0], d[2, 1] - d[0, 1]
    det = e1x * e2y - e2x * e1y
    if det == 0.0:
        return None
    coef = []
    for k in range(2):
        f1 = s[1, k] - s[0, k]
        f2 = s[2, k] - s[0, k]
        a = (f1 * e2y - f2 * e1y) / det
        b = (f2 * e1x - f1 * e2x) / det
        coef += [a, b, s[0, k] - a * d[0, 0] - b * d[0, 1]]
    return tuple(coef)


def bilinear(src: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Clamp-to-edge bilinear sample of src at float coordinates -> (N, 3) uint8."""
    h, w = src.shape[:2]
    sx = np.clip(sx, 0.0, w - 1.0)
    sy = np.clip(sy, 0.0, h - 1.0)
    x0 = sx.astype(np.int64)
    y0 = sy.astype(np.int64)
    fx = (sx - x0)[:, None]
    fy = (sy - y0)[:, None]
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    p00 = src[y0, x0].astype(np.float64)
    p01 = src[y0, x1].astype(np.float64)
    p10 = src[y1, x0].astype(np.float64)
    p11 = src[y1, x1].astype(np.float64)
    top = p00 + fx * (p01 - p00)
    bot = p10 + fx * (p11 - p10)
    v = top + fy * (bot - top)
    return np.floor(v + 0.5).astype(np.uint8)


def warp_triangles_ref(src, src_xy, dst_xy, triangles, out, draw=None) -> None:
    """Draw each destination triangle of `triangles` into `out` (in place), in order.

    src (H, W, 3) uint8; src_xy, dst_xy (V, 2) float32 (x, y), pixel centres at
    integers; triangles (T, 3) int32; out (H2, W2, 3) uint8; draw: optional int32
    triangle indices drawn in that order (default: all, in order).
    """
    h2, w2 = out.shape[:2]
    fixed = snap(dst_xy)
    order = range(len(triangles)) if draw is None else draw
    for t in order:
        idx = [int(i) for i in triangles[int(t)]]
        v = [fixed[i] for i in idx]
        area = int((v[1][0] - v[0][0]) * (v[2][1] - v[0][1]) - (v[1][1] - v[0][1]) * (v[2][0] - v[0][0]))
        if area == 0:
            continue
        if area < 0:  # make the interior the positive side of every edge
            v = [v[0], v[2], v[1]]
        m = affine_dst_to_src(dst_xy[idx], src_xy[idx])
        if m is None:
            continue
        xs = [int(p[0]) for p in v]
        ys = [int(p[1]) for p in v]
        x_lo = max(0, -(-min(xs) // SUBPIXEL))  # ceil to the first pixel centre
        x_hi = min(w2 - 1, max(xs) // SUBPIXEL)
        y_lo = max(0, -(-min(ys) // SUBPIXEL))
        y_hi = min(h2 - 1, max(ys) // SUBPIXEL)
        if x_lo > x_hi or y_lo > y_hi:
            continue
        py, px = np.mgrid[y_lo:y_hi + 1, x_lo:x_hi + 1]
        fx_, fy_ = px.astype(np.int64) * SUBPIXEL, py.astype(np.int64) * SUBPIXEL
        inside = np.ones(px.shape, bool)
        for pa, pb in ((v[0], v[1]), (v[1], v[2]), (v[2], v[0])):
            a, b, c, bias = edge_coeffs(pa, pb)
            inside &= a * fx_ + (b * fy_ + c + bias) >= 0
        if not inside.any():
            continue
        qx = px[inside].astype(np.float64)
        qy = py[inside].astype(np.float64)
        ax, bx, cx, ay, by, cy = m
        sx = ax * qx + (bx * qy + cx)
        sy = ay * qx + (by * qy + cy)
        out[py[inside], px[inside]] = bilinear(src, sx, sy)
