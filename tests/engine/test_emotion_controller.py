"""The emotion controller: scheduling, easing, bounded steps, order, determinism."""
import numpy as np
import pytest

from engine.emotion.controller import EmotionController, smoothstep
from engine.emotion.directions import EmotionError
from engine.emotion.target import EmotionTarget, parse_spec
from engine.types import FaceState

FPS = 25


def run(ctrl, seconds, jaw=0.3):
    out = []
    for i in range(int(seconds * FPS)):
        out.append(ctrl.apply(FaceState.neutral(t=i / FPS).replace(jawOpen=jaw)))
    return out


def test_smoothstep_ends_and_monotone():
    s = [smoothstep(x) for x in np.linspace(-0.5, 1.5, 101)]
    assert s[0] == 0 and s[-1] == 1 and all(b >= a for a, b in zip(s, s[1:]))


def test_change_applies_at_its_time_and_settles_after_transition():
    c = EmotionController()
    c.set("happy:1", at_t=1.0, transition_ms=250)
    frames = run(c, 2.0)
    smile = np.array([f["mouthSmileLeft"] for f in frames])
    assert np.all(smile[: FPS * 1 + 1] == 0)  # nothing before t = 1.0 (frame 25 is t = 1.0 exactly)
    assert smile[int(1.3 * FPS)] == pytest.approx(smile[-1]) and smile[-1] > 0.5
    assert np.all(np.diff(smile) >= -1e-7)  # monotone ease-in
    assert c.current().mixture == {"happy": 1.0} and c.current().intensity == pytest.approx(1.0)
    assert c.pending() == 0  # finished changes are folded away


def test_per_frame_change_is_bounded_even_for_instant_switch():
    c = EmotionController(max_rate=8.0)
    c.set("surprised:1.5", at_t=0.2, transition_ms=0)
    frames = run(c, 1.0)
    brow = np.array([f["browOuterUpLeft"] for f in frames])
    assert np.abs(np.diff(brow)).max() <= 8.0 / FPS * 1.0 + 1e-6  # |direction| <= 1 per unit amount


def test_changes_in_flight_resolve_in_order():
    c = EmotionController()
    # given out of order: resolved by start time
    c.set("sad", at_t=0.6, transition_ms=400)
    c.set("happy", at_t=0.5, transition_ms=400)
    frames = run(c, 2.0)
    rep = c.current()
    assert rep.mixture == {"sad": 1.0}
    smile = np.array([f["mouthSmileLeft"] for f in frames])
    frown = np.array([f["mouthFrownLeft"] for f in frames])
    assert smile[int(0.6 * FPS)] > 0  # happy had started
    assert smile[-1] == pytest.approx(0) and frown[-1] > 0.5
    # no jump when the second change interrupts the first
    assert np.abs(np.diff(smile)).max() < 0.2


def test_same_time_changes_take_call_order():
    c = EmotionController()
    c.set("happy", at_t=0.0, transition_ms=100)
    c.set("angry", at_t=0.0, transition_ms=100)
    run(c, 1.0)
    assert c.current().mixture == {"angry": 1.0}


def test_deterministic():
    def go():
        c = EmotionController()
        c.set({"happy": 0.7, "surprised": 0.3}, at_t=0.1)
        c.set("sad:0.4", at_t=0.3, transition_ms=600)
        return np.stack([np.concatenate([f.coeffs, f.head]) for f in run(c, 1.5)])
    assert np.array_equal(go(), go())


def test_transition_to_neutral_reports_falling_intensity():
    c = EmotionController(initial="happy:1")
    c.set("neutral", at_t=0.0, transition_ms=500)
    ks = []
    for i in range(20):
        c.apply(FaceState.neutral(t=i / FPS))
        ks.append(c.current().intensity)
    assert ks[0] == pytest.approx(1.0) and ks[-1] == pytest.approx(0.0)
    assert all(b <= a + 1e-9 for a, b in zip(ks, ks[1:]))


def test_lip_sync_survives_controller():
    c = EmotionController()
    c.set("sad", at_t=0.0, transition_ms=0)
    frames = run(c, 1.0, jaw=0.5)
    assert all(f["jawOpen"] == pytest.approx(0.5, abs=1e-6) for f in frames)


def test_mouth_pose_follows_the_smoothed_voice_activity():
    c = EmotionController("surprised:1")
    vad = [1.0 if 10 <= i < 40 and i not in (25, 26) else 0.0 for i in range(90)]  # a 80 ms word gap at 25
    jaw = [c.apply(FaceState.neutral(t=i / FPS), vad=v)["jawOpen"] for i, v in enumerate(vad)]
    pose = jaw[5]
    assert pose > 0.3
    assert jaw[13] < 0.1 * pose  # gone within three frames of the voice starting
    assert max(jaw[13:40]) < 0.35 * pose  # a short gap between words does not bring the gasp back
    assert jaw[85] > 0.9 * pose  # back after a real pause
    assert all(b <= a + 1e-9 for a, b in zip(jaw[10:25], jaw[11:25]))  # no flicker while speaking
    again = EmotionController("surprised:1")
    assert [again.apply(FaceState.neutral(t=i / FPS), vad=v)["jawOpen"] for i, v in enumerate(vad)] == jaw


def test_past_change_applies_from_now():
    c = EmotionController()
    run(c, 1.0)
    c.set("happy", at_t=0.1, transition_ms=0)
    f = c.apply(FaceState.neutral(t=1.0 + 1 / FPS))
    assert f["mouthSmileLeft"] > 0


def test_specs():
    t = parse_spec("happy:0.8")
    assert t.mixture == {"happy": 1.0} and t.intensity == pytest.approx(0.8)
    t = parse_spec("happy:0.7+surprised:0.3@0.9")
    assert t.mixture == pytest.approx({"happy": 0.7, "surprised": 0.3}) and t.intensity == pytest.approx(0.9)
    assert parse_spec("sad:5").intensity == 1.5
    assert EmotionTarget(mixture={"fear": 2}, intensity=0.5).amounts().sum() == pytest.approx(0.5)
    for bad in ("", "happy:x", "grumpy", "happy@z"):
        with pytest.raises(EmotionError):
            parse_spec(bad)


def test_target_is_where_a_transition_goes_while_current_is_where_it_is():
    c = EmotionController()
    run(c, 0.2)
    c.set("happy:0.8+surprised:0.2@0.9", transition_ms=1000)
    assert c.current().mixture == {"neutral": 1.0}  # nothing rendered since the command
    to = c.target()
    assert to.mixture == pytest.approx({"happy": 0.8, "surprised": 0.2}) and to.intensity == pytest.approx(0.9)
    frames = [c.apply(FaceState.neutral(t=0.2 + i / FPS)) for i in range(1, 6)]
    assert frames and 0 < c.current().intensity < 0.9  # on its way
    assert c.target().mixture == pytest.approx(to.mixture)
    run_to = [c.apply(FaceState.neutral(t=1.5 + i / FPS)) for i in range(3)]
    assert run_to and c.pending() == 0
    assert c.target() == c.current() and c.current().intensity == pytest.approx(0.9)
