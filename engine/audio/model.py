"""The shipped audio->expression model: loading it through the Predictor seam and stepping it.

The product runs `engine/assets/audio_expression.onnx` with ONNX Runtime; the
PyTorch weights beside it are for tests (ONNX vs PyTorch) and fine-tuning.
The ONNX metadata carries what the runtime needs (delay, state sizes, outputs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..predictor import Predictor, create_predictor
from .features import LOG_FLOOR, N_MELS
from .spec import N_OUT, SPEECH_COEFFS

ASSETS = Path(__file__).resolve().parents[1] / "assets"
ONNX_PATH = ASSETS / "audio_expression.onnx"
WEIGHTS_PATH = ASSETS / "audio_expression.pt"
INPUT_NAMES = ("feats", "feat_state", "hid_state")
OUTPUT_NAMES = ("out", "feat_state_out", "hid_state_out")


def model_metadata(net) -> dict[str, str]:
    return {"delay": str(net.delay), "channels": str(net.channels), "hid_len": str(net.hid_len),
            "feat_state_len": "2", "n_mels": str(N_MELS), "speech_coeffs": ",".join(SPEECH_COEFFS),
            "frame_rate": "100", "dilations": ",".join(map(str, net.dilations))}


def load_torch_net(path: str | Path = WEIGHTS_PATH):
    import torch

    from .net import ExpressionNet

    ck = torch.load(str(path), map_location="cpu", weights_only=True)
    cfg = ck["config"]
    net = ExpressionNet(channels=cfg["channels"], dilations=tuple(cfg["dilations"]), delay=cfg["delay"])
    net.load_state_dict(ck["state_dict"])
    return net.eval()


def torch_predictor(path: str | Path = WEIGHTS_PATH) -> Predictor:
    net = load_torch_net(path)
    return create_predictor("torch", module=net, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                            metadata=model_metadata(net))


def onnx_predictor(path: str | Path = ONNX_PATH, providers: Sequence[str] | str = ("cpu",), threads: int = 1) -> Predictor:
    return create_predictor("onnxruntime", model_path=path, providers=providers, threads=threads)


class ExpressionModel:
    """Stateful stepping of the network: feed log-mel frames, get one output row per frame.

    Row i of the output of the n-th frame fed describes frame n - delay.
    """

    def __init__(self, predictor: Predictor | None = None):
        self.predictor = predictor if predictor is not None else onnx_predictor()
        md = self.predictor.metadata
        try:
            self.delay = int(md["delay"])
            self.channels = int(md["channels"])
            self.hid_len = int(md["hid_len"])
            self.feat_state_len = int(md["feat_state_len"])
        except (KeyError, ValueError) as e:
            raise ValueError(f"model metadata incomplete ({e}); re-export the model") from None
        if md.get("speech_coeffs", ",".join(SPEECH_COEFFS)) != ",".join(SPEECH_COEFFS):
            raise ValueError("model outputs a different coefficient list than engine.audio.spec")
        self.reset()

    def reset(self) -> None:
        self._feat_state = np.full((1, self.feat_state_len, N_MELS), np.log(LOG_FLOOR), np.float32)
        self._hid_state = np.zeros((1, self.channels, self.hid_len), np.float32)

    def step(self, feats: np.ndarray) -> np.ndarray:
        """(T, N_MELS) log-mel frames -> (T, N_OUT) raw outputs (coefficients, voice-activity logit)."""
        if feats.shape[0] == 0:
            return np.zeros((0, N_OUT), np.float32)
        out = self.predictor.run({"feats": feats[None].astype(np.float32), "feat_state": self._feat_state,
                                  "hid_state": self._hid_state})
        self._feat_state, self._hid_state = out["feat_state_out"], out["hid_state_out"]
        return out["out"][0]
