"""End to end on real video (tiny config, 64x64): track, segment, train, bundle, render; the mouth follows speech."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")


@pytest.mark.slow
def test_tiny_train_then_render_a_head_whose_mouth_follows_speech(shared, tmp_path, capsys, redetect, monkeypatch):
    from engine import renderers
    from engine.audio import read_audio_file
    from engine.diffusion.metrics import psnr
    from engine.face_geometry import mouth_opening
    from engine.measure import read_video_rgb
    from engine.nerf.bundle import load_nerf_bundle
    from engine.nerf.data import cache_key, nerf_clip
    from engine.nerf.model import NerfField, field_arrays
    from engine.nerf.runtime import KernelCrops, to_u8
    from engine.nerf.train import grid_tiny_argv, main
    from engine.speech_render import speech_states
    from engine.types import FaceState

    out = tmp_path / "bundle"
    assert main(grid_tiny_argv(shared, out)) == 0
    b = load_nerf_bundle(out)
    assert b.config.res == 64 and b.box.res == 64
    rep = json.loads((out / "report.json").read_text())
    h = rep["heldout"]
    assert rep["data"]["heldout"] == ["bbal6n"] and h["frames"] >= 70
    # On frames it never saw, after 50 s on one core, the head is about as close to the real one as meshwarp's
    # warped photo (measured -0.2 dB; the small config is +5.4 dB: docs/design/nerf.md) ...
    assert h["nerf"]["psnr"] > h["meshwarp"]["psnr"] - 1.0, h
    assert h["nerf"]["lmd_frames"] >= 0.8 * h["frames"], h  # a face the landmarker still finds
    # ... and far closer than the same field untrained (a haze over the background layer; measured +9 dB).
    clip = shared / "data" / "grid" / "s1" / "bbal6n.mp4"
    c = nerf_clip(clip, b.avatar, None, b.box, out / "cache" / cache_key(b.avatar, b.box))  # cached by training
    untrained = field_arrays(NerfField(b.config))
    untrained.update(state_mean=b.arrays["state_mean"], state_std=b.arrays["state_std"])
    keep = np.flatnonzero(c.found)
    for arrays, occ, name in ((b.arrays, b.occupancy, "trained"), (untrained, np.ones_like(b.occupancy), "untrained")):
        crops = KernelCrops(b.config, arrays, occ, b.background)
        h[name] = np.mean([psnr(to_u8(crops(c.state[k], c.head[k])[0]), c.target[k]) for k in keep])
    assert h["trained"] > h["untrained"] + 5.0, h
    assert 0.0 < rep["training"]["occupied"] < 1.0  # the occupancy grid was measured and skips empty space
    assert rep["speed"]["backend"] == "cpu-kernel" and rep["speed"]["frame_ms"] > 0
    assert (out / "report.md").read_text().count("| nerf |") == 1

    r = renderers.create("nerf", None, bundle=out, device="cpu")
    # Driven from the held-out clip's own audio, the drawn mouth opens and closes with the real one (re-detected
    # on both; measured r 0.63, meshwarp 0.79; an expression code left unstandardised measured -0.01).
    samples, rate = read_audio_file(clip)
    states = list(speech_states(samples[: 3 * rate], rate))
    frames, _ = read_video_rgb(clip)
    n = min(len(states), len(frames))
    drawn = [mouth_opening(redetect(r.render(s))) for s in states[:n]]
    real = [mouth_opening(redetect(f)) for f in frames[:n]]
    assert np.corrcoef(drawn, real)[0, 1] > 0.4
    a = r.render(FaceState.neutral())
    z = r.render(FaceState.from_dict({"jawOpen": 0.8}))
    assert a.shape == (*b.avatar.size, 3) and a.dtype == np.uint8
    y0, y1, x0, x1 = b.mouth  # the open jaw changes the drawn mouth
    assert np.abs(r.crop(FaceState.neutral())[y0:y1, x0:x1].astype(int) -
                  r.crop(FaceState.from_dict({"jawOpen": 0.8}))[y0:y1, x0:x1].astype(int)).mean() > 1.0
    assert not np.array_equal(a, z)

    # Resuming a finished run trains nothing more and writes the same weights.
    before = (out / "field.npz").read_bytes()
    assert main(grid_tiny_argv(shared, out, report=False)) == 0
    assert (out / "field.npz").read_bytes() == before
    # A run stopped at its first checkpoint (step 250 of 500) and started again ends with the same weights as the
    # run that was not stopped (the tracking comes from the first run's cache).
    from engine.nerf import train as nerf_train

    again = grid_tiny_argv(shared, tmp_path / "again", report=False) + ["--cache", str(out / "cache")]
    save_state = nerf_train.save_state

    def stop_after_saving(path, state):
        save_state(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(nerf_train, "save_state", stop_after_saving)
    with pytest.raises(KeyboardInterrupt):
        main(again)
    monkeypatch.undo()
    assert torch_load_step(tmp_path / "again" / "train" / "state.pt") == 250
    assert main(again) == 0
    assert (tmp_path / "again" / "field.npz").read_bytes() == before
    # A checkpoint of another configuration is refused, not loaded.
    capsys.readouterr()
    assert main(grid_tiny_argv(shared, out, report=False) + ["--config", "small", "--size", "64"]) == 2
    assert "another model configuration" in capsys.readouterr().err


def torch_load_step(path):
    import torch

    return torch.load(path, weights_only=False)["step"]


def test_bad_training_input_is_a_one_line_error(tmp_path, capsys):
    from engine.nerf.train import main

    assert main([str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "video not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no video files" in capsys.readouterr().err
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--size", "50"]) == 2
    assert "--size" in capsys.readouterr().err
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--device", "cuda:0"]) == 2 or \
        __import__("torch").cuda.is_available()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--config", "huge"])
