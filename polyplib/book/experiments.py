"""Trained models in the chapters: the recipe of a run, its checkpoint's model and predictions."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

RECIPE_FIELDS = ("model", "model_options", "dataset", "dataset_options", "protocol", "image_size", "augment",
                 "batch_size", "epochs", "max_steps_per_epoch", "lr", "optimizer", "schedule", "loss", "loss_options",
                 "select", "seed", "precision", "channels_last")


def recipe_table(config: Any) -> pd.DataFrame:
    """The options of a run spec's config (or a `TrainConfig`) that define the experiment, one row per option."""
    values = config if isinstance(config, dict) else config.to_dict()
    shown = {**values, "channels_last": "auto" if values["channels_last"] is None else values["channels_last"]}
    return pd.DataFrame([{"option": k, "value": str(shown[k])} for k in RECIPE_FIELDS])


def load_model(checkpoint: Path | str, device: str = "cpu") -> Any:
    """The trained model of a checkpoint, in eval mode."""
    from polyplib.engine.evaluate import load_trained_model

    return load_trained_model(checkpoint, device)[0]


def predict(model: Any, items: list[dict[str, Any]], device: str = "cpu") -> list[Any]:
    """Probability maps `[1, H, W]` of a model (or checkpoint) for dataset items (main output, sigmoid)."""
    import torch

    from polyplib.engine.evaluate import model_predict_fn

    model = load_model(model, device) if isinstance(model, (str, Path)) else model
    batch = {"image": torch.stack([item["image"] for item in items])}
    return list(model_predict_fn(model, torch.device(device))(batch).cpu())
