"""Run kinds (nnU-Net v2's trainers found by name): which `TrainingRun` trains a model and how `evaluate` runs it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from polyplib.engine.config import TrainConfig
from polyplib.engine.trainer import TrainingRun, TrainResult, run_training
from polyplib.errors import ConfigError
from polyplib.plugins import PLUGINS, load_plugins

PredictFn = Callable[[dict[str, Any]], torch.Tensor]
# (model, device) -> (predict_fn(batch) -> probabilities [B,1,H,W], labels that summary.json records)
Evaluation = Callable[[nn.Module, torch.device], tuple[PredictFn, dict[str, Any]]]
DEFAULT = "segmentation"


@dataclass(frozen=True)
class RunKind:
    """A kind of run: its trainer, the models it trains, and the evaluation of models that need more than the image."""

    name: str
    run: type[TrainingRun]
    models: tuple[str, ...] = ()  # the model names it trains (the default kind: every other one)
    module: type[nn.Module] | None = None  # the model class whose instances `evaluation` runs
    evaluation: Evaluation | None = None  # None: the model's main output on the image alone

    def train(self, config: TrainConfig, resume: bool = False, deadline: float | None = None,
              overwrite: bool = False) -> TrainResult:
        """Train `config` with this kind's run (`run_training`)."""
        return run_training(self.run, config, resume, deadline, overwrite)


_KINDS: dict[str, RunKind] = {DEFAULT: RunKind(DEFAULT, TrainingRun)}


def register_run_kind(kind: RunKind) -> RunKind:
    """Add a run kind (a plugin does this at import); a name is registered once."""
    if kind.name in _KINDS and _KINDS[kind.name] != kind:
        raise ConfigError(f"run kind {kind.name!r} is already registered by {_KINDS[kind.name].run.__module__}")
    _KINDS[kind.name] = kind
    return kind


def list_run_kinds() -> list[str]:
    """Every registered run kind, plugins included, sorted."""
    load_plugins()
    return sorted(_KINDS)


def run_kind(name: str) -> RunKind:
    """The run kind `name` (a campaign spec's `kind`)."""
    if name not in _KINDS:
        load_plugins()
    if name not in _KINDS:
        raise ConfigError(f"run kind {name!r} is not available (registered: {', '.join(sorted(_KINDS))}; plugins "
                          f"{', '.join(PLUGINS)}); install the plugin that registers it")
    return _KINDS[name]


def kind_of(model: str | nn.Module) -> RunKind:
    """The run kind that trains a model name, or that evaluates a model instance (whose class, defined in a plugin,
    was registered when the plugin was imported); the default kind otherwise."""
    if isinstance(model, str):
        load_plugins()
    for kind in _KINDS.values():
        if isinstance(model, str) and model in kind.models:
            return kind
        if isinstance(model, nn.Module) and kind.module is not None and isinstance(model, kind.module):
            return kind
    return _KINDS[DEFAULT]


def train(config: TrainConfig, resume: bool = False, deadline: float | None = None,
          overwrite: bool = False) -> TrainResult:
    """Train `config.model` with the run kind that trains it; with `resume=True` continue from `<out_dir>/last.pt`
    (bit-identical on the CPU; without one it says so and starts afresh); past `deadline` (`time.time()`) stop at the
    next epoch checkpoint with `complete=False`. An out_dir holding a different run is refused unless `overwrite`."""
    from polyplib.models import list_models

    if config.model not in list_models():
        raise ConfigError(f"unknown model {config.model!r}; choose one of {list_models()}")
    return kind_of(config.model).train(config, resume, deadline, overwrite)
