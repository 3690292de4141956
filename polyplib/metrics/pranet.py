"""PraNet protocol (MATLAB toolbox of DengPingFan/PraNet, notes §3.1): 256-threshold Dice/IoU, Sm, wFm, Em, MAE."""
from __future__ import annotations

import numpy as np
from py_sod_metrics import Smeasure, WeightedFmeasure

from polyplib.metrics.common import CURVE_KEYS, as_pair, safe_ratio

THRESHOLDS = np.linspace(1.0, 0.0, 256)  # MATLAB 1:-1/255:0
TIE_TOL = 1e-9  # `pred >= t` with ties up to float error counted as >= (t = k/255 is not exact in binary)
EPS = np.finfo(np.float64).eps
MIN_EM_PIXELS = 2  # the toolbox's E-measure divides by N-1: a single pixel has no score


def matlab_round(x: float) -> int:
    """MATLAB `round`: halves away from zero (numpy rounds halves to even)."""
    return int(np.floor(x + 0.5))


class MatlabSmeasure(Smeasure):
    """PySODMetrics S-measure with the region split of StructureMeasure.m: X = round(1-based centroid column).

    PySODMetrics rounds the 0-based centroid half-to-even and adds 1, which moves the split when the centroid
    falls on a half (e.g. a mask filling the two left columns of a 4-wide map). Empty quadrants (weight 0) are skipped.
    """

    def region(self, pred: np.ndarray, gt: np.ndarray) -> float:
        h, w = gt.shape
        rows, cols = np.nonzero(gt)
        x, y = matlab_round(cols.mean() + 1), matlab_round(rows.mean() + 1)
        quadrants = [(slice(0, y), slice(0, x)), (slice(0, y), slice(x, w)),
                     (slice(y, h), slice(0, x)), (slice(y, h), slice(x, w))]
        score = 0.0
        for r, c in quadrants:
            if gt[r, c].size:
                score += self.ssim(pred[r, c], gt[r, c]) * gt[r, c].size / gt.size
        return score


def normalize_map(prob: np.ndarray, quantize: bool = True) -> np.ndarray:
    """As saved and read back by the toolbox: 8-bit PNG (`quantize`), then per-image min-max to [0,1] (`mapminmax`).

    A constant map is left as it is (MATLAB's behaviour there is unverified; PySODMetrics does the same).
    """
    pred = np.round(prob * 255) / 255 if quantize else prob
    lo, hi = pred.min(), pred.max()
    return (pred - lo) / (hi - lo) if hi > lo else pred


def threshold_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted positives P(t) and true positives TP(t) of `pred >= t` for the 256 thresholds, by sorting."""
    t = THRESHOLDS - TIE_TOL
    n_pos = pred.size - np.searchsorted(np.sort(pred, axis=None), t, side="left")
    tp = int(gt.sum()) - np.searchsorted(np.sort(pred[gt]), t, side="left")
    return n_pos.astype(np.float64), tp.astype(np.float64)


def enhanced_alignment(n_pos: np.ndarray, tp: np.ndarray, n_gt: float, n: float) -> np.ndarray:
    """E-measure of binary maps from their counts (Enhancedmeasure.m): Σ((align+1)^2/4) / (N-1+eps), at most 1.

    The toolbox divides by N-1 where Fan et al. (IJCAI 2018, Eq. 6) take the mean over the N pixels, a score in
    [0, 1]; the two differ by a factor N/(N-1), which lets near-perfect alignment exceed 1 (by up to 1/(N-1): 4/3 on a
    2x2 image, 1.5e-5 at 256x256) and divides by eps on a single pixel. So the score is capped at 1 and an image of
    fewer than `MIN_EM_PIXELS` pixels is too small to score (NaN)."""
    if n < MIN_EM_PIXELS:
        return np.full(n_pos.shape, np.nan)
    if n_gt == 0:
        total = n - n_pos  # 1 - FM summed
    elif n_gt == n:
        total = n_pos
    else:
        mu_p, mu_g = n_pos / n, n_gt / n
        total = np.zeros_like(n_pos)
        parts = [(tp, 1 - mu_p, 1 - mu_g), (n_pos - tp, 1 - mu_p, -mu_g),
                 (n_gt - tp, -mu_p, 1 - mu_g), (n - n_pos - (n_gt - tp), -mu_p, -mu_g)]
        for count, a, b in parts:
            align = 2 * a * b / (a ** 2 + b ** 2 + EPS)
            total = total + count * (align + 1) ** 2 / 4
    return np.minimum(total / (n - 1 + EPS), 1.0)


def pranet_metrics(prob, gt, quantize: bool = True) -> dict:
    """Per-image toolbox scores: meanDice, meanIoU, meanSen, meanSpe, meanEm (means over the 256 thresholds,
    `pred >= t`), their per-image maxima, Sm (alpha 0.5), wFm (beta 1), MAE, and `curves` (per-threshold arrays,
    t from 1 to 0).

    Fmeasure_calu.m: when TP == 0 at a threshold, Dice, IoU, sensitivity and specificity are all 0 there, so an empty
    GT scores 0 on them. Empty GT: Sm = 1 - mean(pred), wFm = 0, Em(t) = min(mean(pred < t)·N/(N-1), 1).
    meanEm and maxEm are NaN on an image too small to score (`enhanced_alignment`).
    Dataset maxima must be taken on the mean curve: use `aggregate`, which does that.
    """
    prob, gt = as_pair(prob, gt)
    pred = normalize_map(prob, quantize)
    n, n_gt = float(pred.size), float(gt.sum())
    n_pos, tp = threshold_counts(pred, gt)
    fp, fn = n_pos - tp, n_gt - tp
    tn = n - n_pos - fn
    hit = tp > 0
    curves = {
        "dice": np.where(hit, safe_ratio(2 * tp, n_gt + n_pos, 0.0), 0.0),
        "iou": np.where(hit, safe_ratio(tp, fn + n_pos, 0.0), 0.0),
        "sen": np.where(hit, safe_ratio(tp, n_gt, 0.0), 0.0),
        "spe": np.where(hit, safe_ratio(tn, tn + fp, 0.0), 0.0),
        "em": enhanced_alignment(n_pos, tp, n_gt, n),
    }
    sm, wfm = MatlabSmeasure(), WeightedFmeasure()
    sm.step(pred, gt, normalize=False)
    wfm.step(pred, gt, normalize=False)
    out = {"Sm": float(sm.sms[-1]), "wFm": float(wfm.weighted_fms[-1]), "MAE": float(np.abs(pred - gt).mean())}
    for name, key in CURVE_KEYS.items():
        out[f"mean{key}"] = float(curves[name].mean())
        out[f"max{key}"] = float(curves[name].max())
    out["curves"] = curves
    return out
