"""The committed emotion space: eight directions, FACS-consistent, loadable."""
import numpy as np
import pytest

from engine.emotion import facs
from engine.emotion.directions import EMOTIONS, EmotionError, canonical, load_directions, normalise_mixture
from engine.types import COEFF_INDEX


def test_eight_mead_emotions_and_neutral_is_zero():
    sp = load_directions()
    assert EMOTIONS == ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised")
    assert sp.coeffs.shape == (8, 52)
    assert np.all(sp.direction("neutral") == 0)
    for e in EMOTIONS[1:]:
        assert np.abs(sp.direction(e)).max() > 0.3, e


@pytest.mark.parametrize("emotion", EMOTIONS[1:])
def test_directions_use_their_facs_action_units(emotion):
    d = load_directions().direction(emotion)
    proto = facs.prototype(emotion)
    support = proto > 0
    # every prototype AU is present, and the direction points the prototype's way
    assert np.all(d[support] >= 0.4 * proto[support]), emotion
    assert d @ proto / (np.linalg.norm(d) * np.linalg.norm(proto)) > 0.6


def test_defining_action_units():
    sp = load_directions()
    i = COEFF_INDEX
    assert sp.direction("happy")[i["mouthSmileLeft"]] > 0.5 and sp.direction("happy")[i["cheekSquintLeft"]] > 0.2
    assert sp.direction("sad")[i["mouthFrownLeft"]] > 0.3 and sp.direction("sad")[i["browInnerUp"]] > 0.3
    assert sp.direction("sad")[i["mouthSmileLeft"]] <= 0
    assert sp.direction("angry")[i["browDownLeft"]] > 0.5
    assert sp.direction("disgusted")[i["noseSneerLeft"]] > 0.5
    assert sp.direction("surprised")[i["browOuterUpLeft"]] > 0.3 and sp.direction("surprised")[i["jawOpen"]] > 0.3
    c = sp.direction("contempt")  # unilateral
    assert c[i["mouthSmileLeft"]] > 0.3 and c[i["mouthSmileRight"]] == 0
    assert sp.head[EMOTIONS.index("sad"), 0] > 0  # sad pitches down


def test_mixture_is_weighted_sum_with_normalised_weights():
    sp = load_directions()
    d, h = sp.mix({"happy": 7, "surprised": 3})
    assert np.allclose(d, 0.7 * sp.direction("happy") + 0.3 * sp.direction("surprised"))
    assert normalise_mixture({"Surprise": 1, "joy": 1}) == {"surprised": 0.5, "happy": 0.5}
    assert normalise_mixture({}) == {"neutral": 1.0}


def test_bad_names_and_weights_raise_emotion_error():
    with pytest.raises(EmotionError):
        canonical("hangry")
    with pytest.raises(EmotionError):
        normalise_mixture({"happy": -1})
    with pytest.raises(EmotionError):
        normalise_mixture({"happy": float("nan")})


def test_reader_directions_survive_the_json_and_default_to_the_render_ones():
    from engine.emotion.directions import EmotionSpace

    sp = load_directions()
    back = EmotionSpace.from_json(sp.to_json())
    assert np.allclose(back.coeffs, sp.coeffs, atol=1e-4) and np.allclose(back.read, sp.read, atol=1e-4)
    # Only the emotions whose render levels moved on carry their own reader row.
    differs = [e for i, e in enumerate(EMOTIONS) if not np.allclose(sp.read[i], sp.coeffs[i])]
    assert set(differs) == {e for e, v in sp.to_json()["emotions"].items() if "read" in v}
    plain = sp.to_json()
    for v in plain["emotions"].values():
        v.pop("read", None)
    assert EmotionSpace.from_json(plain).read_coeffs is None
