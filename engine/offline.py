"""Offline jobs: render an expressions timeline (or speech) of an avatar to an mp4."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from .avatar import load_avatar
from .io.timeline import load_expressions
from .io.video_writer import Mp4Writer
from .renderers import RendererError, create, switch_options, trained
from .types import FaceState


def _check_out(out: str | Path) -> Path:
    from .io.video_writer import VideoWriterError

    p = Path(out)
    if p.suffix.lower() != ".mp4":
        raise VideoWriterError(f"output must be an .mp4 file, got {p}")
    if p.is_dir():
        raise VideoWriterError(f"output is a directory: {p}")
    return p


def offline_device() -> str:
    """A trained renderer's device for offline jobs: a CUDA GPU when there is one, else the CPU (slow, but it
    renders; the live engine would fall back to meshwarp instead)."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def renderer_avatar(renderer: str, avatar, size: int):
    """What `create(renderer, ...)` is given: a trained renderer's bundle directory as is, else a loaded avatar."""
    if renderer in trained():

        if avatar is None:
            raise RendererError(f"--renderer {renderer} needs --avatar DIR, a bundle made by "
                                f"`emolive avatar train --backend {renderer}`")
        return str(avatar)
    return load_avatar(avatar, size=size)


def write_states(out: str | Path, avatar, states: Iterable[FaceState], fps: float,
                 audio: np.ndarray | None = None, audio_rate: int | None = None, renderer: str = "meshwarp",
                 neural_mouth: bool = False, device: str | None = None) -> int:
    """Render face states to an mp4; audio, when given, starts at t = 0 like frame 0."""
    options = switch_options(renderer, neural_mouth=neural_mouth)
    if renderer in trained():
        options["device"] = device or offline_device()
    r = create(renderer, avatar, **options)
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
                  size: int = 512, neural_mouth: bool = False, renderer: str = "meshwarp",
                  device: str | None = None) -> int:
    out = _check_out(out)
    if expressions is not None:
        if emotion or prompt:
            from .io.timeline import TimelineError
            raise TimelineError("--emotion/--prompt apply to --audio renders; put emotion into the expressions file")
        file_fps, states = load_expressions(expressions)
        av = renderer_avatar(renderer, avatar, size)
        return write_states(out, av, states, fps or file_fps, neural_mouth=neural_mouth, renderer=renderer,
                            device=device)
    from .speech_render import render_speech

    return render_speech(out, audio, avatar=avatar, fps=fps or 25, emotion=emotion, prompt=prompt, size=size,
                         neural_mouth=neural_mouth, renderer=renderer, device=device)


DEMO_TEXT = ("Hello! I am the emolive default avatar. I follow your voice, "
             "and I can change my mood while I speak: now I am happy, and now a little surprised.")
DEMO_EMOTIONS = {"changes": [{"t": 0.0, "emotion": "neutral", "transition_ms": 0},
                             {"t": 3.0, "emotion": "happy:0.9", "transition_ms": 400},
                             {"t": 6.5, "prompt": "happy with a little surprised", "transition_ms": 400}]}


def render_demo(out, text: str = DEMO_TEXT) -> int:
    """Speech synthesised with espeak-ng, lip-synced on the default avatar, with emotion changes."""
    import json
    import shutil
    import subprocess
    import tempfile

    from .io.video_writer import VideoWriterError

    out = _check_out(out)
    if shutil.which("espeak-ng") is None:
        raise VideoWriterError("the demo needs espeak-ng (apt install espeak-ng; scripts/setup.sh does it)")
    from .speech_render import render_speech

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "demo.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True,
                       capture_output=True)
        timeline = Path(tmp) / "emotions.json"
        timeline.write_text(json.dumps(DEMO_EMOTIONS))
        return render_speech(out, wav, emotion=str(timeline))
