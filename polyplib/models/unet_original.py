"""The original U-Net (Ronneberger et al., MICCAI 2015), written small: smp has no plain U-Net encoder."""
from __future__ import annotations

import torch
from torch import nn

from polyplib.models.layers import check_image
from polyplib.models.registry import register_model


def double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two 3x3 conv + ReLU (padded, so the output keeps the input size; the 2015 paper used valid convs)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True))


class UNetOriginal(nn.Module):
    """Contracting path (max-pool 2x2, channels doubling), expanding path (2x2 up-conv, skip concat), 1x1 head."""

    def __init__(self, base_channels: int = 64, depth: int = 4) -> None:
        super().__init__()
        widths = [base_channels * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([double_conv(3, widths[0])] +
                                  [double_conv(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth)])
        self.fuse = nn.ModuleList([double_conv(2 * widths[i], widths[i]) for i in range(depth)])
        self.head = nn.Conv2d(widths[0], 1, 1)
        self.pool = nn.MaxPool2d(2)
        self.stride = 2 ** depth

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_image(image, self.stride, "unet-original")
        skips = []
        x = image
        for i, block in enumerate(self.down):
            x = block(self.pool(x) if i else x)
            skips.append(x)
        for up, fuse, skip in zip(reversed(self.up), reversed(self.fuse), reversed(skips[:-1])):
            x = fuse(torch.cat([skip, up(x)], dim=1))
        return self.head(x)


@register_model("unet-original")
def unet_original(base_channels: int = 64, depth: int = 4) -> UNetOriginal:
    """Ronneberger U-Net, 64..1024 channels, input as given in [0,1] (the 2015 paper has no normalisation layer)."""
    return UNetOriginal(base_channels, depth)
