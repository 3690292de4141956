"""Losses: structure loss of PraNet/GMSRF (Sec. II-B.4), deep-supervision sum, soft Dice; `build_loss(name)`.

The official GMSRF/PraNet training code has two bugs (notes §1.5), reproduced only with `legacy_bugs=True`:
1. `F.binary_cross_entropy_with_logits(..., reduce='none')` passes the *legacy* `reduce` argument, which is truthy,
   so PyTorch returns the scalar mean BCE and the boundary weighting of the BCE term is a no-op (plain mean BCE);
2. the official model applies a sigmoid to its main output D1 and the loss applies another one (BCE-with-logits and
   the IoU term then see sigmoid(sigmoid(z))). Our models return logits, so the flag applies that extra sigmoid to
   the main (first) output only.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from polyplib.errors import ConfigError
from polyplib.plugins import load_plugins

Outputs = torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.shape != target.shape or logits.dim() != 4:
        raise ConfigError(f"loss expects logits and target of the same shape [B,1,H,W]; got logits "
                          f"{tuple(logits.shape)} and target {tuple(target.shape)}")


def boundary_weight(target: torch.Tensor, kernel: int = 31, strength: float = 5.0,
                    separable: bool = True) -> torch.Tensor:
    """weit = 1 + 5 |avgpool31(m) - m|: pixels near mask boundaries weigh up to 6x (F3Net / PraNet).

    The 31x31 mean (zero padding counted, as in the authors' `F.avg_pool2d`) is computed as a 31x1 then a 1x31 mean:
    the same numbers up to rounding at 2/31 of the cost; `separable=False` is the authors' single 2-D pooling.
    """
    pad = kernel // 2
    if separable:
        mean = F.avg_pool2d(F.avg_pool2d(target, (kernel, 1), stride=1, padding=(pad, 0)), (1, kernel), stride=1,
                            padding=(0, pad))
    else:
        mean = F.avg_pool2d(target, kernel, stride=1, padding=pad)
    return 1 + strength * (mean - target).abs()


def structure_loss(logits: torch.Tensor, target: torch.Tensor, legacy_bce: bool = False,
                   weit: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted BCE + weighted IoU (L_DUAL, Sec. II-B.4), per image then averaged over the batch; `weit`: the
    target's `boundary_weight` when already computed (deep supervision scores every output against one target)."""
    _check(logits, target)
    weit = boundary_weight(target) if weit is None else weit
    if legacy_bce:
        wbce = F.binary_cross_entropy_with_logits(logits, target)  # what `reduce='none'` really returns
    else:
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        wbce = (weit * bce).sum(dim=(2, 3)) / weit.sum(dim=(2, 3))
    prob = torch.sigmoid(logits)
    inter = (prob * target * weit).sum(dim=(2, 3))
    union = ((prob + target) * weit).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, rowwise: bool = False) -> torch.Tensor:
    """Soft Dice loss 1 - (2 Σpg + s) / (Σp + Σg + s) per image, averaged over the batch.

    `rowwise=True` sums over each image row only and averages over rows: MONAI `DiceLoss` called on [1,H,W]
    tensors as in the Polyp-SAM notebooks (notes §2.4; MONAI's smoothing is 1e-5).
    """
    _check(logits, target)
    prob = torch.sigmoid(logits)
    dims = (3,) if rowwise else (2, 3)
    inter = (prob * target).sum(dim=dims)
    total = prob.sum(dim=dims) + target.sum(dim=dims)
    return (1 - (2 * inter + smooth) / (total + smooth)).mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0,
                  rowwise: bool = False) -> torch.Tensor:
    """Mean BCE-with-logits + soft Dice."""
    _check(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target) + dice_loss(logits, target, smooth, rowwise)


