"""Image/box/mask transforms between the dataset frame and SAM's input frame (SAM §3; Polyp-SAM §2.2 "authors").

Both modes take the *original* image (the Polyp-SAM trainer and evaluation feed original resolution) and resize it
the way the reference code does, on the uint8 pixels: `sam` as `SamPredictor.set_image` (segment_anything's
`ResizeLongestSide.apply_image`, then `Sam.preprocess`: mean/std, zero padding bottom/right), `authors` as the
Polyp-SAM notebooks' `ColonDataset` (the same longest-side resize, then `cv2.resize` to a square, which stretches,
BGR, [0, 1], no mean/std). Images already at the frame size are not resampled.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

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


def _uint8(image: torch.Tensor) -> np.ndarray:
    """[3,H,W] RGB in [0,1] -> HWC uint8 (exact for images decoded from 8-bit files)."""
    return (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def resize_like_reference(images: torch.Tensor, image_size: int, mode: str) -> torch.Tensor:
    """[B,3,H,W] in [0,1] -> [B,3,h,w] in 0-255 resized as SamPredictor (`sam`) or the notebooks (`authors`)."""
    h, w = input_size(tuple(images.shape[-2:]), image_size, mode)
    if (h, w) == tuple(images.shape[-2:]):
        return images * 255.0
    resize = ResizeLongestSide(image_size)
    out = []
    for image in images:
        array = resize.apply_image(_uint8(image))  # PIL bilinear to the longest side, as SamPredictor.set_image
        if mode == "authors":  # cv2.resize(img, (1024, 1024), cv2.INTER_CUBIC): 3rd arg is dst -> bilinear
            array = cv2.resize(array, (image_size, image_size), interpolation=cv2.INTER_LINEAR)
        out.append(torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1))
    return torch.stack(out).to(images.device, torch.float32)


def preprocess_images(images: torch.Tensor, image_size: int, mode: str, pixel_mean: torch.Tensor,
                      pixel_std: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] RGB in [0,1] -> SAM encoder input [B,3,S,S] ('sam': 0-255 standardised, zero-padded bottom/right;
    'authors': BGR in [0, 1], stretched, not standardised)."""
    x = resize_like_reference(images, image_size, mode)
    if mode == "authors":
        return x.flip(1) / 255.0
    h, w = x.shape[-2:]
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
