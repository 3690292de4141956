"""GMSRF module (GMSRF Sec. II-B.2, Eq. 2-3, Fig. 1b): dense layers fusing all four scales at every layer."""
from __future__ import annotations

import torch
from torch import nn

from polyplib.errors import ConfigError
from polyplib.models.cmsa import CMSA
from polyplib.models.layers import BasicConv2d
from polyplib.models.msfs import MSFS

FUSIONS = ("code", "paper")


def resample(in_ch: int, out_ch: int, src: int, dst: int) -> nn.Sequential:
    """Scale `src` -> `dst` by |src-dst| chained stride-2 (transposed) convs k4 p1 + ReLU (notes §1.3)."""
    conv = nn.ConvTranspose2d if dst < src else nn.Conv2d
    layers: list[nn.Module] = []
    for step in range(abs(src - dst)):
        layers += [conv(in_ch if step == 0 else out_ch, out_ch, 4, stride=2, padding=1, bias=False),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class FusionLayer(nn.Module):
    """One dense layer l>=2 of one scale, in the authors' order or in the order of Eq. 2-3.

    `fusion="code"` (official `exchange`): 1x1 BasicConv2d on the concatenation -> x CMSA gate -> MSFS -> 3x3.
    `fusion="paper"` (Eq. 2-3 literally): X_il = Conv3x3(concatenation) (Eq. 2) -> X_il x X_att (Eq. 3) -> MSFS;
    the paper has no 1x1 fusion conv, and its MSFS acts on the layer's output (k channels, or the scale's width at l=L).
    """

    def __init__(self, in_ch: int, fused_ch: int, out_ch: int, resampled_ch: int, cmsa: bool, msfs: bool,
                 fusion: str = "code", cmsa_gate: str = "sigmoid+1") -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ConfigError(f"fusion={fusion!r} is not known; use 'code' (authors' 1x1 -> CMSA -> SE -> 3x3) or "
                              f"'paper' (Eq. 2-3: 3x3 on the concatenation -> CMSA -> SE)")
        self.fusion = fusion
        self.fuse = BasicConv2d(in_ch, fused_ch, 1) if fusion == "code" else None
        self.cmsa = CMSA(3 * resampled_ch, hidden=resampled_ch, gate=cmsa_gate) if cmsa else None
        self.msfs = MSFS(fused_ch if fusion == "code" else out_ch) if msfs else nn.Identity()
        self.conv = BasicConv2d(fused_ch if fusion == "code" else in_ch, out_ch, 3, padding=1)

    def forward(self, dense: list[torch.Tensor], resampled: list[torch.Tensor]) -> torch.Tensor:
        cat = torch.cat(dense + resampled, dim=1)
        if self.fuse is None:  # Eq. 2, then Eq. 3, then MSFS
            out = self.conv(cat)
            return self.msfs(out * self.cmsa(resampled) if self.cmsa is not None else out)
        fused = self.fuse(cat)
        if self.cmsa is not None:
            fused = fused * self.cmsa(resampled)
        return self.conv(self.msfs(fused))


class GMSRFModule(nn.Module):
    """Four scales x `num_layers` densely connected layers with all-scale exchange, plus the module residual.

    Layer 1 is a 3x3 conv to the growth rate; layers 2..L-1 fuse [input, own earlier outputs, the other scales'
    previous outputs resampled to 32 channels] to the scale's width, then grow by k; layer L keeps the concatenated
    width in the 1x1 fusion and maps back to the scale's width (official `exchange`, notes §1.3). The module
    residual X + X_L is in both the paper ("residual connection from the input of the GMSRF module") and the code.
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256), growth: tuple[int, ...] = (32, 32, 64, 64),
                 num_layers: int = 4, resampled_ch: int = 32, cmsa: bool = True, msfs: bool = True,
                 fusion: str = "code", cmsa_gate: str = "sigmoid+1") -> None:
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
                per_scale.append(FusionLayer(in_ch, fused_ch, c if last else g, resampled_ch, cmsa, msfs, fusion,
                                             cmsa_gate))
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
