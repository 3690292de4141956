"""The book's inference on hand-computable cases: cluster bootstrap, Welch seed test, MDE, TOST, Holm, units."""
import numpy as np
import pytest
from scipy import stats as sps

from polyplib import stats
from polyplib.data import frames
from polyplib.metrics import boundary_metrics, size_class


def test_cluster_bootstrap_of_identical_copies_is_the_bootstrap_of_the_cluster_means():
    means = np.random.default_rng(0).normal(0.5, 0.1, 12)
    copies = np.repeat(means, 30)  # 12 videos of 30 identical frames
    clustered = stats.cluster_bootstrap_ci(copies, np.repeat(np.arange(12), 30))
    assert clustered == pytest.approx(stats.cluster_bootstrap_ci(means))
    naive = stats.cluster_bootstrap_ci(copies)  # frames as if independent: far too narrow
    assert naive[1] - naive[0] < 0.3 * (clustered[1] - clustered[0])


def test_bootstrap_ci_approaches_the_normal_interval_of_the_mean():
    x = np.random.default_rng(1).normal(0.0, 1.0, 400)
    low, high = stats.cluster_bootstrap_ci(x, seed=3)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert low == pytest.approx(x.mean() - half, abs=0.015) and high == pytest.approx(x.mean() + half, abs=0.015)


def test_blocks_and_paired_units():
    assert stats.contiguous_blocks(7, 3).tolist() == [0, 0, 0, 1, 1, 1, 2]
    with pytest.raises(ValueError):
        stats.contiguous_blocks(5, 0)
    a, b = np.array([1.0, 1.0, 0.0, 0.0, 0.5, 0.5]), np.zeros(6)
    paired = stats.paired_comparison(a, b, clusters=[0, 0, 1, 1, 2, 2])
    assert paired["units"] == 3 and paired["diff"] == pytest.approx(0.5)
    assert stats.cluster_means(a, [2, 2, 0, 0, 1, 1]).tolist() == [1.0, 0.0, 0.5]  # order of first appearance


def test_autocorrelated_series_get_long_blocks():
    rng = np.random.default_rng(2)
    white = rng.normal(size=380)
    ar = np.zeros(380)
    for i in range(1, 380):
        ar[i] = 0.9 * ar[i - 1] + rng.normal()
    assert stats.lag1_autocorrelation(ar) > 0.8 and abs(stats.lag1_autocorrelation(white)) < 0.15
    assert stats.block_length(ar) > 3 * stats.block_length(white)


def test_mde_is_the_textbook_formula():
    assert stats.minimum_detectable_effect(1.0, 1e9) == pytest.approx(1.959964 + 0.841621, abs=1e-4)
    assert stats.minimum_detectable_effect(0.5, 4) == pytest.approx((sps.t.ppf(0.975, 4) + sps.t.ppf(0.8, 4)) * 0.5)
    assert np.isnan(stats.minimum_detectable_effect(float("nan"), 3))


