"""Bad or unusual PCM: clear AudioInputError (a ValueError) or handled, never a broken stream."""
from __future__ import annotations

import numpy as np
import pytest

from engine.audio import AudioInputError, AudioToExpression, read_audio_file
from engine.audio.features import logmel, LogMelStream
from engine.audio.resample import StreamResampler, resample

from audio_helpers import speechlike


@pytest.fixture(scope="module")
def model():
    from engine.audio.model import ExpressionModel

    return ExpressionModel()


def coeffs(frames):
    return np.stack([f.state.coeffs for f in frames])


@pytest.mark.parametrize("rate", [0, -16000, 1000, 10**9, 44100.5, "fast", None, float("nan")])
def test_absurd_rates_rejected(model, rate):
    eng = AudioToExpression(model=model)
    with pytest.raises(AudioInputError):
        eng.push(np.zeros(160, np.float32), rate)
    assert eng.push(np.zeros(1600, np.float32), 16000) is not None  # stream still usable


@pytest.mark.parametrize("pcm", [np.array(["a", "b"]), np.zeros(4, complex), np.zeros(4, bool),
                                 np.array([None, 1.0], dtype=object), np.zeros((2, 3, 4), np.float32),
                                 np.float32(0.5), b"\x00\x01", np.zeros(4, np.uint16)])
def test_wrong_dtype_or_shape_rejected(model, pcm):
    with pytest.raises(AudioInputError):
        AudioToExpression(model=model).push(pcm, 16000)


def test_error_is_a_value_error():
    assert issubclass(AudioInputError, ValueError)


def test_nonfinite_samples_are_zeroed(model):
    x = speechlike(1.0)
    bad = x.copy()
    bad[100:200] = np.nan
    bad[5000] = np.inf
    bad[6000] = -np.inf
    eng = AudioToExpression(model=model)
    frames = eng.push(bad, 16000) + eng.flush()
    assert eng.nonfinite_samples == 102
    c = coeffs(frames)
    assert np.isfinite(c).all() and len(frames) == 25


def test_empty_chunks(model):
    eng = AudioToExpression(model=model)
    assert eng.push(np.zeros(0, np.float32), 16000) == []
    assert eng.push(np.zeros((0, 2), np.int16), 16000) == []
    assert eng.flush() == []  # nothing heard: no frames


def test_int16_stereo_equals_float_mono(model):
    x = speechlike(1.0)
    i16 = np.round(x * 32767).astype(np.int16)
    ref = AudioToExpression(model=model)
    a = ref.push(i16.astype(np.float32) / 32768, 16000) + ref.flush()
    for pcm, ch in ((np.stack([i16, i16], 1), None), (np.stack([i16, i16], 0), None),
                    (np.stack([i16, i16], 1).reshape(-1), 2)):
        eng = AudioToExpression(model=model)
        b = eng.push(pcm, 16000, channels=ch) + eng.flush()
        np.testing.assert_allclose(coeffs(a), coeffs(b), atol=1e-5)


def test_sample_rate_change_and_push_after_flush(model):
    eng = AudioToExpression(model=model)
    eng.push(np.zeros(480, np.float32), 48000)
    with pytest.raises(AudioInputError):
        eng.push(np.zeros(160, np.float32), 16000)
    eng.push(np.zeros(480, np.float32), 48000)
    eng.flush()
    with pytest.raises(AudioInputError):
        eng.push(np.zeros(480, np.float32), 48000)
    eng.reset()
    assert isinstance(eng.push(np.zeros(16000, np.float32), 16000), list)


def test_bad_files(tmp_path):
    with pytest.raises(AudioInputError):
        read_audio_file(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wav file" * 10)
    with pytest.raises(AudioInputError):
        read_audio_file(junk)
    with pytest.raises(AudioInputError, match="empty"):
        read_audio_file("")
    with pytest.raises(AudioInputError, match="directory"):
        read_audio_file(tmp_path)


def test_wav_roundtrip(tmp_path):
    from scipy.io import wavfile

    x = speechlike(0.5)
    wavfile.write(tmp_path / "a.wav", 22050, np.round(x * 32767).astype(np.int16))
    y, sr = read_audio_file(tmp_path / "a.wav")
    assert sr == 22050 and y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=1e-3)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_resampler_chunk_invariant_and_accurate(rate):
    t = np.arange(rate) / rate
    x = np.sin(2 * np.pi * 440 * t)
    y = resample(x, rate)
    assert y.size == 16000
    ref = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(y - ref)[100:-100].max() < 1e-3
    r, parts, i = StreamResampler(rate), [], 0
    for n in np.random.default_rng(rate).integers(0, 500, 10_000):
        parts.append(r.push(x[i:i + n]))
        i += n
        if i >= x.size:
            break
    parts.append(r.flush())
    np.testing.assert_allclose(np.concatenate(parts), y, atol=1e-6)


def test_logmel_chunk_invariant():
    x = speechlike(1.0)
    ref = logmel(x)
    s, parts = LogMelStream(), []
    for i in range(0, x.size, 333):
        parts.append(s.push(x[i:i + 333]))
    parts.append(s.pad_and_flush())
    np.testing.assert_allclose(np.concatenate(parts), ref, atol=1e-5)
    assert ref.shape == (100, 40)
