"""Evaluation under both protocols: GMSRF (threshold 0.5 at 256×256), PraNet (original size, 256 thresholds)."""
from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, default_collate
from tqdm.auto import tqdm

from polyplib.atomic import atomic_write
from polyplib.data.io import DataWarning, read_image
from polyplib.data.transforms import image_tensor, resize_image
from polyplib.engine.checkpoint import load_checkpoint
from polyplib.engine.config import TrainConfig
from polyplib.engine.kinds import kind_of
from polyplib.engine.provenance import provenance
from polyplib.engine.precision import keep_fp32_exact
from polyplib.engine.trainer import FORMAT, forward, resolve_device
from polyplib.errors import ConfigError, DataError, DivergenceError, WeightsError
from polyplib.outputs import check_output_dir, check_positive, check_probability

PredictFn = Callable[[dict[str, Any]], torch.Tensor]
GMSRF_KEYS = ("dice", "iou", "recall", "precision")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
EVAL_FILES = ("per_image.csv", "summary.json", "overlays.png", "predictions")  # what `evaluate` writes in out_dir
# same values: the same evaluation (everything that changes its numbers but the checkpoint file's content)
EVAL_IDENTITY = ("checkpoint", "dataset", "split", "protocol", "image_size", "dataset_options", "data_root")


@dataclass
class EvalResult:
    """Per-image table, summary and the files written."""

    per_image: pd.DataFrame
    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def load_trained_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """Rebuild the model of a training checkpoint (best.pt or last.pt) in eval mode, without fetching pretrained
    weights (the checkpoint holds them all); the attributes the run recorded (`model.checkpoint_attrs`) come back."""
    from polyplib.models import create_architecture

    state = load_checkpoint(path)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise WeightsError(f"checkpoint {path} has no model weights and config; "
                           "pass best.pt/last.pt of `polyplib train`")
    if state.get("format", FORMAT) != FORMAT:
        raise WeightsError(f"checkpoint {path} has format {state['format']!r}, which this polyplib does not read "
                           f"(it reads {FORMAT!r}); use the polyplib version that wrote it")
    config = TrainConfig.from_dict(state["config"])
    model = create_architecture(config.model, **config.model_options)
    mismatch = state_dict_mismatch(model.state_dict(), state["model"])
    if mismatch:
        raise WeightsError(f"checkpoint {path} does not fit model {config.model!r} ({type(model).__name__}, options "
                           f"{config.model_options}): {mismatch}; it was written for another model or options")
    model.load_state_dict(state["model"])
    recorded = state.get("model_attrs", {})
    for name in getattr(model, "checkpoint_attrs", ()):
        setattr(model, name, recorded.get(name, "unknown (checkpoint written before polyplib recorded it)"))
    return model.to(device).eval(), config


def state_dict_mismatch(expected: dict[str, torch.Tensor], given: dict[str, Any]) -> str:
    """'' when `given` fits `expected`, else a one-line count of missing, unexpected and wrongly shaped tensors."""
    missing, unexpected = sorted(expected.keys() - given.keys()), sorted(given.keys() - expected.keys())
    shapes = [k for k in expected.keys() & given.keys()
              if not torch.is_tensor(given[k]) or tuple(given[k].shape) != tuple(expected[k].shape)]
    parts = [f"{len(missing)} missing tensors (e.g. {missing[0]})" if missing else "",
             f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})" if unexpected else ""]
    if shapes:
        key = sorted(shapes)[0]
        got = tuple(given[key].shape) if torch.is_tensor(given[key]) else type(given[key]).__name__
        parts.append(f"{len(shapes)} tensors of another shape (e.g. {key}: {got} in the checkpoint, "
                     f"{tuple(expected[key].shape)} in the model)")
    return ", ".join(p for p in parts if p)


