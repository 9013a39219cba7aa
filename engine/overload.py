"""Graceful overload: when a process cannot keep up, its sessions show fewer video frames, all alike.

Sans-I/O; `streaming/load_governor.py` feeds it one window of counts at a time.

* **Levels.** A session shows every frame (25 fps at 25), 4 in 5 (20), 2 in 3 (16.7) or 1 in 2
  (12.5). The floor is the lowest step at or above `min_fps`. A frame left out is neither rendered,
  converted, encoded nor sent: the next frame shown carries its own timestamp (from the audio clock),
  so the receiver shows it at its time. The voice is untouched: every audio frame is still sent.
* **Down.** A window in which the process's sessions missed at least a level's threshold of the frames
  they meant to show (frames due at their rate that did not leave with a new render: sent as a repeat of
  an older frame or a blank, or not sent at all by a sender behind the clock), `down_windows` windows in
  a row, steps every session of the process one level down. The threshold is the share of frames the
  next level leaves out (25 -> 20 fps: 20 %; 20 -> 16.7: 16.7 %; 16.7 -> 12.5: 25 %), at least
  `down_miss` (15 %): a session missing fewer shows more new frames where it is than it would one level
  down missing none. Every session of the process gets the same level: they share its cores and its
  event loop, so one session is not left starving while another runs at full rate.
* **Up.** After `up_after_s` at a level, one level up if the level above showed more new frames a second
  when it was last measured (within `memory_s`, and with the same number of sessions), or was not
  measured lately: then it is tried. A level above that fails again within `relapse_s` doubles the wait
  before the next try (up to `max_up_after_s`); one that held for `relapse_s` resets it.
* **Admission.** At the floor, the process takes no new session that would leave its sessions missing
  `down_miss` or more, reckoning that the new frames it shows a second stay what they are and are shared
  by one session more (n sessions missing m: 1 - n (1 - m) / (n + 1)). Such a session would not hold, and
  it would take frames from the sessions already there.
* With no session the level goes back to full rate at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

SHARES = (Fraction(1), Fraction(4, 5), Fraction(2, 3), Fraction(1, 2))  # frames shown, per level
UP_MARGIN = 0.02  # a step up must promise this much more (relatively) than the level shows now


def shown(k: int, share: Fraction) -> bool:
    """Whether timeline frame k is shown at this share: evenly spread, the same frames whoever asks."""
    n, d = share.numerator, share.denominator
    return (k * n) // d != ((k - 1) * n) // d


def shown_between(a: int, b: int, share: Fraction) -> int:
    """How many of the frames a+1 .. b are shown at this share."""
    n, d = share.numerator, share.denominator
    return max((b * n) // d - (a * n) // d, 0)


def next_shown(k: int, share: Fraction) -> int:
    """The first frame at or after k that is shown at this share."""
    while not shown(k, share):
        k += 1
    return k


@dataclass(frozen=True)
class OverloadPolicy:
    enabled: bool = True  # False: always full rate, never refuses (the counts are still taken)
    fps: int = 25
    min_fps: float = 12.5  # the floor: the lowest step at or above it
    down_miss: float = 0.15  # the least share of frames missed that fails a window (the floor's, admission's)
    down_windows: int = 3  # failing windows in a row before a step down (a session's start is a blip, not a load)
    up_after_s: float = 5.0  # time at a level before a step up is considered
    max_up_after_s: float = 40.0
    relapse_s: float = 10.0
    memory_s: float = 40.0  # how long what a level showed is trusted when deciding to go back to it

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.min_fps <= 0:
            raise ValueError("fps and min_fps must be positive")
        if not 0 < self.down_miss <= 1 or self.memory_s <= 0:
            raise ValueError("need 0 < down_miss <= 1 and memory_s > 0")
        if self.down_windows < 1 or self.up_after_s <= 0 or self.max_up_after_s < self.up_after_s:
            raise ValueError("down_windows >= 1, up_after_s > 0 and max_up_after_s >= up_after_s")

    @property
    def floor(self) -> int:
        """The lowest level whose frame rate is at least min_fps (level 0 if none is)."""
        ok = [i for i, s in enumerate(SHARES) if self.fps * s >= self.min_fps - 1e-9]
        return max(ok) if ok else 0


@dataclass(frozen=True)
class Window:
    """One window of a process's sessions, summed over them."""

    seconds: float
    planned: int  # video frames due at the sessions' rate in the window
    missed: int  # of them, not sent with a new render (a repeat, a blank, or not sent at all)
    sessions: int

    @property
    def miss_share(self) -> float:
        return self.missed / self.planned if self.planned > 0 else 0.0


@dataclass(frozen=True)
class Change:
    level: int
    share: Fraction
    fps: float
    reason: str