def test_welch_seed_test_matches_scipy_and_single_seeds_are_untested():
    a, b = np.array([0.60, 0.62, 0.61]), np.array([0.50, 0.58, 0.43, 0.55])
    out = stats.seed_comparison(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert out["test"] == "Welch t" and out["p"] == pytest.approx(ref.pvalue) and out["dof"] == pytest.approx(ref.df)
    assert out["mde"] == pytest.approx(stats.minimum_detectable_effect(out["se"], out["dof"]))
    one = stats.seed_comparison([0.7], b)
    assert np.isnan(one["p"]) and one["test"] == "none (one seed)"
    assert one["se"] == pytest.approx(b.std(ddof=1) * np.sqrt(1 + 1 / 4)) and one["mde"] > 0


def test_tost_on_a_known_normal_case():
    a, b = np.array([0.500, 0.504, 0.496, 0.502]), np.array([0.501, 0.499, 0.503, 0.497])
    out = stats.equivalence_test(a, b, margin=0.02)
    se = np.sqrt(a.var(ddof=1) / 4 + b.var(ddof=1) / 4)
    dof = sps.ttest_ind(a, b, equal_var=False).df
    d = a.mean() - b.mean()
    expected = max(sps.t.sf((d + 0.02) / se, dof), sps.t.cdf((d - 0.02) / se, dof))
    assert out["tost_p"] == pytest.approx(expected, rel=1e-6) and out["outcome"] == "equivalent"
    far = stats.equivalence_test(a, b - 0.1, margin=0.02)
    assert far["outcome"] == "different"
    wide = stats.equivalence_test([0.4, 0.6, 0.5], [0.45, 0.55, 0.62], margin=0.02)
    assert wide["outcome"] == "not shown either way"


def test_holm_adjusts_in_step_down_order_and_keeps_nan():
    assert stats.holm([0.01, 0.04, float("nan"), 0.03]) == pytest.approx([0.03, 0.06, float("nan"), 0.06],
                                                                         nan_ok=True)


def test_segmentation_recovers_known_sequences_and_keeps_only_agreed_boundaries():
    rng = np.random.default_rng(4)
    colours = [(200, 60, 40), (60, 180, 90), (40, 70, 200), (220, 200, 60)]
    lengths = [12, 9, 15, 10]
    images = []
    for colour, n in zip(colours, lengths):
        for _ in range(n):
            frame = np.clip(np.array(colour) + rng.normal(0, 6, (32, 32, 3)), 0, 255).astype(np.uint8)
            images.append(frame)
    found = frames.segment_frames(images, n_segments=4)
    assert found["boundaries"] == [12, 21, 36]
    assert found["labels"] == [1] * 12 + [2] * 9 + [3] * 15 + [4] * 10
    assert frames.consensus([[10, 20, 30], [11, 25, 30], [9, 20, 31]]) == [10, 30]


def test_shipped_cvc_colondb_segments_are_contiguous_and_in_file_order():
    seg = frames.shipped_segments("cvc-colondb")
    labels = [seg[str(i)] for i in range(1, 381)]
    assert len(seg) == 380 and labels[0] == 1 and np.all(np.diff(labels) >= 0) and np.all(np.diff(labels) <= 1)
    assert 10 <= max(labels) <= frames.N_SEQUENCES["cvc-colondb"]  # a merge of the 15 videos, never a split
    assert frames.shipped_segments("kvasir-seg") is None


@pytest.mark.realdata
def test_shipped_segments_are_what_the_command_derives_from_the_frames(shared_data):
    derived = frames.derive_segments("cvc-colondb", shared_data)
    shipped = frames.shipped_segments("cvc-colondb")
    assert {i: s for i, s in zip(derived["ids"], derived["labels"])} == shipped


def test_near_duplicates_need_both_a_close_hash_and_correlated_thumbnails(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(5)
    base = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    other = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    paths = {}
    for name, image in (("a", base), ("b", np.clip(base.astype(int) + 3, 0, 255).astype(np.uint8)), ("c", other)):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(image).save(paths[name])
    found = frames.near_duplicates(paths)
    assert [(a, b) for a, b, _, _ in found] == [("a", "b")]
    leaks = frames.split_leaks(found, {"train": ["a", "c"], "test": ["b"]})
    assert leaks == [{"a": "a", "b": "b", "bits": found[0][2], "correlation": found[0][3], "parts": "train/test"}]
    assert frames.split_leaks(found, {"train": ["a", "b"], "test": ["c"]}) == []


def test_boundary_metrics_in_percent_of_the_diagonal_and_empty_masks_counted():
    gt = np.zeros((300, 400), bool)
    gt[100:200, 100:200] = True
    shifted = np.zeros((300, 400))
    shifted[100:200, 110:210] = 1.0  # 10 px to the right: HD95 10 px = 2 % of the 500 px diagonal
    out = boundary_metrics(shifted, gt)
    assert out["hd95"] == pytest.approx(2.0, abs=0.05) and out["area"] == pytest.approx(1 / 12)
    assert 0 < out["nsd"] < 1 and out["pred_empty"] == 0
    assert boundary_metrics(gt.astype(float), gt)["nsd"] == pytest.approx(1.0)
    empty = boundary_metrics(np.zeros((300, 400)), gt)
    assert np.isnan(empty["hd95"]) and empty["nsd"] == 0 and empty["pred_empty"] == 1
    assert [size_class(a) for a in (0.0, 0.01, 0.05, 0.2)] == ["empty", "small", "medium", "large"]
