"""Polyp-SAM experiments of the book: recipes, evaluation, sizes and the box-fill reference."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from polyplib.book.data import dataset_key
from polyplib.book.experiments import evaluate_run, load_model, run_dir
from polyplib.book.profiles import BookProfile


def sam_config(settings: BookProfile, strategy: str = "decoder", seed: int | None = None, **overrides: Any):
    """The Polyp-SAM recipe (Sec. 2.4: AdamW 4e-6, warm-up + cosine, Dice loss) for one strategy, at the profile's sizes."""
    from polyplib.engine import get_preset

    seed = settings.seeds[0] if seed is None else seed
    dataset, dataset_options = dataset_key(settings.sam_train, settings)
    out = run_dir(settings, f"polyp-sam-{strategy}-seed{seed}")
    options = {**settings.sam_options, "strategy": strategy, "cache_dir": str(out / "embeddings")}
    shrink = {} if settings.name == "full" else {
        "epochs": settings.epochs, "max_steps_per_epoch": settings.max_steps, "batch_size": 2, "grad_accum": 1,
        "precision": "fp32", "workers": 0, "warmup_epochs": 1}
    return get_preset("polyp-sam-paper").replace(
        model=settings.sam_model, model_options=options, dataset=dataset, dataset_options=dataset_options,
        root=settings.data_root, image_size=settings.sam_image_size, seed=seed, device=settings.device,
        progress=False, out_dir=str(out), **{**shrink, **overrides})


def sam_label(settings: BookProfile) -> str:
    """The paper's name of the profile's Polyp-SAM (`Polyp-SAM-B` for `polyp-sam-b`)."""
    head, _, size = settings.sam_model.rpartition("-")
    return f"Polyp-SAM-{size.upper()}" if head == "polyp-sam" and len(size) == 1 else settings.sam_model


def evaluate_sam_run(settings: BookProfile, sam: Any, tests: tuple[str, ...] | None = None, *, jitter: float = 0.0,
                     detector: Any = None, **labels: Any) -> pd.DataFrame:
    """Polyp-SAM on each test set with GT boxes (optionally jittered) or a detector's boxes: one row per test set."""
    import tempfile

    from polyplib.sam.cascade import evaluate_sam

    sam = load_model(sam, settings.device) if isinstance(sam, (str, Path)) else sam
    rows = []
    for key in tests or settings.test_sets:
        name, options = dataset_key(key, settings)
        with tempfile.TemporaryDirectory(prefix="polyp-book-sam-") as out:
            result = evaluate_sam(sam, name, out, detector=detector, detector_size=settings.image_size, jitter=jitter,
                                  device=settings.device, root=settings.data_root, split="test",
                                  protocol=settings.sam_test_protocol, image_size=settings.sam_image_size,
                                  dataset_options=options, overlays=False, progress=False)
        rows.append({**labels, "test": key, "n": result.summary["n"], **result.summary["means"]})
    return pd.DataFrame(rows)


def describe_sam(settings: BookProfile, strategy: str) -> dict[str, Any]:
    """Parameters and trainable parameters of the profile's Polyp-SAM under a strategy."""
    import polyplib.sam  # noqa: F401  (registers the polyp-sam models)
    from polyplib.models import create_model

    model = create_model(settings.sam_model, strategy=strategy, **settings.sam_options)
    return {"params": sum(p.numel() for p in model.parameters()),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def evaluate_box_fill(settings: BookProfile, tests: tuple[str, ...] | None = None, **labels: Any) -> pd.DataFrame:
    """The reference line without SAM: the filled ground-truth box as the prediction, on each test set."""
    import torch

    from polyplib.sam.cascade import box_fill_predict_fn

    fn = box_fill_predict_fn(torch.device(settings.device))
    return evaluate_run(settings, None, tests, predict_fn=fn, image_size=settings.sam_image_size,
                        protocol=settings.sam_test_protocol, **labels)
