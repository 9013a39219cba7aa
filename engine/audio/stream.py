"""AudioToExpression: sans-I/O streaming from PCM chunks to per-video-frame SpeechFrames.

push(pcm, sample_rate) -> frames that became final; flush() -> the rest.
Pipeline: intake -> resampler (16 kHz) -> log-mel (100 Hz) -> network (output
for 10 ms step j arrives `delay` steps later) -> linear interpolation at the
video frame times t = k / fps -> silence relaxation. Every stage depends only
on absolute sample/frame positions, so the chunking never changes the result.

Look-ahead = delay * 10 ms + half the 25 ms analysis window (+ < 1 step of
interpolation at frame rates that are not a divisor of 100), e.g. 72.5 ms at 25 fps.
"""
from __future__ import annotations

from fractions import Fraction
from math import ceil, gcd

import numpy as np

from ..types import NUM_COEFFS, FaceState, SpeechFrame
from .errors import AudioInputError
from .features import HOP, SR, WIN, LogMelStream
from .intake import to_mono
from .model import ExpressionModel, onnx_predictor
from .resample import MAX_RATE, MIN_RATE, StreamResampler, check_rate
from .spec import N_SPEECH, SPEECH_INDEX

FEATURE_RATE = SR // HOP  # 100 steps per second
LEVEL_SPAN = 3  # steps each side of a frame checked against the silence floor (<= model delay)


def frame_level_db(logmel_rows: np.ndarray) -> np.ndarray:
    """Per-step level in dB relative to a full-scale sine, from log-mel rows."""
    return (10.0 * np.log10(np.exp(logmel_rows.astype(np.float64)).sum(axis=1) + 1e-30) - _SINE_DB).astype(np.float32)


def _sine_reference_db() -> float:
    from .features import WIN, frames_to_logmel

    tone = np.sin(2 * np.pi * 1000.0 * np.arange(WIN) / SR)[None]
    return float(10.0 * np.log10(np.exp(frames_to_logmel(tone).astype(np.float64)).sum()))


_SINE_DB = _sine_reference_db()


