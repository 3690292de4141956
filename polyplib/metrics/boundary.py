"""The report card's boundary and size columns (Maier-Hein et al. 2024, "Metrics reloaded"): HD95 and normalised
surface distance by MONAI, and the ground-truth polyp area. Computed at the frame's original resolution, with distances
in percent of the frame's diagonal, so frames of any size (Kvasir-SEG 332x487 to 1920x1072) are on one scale."""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from polyplib.metrics.common import as_pair

REPORT_KEYS = ("hd95", "nsd", "area", "pred_empty")
NSD_TOLERANCE = 1.0  # percent of the frame diagonal (7.6 px on a 574x500 CVC-ColonDB frame)
SIZE_BINS = (0.0, 0.05, 0.15, 1.0)  # polyp area as a fraction of the frame: small < 5 % <= medium < 15 % <= large
SIZE_NAMES = ("small", "medium", "large")


def boundary_metrics(prob, gt, threshold: float = 0.5, tolerance: float = NSD_TOLERANCE) -> dict[str, float]:
    """HD95 and NSD (MONAI `compute_hausdorff_distance` percentile 95, `compute_surface_dice` at `tolerance`) of
    `prob > threshold` against gt, in percent of the frame diagonal; `area` = ground-truth fraction of the frame;
    `pred_empty` = 1 when nothing is predicted. HD95 is NaN when either mask is empty (no boundary to measure);
    NSD is NaN when both are empty, 0 when only one is."""
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    prob, gt = as_pair(prob, gt)
    pred = prob > threshold
    h, w = gt.shape
    spacing = 100.0 / math.hypot(h, w)
    out = {"area": float(gt.mean()), "pred_empty": float(not pred.any())}
    if not gt.any() and not pred.any():
        return {"hd95": float("nan"), "nsd": float("nan"), **out}
    if not gt.any() or not pred.any():
        return {"hd95": float("nan"), "nsd": 0.0, **out}
    y_pred = torch.from_numpy(pred)[None, None].float()
    y = torch.from_numpy(gt)[None, None].float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=spacing)
        nsd = compute_surface_dice(y_pred, y, class_thresholds=[tolerance], include_background=True, spacing=spacing)
    return {"hd95": float(hd95.reshape(-1)[0]), "nsd": float(nsd.reshape(-1)[0]), **out}


def size_class(area: float) -> str:
    """`small`, `medium` or `large` by the ground-truth area fraction (`SIZE_BINS`); `empty` without a polyp."""
    if not np.isfinite(area) or area <= 0:
        return "empty"
    return SIZE_NAMES[min(int(np.searchsorted(SIZE_BINS, area, side="right")) - 1, len(SIZE_NAMES) - 1)]
