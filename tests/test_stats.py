"""Bootstrap intervals and paired comparisons on scores whose answer is known."""
import numpy as np
import pytest

from polyplib.stats import bootstrap_ci, paired_comparison, rank_biserial


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    small, large = rng.normal(0.7, 0.1, 30), rng.normal(0.7, 0.1, 600)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert (hi_l - lo_l) < 0.5 * (hi_s - lo_s)
    assert 0.6 < lo_l < 0.7 < hi_l < 0.8
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert np.isnan(bootstrap_ci([])[0])


def test_paired_comparison_finds_a_consistent_shift_and_not_noise():
    rng = np.random.default_rng(2)
    b = rng.uniform(0.3, 0.9, 200)
    a = b + 0.05 + rng.normal(0, 0.01, 200)
    shifted = paired_comparison(a, b)
    assert shifted["diff"] == pytest.approx(0.05, abs=0.005)
    assert 0 < shifted["ci_low"] < 0.05 < shifted["ci_high"]
    assert shifted["wilcoxon_p"] < 1e-10 and shifted["rank_biserial"] == 1.0
    noise = paired_comparison(b + rng.normal(0, 0.05, 200), b)
    assert noise["ci_low"] < 0 < noise["ci_high"] and noise["wilcoxon_p"] > 0.01
    assert abs(noise["rank_biserial"]) < 0.3
    assert paired_comparison(b, b)["wilcoxon_p"] == 1.0
    with pytest.raises(ValueError, match="equal lengths"):
        paired_comparison(a, b[:10])


def test_rank_biserial_signs_and_ties():
    assert rank_biserial([1, 2, 3]) == 1.0 and rank_biserial([-1, -2]) == -1.0
    assert rank_biserial([0, 0]) == 0.0
    # ranks of |d| = 1, 2, 3: plus = 1 + 3, minus = 2 -> (4 - 2) / 6
    assert rank_biserial([0.1, -0.2, 0.3]) == pytest.approx(1 / 3)


def test_seed_comparison_uses_the_pooled_t_test_or_the_prediction_test_by_seed_count():
    from scipy import stats

    from polyplib.stats import seed_comparison

    a, b = [0.50, 0.60, 0.70], [0.30, 0.32, 0.37]
    welch = seed_comparison(a, b)
    assert welch["test"] == "pooled t" and welch["diff"] == pytest.approx(0.27)
    assert welch["p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=True).pvalue)
    single = seed_comparison(a, [0.9])  # t = 0.3 / (0.1 sqrt(4/3)), 2 dof: closed form 1 - t / sqrt(t^2 + 2)
    t = 0.3 / (0.1 * np.sqrt(4 / 3))
    assert single["test"] == "t prediction" and single["p"] == pytest.approx(1 - t / np.sqrt(t * t + 2))
    assert seed_comparison([0.9], a)["p"] == pytest.approx(single["p"])  # either side may be the single run
    assert seed_comparison([0.5, 0.6], [0.9])["test"] == "none"  # two seeds cannot give a prediction interval


def test_seed_comparison_interval_matches_scipy_and_brackets_the_difference():
    from scipy import stats

    from polyplib.stats import seed_comparison

    a, b = [0.58, 0.57, 0.59], [0.60, 0.62, 0.57]
    result = seed_comparison(a, b)
    ci = stats.ttest_ind(a, b, equal_var=True).confidence_interval(0.95)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert result["ci_low"] < result["diff"] < result["ci_high"] and result["p"] > 0.05
    single = seed_comparison(a, [0.9])  # the 95 % prediction half-width: t(0.975, 2) sd sqrt(4/3)
    half = stats.t.ppf(0.975, 2) * np.std(a, ddof=1) * np.sqrt(4 / 3)
    assert single["ci_high"] - single["diff"] == pytest.approx(half) and single["ci_high"] < 0
