"""Resizing and GMSRF augmentation (§III-A: flips, random crop/scale, colour jitter), deterministic per sample."""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network at import (offline machines)

import albumentations as A  # noqa: E402
import cv2
import numpy as np
import torch

from polyplib.errors import ConfigError


def build_transform(image_size: int | None = 256, augment: bool = False) -> A.Compose:
    """Albumentations pipeline on RGB uint8 + {0,1} mask; masks use nearest interpolation so they stay binary."""
    if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
        raise ConfigError(f"image_size must be an int >= 8 or None; got {image_size!r}")
    size = [] if image_size is None else [A.Resize(image_size, image_size, interpolation=cv2.INTER_LINEAR,
                                                   mask_interpolation=cv2.INTER_NEAREST)]
    if not augment:
        return A.Compose(size)
    if image_size is None:
        raise ConfigError("augment=True needs an image_size (random crops are resized to it)")
    crop = A.RandomResizedCrop((image_size, image_size), scale=(0.5, 1.0), ratio=(0.75, 4 / 3),
                               mask_interpolation=cv2.INTER_NEAREST)
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.OneOf([crop, *size], p=1.0),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, p=0.5),
    ])


def resize_image(image: np.ndarray, image_size: int | None) -> np.ndarray:
    """An RGB uint8 image resized exactly as an un-augmented sample is (`build_transform`: bilinear)."""
    return build_transform(image_size)(image=image)["image"]


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """An RGB uint8 image [H, W, 3] as models take it: float32 [3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed that depends only on (seed, epoch, index), so workers, resumes and DDP ranks agree."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def apply_transform(transform: A.Compose, image: np.ndarray, mask: np.ndarray,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Run the pipeline with its random state fixed by `seed`."""
    transform.set_random_seed(seed)
    out = transform(image=image, mask=mask)
    return out["image"], out["mask"]
