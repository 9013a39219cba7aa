"""The NeRF backend's parts: hash encoding against a plain reference, camera and pose, occupancy, bundles."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def reference_encoding(tables: torch.Tensor, res: list[int], q: torch.Tensor) -> torch.Tensor:
    """instant-NGP's encoding written out point by point, corner by corner (differentiable in the tables)."""
    levels, size, _ = tables.shape
    out = []
    for p in q:
        feats = []
        for lv in range(levels):
            n = res[lv]
            u = [(float(v) + 1.0) / 2.0 * n for v in p.clamp(-1, 1)]
            cell = [min(max(int(math.floor(v)), 0), n - 1) for v in u]
            frac = [v - c for v, c in zip(u, cell)]
            acc = 0
            for corner in range(8):
                bits = [(corner >> k) & 1 for k in range(3)]
                x, y, z = (c + b for c, b in zip(cell, bits))
                w = 1.0
                for f, b in zip(frac, bits):
                    w *= f if b else 1.0 - f
                if (n + 1) ** 3 <= size:
                    idx = x + y * (n + 1) + z * (n + 1) ** 2
                else:
                    idx = (x * 1 ^ y * 2654435761 ^ z * 805459861) % size
                acc = acc + w * tables[lv, idx]
            feats.append(acc)
        out.append(torch.cat(feats))
    return torch.stack(out)


@pytest.mark.parametrize("log2_table", [14, 9])  # mostly dense levels; all but the coarsest hashed
def test_hash_encoding_matches_the_plain_reference_in_values_and_gradients(log2_table):
    from engine.nerf.hashgrid import HashGrid

    grid = HashGrid(levels=6, log2_table=log2_table, features=2, min_res=4, max_res=96, seed=3)
    with torch.no_grad():
        grid.tables.normal_()
    g = torch.Generator().manual_seed(0)
    q = torch.rand(40, 3, generator=g) * 2.2 - 1.1  # some outside the cube: clamped
    q[0] = torch.tensor([1.0, -1.0, 1.0])  # the corners of the cube
    dense = [bool(d) for d in grid.dense]
    assert any(dense) and not all(dense)
    ours = grid(q)
    ref_tables = grid.tables.detach().clone().requires_grad_(True)
    ref = reference_encoding(ref_tables, [int(r) for r in grid.res], q)
    assert torch.allclose(ours, ref, atol=2e-5)  # float32 weights against float64 ones
    w = torch.randn(ours.shape, generator=g)
    (ours * w).sum().backward()
    (ref * w).sum().backward()
    assert torch.allclose(grid.tables.grad, ref_tables.grad, atol=1e-5)
    assert (grid.tables.grad != 0).any()


def test_level_resolutions_span_min_to_max():
    from engine.nerf.encoding import dense_levels, level_resolutions

    res = level_resolutions(16, 16, 2048)
    assert res[0] == 16 and res[-1] == 2048 and np.all(np.diff(res) > 0)
    assert dense_levels(np.array([15, 16, 40]), 2 ** 12).tolist() == [True, False, False]  # 16^3 fits, 17^3 not


def test_rays_are_carried_into_the_head_frame_by_the_pose():
    from engine.face_geometry import rotation_matrix
    from engine.nerf.rays import canonical_rays, pixel_rays, ray_span

    o, d = pixel_rays(8, 4.0)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0) and np.allclose(o, [0, 0, -4])
    # The central rays meet the z = 0 plane inside [-1, 1]^2 at the pixel centres.
    hit = o + d * (4.0 / d[:, 2:3])
    assert np.allclose(hit[:, :2].reshape(8, 8, 2)[0, 0], [-7 / 8, -7 / 8])
    co, cd = canonical_rays(8, 4.0, (0, 0, 0))
    assert np.allclose(co, o) and np.allclose(cd, d, atol=1e-6)
    # A point of the head at canonical q is seen where R q is: the carried ray through R q passes through q.
    r = rotation_matrix(5, -12, 3)
    q = np.array([0.2, -0.3, 0.1])
    world = r @ q
    t = (world - o) / np.linalg.norm(world - o)
    co, _ = canonical_rays(2, 4.0, (5, -12, 3))
    ct = t @ r
    s = np.dot(q - co, ct)
    assert np.allclose(co + s * ct, q, atol=1e-6)
    near, far = ray_span(4.0)
    assert near < 4 - 1 and far > 4 + 1


def test_compositing_and_occupancy():
    from engine.nerf.config import CONFIGS
    from engine.nerf.model import NerfField
    from engine.nerf.render import Occupancy, render_rays
    from engine.nerf.rays import canonical_rays, ray_span

    cfg = CONFIGS["tiny"]
    field = NerfField(cfg, seed=1)
    o, d = (torch.from_numpy(v) for v in canonical_rays(16, cfg.camera_distance, (0, 0, 0)))
    near, far = ray_span(cfg.camera_distance)
    codes = field.code(torch.zeros(1, 54)).expand(len(d), -1)
    bg = torch.rand(len(d), 3)
    with torch.no_grad():
        field.d2.bias[0] = 3.0  # dense everywhere: opaque rays
        occ = Occupancy(cfg.occupancy_res, (far - near) / cfg.samples)
        rgb, acc = render_rays(field, o, d, codes, bg, occ, cfg.samples, near, far)
        assert acc.min() > 0.99
        empty = Occupancy(cfg.occupancy_res, (far - near) / cfg.samples, torch.zeros(cfg.occupancy_res ** 3))
        rgb0, acc0 = render_rays(field, o, d, codes, bg, empty, cfg.samples, near, far)
        assert torch.equal(acc0, torch.zeros_like(acc0)) and torch.equal(rgb0, bg)
        field.d2.bias[0] = -30.0  # nothing anywhere: the grid empties on its first measurement
        share = occ.update(field, codes[:4], torch.Generator().manual_seed(0))
        assert share == 0.0 and not occ.bits.any()


