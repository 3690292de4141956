"""Comparison baselines of GMSRF Tables I-II: U-Net, U-Net++, DeepLabV3+ (segmentation_models_pytorch)."""
from __future__ import annotations

import torch
from torch import nn

from polyplib.errors import ConfigError, WeightsError
from polyplib.models import hub
from polyplib.models.layers import InputNorm, check_image
from polyplib.models.registry import register_model


class Normalized(nn.Module):
    """[0,1] RGB -> ImageNet-normalised input -> wrapped network (logits [B,1,H,W])."""

    def __init__(self, net: nn.Module, stride: int, name: str) -> None:
        super().__init__()
        self.norm = InputNorm()
        self.net = net
        self.stride = stride
        self.name = name

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_image(image, self.stride, self.name)
        return self.net(self.norm(image))


def _smp(arch: str, name: str, encoder_name: str, encoder_weights: str | None = None, **kwargs) -> Normalized:
    """An smp architecture (imported on first use: smp is slow to import), one output; `encoder_weights="imagenet"`:
    the ImageNet encoder smp downloads into the Hugging Face hub cache (checked first: `hub.verify_cached`)."""
    import segmentation_models_pytorch as smp

    if encoder_weights is not None:
        try:
            repo, revision = hub.smp_source(encoder_name, encoder_weights)
        except KeyError as err:
            raise ConfigError(f"{name}: smp has no {encoder_weights!r} weights for encoder {encoder_name!r}") from err
        hub.verify_cached(repo, revision)
    try:
        net = getattr(smp, arch)(encoder_name=encoder_name, encoder_weights=encoder_weights, in_channels=3, classes=1,
                                 **kwargs)
    except (KeyError, ValueError) as err:
        raise ConfigError(f"{name}: smp cannot build encoder_name={encoder_name!r} with {kwargs}: {err} "
                          "(encoders: segmentation_models_pytorch.encoders.get_encoder_names())") from err
    except Exception as err:  # hub unreachable or file unreadable: the same advice
        if encoder_weights is None:
            raise
        raise WeightsError(f"{name}: could not load smp's {encoder_weights} weights of {encoder_name} from {repo} "
                           f"({type(err).__name__}: {str(err).splitlines()[0][:160]}); on a machine with internet run "
                           f"`polyplib describe {name}` with them once and copy ~/.cache/huggingface/hub here, or "
                           "train with --from-scratch") from None
    return Normalized(net, stride=32, name=name)


@register_model("unet")
def unet(encoder_name: str = "resnet34", encoder_depth: int = 5, encoder_weights: str | None = None) -> Normalized:
    """U-Net (Ronneberger et al. 2015) with a ResNet-34 encoder, smp `Unet`."""
    return _smp("Unet", "unet", encoder_name, encoder_weights, encoder_depth=encoder_depth)


@register_model("unetplusplus")
def unetplusplus(encoder_name: str = "resnet34", encoder_depth: int = 5,
                 encoder_weights: str | None = None) -> Normalized:
    """U-Net++ (Zhou et al. 2018) with a ResNet-34 encoder, smp `UnetPlusPlus`."""
    return _smp("UnetPlusPlus", "unetplusplus", encoder_name, encoder_weights, encoder_depth=encoder_depth)


@register_model("deeplabv3plus")
def deeplabv3plus(encoder_name: str = "resnet50", encoder_output_stride: int = 16,
                  encoder_weights: str | None = None) -> Normalized:
    """DeepLabV3+ (Chen et al. 2018) with a ResNet-50 encoder at output stride 16, smp `DeepLabV3Plus`."""
    return _smp("DeepLabV3Plus", "deeplabv3plus", encoder_name, encoder_weights,
                encoder_output_stride=encoder_output_stride)
