"""Bootstrap intervals and paired comparisons on scores whose answer is known."""
import numpy as np
import pytest

from polyplib.stats import cluster_bootstrap_ci as bootstrap_ci, paired_comparison, rank_biserial


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


def test_seed_comparison_interval_is_welchs_and_brackets_the_difference():
    from scipy import stats

    from polyplib.stats import seed_comparison

    a, b = [0.58, 0.57, 0.59], [0.60, 0.62, 0.57]
    result = seed_comparison(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert result["ci_low"] < result["diff"] < result["ci_high"] and result["p"] > 0.05
    assert seed_comparison([0.5], [0.9])["test"] == "none"  # one seed a side: nothing to test or quote
