"""Multi-scale feature selection (GMSRF Sec. II-B.2): squeeze-and-excitation on the fused features, r=8."""
from __future__ import annotations

import torch
from torch import nn


class MSFS(nn.Module):
    """GAP -> Linear(c, c/r) -> ReLU -> Linear(c/r, c) -> sigmoid -> channel scaling; linears without bias."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = channels // reduction
        self.fc = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc(x.mean(dim=(2, 3))))
        return x * gate[:, :, None, None]
