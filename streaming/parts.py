"""The engine pieces a streaming session is built from, behind small factories.

The server builds them from the real engine (`real_parts`); tests may pass
other factories. Building can fail (missing model file, bad avatar): that is an
EngineUnavailable with a message meant for the operator.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Callable

from engine.session import SpeechModel, model_latency_s
from engine.types import FaceState


class EngineUnavailable(RuntimeError):
    """An engine piece cannot be built; the message says what is missing."""


class UnsupportedRequest(Exception):
    """A valid request that this build of the engine cannot serve."""


class EmotionControl:
    """The session's emotion state as the control protocol sees it (wraps EmotionController)."""

    def __init__(self, controller, prompt_parser: Callable[[str], Any] | None = None,
                 idle: Any | None = None, idle_seed: int = 0) -> None:
        self.controller = controller
        self._prompt = prompt_parser
        self._idle = idle
        self._seed = idle_seed
        self.idle_enabled = True
        self.idle_amount = 1.0

    def set_emotion(self, emotion: str | None, mixture: dict[str, float] | None, intensity: float,
                    transition_ms: float, at_t: float | None = None):
        from engine.emotion import EmotionTarget

        target = EmotionTarget(mixture={emotion: 1.0} if emotion is not None else dict(mixture), intensity=intensity)
        return self.controller.set(target, at_t=at_t, transition_ms=transition_ms)

    def prompt(self, text: str, transition_ms: float):
        return self.controller.set(self.read_prompt(text), transition_ms=transition_ms)

    def read_prompt(self, text: str):
        """The emotion target a text prompt names. CPU only, no session state: the first prompt that is not
        a lexicon word loads the sentence encoder (seconds, once per process), so callers run it off the
        session's worker."""
        if self._prompt is None:
            raise UnsupportedRequest("text prompts are not available in this engine build")
        return self._prompt(text)

    def set_idle(self, enabled: bool, amount: float) -> None:
        self.idle_enabled, self.idle_amount = enabled, amount
        if self._idle is not None and hasattr(self._idle, "config"):
            from dataclasses import replace

            from engine.emotion.idle import IdleConfig, IdleLife

            base = IdleConfig()
            scaled = replace(base, head_deg=base.head_deg * amount, breath_deg=base.breath_deg * amount,
                             gaze_deg=(base.gaze_deg[0] * amount, base.gaze_deg[1] * amount))
            self._idle = IdleLife(self._seed, scaled)

    def idle(self, state: FaceState, vad: float) -> FaceState:
        """Idle life over a frame (blinks, sway, gaze), when available and enabled."""
        if self._idle is None or not self.idle_enabled:
            return state
        return self._idle.apply(state, vad)

    def apply(self, state: FaceState, vad: float = 0.0) -> FaceState:
        return self.controller.apply(state, vad)

    def face(self, state: FaceState, vad: float) -> FaceState:
        """A speech (or rest) state as shown: idle life scaled by voice activity, then the emotion."""
        return self.apply(self.idle(state, vad), vad)

    def describe(self) -> dict[str, Any]:
        rep, to = self.controller.current(), self.controller.target()
        return {"mixture": rep.mixture, "intensity": rep.intensity, "custom": rep.custom,
                "target": {"mixture": to.mixture, "intensity": to.intensity, "custom": to.custom},
                "idle": {"enabled": self.idle_enabled, "amount": self.idle_amount}}


@dataclass
class EngineParts:
    model_factory: Callable[[], SpeechModel]
    emotion_factory: Callable[[str | None], EmotionControl]  # initial emotion spec (or None)
    renderer_factory: Callable[[Any], Any]  # avatar (path / name, None = default, or an Avatar) -> Renderer
    model_latency_s: float


def default_emotion_factory(initial: str | None) -> EmotionControl:
    from engine.emotion import EmotionController

    from engine.emotion.idle import IdleLife

    prompt_parser = None
    try:
        from engine.emotion.prompt import parse_prompt as prompt_parser  # lands with the prompt work
    except ImportError:
        pass
    seed = secrets.randbits(31)  # each session's idle life differs
    return EmotionControl(EmotionController(initial), prompt_parser, IdleLife(seed), seed)