class AudioToExpression:
    """Streaming audio -> expression. One instance per stream; not thread-safe.

    fps: video frame rate (25 default; any rate up to 120, e.g. 30 or 29.97).
    max_lookahead_ms: refuse a model whose look-ahead exceeds it (default 80).
    silence_on/off: voice-activity hysteresis thresholds; outside speech the
    mouth relaxes to neutral (closed) by at most `max_silence_step` per frame.
    articulation scales the speech coefficients (1 = as measured on real faces;
    > 1 exaggerates for avatars whose rig compresses mouth motion).
    Audio quieter than `silence_floor_db` (dB re a full-scale sine, +-30 ms
    around the frame) counts as silence whatever the network says.
    """

    def __init__(self, fps: float = 25.0, model: ExpressionModel | None = None, max_lookahead_ms: float = 80.0,
                 providers=("cpu",), silence_on: float = 0.5, silence_off: float = 0.3,
                 max_silence_step: float = 0.04, relax: float = 0.35, silence_floor_db: float = -60.0,
                 articulation: float = 1.0):
        fr = Fraction(fps).limit_denominator(1001)
        if not 1 <= fr <= 120:
            raise ValueError(f"fps must be in [1, 120], got {fps!r}")
        self.fps = float(fr)
        self._fps_num, self._fps_den = fr.numerator, fr.denominator
        self.model = model if model is not None else ExpressionModel(onnx_predictor(providers=providers))
        self.delay = self.model.delay
        # frame times between two 10 ms steps wait for the next step: at most (num - g) / num of a step
        g = gcd(FEATURE_RATE * self._fps_den, self._fps_num)
        interp = 1000.0 / FEATURE_RATE * (self._fps_num - g) / self._fps_num
        self.lookahead_ms = self.delay * 1000.0 / FEATURE_RATE + 1000.0 * (WIN // 2) / SR + interp
        if self.lookahead_ms > max_lookahead_ms + 1e-9:
            raise ValueError(f"model look-ahead {self.lookahead_ms:.1f} ms at {self.fps:g} fps exceeds "
                             f"max_lookahead_ms={max_lookahead_ms}")
        self.silence_on, self.silence_off = float(silence_on), float(silence_off)
        self.max_silence_step, self.relax = float(max_silence_step), float(relax)
        self.silence_floor_db = float(silence_floor_db)
        if not 0.0 <= float(articulation) <= 4.0:
            raise ValueError(f"articulation must be in [0, 4], got {articulation!r}")
        self.articulation = float(articulation)
        self.reset()

    def reset(self) -> None:
        """Start a new stream (stream time back to 0)."""
        self.model.reset()
        self._rate: int | None = None
        self._res: StreamResampler | None = None
        self._mel = LogMelStream()
        self._steps = 0  # network steps run
        self._y = np.zeros((0, N_SPEECH + 1), np.float32)  # outputs for target steps _y0 ...
        self._y0 = 0
        self._lev = np.zeros(0, np.float32)  # level (dB) of feature steps _lev0 ...
        self._lev0 = 0
        self._k = 0  # next video frame
        self._end_frame: int | None = None
        self._speaking = False
        self._prev = np.zeros(N_SPEECH, np.float32)
        self.nonfinite_samples = 0
        self.samples_in = 0

    # -- input ---------------------------------------------------------------------------------
    def push(self, pcm, sample_rate: int, channels: int | None = None) -> list[SpeechFrame]:
        """Feed one chunk; returns the frames that became final (possibly none).

        Raises AudioInputError (a ValueError) for unusable input, leaving the stream intact.
        """
        if self._end_frame is not None:
            raise AudioInputError("stream already flushed: call reset() to start a new one")
        x, n_bad = to_mono(pcm, channels)
        rate = check_rate(sample_rate)
        if self._rate is None:
            self._rate, self._res = rate, StreamResampler(rate)
        elif rate != self._rate:
            raise AudioInputError(f"sample rate changed mid-stream ({self._rate} -> {rate} Hz): call reset() first")
        self.nonfinite_samples += n_bad
        if x.size == 0:
            return []
        self.samples_in += x.size
        return self._advance(self._mel.push(self._res.push(x)))

    def flush(self) -> list[SpeechFrame]:
        """End of stream: returns the remaining frames, up to the last frame that starts inside the audio."""
        if self._end_frame is not None:
            return []
        feats = []
        if self._res is not None:
            feats.append(self._mel.push(self._res.flush()))
        n16 = self._mel.samples_in
        feats.append(self._mel.pad_and_flush(extra_frames=self.delay + 1))
        # frames k with k / fps < duration
        self._end_frame = ceil(Fraction(n16, SR) * self._fps_num / self._fps_den)
        return self._advance(np.concatenate(feats))

    # -- internals -------------------------------------------------------------------------------
    def _advance(self, feats: np.ndarray) -> list[SpeechFrame]:
        if feats.shape[0]:
            self._lev = np.concatenate([self._lev, frame_level_db(feats)])
            out = self.model.step(feats)
            first = self._steps - self.delay  # target step of out[0]
            self._steps += feats.shape[0]
            if first < 0:
                out = out[-first:]
            self._y = np.concatenate([self._y, out.astype(np.float32)]) if self._y.size else out.astype(np.float32)
        avail = self._y0 + self._y.shape[0]  # target steps [_y0, avail) are known
        frames = []
        while self._end_frame is None or self._k < self._end_frame:
            num = FEATURE_RATE * self._k * self._fps_den
            j0, rem = divmod(num, self._fps_num)
            j1 = j0 + 1 if rem else j0
            if j1 >= avail:
                break
            a = float(rem) / self._fps_num
            y = self._y[j0 - self._y0] if not rem else (1 - a) * self._y[j0 - self._y0] + a * self._y[j1 - self._y0]
            lo = max(0, j0 - LEVEL_SPAN - self._lev0)
            loud = float(self._lev[lo:j1 + LEVEL_SPAN + 1 - self._lev0].max()) > self.silence_floor_db
            frames.append(self._finish(y, self._k, loud))
            self._k += 1
        # drop rows no later frame can use
        nxt = (FEATURE_RATE * self._k * self._fps_den) // self._fps_num
        drop = min(max(0, nxt - self._y0), self._y.shape[0])
        if drop:
            self._y = self._y[drop:]
            self._y0 += drop
        drop = min(max(0, nxt - LEVEL_SPAN - self._lev0), self._lev.shape[0])
        if drop:
            self._lev = self._lev[drop:]
            self._lev0 += drop
        return frames

    def _finish(self, y: np.ndarray, k: int, loud: bool) -> SpeechFrame:
        vad = float(1.0 / (1.0 + np.exp(-float(y[N_SPEECH])))) if loud else 0.0
        if vad >= self.silence_on:
            self._speaking = True
        elif vad < self.silence_off:
            self._speaking = False
        if self._speaking:
            c = np.clip(y[:N_SPEECH] * self.articulation, 0.0, 1.0).astype(np.float32)
        else:
            # Relax monotonically to neutral (closed mouth): no quivering, bounded speed.
            step = np.minimum(self._prev * self.relax, self.max_silence_step)
            c = self._prev - step
            c[c < 1e-3] = 0.0
        self._prev = c
        coeffs = np.zeros(NUM_COEFFS, np.float32)
        coeffs[list(SPEECH_INDEX)] = c
        return SpeechFrame(state=FaceState(coeffs=coeffs, t=k * self._fps_den / self._fps_num), vad=vad)


def run_samples(samples, sample_rate: int, fps: float = 25.0, chunk_ms: float = 20.0,
                engine: AudioToExpression | None = None) -> list[SpeechFrame]:
    """Whole signal through the streaming class in `chunk_ms` chunks (what a live stream would see)."""
    eng = engine if engine is not None else AudioToExpression(fps=fps)
    x = np.asarray(samples)
    n = max(1, int(round(sample_rate * chunk_ms / 1000.0)))
    frames: list[SpeechFrame] = []
    for i in range(0, x.shape[0], n):
        frames += eng.push(x[i:i + n], sample_rate)
    return frames + eng.flush()


def run_file(path, fps: float = 25.0, chunk_ms: float = 20.0, engine: AudioToExpression | None = None) -> list[SpeechFrame]:
    """Decode an audio/video file (engine.audio.read_audio_file) and stream it; one SpeechFrame per video frame."""
    from .io import read_audio_file

    x, sr = read_audio_file(path)
    if not MIN_RATE <= sr <= MAX_RATE:
        x, sr = _to_16k_offline(x, sr)
    return run_samples(x, sr, fps=fps, chunk_ms=chunk_ms, engine=engine)



def _to_16k_offline(x: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """Files outside the streaming rate range (e.g. 6 kHz, 192 kHz) are converted once up front."""
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sr), SR)
    return resample_poly(x, SR // g, int(sr) // g).astype(np.float32), SR
