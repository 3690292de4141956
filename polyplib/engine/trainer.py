"""One trainer for every segmentation model: AMP, accumulation, clipping, schedules, DDP, exact resume."""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import resource
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from polyplib.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from polyplib.engine.config import TrainConfig
from polyplib.engine.distributed import DistInfo, all_gather_objects, all_reduce_sum, cleanup, init_distributed
from polyplib.engine import precision
from polyplib.engine.precision import autocast, keep_fp32_exact, resolve_channels_last, resolve_precision
from polyplib.errors import ConfigError, DivergenceError, WeightsError
from polyplib.losses import build_loss
from polyplib.models import create_model
from polyplib.outputs import check_output_dir, stale_temporaries

FORMAT = "polyplib-train-v1"
SYNC_EVERY = 10  # optimiser steps between host syncs (progress bar, finite-loss check)
# options that may differ between a run and its resumption; recipe: a label (runs started before it existed resume
# under their preset); snapshot_epochs: which weights are kept, not how they train
RESUMABLE_CHANGES = {"epochs", "out_dir", "progress", "workers", "device", "val_every", "save_every_steps",
                     "recipe", "snapshot_epochs"}
RUN_FILES = ("config.json", "log.jsonl", "last.pt", "best.pt", "result.json", "sam.json")  # what a run writes
CHECKPOINTS = ("last.pt", "best.pt")
SNAPSHOT = "epoch-{}.pt"  # the weights after one of `snapshot_epochs` (`snapshot_path`)


@dataclass
class TrainResult:
    """What a finished run leaves behind (the Polyp-SAM trainer returns the same type)."""

    out_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_metric: float | None
    best_epoch: int | None
    history: list[dict] = field(default_factory=list)
    rank_digests: list[str] = field(default_factory=list)
    complete: bool = True  # False: stopped at a checkpoint by `deadline` before the last epoch (resume continues)


def snapshot_path(out_dir: str | Path, epoch: int) -> Path:
    """Where a run keeps its weights after `epoch` (1-based, an entry of `snapshot_epochs`)."""
    return Path(out_dir) / SNAPSHOT.format(epoch)


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"option device={name!r} is not a torch device; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"option device={name!r}: no CUDA device is available here; use device=cpu")
    return device


