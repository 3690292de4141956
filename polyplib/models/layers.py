"""Building blocks shared by the GMSRF-Net components and the baselines."""
from __future__ import annotations

import torch
from torch import nn

from polyplib.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicConv2d(nn.Sequential):
    """Conv (no bias) + BatchNorm, no activation: the `BasicConv2d` of PraNet / GMSRF-Net code (notes §1.1)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int | tuple[int, int] = 3,
                 padding: int | tuple[int, int] = 0, dilation: int = 1) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation, bias=False),
                         nn.BatchNorm2d(out_ch))


class InputNorm(nn.Module):
    """Maps [0, 1] RGB to the network's input space: ImageNet mean/std, or identity (`x/255` of the GMSRF code)."""

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def identity_norm() -> InputNorm:
    """The official GMSRF input scaling: pixels/255 only, i.e. identity on [0, 1] input (gmsrf_train.py:69-90)."""
    return InputNorm(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def check_image(x: torch.Tensor, multiple: int, name: str) -> None:
    """Clear ConfigError for a batch that is not [B,3,H,W] with H, W divisible by the network stride."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ConfigError(f"{name} expects images [B,3,H,W] RGB in [0,1]; got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ConfigError(f"{name} needs H and W divisible by {multiple}; got {h}x{w}. Resize or pad the images "
                          f"(e.g. --image-size 256, or image_size=256 in load_dataset).")
