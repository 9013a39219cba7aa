"""Real speech stays readable when it is quiet, loud/clipped, noisy (SNR 10 dB) or at another sample rate."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from engine.audio import AudioToExpression, read_audio_file, run_samples

from audio_helpers import jaw, pearson


@pytest.fixture(scope="module")
def clip(shared):
    # A held-out GRID speaker (never trained on), 16 kHz.
    x, sr = read_audio_file(shared / "data/grid/multi_speaker/swiz3n.mp4")
    x = resample_poly(x, 160, 441).astype(np.float32)[:48000]
    return x / np.abs(x).max() * 0.5


@pytest.fixture(scope="module")
def model():
    from engine.audio.model import ExpressionModel

    return ExpressionModel()


def mouth(x, sr, model):
    return jaw(run_samples(x, sr, chunk_ms=20, engine=AudioToExpression(model=model)))


def variants(x):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(x.size).astype(np.float32)
    speech_power = np.mean(x[np.abs(x) > 0.05] ** 2)
    yield "quiet -30 dB", x * 10 ** (-30 / 20), 16000
    yield "loud clipped", np.clip(x * 6.0, -1, 1), 16000
    yield "white noise SNR 10 dB", x + noise * np.sqrt(speech_power / 10), 16000
    yield "8 kHz", resample_poly(x, 1, 2).astype(np.float32), 8000
    yield "44.1 kHz int16", np.round(resample_poly(x, 441, 160) * 32767).astype(np.int16), 44100
    yield "48 kHz stereo", np.stack([resample_poly(x, 3, 1)] * 2, 1).astype(np.float32), 48000


def test_mouth_follows_speech_under_degradations(clip, model):
    clean = mouth(clip, 16000, model)
    assert clean.max() > 0.1 and clean.std() > 0.03  # it talks
    for name, x, sr in variants(clip):
        got = mouth(x, sr, model)
        assert len(got) == len(clean), name
        assert pearson(got, clean) > 0.7, name
        assert got.std() > 0.3 * clean.std(), name  # still moves, not flattened


def test_voice_activity_separates_speech_from_silence(clip, model):
    frames = run_samples(np.concatenate([np.zeros(16000, np.float32), clip]), 16000,
                         engine=AudioToExpression(model=model))
    vad = np.array([f.vad for f in frames])
    assert vad[:20].mean() < 0.3  # leading second of silence
    assert vad[25 + 25:25 + 60].mean() > 0.6  # the sentence (GRID speech spans ~1-2.4 s of the clip)
