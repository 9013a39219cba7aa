"""The avatar's output timeline: which video frame comes next, and which slice of the voice goes with it.

Sans-I/O and single-threaded: the generator runs it on its worker thread, in order with the audio model
and the renderer. Time is counted in output samples, never read from a clock: video frame k shows timeline
sample k * rate / fps, and within a spoken segment frame k carries the voice from its own instant to the
next frame's, so one second of voice always comes with fps frames however the input was cut and however
slow the machine. Between segments every frame is idle (no voice). A segment starts at the next frame
boundary; its frame j waits until the audio model has made speech frame j final (the model's look-ahead,
tens of milliseconds of voice) or the segment has ended.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil

import numpy as np

from engine.types import SpeechFrame


@dataclass
class Step:
    k: int  # timeline video frame
    speech: SpeechFrame | None  # the audio model's frame for it (None: mouth at rest)
    voice: np.ndarray | None  # float32 voice from frame k's instant to frame k + 1's (shorter at the end)
    segment_end: bool = False  # the last frame of a segment: the voice of the segment is all out


@dataclass
class _Segment:
    origin: int  # timeline frame of the segment's frame 0
    held: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # voice not yet handed out
    held_from: int = 0  # segment sample of held[0]
    fed: int = 0  # segment samples received
    frames: dict[int, SpeechFrame] = field(default_factory=dict)
    ended: bool = False


class Timeline:
    def __init__(self, model, rate: int, fps: int) -> None:
        self.model = model
        self.rate, self.fps = int(rate), int(fps)
        self.k = 0  # next video frame
        self._seg: _Segment | None = None

    def position(self, k: int) -> int:
        """Timeline sample shown by video frame k."""
        return k * self.rate // self.fps

    @property
    def speaking(self) -> bool:
        return self._seg is not None

    @property
    def takes_voice(self) -> bool:
        """False while an ended segment's last frames are still to come: the next voice is a new segment
        and waits for them (segments never overlap)."""
        return self._seg is None or not self._seg.ended

    @property
    def held_samples(self) -> int:
        """Voice received and not yet handed out (what the generator bounds its read-ahead by)."""
        return len(self._seg.held) if self._seg is not None else 0

    def feed(self, voice: np.ndarray) -> None:
        """More of the current segment's voice (a segment starts with its first voice)."""
        if not len(voice):
            return
        if not self.takes_voice:
            raise RuntimeError("voice for a new segment before the previous segment's frames are out")
        seg = self._seg
        if seg is None:
            if hasattr(self.model, "reset"):
                self.model.reset()  # the model's time restarts at 0 with each segment
            seg = self._seg = _Segment(origin=self.k)
        seg.held = np.concatenate([seg.held, voice])
        seg.fed += len(voice)
        self._keep(self.model.push(voice, self.rate))

    def end_segment(self) -> bool:
        """The voice of the current segment is complete; False when no segment was open."""
        seg = self._seg
        if seg is None or seg.ended:
            return False
        seg.ended = True
        self._keep(self.model.flush() if hasattr(self.model, "flush") else [])
        return True

    def clear(self, next_k: int) -> None:
        """Drop the segment now; the next frame is next_k (frames made but not shown are made again)."""
        self._seg = None
        self.k = next_k

    def next_step(self) -> Step | None:
        """The next frame with its voice, or None when the segment needs more voice first."""
        seg = self._seg
        if seg is None:
            self.k += 1
            return Step(self.k - 1, None, None)
        j = self.k - seg.origin
        start = self.position(self.k) - self.position(seg.origin)
        stop = self.position(self.k + 1) - self.position(seg.origin)
        if not seg.ended and (j not in seg.frames or seg.fed < stop):
            return None
        stop = min(stop, seg.fed)
        voice = seg.held[start - seg.held_from: stop - seg.held_from]
        seg.held, seg.held_from = seg.held[stop - seg.held_from:], stop
        last = seg.ended and stop >= seg.fed
        if last:
            self._seg = None
        self.k += 1
        return Step(self.k - 1, seg.frames.pop(j, None), voice, last)

    def _keep(self, frames: list[SpeechFrame]) -> None:
        seg = self._seg
        first = self.k - seg.origin  # frames already shown are not kept
        n = ceil(seg.fed * self.fps / self.rate) if seg.ended else None  # the model pads its last window
        for f in frames:
            j = int(round(f.t * self.fps))
            if j >= first and (n is None or j < n):
                seg.frames[j] = f
