"""The model-runner seam: a `Predictor` maps named numpy inputs to named numpy outputs.

Implementations register a factory by name (`onnxruntime`, `torch`); engine code
asks for one with `create_predictor(name, ...)` and never imports a runtime
directly, so the audio model here and a later diffusion renderer can change
backends by configuration. ONNX Runtime picks execution providers from config
("cpu", "cuda", "tensorrt", in order of preference) and falls back to the next
available one with a clear warning.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)


class PredictorError(RuntimeError):
    """A predictor cannot be created, or its inputs do not match the model."""


@runtime_checkable
class Predictor(Protocol):
    name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    metadata: Mapping[str, str]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model once; every declared input must be given, every output is returned."""
        ...

    def close(self) -> None:
        ...


_REGISTRY: dict[str, Callable[..., Predictor]] = {}


def register_predictor(name: str):
    def deco(factory: Callable[..., Predictor]):
        _REGISTRY[name] = factory
        return factory
    return deco


def available_predictors() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def create_predictor(name: str, **kwargs) -> Predictor:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise PredictorError(f"unknown predictor {name!r}; available: {', '.join(available_predictors())}") from None
    return factory(**kwargs)


def _check_inputs(inputs: Mapping[str, np.ndarray], names: Sequence[str]) -> None:
    missing = [n for n in names if n not in inputs]
    extra = [n for n in inputs if n not in names]
    if missing or extra:
        raise PredictorError(f"model inputs are {list(names)}; missing {missing}, unexpected {extra}")


# ----------------------------------------------------------------------------- ONNX Runtime

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def resolve_providers(requested: Sequence[str] | str, available: Sequence[str]) -> list[str]:
    """Map config names to ORT providers present here; unavailable ones are dropped with a warning.

    CPU is always appended as the last resort, so a GPU config still runs on a CPU-only machine.
    """
    if isinstance(requested, str):
        requested = [p.strip() for p in requested.split(",") if p.strip()]
    out: list[str] = []
    for r in requested:
        full = PROVIDER_ALIASES.get(r.lower(), r)
        if full not in PROVIDER_ALIASES.values() and full not in available:
            raise PredictorError(f"unknown execution provider {r!r}; use one of {', '.join(PROVIDER_ALIASES)}")
        if full in available:
            if full not in out:
                out.append(full)
        else:
            log.warning("ONNX Runtime execution provider %s is not available here (available: %s); falling back",
                        full, ", ".join(available))
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
    return out


@register_predictor("onnxruntime")
class OnnxPredictor:
    name = "onnxruntime"

    def __init__(self, model_path: str | Path, providers: Sequence[str] | str = ("cpu",), threads: int = 1):
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise PredictorError(f"ONNX model not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.providers = resolve_providers(providers, ort.get_available_providers())
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
        except Exception as e:  # ORT raises its own exception types for bad models
            raise PredictorError(f"cannot load ONNX model {path}: {e}") from None
        self.providers = self._sess.get_providers()
        self.input_names = tuple(i.name for i in self._sess.get_inputs())
        self.output_names = tuple(o.name for o in self._sess.get_outputs())
        self.metadata = dict(self._sess.get_modelmeta().custom_metadata_map)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _check_inputs(inputs, self.input_names)
        feed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        try:
            outs = self._sess.run(list(self.output_names), feed)
        except Exception as e:
            raise PredictorError(f"ONNX Runtime failed: {e}") from None
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        self._sess = None


# ----------------------------------------------------------------------------- PyTorch

@register_predictor("torch")
class TorchPredictor:
    """Runs an nn.Module whose forward takes the inputs positionally and returns a tuple of outputs."""

    name = "torch"

    def __init__(self, module, input_names: Sequence[str], output_names: Sequence[str],
                 device: str = "cpu", metadata: Mapping[str, str] | None = None):
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)
        self.metadata = dict(metadata or {})

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _check_inputs(inputs, self.input_names)
        torch = self._torch
        args = [torch.as_tensor(np.asarray(inputs[n], np.float32), device=self.device) for n in self.input_names]
        try:
            with torch.no_grad():
                outs = self.module(*args)
        except RuntimeError as e:  # shape mismatches surface as RuntimeError in torch
            raise PredictorError(f"torch model failed: {e}") from None
        if not isinstance(outs, (tuple, list)):
            outs = (outs,)
        if len(outs) != len(self.output_names):
            raise PredictorError(f"model returned {len(outs)} outputs, expected {len(self.output_names)}")
        return {n: o.detach().cpu().numpy().astype(np.float32) for n, o in zip(self.output_names, outs)}

    def close(self) -> None:
        self.module = None
