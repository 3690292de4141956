"""Input checks shared by the metric protocols, and the mean over images."""
from __future__ import annotations

import numpy as np
import torch

from polyplib.errors import DataError


def as_pair(prob, gt) -> tuple[np.ndarray, np.ndarray]:
    """prob [H,W] (or [1,H,W]) in [0,1] -> float64; gt {0,1}/bool -> bool; shapes must match."""
    prob, gt = (np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a) for a in (prob, gt))
    prob, gt = (a[0] if a.ndim == 3 and a.shape[0] == 1 else a for a in (prob, gt))
    if prob.ndim != 2 or prob.shape != gt.shape:
        raise DataError(f"metrics need prob and gt of the same shape [H,W]; got {prob.shape} and {gt.shape} "
                        f"(resize the prediction to the ground-truth size first)")
    prob = prob.astype(np.float64)
    if not np.isfinite(prob).all() or prob.min() < 0 or prob.max() > 1:
        raise DataError("prob must be probabilities in [0,1] (apply a sigmoid to logits first); "
                        f"got range [{np.nanmin(prob):.3g}, {np.nanmax(prob):.3g}]")
    if gt.dtype != bool:
        if not np.isin(gt, (0, 1)).all():
            raise DataError("gt must be a binary mask (bool or {0,1}); binarise it first (e.g. gt > 127 for 8-bit)")
        gt = gt.astype(bool)
    return prob, gt


def safe_ratio(num: np.ndarray | float, den: np.ndarray | float, zero_division: float) -> np.ndarray:
    """num/den with `zero_division` where den == 0 (sklearn semantics)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1), zero_division)


CURVE_KEYS = {"dice": "Dice", "iou": "IoU", "em": "Em", "sen": "Sen", "spe": "Spe"}  # curve -> name in meanX/maxX


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _nanmean_curve(curves: list[np.ndarray]) -> np.ndarray:
    """Mean per threshold over the images that have a score (NaN where none has)."""
    stacked = np.asarray(curves, dtype=np.float64)
    scored = (~np.isnan(stacked)).sum(axis=0)
    return np.where(scored > 0, np.nansum(stacked, axis=0) / np.maximum(scored, 1), np.nan)


def aggregate(results: list[dict]) -> dict:
    """Mean over images of every scalar (NaN = undefined for that image, skipped); curves (`curves` key of
    pranet_metrics) are averaged per threshold and `maxX` is recomputed as the max of the mean curve, as the
    PraNet toolbox does per dataset (notes §3.1)."""
    if not results:
        raise DataError("aggregate() got no per-image results (is the dataset empty?)")
    keys = [k for k in results[0] if k != "curves"]
    out = {k: _nanmean([r[k] for r in results]) for k in keys}
    if "curves" in results[0]:
        curves = {name: _nanmean_curve([r["curves"][name] for r in results]) for name in results[0]["curves"]}
        for name, curve in curves.items():
            out[f"max{CURVE_KEYS[name]}"] = float(curve.max())
        out["curves"] = curves
    return out

