"""Image/box/mask transforms between the dataset frame and SAM's input frame (SAM §3; Polyp-SAM §2.2 "authors")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from polyplib.errors import ConfigError

PREPROCESS_MODES = ("sam", "authors")


def check_mode(mode: str) -> str:
    """Validate the `preprocess=` option."""
    if mode not in PREPROCESS_MODES:
        raise ConfigError(f"preprocess={mode!r} is not known; use 'sam' (Meta's RGB, mean/std, longest side + pad) "
                          f"or 'authors' (Polyp-SAM notebooks: BGR, [0, 1], stretched square)")
    return mode


def input_size(hw: tuple[int, int], image_size: int, mode: str) -> tuple[int, int]:
    """Size of the resized image inside SAM's square input (ResizeLongestSide for 'sam', the full square otherwise)."""
    if mode == "authors":
        return image_size, image_size
    scale = image_size / max(hw)
    return int(hw[0] * scale + 0.5), int(hw[1] * scale + 0.5)


def preprocess_images(images: torch.Tensor, image_size: int, mode: str, pixel_mean: torch.Tensor,
                      pixel_std: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] RGB in [0,1] -> SAM encoder input [B,3,S,S] ('sam': 0-255 standardised, zero-padded bottom/right)."""
    if mode == "authors":
        stretched = F.interpolate(images, (image_size, image_size), mode="bilinear", align_corners=False)
        return stretched.flip(1)
    h, w = input_size(tuple(images.shape[-2:]), image_size, mode)
    x = images * 255.0
    if (h, w) != tuple(images.shape[-2:]):
        x = F.interpolate(x, (h, w), mode="bilinear", align_corners=False, antialias=True)
    x = (x - pixel_mean.view(1, 3, 1, 1)) / pixel_std.view(1, 3, 1, 1)
    return F.pad(x, (0, image_size - w, 0, image_size - h))


def scale_boxes(boxes: torch.Tensor, hw: tuple[int, int], image_size: int, mode: str) -> torch.Tensor:
    """Boxes [..., 4] (x0, y0, x1, y1) in image pixels -> SAM input frame, consistently with `preprocess_images`."""
    h, w = input_size(hw, image_size, mode)
    scale = boxes.new_tensor([w / hw[1], h / hw[0], w / hw[1], h / hw[0]])
    return boxes * scale


def postprocess_logits(low_res: torch.Tensor, hw: tuple[int, int], image_size: int, mode: str) -> torch.Tensor:
    """Decoder logits [B,1,s,s] -> [B,1,H,W] at image resolution (Sam.postprocess_masks: upsample, crop, resize)."""
    h, w = input_size(hw, image_size, mode)
    x = F.interpolate(low_res, (image_size, image_size), mode="bilinear", align_corners=False)
    return F.interpolate(x[..., :h, :w], hw, mode="bilinear", align_corners=False)
