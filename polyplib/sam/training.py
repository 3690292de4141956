"""Polyp-SAM training (paper §2.4, Table 1): the engine's trainer with box prompts, cached embeddings for `decoder`."""
from __future__ import annotations

import json

import torch
from torch import nn

from polyplib.engine.config import TrainConfig
from polyplib.engine.trainer import TrainResult, _Run, run_training
from polyplib.errors import ConfigError
from polyplib.sam.embeddings import CachedEmbeddingDataset, EmbeddingCache
from polyplib.sam.model import PolypSAM
from polyplib.sam.prompts import BoxPromptDataset


class EmbeddingDecoder(nn.Module):
    """Prompt encoder + mask decoder of a PolypSAM on cached embeddings (what `decoder` training runs each step)."""

    extra_inputs = ("boxes",)

    def __init__(self, model: PolypSAM, hw: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.hw = hw

    def forward(self, embeddings: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Logits [B,1,H,W] from embeddings [B,C,h,w] and boxes in image pixels."""
        return self.model.decode(embeddings, boxes, self.hw)


class SamRun(_Run):
    """An engine run whose datasets carry GT box prompts, and cached embeddings under `decoder` + `cache_embeddings`."""

    def __init__(self, config: TrainConfig, resume: bool, overwrite: bool = False) -> None:
        super().__init__(config, resume, overwrite)
        if not isinstance(self.model, PolypSAM):
            raise ConfigError(f"model {config.model!r} is not a Polyp-SAM model; use `polyplib train` for it")
        if self.info.is_main:  # the label every result of this run carries: scratch or the SAM file it started from
            (self.out / "sam.json").write_text(json.dumps(
                {"pretrained_source": self.model.pretrained_source, "strategy": self.model.strategy,
                 "preprocess": self.model.preprocess, "encoder_size": self.model.image_size}, indent=2) + "\n")
        opts = self.model.prompts
        boxes = dict(per_component=opts.per_component, max_boxes=opts.max_boxes, seed=config.seed)
        if self.model.strategy == "decoder" and opts.cache_embeddings:
            if config.augment:
                raise ConfigError("augment=true changes images every epoch, so cached embeddings would be stale; "
                                  "set augment=false or model_options.cache_embeddings=false")
            cache = EmbeddingCache(self.model, opts.cache_dir)
            show = config.progress and self.info.is_main
            self.train_ds = CachedEmbeddingDataset(self.train_ds, cache, jitter=opts.box_jitter, **boxes,
                                                   batch_size=config.batch_size, progress=show)
            self.val_ds = CachedEmbeddingDataset(self.val_ds, cache, **boxes, batch_size=config.batch_size,
                                                 progress=show)
            decoder = EmbeddingDecoder(self.model, (config.image_size, config.image_size))
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(decoder, device_ids=ids) if self.info.enabled else decoder
            if config.compile:
                self.net = torch.compile(self.net)
        else:
            self.train_ds = BoxPromptDataset(self.train_ds, jitter=opts.box_jitter, **boxes)
            self.val_ds = BoxPromptDataset(self.val_ds, **boxes)


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train a Polyp-SAM model (`config.model` = polyp-sam-*); `resume=True` continues from `<out_dir>/last.pt`."""
    return run_training(SamRun, config, resume, overwrite)
