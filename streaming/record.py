"""--record OUT.mp4: what a session sends (its video frames and outbound audio), in sync, as H.264 + AAC.

The outbound tracks hand each frame to `SessionRecorder` as they return it to
aiortc; an encoder thread writes them, so the event loop only appends to a
deque. Timestamps are the stream's own (video pts in 90 kHz, audio pts in
samples, both from the one audio timeline), so the file is in sync whatever
the encoder's speed. Policy when the encoder falls behind: video frames beyond
`max_video` queued are dropped (counted; the player holds the previous frame,
sync is kept by the pts); audio is never dropped in practice (20 ms of audio
encodes in well under a millisecond) and has a generous bound only so that a
wedged encoder cannot eat the memory (counted and logged if it is ever hit).
Why not write raw and mux at close: raw I420 is ~10 MB/s per 512x512 session,
too much disk for long sessions, and the close would take as long as the
session's encoding.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 90_000)
MAX_AUDIO_ITEMS = 3000  # 60 s of 20 ms frames


class RecordError(RuntimeError):
    pass


def recording_path(base: str | Path, index: int, session_id: str) -> Path:
    """OUT.mp4 for the first session, OUT-<sid8>.mp4 for the ones after it."""
    p = Path(base)
    return p if index == 0 else p.with_name(f"{p.stem}-{session_id[:8]}{p.suffix or '.mp4'}")


class SessionRecorder:
    def __init__(self, path: str | Path, size: tuple[int, int], fps: int, sample_rate: int, max_video: int = 50,
                 crf: int = 23, preset: str = "veryfast") -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._c = av.open(str(self.path), "w", format="mp4")
        except (OSError, av.error.FFmpegError) as e:
            raise RecordError(f"cannot write the recording {self.path}: {e}") from None
        self.fps, self.sample_rate, self.max_video = fps, sample_rate, max_video
        h, w = size
        self._v = self._c.add_stream("libx264", rate=fps)
        self._v.width, self._v.height = w, h
        self._v.pix_fmt = "yuv420p"
        self._v.time_base = VIDEO_TIME_BASE
        self._v.options = {"crf": str(crf), "preset": preset, "threads": "1"}
        self._a = self._c.add_stream("aac", rate=sample_rate)
        self._a.layout = "mono"
        self._a.time_base = Fraction(1, sample_rate)
        self._items: deque[tuple[str, int, np.ndarray]] = deque()
        self._video_queued = 0
        self._cv = threading.Condition()
        self._finishing = False
        self.counters = {"video_frames": 0, "video_dropped": 0, "audio_frames": 0, "audio_dropped": 0}
        self.error: str | None = None
        self._thread = threading.Thread(target=self._work, name=f"emolive-record-{self.path.stem}")
        self._thread.start()

    # -- loop side: cheap appends -------------------------------------------
    def video(self, pts: int, yuv: np.ndarray) -> None:
        """A sent video frame: I420 planes (h * 3/2, w) uint8, pts in 90 kHz."""
        with self._cv:
            if self._finishing:
                return
            if self._video_queued >= self.max_video:
                self.counters["video_dropped"] += 1
                return
            self._video_queued += 1
            self._items.append(("v", pts, yuv))  # frames are not mutated after sending: no copy
            self._cv.notify()

    def audio(self, pts: int, s16: np.ndarray) -> None:
        """A sent audio frame: (1, n) int16 mono, pts in samples."""
        with self._cv:
            if self._finishing:
                return
            if len(self._items) - self._video_queued >= MAX_AUDIO_ITEMS:
                self.counters["audio_dropped"] += 1
                if self.counters["audio_dropped"] == 1:
                    log.error("recording %s: the encoder is stuck; audio is being dropped", self.path)
                return
            self._items.append(("a", pts, s16))
            self._cv.notify()

    def finish(self) -> None:
        """No more frames: the thread encodes what is queued, then finalises the file."""
        with self._cv:
            self._finishing = True
            self._cv.notify()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def done(self) -> bool:
        """Finished and its file closed (or failed): nothing more will change."""
        return self._finishing and not self._thread.is_alive()

    # -- encoder thread ---------------------------------------------------------
    def _work(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._items and not self._finishing:
                        self._cv.wait()
                    if not self._items:
                        break
                    kind, pts, data = self._items.popleft()
                    if kind == "v":
                        self._video_queued -= 1
                if kind == "v":
                    self._encode_video(pts, data)
                else:
                    self._encode_audio(pts, data)
            self._close()
        except Exception as e:  # a recording failure must not touch the session
            self.error = f"{type(e).__name__}: {e}"
            log.exception("recording %s failed", self.path)
            try:
                self._c.close()
            except Exception:  # noqa: BLE001 - already failing; the file is lost either way
                pass

    def _encode_video(self, pts: int, yuv: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        for pkt in self._v.encode(frame):
            self._c.mux(pkt)
        self.counters["video_frames"] += 1

    def _encode_audio(self, pts: int, s16: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(s16.reshape(1, -1)), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = pts
        frame.time_base = self._a.time_base
        for pkt in self._a.encode(frame):
            self._c.mux(pkt)
        self.counters["audio_frames"] += 1

    def _close(self) -> None:
        for st in (self._v, self._a):
            for pkt in st.encode(None):
                self._c.mux(pkt)
        self._c.close()
        log.info("recording %s written: %s", self.path, self.counters)
