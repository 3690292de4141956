"""GMSRF, PraNet-toolbox and Polyp-SAM row-wise metrics against hand-computed values, sklearn and PySODMetrics."""
import numpy as np
import pytest
import torch
from py_sod_metrics import Emeasure
from sklearn.metrics import f1_score, jaccard_score, precision_score, recall_score

from polyplib.errors import DataError
from polyplib.metrics import aggregate, gmsrf_metrics, pranet_metrics, rowwise_dice


def square_gt(n: int = 8) -> np.ndarray:
    gt = np.zeros((n, n), bool)
    gt[2:6, 2:6] = True
    return gt


# ---------------------------------------------------------------- GMSRF protocol (threshold 0.5)
def test_gmsrf_hand_values():
    gt = square_gt()  # 16 foreground pixels
    prob = np.zeros((8, 8))
    prob[2:6, 2:4] = 0.9  # 8 true positives
    prob[0, :4] = 0.7  # 4 false positives
    prob[6, 6] = 0.5  # exactly 0.5 is not foreground (pred = prob > 0.5)
    out = gmsrf_metrics(prob, gt)
    assert out == pytest.approx({"dice": 16 / 28, "iou": 8 / 20, "recall": 8 / 16, "precision": 8 / 12})


def test_gmsrf_matches_sklearn_including_empty_cases():
    rng = np.random.default_rng(0)
    cases = [(rng.random((16, 16)), rng.random((16, 16)) > 0.6) for _ in range(3)]
    cases += [(np.zeros((8, 8)), np.zeros((8, 8), bool)),  # both empty
              (rng.random((8, 8)), np.zeros((8, 8), bool)),  # empty GT
              (np.zeros((8, 8)), square_gt())]  # empty prediction
    for prob, gt in cases:
        pred, ref = (prob > 0.5).ravel(), gt.ravel()
        expected = {"dice": f1_score(ref, pred, zero_division=0), "iou": jaccard_score(ref, pred, zero_division=0),
                    "recall": recall_score(ref, pred, zero_division=0),
                    "precision": precision_score(ref, pred, zero_division=0)}
        assert gmsrf_metrics(prob, gt) == pytest.approx(expected)
    assert gmsrf_metrics(np.zeros((8, 8)), np.zeros((8, 8), bool), zero_division=1.0) == {
        "dice": 1.0, "iou": 1.0, "recall": 1.0, "precision": 1.0}


def test_inputs_are_checked_and_tensors_accepted():
    gt = square_gt()
    assert gmsrf_metrics(torch.from_numpy(gt.astype(np.float32))[None], torch.from_numpy(gt)[None])["dice"] == 1.0
    with pytest.raises(DataError, match="same shape"):
        gmsrf_metrics(np.zeros((8, 8)), np.zeros((4, 4), bool))
    with pytest.raises(DataError, match="sigmoid"):
        pranet_metrics(np.full((8, 8), 3.0), gt)
    with pytest.raises(DataError, match="binary"):
        gmsrf_metrics(np.zeros((8, 8)), np.full((8, 8), 255))


# ---------------------------------------------------------------- PraNet toolbox protocol
def test_pranet_perfect_binary_map_by_hand():
    gt = square_gt()
    n, g = 64, 16
    out = pranet_metrics(gt.astype(float), gt)
    # t > 0: pred >= t is the mask itself; t = 0: every pixel is predicted foreground
    assert out["meanDice"] == pytest.approx((255 + 2 * g / (g + n)) / 256)
    assert out["meanIoU"] == pytest.approx((255 + g / n) / 256)
    assert out["maxDice"] == out["maxIoU"] == 1.0
    assert out["meanSen"] == 1.0 and out["meanSpe"] == pytest.approx(255 / 256)
    # E-measure: aligned pixels score 1 -> N/(N-1), capped at 1; at t=0 the demeaned prediction is 0 -> 1/4 per pixel
    assert out["meanEm"] == pytest.approx((255 + 0.25 * n / (n - 1)) / 256) and out["maxEm"] == 1.0
    assert out["Sm"] == pytest.approx(1.0) and out["wFm"] == pytest.approx(1.0) and out["MAE"] == 0.0


