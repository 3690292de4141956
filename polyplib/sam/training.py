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


class SamRun(_Run):
    """An engine run whose datasets carry GT box prompts, and cached embeddings under `decoder` + `cache_embeddings`.

    Images and masks stay at their original resolution: the model resizes each image as SamPredictor (or the
    authors' notebooks) do, and the loss compares logits resized back to the original size with the original mask,
    as the notebooks do. Images of different sizes cannot share a batch: use batch_size=1 with grad_accum.
    """

    native_resolution = True

    def __init__(self, config: TrainConfig, resume: bool, overwrite: bool = False) -> None:
        if config.augment:
            raise ConfigError("augment=true: Polyp-SAM trains on original-resolution images without augmentation (as "
                              "the paper and the notebooks; cached embeddings would be stale too); set augment=false")
        super().__init__(config, resume, overwrite)
        if not isinstance(self.model, PolypSAM):
            raise ConfigError(f"model {config.model!r} is not a Polyp-SAM model; use `polyplib train` for it")
        if config.batch_size > 1:
            check_one_size(self.train_ds, config)
        self.model.recipe = config.recipe or "custom"  # saved with every checkpoint (model_attrs)
        if self.info.is_main:  # the label every result of this run carries: scratch or the SAM file it started from
            (self.out / "sam.json").write_text(json.dumps(
                {"pretrained_source": self.model.pretrained_source, "strategy": self.model.strategy,
                 "preprocess": self.model.preprocess, "encoder_size": self.model.image_size,
                 "recipe": self.model.recipe, "loss": config.loss, "loss_options": config.loss_options,
                 "batch_size": config.batch_size, "grad_accum": config.grad_accum,
                 "precision": config.precision}, indent=2) + "\n")
        opts = self.model.prompts
        boxes = dict(per_component=opts.per_component, max_boxes=opts.max_boxes, seed=config.seed)
        if self.model.strategy == "decoder" and opts.cache_embeddings:
            cache = EmbeddingCache(self.model, opts.cache_dir)
            show = config.progress and self.info.is_main
            self.train_ds = CachedEmbeddingDataset(self.train_ds, cache, jitter=opts.box_jitter, **boxes,
                                                   batch_size=config.batch_size, progress=show)
            self.val_ds = CachedEmbeddingDataset(self.val_ds, cache, **boxes, batch_size=config.batch_size,
                                                 progress=show)
            decoder = EmbeddingDecoder(self.model)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(decoder, device_ids=ids) if self.info.enabled else decoder
            if config.compile:
                self.net = torch.compile(self.net)
        else:
            self.train_ds = BoxPromptDataset(self.train_ds, jitter=opts.box_jitter, **boxes)
            self.val_ds = BoxPromptDataset(self.val_ds, **boxes)


def check_one_size(dataset, config: TrainConfig) -> None:
    """A batch of original-resolution images needs one image size: say so before the loader fails to stack them."""
    from polyplib.data.io import image_size

    sizes = {image_size(p.image_path) for p in dataset.pairs if p.image_path is not None}
    if len(sizes) > 1:
        raise ConfigError(f"batch_size={config.batch_size}: Polyp-SAM trains on original-resolution images and "
                          f"{config.dataset!r} has {len(sizes)} sizes (e.g. {sorted(sizes)[:2]}); set batch_size=1 "
                          f"and grad_accum to the effective batch (the authors' per-image micro-batches)")


def train(config: TrainConfig, resume: bool = False, deadline: float | None = None,
          overwrite: bool = False) -> TrainResult:
    """Train a Polyp-SAM model (`config.model` = polyp-sam-*); `resume=True` continues from `<out_dir>/last.pt`;
    past `deadline` (`time.time()`) it stops at the next epoch checkpoint."""
    return run_training(SamRun, config, resume, deadline, overwrite)
