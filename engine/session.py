"""Sans-I/O session pipeline: voice in -> speech frames -> emotion -> render requests.

The session owns the per-presenter state and nothing that waits: the streaming
shell feeds it PCM as packets arrive, asks it for the face state of each video
frame when that frame is due for rendering, and runs the renderer itself in a
worker. Everything here is bounded and testable without an event loop.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Protocol

import numpy as np

from .scheduler import AVScheduler, Placement, SchedulerConfig
from .types import FaceState, SpeechFrame


class SpeechModel(Protocol):
    """Audio-to-expression: returns the frames that became final (state.t = k / fps)."""

    def push(self, pcm: np.ndarray, sample_rate: int) -> list[SpeechFrame]: ...


class EmotionLayer(Protocol):
    def apply(self, speech_state: FaceState, vad: float = 0.0) -> FaceState: ...


def model_latency_s(model: object) -> float:
    """The model's fixed look-ahead in seconds, whatever the attribute is called."""
    for name, scale in (("latency_s", 1.0), ("lookahead_s", 1.0), ("lookahead_ms", 1e-3)):
        value = getattr(model, name, None)
        if isinstance(value, (int, float)):
            return float(value) * scale
    raise TypeError(f"{type(model).__name__} does not declare its look-ahead latency (latency_s)")


def scheduler_config_for(model_latency: float, *, render_budget_s: float = 0.02, jitter_s: float = 0.01,
                         sample_rate: int = 48_000, fps: int = 25, **extra) -> SchedulerConfig:
    """A schedule whose voice delay covers the model's look-ahead plus rendering."""
    return SchedulerConfig(sample_rate=sample_rate, fps=fps, min_latency_s=model_latency + render_budget_s,
                           jitter_s=jitter_s, render_lead_s=render_budget_s, **extra)


class Session:
    """One presenter's pipeline (not thread-safe: the shell calls it from one thread)."""

    def __init__(self, scheduler: AVScheduler, model_factory: Callable[[], SpeechModel], emotion: EmotionLayer,
                 idle: Callable[[FaceState, float], FaceState] | None = None,
                 max_pending_frames: int | None = None) -> None:
        self.scheduler = scheduler
        self.emotion = emotion
        self._model_factory = model_factory
        self._model: SpeechModel | None = None
        self._restart = False  # interrupt / shed input: restart the model's time on the next chunk
        self._origin = 0  # timeline video frame of the model's frame 0
        self._idle = idle  # idle life (blinks, sway, gaze) over every frame, scaled by vad
        cfg = scheduler.config
        self._fps = cfg.fps
        self._rate = cfg.sample_rate
        self._pending: OrderedDict[int, SpeechFrame] = OrderedDict()
        self._max_pending = max_pending_frames
        self.vad = 0.0
        self.speaking_frames = 0
        self.stats = {"speech_frames": 0, "speech_frames_dropped": 0, "idle_frames": 0, "input_chunks": 0}

    @property
    def _bound(self) -> int:
        """Frames wait here from the model until their render time: about the pipeline latency's worth
        (from the scheduler's config now: a measured render budget may raise it after construction);
        more than the bound means nobody renders, and the oldest go."""
        if self._max_pending:
            return self._max_pending
        cfg = self.scheduler.config
        return int((cfg.latency_s + cfg.max_backlog_s) * cfg.fps) + 8

    # -- input -------------------------------------------------------------
    def push_audio(self, pcm: np.ndarray) -> int:
        """Feed mono float32 PCM at the scheduler's rate; returns how many speech frames became final."""
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        return self.feed(self.place(pcm), pcm)

    # The two halves of push_audio, for shells that keep the scheduler on one
    # thread (place: cheap, with the outbound audio) and run the model on another.
    def place(self, pcm: np.ndarray) -> Placement | None:
        """Put the voice on the timeline (the outbound audio); None if there was nothing to place."""
        if not len(pcm):
            return None
        self.stats["input_chunks"] += 1
        return self.scheduler.write(pcm)

    def feed(self, placed: Placement | None, pcm: np.ndarray) -> int:
        """Run the audio model on a placed chunk and keep its frames for their render time."""
        if placed is None or not placed.accepted:
            return 0
        if placed.restart or self._model is None or self._restart:
            self._restart = False
            # Reuse the model when it can restart its time (loading one can take long).
            if self._model is not None and hasattr(self._model, "reset"):
                self._model.reset()
            else:
                self._model = self._model_factory()
            self._origin = placed.position // self.scheduler.config.samples_per_video_frame
        if placed.skip:
            pcm = pcm[placed.skip:]  # the drained start of the chunk is not on the timeline: not for the model
        frames: list[SpeechFrame] = []
        if placed.gap:
            frames += self._model.push(np.zeros(placed.gap, np.float32), self._rate)
        frames += self._model.push(pcm, self._rate)
        for f in frames:
            self._keep(self._origin + int(round(f.t * self._fps)), f)
        return len(frames)

    def _keep(self, k: int, frame: SpeechFrame) -> None:
        self._pending[k] = frame
        self.stats["speech_frames"] += 1
        while len(self._pending) > self._bound:
            self._pending.popitem(last=False)
            self.stats["speech_frames_dropped"] += 1

    def interrupt(self) -> None:
        """Stop the current speech now: buffered voice and its pending frames are dropped."""
        self.scheduler.clear_input()
        self.forget_speech()

    def forget_speech(self) -> None:
        """The model half of interrupt: the next placed chunk restarts the model."""
        self._pending.clear()
        self._restart = True

    # -- output ------------------------------------------------------------
    def state_for(self, k: int) -> FaceState:
        """The final face state of timeline video frame k (speech + emotion, or idle)."""
        t = k / self._fps
        while self._pending and next(iter(self._pending)) < k:
            self._pending.popitem(last=False)  # frames whose time has passed were skipped
        frame = self._pending.pop(k, None)
        if frame is None:
            self.stats["idle_frames"] += 1
            self.vad = 0.0
            speech = FaceState.neutral(t)  # no voice: mouth at rest
        else:
            self.vad = float(frame.vad)
            speech = frame.state if frame.state.t == t else frame.state.replace(t=t)
        if self._idle is not None:
            speech = self._idle(speech, self.vad)
        return self.emotion.apply(speech, self.vad)

    @property
    def pending_frames(self) -> int:
        return len(self._pending)
