"""The process's load governor (streaming/load_governor.py): what it counts per window, what it tells sessions."""
import types
from fractions import Fraction

from streaming.config import ServerConfig
from streaming.load_governor import LoadGovernor


class FakeRunner:
    def __init__(self):
        self.counters = {"frames_sent": 0, "frames_missed": 0, "frames_unsent": 0}
        self.shares = []

    def set_frame_share(self, share, reason=None):
        self.shares.append((share, reason))

    def window(self, sent, missed=0, unsent=0):
        c = self.counters
        c["frames_sent"] += sent
        c["frames_missed"] += missed
        c["frames_unsent"] += unsent


def _governor(**settings):
    t = types.SimpleNamespace(now=0.0, cpu=0.0)
    sessions = {}
    g = LoadGovernor(ServerConfig(**settings), sessions, clock=lambda: t.now, cpu=lambda: t.cpu)

    def tick(cpu_s=0.5):
        t.now += 1.0
        t.cpu += cpu_s
        g.tick()
    return g, sessions, tick


def test_a_session_counts_from_its_second_window_and_unsent_frames_count_as_missed():
    g, sessions, tick = _governor()
    a = sessions["a"] = FakeRunner()
    a.window(25, missed=25)  # its start: blank frames before the first render
    tick()
    assert g.governor.last.planned == 0
    a.window(20, missed=2, unsent=5)  # a sender behind the clock: 5 frames due never sent
    tick(cpu_s=0.8)
    last = g.governor.last
    assert (last.planned, last.missed, last.sessions) == (25, 7, 1)
    assert g.report() == {"level": 0, "fps": 25.0, "cpu": 0.8, "missed": 0.28, "refusing": False}


def test_three_failing_windows_step_every_session_down_and_tell_them_why():
    g, sessions, tick = _governor()
    a, b = sessions["a"], sessions["b"] = FakeRunner(), FakeRunner()
    tick()
    for _ in range(3):
        a.window(25, missed=12)
        b.window(25)  # fine on its own: the process's sessions share one level
        tick()
    assert g.share == Fraction(4, 5) and g.report()["fps"] == 20.0
    for r in (a, b):
        assert r.shares == [(Fraction(4, 5), "12 of 50 frames missed in the last 1.0 s")]


def test_with_the_policy_off_nothing_changes_but_the_load_is_still_measured():
    g, sessions, tick = _governor(overload_policy="none")
    a = sessions["a"] = FakeRunner()
    tick()
    for _ in range(5):
        a.window(25, missed=20)
        tick(cpu_s=1.2)
    assert g.share == 1 and a.shares == [] and not g.refuses_new()
    assert g.report()["cpu"] == 1.2 and g.report()["missed"] == 0.8
