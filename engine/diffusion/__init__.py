"""Per-identity few-step diffusion renderer (docs/design/diffusion.md).

Training (PyTorch) lives in `train`, `distill`, `export`; the product path is
`bundle` + `runtime` + `sampler` (numpy + ONNX Runtime), used by
engine.renderers.diffusion. torch is imported only where a module needs it.
"""
