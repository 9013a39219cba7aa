"""Diffusion renderer pieces that need no data: ONNX export, the few-step sampler, distillation targets, crops."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.diffusion.crop import CropBox, feather_mask  # noqa: E402
from engine.diffusion.distill import distill_targets  # noqa: E402
from engine.diffusion.evaluate import generate  # noqa: E402
from engine.diffusion.export import export_onnx, max_abs_diff  # noqa: E402
from engine.diffusion.model import CONFIGS, Denoiser  # noqa: E402
from engine.diffusion.runtime import NoSuitableDevice, OrtRunner  # noqa: E402
from engine.diffusion.sampler import alpha_sigma, ddim_step, sample  # noqa: E402


def random_model(seed: int = 0) -> Denoiser:
    """The tiny model with every weight random (the zero-initialised output layer too, so it is not the identity)."""
    torch.manual_seed(seed)
    m = Denoiser(CONFIGS["tiny"])
    with torch.no_grad():
        for p in m.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    return m.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    m = random_model()
    path = export_onnx(m, tmp_path_factory.mktemp("onnx") / "denoiser.onnx")
    return m, path


def test_onnx_matches_pytorch(exported):
    m, path = exported
    assert max_abs_diff(m, path, batch=3) < 1e-4


def _inputs(n=2, r=64, seed=0):
    rng = np.random.default_rng(seed)
    hint = rng.integers(0, 256, (n, r, r, 3), dtype=np.uint8)
    ref = rng.integers(0, 256, (r, r, 3), dtype=np.uint8)
    cond = rng.random((n, 57)).astype(np.float32)
    return hint, ref, cond


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_few_step_sampler_gives_finite_in_range_images(exported, steps):
    _, path = exported
    runner = OrtRunner(path, device="cpu")
    hint, ref, cond = _inputs()
    a = generate(runner, hint, ref, cond, steps, seed=3)
    b = generate(runner, hint, ref, cond, steps, seed=3)
    assert a.shape == hint.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)  # fixed seed: the same frame every time
    assert 5 < a.std() < 120  # a picture, not a constant or saturated noise
    h = hint.transpose(0, 3, 1, 2) / 127.5 - 1
    r = np.repeat(ref.transpose(2, 0, 1)[None] / 127.5 - 1, 2, 0)
    x = sample(lambda x, t: runner(np.broadcast_to(x, (2, 3, 64, 64)), np.full(2, t, np.float32), h, r, cond),
               np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32), steps)
    assert np.all(np.isfinite(x)) and x.min() >= -1 and x.max() <= 1


def test_identity_mix_pulls_towards_the_anchor(exported):
    _, path = exported
    runner = OrtRunner(path, device="cpu")
    hint, ref, cond = _inputs()
    plain = generate(runner, hint, ref, cond, 4).astype(float)
    mixed = generate(runner, hint, ref, cond, 4, mix=0.3, mix_steps=2).astype(float)
    assert not np.array_equal(plain, mixed)


def test_cpu_runner_needs_an_explicit_request(exported):
    import onnxruntime as ort

    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()):
        pytest.skip("a GPU provider is present")
    with pytest.raises(NoSuitableDevice, match="device='cpu'"):
        OrtRunner(exported[1], device="auto")


def test_ddim_is_exact_for_a_perfect_model():
    """With the true x0, every step count lands exactly on x0 (the schedule and step algebra are consistent)."""
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (1, 3, 8, 8))
    noise = rng.standard_normal((1, 3, 8, 8))
    for steps in (1, 2, 4, 16):
        out = sample(lambda x, t: x0, noise, steps)
        np.testing.assert_allclose(out, x0, atol=1e-12)
    a, s = alpha_sigma(0.3)
    assert math.isclose(a * a + s * s, 1.0)


def test_distilled_target_reproduces_two_teacher_steps():
    """One student DDIM step with the distillation target lands where two teacher steps land."""
    torch.manual_seed(0)
    teacher = random_model(1)
    n = 8
    x_t = torch.randn(4, 3, 64, 64)
    t = torch.tensor([1.0, 0.75, 0.5, 0.25])
    hint, ref = torch.rand(4, 3, 64, 64) * 2 - 1, torch.rand(4, 3, 64, 64) * 2 - 1
    cond = torch.rand(4, 57)
    target = distill_targets(teacher, x_t, t, n, (hint, ref, cond))
    with torch.no_grad():
        for i, tv in enumerate(t.tolist()):
            c = (hint[i:i + 1], ref[i:i + 1], cond[i:i + 1])
            x = x_t[i:i + 1]
            x1 = ddim_step(x, teacher(x, torch.full((1,), tv), *c).clamp(-1, 1), tv, tv - 1 / n)
            x2 = ddim_step(x1, teacher(x1, torch.full((1,), tv - 1 / n), *c).clamp(-1, 1), tv - 1 / n, tv - 2 / n)
            student = ddim_step(x, target[i:i + 1], tv, tv - 2 / n)
            torch.testing.assert_close(student, x2, atol=2e-4, rtol=1e-4)


def test_crop_paste_keeps_the_frame_outside_the_box_and_feathers_inside():
    box = CropBox(x0=10, y0=20, side=40, res=16)
    frame = np.full((80, 80, 3), 50, np.uint8)
    out = box.paste(frame, np.full((16, 16, 3), 250, np.uint8))
    assert out.shape == frame.shape and out.dtype == np.uint8
    outside = np.ones((80, 80), bool)
    outside[20:60, 10:50] = False
    assert np.all(out[outside] == 50)
    assert out[40, 30, 0] == 250 and 50 < out[21, 30, 0] < 250  # centre replaced, edge blended
    m = feather_mask(40)
    assert m.max() == 1 and m.min() > 0 and np.allclose(m, m.T)
    assert box.cut(out).shape == (16, 16, 3)


def test_state_inputs_unseen_in_training_are_ignored_without_changing_seen_outputs():
    from engine.diffusion.model import ignore_unseen_inputs

    m = random_model(2)
    rng = np.random.default_rng(0)
    cond = rng.random((50, 57)).astype(np.float32)
    cond[:, 55:] = 0.0  # gaze: never tracked
    cond[:, 7] = 0.13  # a constant coefficient
    x = [torch.randn(2, 3, 64, 64), torch.rand(2), torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)]
    seen = torch.from_numpy(cond[:2])
    with torch.no_grad():
        before = m(*x, seen)
        assert ignore_unseen_inputs(m, cond) == [7, 55, 56]
        after = m(*x, seen)
        other = seen.clone()
        other[:, 55:] = 0.8
        other[:, 7] = 0.9
        moved = m(*x, other)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(moved, after, atol=1e-6, rtol=0)
