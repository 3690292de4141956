"""Cross multi-scale attention (GMSRF Eq. 1): a one-channel spatial gate in [1, 2] from the other scales."""
from __future__ import annotations

import torch
from torch import nn


class CMSA(nn.Module):
    """sigmoid(Conv1x1(Conv3x3(X_w ⊕ X_y ⊕ X_z))) + 1, convs without bias or activation (notes §1.3)."""

    def __init__(self, in_ch: int, hidden: int = 32) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(in_ch, hidden, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(hidden, 1, 1, bias=False)

    def forward(self, resampled: list[torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(self.conv1(self.conv3(torch.cat(resampled, dim=1)))) + 1.0
