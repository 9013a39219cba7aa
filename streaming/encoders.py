"""Video encoders tuned for a rendered talking head, installed on a session's aiortc sender.

aiortc's encoders are made for camera video: VP8 runs libvpx's denoiser
(noise-sensitivity 4), x264 runs its `medium` preset, and both rebuild the
codec (a keyframe) whenever the receiver's bitrate estimate moves by 10 %,
which during the first seconds' ramp-up is every 1.5 s. A rendered face has no
sensor noise, changes little between frames, and looks good at 1 Mbit/s at
512x512. The encoders here keep aiortc's packetization and RTP timestamps and
change only the codec settings and when the codec is rebuilt:
* VP8 without the denoiser and a faster speed step, x264 `veryfast`;
* the bitrate is capped, follows a falling estimate at once (congestion) and a
  rising one only in steps of 25 % at least 3 s apart (fewer keyframes);
* the codec calls (build, encode, rebuild) run on one thread of the encoder's
  own: aiortc calls `encode` on its loop's default executor, a different thread
  from call to call, and glibc gives each thread its own malloc arena, so a codec
  rebuilt on one thread could not reuse what the old one freed on another (a
  worker's RSS wandered up by tens of MiB over 10 minutes of congestion,
  docs/design/reliability.md "Long runs"; on one thread it stays flat).
Figures: docs/design/performance.md ("Encoder settings").
"""
from __future__ import annotations

import fractions
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import av
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

MIN_BITRATE = 250_000
MAX_BITRATE = 1_000_000  # enough for a 512x512 rendered face; aiortc allows 1.5 Mbit/s
START_BITRATE = 500_000
RISE_STEP = 1.25  # a rise is applied when the estimate is this much above the current rate
RISE_INTERVAL_S = 3.0
FALL_STEP = 0.9  # a fall below 90 % of the current rate is applied at once

VP8_OPTIONS = {
    "deadline": "realtime",
    "cpu-used": "-8",
    "lag-in-frames": "0",
    "noise-sensitivity": "0",  # rendered frames have no sensor noise: the denoiser only costs time
    "static-thresh": "1",
    "partitions": "0",
    "overshoot-pct": "15",
    "undershoot-pct": "100",
}
X264_OPTIONS = {"level": "31", "tune": "zerolatency", "preset": "veryfast"}


class BitratePolicy:
    """The bitrate the codec is built with, from the receiver's estimates (REMB)."""

    def __init__(self, now: Callable[[], float] = time.monotonic, start: int = START_BITRATE,
                 low: int = MIN_BITRATE, high: int = MAX_BITRATE) -> None:
        self._now = now
        self.low, self.high = low, high
        self.current = max(low, min(start, high))
        self._changed_at = now()

    def offer(self, estimate: int) -> int:
        """Take a receiver estimate; return the (possibly unchanged) bitrate to use."""
        want = max(self.low, min(int(estimate), self.high))
        now = self._now()
        rise = want >= self.current * RISE_STEP or (want == self.high and want > self.current)
        if want < self.current * FALL_STEP or (rise and now - self._changed_at >= RISE_INTERVAL_S):
            self.current = want
            self._changed_at = now
        return self.current


class _PolicyBitrate:
    """aiortc rebuilds its codec when `target_bitrate` moves off the codec's rate: route it through a policy."""

    policy: BitratePolicy

    @property
    def target_bitrate(self) -> int:
        return self.policy.current

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self.policy.offer(bitrate)


