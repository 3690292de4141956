"""Box prompts from masks (Polyp-SAM §2.3: tight box of all foreground), MedSAM-style jitter, per-component boxes."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from polyplib.data.boxes import jitter_box, mask_to_box, mask_to_boxes
from polyplib.errors import ConfigError


def boxes_from_mask(mask: torch.Tensor | np.ndarray, per_component: bool = False, jitter: float = 0.0,
                    rng: np.random.Generator | None = None, max_boxes: int = 8) -> torch.Tensor:
    """Mask [1,H,W] or [H,W] -> boxes [K,4] (K=1, or `max_boxes` when per component), NaN rows where there is no box."""
    if jitter < 0:
        raise ConfigError(f"box jitter={jitter} must be >= 0 (a fraction of the box size, e.g. 0.1)")
    mask = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask).squeeze() > 0.5
    if per_component:
        found = mask_to_boxes(mask)[:max_boxes]
    else:
        box = mask_to_box(mask)
        found = np.zeros((0, 4), np.float32) if box is None else np.asarray(box, np.float32)[None]
    if jitter > 0 and len(found):
        rng = rng if rng is not None else np.random.default_rng()
        found = np.stack([jitter_box(b, jitter, mask.shape, rng) for b in found])
    out = torch.full((max_boxes if per_component else 1, 4), float("nan"))
    out[: len(found)] = torch.as_tensor(found, dtype=torch.float32)
    return out


class BoxPromptDataset(Dataset):
    """Adds `boxes` from each item's ground-truth mask; jitter is a deterministic function of (seed, epoch, index)."""

    def __init__(self, dataset: Dataset, per_component: bool = False, jitter: float = 0.0, seed: int = 0,
                 max_boxes: int = 8) -> None:
        self.dataset = dataset
        self.per_component = per_component
        self.jitter = jitter
        self.seed = seed
        self.max_boxes = max_boxes
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def pairs(self) -> list:
        """The wrapped dataset's (id, image, mask) pairs (the engine records the split from them)."""
        return self.dataset.pairs

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped dataset and re-draw the jitter."""
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        rng = np.random.default_rng((self.seed, self.epoch, index))
        item["boxes"] = boxes_from_mask(item["mask"], self.per_component, self.jitter, rng, self.max_boxes)
        return item