def build_optimizer(params: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (GMSRF-Net) or AdamW (Polyp-SAM); the fused single-kernel implementation when every parameter is a
    float tensor on the CPU or a GPU (same update rule, measured faster: `polyplib bench`)."""
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    trainable = [p for p in params if p.requires_grad]
    fused = bool(trainable) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in trainable)
    return cls(trainable, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)


def warmup_cosine_factor(epoch: int, config: TrainConfig) -> float:
    """Polyp-SAM schedule (LR multiplier): linear warm-up from warmup_start_lr to lr, cosine to min_lr at the end."""
    if epoch < config.warmup_epochs:
        lr = config.warmup_start_lr + (config.lr - config.warmup_start_lr) * epoch / config.warmup_epochs
    else:
        span = max(config.epochs - config.warmup_epochs, 1)
        progress = min((epoch - config.warmup_epochs) / span, 1.0)
        lr = config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))
    return lr / config.lr


def authors_warmup_cosine_factor(epoch: int, config: TrainConfig) -> float:
    """Polyp-SAM notebooks' LinearWarmupCosineAnnealingLR (Lightning-Bolts copy): the warm-up steps by
    (lr - warmup_start_lr) / (warmup_epochs - 1), so lr is reached at epoch warmup_epochs - 1 (4e-6 at epoch 29) and
    again at warmup_epochs, then cosine to min_lr at `epochs`."""
    if epoch < config.warmup_epochs:
        step = (config.lr - config.warmup_start_lr) / max(config.warmup_epochs - 1, 1)
        return (config.warmup_start_lr + epoch * step) / config.lr
    progress = min((epoch - config.warmup_epochs) / max(config.epochs - config.warmup_epochs, 1), 1.0)
    return (config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))) / config.lr


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """None (constant), ReduceLROnPlateau on validation loss (GMSRF code), or warm-up + cosine per epoch (Polyp-SAM)."""
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", factor=config.plateau_factor,
                                                          patience=config.plateau_patience)
    if config.schedule == "warmup-cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_cosine_factor, config=config))
    if config.schedule == "warmup-cosine-authors":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(authors_warmup_cosine_factor, config=config))
    return None


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and torch.compile wrappers."""
    model = getattr(model, "_orig_mod", model)
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    return getattr(model, "_orig_mod", model)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of every tensor of the state dict (equal digests = bit-identical weights)."""
    sha = hashlib.sha256()
    for name, tensor in sorted(unwrap(model).state_dict().items()):
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def model_attrs(model: nn.Module) -> dict[str, Any]:
    """The model's `checkpoint_attrs` (e.g. Polyp-SAM's `pretrained_source`), saved beside its weights."""
    return {name: getattr(model, name) for name in getattr(model, "checkpoint_attrs", ())}


def forward(model: nn.Module, batch: dict[str, Any]):
    """Call the model with the image and whatever extra batch keys it declares (`extra_inputs`)."""
    extra = getattr(unwrap(model), "extra_inputs", ())
    return model(batch["image"], **{k: batch[k] for k in extra})


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated, or the process's peak resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; deterministic kernels when asked (exact on the CPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:  # deterministic cuBLAS needs this before its first call (torch.use_deterministic_algorithms)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    """Move the tensors of a batch to `device` (images channels-last when asked)."""
    out = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
    if channels_last:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


def load_datasets(config: TrainConfig, native_resolution: bool = False):
    """The training and validation splits of the source dataset (validation never augmented); at the original
    resolution with `native_resolution` (models that resize their own input, e.g. Polyp-SAM). Every file of both is
    decoded once up front, so that a broken image stops the run before its first step, not at the first validation."""
    from polyplib.data import load_dataset
    from polyplib.data.io import check_decodable

    size = None if native_resolution else config.image_size
    common = dict(image_size=size, seed=config.seed, protocol=config.protocol, **config.dataset_options)
    train_ds = load_dataset(config.dataset, config.root, split=config.train_split, augment=config.augment, **common)
    val_ds = load_dataset(config.dataset, config.root, split=config.val_split, augment=False, **common)
    overlap = {p.id for p in train_ds.pairs} & {p.id for p in val_ds.pairs}
    if overlap:
        raise ConfigError(f"protocol {config.protocol!r}: {len(overlap)} ids are in both {config.train_split} and "
                          f"{config.val_split} (e.g. {sorted(overlap)[0]}); choose another protocol")
    check_decodable(train_ds.pairs + val_ds.pairs)
    return train_ds, val_ds


def _differences(recorded: dict[str, Any], config: TrainConfig) -> list[str]:
    """Options (beyond those a resumption may change) in which `config` differs from a recorded config."""
    now = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
    return sorted(k for k in now if recorded.get(k) != now[k])


def _resume_refused(out: Path, what: str) -> ConfigError:
    """The one-line error of a resumption whose options (or world size) differ from the run's."""
    return ConfigError(f"cannot resume {out}: the run was started with different {what}; use the same options "
                       "(`polyplib train --out OUT --resume` reads them from OUT/config.json) or a new --out")


def _trained_anything(out: Path) -> bool:
    """Whether a run folder holds a checkpoint, a result or a logged epoch (else its start failed: nothing to keep)."""
    if any((out / name).exists() for name in RUN_FILES if name not in ("config.json", "log.jsonl")):
        return True
    log = out / "log.jsonl"
    return log.is_file() and bool(log.read_text().strip())


