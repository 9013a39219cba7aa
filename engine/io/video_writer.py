"""H.264 mp4 writing with optional muxed audio, timestamps from frame and sample counts."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


class VideoWriterError(RuntimeError):
    pass


class Mp4Writer:
    """Write RGB frames at a fixed fps; audio (mono float32) is muxed sample-exact from t = 0."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], audio_rate: int | None = None,
                 crf: int = 20, preset: str = "veryfast"):
        import av

        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._c = av.open(str(self.path), "w")
        except (OSError, av.error.FFmpegError) as e:
            raise VideoWriterError(f"cannot write {self.path}: {e}") from None
        h, w = size
        self._fps = Fraction(fps).limit_denominator(1001)
        self._v = self._c.add_stream("libx264", rate=self._fps)
        self._v.width, self._v.height = w - (w % 2), h - (h % 2)
        self._v.pix_fmt = "yuv420p"
        self._v.options = {"crf": str(crf), "preset": preset}
        self._v.time_base = 1 / self._fps
        self._a = None
        self._audio_rate = audio_rate
        if audio_rate:
            self._a = self._c.add_stream("aac", rate=audio_rate)
            self._a.layout = "mono"
            self._a.time_base = Fraction(1, audio_rate)
            self._apts = 0
        self._n = 0

    def write_frame(self, rgb: np.ndarray) -> None:
        import av

        img = np.ascontiguousarray(rgb[: self._v.height, : self._v.width])
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self._n
        self._n += 1
        for pkt in self._v.encode(frame):
            self._c.mux(pkt)

    def write_audio(self, samples: np.ndarray) -> None:
        import av

        if self._a is None:
            raise VideoWriterError("this writer was opened without audio")
        s = np.asarray(samples, np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(s, format="flt", layout="mono")
        frame.sample_rate = self._audio_rate
        frame.pts = self._apts
        self._apts += s.shape[1]
        for pkt in self._a.encode(frame):
            self._c.mux(pkt)

    def close(self) -> None:
        for st in (self._v, self._a):
            if st is not None:
                for pkt in st.encode(None):
                    self._c.mux(pkt)
        self._c.close()

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
