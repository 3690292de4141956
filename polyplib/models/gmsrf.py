"""GMSRF-Net (Srivastava et al., ICPR 2022): encoder + RFB, GMSRF modules, vanilla decoder (Sec. II-B, Fig. 1a)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from polyplib.errors import ConfigError
from polyplib.models.decoder import GMSRFDecoder, resize_logits
from polyplib.models.encoders import FeaturesEncoder, StemBypassEncoder, create_backbone
from polyplib.models.gmsrf_module import GMSRFModule
from polyplib.models.layers import BasicConv2d, InputNorm, check_image, identity_norm
from polyplib.models.registry import register_model
from polyplib.models.rfb import RFB

# variant -> default timm backbone, stride of the coarsest scale (input sides must divide by it), side-output resize
VARIANTS = {
    "official": dict(backbone="res2net50d", stride=8, upsample="nearest"),
    "paper": dict(backbone="resnet50", stride=32, upsample="bilinear"),
}


class GMSRFNet(nn.Module):
    """Image [B,3,H,W] in [0,1] -> logits [B,1,H,W]; in training with deep supervision (D1, D2, D3, D4)."""

    def __init__(self, encoder: nn.Module, reducers: nn.ModuleList, norm: InputNorm,
                 channels: tuple[int, ...] = (32, 64, 128, 256), growth: tuple[int, ...] = (32, 32, 64, 64),
                 num_modules: int = 2, cmsa: bool = True, msfs: bool = True, deep_supervision: bool = True,
                 stride: int = 8, upsample: str = "nearest", resampled_ch: int = 32, fusion: str = "code",
                 cmsa_gate: str = "sigmoid+1") -> None:
        super().__init__()
        self.norm = norm
        self.encoder = encoder
        self.reducers = reducers
        self.gmsrf = nn.ModuleList([GMSRFModule(channels, growth, resampled_ch=resampled_ch, cmsa=cmsa, msfs=msfs,
                                                 fusion=fusion, cmsa_gate=cmsa_gate) for _ in range(num_modules)])
        self.decoder = GMSRFDecoder(channels, deep_supervision=deep_supervision)
        self.deep_supervision = deep_supervision
        self.stride = stride
        self.upsample = upsample

    def outputs(self, image: torch.Tensor) -> list[torch.Tensor]:
        """[D1, D2, D3, D4] logits at input size (D1 only without deep supervision), in the current mode."""
        check_image(image, self.stride, "GMSRF-Net")
        feats = [reduce(f) for reduce, f in zip(self.reducers, self.encoder(self.norm(image)))]
        fused = feats
        for module in self.gmsrf:
            fused = module(fused)
        if self.gmsrf:
            fused = [f + x for f, x in zip(fused, feats)]  # global residual: the authors' code only (notes §1.4)
        return [resize_logits(o, image.shape[-2:], self.upsample) for o in self.decoder(fused)]

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outputs = self.outputs(image)
        if self.training and self.deep_supervision:
            return tuple(outputs)
        return outputs[0]


@register_model("gmsrf")
def gmsrf(variant: str = "paper", pretrained: bool = False, pretrained_file: str | Path | None = None,
          backbone: str | None = None, cmsa: bool = True, msfs: bool = True, num_modules: int = 2,
          deep_supervision: bool = True, width: float = 1.0, fusion: str = "code",
          cmsa_gate: str = "sigmoid+1") -> GMSRFNet:
    """GMSRF-Net (Sec. II-B). `paper` (default): timm ResNet-50 with its stem (scales H/4..H/32), RFB on all four
    scales (Sec. II-B.1), ImageNet normalisation, bilinear upsampling. `official`: the authors' network
    (NoviceMAn-prog/GMSRFNet model.py): Res2Net-50 v1b 26w4s (timm `res2net50d`: average pooling before the 1x1 of
    each downsampling shortcut, unlike timm's `res2net50_26w_4s` with strided 1x1 shortcuts), stem bypassed by one
    stride-1 3x3 conv (scales H..H/8), layer1 reduced by a 1x1 conv, no input normalisation, nearest side-output
    upsampling; `load_authors_state_dict` maps the authors' weights onto it by name.

    Code vs paper, in both variants unless an option says otherwise: CMSA is sigmoid(.)+1 in [1, 2] (Eq. 1 has no
    activation: `cmsa_gate="linear"`); each fusion layer is 1x1 -> CMSA gate -> MSFS -> 3x3 (Eq. 2-3: a 3x3 on the
    concatenation, then the gate, then MSFS: `fusion="paper"`); the global residual after the last module
    is the code's (the paper names only the module residual). Widths 32/64/128/256 and growth 32/32/64/64 are the
    code's; `width` scales them (a smoke-profile knob, not in the paper; 1.0 is the paper's network)."""
    if variant not in VARIANTS:
        raise ConfigError(f"variant={variant!r} is not known; choose one of {sorted(VARIANTS)}")
    if not isinstance(num_modules, int) or num_modules < 0:
        raise ConfigError(f"num_modules={num_modules!r} must be an integer >= 0 (the paper uses 2)")
    if not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise ConfigError(f"width={width!r} must be a number in (0, 1] (1.0 is the paper's network)")
    cfg = VARIANTS[variant]
    name = backbone or cfg["backbone"]
    channels = scale_widths((32, 64, 128, 256), width)
    growth = scale_widths((32, 32, 64, 64), width)
    (resampled,) = scale_widths((32,), width)
    if variant == "official":
        net = create_backbone(name, pretrained=pretrained, pretrained_file=pretrained_file)
        encoder = StemBypassEncoder(net, stem=BasicConv2d(3, net.feature_info[0]["num_chs"], 3, padding=1))
        enc_ch = encoder.channels
        reducers = [BasicConv2d(enc_ch[0], channels[0], 1)] + [RFB(i, o) for i, o in zip(enc_ch[1:], channels[1:])]
        norm = identity_norm()
    else:
        encoder = FeaturesEncoder(create_backbone(name, pretrained=pretrained, pretrained_file=pretrained_file,
                                                  features_only=True, out_indices=(1, 2, 3, 4)))
        reducers = [RFB(i, o) for i, o in zip(encoder.channels, channels)]
        norm = InputNorm()
    return GMSRFNet(encoder, nn.ModuleList(reducers), norm, channels, growth, num_modules=num_modules, cmsa=cmsa,
                    msfs=msfs, deep_supervision=deep_supervision, stride=cfg["stride"], upsample=cfg["upsample"],
                    resampled_ch=resampled, fusion=fusion, cmsa_gate=cmsa_gate)


def scale_widths(widths: tuple[int, ...], width: float) -> tuple[int, ...]:
    """Channel counts times `width`, rounded to multiples of 8 (at least 8: MSFS reduces by r=8)."""
    return tuple(max(8, int(round(c * width / 8)) * 8) for c in widths)
