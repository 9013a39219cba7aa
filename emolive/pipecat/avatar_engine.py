"""The emolive engine pieces one Pipecat avatar runs on, built the way a streaming session builds them.

The audio-to-expression model, the emotion control (controller, idle life, text prompts) and the
renderer come from the same factories as the server's sessions (streaming/parts.py), so a Pipecat
avatar looks and moves as a WebRTC one does. Building loads model files and the avatar (seconds):
callers run it off the event loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.types import FaceState, SpeechFrame
from streaming.parts import EmotionControl, default_emotion_factory, real_parts


@dataclass
class AvatarEngine:
    model: object  # AudioToExpression, reused across segments (reset per segment)
    emotion: EmotionControl
    renderer: object
    fps: int

    @classmethod
    def build(cls, avatar: str | None, size: int, fps: int, emotion: str | None, renderer: str,
              neural_mouth: bool) -> "AvatarEngine":
        parts = real_parts(renderer, fps=fps, neural_mouth=neural_mouth, size=size)
        return cls(parts.model_factory(), default_emotion_factory(emotion), parts.renderer_factory(avatar), fps)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the rendered frames."""
        w, h = self.renderer.size if isinstance(self.renderer.size, tuple) else (self.renderer.size,) * 2
        return int(w), int(h)

    def face(self, k: int, speech: SpeechFrame | None) -> FaceState:
        """The final face of timeline video frame k, composed as Session.state_for does: the speech
        frame (or the mouth at rest), idle life scaled by voice activity, then the emotion. The time is
        the service's timeline, so emotion transitions and idle life run on across segments."""
        t = k / self.fps
        if speech is None:
            state, vad = FaceState.neutral(t), 0.0
        else:
            state, vad = speech.state.replace(t=t), float(speech.vad)
        return self.emotion.face(state, vad)

    def render(self, state: FaceState) -> np.ndarray:
        """(h, w, 3) RGB uint8; synchronous and CPU-bound: run it on the service's render thread."""
        return np.ascontiguousarray(self.renderer.render(state), dtype=np.uint8)

    def close(self) -> None:
        if hasattr(self.renderer, "close"):
            self.renderer.close()
