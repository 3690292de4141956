"""Inference beyond either paper: cluster (sequence) bootstrap, Welch seed tests with their minimum detectable effect,
TOST equivalence, Holm correction. Frames of one video are not independent units, nor are images of one retraining:
every interval here resamples the units that are (a sequence, a block of frames, an image of a still-image dataset),
and a difference between recipes is tested over training seeds without assuming equal variances."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

N_RESAMPLES = 10_000  # bootstrap resamples: the Monte-Carlo error of a 95 % percentile bound is below 0.005 Dice here
ALPHA = 0.05
POWER = 0.80  # the power at which a minimum detectable effect is quoted
EQUIVALENCE_MARGIN = 0.02  # Dice: "the same" means a difference inside +-0.02, stated before looking at the data


def cluster_bootstrap_ci(values: Any, clusters: Any = None, confidence: float = 0.95, n_resamples: int = N_RESAMPLES,
                         seed: int = 0) -> tuple[float, float]:
    """Percentile CI of the mean over frames, resampling whole clusters with replacement (each value its own cluster
    when `clusters` is None: the ordinary bootstrap). Non-finite values are dropped with their cluster labels."""
    data = np.asarray(values, dtype=float)
    labels = np.arange(len(data)) if clusters is None else np.asarray(clusters)
    keep = np.isfinite(data)
    data, labels = data[keep], labels[keep]
    if len(data) == 0:
        return float("nan"), float("nan")
    _, index = np.unique(labels, return_inverse=True)
    sums, counts = np.bincount(index, weights=data), np.bincount(index).astype(float)
    if len(sums) < 2:
        mean = float(data.mean())
        return mean, mean
    draws = np.random.default_rng(seed).integers(0, len(sums), size=(n_resamples, len(sums)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def contiguous_blocks(n: int, length: int) -> np.ndarray:
    """Labels of non-overlapping blocks of `length` consecutive frames (Carlstein's block bootstrap as clusters)."""
    if length < 1:
        raise ValueError(f"block length must be at least 1, got {length}")
    return np.arange(n) // length


def block_length(values: Any) -> int:
    """Politis & White (2004; Patton, Politis & White 2009) block length of a series for the circular block bootstrap
    (`arch.bootstrap.optimal_block_length`), rounded up: the standard rule from the series' autocorrelation."""
    from arch.bootstrap import optimal_block_length

    data = np.asarray(values, dtype=float)
    return max(1, math.ceil(float(optimal_block_length(data[np.isfinite(data)])["circular"].iloc[0])))


def lag1_autocorrelation(values: Any) -> float:
    """Correlation of each value with the next in file order (frames of one video lie next to each other)."""
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    return float(np.corrcoef(data[:-1], data[1:])[0, 1]) if len(data) > 2 and data.std() > 0 else float("nan")


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


def cluster_means(values: Any, clusters: Any) -> np.ndarray:
    """Mean of the values of each cluster, clusters in order of first appearance."""
    data, labels = np.asarray(values, dtype=float), np.asarray(clusters)
    _, first, index = np.unique(labels, return_index=True, return_inverse=True)
    means = np.bincount(index, weights=data) / np.bincount(index)
    return means[np.argsort(first)]


def paired_comparison(a: Any, b: Any, clusters: Any = None, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """A vs B on the same frames: mean difference with its cluster-bootstrap CI, and the Wilcoxon signed-rank p and
    rank-biserial r over the independent units (cluster means of the difference; frames when `clusters` is None)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    diff = a - b
    labels = np.arange(len(diff)) if clusters is None else np.asarray(clusters)
    units = cluster_means(diff, labels)
    low, high = cluster_bootstrap_ci(diff, labels, confidence, seed=seed)
    p = float(stats.wilcoxon(units).pvalue) if np.any(units != 0) and len(units) > 1 else 1.0
    return {"n": int(len(diff)), "units": int(len(units)), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
            "diff": float(diff.mean()), "ci_low": low, "ci_high": high, "wilcoxon_p": p,
            "rank_biserial": rank_biserial(units), "units_negative": int((units < 0).sum())}


def minimum_detectable_effect(se: float, dof: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true difference a two-sided t test at `alpha` detects with `power` (Bloom 1995):
    (t_{1-alpha/2, dof} + t_{power, dof}) * se."""
    from scipy import stats

    if not np.isfinite(se) or not dof or dof <= 0:
        return float("nan")
    return float((stats.t.ppf(1 - alpha / 2, dof) + stats.t.ppf(power, dof)) * se)


def seed_comparison(a: Any, b: Any, confidence: float = 0.95) -> dict[str, Any]:
    """Two recipes over training seeds (one score per seed): difference of the means, Welch's t test (no equal-variance
    assumption) with its CI, and the minimum detectable effect at 80 % power. With one seed on a side no test is made
    (the spread of that side is unknown); the MDE is then quoted from the other side's spread as a prediction,
    sd * sqrt(1 + 1/n) on n - 1 dof."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    nan = float("nan")
    out: dict[str, Any] = {"n_a": len(a), "n_b": len(b), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
                           "sd_a": float(a.std(ddof=1)) if len(a) > 1 else nan,
                           "sd_b": float(b.std(ddof=1)) if len(b) > 1 else nan,
                           "diff": float(a.mean() - b.mean()), "p": nan, "ci_low": nan, "ci_high": nan, "se": nan,
                           "dof": nan, "mde": nan, "test": "none"}
    if len(a) > 1 and len(b) > 1:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = math.sqrt(va + vb)
        dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else len(a) + len(b) - 2
        t = abs(out["diff"]) / se if se > 0 else (0.0 if out["diff"] == 0 else math.inf)
        half = stats.t.ppf(0.5 + confidence / 2, dof) * se
        out.update(p=float(2 * stats.t.sf(t, dof)), ci_low=float(out["diff"] - half), ci_high=float(out["diff"] + half),
                   se=se, dof=float(dof), test="Welch t")
    elif min(len(a), len(b)) == 1 and max(len(a), len(b)) > 1:
        many = a if len(a) > 1 else b
        out.update(se=float(many.std(ddof=1) * math.sqrt(1 + 1 / len(many))), dof=float(len(many) - 1),
                   test="none (one seed)")
    out["mde"] = minimum_detectable_effect(out["se"], out["dof"])
    return out


def paired_seed_comparison(a: Any, b: Any, confidence: float = 0.95, margin: float = EQUIVALENCE_MARGIN,
                           alpha: float = ALPHA) -> dict[str, Any]:
    """Two arms trained on the same seeds and data splits (one score per seed, in seed order): the mean of the per-seed
    differences, the paired t test with its CI and minimum detectable effect, and paired TOST against +-`margin`
    (`equivalent`, `different` or `not shown either way`). With one seed no test is made."""
    from scipy import stats
    from statsmodels.stats.weightstats import ttost_paired

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired seed scores need equal lengths, got {len(a)} and {len(b)}")
    diff, nan = a - b, float("nan")
    out: dict[str, Any] = {"n": len(diff), "diff": float(diff.mean()), "p": nan, "ci_low": nan, "ci_high": nan,
                           "se": nan, "dof": nan, "mde": nan, "tost_p": nan, "margin": margin, "test": "none (one seed)",
                           "outcome": "not shown either way"}
    if len(diff) < 2:
        return out
    se, dof = float(diff.std(ddof=1) / math.sqrt(len(diff))), len(diff) - 1
    half = stats.t.ppf(0.5 + confidence / 2, dof) * se
    p = float(stats.ttest_rel(a, b).pvalue) if se > 0 else (1.0 if out["diff"] == 0 else 0.0)
    tost_p = float(ttost_paired(a, b, -margin, margin)[0]) if se > 0 else float(abs(out["diff"]) >= margin)
    out.update(p=p, ci_low=out["diff"] - half, ci_high=out["diff"] + half, se=se, dof=float(dof), tost_p=tost_p,
               mde=minimum_detectable_effect(se, dof), test="paired t",
               outcome="equivalent" if tost_p < alpha else "different" if p < alpha else "not shown either way")
    return out


def equivalence_test(a: Any, b: Any, margin: float = EQUIVALENCE_MARGIN, alpha: float = ALPHA) -> dict[str, Any]:
    """Two one-sided Welch t tests (TOST, Schuirmann 1987) that the seed means differ by less than `margin`:
    `equivalent` (TOST p < alpha), else `different` (Welch p < alpha), else `not shown either way`."""
    from statsmodels.stats.weightstats import ttost_ind

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = seed_comparison(a, b, confidence=1 - 2 * alpha)  # the 90 % CI is the one TOST inverts
    if diff["test"] != "Welch t":
        return {**diff, "margin": margin, "tost_p": float("nan"), "outcome": "not shown either way"}
    tost_p = float(ttost_ind(a, b, -margin, margin, usevar="unequal")[0])
    welch_p = seed_comparison(a, b)["p"]
    outcome = "equivalent" if tost_p < alpha else "different" if welch_p < alpha else "not shown either way"
    return {**diff, "p": welch_p, "margin": margin, "tost_p": tost_p, "outcome": outcome}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values of comparisons that share one claim (`statsmodels` multipletests); nan stays nan."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = multipletests(p[finite], method="holm")[1]
    return out.tolist()