def default_eval_dir(checkpoint: str | Path, dataset: str, split: str | None) -> Path:
    """`<run folder>/eval-<checkpoint stem>-<dataset>[-<split>]`: one folder per checkpoint and dataset split."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent / "-".join(["eval", checkpoint.stem, dataset] + ([split] if split else []))


def _differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The EVAL_IDENTITY fields in which a recorded evaluation differs from this one."""
    differ = []
    for key in EVAL_IDENTITY:
        a, b = recorded.get(key), now.get(key)
        if key == "checkpoint" and a is not None and b is not None:
            a, b = Path(a).resolve(), Path(b).resolve()
        if a != b:
            differ.append(key)
    return differ


def claim_eval_dir(out: Path, identity: dict[str, Any], overwrite: bool) -> None:
    """Make `out` ready for this evaluation: refuse one holding a different evaluation (unless `overwrite`);
    remove the previous outputs of this same evaluation (or, with `overwrite`, of any) so none is left stale."""
    present = [out / name for name in EVAL_FILES if (out / name).exists()]
    if not present:
        return
    try:
        recorded = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        recorded = {}
    differ = _differences(recorded, identity) if isinstance(recorded, dict) else ["summary.json"]
    if not overwrite and differ:
        what = (f"checkpoint {recorded.get('checkpoint')} on {recorded.get('dataset')} split {recorded.get('split')}, "
                f"differing in {', '.join(differ)}" if isinstance(recorded, dict) and recorded
                else f"files {', '.join(p.name for p in present)}")
        raise ConfigError(f"--out {out} holds another evaluation ({what}); pass --overwrite to replace it "
                          "or choose another --out")
    for path in present:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def default_predict_fn(model: nn.Module, device: torch.device) -> tuple[PredictFn, dict[str, Any]]:
    """How `evaluate` runs a model: the evaluation of its run kind (Polyp-SAM: ground-truth box prompts, with the
    labels summary.json records), else the model on the image alone."""
    kind = kind_of(model)
    if kind.evaluation is not None:
        return kind.evaluation(model, device)
    extra = tuple(getattr(model, "extra_inputs", ()))
    if extra:
        raise ConfigError(f"{type(model).__name__} needs the inputs {extra} besides the image and no run kind "
                          "evaluates it; pass evaluate(..., predict_fn=...) that supplies them")
    return model_predict_fn(model, device), {}


def model_predict_fn(model: nn.Module, device: torch.device) -> PredictFn:
    """Probabilities [B, 1, H, W] of a segmentation model (main output in eval mode, sigmoid of the logits)."""
    model = model.to(device).eval()

    @torch.no_grad()
    def predict(batch: dict[str, Any]) -> torch.Tensor:
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        out = forward(model, batch)
        return torch.sigmoid((out[0] if isinstance(out, (tuple, list)) else out).float())

    return predict


