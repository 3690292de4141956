"""Uncertainty beyond either paper: bootstrap confidence intervals over images and paired per-image comparisons."""
from __future__ import annotations

from typing import Any

import numpy as np


def bootstrap_ci(values: Any, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean over images (`scipy.stats.bootstrap`); (nan, nan) below 2 values."""
    from scipy import stats

    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if len(data) < 2 or np.all(data == data[0]):
        return (float(data[0]), float(data[0])) if len(data) else (float("nan"), float("nan"))
    res = stats.bootstrap((data,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def rank_biserial(diff: Any) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (Kerby 2014): (R+ - R-) / (R+ + R-)."""
    from scipy.stats import rankdata

    d = np.asarray(diff, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    ranks = rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def paired_comparison(a: Any, b: Any, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """A vs B on the same images: mean difference with its paired-bootstrap CI, Wilcoxon signed-rank p, effect size."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    diff = a - b
    low, high = bootstrap_ci(diff, confidence, seed=seed)
    p = float(stats.wilcoxon(a, b).pvalue) if np.any(diff != 0) else 1.0
    return {"n": int(len(diff)), "mean_a": float(a.mean()), "mean_b": float(b.mean()), "diff": float(diff.mean()),
            "ci_low": low, "ci_high": high, "wilcoxon_p": p, "rank_biserial": rank_biserial(diff)}


def seed_comparison(a: Any, b: Any, confidence: float = 0.95) -> dict[str, Any]:
    """Two recipes over training seeds (one score per seed): difference of the means with a two-sided p and its CI.
    Student's pooled t-test when both sides have 2+ seeds (one seed spread assumed: same data and recipe family;
    Welch's correction leaves about 1 dof at 2 vs 2 seeds), else the t prediction test of the single run against the
    other side's seeds (|x - mean| / (sd * sqrt(1 + 1/n)), n - 1 dof); p and CI are nan when neither applies."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    nan = float("nan")
    out: dict[str, Any] = {"n_a": len(a), "n_b": len(b), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
                           "sd_a": float(a.std(ddof=1)) if len(a) > 1 else nan,
                           "sd_b": float(b.std(ddof=1)) if len(b) > 1 else nan,
                           "diff": float(a.mean() - b.mean()), "p": nan, "ci_low": nan, "ci_high": nan, "test": "none"}
    if len(a) > 1 and len(b) > 1:
        dof = len(a) + len(b) - 2
        pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / dof)
        se, test = pooled * np.sqrt(1 / len(a) + 1 / len(b)), "pooled t"
    elif min(len(a), len(b)) == 1 and max(len(a), len(b)) > 2:
        many = a if len(a) > 1 else b
        dof = len(many) - 1
        se, test = many.std(ddof=1) * np.sqrt(1 + 1 / len(many)), "t prediction"
    else:
        return out
    t = abs(out["diff"]) / se if se > 0 else 0.0 if out["diff"] == 0 else np.inf
    half = stats.t.ppf(0.5 + confidence / 2, dof) * se
    out.update(p=float(2 * stats.t.sf(t, dof)), ci_low=out["diff"] - half, ci_high=out["diff"] + half, test=test)
    return out
