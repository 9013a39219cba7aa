"""NeRF volume rendering of one frame on the CPU (numba), parallel over rays.

Computes exactly `engine.nerf.render.render_rays` with midpoint samples (no
jitter) for one frame, from plain arrays (this package does not import the
engine; `NerfField.kernel_weights` gives the weights, with the frame's
expression code already folded into the biases d1_b and c1_b):

  per ray, for i in 0..samples-1:
    t = near + (i + 0.5) (far - near) / samples,   q = origin + t dir
    skipped (no density, transmittance unchanged) when some |q_k| > 1 or the
    occupancy cell of q is empty (flat cell index x + y res + z res^2)
    enc   = hash encoding of q (engine/nerf/hashgrid.py: level res n, cell
            clamp(floor(u n), 0, n - 1) with u = (q + 1) / 2, corners bit 0 x,
            bit 1 y, bit 2 z; dense index x + y (n+1) + z (n+1)^2, else
            (x ^ y 2654435761 ^ z 805459861) & (table - 1))
    h     = relu(d1_w enc + d1_b)
    raw   = d2_w h + d2_b
    sigma = exp(min(raw[0], 15)),   rgb = sigmoid(c2_w relu(c1_w raw[1:] + c1_b) + c2_b)
    alpha = 1 - exp(-sigma delta),  w = alpha T,  T <- T exp(-sigma delta)
  colour = sum w rgb + (1 - acc) bg,  acc = sum w

plus early ray termination: a ray stops marching once T < stop (stop=0 marches
every sample, as the reference does).

Sample positions, the cube and occupancy tests and the grid cells are computed
in float32 with the same operation order as the PyTorch reference, so the
discrete decisions (which cell, which corner) agree exactly; the MLP and the
compositing differ from it only by float rounding. d1 and c1 run as axpys
over the hidden width on weights transposed once per call, d2 and c2 as dot
products over it: every inner loop is contiguous and vectorizes.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

PRIME_Y = np.int64(2654435761)  # engine.nerf.hashgrid.PRIMES (x's prime is 1)
PRIME_Z = np.int64(805459861)
SIGMA_MAX_LOG = np.float32(15.0)  # engine.nerf.model.SIGMA_MAX_LOG
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_BLOCK = 32  # rays per block of consecutive rays
_CHUNKS = 64  # parallel chunks of blocks (interleaved over the image)


@njit(cache=True, nogil=True, inline="always")
def _gather8(flat, row, n_feat, enc, base, i0, i1, i2, i3, i4, i5, i6, i7, w0, w1, w2, w3, w4, w5, w6, w7):
    """enc[base:base + n_feat] = sum over the 8 corners c (in order) of w_c flat[row + i_c n_feat:][:n_feat]
    (row: the level's offset in the flat tables)."""
    if n_feat == 2:
        # unsigned indices: no negative-index wraparound code
        j0 = np.uint64(row + 2 * i0)
        j1 = np.uint64(row + 2 * i1)
        j2 = np.uint64(row + 2 * i2)
        j3 = np.uint64(row + 2 * i3)
        j4 = np.uint64(row + 2 * i4)
        j5 = np.uint64(row + 2 * i5)
        j6 = np.uint64(row + 2 * i6)
        j7 = np.uint64(row + 2 * i7)
        one = np.uint64(1)
        e0 = w0 * flat[j0]
        e1 = w0 * flat[j0 + one]
        e0 += w1 * flat[j1]
        e1 += w1 * flat[j1 + one]
        e0 += w2 * flat[j2]
        e1 += w2 * flat[j2 + one]
        e0 += w3 * flat[j3]
        e1 += w3 * flat[j3 + one]
        e0 += w4 * flat[j4]
        e1 += w4 * flat[j4 + one]
        e0 += w5 * flat[j5]
        e1 += w5 * flat[j5 + one]
        e0 += w6 * flat[j6]
        e1 += w6 * flat[j6 + one]
        e0 += w7 * flat[j7]
        e1 += w7 * flat[j7 + one]
        enc[base] = e0
        enc[base + 1] = e1
    else:
        for k in range(n_feat):
            e = w0 * flat[row + i0 * n_feat + k]
            e += w1 * flat[row + i1 * n_feat + k]
            e += w2 * flat[row + i2 * n_feat + k]
            e += w3 * flat[row + i3 * n_feat + k]
            e += w4 * flat[row + i4 * n_feat + k]
            e += w5 * flat[row + i5 * n_feat + k]
            e += w6 * flat[row + i6 * n_feat + k]
            e += w7 * flat[row + i7 * n_feat + k]
            enc[base + k] = e


@njit(cache=True, nogil=True)
def _encode_point(flat, res_f, res_i, dense, qx, qy, qz, enc):
    """Hash encoding of one point (clamped to [-1, 1]^3) into enc (levels * features,).

    flat: the (levels, table, features) tables flattened (no per-level views: those would cost reference
    counting, shared between threads). Corner c has offsets bit 0: x,
    bit 1: y, bit 2: z, weight (wx wy) wz, and the corners are summed in that order, as the reference
    does. No fastmath here: cells and fractions are rounded exactly as in the reference."""
    n_levels = res_i.shape[0]
    n_feat = enc.shape[0] // n_levels
    size = flat.shape[0] // (n_levels * n_feat)
    mask = np.int64(size - 1)
    ux = (min(max(qx, -_ONE), _ONE) + _ONE) * _HALF
    uy = (min(max(qy, -_ONE), _ONE) + _ONE) * _HALF
    uz = (min(max(qz, -_ONE), _ONE) + _ONE) * _HALF
    for lv in range(n_levels):
        n = res_i[lv]
        nf = res_f[lv]
        px = ux * nf
        py = uy * nf
        pz = uz * nf
        cx = min(max(np.int64(np.floor(px)), 0), n - 1)
        cy = min(max(np.int64(np.floor(py)), 0), n - 1)
        cz = min(max(np.int64(np.floor(pz)), 0), n - 1)
        fx = px - np.float32(cx)
        fy = py - np.float32(cy)
        fz = pz - np.float32(cz)
        gx = _ONE - fx
        gy = _ONE - fy
        gz = _ONE - fz
        w00 = gx * gy
        w10 = fx * gy
        w01 = gx * fy
        w11 = fx * fy
        if dense[lv]:
            sy = n + 1
            a = cx + cy * sy + cz * (sy * sy)
            b = a + sy * sy
            i0, i1, i2, i3 = a, a + 1, a + sy, a + sy + 1
            i4, i5, i6, i7 = b, b + 1, b + sy, b + sy + 1
        else:
            y0 = cy * PRIME_Y
            y1 = y0 + PRIME_Y
            z0 = cz * PRIME_Z
            z1 = z0 + PRIME_Z
            x1 = cx + 1
            i0 = (cx ^ y0 ^ z0) & mask
            i1 = (x1 ^ y0 ^ z0) & mask
            i2 = (cx ^ y1 ^ z0) & mask
            i3 = (x1 ^ y1 ^ z0) & mask
            i4 = (cx ^ y0 ^ z1) & mask
            i5 = (x1 ^ y0 ^ z1) & mask
            i6 = (cx ^ y1 ^ z1) & mask
            i7 = (x1 ^ y1 ^ z1) & mask
        _gather8(flat, lv * size * n_feat, n_feat, enc, lv * n_feat, i0, i1, i2, i3, i4, i5, i6, i7,
                 w00 * gz, w10 * gz, w01 * gz, w11 * gz, w00 * fz, w10 * fz, w01 * fz, w11 * fz)


@njit(cache=True, nogil=True)
def _hash_encode_kernel(tables, res_levels, dense, q):
    n_levels, size, n_feat = tables.shape
    flat = np.ascontiguousarray(tables).reshape(-1)
    res_f = res_levels.astype(np.float32)
    out = np.empty((q.shape[0], n_levels * n_feat), np.float32)
    for p in range(q.shape[0]):
        _encode_point(flat, res_f, res_levels, dense, q[p, 0], q[p, 1], q[p, 2], out[p])
    return out


@njit(cache=True, nogil=True)
def _sample_times(samples, near, far):
    """(samples,) float32 midpoints, rounded as `engine.nerf.render.sample_t` (float32, no FMA)."""
    delta = np.float32((far - near) / samples)
    near32 = np.float32(near)
    t = np.empty(samples, np.float32)
    for i in range(samples):
        t[i] = near32 + (np.float32(i) + _HALF) * delta
    return t


@njit(cache=True, nogil=True)
def _occupied_samples(origin, dx, dy, dz, t, occ_bits, occ_res, q):
    """Writes the positions of a ray's samples inside the cube and in occupied cells to q (n, 3), in
    order, and returns n. No fastmath: positions and cells are rounded as in the reference."""
    ox = origin[0]
    oy = origin[1]
    oz = origin[2]
    occ_f = np.float32(occ_res)
    top = occ_res - 1
    n = 0
    for i in range(t.shape[0]):
        ti = t[i]
        qx = ox + ti * dx
        qy = oy + ti * dy
        qz = oz + ti * dz
        if abs(qx) > _ONE or abs(qy) > _ONE or abs(qz) > _ONE:
            continue
        kx = min(max(np.int64(np.floor((qx + _ONE) * _HALF * occ_f)), 0), top)
        ky = min(max(np.int64(np.floor((qy + _ONE) * _HALF * occ_f)), 0), top)
        kz = min(max(np.int64(np.floor((qz + _ONE) * _HALF * occ_f)), 0), top)
        if not occ_bits[kx + (ky + kz * occ_res) * occ_res]:
            continue
        q[n, 0] = qx
        q[n, 1] = qy
        q[n, 2] = qz
        n += 1
    return n


# Reassociation (vectorized dot products) and FMA in the MLP and compositing; no nnan/ninf, since a
# sigmoid or exp may meet an infinity. The exactly rounded parts live in the functions above.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True, nogil=True, parallel=True, fastmath=_FAST)
def render_rays_kernel(origin, dirs, bg, tables, d1_w, d1_b, d2_w, d2_b, c1_w, c1_b, c2_w, c2_b,
                       res_levels, dense, occ_bits, occ_res, samples, near, far, stop):
    """Colour (R, 3) float32 and opacity (R,) float32 of one frame's rays (see the module docstring).

    origin (3,) and dirs (R, 3) float32 in the canonical frame, bg (R, 3) float32;
    the weights as `NerfField.kernel_weights` (C-contiguous float32); res_levels
    (L,) int64, dense (L,) bool; occ_bits (occ_res^3,) bool or uint8; stop:
    transmittance below which a ray stops marching (0: never).
    """
    n_rays = dirs.shape[0]
    n_levels, size, n_feat = tables.shape
    n_enc = n_levels * n_feat
    n_hidden = d1_w.shape[0]
    n_raw = d2_w.shape[0]
    n_geo = n_raw - 1
    flat = np.ascontiguousarray(tables).reshape(-1)
    res_f = res_levels.astype(np.float32)
    w1t = np.ascontiguousarray(d1_w.T)  # (LF, H): the first layers run as axpys over H
    w3t = np.ascontiguousarray(c1_w.T)  # (G, H)
    t = _sample_times(samples, near, far)
    delta = np.float32((far - near) / samples)
    rgb_out = np.empty((n_rays, 3), np.float32)
    acc_out = np.empty(n_rays, np.float32)
    # Blocks of consecutive rays (neighbouring pixels share grid cells: cache reuse); a chunk takes
    # every chunks-th block, so the threads' shares of the image are interleaved and evenly loaded.
    n_blocks = (n_rays + _BLOCK - 1) // _BLOCK
    chunks = min(n_blocks, _CHUNKS)
    for chunk in prange(chunks):
        q = np.empty((samples, 3), np.float32)
        enc = np.empty(n_enc, np.float32)
        h = np.empty(n_hidden, np.float32)
        raw = np.empty(n_raw, np.float32)
        c = np.empty(n_hidden, np.float32)
        for blk in range(chunk, n_blocks, chunks):
            for r in range(blk * _BLOCK, min(n_rays, (blk + 1) * _BLOCK)):
                n_occ = _occupied_samples(origin, dirs[r, 0], dirs[r, 1], dirs[r, 2], t, occ_bits, occ_res, q)
                trans = 1.0
                acc = 0.0
                cr = 0.0
                cg = 0.0
                cb = 0.0
                for s in range(n_occ):
                    if trans < stop:
                        break
                    _encode_point(flat, res_f, res_levels, dense, q[s, 0], q[s, 1], q[s, 2], enc)
                    # density: h = relu(d1_w enc + d1_b), raw = d2_w h + d2_b
                    for i in range(n_hidden):
                        h[i] = d1_b[i]
                    for j in range(n_enc):
                        e = enc[j]
                        for i in range(n_hidden):
                            h[i] += w1t[j, i] * e
                    for i in range(n_hidden):
                        h[i] = max(h[i], np.float32(0.0))
                    for k in range(n_raw):
                        a = d2_b[k]
                        for i in range(n_hidden):
                            a += d2_w[k, i] * h[i]
                        raw[k] = a
                    sigma = np.exp(min(raw[0], SIGMA_MAX_LOG))
                    keep = np.exp(-(sigma * delta))
                    w = (1.0 - keep) * trans
                    trans *= keep
                    if w == 0.0:
                        continue  # no colour to add (alpha rounds to 0)
                    # colour: sigmoid(c2_w relu(c1_w raw[1:] + c1_b) + c2_b)
                    for i in range(n_hidden):
                        c[i] = c1_b[i]
                    for j in range(n_geo):
                        v = raw[1 + j]
                        for i in range(n_hidden):
                            c[i] += w3t[j, i] * v
                    for i in range(n_hidden):
                        c[i] = max(c[i], np.float32(0.0))
                    a0 = c2_b[0]
                    a1 = c2_b[1]
                    a2 = c2_b[2]
                    for i in range(n_hidden):
                        a0 += c2_w[0, i] * c[i]
                        a1 += c2_w[1, i] * c[i]
                        a2 += c2_w[2, i] * c[i]
                    acc += w
                    cr += w / (1.0 + np.exp(-a0))
                    cg += w / (1.0 + np.exp(-a1))
                    cb += w / (1.0 + np.exp(-a2))
                rest = 1.0 - acc
                rgb_out[r, 0] = cr + rest * bg[r, 0]
                rgb_out[r, 1] = cg + rest * bg[r, 1]
                rgb_out[r, 2] = cb + rest * bg[r, 2]
                acc_out[r] = acc
    return rgb_out, acc_out


WEIGHT_NAMES = ("tables", "d1_w", "d1_b", "d2_w", "d2_b", "c1_w", "c1_b", "c2_w", "c2_b")


def _check_grid(tables, res_levels, dense):
    n_levels, size, _ = tables.shape
    if size & (size - 1):
        raise ValueError(f"hash table size {size} is not a power of two")
    if len(res_levels) != n_levels or len(dense) != n_levels:
        raise ValueError(f"{n_levels} table levels, {len(res_levels)} resolutions, {len(dense)} dense flags")


def hash_encode(tables, res_levels, dense, q) -> np.ndarray:
    """(P, 3) points -> (P, levels * features) float32, as `HashGrid.forward` (points clamped to the cube).

    tables (levels, table, features) float32, res_levels (levels,) int64 from
    `level_resolutions`, dense (levels,) bool from `dense_levels`.
    """
    tables = np.ascontiguousarray(tables, np.float32)
    res_levels = np.ascontiguousarray(res_levels, np.int64)
    dense = np.ascontiguousarray(dense, np.bool_)
    _check_grid(tables, res_levels, dense)
    return _hash_encode_kernel(tables, res_levels, dense, np.ascontiguousarray(q, np.float32).reshape(-1, 3))


def render_frame(weights: dict, res_levels, dense, occ_bits, occ_res, origin, dirs, bg, samples, near, far,
                 stop=1e-4):
    """One frame's rays through `render_rays_kernel`: (rgb (R, 3), acc (R,)) float32.

    weights: the dict of `NerfField.kernel_weights` (tables, d1_w, d1_b, d2_w,
    d2_b, c1_w, c1_b, c2_w, c2_b); res_levels, dense: the hash grid's level
    resolutions and dense-level flags; occ_bits: the occupancy grid, nonzero =
    occupied (any shape, flat order x + y res + z res^2); origin (3,) and dirs
    (R, 3) in the canonical frame; bg (R, 3) or one colour; stop: transmittance
    below which a ray stops marching (0: never, as the reference).
    """
    w = [np.ascontiguousarray(weights[k], np.float32) for k in WEIGHT_NAMES]
    res_levels = np.ascontiguousarray(res_levels, np.int64)
    dense = np.ascontiguousarray(dense, np.bool_)
    _check_grid(w[0], res_levels, dense)
    if w[1].shape[1] != w[0].shape[0] * w[0].shape[2]:
        raise ValueError(f"d1_w takes {w[1].shape[1]} inputs, the grid gives {w[0].shape[0] * w[0].shape[2]}")
    occ = np.ascontiguousarray(occ_bits).reshape(-1)
    if occ.dtype == np.bool_:
        occ = occ.view(np.uint8)
    elif occ.dtype != np.uint8:
        occ = (occ != 0).view(np.uint8)
    if len(occ) != int(occ_res) ** 3:
        raise ValueError(f"occ_bits holds {len(occ)} cells, not {int(occ_res)}^3")
    dirs = np.ascontiguousarray(dirs, np.float32).reshape(-1, 3)
    bg = np.ascontiguousarray(np.broadcast_to(np.asarray(bg, np.float32), dirs.shape))
    return render_rays_kernel(np.ascontiguousarray(origin, np.float32).reshape(3), dirs, bg, *w, res_levels, dense,
                              occ, int(occ_res), int(samples), float(near), float(far), float(stop))


def warmup() -> None:
    """Compile (or load from the numba cache) the kernels on a tiny field."""
    rng = np.random.default_rng(0)
    levels, table, feat, hidden, geo = 2, 64, 2, 4, 3
    weights = {
        "tables": rng.normal(0, 1, (levels, table, feat)).astype(np.float32),
        "d1_w": rng.normal(0, 1, (hidden, levels * feat)).astype(np.float32),
        "d1_b": np.zeros(hidden, np.float32),
        "d2_w": rng.normal(0, 1, (1 + geo, hidden)).astype(np.float32),
        "d2_b": np.zeros(1 + geo, np.float32),
        "c1_w": rng.normal(0, 1, (hidden, geo)).astype(np.float32),
        "c1_b": np.zeros(hidden, np.float32),
        "c2_w": rng.normal(0, 1, (3, hidden)).astype(np.float32),
        "c2_b": np.zeros(3, np.float32),
    }
    res = np.array([2, 4], np.int64)
    dense = np.array([True, False])
    dirs = np.array([[0.0, 0.0, 1.0], [0.1, 0.0, 1.0]], np.float32)
    render_frame(weights, res, dense, np.ones(8, np.bool_), 2, np.array([0, 0, -3], np.float32), dirs,
                 np.zeros((2, 3), np.float32), 4, 2.0, 4.0)
    hash_encode(weights["tables"], res, dense, np.zeros((1, 3), np.float32))
