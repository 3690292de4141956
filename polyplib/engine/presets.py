"""Named training recipes: each paper's setting as a `TrainConfig` (every field overridable)."""
from __future__ import annotations

from typing import Callable

from polyplib.engine.config import TrainConfig
from polyplib.errors import ConfigError

_PRESETS: dict[str, Callable[[], TrainConfig]] = {}


def register_preset(name: str) -> Callable[[Callable[[], TrainConfig]], Callable[[], TrainConfig]]:
    """Decorator adding a preset factory under `name`."""
    def wrap(fn: Callable[[], TrainConfig]) -> Callable[[], TrainConfig]:
        _PRESETS[name] = fn
        return fn
    return wrap


def list_presets() -> list[str]:
    """Names of the registered presets."""
    return sorted(_PRESETS)


def get_preset(name: str, **overrides) -> TrainConfig:
    """The preset `name` with `overrides` applied."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(list_presets())}")
    return _PRESETS[name]().replace(recipe=name).replace(**overrides)


@register_preset("gmsrf-paper")
def gmsrf_paper() -> TrainConfig:
    """GMSRF-Net paper §4.2: 256×256, Adam 1e-4, batch 8, 50 epochs, augmentation, deep-supervised structure loss."""
    return TrainConfig(model="gmsrf", model_options={"variant": "paper"}, dataset="kvasir-seg", protocol="gmsrf",
                       image_size=256, augment=True, batch_size=8, epochs=50, lr=1e-4, optimizer="adam",
                       schedule="constant", loss="structure", select="dice", out_dir="runs/gmsrf-paper")


@register_preset("gmsrf-official")
def gmsrf_official() -> TrainConfig:
    """Authors' gmsrf_train.py: their network (variant official), structure loss with both legacy bugs on the four
    outputs, Adam 1e-4, batch 6, 130 epochs, clamp each gradient to ±0.5, no augmentation, 256×256; checkpoint
    selection and ReduceLROnPlateau(patience 5, factor 0.1) on their validation loss (DiceBCELoss of
    sigmoid(sigmoid(D1)) pooled over each batch of 6). Deliberate differences: a seeded per-epoch shuffle (theirs:
    one unseeded sklearn shuffle, same order every epoch), binary instead of PIL-resized soft masks, the validation
    loss averaged per image (theirs: per batch), and both best.pt and last.pt kept (their test loads the last epoch)."""
    return gmsrf_paper().replace(model_options={"variant": "official"}, augment=False, batch_size=6, epochs=130,
                                 schedule="plateau", plateau_patience=5, plateau_factor=0.1, clip_value=0.5,
                                 loss_options={"legacy_bugs": True}, val_loss="dice-bce-authors", select="loss",
                                 out_dir="runs/gmsrf-official")


@register_preset("cpu-tiny")
def cpu_tiny() -> TrainConfig:
    """A seconds-long CPU run on synthetic polyps (tests, smoke runs of the book)."""
    return TrainConfig(model="unet-original", model_options={"base_channels": 4, "depth": 2}, dataset="synthpolyp",
                       protocol="gmsrf", dataset_options={"n": 16}, image_size=64, augment=False, batch_size=4,
                       epochs=2, lr=1e-2, loss="bce-dice", precision="fp32", device="cpu", out_dir="runs/cpu-tiny")


@register_preset("polyp-sam-paper")
def polyp_sam_paper() -> TrainConfig:
    """Polyp-SAM §3 as stated: Dice loss, AdamW 4e-6 (wd 1e-4), 30 warm-up epochs, cosine to 1e-6 at 200, effective
    batch 48 (one original-resolution image per micro-batch, 48 accumulated), SAM's own preprocessing."""
    return TrainConfig(model="polyp-sam-b", model_options={"strategy": "full"}, dataset="pranet-train",
                       protocol="polyp-sam", image_size=1024, augment=False, batch_size=1, grad_accum=48, epochs=200,
                       lr=4e-6, optimizer="adamw", weight_decay=1e-4, schedule="warmup-cosine", warmup_epochs=30,
                       warmup_start_lr=5e-7, min_lr=1e-6, loss="dice", select="dice", out_dir="runs/polyp-sam-paper")


@register_preset("polyp-sam-authors")
def polyp_sam_authors() -> TrainConfig:
    """ricklisz/Polyp-SAM finetune_all.ipynb: BGR [0, 1] images stretched to 1024×1024 (`preprocess="authors"`), MONAI
    DiceLoss on [1,H,W] (row-wise, smooth 1e-5) at the original resolution, masks `gt > 0`, one image per backward,
    one optimiser step per 64 images, fp16 autocast + GradScaler, LinearWarmupCosineAnnealingLR (5e-7 -> 4e-6 at
    epoch 29, cosine to 1e-6 at 200). Differences: an incomplete last group of < 64 images is dropped (theirs:
    stepped, divided by its size), selection by per-image Dice at 0.5 (theirs: MONAI row-wise Dice)."""
    return polyp_sam_paper().replace(
        model_options={"strategy": "full", "preprocess": "authors"}, dataset_options={"mask_threshold": 0},
        batch_size=1, grad_accum=64, precision="fp16", schedule="warmup-cosine-authors", loss="monai-dice",
        loss_options={"rowwise": True}, out_dir="runs/polyp-sam-authors")
