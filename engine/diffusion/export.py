"""ONNX export of the denoiser (dynamic batch), checked against PyTorch on random inputs."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .bundle import write_meta
from .hint import HINT_VERSION
from .model import INPUT_NAMES, OUTPUT_NAMES, Denoiser

OPSET = 17


def example_inputs(model: Denoiser, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    r, c = model.cfg.res, model.cfg.cond_dim
    img = lambda: torch.rand(batch, 3, r, r, generator=g) * 2 - 1  # noqa: E731
    return (torch.randn(batch, 3, r, r, generator=g), torch.rand(batch, generator=g), img(), img(),
            torch.rand(batch, c, generator=g))


def export_onnx(model: Denoiser, path: Path) -> Path:
    model = model.eval()
    axes = {n: {0: "batch"} for n in INPUT_NAMES + OUTPUT_NAMES}
    with torch.no_grad(), warnings.catch_warnings():
        # The skip-connection size check is traced as a constant: the resolution is fixed per model.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, example_inputs(model), str(path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return path


def max_abs_diff(model: Denoiser, onnx_path: Path, batch: int = 2, seed: int = 1) -> float:
    """Largest |ONNX Runtime - PyTorch| on random inputs (the export check)."""
    import onnxruntime as ort

    ins = example_inputs(model, batch, seed)
    with torch.no_grad():
        ref = model.eval()(*ins).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {n: x.numpy() for n, x in zip(INPUT_NAMES, ins)})[0]
    return float(np.abs(out - ref).max())


def save_bundle(out: Path, model: Denoiser, box, mouth, reference: np.ndarray, steps: int = 4, seed: int = 0,
                extra: dict | None = None) -> dict:
    """Write the model files of a bundle (docs/design/diffusion.md) into `out`, whose avatar/ is already there."""
    from PIL import Image

    out = Path(out)
    export_onnx(model, out / "denoiser.onnx")
    diff = max_abs_diff(model, out / "denoiser.onnx")
    torch.save(model.state_dict(), out / "denoiser.pt")
    Image.fromarray(reference).save(out / "reference.png")
    meta = {
        "model": model.cfg.to_dict(), "crop": box.to_dict(), "mouth_box": list(mouth),
        "sampling": {"steps": int(steps), "seed": int(seed), "schedule": "cosine", "prediction": "x0",
                     "sampler": "ddim", "identity_mix": 1.0, "identity_mix_steps": 0},
        "onnx_max_abs_diff_vs_torch": diff, "avatar": "avatar", "hint": HINT_VERSION, **(extra or {}),
    }
    write_meta(out, meta)
    return meta