def prepare_out_dir(config: TrainConfig, resume: bool, overwrite: bool = False) -> bool:
    """Check `config.out_dir` before any work; True when there is a `last.pt` to resume from.

    A folder holding a different run (another recorded config.json, or run files without one) is refused unless
    `overwrite` (which removes that run's files); temporaries left by an interrupted checkpoint write are removed."""
    out = check_output_dir(config.out_dir, "--out (out_dir)")
    snapshots = sorted(p.name for p in out.glob(SNAPSHOT.format("*")))
    present = [name for name in RUN_FILES if (out / name).exists()] + snapshots
    recorded = out / "config.json"
    if present and not _trained_anything(out):  # a start that failed before its first epoch: nothing to keep
        for name in present:
            (out / name).unlink()
        present = []
    if recorded.is_file():
        try:
            differs = _differences(json.loads(recorded.read_text()), config)
        except (OSError, ValueError):
            differs = ["config.json (unreadable)"]
    else:
        differs = [f"files {', '.join(present)} without config.json"] if present else []
    if differs and not overwrite:
        what = ", ".join(differs[:6])
        if resume:
            raise _resume_refused(out, what)
        raise ConfigError(f"--out {out} holds another run (it differs in {what}); pass --overwrite to replace it, "
                          "resume it with its own options, or choose another --out")
    if differs:
        for name in present:
            (out / name).unlink()
    for tmp in stale_temporaries(out, (*CHECKPOINTS, *(SNAPSHOT.format(e) for e in config.snapshot_epochs))):
        tmp.unlink(missing_ok=True)
    has_last = (out / "last.pt").is_file()
    if resume and not has_last:
        print(f"polyplib train: no {out / 'last.pt'} to resume from; starting afresh", file=sys.stderr)
    return resume and has_last


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, loss_fn, device: torch.device, amp_dtype, channels_last: bool,
             info: DistInfo, progress: bool = False) -> dict[str, float]:
    """Validation loss and GMSRF-protocol metrics (threshold 0.5) averaged over the images of all ranks (`progress`:
    a bar on the main rank)."""
    from polyplib.metrics import gmsrf_metrics

    was_training = model.training
    model.eval()
    keys = ("dice", "iou", "recall", "precision")
    sums = torch.zeros(len(keys) + 2, dtype=torch.float64)
    for batch in tqdm(loader, desc="validation", disable=not (progress and info.is_main), leave=False,
                      dynamic_ncols=True):
        batch = to_device(batch, device, channels_last)
        with autocast(device, amp_dtype):
            out = forward(model, batch)
        logits = (out[0] if isinstance(out, (tuple, list)) else out).float()
        if not bool(torch.isfinite(logits).all()):  # e.g. eval-mode BatchNorm statistics that overflowed
            ids = batch.get("id") or range(len(logits))
            bad = [str(i) for i, row in zip(ids, logits) if not bool(torch.isfinite(row).all())]
            raise DivergenceError(f"validation output is not finite on image(s) {', '.join(bad[:3])} of the "
                                  "validation split; lower the learning rate (--lr) or use --precision fp32")
        sums[-2] += float(loss_fn(logits, batch["mask"])) * logits.shape[0]
        probs = torch.sigmoid(logits).cpu().numpy()
        masks = batch["mask"].cpu().numpy() > 0.5
        for prob, gt in zip(probs, masks):
            scores = gmsrf_metrics(prob[0], gt[0])
            sums[: len(keys)] += torch.tensor([float(scores[k]) for k in keys], dtype=torch.float64)
        sums[-1] += logits.shape[0]
    sums = all_reduce_sum(sums, info)
    n = max(float(sums[-1]), 1.0)
    model.train(was_training)
    return {"val_loss": float(sums[-2]) / n, **{f"val_{k}": float(sums[i]) / n for i, k in enumerate(keys)}}


