"""GMSRF module (GMSRF Sec. II-B.2, Eq. 2-3, Fig. 1b): dense layers fusing all four scales at every layer."""
from __future__ import annotations

import torch
from torch import nn

from polyplib.models.cmsa import CMSA
from polyplib.models.layers import BasicConv2d
from polyplib.models.msfs import MSFS


def resample(in_ch: int, out_ch: int, src: int, dst: int) -> nn.Sequential:
    """Scale `src` -> `dst` by |src-dst| chained stride-2 (transposed) convs k4 p1 + ReLU (notes §1.3)."""
    conv = nn.ConvTranspose2d if dst < src else nn.Conv2d
    layers: list[nn.Module] = []
    for step in range(abs(src - dst)):
        layers += [conv(in_ch if step == 0 else out_ch, out_ch, 4, stride=2, padding=1, bias=False),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class FusionLayer(nn.Module):
    """One dense layer l>=2 of one scale: 1x1 fusion (Eq. 2) x CMSA gate (Eq. 3) -> MSFS -> 3x3 conv."""

    def __init__(self, in_ch: int, fused_ch: int, out_ch: int, resampled_ch: int, cmsa: bool, msfs: bool) -> None:
        super().__init__()
        self.fuse = BasicConv2d(in_ch, fused_ch, 1)
        self.cmsa = CMSA(3 * resampled_ch, hidden=resampled_ch) if cmsa else None
        self.msfs = MSFS(fused_ch) if msfs else nn.Identity()
        self.conv = BasicConv2d(fused_ch, out_ch, 3, padding=1)

    def forward(self, dense: list[torch.Tensor], resampled: list[torch.Tensor]) -> torch.Tensor:
        fused = self.fuse(torch.cat(dense + resampled, dim=1))
        if self.cmsa is not None:
            fused = fused * self.cmsa(resampled)
        return self.conv(self.msfs(fused))


class GMSRFModule(nn.Module):
    """Four scales x `num_layers` densely connected layers with all-scale exchange, plus the module residual.

    Layer 1 is a 3x3 conv to the growth rate; layers 2..L-1 fuse [input, own earlier outputs, the other scales'
    previous outputs resampled to 32 channels] to the scale's width, then grow by k; layer L keeps the concatenated
    width in the 1x1 fusion and maps back to the scale's width (official `exchange`, notes §1.3).
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256), growth: tuple[int, ...] = (32, 32, 64, 64),
                 num_layers: int = 4, resampled_ch: int = 32, cmsa: bool = True, msfs: bool = True) -> None:
        super().__init__()
        n = len(channels)
        self.first = nn.ModuleList([BasicConv2d(c, g, 3, padding=1) for c, g in zip(channels, growth)])
        self.resamplers = nn.ModuleList()
        self.layers = nn.ModuleList()
        for layer in range(2, num_layers + 1):
            last = layer == num_layers
            self.resamplers.append(nn.ModuleDict({
                f"{src}_{dst}": resample(growth[src], resampled_ch, src, dst)
                for dst in range(n) for src in range(n) if src != dst}))
            per_scale = nn.ModuleList()
            for c, g in zip(channels, growth):
                in_ch = c + (layer - 1) * g + (n - 1) * resampled_ch
                fused_ch = in_ch if last else c
                per_scale.append(FusionLayer(in_ch, fused_ch, c if last else g, resampled_ch, cmsa, msfs))
            self.layers.append(per_scale)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(feats)
        dense = [[f, conv(f)] for f, conv in zip(feats, self.first)]
        for resamplers, per_scale in zip(self.resamplers, self.layers):
            prev = [d[-1] for d in dense]
            outs = [layer(dense[dst], [resamplers[f"{src}_{dst}"](prev[src]) for src in range(n) if src != dst])
                    for dst, layer in enumerate(per_scale)]
            for d, o in zip(dense, outs):
                d.append(o)
        return [f + d[-1] for f, d in zip(feats, dense)]
