"""Every registered Predictor implementation honours the same contract (run on the shipped audio model)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from engine.predictor import PredictorError, available_predictors, create_predictor, resolve_providers


def _onnx():
    from engine.audio.model import onnx_predictor

    return onnx_predictor()


def _torch():
    pytest.importorskip("torch")
    from engine.audio.model import torch_predictor

    return torch_predictor()


FACTORIES = {"onnxruntime": _onnx, "torch": _torch}


def test_every_implementation_is_covered():
    assert set(available_predictors()) <= set(FACTORIES), "add new predictors to FACTORIES"


def inputs(p, t=7):
    from engine.audio.model import ExpressionModel

    m = ExpressionModel(p)
    rng = np.random.default_rng(0)
    return {"feats": (rng.standard_normal((1, t, 40)) - 5).astype(np.float32),
            "feat_state": m._feat_state.copy(), "hid_state": m._hid_state.copy()}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_contract(name):
    p = FACTORIES[name]()
    assert p.name == name
    assert isinstance(p.input_names, tuple) and isinstance(p.output_names, tuple)
    x = inputs(p)
    out = p.run(x)
    assert list(out) == list(p.output_names)
    for v in out.values():
        assert isinstance(v, np.ndarray) and v.dtype == np.float32 and np.isfinite(v).all()
    again = p.run({k: v.copy() for k, v in x.items()})
    for k in out:
        np.testing.assert_array_equal(out[k], again[k])  # deterministic, inputs not mutated
    with pytest.raises(PredictorError):
        p.run({k: v for k, v in x.items() if k != "feats"})
    with pytest.raises(PredictorError):
        p.run({**x, "bogus": np.zeros(1, np.float32)})
    with pytest.raises(PredictorError):
        p.run({**x, "feats": np.zeros((1, 7, 3), np.float32)})  # wrong feature width
    assert "delay" in p.metadata
    p.close()


def test_providers_fall_back_with_a_message(caplog):
    with caplog.at_level(logging.WARNING):
        got = resolve_providers(["tensorrt", "cuda", "cpu"], ["CPUExecutionProvider"])
    assert got == ["CPUExecutionProvider"]
    assert "TensorrtExecutionProvider" in caplog.text and "CUDAExecutionProvider" in caplog.text
    assert resolve_providers("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == \
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(PredictorError):
        resolve_providers(["tpu9000"], ["CPUExecutionProvider"])


def test_unknown_predictor_and_missing_model(tmp_path):
    with pytest.raises(PredictorError):
        create_predictor("no-such-runtime")
    with pytest.raises(PredictorError):
        create_predictor("onnxruntime", model_path=tmp_path / "missing.onnx")


def test_gpu_config_runs_here():
    from engine.audio.model import onnx_predictor

    p = onnx_predictor(providers=["tensorrt", "cuda", "cpu"])
    assert p.providers[-1] == "CPUExecutionProvider"
    assert p.run(inputs(p))["out"].shape[1] == 7