def _epoch_batches(dataset, config: TrainConfig, info: DistInfo, epoch: int) -> list[list[int]]:
    """This rank's batches of one epoch: a (seed, epoch)-seeded shuffle, whole accumulation groups, step cap applied."""
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=config.seed, drop_last=len(dataset) >= info.world_size)
    sampler.set_epoch(epoch)
    indices = list(sampler)
    drop = len(indices) >= config.batch_size
    batches = list(BatchSampler(indices, config.batch_size, drop_last=drop))
    steps = len(batches) // config.grad_accum
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    if steps == 0:
        raise ConfigError(f"dataset {config.dataset!r} split {config.train_split!r} has {len(dataset)} images: too few "
                          f"for batch_size={config.batch_size} x grad_accum={config.grad_accum} x {info.world_size} "
                          "process(es); lower batch_size")
    return batches[: steps * config.grad_accum]


class TrainingRun:
    """One training run (nnU-Net v2's trainer): its state, kept together so that checkpoints capture all of it, built
    by the named hooks below in this order; a run kind's subclass overrides hooks only (`polyplib.sam.training`)."""

    native_resolution = False  # True: datasets at the original resolution (the model resizes its own input)

    def __init__(self, config: TrainConfig, resume: bool, overwrite: bool = False):
        self.check_config(config)
        self.config = config
        self.out = Path(config.out_dir)
        self.device = resolve_device(config.device)
        self.info = init_distributed(self.device)
        if self.info.is_main:
            resume = prepare_out_dir(config, resume, overwrite)
        if self.device.type == "cuda" and (config.device == "auto" or self.device.index is None):  # torchrun: its GPU
            self.device = torch.device("cuda", self.info.local_rank)
            torch.cuda.set_device(self.device)
        self.amp_dtype, use_scaler = resolve_precision(config.precision, self.device)
        keep_fp32_exact(self.device, self.amp_dtype)
        if self.amp_dtype == torch.bfloat16 and self.device.type == "cpu" and not precision.native_bf16_cpu():
            warnings.warn("option precision=bf16: this CPU has no native bf16 (AVX512-BF16 or AMX), so autocast "
                          "emulates it, 4-10x slower than fp32 (benchmarks/bench_cpu_bf16.py); use precision=fp32 "
                          "here", stacklevel=2)
        self.channels_last = resolve_channels_last(config.channels_last, self.device, self.amp_dtype)
        seed_everything(config.seed, config.deterministic)
        self.train_ds, self.val_ds = self.build_datasets()
        self.model = self.build_model()
        self.loss_fn = build_loss(config.loss, **config.loss_options)
        # validation loss (select=loss, ReduceLROnPlateau): the training loss unless the recipe names another
        self.val_loss_fn = build_loss(config.val_loss) if config.val_loss else self.loss_fn
        self.optimizer, self.scheduler = self.build_optimizer()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.epoch, self.batches_done, self.global_step = 0, 0, 0
        self.loss_sum, self.loss_count = self._zero_loss(), 0
        self.best: dict[str, Any] = {"metric": None, "epoch": None}
        self.history: list[dict] = []
        self.restore_state(resume)
        if self.info.is_main:
            self.save_config()
        self.train_ds, self.val_ds = self.wrap_datasets(self.train_ds, self.val_ds)
        self.net = self.train_module()
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        if config.compile:
            self.net = torch.compile(self.net)

    # -- hooks ---------------------------------------------------------------------------------------------------
    def check_config(self, config: TrainConfig) -> None:
        """Refuse options this kind of run cannot train with, before anything is read or written."""

    def build_datasets(self) -> tuple[Any, Any]:
        """The training and validation splits (`load_datasets`)."""
        return load_datasets(self.config, self.native_resolution)

    def build_model(self) -> nn.Module:
        """`config.model` on the run's device, channels-last when the precision policy says so."""
        model = create_model(self.config.model, **self.config.model_options).to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def build_optimizer(self) -> tuple[torch.optim.Optimizer, Any]:
        """Optimiser over the trainable parameters and its LR schedule (None: constant)."""
        optimizer = build_optimizer(self.model.parameters(), self.config)
        return optimizer, build_scheduler(optimizer, self.config)

    def restore_state(self, resume: bool) -> None:
        """Continue from `last.pt` when resuming, else start afresh (an empty log, no result of a run it replaces)."""
        if resume and (self.out / "last.pt").is_file():
            self._restore(self._last_checkpoint())
        elif self.info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "log.jsonl").write_text("")
            for stale in (self.out / "result.json", *self.out.glob(SNAPSHOT.format("*"))):
                stale.unlink(missing_ok=True)

    def save_config(self) -> None:
        """Write what describes the run beside its checkpoints (main rank): `config.json`."""
        self.config.save(self.out / "config.json")

    def wrap_datasets(self, train_ds, val_ds) -> tuple[Any, Any]:
        """The datasets the loaders read (a run kind adds its inputs here, e.g. box prompts)."""
        return train_ds, val_ds

    def train_module(self) -> nn.Module:
        """The module each training step calls, before the DDP and torch.compile wrapping (the model itself)."""
        return self.model

    # -- checkpoints -------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None, "scaler": self.scaler.state_dict(),
            "rng": all_gather_objects(rng_state(), self.info), "epoch": self.epoch, "batches_done": self.batches_done,
            "global_step": self.global_step, "loss_sum": float(self.loss_sum), "loss_count": self.loss_count,
            "best": dict(self.best), "config": self.config.to_dict(), "world_size": self.info.world_size,
            "split": {"train": [p.id for p in self.train_ds.pairs], "val": [p.id for p in self.val_ds.pairs]},
            "model_attrs": model_attrs(self.model),
        }

    def _weights(self, epoch: int, metrics: dict[str, float] | None) -> dict[str, Any]:
        """What best.pt and the snapshots hold: the weights after `epoch`, the config and the split."""
        return {"format": FORMAT, "model": self.model.state_dict(), "config": self.config.to_dict(),
                "model_attrs": model_attrs(self.model), "epoch": epoch, "metrics": metrics,
                "split": {"train": [p.id for p in self.train_ds.pairs], "val": [p.id for p in self.val_ds.pairs]}}

    def keep_snapshot(self) -> None:
        """The hook of `snapshot_epochs`: after one of them, keep the weights as `epoch-K.pt` (the campaigns test them
        as the run's test points; the checkpoint is still selected on the validation split only)."""
        if self.epoch in self.config.snapshot_epochs and self.info.is_main:
            metrics = {k: v for k, v in self.history[-1].items() if k.startswith("val_")} or None
            save_checkpoint(self._weights(self.epoch, metrics), snapshot_path(self.out, self.epoch))

    def save_last(self) -> None:
        state = self._state()
        if self.info.is_main:
            save_checkpoint(state, self.out / "last.pt")

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("format") != FORMAT:
            raise ConfigError(f"{self.out / 'last.pt'} is not a polyplib training checkpoint; start without --resume")
        changed = _differences(state["config"], self.config)
        if changed or state["world_size"] != self.info.world_size:
            raise _resume_refused(self.out, ", ".join(changed) or f"world size {state['world_size']} -> "
                                                                  f"{self.info.world_size}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][self.info.rank])
        self.epoch, self.batches_done, self.global_step = state["epoch"], state["batches_done"], state["global_step"]
        self.loss_sum = self._zero_loss() + state["loss_sum"]
        self.loss_count, self.best = state["loss_count"], dict(state["best"])
        log = self.out / "log.jsonl"
        rows = [json.loads(line) for line in log.read_text().splitlines() if line] if log.is_file() else []
        self.history = [row for row in rows if row["epoch"] < self.epoch]
        if self.info.is_main:
            log.write_text("".join(json.dumps(row) + "\n" for row in self.history))

    def _last_checkpoint(self) -> dict[str, Any]:
        """`last.pt` to resume from; unreadable, a one-line error that says how to go on."""
        last = self.out / "last.pt"
        try:
            return load_checkpoint(last)
        except WeightsError as err:
            best = (self.out / "best.pt").is_file()
            why = str(err).removesuffix("; use another checkpoint")
            raise WeightsError(f"cannot resume: {why}. Delete {last} to train this run again from epoch 1 with its "
                               "options (`--resume` does that when there is no last.pt)"
                               + (f"; {self.out / 'best.pt'} still holds its selected model for evaluate and predict"
                                  if best else "")) from None

    def _zero_loss(self) -> torch.Tensor:
        return torch.zeros((), dtype=torch.float64, device=self.device)

    def _check_loss(self) -> None:
        if not torch.isfinite(self.loss_sum):
            fixes = "lower the learning rate (--lr)" + ("" if self.amp_dtype is None else " or use --precision fp32")
            again = " and --overwrite (this run's checkpoints would be replaced)" if (self.out / "last.pt").is_file() \
                else ""
            raise DivergenceError(f"training loss became {float(self.loss_sum)} in epoch {self.epoch + 1} (by step "
                                  f"{self.global_step}); retrain with {fixes}{again}")

    # -- loop ----------------------------------------------------------------------------------------------------
    def _optimizer_step(self) -> None:
        cfg = self.config
        if cfg.clip_value is not None or cfg.clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            if cfg.clip_value is not None:
                nn.utils.clip_grad_value_(self.model.parameters(), cfg.clip_value)
            if cfg.clip_norm is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1

    def _loader(self, dataset, batches, epoch: int) -> DataLoader:
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return DataLoader(dataset, batch_sampler=batches, num_workers=self.config.workers, generator=gen,
                          pin_memory=self.device.type == "cuda")

    def train_epoch(self) -> dict[str, float]:
        cfg, epoch = self.config, self.epoch
        self.train_ds.set_epoch(epoch)
        batches = _epoch_batches(self.train_ds, cfg, self.info, epoch)
        todo = batches[self.batches_done:]
        self.net.train()
        bar = tqdm(total=len(batches) // cfg.grad_accum, initial=self.batches_done // cfg.grad_accum,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and self.info.is_main),
                   leave=False, dynamic_ncols=True)
        start, images = time.perf_counter(), 0
        for batch in self._loader(self.train_ds, todo, epoch):
            batch = to_device(batch, self.device, self.channels_last)
            last_micro = (self.batches_done + 1) % cfg.grad_accum == 0
            sync = nullcontext() if last_micro or not self.info.enabled else self.net.no_sync()
            with sync:
                with autocast(self.device, self.amp_dtype):
                    loss = self.loss_fn(forward(self.net, batch), batch["mask"])
                self.scaler.scale(loss / cfg.grad_accum).backward()
            self.batches_done += 1
            self.loss_sum += loss.detach().double() * batch["image"].shape[0]  # on the device: no sync per step
            self.loss_count += batch["image"].shape[0]
            images += batch["image"].shape[0] * self.info.world_size
            if last_micro:
                self._optimizer_step()
                bar.update(1)
                if self.global_step % SYNC_EVERY == 0:
                    self._check_loss()
                    bar.set_postfix(loss=f"{float(self.loss_sum) / self.loss_count:.4f}",
                                    img_s=f"{images / (time.perf_counter() - start):.1f}")
                mid_epoch = self.batches_done < len(batches)
                if cfg.save_every_steps and self.global_step % cfg.save_every_steps == 0 and mid_epoch:
                    self._check_loss()  # never overwrite the last good checkpoint with diverged weights
                    self.save_last()
        bar.close()
        self._check_loss()
        elapsed = time.perf_counter() - start
        totals = all_reduce_sum(torch.tensor([float(self.loss_sum), self.loss_count], dtype=torch.float64), self.info)
        return {"train_loss": float(totals[0] / totals[1]), "images_per_s": images / max(elapsed, 1e-9),
                "train_time_s": elapsed}

    def val_loader(self) -> DataLoader:
        indices = list(range(self.info.rank, len(self.val_ds), self.info.world_size))
        return self._loader(self.val_ds, list(BatchSampler(indices, self.config.batch_size, drop_last=False)), 0)

    def improved(self, metrics: dict[str, float]) -> bool:
        key = "val_dice" if self.config.select == "dice" else "val_loss"
        value, best = metrics[key], self.best["metric"]
        better = best is None or (value > best if self.config.select == "dice" else value < best)
        if better:
            self.best = {"metric": value, "epoch": self.epoch + 1}
        return better

    def run(self, deadline: float | None = None) -> TrainResult:
        cfg, first = self.config, self.epoch
        while self.epoch < cfg.epochs:
            if deadline is not None and time.time() >= deadline and self.epoch > first:  # >= 1 epoch per sitting
                return self._result(complete=False)
            row: dict[str, Any] = {"epoch": self.epoch, "step": 0, "lr": self.optimizer.param_groups[0]["lr"]}
            row.update(self.train_epoch())
            row["step"] = self.global_step
            if (self.epoch + 1) % cfg.val_every == 0 or self.epoch + 1 == cfg.epochs:
                # the plain module: DDP's per-forward buffer broadcast would hang when ranks hold unequal val shards
                metrics = validate(unwrap(self.net), self.val_loader(), self.val_loss_fn, self.device, self.amp_dtype,
                                   self.channels_last, self.info, cfg.progress)
                row.update(metrics)
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(metrics["val_loss"])
                if self.improved(metrics) and self.info.is_main:
                    save_checkpoint(self._weights(self.epoch + 1, metrics), self.out / "best.pt")
            if isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR):
                self.scheduler.step()
            row.update(peak_mem_mb=peak_memory_mb(self.device), time=time.time())
            self.history.append(row)
            self.epoch, self.batches_done, self.loss_sum, self.loss_count = self.epoch + 1, 0, self._zero_loss(), 0
            if self.info.is_main:
                with open(self.out / "log.jsonl", "a") as log:
                    log.write(json.dumps(row) + "\n")
                if cfg.progress:
                    tqdm.write(_summary_line(row, cfg.epochs), file=sys.stderr)
            self.keep_snapshot()  # before last.pt: a run killed between the two redoes this epoch and its snapshot
            self.save_last()
        result = self._result(complete=True)
        if self.info.is_main:
            (self.out / "result.json").write_text(json.dumps(
                {"best_metric": result.best_metric, "best_epoch": result.best_epoch, "select": cfg.select,
                 "rank_digests": result.rank_digests, "epochs": cfg.epochs, "world_size": self.info.world_size},
                indent=2) + "\n")
        return result

    def _result(self, complete: bool) -> TrainResult:
        digests = all_gather_objects(weights_digest(self.model), self.info) if complete else []
        best_path = self.out / "best.pt"
        return TrainResult(self.out, self.out / "last.pt", best_path if best_path.is_file() else None,
                           self.best["metric"], self.best["epoch"], self.history, digests, complete)


def _summary_line(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch'] + 1}/{epochs}", f"loss {row['train_loss']:.4f}"]
    parts += [f"{k} {row[k]:.4f}" for k in ("val_loss", "val_dice") if k in row]
    return " | ".join(parts + [f"{row['images_per_s']:.1f} img/s", f"lr {row['lr']:.2e}"])


def run_training(run_cls: type[TrainingRun], config: TrainConfig, resume: bool = False,
                 deadline: float | None = None, overwrite: bool = False) -> TrainResult:
    """Build `run_cls(config, resume, overwrite)`, run it (stopping at the first epoch checkpoint after `deadline`, a
    `time.time()` value), and tear down the process group it set up (also on failure)."""
    run = run_cls(config, resume, overwrite)
    try:
        return run.run(deadline)
    finally:
        cleanup(run.info)
