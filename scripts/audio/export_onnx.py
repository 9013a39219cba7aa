"""Export the trained weights to ONNX (with streaming state inputs and metadata) and check parity.

    .venv/bin/python scripts/audio/export_onnx.py [--weights engine/assets/audio_expression.pt]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from engine.audio.model import (INPUT_NAMES, ONNX_PATH, OUTPUT_NAMES, WEIGHTS_PATH, load_torch_net,  # noqa: E402
                                model_metadata, onnx_predictor, torch_predictor)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(WEIGHTS_PATH))
    ap.add_argument("--out", default=str(ONNX_PATH))
    args = ap.parse_args()
    import onnx

    net = load_torch_net(args.weights)
    fs, hs = net.initial_state(1)
    x = torch.randn(1, 16, fs.shape[-1]) * 2 - 6
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "m.onnx"
        torch.onnx.export(net, (x, fs, hs), str(raw), input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes={"feats": {1: "T"}, "out": {1: "T"}}, opset_version=17, dynamo=False)
        m = onnx.load(str(raw))
    for k, v in model_metadata(net).items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.doc_string = "emolive causal audio->expression net (see docs/design/audio-model.md)"
    onnx.checker.check_model(m)
    onnx.save(m, args.out)
    # parity on random features, streamed in two chunks through both predictors
    rng = np.random.default_rng(0)
    f = (rng.standard_normal((1, 120, fs.shape[-1])) * 2 - 6).astype(np.float32)
    err = 0.0
    a, b = onnx_predictor(args.out), torch_predictor(args.weights)
    sa = {"feat_state": fs.numpy(), "hid_state": hs.numpy()}
    sb = dict(sa)
    for lo, hi in ((0, 37), (37, 120)):
        oa = a.run({"feats": f[:, lo:hi], **sa})
        ob = b.run({"feats": f[:, lo:hi], **sb})
        err = max(err, float(np.abs(oa["out"] - ob["out"]).max()))
        sa = {"feat_state": oa["feat_state_out"], "hid_state": oa["hid_state_out"]}
        sb = {"feat_state": ob["feat_state_out"], "hid_state": ob["hid_state_out"]}
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out} ({size / 1e6:.2f} MB); max |onnx - torch| = {err:.2e}")


if __name__ == "__main__":
    main()
