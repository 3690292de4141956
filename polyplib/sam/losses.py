"""Polyp-SAM's loss as the notebooks call it: MONAI `DiceLoss` on sigmoid probabilities (paper §2.4, notes §2.4)."""
from __future__ import annotations

from typing import Callable

import torch

from polyplib.errors import ConfigError


def monai_dice_loss(rowwise: bool = True, smooth: float = 1e-5) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """MONAI DiceLoss(sigmoid=True, smooth_nr=smooth_dr=smooth) on logits [B,1,H,W], mean over the batch.

    `rowwise=True` is the notebooks' call `DiceLoss()(prob[0], gt.unsqueeze(0))` on [1,H,W] tensors: MONAI reads the H
    rows as channels, so each image's loss is the mean of H row Dice losses. `rowwise=False` passes [B,1,H,W]: one
    Dice per image.
    """
    from monai.losses import DiceLoss

    if not isinstance(rowwise, bool):
        raise ConfigError(f"loss 'monai-dice' option rowwise={rowwise!r} must be true or false")
    dice = DiceLoss(sigmoid=True, smooth_nr=smooth, smooth_dr=smooth)

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape != target.shape or logits.dim() != 4 or logits.shape[1] != 1:
            raise ConfigError(f"loss 'monai-dice' expects logits and target [B,1,H,W]; got {tuple(logits.shape)} "
                              f"and {tuple(target.shape)}")
        logits, target = logits.float(), target.float()
        return dice(logits[:, 0], target[:, 0]) if rowwise else dice(logits, target)  # [B,H,W]: B images, H rows

    return loss
