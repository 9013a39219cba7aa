"""The shipped model: ONNX matches the PyTorch weights, metadata is complete, files are small."""
from __future__ import annotations

import numpy as np
import pytest

from engine.audio.model import ONNX_PATH, WEIGHTS_PATH, ExpressionModel, onnx_predictor
from engine.audio.features import logmel
from engine.audio.spec import N_OUT, SPEECH_COEFFS

from audio_helpers import speechlike


def test_assets_small():
    assert ONNX_PATH.stat().st_size < 10e6 and WEIGHTS_PATH.stat().st_size < 10e6


def test_metadata():
    md = onnx_predictor().metadata
    assert md["speech_coeffs"].split(",") == list(SPEECH_COEFFS)
    assert 0 <= int(md["delay"]) <= 6


def test_onnx_matches_pytorch_streamed():
    pytest.importorskip("torch")
    from engine.audio.model import torch_predictor

    f = logmel(speechlike(2.0))
    a, b = ExpressionModel(onnx_predictor()), ExpressionModel(torch_predictor())
    for lo, hi in ((0, 1), (1, 64), (64, 200)):
        ya, yb = a.step(f[lo:hi]), b.step(f[lo:hi])
        assert ya.shape == yb.shape == (hi - lo, N_OUT)
        np.testing.assert_allclose(ya, yb, atol=1e-4)
