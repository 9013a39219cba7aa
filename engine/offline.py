"""Offline jobs: render an expressions timeline (or speech) of an avatar to an mp4."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from .avatar import load_avatar
from .io.timeline import load_expressions
from .io.video_writer import Mp4Writer
from .renderers import create
from .types import FaceState


def _check_out(out: str | Path) -> Path:
    from .io.video_writer import VideoWriterError

    p = Path(out)
    if p.suffix.lower() != ".mp4":
        raise VideoWriterError(f"output must be an .mp4 file, got {p}")
    if p.is_dir():
        raise VideoWriterError(f"output is a directory: {p}")
    return p


def write_states(out: str | Path, avatar, states: Iterable[FaceState], fps: float,
                 audio: np.ndarray | None = None, audio_rate: int | None = None, renderer: str = "meshwarp") -> int:
    """Render face states to an mp4; audio, when given, starts at t = 0 like frame 0."""
    r = create(renderer, avatar)
    n = 0
    try:
        with Mp4Writer(out, fps, r.size, audio_rate=audio_rate if audio is not None else None) as w:
            if audio is not None:
                w.write_audio(audio)
            for s in states:
                w.write_frame(r.render(s))
                n += 1
    finally:
        r.close()
    return n


def render_to_mp4(out, avatar=None, expressions=None, audio=None, fps=None, emotion=None, prompt=None,
                  size: int = 512) -> int:
    out = _check_out(out)
    if expressions is not None:
        if emotion or prompt:
            from .io.timeline import TimelineError
            raise TimelineError("--emotion/--prompt apply to --audio renders; put emotion into the expressions file")
        file_fps, states = load_expressions(expressions)
        av = load_avatar(avatar, size=size)
        return write_states(out, av, states, fps or file_fps)
    from .speech_render import render_speech

    return render_speech(out, audio, avatar=avatar, fps=fps or 25, emotion=emotion, prompt=prompt, size=size)


def demo_states(seconds: float, fps: float = 25) -> list[FaceState]:
    """A scripted performance: syllable-like jaw motion, blinks, a smile and a head turn."""
    states = []
    for k in range(int(seconds * fps)):
        t = k / fps
        syll = max(0.0, math.sin(2 * math.pi * 3.1 * t)) * (0.5 + 0.5 * math.sin(2 * math.pi * 0.4 * t) ** 2)
        speaking = (t % 4.0) < 2.8
        blink = math.exp(-(((t % 3.3) - 1.5) / 0.05) ** 2)
        smile = 0.6 * max(0.0, math.sin(2 * math.pi * t / seconds))
        states.append(FaceState.from_dict({
            "jawOpen": 0.55 * syll if speaking else 0.0, "mouthLowerDownLeft": 0.3 * syll if speaking else 0.0,
            "mouthLowerDownRight": 0.3 * syll if speaking else 0.0,
            "mouthSmileLeft": smile, "mouthSmileRight": smile, "cheekSquintLeft": 0.5 * smile,
            "cheekSquintRight": 0.5 * smile, "eyeBlinkLeft": blink, "eyeBlinkRight": blink,
            "headYaw": 10 * math.sin(2 * math.pi * 0.15 * t), "headPitch": 3 * math.sin(2 * math.pi * 0.23 * t),
            "headRoll": 2 * math.sin(2 * math.pi * 0.11 * t),
        }, t=t))
    return states


def render_demo(out, seconds: int = 8) -> int:
    out = _check_out(out)
    return write_states(out, load_avatar(None), demo_states(seconds), 25)
