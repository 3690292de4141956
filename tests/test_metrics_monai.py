"""Polyp-SAM's MONAI protocol on hand-computed cases: row-wise scores, empty rows skipped, empty ground truth scores 0."""
import numpy as np
import pytest
import torch

from polyplib.engine.evaluate import score_image
from polyplib.metrics import aggregate, gmsrf_metrics, monai_metrics, rowwise_dice


def case() -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((4, 5), bool)
    gt[1, 1:4] = True  # row 1: GT columns 1-3
    gt[2, 2] = True  # row 2: GT column 2
    prob = np.zeros((4, 5))
    prob[1, 2:5] = 0.9  # row 1: predicted 2-4 -> TP 2, Dice 4/6, IoU 2/4
    prob[3, 0] = 0.8  # row 3: a false positive in a row without GT -> NaN row, ignored
    prob[2, 2] = 0.5  # row 2: exactly 0.5 is not foreground (> 0.5) -> Dice 0, IoU 0
    return prob, gt


def test_rowwise_scores_by_hand():
    prob, gt = case()
    scores = monai_metrics(prob, gt)
    assert scores["monaiDice"] == pytest.approx((4 / 6 + 0) / 2)
    assert scores["monaiIoU"] == pytest.approx((2 / 4 + 0) / 2)
    assert rowwise_dice(prob, gt) == pytest.approx(1 / 3)
    assert gmsrf_metrics(prob, gt)["dice"] == pytest.approx(2 * 2 / (4 + 4))  # the standard per-image Dice differs


def test_empty_ground_truth_scores_zero_and_perfect_rows_one():
    empty = np.zeros((3, 4), bool)
    assert monai_metrics(np.full((3, 4), 0.9), empty) == {"monaiDice": 0.0, "monaiIoU": 0.0}
    assert monai_metrics(np.zeros((3, 4)), empty) == {"monaiDice": 0.0, "monaiIoU": 0.0}  # even when nothing is predicted
    gt = np.zeros((3, 4), bool)
    gt[0, :2] = True
    prob = gt * 0.7
    prob[2, 3] = 0.9  # false positive in a GT-free row: free under ignore_empty
    assert monai_metrics(prob, gt) == {"monaiDice": pytest.approx(1.0), "monaiIoU": pytest.approx(1.0)}


def test_matches_monai_called_as_the_notebook_and_mean_over_images():
    from monai.metrics import DiceMetric, MeanIoU

    rng = np.random.default_rng(0)
    prob, gt = rng.random((20, 30)), rng.random((20, 30)) > 0.6
    binary = torch.from_numpy(prob > 0.5).float()[None, None]  # binary_mask [1,1,H,W]
    gt_t = torch.from_numpy(gt).long()
    dice, iou = DiceMetric(), MeanIoU()
    dice(binary[0, :], gt_t.unsqueeze(0))
    iou(binary[0, :], gt_t.unsqueeze(0))
    scores = monai_metrics(prob, gt)
    assert scores["monaiDice"] == pytest.approx(float(dice.aggregate().numpy()[0]))
    assert scores["monaiIoU"] == pytest.approx(float(iou.aggregate().numpy()[0]))
    p1, g1 = case()
    rows = [monai_metrics(p1, g1), monai_metrics(np.zeros((4, 5)), np.zeros((4, 5), bool))]
    assert aggregate(rows)["monaiDice"] == pytest.approx((1 / 3 + 0) / 2)


def test_score_image_adds_monai_columns_at_original_resolution():
    prob, gt = case()
    p, g = torch.from_numpy(prob).float()[None], torch.from_numpy(gt).float()[None]
    row = score_image(p, g, p, g, monai=True)
    assert row["monaiDice"] == pytest.approx(1 / 3) and row["monaiIoU"] == pytest.approx(0.25)
    assert "monaiDice" not in score_image(p, g, p, g)
