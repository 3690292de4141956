"""Polyp-SAM protocol (evaluate_all.ipynb, notes §2.4): MONAI `DiceMetric` and `MeanIoU` on [1,H,W] tensors."""
from __future__ import annotations

import torch

from polyplib.metrics.common import as_pair

MONAI_KEYS = ("monaiDice", "monaiIoU")


def monai_metrics(prob, gt, threshold: float = 0.5) -> dict[str, float]:
    """MONAI DiceMetric() / MeanIoU() of `prob > threshold` vs gt, both [1,H,W], as the Polyp-SAM notebooks call them.

    MONAI reads [1,H,W] as one item with H channels, so each image row is scored on its own and the image's score is
    the mean over the rows; with MONAI's defaults (`ignore_empty=True`) a row without ground truth is NaN and left out
    of the mean (a false positive there costs nothing), and an image whose ground truth is empty aggregates to 0, which
    the notebooks then average with the others. Computed by MONAI itself, one image per call as the notebooks do.
    """
    from monai.metrics import DiceMetric, MeanIoU

    prob, gt = as_pair(prob, gt)
    pred = torch.from_numpy(prob > threshold).float()[None]
    target = torch.from_numpy(gt).float()[None]
    out = {}
    for key, metric in zip(MONAI_KEYS, (DiceMetric(), MeanIoU())):
        metric(pred, target)
        out[key] = float(metric.aggregate().reshape(-1)[0])
    return out


def rowwise_dice(prob, gt, threshold: float = 0.5) -> float:
    """Polyp-SAM's printed Dice of one image: `monai_metrics(...)["monaiDice"]`."""
    return monai_metrics(prob, gt, threshold)["monaiDice"]
