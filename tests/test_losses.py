"""Structure loss, legacy bugs, deep supervision and Dice against hand-computed values."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from polyplib.errors import ConfigError
from polyplib.losses import boundary_weight, build_loss, structure_loss


def quarter_mask() -> torch.Tensor:
    """4x4 mask with 4 foreground pixels (top-left 2x2)."""
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1
    return mask


def test_boundary_weight_hand_value():
    # on a 4x4 map the 31x31 window (zero padding counted) always covers the whole map: avg = 4/961 everywhere
    weit = boundary_weight(quarter_mask())
    assert weit[0, 0, 0, 0].item() == pytest.approx(1 + 5 * (1 - 4 / 961))
    assert weit[0, 0, 3, 3].item() == pytest.approx(1 + 5 * 4 / 961)


def test_separable_boundary_weight_equals_the_authors_2d_pooling():
    torch.manual_seed(0)
    mask = (torch.rand(3, 1, 64, 48) > 0.7).float()
    separable, square = boundary_weight(mask), boundary_weight(mask, separable=False)
    assert separable.shape == square.shape == mask.shape
    assert torch.allclose(separable, square, atol=1e-6)
    assert (square - 1).abs().max() > 1  # a real boundary map, not a constant


def test_structure_loss_hand_value_at_zero_logits():
    w1, w0 = 1 + 5 * (1 - 4 / 961), 1 + 5 * 4 / 961
    inter = 0.5 * 4 * w1
    union = 0.5 * (4 * w1 + 12 * w0) + 4 * w1
    expected = math.log(2) + 1 - (inter + 1) / (union - inter + 1)
    assert structure_loss(torch.zeros(1, 1, 4, 4), quarter_mask()).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_bce_differs_from_legacy_mean_bce():
    torch.manual_seed(0)
    logits, mask = torch.randn(2, 1, 8, 8) * 3, (torch.rand(2, 1, 8, 8) > 0.6).float()
    weit = boundary_weight(mask)
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    prob = torch.sigmoid(logits)
    inter = (prob * mask * weit).sum((2, 3))
    wiou = 1 - (inter + 1) / (((prob + mask) * weit).sum((2, 3)) - inter + 1)
    weighted = ((weit * bce).sum((2, 3)) / weit.sum((2, 3)) + wiou).mean()
    legacy = (bce.mean() + wiou).mean()
    assert structure_loss(logits, mask).item() == pytest.approx(weighted.item(), rel=1e-6)
    assert structure_loss(logits, mask, legacy_bce=True).item() == pytest.approx(legacy.item(), rel=1e-6)
    assert abs(weighted.item() - legacy.item()) > 1e-3


def test_pytorch_legacy_reduce_argument_returns_the_mean():
    """The authors' `reduce='none'` really gives the scalar mean (notes §1.5), which legacy_bugs reproduces."""
    torch.manual_seed(0)
    logits, mask = torch.randn(1, 1, 8, 8), (torch.rand(1, 1, 8, 8) > 0.5).float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = F.binary_cross_entropy_with_logits(logits, mask, reduce="none")
    assert legacy.dim() == 0
    assert legacy.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, mask).item())


def test_deep_supervision_sums_outputs_and_legacy_sigmoid_hits_main_only():
    torch.manual_seed(0)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    outs = tuple(torch.randn(2, 1, 8, 8) for _ in range(4))
    loss = build_loss("structure")
    assert loss(outs, mask).item() == pytest.approx(sum(structure_loss(o, mask).item() for o in outs), rel=1e-6)
    assert loss(outs[0], mask).item() == pytest.approx(structure_loss(outs[0], mask).item())
    legacy = build_loss("structure", legacy_bugs=True)(outs, mask).item()
    expected = structure_loss(torch.sigmoid(outs[0]), mask, legacy_bce=True).item() + sum(
        structure_loss(o, mask, legacy_bce=True).item() for o in outs[1:])
    assert legacy == pytest.approx(expected, rel=1e-6)


def test_dice_losses_hand_values():
    mask = quarter_mask()
    # p = 0.5 everywhere: 1 - (2*2 + 1) / (8 + 4 + 1)
    assert build_loss("dice")(torch.zeros(1, 1, 4, 4), mask).item() == pytest.approx(1 - 5 / 13)
    assert build_loss("dice", smooth=0.0)(torch.zeros(1, 1, 4, 4), mask).item() == pytest.approx(1 - 4 / 12)
    bce_dice = build_loss("bce-dice")(torch.zeros(1, 1, 4, 4), mask).item()
    assert bce_dice == pytest.approx(math.log(2) + 1 - 5 / 13)
    # Polyp-SAM's MONAI call on [1,H,W]: rows 0-1 hold 2 mask pixels each, rows 2-3 none; s = 1e-5
    s = 1e-5
    rows = [1 - (2 * 1 + s) / (2 + 2 + s)] * 2 + [1 - s / (2 + s)] * 2
    rowwise = build_loss("dice", rowwise=True, smooth=s)(torch.zeros(1, 1, 4, 4), mask).item()
    assert rowwise == pytest.approx(sum(rows) / 4)
    perfect = (mask * 2 - 1) * 30
    assert build_loss("dice")(perfect, mask).item() < 1e-6
    assert build_loss("structure")(perfect, mask).item() < 1e-6


def test_loss_gradient_moves_towards_the_mask():
    mask = quarter_mask()
    logits = torch.zeros(1, 1, 4, 4, requires_grad=True)
    build_loss("structure")(logits, mask).backward()
    assert (logits.grad[mask.bool()] < 0).all() and (logits.grad[~mask.bool()] > 0).all()


def test_bad_loss_requests_raise_config_error():
    with pytest.raises(ConfigError, match="structure"):
        build_loss("focal")
    with pytest.raises(ConfigError, match="legacy_bugs"):
        build_loss("structure", smooth=1)
    with pytest.raises(ConfigError, match="smooth"):
        build_loss("dice", legacy_bugs=True)
    with pytest.raises(ConfigError, match="same shape"):
        build_loss("dice")(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 8))
