"""Decoding audio files (wav, mp3, m4a, flv, mp4, ...) with PyAV into mono float32."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import AudioInputError


def read_audio_file(path: str | Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sample rate) of the first audio stream of a file.

    Channels are averaged. Raises AudioInputError when the file is missing,
    undecodable or has no audio stream.
    """
    import av

    if not str(path).strip():
        raise AudioInputError("audio file path is empty")
    p = Path(path)
    if p.is_dir():
        raise AudioInputError(f"{p} is a directory, not an audio file")
    if not p.is_file():
        raise AudioInputError(f"audio file not found: {p}")
    try:
        container = av.open(str(p))
    except Exception as e:  # PyAV raises many error types for bad containers
        raise AudioInputError(f"cannot open {p} as media: {e}") from None
    with container:
        streams = container.streams.audio
        if not streams:
            raise AudioInputError(f"{p} has no audio stream")
        stream = streams[0]
        rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        # Let FFmpeg convert any sample format/layout to planar float, keep the rate.
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate or None)
        parts: list[np.ndarray] = []
        total = 0
        limit = None if max_seconds is None or not rate else int(max_seconds * rate)
        try:
            for frame in container.decode(stream):
                rate = rate or frame.sample_rate
                for out in resampler.resample(frame):
                    a = out.to_ndarray().reshape(-1).astype(np.float32)
                    parts.append(a)
                    total += a.size
                if limit is not None and total >= limit:
                    break
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1).astype(np.float32))
        except av.error.FFmpegError as e:
            raise AudioInputError(f"cannot decode audio of {p}: {e}") from None
    if not parts or not rate:
        raise AudioInputError(f"{p} contains no decodable audio samples")
    x = np.concatenate(parts)
    if limit is not None:
        x = x[:limit]
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(x, -1.0, 1.0).astype(np.float32), int(rate)