def test_bad_bundles_are_one_line_errors(default_avatar, tmp_path):
    from nerf_bundles import untrained_nerf_bundle

    from engine import renderers
    from engine.nerf.bundle import NerfBundleError, load_nerf_bundle

    with pytest.raises(NerfBundleError, match="no nerf.json"):
        load_nerf_bundle(tmp_path)
    good = untrained_nerf_bundle(default_avatar, tmp_path / "b")
    load_nerf_bundle(good)

    meta = json.loads((good / "nerf.json").read_text())
    (good / "nerf.json").write_text(json.dumps(dict(meta, version=99)))
    with pytest.raises(NerfBundleError, match="version 99"):
        load_nerf_bundle(good)
    (good / "nerf.json").write_text("{not json")
    with pytest.raises(NerfBundleError, match="corrupt nerf.json"):
        load_nerf_bundle(good)
    (good / "nerf.json").write_text(json.dumps(dict(meta, model=dict(meta["model"], hidden=16))))
    with pytest.raises(NerfBundleError, match="does not match its config"):
        load_nerf_bundle(good)
    (good / "nerf.json").write_text(json.dumps(meta))
    with np.load(good / "field.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["c2.bias"] = np.array([np.nan, 0, 0], np.float32)
    np.savez(good / "field.npz", **arrays)
    with pytest.raises(NerfBundleError, match="non-finite"):
        load_nerf_bundle(good)
    (good / "field.npz").write_bytes(b"not a zip")
    with pytest.raises(NerfBundleError, match="corrupt NeRF bundle"):
        load_nerf_bundle(good)
    with pytest.raises(renderers.RendererError, match="corrupt NeRF bundle"):
        renderers.create("nerf", None, bundle=good, device="cpu")


def test_without_a_gpu_the_live_renderer_falls_back_to_meshwarp(default_avatar, tmp_path, caplog):
    from nerf_bundles import untrained_nerf_bundle

    from engine import renderers

    b = untrained_nerf_bundle(default_avatar, tmp_path / "b")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: auto draws the NeRF")
    r = renderers.create("nerf", default_avatar, bundle=b)
    assert r.name == "meshwarp" and "falling back to meshwarp" in caplog.text
    with pytest.raises(renderers.RendererError, match="no CUDA device"):
        renderers.create("nerf", default_avatar, bundle=b, device="cuda")
    with pytest.raises(renderers.RendererError, match="auto, cpu or cuda"):
        renderers.create("nerf", default_avatar, bundle=b, device="tpu")
    with pytest.raises(renderers.RendererError, match="unknown nerf renderer options"):
        renderers.create("nerf", default_avatar, bundle=b, device="cpu", steps=4)
    with pytest.raises(renderers.RendererError, match="not a NeRF bundle"):
        renderers.create("nerf", str(tmp_path))


def test_the_cpu_renderer_pastes_the_kernels_crop_which_matches_pytorch(default_avatar, tmp_path):
    from nerf_bundles import untrained_nerf_bundle

    from engine import renderers
    from engine.nerf.runtime import TorchCrops
    from engine.nerf.weights import state_vector
    from engine.types import FaceState

    b = untrained_nerf_bundle(default_avatar, tmp_path / "b")
    r = renderers.create("nerf", None, bundle=b, device="cpu")
    assert r.backend == "cpu-kernel" and r.size == default_avatar.size
    s = FaceState.from_dict({"jawOpen": 0.7, "headYaw": 6, "headPitch": -3})
    frame = r.render(s)
    box = r.bundle.box
    crop = r.crop(s)
    ref_rgb, _ = TorchCrops(r.bundle.config, r.bundle.arrays, r.bundle.occupancy, r.bundle.background,
                            device="cpu")(state_vector(s), s.head)
    assert np.abs(crop.astype(int) - np.clip(ref_rgb * 255 + 0.5, 0, 255).astype(int)).max() <= 2
    # Pasted: the box's centre is the crop (feathered only at its edges), outside it is meshwarp's frame.
    c = box.side // 2
    up = np.asarray(__import__("cv2").resize(crop, (box.side, box.side), interpolation=2))
    assert np.abs(frame[box.y0 + c, box.x0 + c].astype(int) - up[c, c].astype(int)).max() <= 3
    mw = renderers.create("meshwarp", r.bundle.avatar).render(s)
    assert np.array_equal(frame[:box.y0], mw[:box.y0])
