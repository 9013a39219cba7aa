"""AudioToExpression: chunking invariance, frame timing, look-ahead, silence stillness, speech-only coefficients."""
from __future__ import annotations

from math import ceil

import numpy as np
import pytest

from engine.audio import AudioToExpression, run_samples
from engine.audio.spec import SPEECH_INDEX
from engine.types import NUM_COEFFS

from audio_helpers import speechlike


@pytest.fixture(scope="module")
def model():
    # One ONNX session for the module; every AudioToExpression resets its state.
    from engine.audio.model import ExpressionModel

    return ExpressionModel()


def offline(x, sr, model, fps=25):
    eng = AudioToExpression(fps=fps, model=model)
    return eng.push(x, sr) + eng.flush()


@pytest.mark.parametrize("sr", [16000, 44100])
@pytest.mark.parametrize("chunk_ms", [10, 20, 37])
def test_streaming_equals_offline(model, sr, chunk_ms):
    from scipy.signal import resample_poly

    x = speechlike(3.0)
    if sr != 16000:
        x = resample_poly(x, 441, 160).astype(np.float32)
    ref = offline(x, sr, model)
    got = run_samples(x, sr, chunk_ms=chunk_ms, engine=AudioToExpression(model=model))
    assert len(got) == len(ref) == 75
    for a, b in zip(ref, got):
        assert a.t == b.t
        np.testing.assert_allclose(a.state.coeffs, b.state.coeffs, atol=1e-4)
        assert abs(a.vad - b.vad) < 1e-4


def test_irregular_chunks_and_30fps(model):
    x = speechlike(2.0, seed=3)
    ref = offline(x, 16000, model, fps=30)
    eng = AudioToExpression(fps=30, model=model)
    rng = np.random.default_rng(1)
    got, i = [], 0
    while i < x.size:
        n = int(rng.integers(0, 900))  # includes empty chunks
        got += eng.push(x[i:i + n], 16000)
        i += n
    got += eng.flush()
    assert len(got) == len(ref) == 60
    assert max(np.abs(a.state.coeffs - b.state.coeffs).max() for a, b in zip(ref, got)) < 1e-4


def test_frame_times_and_count(model):
    for seconds, fps in ((1.0, 25), (1.01, 25), (0.5, 30)):
        frames = offline(np.zeros(int(seconds * 48000), np.float32), 48000, model, fps=fps)
        assert len(frames) == ceil(seconds * fps - 1e-9)
        assert [f.t for f in frames] == pytest.approx([k / fps for k in range(len(frames))])


def test_frames_become_final_within_lookahead(model):
    eng = AudioToExpression(model=model)
    assert eng.lookahead_ms <= 80
    x = speechlike(1.0)
    got = []
    for i in range(0, x.size, 160):
        got += eng.push(x[i:i + 160], 16000)
        heard = (i + 160) / 16000
        if got:  # every frame older than the look-ahead is out
            assert got[-1].t >= heard - eng.lookahead_ms / 1000 - 1 / 25 - 1e-9
            assert got[-1].t <= heard - eng.lookahead_ms / 1000 + 1e-9
    with pytest.raises(ValueError):
        AudioToExpression(model=model, max_lookahead_ms=20)


def test_only_speech_coefficients_move(model):
    frames = offline(speechlike(2.0), 16000, model)
    others = np.setdiff1d(np.arange(NUM_COEFFS), SPEECH_INDEX)
    c = np.stack([f.state.coeffs for f in frames])
    assert np.all(c[:, others] == 0)
    assert c[:, list(SPEECH_INDEX)].max() > 0.05  # speech does open the mouth
    assert all(0.0 <= f.vad <= 1.0 for f in frames)


@pytest.mark.parametrize("level_db", [None, -70.0, -50.0])
def test_silence_is_still_and_closed(model, level_db):
    rng = np.random.default_rng(0)
    x = np.zeros(3 * 16000, np.float32)
    if level_db is not None:
        x = (rng.standard_normal(x.size) * 10 ** (level_db / 20)).astype(np.float32)
    eng = AudioToExpression(model=model)
    frames = eng.push(x, 16000) + eng.flush()
    c = np.stack([f.state.coeffs for f in frames])
    assert np.abs(np.diff(c, axis=0)).max() <= eng.max_silence_step + 1e-6
    assert c[10:].max() < 0.02  # closed after the first few frames
    assert np.mean([f.vad for f in frames]) < 0.5


def test_mouth_relaxes_after_speech(model):
    x = np.concatenate([speechlike(1.6), np.zeros(32000, np.float32)])
    eng = AudioToExpression(model=model)
    frames = eng.push(x, 16000) + eng.flush()
    c = np.stack([f.state.coeffs for f in frames])
    quiet = [k for k, f in enumerate(frames) if f.t > 1.9]
    steps = np.abs(np.diff(c[quiet[0] - 1:], axis=0)).max(axis=1)
    assert steps.max() <= eng.max_silence_step + 1e-6  # no quivering, bounded speed
    assert c[quiet[-10:]].max() < 1e-6  # ends closed and still


def test_articulation_scales_speech_coefficients(model):
    x = speechlike(2.0)
    base = offline(x, 16000, model)
    eng = AudioToExpression(model=model, articulation=1.5)
    big = eng.push(x, 16000) + eng.flush()
    a = np.stack([f.state.coeffs for f in base])
    b = np.stack([f.state.coeffs for f in big])
    speaking = np.array([f.vad >= eng.silence_on for f in base])  # certainly in the speaking state
    assert speaking.sum() > 10
    np.testing.assert_allclose(b[speaking], np.minimum(a[speaking] * 1.5, 1.0), atol=1e-5)
    with pytest.raises(ValueError):
        AudioToExpression(model=model, articulation=-1)
