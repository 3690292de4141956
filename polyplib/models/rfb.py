"""Receptive Field Block of PraNet, used by GMSRF-Net to reduce encoder channels (GMSRF Sec. II-B.1, notes §1.2)."""
from __future__ import annotations

import torch
from torch import nn

from polyplib.models.layers import BasicConv2d


def _branch(in_ch: int, out_ch: int, k: int) -> nn.Sequential:
    """1x1 -> (1xk) -> (kx1) -> 3x3 with dilation k."""
    return nn.Sequential(
        BasicConv2d(in_ch, out_ch, 1),
        BasicConv2d(out_ch, out_ch, (1, k), padding=(0, k // 2)),
        BasicConv2d(out_ch, out_ch, (k, 1), padding=(k // 2, 0)),
        BasicConv2d(out_ch, out_ch, 3, padding=k, dilation=k),
    )


class RFB(nn.Module):
    """Four branches (1x1; k=3,5,7 separable + dilated 3x3), 3x3 fusion, 1x1 shortcut, ReLU of the sum."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList([BasicConv2d(in_ch, out_ch, 1)] + [_branch(in_ch, out_ch, k) for k in (3, 5, 7)])
        self.conv_cat = BasicConv2d(4 * out_ch, out_ch, 3, padding=1)
        self.conv_res = BasicConv2d(in_ch, out_ch, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.conv_cat(torch.cat([b(x) for b in self.branches], dim=1))
        return self.relu(fused + self.conv_res(x))
