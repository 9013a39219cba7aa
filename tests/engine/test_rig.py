"""Checks of the linear expression rig against independent face geometry and held-out real frames."""
from pathlib import Path

import numpy as np
import pytest

from engine import face_geometry as fg
from engine.measure import shared_dir
from engine.rig import DEFAULT_PATH, load_rig, rigid_align
from engine.types import COEFF_INDEX, NUM_COEFFS

CACHE = Path(__file__).resolve().parents[2] / "build" / "rig_cache" / "grid_s1"


def _face(**values):
    rig = load_rig()
    c = np.zeros(NUM_COEFFS, np.float32)
    for k, v in values.items():
        c[COEFF_INDEX[k]] = v
    return rig.face(c)


def test_asset_small_and_shaped():
    assert DEFAULT_PATH.stat().st_size < 2 * 1024 * 1024
    rig = load_rig()
    assert rig.basis.shape == (52, 478, 3) and rig.basis.dtype == np.float32
    assert set(rig.source) <= {"fit", "facs"} and len(rig.source) == 52
    assert load_rig() is rig  # cached


def test_displacements_is_linear():
    rig = load_rig()
    a, b = np.random.default_rng(0).random((2, NUM_COEFFS))
    np.testing.assert_allclose(rig.displacements(a + b), rig.displacements(a) + rig.displacements(b), atol=1e-5)
    assert np.abs(rig.displacements(np.zeros(NUM_COEFFS))).max() == 0


@pytest.mark.parametrize("coeff,closed,open_", [("eyeBlinkLeft", "left", "right"), ("eyeBlinkRight", "right", "left")])
def test_blink_closes_one_eye(coeff, closed, open_):
    # MediaPipe's "Left" = subject's left = face_geometry's "left" eye (image-right); see docs/design/rig.md.
    neutral = _face()
    f = _face(**{coeff: 1.0})
    assert fg.eye_aspect_ratio(neutral, closed) > 0.2
    assert fg.eye_aspect_ratio(f, closed) < 0.1
    assert fg.eye_aspect_ratio(f, open_) > 0.2


def test_both_blinks_close_both_eyes():
    f = _face(eyeBlinkLeft=1.0, eyeBlinkRight=1.0)
    assert fg.eye_aspect_ratio(f, "left") < 0.1 and fg.eye_aspect_ratio(f, "right") < 0.1


def test_jaw_open_opens_mouth():
    assert fg.mouth_opening(_face()) < 0.05
    assert fg.mouth_opening(_face(jawOpen=1.0)) >= 0.25


def test_smile_raises_and_widens_corners():
    n, s = _face(), _face(mouthSmileLeft=1.0, mouthSmileRight=1.0)
    assert s[61, 1] < n[61, 1] - 0.01 and s[291, 1] < n[291, 1] - 0.01
    assert (s[291, 0] - s[61, 0]) > (n[291, 0] - n[61, 0]) + 0.02


def test_brow_inner_up_raises_inner_brows():
    n, f = _face(), _face(browInnerUp=1.0)
    for i in (107, 336, 55, 285):
        assert f[i, 1] < n[i, 1] - 0.01


def test_gaze_moves_irises():
    n = _face()
    left = _face(eyeLookOutLeft=1.0, eyeLookInRight=1.0)  # both eyes turn to the subject's left (+x)
    assert left[473, 0] > n[473, 0] + 0.02 and left[468, 0] > n[468, 0] + 0.02
    down = _face(eyeLookDownLeft=1.0, eyeLookDownRight=1.0)
    assert down[473, 1] > n[473, 1] and down[468, 1] > n[468, 1]


def test_fit_coefficients_recovers_synthetic():
    rig = load_rig()
    truth = np.zeros(NUM_COEFFS, np.float32)
    for k, v in {"jawOpen": 0.6, "mouthSmileLeft": 0.4, "mouthSmileRight": 0.5, "eyeBlinkRight": 0.7,
                 "browInnerUp": 0.3, "noseSneerLeft": 0.5}.items():
        truth[COEFF_INDEX[k]] = v
    est = rig.fit_coefficients(rig.face(truth))
    assert np.abs(est - truth).max() < 0.05
    sub = ["jawOpen", "mouthSmileLeft", "mouthSmileRight"]
    est = rig.fit_coefficients(rig.face(truth), subset=sub)
    assert est[COEFF_INDEX["eyeBlinkRight"]] == 0 and abs(est[COEFF_INDEX["jawOpen"]] - 0.6) < 0.1


def _heldout_measurements(clip, sd):
    cached = CACHE / f"s1_{clip}.npz"
    if cached.exists():  # the fitting script's raw Face Landmarker output for this clip
        z = np.load(cached)
        return z["landmarks"][z["ok"]], z["blendshapes"][z["ok"]]
    from engine.measure import Landmarker, read_video_rgb

    frames, _ = read_video_rgb(sd / "data" / "grid" / "s1" / f"{clip}.mp4")
    with Landmarker(mode="video") as lm:
        ms = [m for i, f in enumerate(frames) if (m := lm.detect(f, timestamp_ms=40 * i)) is not None]
    return np.array([m.landmarks for m in ms]), np.array([m.blendshapes for m in ms])


def test_heldout_grid_r2():
    sd = shared_dir()
    if sd is None:
        pytest.skip("../shared not present")
    rig = load_rig()
    clips = [str(c) for c in rig.meta["heldout_grid_clips"]][:6]
    sse = ss = 0.0
    for clip in clips:
        pts, bs = _heldout_measurements(clip, sd)
        faces = np.array([fg.face_frame(p).to_face(p) for p in pts])
        ref_i = int(np.argmin(bs.sum(1)))  # least active frame of the clip as its neutral
        for f, b in zip(faces, bs):
            dy = rigid_align(f, faces[ref_i]) - faces[ref_i]
            pred = rig.displacements(b - bs[ref_i])
            sse += float(((dy - pred) ** 2).sum())
            ss += float((dy ** 2).sum())
    assert 1.0 - sse / ss > 0.3
