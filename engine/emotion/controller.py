"""Sans-I/O emotion controller: scheduled target changes, eased over stream time.

The controller holds a schedule of changes (target, start time, duration). The
clock is the stream time of the frames passed to `apply` (speech_state.t), never
wall time, so the same inputs always give the same frames.

What is blended is the per-emotion amount vector a = k * w (plus the custom
direction of a reference-photo target and its head offset), so happy:1 -> sad:1
passes through mixtures of the two, and any -> neutral fades the amount out.
Easing is smoothstep 3s^2 - 2s^3: zero velocity at both ends, so a change never
starts or stops with a visible jerk, and it costs three multiplies. Changes
resolve in order of start time (ties: call order); a change starting while an
earlier one is still easing starts from wherever that one has got to. On top,
the per-frame change is bounded (`max_rate`, amount units per second of stream
time), which also softens instant (transition_ms=0) switches.

`apply` also takes the speech model's voice activity and smooths it into a speaking
level (fast attack, slower release, so short pauses between words do not reopen an
emotion's mouth pose): mixing.emotion_delta fades the emotion's own mouth opening
out while the presenter speaks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..types import NUM_COEFFS, FaceState
from .directions import EMOTIONS, EmotionSpace, load_directions
from .mixing import MAX_INTENSITY, MixConfig, emotion_delta, refine_along_normal
from .target import EmotionTarget, coerce

DEFAULT_TRANSITION_MS = 250.0
DEFAULT_MAX_RATE = 8.0  # per second: a full 0 -> 1 swing takes >= 125 ms
# Speaking level time constants (s of stream time): the mouth pose gives way within about two
# frames of the voice starting, and comes back only after a pause longer than a word gap.
SPEAK_ATTACK_S = 0.04
SPEAK_RELEASE_S = 0.25
_N = len(EMOTIONS)


def smoothstep(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s * s * (3.0 - 2.0 * s)


@dataclass(frozen=True)
class EmotionReport:
    """The effective emotion of the last frame: normalised mixture and intensity."""

    mixture: dict[str, float]
    intensity: float
    t: float
    custom: bool = False  # a reference-photo expression is part of it


@dataclass
class _Change:
    t0: float
    duration: float
    value: np.ndarray  # packed target: amounts (8) + custom direction (52) + custom head (3)
    seq: int
    start_value: np.ndarray | None = field(default=None)


def _pack(target: EmotionTarget, space: EmotionSpace) -> np.ndarray:
    custom = np.zeros(NUM_COEFFS) if target.direction is None else target.direction * target.intensity
    return np.concatenate([target.amounts(), custom, np.zeros(3)])


class EmotionController:
    def __init__(self, initial=None, space: EmotionSpace | None = None, config: MixConfig = MixConfig(),
                 max_rate: float = DEFAULT_MAX_RATE):
        self.space = space or load_directions()
        self.config = config
        self.max_rate = float(max_rate)
        start = coerce(initial) if initial is not None else EmotionTarget()
        self._base = _pack(start, self.space)
        self._changes: list[_Change] = []
        self._seq = 0
        self._last_t: float | None = None
        self._out = self._base.copy()  # rate-limited value of the last frame
        self._speaking = 0.0
        self._speak_t: float | None = None

    # -- schedule -------------------------------------------------------------
    def set(self, target, at_t: float | None = None, transition_ms: float = DEFAULT_TRANSITION_MS) -> EmotionTarget:
        """Schedule a change to `target` at stream time at_t (default: the latest frame's time).

        A time before the latest frame is applied from the latest frame on (the
        past is already rendered). Returns the target as understood.
        """
        tgt = coerce(target)
        now = self._last_t if self._last_t is not None else 0.0
        t0 = now if at_t is None else max(float(at_t), now)
        dur = max(float(transition_ms), 0.0) / 1000.0
        self._changes.append(_Change(t0, dur, _pack(tgt, self.space), self._seq))
        self._seq += 1
        self._changes.sort(key=lambda c: (c.t0, c.seq))
        for c in self._changes:  # start values depend on the order: recomputed lazily
            c.start_value = None
        return tgt

    def pending(self) -> int:
        return len(self._changes)

    def _traj(self, c: _Change, t: float) -> np.ndarray:
        s = 1.0 if c.duration <= 0 else smoothstep((t - c.t0) / c.duration)
        return c.start_value + (c.value - c.start_value) * s

    def _ensure_starts(self) -> None:
        """Each change starts from where the one before it has got to at its start time."""
        prev: _Change | None = None
        for c in self._changes:
            if c.start_value is None:
                c.start_value = self._base.copy() if prev is None else self._traj(prev, c.t0)
            prev = c

    def _value_at(self, t: float) -> np.ndarray:
        self._ensure_starts()
        active = [c for c in self._changes if c.t0 <= t]
        return self._traj(active[-1], t) if active else self._base

    def _prune(self, t: float) -> None:
        """Fold changes that can no longer matter into the base value."""
        last_done = -1
        for i, c in enumerate(self._changes):
            if c.t0 <= t and c.t0 + c.duration <= t:
                last_done = i
        if last_done >= 0:
            self._base = self._changes[last_done].value.copy()
            self._changes = self._changes[last_done + 1:]
            for c in self._changes:
                c.start_value = None

    # -- per frame ------------------------------------------------------------
    def _advance(self, t: float) -> np.ndarray:
        want = self._value_at(t)
        if self._last_t is None or t < self._last_t:
            self._out = want.copy()  # first frame or a seek back: no history to limit against
        else:
            step = self.max_rate * (t - self._last_t)
            self._out = self._out + np.clip(want - self._out, -step, step)
        self._last_t = t
        self._prune(t)
        return self._out

    def _speaking_at(self, t: float, vad: float) -> float:
        vad = float(np.clip(vad, 0.0, 1.0)) if np.isfinite(vad) else 0.0
        if self._speak_t is None or t < self._speak_t:
            self._speaking = vad  # first frame or a seek back
        else:
            tau = SPEAK_ATTACK_S if vad > self._speaking else SPEAK_RELEASE_S
            self._speaking += (vad - self._speaking) * (1.0 - float(np.exp(-(t - self._speak_t) / tau)))
        self._speak_t = t
        return self._speaking

    def apply(self, speech_state: FaceState, vad: float = 0.0) -> FaceState:
        """The speech state with the emotion effective at speech_state.t; `vad`: the frame's voice activity."""
        speaking = self._speaking_at(float(speech_state.t), vad)
        v = self._advance(float(speech_state.t))
        amounts, custom = v[:_N], v[_N:_N + NUM_COEFFS]
        amounts = np.clip(amounts, 0.0, MAX_INTENSITY)
        direction = amounts @ self.space.coeffs + custom
        head = amounts @ self.space.head
        speech = np.asarray(speech_state.coeffs, np.float64)
        delta = emotion_delta(speech, direction, 1.0, self.config.protect_speech, speaking)
        out = np.clip(speech + delta, 0.0, 1.0)
        if self.config.refine:
            out = refine_along_normal(speech, out, delta, self.config.refine_iters)
        return FaceState(coeffs=out, head=np.asarray(speech_state.head) + self.config.head_scale * head,
                         gaze=speech_state.gaze, t=speech_state.t)

    def current(self) -> EmotionReport:
        """The effective mixture and intensity of the last frame applied."""
        return self._report(self._out, self._last_t or 0.0)

    def target(self) -> EmotionReport:
        """Where the emotion is going: the last change scheduled, once its transition is over (the current
        emotion when nothing is pending). A command's answer reports both: a 250 ms transition has barely
        begun when the answer leaves, and a client showing only `current` would show the old emotion."""
        if not self._changes:
            return self.current()
        last = self._changes[-1]
        return self._report(last.value, last.t0 + last.duration)

    @staticmethod
    def _report(value: np.ndarray, t: float) -> EmotionReport:
        # Neutral's amount carries no expression: the report is over the other
        # emotions, so mixture[e] * intensity is the amount of e actually applied.
        amounts = np.clip(value[:_N], 0.0, None)
        amounts[EMOTIONS.index("neutral")] = 0.0
        k = float(amounts.sum())
        custom = bool(np.any(np.abs(value[_N:_N + NUM_COEFFS]) > 1e-6))
        if k <= 1e-6:
            return EmotionReport({"neutral": 1.0}, 0.0, t, custom)
        mix = {e: float(a / k) for e, a in zip(EMOTIONS, amounts) if a / k > 1e-4}
        return EmotionReport(mix, min(k, MAX_INTENSITY), t, custom)
