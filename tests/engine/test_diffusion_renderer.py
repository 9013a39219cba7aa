"""The `diffusion` renderer on a bundle built here (default avatar, random tiny model): no data needed."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine import renderers  # noqa: E402
from engine.diffusion.crop import face_box, mouth_box  # noqa: E402
from engine.diffusion.hint import hint_renderer  # noqa: E402
from engine.renderers.diffusion import DiffusionRenderer  # noqa: E402
from engine.renderers.meshwarp import MeshWarpRenderer  # noqa: E402
from engine.types import FaceState  # noqa: E402

STATE = FaceState.from_dict({"jawOpen": 0.5, "mouthSmileLeft": 0.3, "headYaw": 4})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, default_avatar):
    from engine.avatar import save_avatar
    from engine.diffusion.export import save_bundle
    from engine.diffusion.model import CONFIGS, Denoiser

    torch.manual_seed(0)
    model = Denoiser(CONFIGS["tiny"]).eval()
    with torch.no_grad():
        model.out.weight.normal_(0, 0.02)  # not the identity: the crop must differ from the hint
    out = tmp_path_factory.mktemp("bundle") / "b"
    save_avatar(default_avatar, out / "avatar")
    box = face_box(default_avatar.landmarks, default_avatar.size, 64)
    save_bundle(out, model, box, mouth_box(default_avatar.landmarks, box), box.cut(default_avatar.image))
    return out


def _cpu(bundle, **kw):
    return renderers.create("diffusion", None, bundle=bundle, device="cpu", **kw)


def test_renders_full_frames_with_only_the_face_crop_replaced(bundle):
    r = _cpu(bundle)
    assert isinstance(r, DiffusionRenderer) and r.name == "diffusion"
    img = r.render(STATE)
    plain = hint_renderer(r.bundle.avatar).render(STATE)
    assert img.shape == plain.shape == (*r.size, 3) and img.dtype == np.uint8
    b = r.bundle.box
    outside = np.ones(r.size, bool)
    outside[b.y0:b.y0 + b.side, b.x0:b.x0 + b.side] = False
    assert np.array_equal(img[outside], plain[outside])
    inside = (slice(b.y0 + b.side // 4, b.y0 + 3 * b.side // 4), slice(b.x0 + b.side // 4, b.x0 + 3 * b.side // 4))
    assert np.abs(img[inside].astype(int) - plain[inside]).mean() > 1.0


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_step_counts_render_deterministically(bundle, steps):
    r = _cpu(bundle, steps=steps)
    a, b = r.render(STATE), r.render(STATE)
    assert np.array_equal(a, b)
    assert 10 < a.std() < 120


def test_torch_backend_matches_onnx_runtime(bundle):
    a = _cpu(bundle).crop(STATE).astype(int)
    b = _cpu(bundle, backend="torch").crop(STATE).astype(int)
    assert np.abs(a - b).max() <= 2


def test_identity_mix_option(bundle):
    a = _cpu(bundle).crop(STATE).astype(int)
    b = _cpu(bundle, identity_mix=0.5, identity_mix_steps=2).crop(STATE).astype(int)
    assert np.abs(a - b).mean() > 0.1
    with pytest.raises(renderers.RendererError, match="identity_mix"):
        _cpu(bundle, identity_mix=1.5)
    with pytest.raises(renderers.RendererError, match="steps"):
        _cpu(bundle, steps=0)


def test_no_bundle_or_no_gpu_falls_back_to_meshwarp_with_a_warning(bundle, default_avatar, caplog):
    import onnxruntime as ort

    with caplog.at_level(logging.WARNING):
        r = renderers.create("diffusion", default_avatar)
    assert isinstance(r, MeshWarpRenderer) and "no bundle" in caplog.text
    assert r.neural_mouth is None  # the fallback is what a meshwarp session gets
    r = renderers.create("diffusion", default_avatar, **renderers.switch_options("diffusion", neural_mouth=True))
    assert isinstance(r, MeshWarpRenderer) and r.neural_mouth is not None
    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()):
        return
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        r = renderers.create("diffusion", default_avatar, bundle=bundle)  # device auto: a GPU or nothing
    assert isinstance(r, MeshWarpRenderer) and "no suitable device" in caplog.text
    r = renderers.create("diffusion", str(bundle))  # the bundle directory as the avatar: its own avatar
    assert isinstance(r, MeshWarpRenderer) and r.size == default_avatar.size


def test_broken_bundles_are_clear_errors(bundle, tmp_path):
    with pytest.raises(renderers.RendererError, match="no diffusion.json"):
        renderers.create("diffusion", None, bundle=tmp_path, device="cpu")
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    (bad / "diffusion.json").write_text("{nope")
    with pytest.raises(renderers.RendererError, match="corrupt diffusion.json"):
        renderers.create("diffusion", None, bundle=bad, device="cpu")
    shutil.rmtree(bad)
    shutil.copytree(bundle, bad)
    meta = json.loads((bad / "diffusion.json").read_text())
    (bad / "diffusion.json").write_text(json.dumps(dict(meta, hint="meshwarp-something-else")))
    with pytest.raises(renderers.RendererError, match="retrain"):
        renderers.create("diffusion", None, bundle=bad, device="cpu")
    (bad / "diffusion.json").write_text(json.dumps(meta))
    (bad / "denoiser.onnx").write_bytes(b"not onnx")
    with pytest.raises(renderers.RendererError, match="cannot load"):
        renderers.create("diffusion", None, bundle=bad, device="cpu")
