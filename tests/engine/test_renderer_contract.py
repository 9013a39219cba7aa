"""The contract every registered renderer keeps (run against each name in the registry)."""
from __future__ import annotations

import numpy as np
import pytest

from engine import renderers
from engine.types import NUM_COEFFS, FaceState


@pytest.fixture(scope="session")
def tiny_diffusion_bundle(shared, tmp_path_factory):
    """A diffusion bundle trained for a few steps on GRID s1 (the contract, not the quality, is tested here)."""
    from engine.diffusion.train import grid_tiny_argv, main

    out = tmp_path_factory.mktemp("diffusion") / "bundle"
    assert main(grid_tiny_argv(shared, out, train=("bbaf2n", "bbaf3s"), heldout=("bbaf4p",), steps=20,
                               distill_steps=10, report=False)) == 0
    return out


@pytest.fixture(scope="session")
def untrained_nerf(default_avatar, tmp_path_factory):
    """A NeRF bundle with an untrained field (the contract, not the quality, is tested here)."""
    from nerf_bundles import untrained_nerf_bundle

    return untrained_nerf_bundle(default_avatar, tmp_path_factory.mktemp("nerf") / "bundle")


# Every registered renderer as it comes, and meshwarp with the neural mouth too.
CASES = [pytest.param((name, {}), id=name) for name in renderers.available()] + [
    pytest.param(("meshwarp", {"neural_mouth": True}), id="meshwarp-neural-mouth")]


@pytest.fixture(params=CASES)
def renderer(request, default_avatar):
    name, options = request.param
    if name == "diffusion":  # needs a trained bundle; CPU asked for explicitly
        options = {"bundle": request.getfixturevalue("tiny_diffusion_bundle"), "device": "cpu"}
    if name == "nerf":  # the CPU kernel, asked for explicitly
        options = {"bundle": request.getfixturevalue("untrained_nerf"), "device": "cpu"}
    r = renderers.create(name, default_avatar, **options)
    assert r.name == name
    if name == "meshwarp":  # off unless turned on, and drawing on the default avatar when on
        assert (r.neural_mouth is not None and r.neural_mouth.enabled) == options.get("neural_mouth", False)
    yield r
    r.close()


def test_frame_shape_and_type(renderer):
    img = renderer.render(FaceState.neutral())
    assert img.dtype == np.uint8 and img.shape == (*renderer.size, 3)
    assert img.flags.c_contiguous


def test_deterministic_and_source_untouched(renderer, default_avatar):
    before = default_avatar.image.copy()
    s = FaceState.from_dict({"jawOpen": 0.6, "mouthSmileLeft": 0.4, "headYaw": 7, "gazeYaw": 10})
    a, b = renderer.render(s), renderer.render(s)
    assert np.array_equal(a, b)
    assert np.array_equal(default_avatar.image, before)


def test_extreme_states_render(renderer):
    for s in (FaceState(coeffs=np.ones(NUM_COEFFS), head=[30, 30, 30], gaze=[30, -30]),
              FaceState(coeffs=np.ones(NUM_COEFFS), head=[-30, -30, -30]),
              FaceState(coeffs=np.full(NUM_COEFFS, np.nan), head=[1e9, -1e9, np.inf])):
        img = renderer.render(s)
        assert img.shape == (*renderer.size, 3)


def test_different_states_differ(renderer):
    a = renderer.render(FaceState.neutral())
    b = renderer.render(FaceState.from_dict({"jawOpen": 1.0}))
    assert np.abs(a.astype(int) - b.astype(int)).sum() > 0


def test_unknown_renderer_is_a_clear_error(default_avatar):
    with pytest.raises(renderers.RendererError, match="unknown renderer"):
        renderers.create("no-such-renderer", default_avatar)


def test_trained_renderers_know_their_bundles(untrained_nerf, tmp_path):
    assert renderers.trained() == ("diffusion", "nerf")
    assert renderers.is_trained_bundle(untrained_nerf) and renderers.is_trained_bundle(str(untrained_nerf))
    (tmp_path / "diffusion.json").write_text("{}")
    assert renderers.is_trained_bundle(tmp_path)
    assert not renderers.is_trained_bundle(tmp_path / "nothing") and not renderers.is_trained_bundle(None)