class Governor:
    def __init__(self, policy: OverloadPolicy | None = None) -> None:
        self.policy = policy or OverloadPolicy()
        self.level = 0
        self.last: Window | None = None
        self._failing = 0  # failing windows in a row
        self._at_level_s = 0.0  # time at this level (windows with frames due)
        self._wait_s = self.policy.up_after_s
        self._since_up_s: float | None = None  # time since the last step up, while it may still relapse
        self._sessions = 0
        self._misses: dict[int, list[float]] = {}  # level -> [recent share of frames missed there, its age (s)]

    @property
    def share(self) -> Fraction:
        return SHARES[self.level]

    @property
    def fps(self) -> float:
        return self._fps(self.level)

    def down_threshold(self) -> float:
        """The share of frames missed that makes a window a failing one at this level: down_miss, or more where
        the next level shows fewer frames than a session missing less would (25 -> 20 fps: 20 %; 20 -> 16.7:
        16.7 %; 16.7 -> 12.5: 25 %)."""
        if self.level + 1 >= len(SHARES):
            return self.policy.down_miss
        return max(self.policy.down_miss, float(1 - SHARES[self.level + 1] / SHARES[self.level]))

    def refuses_new(self) -> bool:
        """A new session would not hold: the sessions here are at the floor, where the process came down because
        it could not keep up, and one more would miss down_miss or more. At the floor the process is taken as
        saturated: the new frames it shows a second stay what they are, shared by one session more."""
        p, w = self.policy, self.last
        if not p.enabled or self.level != p.floor or w is None or w.sessions == 0:
            return False
        n = w.sessions
        return 1.0 - n * (1.0 - w.miss_share) / (n + 1) >= p.down_miss

    def shown_per_s(self, level: int) -> float | None:
        """New frames a second a session showed lately at that level (None: not measured within memory_s)."""
        seen = self._misses.get(level)
        if seen is None or seen[1] > self.policy.memory_s:
            return None
        return self._fps(level) * (1.0 - seen[0])

    def observe(self, w: Window) -> Change | None:
        """Take one window; the change of level it makes, if any."""
        p = self.policy
        self.last = w
        if self._since_up_s is not None:
            self._since_up_s += w.seconds
            if self._since_up_s >= p.relapse_s:  # the level held: the next try waits the base time
                self._since_up_s = None
                self._wait_s = p.up_after_s
        if not p.enabled:
            return None
        if w.sessions != self._sessions:  # another load: what was measured at other levels no longer holds
            self._sessions = w.sessions
            self._misses.clear()
        if w.sessions == 0:
            self._failing, self._at_level_s, self._wait_s, self._since_up_s = 0, 0.0, p.up_after_s, None
            return self._set(0, "no session") if self.level else None
        if w.planned == 0:  # sessions whose video does not run yet (connecting): nothing to judge
            return None
        share = w.miss_share
        self._remember(share, w.seconds)
        self._at_level_s += w.seconds
        if share >= self.down_threshold():
            self._failing += 1
            if self._failing >= p.down_windows and self.level < p.floor:
                if self._since_up_s is not None:  # the level above failed again: wait longer next time
                    self._wait_s = min(2 * self._wait_s, p.max_up_after_s)
                    self._since_up_s = None
                return self._set(self.level + 1, f"{w.missed} of {w.planned} frames missed in the last "
                                 f"{w.seconds:.1f} s")
            return None
        self._failing = 0
        if self.level == 0 or self._at_level_s < self._wait_s - 1e-9:
            return None
        here, there = self.shown_per_s(self.level), self.shown_per_s(self.level - 1)
        if there is not None and there <= here * (1.0 + UP_MARGIN):
            return None  # the level above showed fewer new frames lately than this one does
        self._since_up_s = 0.0
        why = (f"{here:.1f} new frames a second here; not measured at {self._fps(self.level - 1):.1f} fps lately"
               if there is None else f"{here:.1f} new frames a second here, {there:.1f} lately one level up")
        return self._set(self.level - 1, why)

    def _remember(self, share: float, seconds: float) -> None:
        for seen in self._misses.values():
            seen[1] += seconds
        seen = self._misses.get(self.level)
        if seen is None or seen[1] > self.policy.memory_s:
            self._misses[self.level] = [share, 0.0]
        else:  # recent windows count most; a start at this level is soon outweighed
            self._misses[self.level] = [0.5 * seen[0] + 0.5 * share, 0.0]

    def _fps(self, level: int) -> float:
        return float(self.policy.fps * SHARES[level])

    def _set(self, level: int, reason: str) -> Change:
        self.level = level
        self._failing, self._at_level_s = 0, 0.0
        return Change(level, self.share, self.fps, reason)
