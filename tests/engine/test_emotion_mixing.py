"""Combining speech and emotion: linear editing, clamping, and lip-sync left intact."""
import numpy as np
import pytest

from engine.emotion.directions import EMOTIONS, load_directions
from engine.emotion.mixing import MAX_INTENSITY, MixConfig, apply_emotion, clamp_intensity
from engine.types import COEFF_INDEX, FaceState

SPEECH_OPEN = dict(jawOpen=0.45, mouthLowerDownLeft=0.3, mouthLowerDownRight=0.3, mouthFunnel=0.1)


def speech(**kw):
    return FaceState.neutral(t=1.0).replace(**kw)


def test_linear_edit_at_rest():
    sp = load_directions()
    s = speech()
    for k in (0.25, 0.5, 1.0):
        out = apply_emotion(s, {"sad": 1}, k)
        d = sp.direction("sad")
        i = COEFF_INDEX["browInnerUp"]
        assert out.coeffs[i] == pytest.approx(k * d[i], abs=1e-5)
        assert out["headPitch"] == pytest.approx(k * sp.head[EMOTIONS.index("sad"), 0], abs=1e-4)


def test_intensity_clamped_to_1_5():
    assert clamp_intensity(3) == MAX_INTENSITY and clamp_intensity(-1) == 0 and clamp_intensity(float("nan")) == 0
    a = apply_emotion(speech(), {"happy": 1}, 1.5).coeffs
    b = apply_emotion(speech(), {"happy": 1}, 9.0).coeffs
    assert np.array_equal(a, b) and a.max() <= 1.0 and a.min() >= 0.0


@pytest.mark.parametrize("emotion", EMOTIONS)
@pytest.mark.parametrize("refine", [False, True])
def test_speech_mouth_opening_survives_every_emotion(emotion, refine):
    s = speech(**SPEECH_OPEN)
    out = apply_emotion(s, {emotion: 1}, 1.0, config=MixConfig(refine=refine))
    for n in ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight"):
        assert out[n] >= s[n] - 1e-6, (emotion, n)
    # nothing an emotion adds may pull the lips shut while speech opens the jaw
    assert out["mouthClose"] <= s["mouthClose"] + 1e-6
    for n in ("mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper"):
        assert out[n] <= s[n] + 0.05, (emotion, n)


def test_happy_and_sad_keep_speech_jaw_and_show_the_emotion():
    s = speech(**SPEECH_OPEN)
    h = apply_emotion(s, {"happy": 1}, 1.0, speaking=1.0)
    d = apply_emotion(s, {"sad": 1}, 1.0, speaking=1.0)
    assert h["jawOpen"] == pytest.approx(0.45, abs=1e-6) and d["jawOpen"] == pytest.approx(0.45, abs=1e-6)
    assert h["mouthSmileLeft"] > 0.5 and d["mouthFrownLeft"] > 0.3


def test_an_emotions_mouth_pose_gives_way_to_speech():
    d = load_directions().direction("surprised")
    j = COEFF_INDEX["jawOpen"]
    assert d[j] > 0.3  # surprise drops the jaw
    silent = apply_emotion(speech(), {"surprised": 1}, 1.0)
    bilabial = apply_emotion(speech(), {"surprised": 1}, 1.0, speaking=1.0)  # /p/ mid-sentence: speech's jaw shut
    half = apply_emotion(speech(), {"surprised": 1}, 1.0, speaking=0.5)
    assert silent["jawOpen"] == pytest.approx(d[j], abs=1e-5)
    assert bilabial["jawOpen"] == 0.0 and half["jawOpen"] == pytest.approx(0.5 * d[j], abs=1e-5)
    # the rest of the expression stays while speaking
    assert bilabial["browInnerUp"] == silent["browInnerUp"] > 0.3
    talking = apply_emotion(speech(**SPEECH_OPEN), {"surprised": 1}, 1.0, speaking=1.0)
    assert talking["jawOpen"] == pytest.approx(SPEECH_OPEN["jawOpen"], abs=1e-6)
    for bad in (float("nan"), -3.0, 7.0):
        out = apply_emotion(speech(), {"surprised": 1}, 1.0, speaking=bad)
        assert 0.0 <= out["jawOpen"] <= d[j] + 1e-6


def test_angry_presses_lips_at_rest_but_not_mid_word():
    rest = apply_emotion(speech(), {"angry": 1}, 1.0)
    talking = apply_emotion(speech(**SPEECH_OPEN), {"angry": 1}, 1.0)
    assert rest["mouthPressLeft"] > 0.2
    assert talking["mouthPressLeft"] < 0.01


def test_mouth_closing_speech_coefficient_untouched():
    s = speech(mouthClose=0.4, mouthPressLeft=0.3)  # a bilabial "p"
    out = apply_emotion(s, {"surprised": 1}, 1.0)
    assert out["mouthClose"] == pytest.approx(0.4, abs=1e-6)


def test_refinement_reduces_collapse_when_speech_shares_coefficients():
    # speech already smiles: a plain additive happy saturates mouthSmile at 1
    sp = load_directions()
    s = speech(mouthSmileLeft=0.7, mouthSmileRight=0.7, **SPEECH_OPEN)
    d = sp.direction("happy")
    n = d / np.linalg.norm(d)
    base = np.asarray(s.coeffs, float)
    plain = apply_emotion(s, {"happy": 1}, 1.0, config=MixConfig(refine=False), speaking=1.0)
    refined = apply_emotion(s, {"happy": 1}, 1.0, config=MixConfig(refine=True), speaking=1.0)
    moved_plain = (np.asarray(plain.coeffs) - base) @ n
    moved_refined = (np.asarray(refined.coeffs) - base) @ n
    assert moved_plain < 0.9 * (d @ n)  # collapse happened
    assert moved_refined > moved_plain + 0.05  # refinement recovers part of it
    assert refined["jawOpen"] == pytest.approx(0.45, abs=1e-6)
    assert np.all(np.asarray(refined.coeffs) <= 1.0)


def test_refinement_is_a_no_op_without_collapse():
    s = speech(**SPEECH_OPEN)
    a = apply_emotion(s, {"sad": 1}, 0.5, config=MixConfig(refine=False))
    b = apply_emotion(s, {"sad": 1}, 0.5, config=MixConfig(refine=True))
    assert np.allclose(a.coeffs, b.coeffs, atol=1e-6)


def test_mixture_lies_between_its_parts():
    s = speech()
    h = apply_emotion(s, {"happy": 1}, 1.0)["mouthSmileLeft"]
    m = apply_emotion(s, {"happy": 0.5, "surprised": 0.5}, 1.0)
    assert m["mouthSmileLeft"] == pytest.approx(0.5 * h, abs=1e-5)
    assert m["browOuterUpLeft"] > 0.1