def authors_val_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """The GMSRF code's validation loss (loss.py `DiceBCELoss`, gmsrf_train.py): Dice + mean BCE pooled over the batch.

    Their model returns sigmoid(D1) and DiceBCELoss applies a sigmoid again, so on our logits z it scores
    p = sigmoid(sigmoid(z)) in (0.5, 0.73): 1 - (2 Σpg + 1) / (Σp + Σg + 1) over the flattened batch + BCE(p, g).
    """
    _check(logits, target)
    prob = torch.sigmoid(torch.sigmoid(logits.float())).reshape(-1)
    flat = target.float().reshape(-1)
    dice = 1 - (2 * (prob * flat).sum() + smooth) / (prob.sum() + flat.sum() + smooth)
    return dice + F.binary_cross_entropy(prob, flat)


class DeepSupervisionLoss(nn.Module):
    """L_GMSRF = Σ_i L(D_i) over all outputs with weight 1 (Sec. II-B.4); a single tensor is one output.

    `prepare(target)` returns keyword arguments of `loss` that depend on the target alone (the structure loss's
    boundary weight), computed once per batch instead of once per output as in the authors' code.
    """

    def __init__(self, loss: Callable[..., torch.Tensor], sigmoid_main: bool = False, main_only: bool = False,
                 prepare: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.sigmoid_main = sigmoid_main
        self.main_only = main_only
        self.prepare = prepare

    def forward(self, outputs: Outputs, target: torch.Tensor) -> torch.Tensor:
        outputs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
        if self.main_only:
            outputs = outputs[:1]
        if self.sigmoid_main:  # legacy bug 2: the official model's sigmoid on D1, fed to a logits loss
            outputs[0] = torch.sigmoid(outputs[0])
        extra = self.prepare(target) if self.prepare else {}
        return torch.stack([self.loss(o, target, **extra) for o in outputs]).sum()


_PLUGIN_LOSSES: dict[str, Callable[..., Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {}


def register_loss(name: str, builder: Callable[..., Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]) -> None:
    """Register `builder(**options) -> loss(logits, target)` under `name` (a plugin's loss, e.g. Polyp-SAM's)."""
    if name in _PLUGIN_LOSSES and _PLUGIN_LOSSES[name] is not builder:
        raise ConfigError(f"loss name {name!r} is already registered by {_PLUGIN_LOSSES[name].__module__}")
    _PLUGIN_LOSSES[name] = builder


def build_loss(name: str, **options) -> DeepSupervisionLoss:
    """`structure` (option `legacy_bugs`), `dice` / `bce-dice` (options `smooth`, `rowwise`), `dice-bce-authors`
    (the GMSRF code's validation loss, main output only), and the plugins' losses (Polyp-SAM: `monai-dice`); all sum
    deep-supervision outputs."""
    if name == "structure":
        legacy = options.pop("legacy_bugs", False)
        if options:
            raise ConfigError(f"loss 'structure' has no option(s) {sorted(options)}; valid: ['legacy_bugs']")
        return DeepSupervisionLoss(lambda o, t, weit: structure_loss(o, t, legacy_bce=legacy, weit=weit),
                                   sigmoid_main=legacy, prepare=lambda t: {"weit": boundary_weight(t)})
    if name == "dice-bce-authors":
        if options:
            raise ConfigError(f"loss 'dice-bce-authors' has no options; got {sorted(options)}")
        return DeepSupervisionLoss(authors_val_loss, main_only=True)
    if name in LOSSES:
        smooth, rowwise = options.pop("smooth", 1.0), options.pop("rowwise", False)
        if options:
            raise ConfigError(f"loss {name!r} has no option(s) {sorted(options)}; valid: ['rowwise', 'smooth']")
        return DeepSupervisionLoss(lambda o, t: LOSSES[name](o, t, smooth, rowwise))
    if name not in _PLUGIN_LOSSES:
        load_plugins()
    if name in _PLUGIN_LOSSES:
        valid = sorted(inspect.signature(_PLUGIN_LOSSES[name]).parameters)
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(f"loss {name!r} has no option(s) {unknown}; valid: {valid}")
        return DeepSupervisionLoss(_PLUGIN_LOSSES[name](**options))
    names = ["structure", *LOSSES, *_PLUGIN_LOSSES, "dice-bce-authors"]
    raise ConfigError(f"unknown loss {name!r}; choose one of {names}")


LOSSES = {"dice": dice_loss, "bce-dice": bce_dice_loss}
