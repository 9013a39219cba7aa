"""The numba triangle warp agrees with the NumPy reference and honours its rules."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial import Delaunay
from skimage import data

from kernels.warp import blend_masked, warmup, warp_triangles
from kernels.warp_reference import warp_triangles_ref

SENTINEL = np.array([1, 254, 3], np.uint8)


@pytest.fixture(scope="module")
def image():
    warmup()
    return np.ascontiguousarray(cv2.resize(data.astronaut(), (512, 512), interpolation=cv2.INTER_AREA))


def grid_mesh(n, size, rng=None, jitter=0.0, margin=0.0):
    """(V, 2) grid points over [-margin, size-1+margin]^2 and its two-triangle-per-cell mesh."""
    g = np.linspace(-margin, size - 1 + margin, n)
    gx, gy = np.meshgrid(g, g)
    xy = np.stack([gx.ravel(), gy.ravel()], 1)
    if rng is not None and jitter:
        inner = ((gx > g[0]) & (gx < g[-1]) & (gy > g[0]) & (gy < g[-1])).ravel()
        xy[inner] += rng.uniform(-jitter, jitter, (inner.sum(), 2))
    tris = []
    for r in range(n - 1):
        for c in range(n - 1):
            i = r * n + c
            tris += [[i, i + 1, i + n], [i + 1, i + n + 1, i + n]]
    return xy.astype(np.float32), np.array(tris, np.int32)


def random_mesh(rng, size=512, n=400, deform=6.0):
    """Delaunay over random points plus the corners, destination smoothly and randomly perturbed."""
    pts = np.concatenate([rng.uniform(-10, size + 10, (n, 2)),
                          [[-10, -10], [size + 10, -10], [-10, size + 10], [size + 10, size + 10]]])
    src = pts.astype(np.float32)
    tri = Delaunay(src).simplices.astype(np.int32)
    dst = src + rng.normal(0, deform, src.shape).astype(np.float32)
    return src, dst, tri


def both(src_img, src_xy, dst_xy, tri, draw=None, shape=None):
    shape = src_img.shape if shape is None else shape
    a = np.zeros(shape, np.uint8)
    a[:] = SENTINEL
    b = a.copy()
    warp_triangles(src_img, src_xy, dst_xy, tri, a, draw)
    warp_triangles_ref(src_img, src_xy, dst_xy, tri, b, draw)
    return a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_matches_reference_on_perturbed_meshes(image, seed):
    rng = np.random.default_rng(seed)
    src, dst, tri = random_mesh(rng, deform=4.0 + 4 * seed)
    rng.shuffle(tri)  # overlapping folds then resolve by an arbitrary but shared order
    fast, ref = both(image, src, dst, tri)
    diff = np.abs(fast.astype(np.int16) - ref.astype(np.int16))
    assert diff.max() <= 1
    assert (diff.max(axis=2) == 0).mean() >= 0.999
    # coverage (which pixels each triangle owns) is exact integer math: identical sets
    assert np.array_equal((fast == SENTINEL).all(2), (ref == SENTINEL).all(2))


def test_fast_matches_reference_with_scaling_and_rectangular_output(image):
    rng = np.random.default_rng(7)
    src, dst, tri = random_mesh(rng, n=150)
    dst = dst * np.float32(0.6) + np.float32(5.0)  # minification into a 320x400 canvas
    fast, ref = both(image, src, dst, tri, shape=(320, 400, 3))
    diff = np.abs(fast.astype(np.int16) - ref.astype(np.int16))
    assert diff.max() <= 1 and (diff.max(axis=2) == 0).mean() >= 0.999


def test_identity_warp_reproduces_source(image):
    rng = np.random.default_rng(3)
    pts = rng.uniform(20, 490, (200, 2)).astype(np.float32)
    tri = Delaunay(pts).simplices.astype(np.int32)
    fast, ref = both(image, pts, pts, tri)
    drawn = ~(fast == SENTINEL).all(2)
    assert drawn.sum() > 0.5 * 512 * 512
    assert np.array_equal(fast[drawn], image[drawn])
    assert np.array_equal(ref[drawn], image[drawn])
    # every pixel centre strictly inside the hull (1 px away from it) is drawn
    hull = Delaunay(pts)
    yy, xx = np.mgrid[0:512, 0:512]
    centres = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)
    deep = np.ones(len(centres), bool)
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        deep &= hull.find_simplex(centres + (dx, dy)) >= 0
    assert drawn.ravel()[deep].all()


@pytest.mark.parametrize("seed", [0, 1])
def test_jittered_full_grid_leaves_no_hole(image, seed):
    rng = np.random.default_rng(seed)
    # the mesh reaches past the image edge; some vertices sit exactly on pixel centres
    # (pixels on shared edges and vertices: the fill rule's edge cases)
    xy, tri = grid_mesh(17, 512, rng, jitter=12.0, margin=4.0)
    on_centre = rng.random(len(xy)) < 0.3
    xy[on_centre] = np.round(xy[on_centre])
    src_xy = grid_mesh(17, 512, margin=4.0)[0]
    fast, ref = both(image, src_xy, xy, tri)
    assert not (fast == SENTINEL).all(2).any()
    assert not (ref == SENTINEL).all(2).any()


def test_shared_edges_are_drawn_exactly_once():
    # count draws per pixel with a 1x1 source per triangle colour: triangle t samples colour t
    n = 9
    xy, tri = grid_mesh(n, 64, np.random.default_rng(5), jitter=3.0, margin=2.0)
    xy[10] = np.round(xy[10])  # a vertex on a pixel centre
    counts = np.zeros((64, 64), np.int32)
    src = np.full((1, 1, 3), 255, np.uint8)
    uv = np.zeros_like(xy)
    for t in range(len(tri)):
        out = np.zeros((64, 64, 3), np.uint8)
        warp_triangles(src, uv, xy, tri, out, np.array([t], np.int32))
        counts += out[..., 0] == 255
    assert (counts == 1).all()


def test_later_triangles_overwrite_earlier():
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    red[1, 1] = (0, 0, 255)  # source colours: red everywhere except blue at (1, 1)
    uv = np.array([[0, 0], [0, 0], [0, 0], [1, 1], [1, 1], [1, 1]], np.float32)
    dst = np.array([[10, 10], [100, 10], [10, 100], [20, 20], [120, 20], [20, 120]], np.float32)
    tri = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    for order, colour in (([0, 1], (0, 0, 255)), ([1, 0], (255, 0, 0))):
        out = np.zeros((128, 128, 3), np.uint8)
        warp_triangles(red, uv, dst, tri, out, np.array(order, np.int32))
        assert tuple(out[30, 30]) == colour  # inside both: the one drawn last wins
        assert tuple(out[12, 12]) == (255, 0, 0)  # only in the first
        ref = np.zeros_like(out)
        warp_triangles_ref(red, uv, dst, tri, ref, np.array(order, np.int32))
        assert np.array_equal(out, ref)


def test_degenerate_triangles_draw_nothing(image):
    xy = np.array([[10, 10], [50, 50], [90, 90], [10, 90], [10, 90.001]], np.float32)
    tri = np.array([[0, 1, 2], [0, 3, 3], [0, 3, 4]], np.int32)  # collinear, repeated, sub-1/256
    fast, ref = both(image, xy, xy, tri, shape=(128, 128, 3))
    assert (fast == SENTINEL).all() and (ref == SENTINEL).all()


def test_source_outside_image_clamps_to_edge():
    src = np.zeros((8, 8, 3), np.uint8)
    src[:, 0] = (200, 10, 20)  # left column
    src[0, :] = (30, 40, 250)  # top row (overrides the corner)
    dst = np.array([[-1, -1], [31, -1], [-1, 31], [31, 31]], np.float32)  # covers the 31x31 canvas
    tri = np.array([[0, 1, 2], [1, 3, 2]], np.int32)
    for uv, expect in ((np.array([[-50, 3], [-20, 3], [-50, 6], [-20, 6]], np.float32), (200, 10, 20)),
                       (np.array([[2, -40], [6, -40], [2, -9], [6, -9]], np.float32), (30, 40, 250))):
        for fn in (warp_triangles, warp_triangles_ref):
            out = np.zeros((31, 31, 3), np.uint8)
            fn(src, uv, dst, tri, out)
            assert (out.reshape(-1, 3) == expect).all()


def test_draw_subset_only_touches_those_triangles(image):
    rng = np.random.default_rng(11)
    src, dst, tri = random_mesh(rng, n=120)
    subset = np.array([5, 40, 17], np.int32)
    fast, ref = both(image, src, dst, tri, draw=subset)
    full = np.zeros_like(image)
    full[:] = SENTINEL
    alone = np.zeros(image.shape[:2], bool)
    for t in subset:  # pixels each subset triangle covers, drawn on its own
        one = full.copy()
        warp_triangles(image, src, dst, tri, one, np.array([t], np.int32))
        alone |= ~(one == SENTINEL).all(2)
    touched = ~(fast == SENTINEL).all(2)
    assert touched.any() and np.array_equal(touched, alone)
    assert np.array_equal(fast, ref)


def test_blend_masked_matches_numpy(image):
    rng = np.random.default_rng(2)
    dst = image.copy()
    overlay = rng.integers(0, 256, image.shape, dtype=np.uint8)
    alpha = np.zeros(image.shape[:2], np.float32)
    yy, xx = np.mgrid[0:512, 0:512]
    alpha[:] = np.clip(1.2 - np.hypot(xx - 300, yy - 340) / 40.0, 0, 1)
    alpha[330:340, 290:300] = rng.random((10, 10)).astype(np.float32)
    a = alpha.astype(np.float64)[..., None]
    d = image.astype(np.float64)
    expect = np.where(a > 0, np.floor(d + a * (overlay - d) + 0.5), d).astype(np.uint8)
    box = blend_masked(dst, overlay, alpha)
    assert np.array_equal(dst, expect)
    ys, xs = np.nonzero(alpha > 0)
    assert box == (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
    # a caller-given box limits the region; an all-zero alpha changes nothing
    dst2 = image.copy()
    blend_masked(dst2, overlay, alpha, box=(0, 340, 0, 512))
    assert np.array_equal(dst2[:340], expect[:340]) and np.array_equal(dst2[340:], image[340:])
    dst3 = image.copy()
    blend_masked(dst3, overlay, np.zeros_like(alpha))
    assert np.array_equal(dst3, image)
