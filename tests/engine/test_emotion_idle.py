"""Idle life: blink statistics, determinism, never frozen, mouth untouched."""
import numpy as np
import pytest

from engine.emotion.idle import IdleLife
from engine.types import FaceState

FPS = 25


def frames(life, seconds, start=0.0, vad=0.0, jaw=0.0):
    return [life.apply(FaceState.neutral(t=start + i / FPS).replace(jawOpen=jaw), vad=vad)
            for i in range(int(seconds * FPS))]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_blink_rate_and_duration_over_ten_minutes(seed):
    life = IdleLife(seed=seed)
    ev = life.blink_events(600.0)
    rate = len(ev) / 10.0
    assert 10 <= rate <= 20, rate
    durs = np.array([d for _, d in ev])
    assert durs.min() >= 0.1 and durs.max() <= 0.2
    starts = np.array([t for t, _ in ev])
    assert np.diff(starts).min() >= 1.0  # no double blinks


def test_blink_signal_matches_events():
    life = IdleLife(seed=7)
    ev = life.blink_events(60.0)
    ts = np.arange(0, 60.0, 0.002)
    closed = np.array([life.blink(t) for t in ts]) > 0.5
    # one closed run per blink, shorter than the blink itself
    edges = np.flatnonzero(np.diff(closed.astype(int)) == 1)
    assert abs(len(edges) - len(ev)) <= 1
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, closed.astype(int), 0])))[::2] * 0.002
    assert runs.max() < 0.2 and runs.min() > 0.03


def test_deterministic_for_a_seed_and_in_any_order():
    a = frames(IdleLife(seed=3), 20)
    b = frames(IdleLife(seed=3), 20)
    assert all(np.array_equal(x.coeffs, y.coeffs) and np.array_equal(x.head, y.head)
               and np.array_equal(x.gaze, y.gaze) for x, y in zip(a, b))
    life = IdleLife(seed=3)
    late = life.apply(FaceState.neutral(t=15.0))
    early = life.apply(FaceState.neutral(t=2.0))  # seek back
    assert np.array_equal(late.head, a[15 * FPS].head) and np.array_equal(early.gaze, a[2 * FPS].gaze)
    c = frames(IdleLife(seed=4), 20)
    assert not all(np.array_equal(x.head, y.head) for x, y in zip(a, c))


@pytest.mark.parametrize("vad", [0.0, 1.0])
def test_never_frozen_and_mouth_untouched(vad):
    fs = frames(IdleLife(seed=11), 120, vad=vad, jaw=0.3)
    heads = np.stack([f.head for f in fs])
    for start in range(0, len(fs) - 2 * FPS, FPS):
        win = heads[start:start + 2 * FPS]
        assert np.ptp(win, axis=0).max() > 0.05, start  # visibly moving in every 2 s window
    assert np.abs(heads).max() < 4.0  # slight, not a wobble
    assert all(f["jawOpen"] == pytest.approx(0.3) for f in fs)


def test_gaze_shifts_happen_and_stay_small():
    fs = frames(IdleLife(seed=5), 60)
    g = np.stack([f.gaze for f in fs])
    jumps = np.abs(np.diff(g, axis=0)).max(1)
    assert (jumps > 0.5).sum() >= 8  # a dozen or so saccades a minute
    assert np.abs(g).max() <= 7.0 + 1e-6
