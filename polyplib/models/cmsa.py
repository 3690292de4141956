"""Cross multi-scale attention (GMSRF Eq. 1): a one-channel spatial gate from the other scales' resampled maps."""
from __future__ import annotations

import torch
from torch import nn

from polyplib.errors import ConfigError

CMSA_GATES = ("sigmoid+1", "linear")


class CMSA(nn.Module):
    """Conv1x1(Conv3x3(X_w ⊕ X_y ⊕ X_z)), convs without bias or activation (Eq. 1), then the gate activation.

    `gate="sigmoid+1"` (default) is the authors' code (`form_attention_map`: sigmoid, then +1, a map in [1, 2] that
    amplifies, never suppresses); Eq. 1 of the paper has no activation at all, which is `gate="linear"`.
    """

    def __init__(self, in_ch: int, hidden: int = 32, gate: str = "sigmoid+1") -> None:
        super().__init__()
        if gate not in CMSA_GATES:
            raise ConfigError(f"cmsa_gate={gate!r} is not known; use 'sigmoid+1' (authors' code) or 'linear' (Eq. 1)")
        self.conv3 = nn.Conv2d(in_ch, hidden, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(hidden, 1, 1, bias=False)
        self.gate = gate

    def forward(self, resampled: list[torch.Tensor]) -> torch.Tensor:
        att = self.conv1(self.conv3(torch.cat(resampled, dim=1)))
        return torch.sigmoid(att) + 1.0 if self.gate == "sigmoid+1" else att
