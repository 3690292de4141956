"""Training configuration: one dataclass holding every option of a run (saved as JSON beside it)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from polyplib.errors import ConfigError

CHOICES = {
    "optimizer": ("adam", "adamw"),
    "schedule": ("constant", "plateau", "warmup-cosine", "warmup-cosine-authors"),
    "precision": ("auto", "bf16", "fp16", "fp32"),
    "select": ("dice", "loss"),
}


@dataclass(frozen=True)
class TrainConfig:
    """Every option of one training run; `replace(**overrides)` returns a validated copy."""

    model: str = "gmsrf"
    recipe: str | None = None
    model_options: dict = field(default_factory=dict)
    dataset: str = "kvasir-seg"
    root: str | None = None
    protocol: str = "gmsrf"
    train_split: str = "train"
    val_split: str = "val"
    dataset_options: dict = field(default_factory=dict)
    image_size: int = 256
    augment: bool = True
    batch_size: int = 8
    epochs: int = 50
    lr: float = 1e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"
    plateau_patience: int = 5
    plateau_factor: float = 0.1
    warmup_epochs: int = 0
    warmup_start_lr: float = 0.0
    min_lr: float = 0.0
    grad_accum: int = 1
    clip_value: float | None = None
    clip_norm: float | None = None
    precision: str = "auto"
    channels_last: bool | None = None  # None: auto (channels-last under bf16 on the CPU)
    compile: bool = False
    loss: str = "structure"
    loss_options: dict = field(default_factory=dict)
    val_loss: str | None = None
    select: str = "dice"
    seed: int = 0
    deterministic: bool = True
    workers: int = 0
    out_dir: str = "runs/default"
    val_every: int = 1
    save_every_steps: int = 0
    snapshot_epochs: list = field(default_factory=list)  # keep the weights after these epochs (epoch-K.pt)
    max_steps_per_epoch: int | None = None
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(f.name, f.type, getattr(self, f.name))
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"option {name}={getattr(self, name)!r} is invalid; "
                                  f"choose one of {', '.join(allowed)}")
        for name in ("image_size", "batch_size", "epochs", "grad_accum", "val_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"option {name}={getattr(self, name)!r} must be a positive integer")
        if self.lr <= 0:
            raise ConfigError(f"option lr={self.lr!r} must be positive")
        if self.val_split == "test" or self.val_split == self.train_split:
            raise ConfigError(
                f"option val_split={self.val_split!r}: model selection must use the source dataset's validation split "
                "(never a test split, never the training split); set val_split=val")
        for name in ("model_options", "dataset_options", "loss_options"):
            _check_primitive(getattr(self, name), name)
        snaps = self.snapshot_epochs
        if any(isinstance(e, bool) or not isinstance(e, int) for e in snaps) or snaps != sorted(set(snaps)) or (
                snaps and not 1 <= snaps[0] <= snaps[-1] <= self.epochs):
            raise ConfigError(f"option snapshot_epochs={snaps!r} must list increasing epochs from 1 to "
                              f"epochs={self.epochs}")

    def replace(self, **overrides: Any) -> "TrainConfig":
        """A copy with `overrides` applied (unknown keys are a ConfigError)."""
        unknown = sorted(set(overrides) - {f.name for f in fields(self)})
        if unknown:
            known = ", ".join(f.name for f in fields(self))
            raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; known: {known}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (what checkpoints and `config.json` store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Inverse of `to_dict`; unknown keys are a ConfigError."""
        return cls().replace(**data)

    def save(self, path: str | Path) -> Path:
        """Write the config as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a config JSON written by `save`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read training config {path}: {err}") from None


_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,), "list": (list,)}


def _check_type(name: str, annotation: str, value: Any) -> None:
    """Each option has the type its annotation names (`float | None` also takes None)."""
    base, *rest = annotation.split(" | ")
    if value is None and "None" in rest:
        return
    if not isinstance(value, _TYPES[base]) or (base != "bool" and isinstance(value, bool)):
        raise ConfigError(f"option {name}={value!r} must be of type {annotation}")


def _check_primitive(value: Any, name: str) -> None:
    """Options must be JSON primitives so that checkpoints load with weights_only=True."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"option {name}: key {key!r} must be a string")
            _check_primitive(item, f"{name}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_primitive(item, f"{name}[{i}]")
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise ConfigError(f"option {name}={value!r} must be a number, string, bool, list or dict")


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true/false/null, lists), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_pairs(items: list[str], option: str = "--set", example: str = "image_size=128") -> dict[str, Any]:
    """`key=value` strings as a dict (values by `parse_value`, the last of a repeated key kept); a string without a key
    and `=` is a ConfigError naming `option`."""
    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {item!r}: expected key=value, e.g. {option} {example}")
        pairs[key] = parse_value(raw)
    return pairs


def apply_overrides(config: TrainConfig, items: list[str]) -> TrainConfig:
    """Apply `key=value` strings; `model_options.variant=official` sets one key of a dict option."""
    updates: dict[str, Any] = {}
    for key, value in parse_pairs(items).items():
        head, _, sub = key.partition(".")
        if sub:
            current = updates.get(head, getattr(config, head, None))
            if not isinstance(current, dict):
                raise ConfigError(f"--set {key}=...: {head} is not a dict option")
            updates[head] = {**current, sub: value}
        else:
            updates[key] = value
    return config.replace(**updates)