def test_pranet_tp_zero_rule_and_empty_cases():
    gt = square_gt()
    disjoint = np.zeros((8, 8))
    disjoint[0, :] = 1.0  # never overlaps the mask except at t = 0 where everything is foreground
    out = pranet_metrics(disjoint, gt)
    assert out["meanDice"] == pytest.approx(2 * 16 / (16 + 64) / 256)
    assert out["curves"]["spe"][:255].max() == 0  # TP == 0 -> specificity 0 too (Fmeasure_calu.m)
    empty_gt = np.zeros((8, 8), bool)
    prob = np.linspace(0, 1, 64).reshape(8, 8)
    out = pranet_metrics(prob, empty_gt, quantize=False)
    assert out["meanDice"] == out["meanIoU"] == out["maxDice"] == 0.0
    assert out["Sm"] == pytest.approx(1 - prob.mean()) and out["wFm"] == 0.0
    assert out["MAE"] == pytest.approx(prob.mean())
    n_pos = np.array([(prob >= t - 1e-9).sum() for t in np.linspace(1, 0, 256)])
    assert out["meanEm"] == pytest.approx(np.mean(np.minimum((64 - n_pos) / 63, 1)))
    both = pranet_metrics(np.zeros((8, 8)), empty_gt)  # both empty: constant map kept, all foreground at t = 0
    assert both["meanDice"] == 0.0 and both["Sm"] == 1.0 and both["MAE"] == 0.0
    assert both["meanEm"] == pytest.approx(255 / 256)


@pytest.mark.parametrize("side", [1, 2, 3])
def test_emeasure_of_tiny_images_is_a_score_or_says_it_is_too_small(side):
    """Issue 23 S4: the toolbox's N-1 divisor gave 4.5e15 on 1x1, maxEm 1.33 on 2x2 and 1.125 on 3x3."""
    gt = np.zeros((side, side), bool)
    gt[0, 0] = True
    for prob in (gt.astype(float), np.full((side, side), 0.3), 1.0 - gt):
        out = pranet_metrics(prob, gt)
        if side == 1:
            assert np.isnan(out["meanEm"]) and np.isnan(out["maxEm"])
        else:
            assert 0.0 <= out["meanEm"] <= out["maxEm"] <= 1.0
    if side > 1:  # perfect alignment: N/(N-1) per threshold in the toolbox, capped at 1
        assert pranet_metrics(gt.astype(float), gt)["maxEm"] == 1.0
        # a constant map is unaligned everywhere: 1/4 per pixel, N/4/(N-1) (1/3 on 2x2, 0.28125 on 3x3)
        n = side * side
        assert pranet_metrics(np.full((side, side), 0.3), gt)["meanEm"] == pytest.approx(n / 4 / (n - 1))


def test_smeasure_hand_value_and_minmax_normalisation():
    gt = np.zeros((4, 4), bool)
    gt[:, :2] = True
    # constant 0.5: object score 2*0.5/(0.25+1) = 0.8 for fg and bg; centroid column round(1.5) = 2 splits the
    # map between the two halves, so every quadrant is constant in pred and gt: SSIM 1 (alpha = beta = 0)
    assert pranet_metrics(np.full((4, 4), 0.5), gt, quantize=False)["Sm"] == pytest.approx(0.5 * 0.8 + 0.5 * 1.0)
    # pred = gt * 0.8 + 0.1 is min-max stretched to the mask itself: Sm = 1
    assert pranet_metrics(gt * 0.8 + 0.1, gt)["Sm"] == pytest.approx(1.0)
    full = np.ones((4, 4), bool)
    assert pranet_metrics(np.full((4, 4), 0.3), full, quantize=False)["Sm"] == pytest.approx(0.3)
    # min-max normalisation: a map in [0.2, 0.6] scores like the same map stretched to [0, 1]
    rng = np.random.default_rng(1)
    prob = rng.random((16, 16))
    squeezed, stretched = pranet_metrics(0.2 + 0.4 * prob, square_gt(16), quantize=False), \
        pranet_metrics(prob, square_gt(16), quantize=False)
    assert squeezed["Sm"] == pytest.approx(stretched["Sm"])
    assert squeezed["meanDice"] == pytest.approx(stretched["meanDice"])


