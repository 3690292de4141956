"""Model registry: `create_model(name, **options)`, `list_models()`, `register_model(name)`, `describe(...)`."""
from __future__ import annotations

import copy
import inspect
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from polyplib.errors import ConfigError
from polyplib.plugins import load_plugins

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_NO_WEIGHTS: dict[str, dict] = {}  # per model: option values that build the architecture without fetching weights


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder `fn(**options) -> nn.Module` under `name` (from any module)."""
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ConfigError(f"model name {name!r} is already registered by {_REGISTRY[name].__module__}")
        _REGISTRY[name] = fn
        return fn
    return wrap


def register_weight_options(name: str, **no_weights) -> None:
    """Declare the options of `name` that only pick initial weights, with the values that fetch none."""
    _NO_WEIGHTS[name] = no_weights


def list_models() -> list[str]:
    """Every registered model name, plugins included, sorted."""
    load_plugins()
    return sorted(_REGISTRY)


def create_model(name: str, **options) -> nn.Module:
    """Build model `name` with keyword `options`; unknown names or options raise ConfigError listing the choices."""
    if name not in _REGISTRY:
        load_plugins()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of {sorted(_REGISTRY)}")
    builder = _REGISTRY[name]
    signature = inspect.signature(builder)
    unknown = sorted(set(options) - set(signature.parameters))
    if unknown:
        raise ConfigError(f"model {name!r} has no option(s) {unknown}; valid options: {list(signature.parameters)}")
    return builder(**options)


def create_architecture(name: str, **options) -> nn.Module:
    """`create_model` for a model whose full state dict is loaded next: no pretrained weights are fetched or read."""
    if name not in _REGISTRY:
        load_plugins()
    return create_model(name, **{**options, **_NO_WEIGHTS.get(name, {})})


def _example_inputs(model: nn.Module, image_size: int, device: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A [1,3,S,S] image in [0,1] plus the extra inputs the model lists (a centred box for `boxes`)."""
    image = torch.full((1, 3, image_size, image_size), 0.5, device=device)
    extras = {}
    for key in getattr(model, "extra_inputs", ()):
        if key != "boxes":
            raise ConfigError(f"describe() cannot build the extra input {key!r} of {type(model).__name__}")
        lo, hi = image_size / 4, 3 * image_size / 4
        extras[key] = torch.tensor([[lo, lo, hi, hi]], device=device)
    return image, extras


def _copy(model: nn.Module, device: str) -> nn.Module:
    """Deep copy of `model`; on `meta` parameters and buffers become empty meta tensors (no data copied)."""
    if device != "meta":
        return copy.deepcopy(model)
    memo = {id(p): nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad) for p in model.parameters()}
    memo.update({id(b): torch.empty_like(b, device="meta") for b in model.buffers()})
    return copy.deepcopy(model, memo)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """All parameters and those that train (`requires_grad`) of a model."""
    return {"params": sum(p.numel() for p in model.parameters()),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def describe(name_or_model: str | nn.Module, image_size: int = 256, **options) -> dict:
    """Parameters, trainable parameters, GFLOPs of one eval-mode forward at batch 1 and `image_size`^2 (a
    multiply-add counts 2 FLOPs, `torch.utils.flop_counter`), the eval output shape, and `output_shapes`: the
    training-mode outputs (deep supervision included) for a batch of 2 (BatchNorm needs 2). A given model is copied
    first, so it is left untouched."""
    if options and not isinstance(name_or_model, str):
        raise ConfigError(f"describe(model, ...) takes options only with a model name; got {sorted(options)}")
    model = create_model(name_or_model, **options) if isinstance(name_or_model, str) else name_or_model
    # data-dependent prompt handling (Polyp-SAM) needs real tensors; everything else runs shapes-only on `meta`
    device = "cpu" if getattr(model, "extra_inputs", ()) else "meta"
    work = (model if isinstance(name_or_model, str) else _copy(model, device)).to(device)
    image, extras = _example_inputs(work, image_size, device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        out = work.eval()(image, **extras)
    with torch.no_grad():
        train_out = work.train()(image.expand(2, -1, -1, -1), **{k: v.expand(2, -1) for k, v in extras.items()})
    shapes = [tuple(o.shape) for o in (train_out if isinstance(train_out, tuple) else (train_out,))]
    return {
        **parameter_counts(model),
        "gflops": counter.get_total_flops() / 1e9,
        "image_size": image_size,
        "output_shape": tuple(out.shape),
        "output_shapes": shapes,
    }
