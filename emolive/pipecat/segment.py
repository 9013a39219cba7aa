"""One spoken segment (TTSStartedFrame .. TTSStoppedFrame) as an ordered plan of voice and video.

Sans-I/O: the caller feeds the TTS chunks (s16 PCM bytes, their rate and channels, and an opaque item
that stands for the chunk, the frame to pass on) and gets back, in output order, ("audio", item) and
("video", k, speech_frame) steps. Time is counted in input samples only, so the plan is the same
however the chunks are cut and however slow the machine: video frame k shows the voice at k / fps and
comes right after the voice that ends at or before that instant (Pipecat's `sync_with_audio` images are
shown once the audio before them has played). A chunk is held until the audio model has made every
frame that falls inside it final, which is the model's look-ahead (tens of milliseconds).
"""
from __future__ import annotations

from collections import deque
from fractions import Fraction
from math import ceil

import numpy as np

from engine.audio.features import SR as ENGINE_RATE
from engine.audio.intake import to_mono
from engine.audio.resample import StreamResampler


class SpeechSegment:
    def __init__(self, model, fps: int) -> None:
        if hasattr(model, "reset"):
            model.reset()  # a new segment starts the model's time at 0
        self._model = model
        self._fps = fps
        self._held: deque[tuple[Fraction, object]] = deque()  # (end time in seconds, item)
        self._duration = Fraction(0)
        self._rate: int | None = None
        self._resampler: StreamResampler | None = None
        self._next_k = 0

    @property
    def duration_s(self) -> float:
        return float(self._duration)

    @property
    def held(self) -> int:
        return len(self._held)

    def push(self, audio: bytes, sample_rate: int, channels: int, item: object) -> list[tuple]:
        """Take one chunk of s16 PCM; returns the steps it made ready."""
        channels = max(int(channels), 1)
        whole = len(audio) // (2 * channels) * 2 * channels  # a torn last sample is not audio
        mono = to_mono(np.frombuffer(audio[:whole], np.int16), channels)[0].astype(np.float32)
        n = len(mono)
        self._duration += Fraction(n, sample_rate)
        self._held.append((self._duration, item))
        return self._frames(self._model.push(self._resample(mono, sample_rate), ENGINE_RATE))

    def finish(self) -> list[tuple]:
        """The end of the segment: the model's last frames (up to the voice's end), then the rest of it."""
        tail = self._resampler.flush() if self._resampler is not None else np.zeros(0, np.float32)
        frames = self._model.push(tail, ENGINE_RATE) if len(tail) else []
        steps = self._frames(frames + self._model.flush(), last=ceil(self._duration * self._fps))
        steps += [("audio", item) for _, item in self._held]
        self._held.clear()
        return steps

    def _resample(self, mono: np.ndarray, rate: int) -> np.ndarray:
        """To the engine's rate, one filter stream per segment (a TTS that changes its rate mid-segment
        restarts it: the seam costs the model a few milliseconds of context, no more)."""
        if rate != self._rate:
            self._rate, self._resampler = rate, StreamResampler(rate, ENGINE_RATE)
        return self._resampler.push(mono)

    def _frames(self, frames, last: int | None = None) -> list[tuple]:
        steps: list[tuple] = []
        for f in frames:
            k = int(round(f.t * self._fps))
            if k < self._next_k or (last is not None and k >= last):
                continue  # past the voice's end: the model pads its last window
            at = Fraction(k, self._fps)
            while self._held and self._held[0][0] <= at:
                steps.append(("audio", self._held.popleft()[1]))
            steps.append(("video", k, f))
            self._next_k = k + 1
        return steps