def _resize_prob(prob: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resampling of a [1, H, W] probability map (PraNet's test-time upsampling)."""
    if tuple(prob.shape[-2:]) == tuple(size):
        return prob
    return F.interpolate(prob[None], size=tuple(size), mode="bilinear", align_corners=False)[0].clamp(0, 1)


def score_image(prob: torch.Tensor, mask: torch.Tensor, prob_orig: torch.Tensor, mask_orig: torch.Tensor,
                monai: bool = False) -> dict:
    """GMSRF metrics on the model-size map, PraNet metrics and the report card (HD95, NSD, polyp area) at the original
    size, and with `monai` the Polyp-SAM protocol (MONAI DiceMetric / MeanIoU on [1,H,W]: `monaiDice`, `monaiIoU`)."""
    from polyplib.metrics import boundary_metrics, gmsrf_metrics, monai_metrics, pranet_metrics

    gm = gmsrf_metrics(_resize_prob(prob, mask.shape[-2:])[0].numpy(), mask[0].numpy() > 0.5)
    prob_np, gt_np = prob_orig[0].numpy(), mask_orig[0].numpy() > 0.5
    pm = pranet_metrics(prob_np, gt_np)
    mm = monai_metrics(prob_np, gt_np) if monai else {}
    return {**{k: float(gm[k]) for k in GMSRF_KEYS}, **{k: float(v) for k, v in pm.items() if np.isscalar(v)}, **mm,
            **boundary_metrics(prob_np, gt_np)}


def evaluate(model: nn.Module | str | Path | None, dataset: str, *, out_dir: str | Path | None = None,
             root: str | None = None, split: str | None = None, protocol: str = "gmsrf", image_size: int = 256,
             batch_size: int = 8, save_predictions: bool = False, overlays: bool = True,
             predict_fn: PredictFn | None = None, device: str = "auto", dataset_options: dict | None = None,
             progress: bool = True, overwrite: bool = False, monai: bool = False) -> EvalResult:
    """Evaluate a model, a checkpoint path or a `predict_fn(batch) -> probabilities [B,1,H,W]` on one dataset split.

    `out_dir=None` (checkpoint paths only): `default_eval_dir`. A folder holding another evaluation is refused
    unless `overwrite`. Models with `native_resolution` (Polyp-SAM) get original-resolution images one at a time (they
    resize their own input) and add the MONAI protocol columns, as does `monai=True`."""
    from polyplib.data import data_root, load_dataset
    from polyplib.data.frames import shipped_segments

    check_positive(batch_size, "--batch-size")
    check_positive(image_size, "--image-size")
    checkpoint = str(model) if predict_fn is None and isinstance(model, (str, Path)) else None
    if out_dir is None:
        if checkpoint is None:
            raise ConfigError("evaluate needs out_dir (--out) unless the model is a checkpoint path")
        out_dir = default_eval_dir(checkpoint, dataset, split)
    out = check_output_dir(out_dir)
    dev = resolve_device(device)
    keep_fp32_exact(dev, None)  # evaluation forwards in fp32: no TF32 on a GPU either
    labels = {}
    if predict_fn is None:
        if model is None:
            raise ConfigError("evaluate needs a model, a checkpoint path or a predict_fn")
        if checkpoint is not None:
            model, config = load_trained_model(model, dev)
            if config.recipe is not None:
                labels["recipe"] = config.recipe
        predict_fn, more = default_predict_fn(model, dev)
        labels.update(more)
        if getattr(model, "native_resolution", False):
            image_size, batch_size, monai = None, 1, True
    options = dict(protocol=protocol, **(dataset_options or {})) if split else dict(dataset_options or {})
    ds = load_dataset(dataset, root, split=split, image_size=image_size, augment=False, **options)
    ds_orig = load_dataset(dataset, root, split=split, image_size=None, augment=False, **options)
    if len(ds) == 0:
        raise DataError(f"dataset {dataset!r} split {split!r} is empty; check the data root and split name")
    identity = {"checkpoint": checkpoint, "dataset": dataset, "split": split, "protocol": protocol if split else None,
                "image_size": image_size, "dataset_options": dict(dataset_options or {}),
                "data_root": None if dataset == "synthpolyp" else str(data_root(root).resolve())}
    out.mkdir(parents=True, exist_ok=True)
    claim_eval_dir(out, identity, overwrite)
    pred_dir = out / "predictions"
    if save_predictions:
        pred_dir.mkdir(exist_ok=True)
    rows, index = [], 0
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc=f"evaluate {dataset}", disable=not progress, leave=False):
        probs = predict_fn(batch).detach().float().cpu()
        if probs.ndim != 4 or probs.shape[:2] != (len(batch["id"]), 1):
            raise ConfigError(f"predict_fn returned shape {tuple(probs.shape)}; expected [B, 1, H, W] probabilities")
        if not torch.isfinite(probs).all():
            bad = [i for i, p in zip(batch["id"], probs) if not torch.isfinite(p).all()]
            raise DivergenceError(f"the model's output is not finite on {dataset} image(s) {', '.join(map(str, bad))}: "
                                  "its activations overflowed, so no metric of this evaluation would be true; "
                                  "retrain it (lower --lr, another recipe) or report it as diverged")
        for prob, mask in zip(probs, batch["mask"]):
            item = ds_orig[index]
            prob_orig = _resize_prob(prob, item["mask"].shape[-2:])
            rows.append({"id": item["id"], "dataset": item["dataset"],
                         **score_image(prob, mask, prob_orig, item["mask"], monai)})
            if save_predictions:
                write_png(pred_dir / f"{item['id']}.png", (prob_orig[0].numpy() * 255).round().astype(np.uint8))
            index += 1
    table = pd.DataFrame(rows)
    segments = shipped_segments(dataset)
    if segments is not None:
        table["segment"] = table["id"].astype(str).map(segments)
    metrics = [c for c in table.columns if c not in ("id", "dataset", "segment")]
    too_small = table.loc[table["meanEm"].isna(), "id"].astype(str).tolist()
    if too_small:
        warnings.warn(f"{dataset}: {len(too_small)} image(s) too small for the E-measure (a single pixel) are left out "
                      f"of meanEm and maxEm: {', '.join(too_small[:5])}{' ...' if len(too_small) > 5 else ''}",
                      DataWarning, stacklevel=2)
        labels["too_small_for_em"] = too_small
    summary = {**identity, "n": len(table), "means": table[metrics].mean().to_dict(),
               "std": table[metrics].std(ddof=0).to_dict(), **labels, **provenance()}
    files = {"csv": out / "per_image.csv", "summary": out / "summary.json"}
    table.to_csv(files["csv"], index=False)
    files["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    if save_predictions:
        files["predictions"] = pred_dir
    if overlays:
        files["overlays"] = overlay_grid(ds, table, predict_fn, out / "overlays.png")
    return EvalResult(table, summary, files)


def pick_examples(table: pd.DataFrame, key: str = "dice", tiebreak: str | None = None) -> dict[str, int]:
    """Row positions of the best, median and worst image by `key` (ties: by column `tiebreak`, else row order)."""
    second = table[tiebreak].astype(str).to_numpy() if tiebreak else np.arange(len(table))
    order = np.lexsort((second, table[key].to_numpy()))
    return {"best": int(order[-1]), "median": int(order[len(order) // 2]), "worst": int(order[0])}


def overlay_grid(ds, table: pd.DataFrame, predict_fn: PredictFn, path: Path, key: str = "dice") -> Path:
    """Qualitative figure: image, ground truth and thresholded prediction for the best, median and worst images."""
    import matplotlib.pyplot as plt

    picks = pick_examples(table, key)
    fig, axes = plt.subplots(len(picks), 3, figsize=(9, 3 * len(picks)), squeeze=False)
    for row, (label, pos) in zip(axes, picks.items()):
        item = ds[pos]
        prob = predict_fn(default_collate([item])).float().cpu()[0]
        prob = _resize_prob(prob, item["mask"].shape[-2:])[0].numpy()
        image = item["image"].permute(1, 2, 0).numpy()
        overlay = image.copy()
        overlay[prob > 0.5] = 0.5 * overlay[prob > 0.5] + 0.5 * np.array([0.0, 1.0, 0.0])
        for ax, img, title in zip(row, (image, item["mask"][0].numpy(), overlay),
                                  (f"{label}: {item['id']}", "ground truth", f"{key} {table[key].iloc[pos]:.3f}")):
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write one PNG atomically (a temporary file in its folder renamed over `path`: a link planted at `path` is
    replaced, never followed) and check that it was encoded."""
    try:
        ok, data = cv2.imencode(".png", array)
    except cv2.error as err:
        raise DataError(f"cannot write {path} ({str(err).strip().splitlines()[-1]})") from None
    if not ok:
        raise DataError(f"cannot encode {path} as PNG")
    if not path.parent.is_dir():
        raise DataError(f"cannot write {path}: its folder does not exist")
    try:
        with atomic_write(path, "wb") as handle:
            handle.write(data.tobytes())
    except OSError as err:
        raise DataError(f"cannot write {path} ({err.strerror}); check free space and permissions of "
                        f"{path.parent}") from None
    return path


def plan_masks(input_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> dict[Path, Path]:
    """Input image -> mask path for `predict_folder`, refusing anything that would write over an input, over an
    existing file or link (unless `overwrite`) or two images onto one mask (same stem). Hidden files (`.x.jpg`, macOS
    `._x.jpg`) are not images; other files are named in a warning."""
    src = Path(input_dir)
    if not src.is_dir():
        raise DataError(f"input folder {src} does not exist or is not a folder; pass a folder of images")
    visible = sorted(p for p in src.iterdir() if not p.name.startswith(".") and p.is_file())
    files = [p for p in visible if p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p.name for p in visible if p not in files]
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {src}")
    if others:
        warnings.warn(f"{src}: skipped {len(others)} file(s) that are not images ({', '.join(IMAGE_SUFFIXES)}): "
                      f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}", DataWarning, stacklevel=2)
    out = check_output_dir(out_dir)
    if out.exists() and out.resolve() == src.resolve():
        raise ConfigError(f"--out {out} is the input folder: the masks would be written over or among the images; "
                          "choose another --out")
    plan: dict[Path, Path] = {}
    by_target: dict[Path, Path] = {}
    inputs = {p.resolve() for p in files}
    for path in files:
        target = out / f"{path.stem}.png"
        if target in by_target:
            raise DataError(f"{by_target[target].name} and {path.name} in {src} share the stem {path.stem!r}, so both "
                            f"masks would be {target}; rename one of them")
        present = target.exists() or target.is_symlink()
        if present and target.resolve() in inputs:
            raise ConfigError(f"--out {out}: mask {target} would overwrite the input image {target}; "
                              "choose another --out")
        if present and not overwrite:
            raise ConfigError(f"--out {out} already holds {target.name} (and maybe more masks); pass --overwrite to "
                              "replace them or choose an empty --out")
        by_target[target], plan[path] = path, target
    return plan


@torch.no_grad()
def predict_folder(checkpoint: str | Path, input_dir: str | Path, out_dir: str | Path, *, image_size: int | None = None,
                   threshold: float = 0.5, device: str = "auto", progress: bool = True,
                   overwrite: bool = False) -> list[Path]:
    """Binary mask PNGs (0/255, original resolution) for every image of a folder, written atomically (never over an
    input; over existing files only with `overwrite`, and a link there is replaced, not followed). Unreadable images
    are skipped and named in a DataError once the others are written; a folder made here and left empty is removed."""
    check_positive(image_size, "--image-size")
    check_probability(threshold, "--threshold")
    dev = resolve_device(device)
    keep_fp32_exact(dev, None)  # evaluation forwards in fp32: no TF32 on a GPU either
    model, config = load_trained_model(checkpoint, dev)
    if getattr(model, "extra_inputs", ()):
        raise ConfigError(f"{checkpoint}: {config.model!r} needs {tuple(model.extra_inputs)} besides the image, which "
                          "a folder of images does not give; use `polyplib cascade` (detector boxes) instead")
    plan = plan_masks(input_dir, out_dir, overwrite)
    size = image_size or config.image_size
    predict = model_predict_fn(model, dev)
    out = Path(out_dir)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    written, unreadable = [], []
    try:
        for path, target in tqdm(plan.items(), desc="predict", disable=not progress, leave=False):
            try:
                image = read_image(path)
            except DataError:
                unreadable.append(path.name)
                continue
            tensor = image_tensor(resize_image(image, size))[None]
            prob = _resize_prob(predict({"image": tensor})[0].cpu(), image.shape[:2])[0].numpy()
            written.append(write_png(target, np.where(prob > threshold, 255, 0).astype(np.uint8)))
    finally:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    if unreadable:
        raise DataError(f"wrote {len(written)} masks to {out}; skipped {len(unreadable)} image(s) that cannot be read "
                        f"as jpg/png/tif/bmp/webp: {', '.join(unreadable[:5])}{' ...' if len(unreadable) > 5 else ''} "
                        "(replace or remove them)")
    return written
