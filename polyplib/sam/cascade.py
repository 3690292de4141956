"""Beyond the paper: automatic box prompts from another model (no GT at test time) and Dice vs box jitter."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from polyplib.errors import ConfigError
from polyplib.sam.model import PolypSAM
from polyplib.sam.prompts import boxes_from_mask

PredictFn = Callable[[dict[str, Any]], torch.Tensor]
JITTERS = (0.0, 0.05, 0.1, 0.2)


def boxes_from_probabilities(probs: torch.Tensor, threshold: float = 0.5, max_boxes: int = 8) -> torch.Tensor:
    """Probabilities [B,1,H,W] -> boxes [B,K,4], one per connected component of `probs > threshold` (NaN padding)."""
    if probs.dim() != 4 or probs.shape[1] != 1:
        raise ConfigError(f"detector output must be probabilities [B,1,H,W]; got {tuple(probs.shape)}")
    fg = (probs.detach().float().cpu() > threshold).numpy()
    return torch.stack([boxes_from_mask(m, per_component=True, max_boxes=max_boxes) for m in fg])


def sam_predict_fn(sam: PolypSAM, device: torch.device,
                   boxes_fn: Callable[[dict[str, Any]], torch.Tensor]) -> PredictFn:
    """Engine `predict_fn`: Polyp-SAM probabilities for a batch, prompted by `boxes_fn(batch)`."""
    sam = sam.to(device).eval()

    @torch.no_grad()
    def predict(batch: dict[str, Any]) -> torch.Tensor:
        boxes = boxes_fn(batch).to(device)
        return torch.sigmoid(sam(batch["image"].to(device), boxes))

    return predict


def cascade_predict_fn(detector: PredictFn, sam: PolypSAM, device: torch.device, threshold: float = 0.5,
                       max_boxes: int = 8, detector_size: int | None = None) -> PredictFn:
    """Detector probabilities (at its own input size) -> one box per component -> Polyp-SAM (no component: empty)."""

    def boxes(batch: dict[str, Any]) -> torch.Tensor:
        image = batch["image"]
        if detector_size is not None and tuple(image.shape[-2:]) != (detector_size, detector_size):
            small = F.interpolate(image, (detector_size, detector_size), mode="bilinear", antialias=True)
            probs = F.interpolate(detector({**batch, "image": small}), image.shape[-2:], mode="bilinear")
        else:
            probs = detector(batch)
        return boxes_from_probabilities(probs, threshold, max_boxes)

    return sam_predict_fn(sam, device, boxes)


def gt_box_predict_fn(sam: PolypSAM, device: torch.device, jitter: float = 0.0, per_component: bool = False,
                      seed: int = 0) -> PredictFn:
    """The paper's oracle prompt: tight GT box per image, optionally jittered (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    return sam_predict_fn(sam, device, lambda batch: torch.stack(
        [boxes_from_mask(m, per_component, jitter, rng) for m in batch["mask"]]))


def box_fill_predict_fn(device: torch.device) -> PredictFn:
    """Reference line without SAM: the tight GT box itself, filled, as the prediction (what the prompt alone gives)."""

    def predict(batch: dict[str, Any]) -> torch.Tensor:
        masks = batch["mask"]
        out = torch.zeros_like(masks, dtype=torch.float32)
        for i, box in enumerate(torch.stack([boxes_from_mask(m) for m in masks])[:, 0]):
            if not box.isnan().any():
                x0, y0, x1, y1 = box.int().tolist()
                out[i, :, y0:y1, x0:x1] = 1.0
        return out.to(device)

    return predict


def gt_box_labels(sam: PolypSAM, jitter: float = 0.0) -> dict:
    """Summary labels of a ground-truth-box evaluation: prompt source, its description and the SAM weights."""
    return {"prompt_source": "gt-box" if jitter == 0 else "gt-box-jitter",
            "prompts": f"ground-truth boxes (jitter {jitter})", "pretrained_source": sam.pretrained_source,
            "recipe": sam.recipe}


def gt_box_evaluation(sam: PolypSAM, device: torch.device) -> tuple[PredictFn, dict]:
    """How `evaluate` runs Polyp-SAM (paper §2.3/§3): tight ground-truth box prompts, and the labels it records."""
    return gt_box_predict_fn(sam, device, per_component=sam.prompts.per_component), gt_box_labels(sam)


def record_source(summary_path: Path, sam: PolypSAM, prompts: str, prompt_source: str | None = None) -> dict:
    """Add what the SAM weights were (`scratch` or a file) and where prompts came from to an evaluation summary."""
    summary = json.loads(summary_path.read_text())
    summary.update(pretrained_source=sam.pretrained_source, recipe=sam.recipe, prompts=prompts)
    if prompt_source is not None:
        summary["prompt_source"] = prompt_source
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def evaluate_sam(sam: PolypSAM, dataset: str, out_dir: str | Path, *, detector: nn.Module | None = None,
                 detector_size: int | None = None, jitter: float = 0.0, threshold: float = 0.5, device: str = "auto",
                 **eval_options):
    """Engine evaluation of Polyp-SAM with GT boxes, jittered GT boxes or a detector's boxes, on original-resolution
    images one at a time (`image_size` and `batch_size` are ignored), with the GMSRF, PraNet and MONAI protocols."""
    from polyplib.engine.evaluate import evaluate, model_predict_fn
    from polyplib.engine.trainer import resolve_device

    dev = resolve_device(device)
    if detector is not None:
        fn = cascade_predict_fn(model_predict_fn(detector, dev), sam, dev, threshold, sam.prompts.max_boxes,
                                detector_size)
        prompts, source = f"detector boxes (threshold {threshold}, one per component)", "detector"
    else:
        fn = gt_box_predict_fn(sam, dev, jitter, sam.prompts.per_component)
        labels = gt_box_labels(sam, jitter)
        prompts, source = labels["prompts"], labels["prompt_source"]
    eval_options.update(image_size=None, batch_size=1, monai=True)
    result = evaluate(None, dataset, out_dir=out_dir, predict_fn=fn, device=device, **eval_options)
    result.summary = record_source(result.files["summary"], sam, prompts, source)
    return result


def box_robustness(sam: PolypSAM, dataset: str, out_dir: str | Path, jitters: tuple[float, ...] = JITTERS,
                   **eval_options) -> pd.DataFrame:
    """Dice (both protocols) as a function of GT-box jitter (fraction of the box size per side)."""
    rows = []
    for jitter in jitters:
        result = evaluate_sam(sam, dataset, Path(out_dir) / f"jitter_{jitter:g}", jitter=jitter, overlays=False,
                              **eval_options)
        means = result.summary["means"]
        rows.append({"jitter": jitter, "dice": means["dice"], "meanDice": means.get("meanDice"),
                     "iou": means["iou"], "n": result.summary["n"]})
    table = pd.DataFrame(rows)
    table.to_csv(Path(out_dir) / "box_robustness.csv", index=False)
    return table