def test_weighted_fmeasure_hand_value():
    gt = np.zeros((4, 4), bool)
    gt[:, 0] = True
    prob = gt.astype(float)
    prob[0, 3] = 0.6  # one background error of 0.6 at distance 3 from the mask
    # foreground exact -> R = 1; FPw = 0.6 * (2 - 0.5^(3/5)); TPw = |G| = 4
    p = 4 / (4 + 0.6 * (2 - 0.5 ** (3 / 5)))
    assert pranet_metrics(prob, gt)["wFm"] == pytest.approx(2 * p / (1 + p), rel=1e-6)


def test_emeasure_curve_matches_pysodmetrics():
    rng = np.random.default_rng(2)
    gt = square_gt(32)
    prob = np.clip(gt * 0.6 + rng.random((32, 32)) * 0.5, 0, 1)
    ref = Emeasure()
    ref.step(np.round(prob * 255).astype(np.uint8), gt.astype(np.uint8) * 255)
    toolbox = ref.changeable_ems[0]
    assert toolbox.max() == pytest.approx(1024 / 1023)  # perfectly separated at some thresholds: N/(N-1) > 1
    np.testing.assert_allclose(pranet_metrics(prob, gt)["curves"]["em"], np.minimum(toolbox, 1.0), rtol=1e-9)


def test_aggregate_takes_dataset_max_on_the_mean_curve():
    gt = square_gt()
    high = gt.astype(float)  # perfect only above 0.6: below, 16 background pixels join
    high[6:, :] = 0.6
    low = np.where(gt, 0.3, 0.0)
    low[0, 0] = 1.0  # no overlap above 0.3, near perfect below
    per_image = [pranet_metrics(high, gt), pranet_metrics(low, gt)]
    agg = aggregate(per_image)
    mean_curve = (per_image[0]["curves"]["dice"] + per_image[1]["curves"]["dice"]) / 2
    assert agg["maxDice"] == pytest.approx(mean_curve.max())
    assert agg["maxDice"] == pytest.approx((32 / 48 + 32 / 33) / 2)
    assert np.mean([r["maxDice"] for r in per_image]) == pytest.approx((1 + 32 / 33) / 2)
    assert agg["meanDice"] == pytest.approx(np.mean([r["meanDice"] for r in per_image]))
    assert aggregate([{"dice": 0.5}, {"dice": float("nan")}, {"dice": 1.0}]) == {"dice": 0.75}
    with pytest.raises(DataError, match="no per-image"):
        aggregate([])


# ---------------------------------------------------------------- Polyp-SAM row-wise Dice (MONAI on [1,H,W])
def test_rowwise_dice_hand_value_and_empty_gt():
    gt = np.zeros((4, 4), bool)
    gt[1, :2] = True
    gt[2, :4] = True
    prob = np.zeros((4, 4))
    prob[1, 0] = 1.0  # row 1: 2*1/(1+2)
    prob[2, :2] = 1.0  # row 2: 2*2/(2+4)
    prob[3, :] = 1.0  # row 3 has no GT: ignored
    assert rowwise_dice(prob, gt) == pytest.approx((2 / 3 + 2 / 3) / 2)
    standard = gmsrf_metrics(prob, gt)["dice"]
    assert standard == pytest.approx(2 * 3 / (7 + 6))
    assert rowwise_dice(prob, np.zeros((4, 4), bool)) == 0.0  # MONAI aggregates an all-NaN image to 0