def renderer_factory_for(name: str = "meshwarp", cache_size: int = 8,
                         neural_mouth: bool = False, size: int = 512) -> Callable[[str | None], Any]:
    """Renderer per session; avatars are cached (loading one takes seconds, a session must start in < 0.5 s).
    `size` is the frame's side in pixels for avatars built from a photo or the default one."""
    from functools import lru_cache

    from engine.avatar import Avatar, load_avatar
    from engine.renderers import create, is_trained_bundle, switch_options

    cached = lru_cache(maxsize=cache_size)(load_avatar)
    options = switch_options(name, neural_mouth=neural_mouth)

    def make(avatar):
        if isinstance(avatar, Avatar):  # built from an uploaded photo (streaming/avatar_swap.py): not cached
            return create(name, avatar, **options)
        if is_trained_bundle(avatar):
            return create(name, avatar, **options)  # a trained renderer's bundle carries its own avatar
        return create(name, cached(avatar, size), **options)

    return make


def real_parts(renderer: str = "meshwarp", model_factory: Callable[[], SpeechModel] | None = None,
               fps: int = 25, neural_mouth: bool = False, size: int = 512) -> EngineParts:
    """The real engine: audio-to-expression, emotion controller, renderer."""
    if model_factory is None:
        try:
            from engine.audio.stream import AudioToExpression
        except ImportError as e:
            raise EngineUnavailable(f"the audio-to-expression model is not available ({e})") from e
        from functools import partial

        model_factory = partial(AudioToExpression, fps=fps)
    try:
        latency = model_latency_s(model_factory())
    except Exception as e:  # a missing weight file, a broken install: tell the operator at start
        raise EngineUnavailable(f"cannot create the audio-to-expression model: {e}") from e
    return EngineParts(model_factory, default_emotion_factory,
                       renderer_factory_for(renderer, neural_mouth=neural_mouth, size=size), latency)


def warm_up_engine(parts: EngineParts, avatar: str | None = None, sample_rate: int = 48_000,
                   seconds: float = 1.0, renders: int = 6) -> list[Any]:
    """Run the engine once the way a session does, so that the process's first session does not pay for
    first calls (the warp kernel's paths, ONNX Runtime's first runs, the emotion and idle layers, the I420
    conversion) while it streams: a model on `seconds` of silence then as much of a voiced sound, the face
    states it gives through a fresh emotion control, `renders` of them (the neutral face first) rendered
    with the avatar's renderer and converted as the runner does. Returns the I420 frames (for the encoders'
    warm-up, streaming/encoders.py)."""
    import cv2
    import numpy as np

    chunk = sample_rate // 50  # 20 ms, as the inbound audio arrives
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    # a voiced sound: harmonics of a gliding pitch, its loudness moving at a syllable rate
    pitch = 2 * np.pi * np.cumsum(140.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t)) / sample_rate
    voice = sum(np.sin(h * pitch) / h for h in range(1, 6)) * (0.2 + 0.15 * np.sin(2 * np.pi * 4.0 * t))
    pcm = np.concatenate([np.zeros(len(t)), voice]).astype(np.float32)
    model = parts.model_factory()
    emotion = parts.emotion_factory(None)
    frames = []
    for i in range(0, len(pcm), chunk):
        frames += model.push(pcm[i:i + chunk], sample_rate)
    states = [(emotion.apply(emotion.idle(f.state, f.vad), f.vad), f.vad) for f in frames]
    pool = [s for s, vad in states if vad > 0.5] or [s for s, _ in states] or [FaceState.neutral()]
    picks = [FaceState.neutral()] + [pool[i * len(pool) // (renders - 1)] for i in range(renders - 1)]
    renderer = parts.renderer_factory(avatar)
    try:
        return [cv2.cvtColor(np.ascontiguousarray(renderer.render(s)), cv2.COLOR_RGB2YUV_I420) for s in picks]
    finally:
        if hasattr(renderer, "close"):
            renderer.close()
