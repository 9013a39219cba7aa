"""The agent's voice as the avatar takes it: mono float32 samples at the avatar's output rate.

The agent's audio output is created at the avatar's rate, so frames normally arrive ready; a TTS at another
rate, a stereo voice or an empty frame still must not reach the audio model or the room as they came.
Other rates go through one streaming resampler per segment (its output does not depend on how the voice is
cut into frames); channels are averaged; unusable frames raise AudioInputError with the reason.
"""
from __future__ import annotations

import numpy as np
from livekit import rtc

from engine.audio.errors import AudioInputError
from engine.audio.intake import to_mono
from engine.audio.resample import StreamResampler

EMPTY = np.zeros(0, np.float32)


class VoiceIntake:
    def __init__(self, rate: int) -> None:
        self.rate = int(rate)
        self._resampler: StreamResampler | None = None

    def take(self, frame: rtc.AudioFrame) -> np.ndarray:
        """One frame of the agent's voice; AudioInputError when it cannot be used."""
        channels = int(frame.num_channels)
        n = int(frame.samples_per_channel)
        if n == 0:
            return EMPTY
        pcm = np.frombuffer(frame.data, np.int16)
        if channels < 1 or len(pcm) != n * channels:
            raise AudioInputError(f"audio frame of {len(pcm)} samples does not hold {n} x {channels} channels")
        mono = to_mono(pcm, channels)[0]
        if frame.sample_rate != self.rate:
            if self._resampler is None or self._resampler.rate_in != frame.sample_rate:
                # a rate change mid-segment restarts the filter: a few ms of context lost, no more
                self._resampler = StreamResampler(frame.sample_rate, self.rate)
            mono = self._resampler.push(mono)
        return mono.astype(np.float32)

    def finish(self) -> np.ndarray:
        """The end of a segment: what the resampler still holds (its last few milliseconds)."""
        tail = self._resampler.flush().astype(np.float32) if self._resampler is not None else EMPTY
        self._resampler = None
        return tail

    def reset(self) -> None:
        self._resampler = None
