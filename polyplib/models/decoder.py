"""Vanilla decoder of GMSRF-Net (Eq. 4) with deep supervision at every level (Sec. II-B.3, notes §1.4)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from polyplib.models.layers import BasicConv2d


class GMSRFDecoder(nn.Module):
    """D_i = Conv3x3(TransConv(D_{i+1}) ⊕ X_i), D_4 = X_4; 1x1 side outputs on D_4..D_2; D_1 -> two BasicConv2d.

    No non-linearity anywhere, as in the official code. Returns logits at the finest feature scale for D_1 and at
    each level's scale for D_2..D_4 (the network resizes them to the input).
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256), deep_supervision: bool = True) -> None:
        super().__init__()
        self.up = nn.ModuleList([nn.ConvTranspose2d(channels[i + 1], channels[i], 4, stride=2, padding=1)
                                 for i in range(len(channels) - 1)])
        self.select = nn.ModuleList([nn.Conv2d(2 * c, c, 3, padding=1, bias=False) for c in channels[1:-1]])
        self.head = nn.Sequential(BasicConv2d(2 * channels[0], channels[0], 3, padding=1),
                                  BasicConv2d(channels[0], 1, 3, padding=1))
        self.side = nn.ModuleList([nn.Conv2d(c, 1, 1) for c in channels[1:]]) if deep_supervision else None

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """feats X_1..X_4 (fine to coarse) -> [D_1, D_2, D_3, D_4] logits (only D_1 without deep supervision)."""
        d = feats[-1]
        levels = [d]
        for i in range(len(feats) - 2, 0, -1):
            d = self.select[i - 1](torch.cat([feats[i], self.up[i](d)], dim=1))
            levels.insert(0, d)
        main = self.head(torch.cat([feats[0], self.up[0](d)], dim=1))
        if self.side is None:
            return [main]
        return [main] + [side(level) for side, level in zip(self.side, levels)]


def resize_logits(logits: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Upscale a side output to the ground-truth size (Sec. II-B.3); `nearest` as the official nn.Upsample."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
