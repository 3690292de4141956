"""Polyp-SAM training (paper §2.4, Table 1): the engine's trainer with box prompts, cached embeddings for `decoder`."""
from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from polyplib.engine.config import TrainConfig
from polyplib.engine.trainer import TrainingRun
from polyplib.errors import ConfigError
from polyplib.sam.embeddings import CachedEmbeddingDataset, EmbeddingCache
from polyplib.sam.model import PolypSAM
from polyplib.sam.prompts import BoxPromptDataset


class EmbeddingDecoder(nn.Module):
    """Prompt encoder + mask decoder of a PolypSAM on cached embeddings (what `decoder` training runs each step)."""

    extra_inputs = ("boxes", "hw")

    def __init__(self, model: PolypSAM, hw: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.model = model
        self.hw = hw

    def forward(self, embeddings: torch.Tensor, boxes: torch.Tensor, hw: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B,1,H,W] at the images' original size `hw` [B,2] (else the fixed `self.hw`) from embeddings
        [B,C,h,w] and boxes in image pixels."""
        size = tuple(int(v) for v in hw[0]) if hw is not None else self.hw
        return self.model.decode(embeddings, boxes, size)


class SamRun(TrainingRun):
    """An engine run whose datasets carry GT box prompts, and cached embeddings under `decoder` + `cache_embeddings`.

    Images and masks stay at their original resolution: the model resizes each image as SamPredictor (or the
    authors' notebooks) do, and the loss compares logits resized back to the original size with the original mask,
    as the notebooks do. Images of different sizes cannot share a batch: use batch_size=1 with grad_accum.
    """

    native_resolution = True

    def check_config(self, config: TrainConfig) -> None:
        if config.augment:
            raise ConfigError("augment=true: Polyp-SAM trains on original-resolution images without augmentation (as "
                              "the paper and the notebooks; cached embeddings would be stale too); set augment=false")

    def build_datasets(self) -> tuple[Any, Any]:
        train_ds, val_ds = super().build_datasets()
        if self.config.batch_size > 1:
            check_one_size(train_ds, self.config)
        return train_ds, val_ds

    def build_model(self) -> nn.Module:
        model = super().build_model()
        if not isinstance(model, PolypSAM):
            raise ConfigError(f"model {self.config.model!r} is not a Polyp-SAM model; use `polyplib train` for it")
        model.recipe = self.config.recipe or "custom"  # saved with every checkpoint (model_attrs)
        return model

    def save_config(self) -> None:
        """`config.json`, and `sam.json`: the label every result of this run carries (scratch or its SAM file)."""
        super().save_config()
        config = self.config
        (self.out / "sam.json").write_text(json.dumps(
            {"pretrained_source": self.model.pretrained_source, "strategy": self.model.strategy,
             "preprocess": self.model.preprocess, "encoder_size": self.model.image_size,
             "recipe": self.model.recipe, "loss": config.loss, "loss_options": config.loss_options,
             "batch_size": config.batch_size, "grad_accum": config.grad_accum,
             "precision": config.precision}, indent=2) + "\n")

    def wrap_datasets(self, train_ds, val_ds) -> tuple[Any, Any]:
        """Box prompts on each item; with cached embeddings, the image encoder's output in place of the image."""
        opts = self.model.prompts
        boxes = dict(per_component=opts.per_component, max_boxes=opts.max_boxes, seed=self.config.seed)
        if not uses_cache(self.model):
            return BoxPromptDataset(train_ds, jitter=opts.box_jitter, **boxes), BoxPromptDataset(val_ds, **boxes)
        cache = EmbeddingCache(self.model, opts.cache_dir)
        common = dict(batch_size=self.config.batch_size, progress=self.config.progress and self.info.is_main)
        return (CachedEmbeddingDataset(train_ds, cache, jitter=opts.box_jitter, **boxes, **common),
                CachedEmbeddingDataset(val_ds, cache, **boxes, **common))

    def train_module(self) -> nn.Module:
        """The model, or on cached embeddings its prompt encoder and mask decoder (`EmbeddingDecoder`)."""
        return EmbeddingDecoder(self.model) if uses_cache(self.model) else self.model


def uses_cache(model: PolypSAM) -> bool:
    """Whether a run trains `model` on cached image embeddings (`decoder` strategy with `cache_embeddings`)."""
    return model.strategy == "decoder" and model.prompts.cache_embeddings


def check_one_size(dataset, config: TrainConfig) -> None:
    """A batch of original-resolution images needs one image size: say so before the loader fails to stack them."""
    from polyplib.data.io import image_size

    sizes = {image_size(p.image_path) for p in dataset.pairs if p.image_path is not None}
    if len(sizes) > 1:
        raise ConfigError(f"batch_size={config.batch_size}: Polyp-SAM trains on original-resolution images and "
                          f"{config.dataset!r} has {len(sizes)} sizes (e.g. {sorted(sizes)[:2]}); set batch_size=1 "
                          f"and grad_accum to the effective batch (the authors' per-image micro-batches)")
