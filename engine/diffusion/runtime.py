"""Running the denoiser: ONNX Runtime (TensorRT > CUDA > CPU providers) or PyTorch (CUDA graphs on CUDA).

A runner is a callable `(x_t, t, hint, reference, state) -> x0` on numpy batches.
"Suitable device" (engine.renderers.diffusion): a GPU, i.e. the CUDA or TensorRT
provider of ONNX Runtime or a CUDA device for PyTorch. The CPU runs the same
model ~10-50x slower than real time at the `small` size, so it is used only
when asked for explicitly (device="cpu"), e.g. by tests and benchmarks.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..predictor import PredictorError, resolve_providers
from .bundle import INPUT_NAMES

log = logging.getLogger(__name__)


class NoSuitableDevice(RuntimeError):
    """No GPU for the diffusion renderer and the CPU was not asked for."""


def tensorrt_importable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def gpu_providers(available: list[str]) -> list[str]:
    """The GPU providers to try, best first; TensorRT only when its Python package imports."""
    out = []
    if "TensorrtExecutionProvider" in available:
        if tensorrt_importable():
            out.append("tensorrt")
        else:
            log.warning("TensorRT execution provider present but `tensorrt` is not importable; using CUDA instead")
    if "CUDAExecutionProvider" in available:
        out.append("cuda")
    return out


class OrtRunner:
    """The exported denoiser in an ONNX Runtime session."""

    def __init__(self, onnx_path: Path, device: str = "auto", threads: int = 1, trt_cache: Path | None = None):
        import onnxruntime as ort

        available = ort.get_available_providers()
        want = gpu_providers(available) if device in ("auto", "cuda", "gpu") else []
        if device in ("cuda", "gpu") and not want:
            raise NoSuitableDevice(f"no CUDA execution provider in ONNX Runtime (available: {', '.join(available)})")
        if device == "auto" and not want:
            raise NoSuitableDevice("no GPU execution provider in ONNX Runtime "
                                   f"(available: {', '.join(available)}); pass device='cpu' to run on the CPU")
        names = resolve_providers(want + ["cpu"], available)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        provider_args = []
        for p in names:
            if p == "TensorrtExecutionProvider":
                cache = Path(trt_cache or onnx_path.parent / "trt_cache")
                cache.mkdir(parents=True, exist_ok=True)
                # The engine is built on first use (minutes) and cached beside the bundle for later sessions.
                provider_args.append((p, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                                          "trt_fp16_enable": True}))
            else:
                provider_args.append(p)
        try:
            self._sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=provider_args)
        except Exception as e:  # ORT raises its own exception types for bad models
            raise PredictorError(f"cannot load diffusion denoiser {onnx_path}: {e}") from None
        self.providers = self._sess.get_providers()
        self.name = f"onnxruntime[{self.providers[0]}]"

    def __call__(self, x_t, t, hint, reference, state) -> np.ndarray:
        feed = dict(zip(INPUT_NAMES, (np.ascontiguousarray(v, np.float32) for v in (x_t, t, hint, reference, state))))
        return self._sess.run(None, feed)[0]


class TorchRunner:
    """The PyTorch weights; on CUDA one batch-1 call is captured in a CUDA graph and replayed."""

    def __init__(self, bundle, device: str = "auto"):
        import torch

        from .model import Denoiser, ModelConfig

        if device == "auto":
            if not torch.cuda.is_available():
                raise NoSuitableDevice("PyTorch sees no CUDA device; pass device='cpu' to run on the CPU")
            device = "cuda"
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise NoSuitableDevice("PyTorch sees no CUDA device")
        self._torch = torch
        self.device = torch.device(device)
        model = Denoiser(ModelConfig.from_dict(bundle.model_config))
        model.load_state_dict(torch.load(bundle.torch_path, map_location="cpu"))
        self.model = model.to(self.device).eval()
        self._graph = None
        self.name = f"torch[{self.device.type}{'+cudagraph' if self.device.type == 'cuda' else ''}]"

    def _capture(self, args):
        torch = self._torch
        self._static = [a.clone() for a in args]
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.no_grad():
            for _ in range(3):  # warm-up outside the graph, as CUDA graph capture requires
                self.model(*self._static)
        torch.cuda.current_stream().wait_stream(s)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph), torch.no_grad():
            self._out = self.model(*self._static)

    def __call__(self, x_t, t, hint, reference, state) -> np.ndarray:
        torch = self._torch
        args = [torch.as_tensor(np.ascontiguousarray(v, np.float32)).to(self.device)
                for v in (x_t, t, hint, reference, state)]
        if self.device.type != "cuda" or args[0].shape[0] != 1:
            with torch.no_grad():
                return self.model(*args).cpu().numpy()
        if self._graph is None:
            self._capture(args)
        for s, a in zip(self._static, args):
            s.copy_(a)
        self._graph.replay()
        return self._out.cpu().numpy()


def make_runner(bundle, backend: str = "onnxruntime", device: str = "auto", threads: int = 1):
    """A denoiser runner for a bundle; NoSuitableDevice when device='auto' finds no GPU."""
    if backend == "onnxruntime":
        return OrtRunner(bundle.onnx_path, device=device, threads=threads)
    if backend == "torch":
        return TorchRunner(bundle, device=device)
    raise PredictorError(f"unknown diffusion backend {backend!r}; use onnxruntime or torch")