class _OwnThread:
    """Runs the encoder's codec calls on one thread of its own (see the module's docstring), started at the
    first call; its owner ends it with `close` (`close_encoder`, when the session closes)."""

    _thread: ThreadPoolExecutor | None = None

    def _on_own_thread(self, fn: Callable, *args):
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="emolive-encode")
        return self._thread.submit(fn, *args).result()

    def close(self) -> None:
        """End the thread once a call in progress has returned (blocks until then)."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)


class TunedVp8Encoder(_OwnThread, _PolicyBitrate, Vp8Encoder):
    def __init__(self, policy: BitratePolicy | None = None) -> None:
        self.policy = policy or BitratePolicy()
        super().__init__()

    def encode(self, frame: av.VideoFrame, force_keyframe: bool = False):
        return self._on_own_thread(self._encode, frame, force_keyframe)

    def _encode(self, frame: av.VideoFrame, force_keyframe: bool):
        if self.codec is None or self._stale(frame):
            self.codec = _vp8_codec(frame.width, frame.height, self.policy.current)
        return super().encode(frame, force_keyframe)

    def _stale(self, frame) -> bool:
        c = self.codec
        return frame.width != c.width or frame.height != c.height or c.bit_rate != self.policy.current


class TunedH264Encoder(_OwnThread, _PolicyBitrate, H264Encoder):
    def __init__(self, policy: BitratePolicy | None = None) -> None:
        self.policy = policy or BitratePolicy()
        super().__init__()

    def encode(self, frame: av.VideoFrame, force_keyframe: bool = False):
        return self._on_own_thread(super().encode, frame, force_keyframe)

    def _encode_frame(self, frame: av.VideoFrame, force_keyframe: bool):
        c = self.codec
        if c is None or frame.width != c.width or frame.height != c.height or c.bit_rate != self.policy.current:
            self.buffer_data = b""
            self.buffer_pts = None
            self.codec = _x264_codec(frame.width, frame.height, self.policy.current)
        yield from super()._encode_frame(frame, force_keyframe)


def _vp8_codec(width: int, height: int, bitrate: int):
    c = av.CodecContext.create("libvpx", "w")
    c.width, c.height, c.pix_fmt = width, height, "yuv420p"
    c.bit_rate = bitrate
    c.gop_size = 3000  # keyframes only on request (picture loss) or a rebuild
    c.qmin, c.qmax = 2, 56
    # minrate = maxrate = bitrate: constant bitrate with a one-second buffer
    c.options = dict(VP8_OPTIONS, bufsize=str(bitrate), minrate=str(bitrate), maxrate=str(bitrate))
    c.thread_count = 1  # sessions run in parallel; one thread each is the better use of the cores
    return c


def _x264_codec(width: int, height: int, bitrate: int):
    c = av.CodecContext.create("libx264", "w")
    c.width, c.height, c.pix_fmt = width, height, "yuv420p"
    c.bit_rate = bitrate
    c.framerate = fractions.Fraction(30, 1)
    c.time_base = fractions.Fraction(1, 30)
    c.options = dict(X264_OPTIONS)
    c.profile = "Baseline"
    return c


_ENCODERS: dict[str, Callable[[], Any]] = {"video/vp8": TunedVp8Encoder, "video/h264": TunedH264Encoder}
_SENDER_ENCODER = "_RTCRtpSender__encoder"  # aiortc's private slot; aiortc fills it on the first frame if empty


def install_tuned_encoder(sender: Any, max_bitrate: int = MAX_BITRATE, owned: list | None = None) -> bool:
    """Make the sender use a tuned encoder for the codec negotiated (VP8 or H.264); False if it cannot.

    The codec is known only when the sender asks for a frame, so the slot is
    filled then (if still empty), just before aiortc would fill it with its own.
    The encoder made is appended to `owned`: its owner `close`s it (aiortc only
    lets go of it when the sender stops, and its thread would live until the
    encoder is collected)."""
    original = getattr(sender, "_next_encoded_frame", None)
    if original is None or not hasattr(sender, _SENDER_ENCODER):
        return False

    async def choosing(codec):
        if getattr(sender, _SENDER_ENCODER, None) is None:
            make = _ENCODERS.get(str(getattr(codec, "mimeType", "")).lower())
            if make is not None:
                encoder = make(BitratePolicy(high=max_bitrate))
                setattr(sender, _SENDER_ENCODER, encoder)
                if owned is not None:
                    owned.append(encoder)
        return await original(codec)

    sender._next_encoded_frame = choosing
    return True


def warm_up_encoders(frames: list, sample_rate: int = 48_000, video: Callable[[], Any] = TunedVp8Encoder,
                     audio: Callable[[], Any] | None = None, audio_frames: int = 5) -> None:
    """Encode `frames` (I420 arrays, e.g. streaming/parts.py's warm_up_engine) with a fresh tuned video
    encoder and a few 20 ms frames of silence with aiortc's Opus encoder, then close them: the process's
    first libvpx encoder took ~100 ms longer to encode its first frame than later ones (the codec library's
    one-time set-up), paid inside the first session's stream otherwise."""
    import numpy as np

    if audio is None:
        from aiortc.codecs.opus import OpusEncoder as audio
    encoder = video()
    try:
        for i, yuv in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts, frame.time_base = i * 3600, fractions.Fraction(1, 90_000)
            encoder.encode(frame, i == 0)
    finally:
        if hasattr(encoder, "close"):
            encoder.close()
    opus = audio()
    n = sample_rate // 50
    for i in range(audio_frames):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, n), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = sample_rate, i * n, fractions.Fraction(1, sample_rate)
        opus.encode(frame)
