"""The training and evaluation experiment grid of the book (recipes, runs, predictions)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyplib import viz
from polyplib.book.data import dataset_key
from polyplib.book.profiles import REPO_ROOT, BookProfile


def model_options(settings: BookProfile, model: str, **options: Any) -> dict[str, Any]:
    """Options of `model` under the profile (smoke: small widths/backbones), updated with `options`."""
    base = settings.gmsrf_options if model == "gmsrf" else settings.baseline_options.get(model, {})
    return {k: v for k, v in {**base, **options}.items() if v is not None}


def run_dir(settings: BookProfile, name: str) -> Path:
    """Where a chapter's run writes checkpoints: a fresh temporary folder (smoke) or `runs/book/<name>` (full)."""
    import tempfile

    if settings.name == "smoke":
        return Path(tempfile.mkdtemp(prefix=f"polyp-book-{name}-"))
    return REPO_ROOT / "runs" / "book" / name


def train_config(settings: BookProfile, model: str = "gmsrf", source: str | None = None, seed: int | None = None,
                 name: str | None = None, options: dict[str, Any] | None = None, **overrides: Any):
    """The profile's training recipe (the `gmsrf_preset`, shrunk to the profile's sizes) for one model and source."""
    from polyplib.engine import get_preset

    source = source or settings.source
    seed = settings.seeds[0] if seed is None else seed
    dataset, dataset_options = dataset_key(source, settings)
    shrink = {} if settings.name == "full" else {
        "epochs": settings.epochs, "max_steps_per_epoch": settings.max_steps, "batch_size": 2, "augment": False,
        "precision": "fp32", "workers": 0}
    if settings.name == "full" and settings.epochs is not None:
        shrink["epochs"] = settings.epochs
    label = name or f"{model}-{source}-seed{seed}"
    return get_preset(settings.gmsrf_preset).replace(
        model=model, model_options=model_options(settings, model, **(options or {})), dataset=dataset,
        dataset_options=dataset_options, root=settings.data_root, image_size=settings.image_size, seed=seed,
        device=settings.device, progress=False, out_dir=str(run_dir(settings, label)), **{**shrink, **overrides})


def evaluate_run(settings: BookProfile, trained: Any, tests: tuple[str, ...] | None = None, *, split: str = "test",
                 predict_fn: Any = None, image_size: int | None = None, protocol: str = "gmsrf",
                 **labels: Any) -> pd.DataFrame:
    """Both metric protocols of a model, checkpoint or `predict_fn` on each test set's `split`: one row per test set."""
    import tempfile

    from polyplib.engine.evaluate import evaluate

    trained = load_model(trained, settings.device) if isinstance(trained, (str, Path)) else trained
    rows = []
    for key in tests or settings.test_sets:
        name, options = dataset_key(key, settings)
        with tempfile.TemporaryDirectory(prefix="polyp-book-eval-") as out:
            result = evaluate(trained, name, out_dir=out, root=settings.data_root, split=split, protocol=protocol,
                              image_size=image_size or settings.image_size, dataset_options=options, overlays=False,
                              progress=False, device=settings.device, predict_fn=predict_fn)
        rows.append({**labels, "test": key, "n": result.summary["n"], **result.summary["means"]})
    return pd.DataFrame(rows)


GMSRF_COLUMNS = ("dice", "iou", "recall", "precision")  # GMSRF protocol: threshold 0.5 at 256x256 (Sec. III)
PRANET_COLUMNS = ("meanDice", "meanIoU", "wFm", "Sm", "meanEm", "MAE")  # PraNet toolbox: 256 thresholds
RECIPE_FIELDS = ("model", "model_options", "dataset", "dataset_options", "protocol", "image_size", "augment",
                 "batch_size", "epochs", "max_steps_per_epoch", "lr", "optimizer", "schedule", "loss", "loss_options",
                 "select", "seed", "precision", "device")


def recipe_table(config: Any) -> pd.DataFrame:
    """The options of a `TrainConfig` that define the experiment (no paths), one row per option."""
    values = config.to_dict()
    return pd.DataFrame([{"option": k, "value": str(values[k])} for k in RECIPE_FIELDS])


def checkpoint_of(result: Any) -> Path:
    """The checkpoint a run selected (best validation score), else its last one."""
    return result.best_checkpoint or result.last_checkpoint


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


def comparison_models(settings: BookProfile) -> dict[str, dict[str, Any]]:
    """GMSRF-Net and the profile's baselines as experiment specs (label -> model and options)."""
    labels = {"unet-original": "U-Net (original)", "unet": "U-Net", "unetplusplus": "U-Net++",
              "deeplabv3plus": "DeepLabv3+"}
    return {"GMSRF-Net": {"model": "gmsrf"}, **{labels.get(b, b): {"model": b} for b in settings.baselines}}


def ablation_models(settings: BookProfile) -> dict[str, dict[str, Any]]:
    """GMSRF-Net ablations (Sec. II-B): CMSA, MSFS, number of modules, deep supervision, loss bugs, the paper's
    literal fusion order (Eq. 2-3) and CMSA without activation (Eq. 1), variant."""
    specs = {
        "GMSRF-Net": {"model": "gmsrf"},
        "no CMSA": {"model": "gmsrf", "options": {"cmsa": False}},
        "no MSFS": {"model": "gmsrf", "options": {"msfs": False}},
        "1 GMSRF module": {"model": "gmsrf", "options": {"num_modules": 1}},
        "no deep supervision": {"model": "gmsrf", "options": {"deep_supervision": False}},
        "official loss bugs": {"model": "gmsrf", "loss_options": {"legacy_bugs": True}},
        "Eq. 2-3 fusion": {"model": "gmsrf", "options": {"fusion": "paper"}},
        "Eq. 1 CMSA (no sigmoid)": {"model": "gmsrf", "options": {"cmsa_gate": "linear"}},
    }
    if settings.name == "full":  # the stem-bypassed Res2Net variant runs at 15x the FLOPs: GPU only
        specs["official variant"] = {"model": "gmsrf", "options": {"variant": "official", "backbone": None}}
    return specs


def run_grid(settings: BookProfile, specs: dict[str, dict[str, Any]], sources: tuple[str, ...] | None = None,
             seeds: tuple[int, ...] | None = None, tests: tuple[str, ...] | None = None, **overrides: Any) -> pd.DataFrame:
    """Train every spec on every source with every seed, test on every test set: one row per (model, source, seed, test).

    `overrides` change the training recipe of every run (`None` values are ignored)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    from polyplib.engine import train

    frames = []
    for source in sources or settings.sources:
        for label, spec in specs.items():
            spec = dict(spec)
            model, options = spec.pop("model"), spec.pop("options", {})
            for seed in seeds or settings.seeds:
                config = train_config(settings, model, source, seed, name=f"{viz.slug(label)}-{source}-seed{seed}",
                                      options=options, **{**spec, **overrides})
                result = train(config)
                frames.append(evaluate_run(settings, checkpoint_of(result), tests, model=label, train=source, seed=seed))
                if settings.name == "smoke":
                    shutil.rmtree(result.out_dir, ignore_errors=True)
    table = pd.concat(frames, ignore_index=True)
    table.insert(3, "kind", np.where(table["train"] == table["test"], "source", "unseen"))
    return table
