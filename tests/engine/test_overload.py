"""The overload policy (engine/overload.py): which frames a reduced rate shows, and when the level moves."""
from fractions import Fraction

import pytest

from engine.overload import SHARES, Governor, OverloadPolicy, Window, next_shown, shown


@pytest.mark.parametrize("share", SHARES)
def test_a_share_shows_that_share_of_frames_evenly(share):
    ks = [k for k in range(-30, 300) if shown(k, share)]
    assert len(ks) == pytest.approx(330 * float(share), abs=1)
    gaps = set(b - a for a, b in zip(ks, ks[1:]))
    assert max(gaps) == -(-share.denominator // share.numerator)  # never two frames left out in a row
    assert all(next_shown(k, share) == min(j for j in ks if j >= k) for k in range(-20, 250))


def test_full_rate_shows_every_frame():
    assert all(shown(k, Fraction(1)) for k in range(-5, 100))


# The tests spell out the timing they use, whatever the defaults; memory_s 1: a level's measure is old after a
# second (so steps up are tried on time), except in the tests of that memory.
TIMING = dict(down_windows=2, up_after_s=10.0, max_up_after_s=80.0, relapse_s=10.0, memory_s=1.0)


def _fail(sessions=2):
    return Window(1.0, 50, 15, sessions)  # 30 % missed: more than any level's threshold


def _clean(sessions=2):
    return Window(1.0, 50, 0, sessions)


def test_two_failing_windows_step_down_one_level_to_the_floor_and_no_further():
    g = Governor(OverloadPolicy(min_fps=12.5, **TIMING))
    assert g.observe(_fail()) is None  # one window is not enough
    change = g.observe(_fail())
    assert (change.level, change.share, change.fps) == (1, Fraction(4, 5), 20.0)
    assert "15 of 50 frames missed" in change.reason
    levels = [getattr(g.observe(_fail()), "level", None) for _ in range(8)]
    assert [lv for lv in levels if lv is not None] == [2, 3]
    assert g.level == g.policy.floor == 3 and g.fps == 12.5


def test_a_window_between_the_thresholds_neither_steps_down_nor_counts_as_clean():
    g = Governor(OverloadPolicy(**TIMING))
    g.observe(_fail())
    assert g.observe(Window(1.0, 50, 5, 1)) is None  # 10 %: resets the failing run
    assert g.observe(_fail()) is None and g.level == 0


def test_the_defaults_wait_three_failing_windows_and_try_the_level_above_after_five_seconds():
    g = Governor()
    assert [g.observe(_fail()) for _ in range(2)] == [None, None]
    assert g.observe(_fail()).level == 1
    # One session left: what the two showed at 25 fps no longer tells; 25 fps is tried after 5 s.
    assert [g.observe(_clean(sessions=1)) for _ in range(4)] == [None] * 4
    change = g.observe(_clean(sessions=1))
    assert change.level == 0 and "not measured at 25.0 fps lately" in change.reason


def test_a_level_that_showed_fewer_new_frames_is_not_tried_again_until_that_is_old():
    g = Governor(OverloadPolicy(**dict(TIMING, memory_s=40.0)))
    g.observe(_fail()), g.observe(_fail())  # 30 % missed at 25 fps: 17.5 new frames a second
    assert g.level == 1
    assert all(g.observe(_clean()) is None for _ in range(40))  # 20 a second here: better than 17.5
    change = g.observe(_clean())
    assert change is not None and change.level == 0  # over 40 s on, 25 fps is tried again


def test_a_level_that_showed_more_new_frames_is_gone_back_to():
    g = Governor(OverloadPolicy(**dict(TIMING, memory_s=40.0)))
    for _ in range(6):
        assert g.observe(Window(1.0, 50, 9, 2)) is None  # 18 % at 25 fps: under the 20 % that steps down
    g.observe(_fail()), g.observe(_fail())  # a bad patch: 25 fps showed 18.25 new frames a second on average
    assert g.level == 1
    ups = [g.observe(Window(1.0, 40, 6, 2)) for _ in range(10)]  # 15 % at 20 fps: 17 a second
    assert ups[:9] == [None] * 9 and ups[9].level == 0
    assert ups[9].reason == "17.0 new frames a second here, 18.2 lately one level up"


def test_a_level_steps_down_only_when_its_misses_cost_more_than_the_next_level_leaves_out():
    thresholds = []
    for level in range(4):
        g = Governor(OverloadPolicy(**TIMING))
        g.level = level
        thresholds.append(round(g.down_threshold(), 3))
    assert thresholds == [0.2, 0.167, 0.25, 0.15]  # the last: the floor's, for admission
    g = Governor(OverloadPolicy(**TIMING))
    for _ in range(5):
        assert g.observe(Window(1.0, 50, 9, 2)) is None  # 18 % at 25 fps: 20.5 fps shown, more than 20
    g.observe(Window(1.0, 50, 10, 2))
    assert g.observe(Window(1.0, 50, 10, 2)).level == 1


def test_the_floor_follows_min_fps():
    assert OverloadPolicy(min_fps=20).floor == 1
    assert OverloadPolicy(min_fps=16).floor == 2
    assert OverloadPolicy(min_fps=25).floor == 0
    assert OverloadPolicy(fps=30, min_fps=15).floor == 3


def test_at_the_floor_and_still_missing_frames_new_sessions_are_refused():
    g = Governor(OverloadPolicy(min_fps=20, **TIMING))
    g.observe(_fail())
    assert g.level == 0 and not g.refuses_new()  # failing above the floor: it can still step down
    g.observe(_fail())
    assert g.level == 1 and g.refuses_new()  # at the floor (20 fps) and failing
    g.observe(_fail())
    assert g.level == 1 and g.refuses_new()
    g.observe(_clean(sessions=2))
    assert g.refuses_new()  # holding at the floor, but 2 sessions' frames shared by 3: 33 % missed
    g.observe(_clean(sessions=8))
    assert not g.refuses_new()  # 8 sessions' frames shared by 9: 11 % missed, a new one may be tried
    g.observe(Window(1.0, 50, 3, 8))
    assert g.refuses_new()  # 6 % missed already: 17 % with one more


def test_clean_windows_step_up_after_the_wait_and_a_relapse_doubles_it():
    g = Governor(OverloadPolicy(**TIMING))
    g.observe(_fail()), g.observe(_fail())
    assert g.level == 1
    ups = [g.observe(_clean()) for _ in range(10)]
    assert ups[:9] == [None] * 9 and ups[9].level == 0 and "not measured at 25.0 fps lately" in ups[9].reason
    g.observe(_fail()), g.observe(_fail())  # failed again 2 s after stepping up
    assert g.level == 1
    ups = [g.observe(_clean()) for _ in range(20)]
    assert all(u is None for u in ups[:19]) and ups[19].level == 0  # waited 20 s this time
    for _ in range(10):
        assert g.observe(_clean()) is None  # level 0 held for relapse_s: the wait is back to 10 s
    g.observe(_fail()), g.observe(_fail())
    assert [g.observe(_clean()) is not None for _ in range(10)][-1]


def test_with_no_session_the_level_returns_to_full_rate():
    g = Governor(OverloadPolicy(**TIMING))
    for _ in range(4):
        g.observe(_fail())
    assert g.level == 2
    change = g.observe(Window(1.0, 0, 0, 0))
    assert change.level == 0 and change.share == 1 and not g.refuses_new()


def test_windows_without_frames_due_are_not_judged():
    g = Governor(OverloadPolicy(**TIMING))
    g.observe(_fail())
    assert g.observe(Window(1.0, 0, 0, 2)) is None  # the sessions' video is not running (connecting)
    change = g.observe(_fail())
    assert change is not None and change.level == 1  # the failing run went on across it


def test_a_disabled_policy_never_changes_or_refuses():
    g = Governor(OverloadPolicy(enabled=False, **TIMING))
    for _ in range(10):
        assert g.observe(_fail()) is None
    assert g.level == 0 and not g.refuses_new() and g.last.miss_share == pytest.approx(0.3)


@pytest.mark.parametrize("bad", [dict(fps=0), dict(min_fps=-1), dict(down_miss=0), dict(memory_s=0),
                                 dict(down_windows=0), dict(up_after_s=0), dict(max_up_after_s=4)])
def test_bad_policies_are_refused(bad):
    with pytest.raises(ValueError):
        OverloadPolicy(**bad)
