"""timm backbones for GMSRF-Net: ImageNet weights from the hub or from a local file, with actionable errors."""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from polyplib.errors import ConfigError, WeightsError
from polyplib.models import hub


def create_backbone(name: str, pretrained: bool = False, pretrained_file: str | Path | None = None,
                    **kwargs) -> nn.Module:
    """`timm.create_model(name, pretrained=..., **kwargs)`; `pretrained_file` loads a local timm state_dict offline."""
    if not timm.is_model(name):
        raise ConfigError(f"backbone={name!r} is not a timm model; see timm.list_models('res*net*')")
    if pretrained_file is not None:
        path = Path(pretrained_file)
        if not path.is_file():
            raise WeightsError(f"pretrained_file {path} does not exist; place the timm ImageNet weights of {name!r} "
                               f"there (.pth/.safetensors state_dict), or pass pretrained=False")
        kwargs["pretrained_cfg_overlay"] = dict(file=str(path))
        pretrained = True
    elif pretrained and (repo := hub.timm_repo(name)):
        hub.verify_cached(repo)
    try:
        net = timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as err:  # hub unreachable, corrupt file, mismatching keys: all actionable the same way
        if not pretrained:
            raise
        source = pretrained_file or f"the Hugging Face hub (timm/{name})"
        raise WeightsError(
            f"could not load ImageNet weights for {name!r} from {source}: {err}. Download the timm weights on a "
            f"machine with internet (timm.create_model({name!r}, pretrained=True) caches them under "
            f"~/.cache/huggingface), then pass pretrained_file=<path to the state_dict>, or use pretrained=False"
        ) from err
    if not pretrained:  # BN weight 1 / bias 0 everywhere, as the authors' Res2Net (timm zeroes each block's last BN)
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
    return net


class StemBypassEncoder(nn.Module):
    """Official GMSRF encoder: one stride-1 3x3 BasicConv2d replaces the stem; stages 1-4 give scales H..H/8."""

    def __init__(self, backbone: nn.Module, stem: nn.Module) -> None:
        super().__init__()
        names = [info["module"] for info in getattr(backbone, "feature_info", [])][1:]
        if names != ["layer1", "layer2", "layer3", "layer4"]:
            raise ConfigError(f"the official GMSRF variant needs a ResNet-style timm backbone with layer1..layer4; "
                              f"{type(backbone).__name__} has {names or 'no feature_info'}")
        self.stem = stem
        self.stages = nn.ModuleList([getattr(backbone, name) for name in names])
        self.channels = [info["num_chs"] for info in backbone.feature_info[1:]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class FeaturesEncoder(nn.Module):
    """Paper GMSRF encoder: timm `features_only` with the standard stem, scales H/4..H/32."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.channels = backbone.feature_info.channels()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone(x)
