"""Box prompts from masks (Polyp-SAM §2.3: tight box of the ground truth; per-component and jittered variants)."""
from __future__ import annotations

import cv2
import numpy as np

from polyplib.errors import ConfigError


def _as_bool_mask(mask: np.ndarray) -> np.ndarray:
    """[H, W] or [1, H, W] array/tensor -> boolean [H, W] (floats: > 0.5, integers: > 0)."""
    array = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ConfigError(f"mask must be [H, W] or [1, H, W]; got shape {array.shape}")
    return array > 0.5 if array.dtype.kind == "f" else array > 0


def mask_to_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight xyxy box of all foreground (Polyp-SAM §2.3, authors' `extract_bboxes`); x1/y1 exclusive; None if empty."""
    fg = _as_bool_mask(mask)
    cols, rows = np.flatnonzero(fg.any(axis=0)), np.flatnonzero(fg.any(axis=1))
    if cols.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def mask_to_boxes(mask: np.ndarray) -> np.ndarray:
    """One tight xyxy box per 8-connected foreground component, sorted by area (largest first): [K, 4]."""
    fg = _as_bool_mask(mask).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    stats = stats[1:]
    stats = stats[np.argsort(-stats[:, cv2.CC_STAT_AREA], kind="stable")]
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    boxes = np.stack([x, y, x + stats[:, cv2.CC_STAT_WIDTH], y + stats[:, cv2.CC_STAT_HEIGHT]], axis=1)
    return boxes.astype(np.float32).reshape(count - 1, 4)


def jitter_box(box: np.ndarray, fraction: float, image_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Move each side by up to `fraction` x box size (MedSAM-style prompt noise); inside the image, >= 1 px wide."""
    if fraction < 0:
        raise ConfigError(f"jitter fraction must be >= 0; got {fraction}")
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    height, width = image_hw
    w, h = x1 - x0, y1 - y0
    dx0, dy0, dx1, dy1 = rng.uniform(-fraction, fraction, size=4) * np.array([w, h, w, h])
    x0, x1 = np.clip([x0 + dx0, x1 + dx1], 0, width)
    y0, y1 = np.clip([y0 + dy0, y1 + dy1], 0, height)
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    x1, y1 = max(x1, min(x0 + 1, width)), max(y1, min(y0 + 1, height))
    x0, y0 = min(x0, x1 - 1), min(y0, y1 - 1)
    return np.array([x0, y0, x1, y1], dtype=np.float32)
