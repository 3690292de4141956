"""Polyp-SAM's printed Dice (notes §2.4): MONAI `DiceMetric` on [1,H,W] tensors, i.e. a mean of row-wise Dice."""
from __future__ import annotations

import numpy as np

from polyplib.metrics.common import as_pair


def rowwise_dice(prob, gt, threshold: float = 0.5) -> float:
    """Mean over the rows that contain ground truth of each row's Dice of `prob > threshold`.

    MONAI reads [1,H,W] as batch 1 with H channels, so each image row is scored on its own and rows with empty GT
    are NaN (`ignore_empty=True`) and skipped. An image with empty GT returns NaN (skipped by `aggregate`).
    """
    prob, gt = as_pair(prob, gt)
    pred = prob > threshold
    rows = gt.any(axis=1)
    if not rows.any():
        return float("nan")
    tp = (pred & gt)[rows].sum(axis=1)
    return float(np.mean(2 * tp / (pred[rows].sum(axis=1) + gt[rows].sum(axis=1))))
