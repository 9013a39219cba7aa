"""The numba NeRF renderer agrees with the PyTorch reference (engine.nerf.render.render_rays)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.nerf.config import CONFIGS
from engine.nerf.hashgrid import dense_levels, level_resolutions
from engine.nerf.model import STATE_DIM, NerfField
from engine.nerf.rays import canonical_rays, ray_span
from engine.nerf.render import Occupancy, render_rays
from kernels.nerf import hash_encode, render_frame, warmup

TINY = CONFIGS["tiny"]
# tiny indexes its two coarsest levels densely and hashes the rest; with 2^12 entries every level hashes
VARIANTS = {"tiny": TINY, "tiny-hashed": dataclasses.replace(TINY, log2_table=12)}
HEAD = (5, -8, 3)


@pytest.fixture(scope="module", autouse=True)
def compiled():
    warmup()


def perturbed_field(cfg, seed, density_bias):
    """A field whose tables carry real structure (noise of scale 0.5) and whose density is substantial."""
    field = NerfField(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        field.grid.tables.add_(torch.randn(field.grid.tables.shape, generator=g) * 0.5)
        field.d2.bias[0] = density_bias
    return field


def grid_of(cfg):
    res = level_resolutions(cfg.levels, cfg.min_res, cfg.max_res)
    return res, dense_levels(res, 2 ** cfg.log2_table)


def scene(cfg, seed, density_bias=2.5):
    """Field, frame state, occupancy (random half of the cells cleared, most of the x < -1/3 slab too, so
    opacities range from thin to opaque), rays and background."""
    rng = np.random.default_rng(seed)
    field = perturbed_field(cfg, seed, density_bias)
    state = rng.normal(0.0, 0.5, STATE_DIM).astype(np.float32)
    n = cfg.occupancy_res
    bits = rng.random((n, n, n)) < 0.5  # (z, y, x): flat index x + y n + z n^2
    bits[:, :, : n // 3] &= rng.random((n, n, n // 3)) < 0.1
    near, far = ray_span(cfg.camera_distance)
    occ = Occupancy(n, (far - near) / cfg.samples, torch.from_numpy(bits.reshape(-1)))
    origin, dirs = canonical_rays(cfg.res, cfg.camera_distance, head=HEAD)
    bg = rng.random((len(dirs), 3)).astype(np.float32)
    return field, state, occ, origin, dirs, bg


def reference(field, state, occ, origin, dirs, bg, cfg):
    near, far = ray_span(cfg.camera_distance)
    with torch.no_grad():
        codes = field.code(torch.from_numpy(state)[None]).expand(len(dirs), -1)
        rgb, acc = render_rays(field, torch.from_numpy(origin), torch.from_numpy(dirs), codes, torch.from_numpy(bg),
                               occ, cfg.samples, near, far, g=None)
    return rgb.numpy(), acc.numpy()


def kernel(field, state, occ, origin, dirs, bg, cfg, stop):
    res, dense = grid_of(cfg)
    near, far = ray_span(cfg.camera_distance)
    return render_frame(field.kernel_weights(state), res, dense, occ.bits.numpy(), occ.res, origin, dirs, bg,
                        cfg.samples, near, far, stop=stop)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_hash_encode_matches_hashgrid(variant):
    cfg = VARIANTS[variant]
    field = perturbed_field(cfg, 3, 0.0)
    rng = np.random.default_rng(4)
    q = rng.uniform(-1.0, 1.0, (4000, 3)).astype(np.float32)
    # the cube's faces, its centre, cell boundaries of several levels, and points outside (clamped)
    q[:8] = [[-1, -1, -1], [1, 1, 1], [0, 0, 0], [1, -1, 0.5], [0.125, -0.25, 0.75], [1.5, -2, 0.3],
             [-1.2, 0.999, 1.0001], [1 / 16 - 1, 1 / 23 - 1, 2 / 35 - 1]]
    res, dense = grid_of(cfg)
    got = hash_encode(field.grid.tables.detach().numpy(), res, dense, q)
    with torch.no_grad():
        want = field.grid(torch.from_numpy(q)).numpy()
    assert got.shape == want.shape == (len(q), cfg.levels * cfg.features)
    assert np.abs(got - want).max() < 1e-6


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_render_matches_reference(variant):
    cfg = VARIANTS[variant]
    args = scene(cfg, seed=7)
    ref_rgb, ref_acc = reference(*args, cfg)
    # empty, thin, partly opaque and opaque rays
    assert ref_acc.min() < 0.1 and ref_acc.max() > 0.9999
    assert np.mean((ref_acc > 0.1) & (ref_acc < 0.9)) > 0.05 and np.mean(ref_acc > 0.99) > 0.5

    rgb, acc = kernel(*args, cfg, stop=0.0)
    assert rgb.dtype == acc.dtype == np.float32 and rgb.shape == (len(args[4]), 3) and acc.shape == (len(args[4]),)
    assert np.abs(rgb - ref_rgb).max() < 1e-4
    assert np.abs(acc - ref_acc).max() < 1e-4

    rgb_stop, acc_stop = kernel(*args, cfg, stop=1e-4)
    assert np.any(acc_stop != acc)  # some rays did stop early
    assert np.abs(rgb_stop - ref_rgb).max() < 2e-3
    assert np.abs(acc_stop - ref_acc).max() < 2e-3


def test_empty_occupancy_gives_the_background():
    cfg = TINY
    field, state, occ, origin, dirs, bg = scene(cfg, seed=8)
    empty = Occupancy(occ.res, occ.delta, torch.zeros(occ.res ** 3, dtype=torch.bool))
    rgb, acc = kernel(field, state, empty, origin, dirs, bg, cfg, stop=1e-4)
    assert np.array_equal(rgb, bg)
    assert np.array_equal(acc, np.zeros(len(dirs), np.float32))


def test_rays_missing_the_cube_give_the_background():
    cfg = TINY
    field, state, occ, origin, dirs, bg = scene(cfg, seed=9)
    away = -dirs  # pointing away from the head volume
    rgb, acc = kernel(field, state, occ, origin, away, bg, cfg, stop=0.0)
    assert np.array_equal(rgb, bg) and not acc.any()


def test_occupancy_dtypes_and_one_background_colour():
    cfg = TINY
    field, state, occ, origin, dirs, _ = scene(cfg, seed=10)
    res, dense = grid_of(cfg)
    near, far = ray_span(cfg.camera_distance)
    w = field.kernel_weights(state)
    bits = occ.bits.numpy()
    colour = np.array([0.2, 0.5, 0.9], np.float32)
    want = render_frame(w, res, dense, bits, occ.res, origin, dirs, np.tile(colour, (len(dirs), 1)), cfg.samples,
                        near, far)
    for cells in (bits.astype(np.uint8), bits.astype(np.float32) * 7.5, bits.reshape(occ.res, occ.res, occ.res)):
        got = render_frame(w, res, dense, cells, occ.res, origin, dirs, colour, cfg.samples, near, far)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    with pytest.raises(ValueError):
        render_frame(w, res, dense, bits[:-1], occ.res, origin, dirs, colour, cfg.samples, near, far)
