"""The lower face's learned rest shape (engine/avatar/rest_geometry.py): the model's contract, and smiling
photos of people it was not fitted on rendered neutral, measured with MediaPipe's Face Landmarker."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from engine.avatar.rest_geometry import ASSET, RestGeometry, load_rest_geometry, lower_weight, save
from engine.emotion.reference import EXPRESSION
from engine.face_geometry import NUM_LANDMARKS
from engine.types import COEFF_INDEX, FaceState

# London people held out of the fit (numbers that are multiples of 5) whose grin the rig's undo alone
# left re-detected as a smile (0.45-0.57) at the neutral state.
HELD_OUT = ("105", "130")
SMILE_TOL = 0.15  # as the neural-mouth proof: within this of the person's real neutral photo


def test_committed_model_loads_and_leaves_a_population_neutral_face_alone():
    m = load_rest_geometry()
    assert m is not None and m.features == EXPRESSION
    assert m.weights.shape == (len(EXPRESSION), NUM_LANDMARKS * 3)
    assert np.abs(m.displacement(np.zeros(len(EXPRESSION)))).max() == 0.0  # no bias term
    far = m.displacement(m.hi * 10.0)
    assert np.allclose(far, m.displacement(m.hi))  # clipped to the training range, not extrapolated


def test_blend_is_the_rig_above_the_eyes_and_the_model_below():
    w = lower_weight(np.array([-0.5, 0.0, 0.25, 0.4, 0.55, 1.2]))
    assert w[0] == w[1] == w[2] == 0.0 and w[4] == w[5] == 1.0 and 0.0 < w[3] < 1.0


def test_a_malformed_model_is_refused_with_a_warning(tmp_path, caplog):
    bad = RestGeometry(features=EXPRESSION[:3], weights=np.zeros((3, 10)), lo=np.zeros(3), hi=np.ones(3))
    path = tmp_path / "rest.npz"
    save(path, bad, meta="wrong shape")
    ranges = tmp_path / "ranges.npz"
    good = load_rest_geometry()
    save(ranges, RestGeometry(features=good.features, weights=good.weights, lo=good.lo[:-1], hi=good.hi),
         meta="ranges one short")
    with caplog.at_level(logging.WARNING):
        assert load_rest_geometry(path) is None
        assert load_rest_geometry(ranges) is None
        assert load_rest_geometry(tmp_path / "missing.npz") is None
    assert "unusable" in caplog.text
    assert ASSET.exists()


def _smile(measure, rgb) -> float:
    m = measure.detect(rgb)
    assert m is not None, "no face re-detected"
    return float(0.5 * (m.blendshapes[COEFF_INDEX["mouthSmileLeft"]] + m.blendshapes[COEFF_INDEX["mouthSmileRight"]]))


@pytest.mark.parametrize("person", HELD_OUT)
def test_held_out_smiling_photo_rendered_neutral_reads_as_neutral(person, shared, monkeypatch):
    import cv2

    import engine.avatar.rest_geometry as rg
    from engine.avatar import create_avatar
    from engine.measure import Landmarker
    from engine.renderers import create

    london = shared / "data" / "expressions" / "london"
    av = create_avatar(london / "smiling" / f"{person}_08.jpg", size=512)
    real = cv2.cvtColor(cv2.imread(str(london / "neutral" / f"{person}_03.jpg")), cv2.COLOR_BGR2RGB)
    with Landmarker("image") as lm:
        real_smile = _smile(lm, real)
        learned = _smile(lm, create("meshwarp", av).render(FaceState.neutral()))
        monkeypatch.setattr(rg, "load_rest_geometry", lambda *a: None)  # the rig's undo alone
        rig_only = _smile(lm, create("meshwarp", av).render(FaceState.neutral()))
    assert learned <= real_smile + SMILE_TOL, (learned, real_smile)
    assert rig_only > real_smile + SMILE_TOL, (rig_only, real_smile)  # what the model changes
