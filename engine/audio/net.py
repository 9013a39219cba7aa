"""The small causal audio->expression network (PyTorch definition, for training and export).

A dilated causal temporal-conv net over 10 ms log-mel frames (receptive field
1.28 s). Streaming state is explicit: `feat_state` holds the last raw feature
frames and `hid_state` the last inputs of every dilated layer, so a chunked
call equals one long call and the ONNX export can be streamed. The output at
step n describes step n - delay (the look-ahead). The runtime uses ONNX.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .features import LOG_FLOOR, N_MELS
from .spec import N_OUT

KERNEL = 3


class ExpressionNet(nn.Module):
    def __init__(self, channels: int = 96, dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32), delay: int = 6):
        super().__init__()
        self.channels, self.dilations, self.delay = channels, tuple(dilations), delay
        self.register_buffer("feat_mean", torch.zeros(N_MELS))
        self.register_buffer("feat_std", torch.ones(N_MELS))
        self.inp = nn.Conv1d(N_MELS, channels, KERNEL)
        self.dil = nn.ModuleList(nn.Conv1d(channels, channels, KERNEL, dilation=d) for d in self.dilations)
        self.mix = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in self.dilations)
        self.head = nn.Conv1d(channels, N_OUT, 1)
        self.spans = [(KERNEL - 1) * d for d in self.dilations]

    @property
    def hid_len(self) -> int:
        return sum(self.spans)

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        # Before the stream starts the audio is digital silence: its log-mel is log(LOG_FLOOR).
        feat = torch.full((batch, KERNEL - 1, N_MELS), float(np.log(LOG_FLOOR)))
        return feat, torch.zeros(batch, self.channels, self.hid_len)

    def forward(self, feats: torch.Tensor, feat_state: torch.Tensor, hid_state: torch.Tensor, hidden: bool = False):
        """feats (B, T, N_MELS) raw log-mel -> out (B, T, N_OUT), new feat_state, new hid_state
        (and, with `hidden`, the last layer's features (B, C, T), for training-only heads)."""
        x = torch.cat([feat_state, feats], dim=1)
        new_feat = x[:, -(KERNEL - 1):, :]
        z = ((x - self.feat_mean) / self.feat_std).transpose(1, 2)
        h = torch.relu(self.inp(z))  # (B, C, T)
        new_hid = []
        off = 0
        for conv, mix, span in zip(self.dil, self.mix, self.spans):
            xin = torch.cat([hid_state[:, :, off:off + span], h], dim=2)
            new_hid.append(xin[:, :, -span:])
            h = h + mix(torch.relu(conv(xin)))
            off += span
        out = self.head(torch.relu(h)).transpose(1, 2)
        if hidden:
            return out, new_feat, torch.cat(new_hid, dim=2), torch.relu(h)
        return out, new_feat, torch.cat(new_hid, dim=2)
