"""GMSRF protocol (GMSRF Sec. III, notes §1.6): per-image DSC, IoU, recall, precision of `prob > 0.5`."""
from __future__ import annotations

import numpy as np

from polyplib.metrics.common import as_pair, safe_ratio


def gmsrf_metrics(prob, gt, threshold: float = 0.5, zero_division: float = 0.0) -> dict[str, float]:
    """sklearn f1/jaccard/recall/precision on the flattened binary maps (pred = prob > threshold).

    A ratio 0/0 takes `zero_division` (sklearn's value 0 by default, as in gmsrf_test.py): empty GT and empty
    prediction -> every score 0; empty GT only -> dice = iou = precision = 0, recall undefined -> 0;
    empty prediction only -> dice = iou = recall = 0, precision undefined -> 0.
    """
    prob, gt = as_pair(prob, gt)
    pred = prob > threshold
    tp = float(np.count_nonzero(pred & gt))
    n_pred, n_gt = float(pred.sum()), float(gt.sum())
    return {
        "dice": float(safe_ratio(2 * tp, n_pred + n_gt, zero_division)),
        "iou": float(safe_ratio(tp, n_pred + n_gt - tp, zero_division)),
        "recall": float(safe_ratio(tp, n_gt, zero_division)),
        "precision": float(safe_ratio(tp, n_pred, zero_division)),
    }
