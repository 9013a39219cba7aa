"""Offline speech renders: a speech file -> lip-synced, emotional avatar video with the voice muxed.

Per video frame this composes exactly what the live session does
(engine.session.Session.state_for): the streaming audio model's frame, then
idle life scaled by voice activity, then the emotion controller; the audio is
fed in 20 ms chunks as a live stream would deliver it.
"""
from __future__ import annotations

import json
from pathlib import Path

from .audio import AudioToExpression, read_audio_file
from .emotion import EmotionController, EmotionError, parse_spec
from .emotion.idle import IdleLife
from .io.timeline import TimelineError
from .offline import renderer_avatar, write_states

CHUNK_MS = 20.0


def _emotion_changes(emotion: str | None, prompt: str | None) -> list[tuple[float, object, float]]:
    """(stream time, target, transition_ms) changes from --emotion / --prompt."""
    if prompt is not None:
        from .emotion.prompt import parse_prompt

        return [(0.0, parse_prompt(prompt), 0.0)]
    if emotion is None:
        return []
    if emotion.lower().endswith(".json"):
        return _timeline(Path(emotion))
    try:
        return [(0.0, parse_spec(emotion), 0.0)]
    except EmotionError as e:
        raise TimelineError(f"--emotion: {e}") from None


def _timeline(path: Path) -> list[tuple[float, object, float]]:
    """{"changes": [{"t": 1.0, "emotion": "happy:0.8" | "prompt": "...", "transition_ms": 250}, ...]}."""
    from .emotion.prompt import parse_prompt

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TimelineError(f"emotion timeline not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TimelineError(f"emotion timeline is not valid JSON ({path}): {e}") from None
    changes = doc.get("changes") if isinstance(doc, dict) else None
    if not isinstance(changes, list) or not changes:
        raise TimelineError('emotion timeline must be {"changes": [{"t": ..., "emotion": ...}, ...]}')
    out = []
    for i, c in enumerate(changes):
        if not isinstance(c, dict) or not isinstance(c.get("t"), (int, float)) or isinstance(c.get("t"), bool) \
                or c["t"] < 0:
            raise TimelineError(f"change {i}: needs a stream time \"t\" >= 0 in seconds")
        tr = c.get("transition_ms", 250)
        if isinstance(tr, bool) or not isinstance(tr, (int, float)) or not 0 <= tr <= 60_000:
            raise TimelineError(f"change {i}: transition_ms must be 0..60000")
        if "prompt" in c:
            target = parse_prompt(str(c["prompt"]))
        elif "emotion" in c:
            try:
                target = parse_spec(str(c["emotion"]))
            except EmotionError as e:
                raise TimelineError(f"change {i}: {e}") from None
        else:
            raise TimelineError(f"change {i}: needs \"emotion\" or \"prompt\"")
        out.append((float(c["t"]), target, float(tr)))
    return out


def speech_states(samples, rate: int, fps: float = 25.0, emotion: str | None = None, prompt: str | None = None,
                  seed: int = 0):
    """The final face state of every video frame of a speech signal."""
    model = AudioToExpression(fps=fps)
    controller = EmotionController()
    for t, target, tr in _emotion_changes(emotion, prompt):
        controller.set(target, at_t=t, transition_ms=tr)
    idle = IdleLife(seed)
    step = max(1, int(rate * CHUNK_MS / 1000))
    frames = []
    for i in range(0, len(samples), step):
        frames += model.push(samples[i:i + step], rate)
    frames += model.flush()
    n_video = int(len(samples) / rate * fps + 0.5)
    for f in frames[:n_video]:
        yield controller.apply(idle.apply(f.state, f.vad), f.vad)


def render_speech(out, audio, avatar=None, fps: float = 25.0, emotion=None, prompt=None, size: int = 512,
                  neural_mouth: bool = False, renderer: str = "meshwarp", device: str | None = None) -> int:
    samples, rate = read_audio_file(audio)
    # Computed before the (slower) avatar build, so bad emotion options fail first.
    states = list(speech_states(samples, rate, fps=fps, emotion=emotion, prompt=prompt))
    return write_states(out, renderer_avatar(renderer, avatar, size), states, fps, audio=samples, audio_rate=rate,
                        neural_mouth=neural_mouth, renderer=renderer, device=device)
