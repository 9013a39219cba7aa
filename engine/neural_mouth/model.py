"""The neural mouth generator (PyTorch, for training and export; the renderer runs its ONNX file).

A small U-Net on the RES x RES lower-face crop: its input is the meshwarp frame's
crop and the target's lip masks (crop.network_input), its output the crop as it
should look. It predicts a change to its input (the photo's own skin and light
pass through untouched unless the network alters them), bounded by a tanh.
Encoders downsample from the first layer and one full-resolution branch keeps
the pixel grid, so a 96 px pass costs ~2.5 ms on one core (docs/design/neural-mouth.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .crop import CHANNELS, RES

INPUT_NAME, OUTPUT_NAME = "x", "y"


@dataclass(frozen=True)
class MouthNetConfig:
    res: int = RES
    widths: tuple[int, int, int, int] = (16, 32, 48, 64)
    full: int = 8  # channels of the full-resolution branch

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "MouthNetConfig":
        return cls(res=int(d["res"]), widths=tuple(int(w) for w in d["widths"]), full=int(d["full"]))


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2))


class MouthNet(nn.Module):
    def __init__(self, cfg: MouthNetConfig = MouthNetConfig()):
        super().__init__()
        self.cfg = cfg
        a, b, c, d = cfg.widths
        self.full = _conv(CHANNELS, cfg.full)
        self.e1 = nn.Sequential(_conv(CHANNELS, a, 2), _conv(a, a))
        self.e2 = nn.Sequential(_conv(a, b, 2), _conv(b, b))
        self.e3 = nn.Sequential(_conv(b, c, 2), _conv(c, c))
        self.e4 = nn.Sequential(_conv(c, d, 2), _conv(d, d), _conv(d, d))
        self.d3, self.d2, self.d1 = _conv(d + c, c), _conv(c + b, b), _conv(b + a, a)
        self.head = nn.Conv2d(a, 12, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(2)
        self.out = nn.Conv2d(cfg.full + 3, 3, 3, 1, 1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        nn.init.zeros_(self.out.weight)  # starts as the identity: the meshwarp crop unchanged
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.full(x)
        e1 = self.e1(x)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        e4 = self.e4(e3)
        y = self.d3(torch.cat([self.up(e4), e3], 1))
        y = self.d2(torch.cat([self.up(y), e2], 1))
        y = self.d1(torch.cat([self.up(y), e1], 1))
        y = self.shuffle(self.head(y))
        delta = 2.0 * torch.tanh(self.out(torch.cat([f, y], 1)))
        return torch.clamp(x[:, :3] + delta, -1.0, 1.0)


def export_onnx(model: MouthNet, path) -> None:
    """Fixed batch of one (the renderer draws one frame at a time); opset 17 runs on CPU, CUDA and TensorRT."""
    import warnings

    model = model.eval()
    x = torch.zeros(1, CHANNELS, model.cfg.res, model.cfg.res)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=17, dynamo=False)
