"""The research book: profiles, recorded `full` results with provenance, papermill runner and Jupyter Book build."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyplib import viz
from polyplib.errors import ConfigError, DataError

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "results"
NOTEBOOKS = (
    "01_data", "02_gmsrf_architecture", "03_training", "04_cross_dataset", "05_ablations",
    "06_sam_strategies", "07_multicentre", "08_performance", "09_summary",
)
# Files the Jupyter Book build needs besides the notebooks (relative to the repository root).
_BOOK_FILES = ("_config.yml", "book/_toc.yml", "book/intro.md", "book/references.md", "book/references.bib")


@dataclasses.dataclass(frozen=True)
class BookProfile:
    """Sizes, data and recipes one profile runs every chapter with (datasets named by `dataset_key`s)."""

    name: str
    device: str
    source: str  # training dataset of the single-source chapters
    sources: tuple[str, ...]  # the source datasets of the cross-dataset chapter (GMSRF Tables I-II)
    test_sets: tuple[str, ...]  # every dataset a trained model is tested on
    sam_train: str  # Polyp-SAM training data (PraNet train set: Kvasir + ClinicDB)
    synth_n: int  # synthpolyp frames per centre
    image_size: int
    sam_image_size: int
    epochs: int | None  # None: the preset's own (paper) number of epochs
    max_steps: int | None  # optimiser steps per epoch cap (None: whole epoch)
    seeds: tuple[int, ...]
    gmsrf_preset: str
    gmsrf_options: dict[str, Any]  # extra GMSRF-Net options (smoke: narrow streams)
    baselines: tuple[str, ...]
    baseline_options: dict[str, dict[str, Any]]
    sam_model: str
    sam_options: dict[str, Any]  # smoke: random-initialised tiny SAM (no weights can be downloaded)
    sam_test_protocol: str  # split protocol of the Polyp-SAM test sets (smoke: gmsrf test split; full: PraNet lists)
    n_examples: int
    data_root: str | None = None
    cpu_threads: int = 1  # torch threads on a CPU device: tiny models run fastest (and steadiest) on one


PROFILES: dict[str, BookProfile] = {
    "smoke": BookProfile(
        name="smoke", device="cpu", source="synthpolyp-A", sources=("synthpolyp-A",),
        test_sets=("synthpolyp-A", "synthpolyp-B"), sam_train="synthpolyp-A", synth_n=40, image_size=64,
        sam_image_size=64, epochs=2, max_steps=1, seeds=(0,), gmsrf_preset="gmsrf-paper",
        gmsrf_options={"variant": "paper", "backbone": "resnet10t", "width": 0.25},
        baselines=("unet-original",), baseline_options={"unet-original": {"base_channels": 4, "depth": 2}},
        sam_model="polyp-sam-tiny", sam_options={"allow_scratch": True}, sam_test_protocol="gmsrf", n_examples=4,
    ),
    "full": BookProfile(
        name="full", device="cuda", source="kvasir-seg", sources=("kvasir-seg", "cvc-clinicdb"),
        test_sets=("kvasir-seg", "cvc-clinicdb", "cvc-colondb", "etis", "cvc-300"), sam_train="pranet-train",
        synth_n=200, image_size=256, sam_image_size=1024, epochs=None, max_steps=None, seeds=(0, 1, 2),
        gmsrf_preset="gmsrf-paper", gmsrf_options={"variant": "paper"}, baselines=("unet", "unetplusplus", "deeplabv3plus"),
        baseline_options={}, sam_model="polyp-sam-b", sam_options={}, sam_test_protocol="pranet", n_examples=8,
    ),
}


def profile_settings(profile: str = "smoke", **overrides: Any) -> BookProfile:
    """The settings of `profile`; keyword overrides that are `None` keep the profile's value."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown book profile {profile!r}; choose one of {sorted(PROFILES)}")
    fields = {f.name for f in dataclasses.fields(BookProfile)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown profile setting(s) {unknown}; valid names: {sorted(fields)}")
    changes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    return dataclasses.replace(PROFILES[profile], **changes)


def setup_notebook(settings: BookProfile) -> None:
    """Make a chapter deterministic and quiet: seeds, deterministic kernels, no progress bars, plot style."""
    import torch

    os.environ["TQDM_DISABLE"] = "1"
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    seed = settings.seeds[0]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if settings.device == "cpu":
        torch.set_num_threads(min(settings.cpu_threads, os.cpu_count() or 1))
    elif not torch.cuda.is_available():
        raise ConfigError(f"profile {settings.name!r} needs a CUDA GPU; run with profile='smoke' on a CPU machine")
    viz.set_style()


def dataset_key(key: str, settings: BookProfile) -> tuple[str, dict[str, Any]]:
    """`load_dataset` name and options of a book dataset key (`synthpolyp-A` = centre A of synthpolyp)."""
    if key.startswith("synthpolyp-"):
        return "synthpolyp", {"centre": key.rsplit("-", 1)[1], "n": settings.synth_n}
    return key, {}


def load(settings: BookProfile, key: str, split: str | None = None, *, image_size: int | None | str = "profile",
         protocol: str = "gmsrf", **options: Any):
    """A dataset of the book by key, at the profile's image size (`image_size=None`: original resolution)."""
    from polyplib.data import load_dataset

    name, synth = dataset_key(key, settings)
    size = settings.image_size if image_size == "profile" else image_size
    return load_dataset(name, settings.data_root, split, image_size=size, protocol=protocol, **synth, **options)


def split_sizes(settings: BookProfile, keys: tuple[str, ...] | None = None,
                protocols: tuple[str, ...] = ("gmsrf", "pranet", "kvasir-official", "polyp-sam")) -> pd.DataFrame:
    """Images per split for every dataset and every protocol that applies to it (one row per dataset and protocol)."""
    from polyplib.data import get_split
    from polyplib.errors import PolypError

    rows = []
    for key in keys or tuple(dict.fromkeys((*settings.test_sets, settings.sam_train))):
        name, synth = dataset_key(key, settings)
        for protocol in protocols:
            try:
                table = get_split(name, protocol, settings.data_root, **synth)
            except ConfigError:
                continue  # the protocol does not cover this dataset
            except PolypError as err:
                rows.append({"dataset": key, "protocol": protocol, "note": str(err).split(";")[0]})
                continue
            rows.append({"dataset": key, "protocol": protocol, **{s: len(ids) for s, ids in table.items()}})
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=[c for c in ("dataset", "protocol", "train", "val", "test", "note") if c in frame])
    counts = [c for c in ("train", "val", "test") if c in frame]
    frame[counts] = frame[counts].astype("Int64")
    return frame


def dataset_overview(settings: BookProfile) -> pd.DataFrame:
    """The registered datasets with their description; the `full` profile adds the pairs found under the data root."""
    from polyplib.data import DATASETS, list_datasets

    frame = pd.DataFrame([{"dataset": name, "description": spec.description} for name, spec in DATASETS.items()])
    if settings.name == "full":
        found = {row["name"]: row["pairs"] for row in list_datasets(settings.data_root)}
        frame["pairs found"] = frame["dataset"].map(found)
    return frame


def samples(settings: BookProfile, key: str, n: int | None = None, **load_options: Any) -> list[dict[str, Any]]:
    """The first `n` (default: the profile's `n_examples`) items of a dataset, for example grids."""
    dataset = load(settings, key, **load_options)
    return [dataset[i] for i in range(min(n or settings.n_examples, len(dataset)))]


def dataset_statistics(dataset: Any, limit: int | None = None) -> pd.DataFrame:
    """Per image: size, polyp area fraction, polyp count, box size, colour and polyp/background contrast."""
    import cv2
    import torch

    from polyplib.data import mask_to_box

    rows = []
    for i in range(len(dataset) if limit is None else min(limit, len(dataset))):
        item = dataset[i]
        image, mask = item["image"], item["mask"][0] > 0.5
        h, w = mask.shape
        n_polyps = cv2.connectedComponents(mask.numpy().astype(np.uint8))[0] - 1
        box = mask_to_box(mask.numpy())
        grey = image.mean(0)
        inside = grey[mask].mean().item() if mask.any() else float("nan")
        outside = grey[~mask].mean().item() if (~mask).any() else float("nan")
        rgb = image.reshape(3, -1).mean(1)
        rows.append({
            "id": item["id"], "dataset": item["dataset"], "height": h, "width": w,
            "area_fraction": mask.float().mean().item(), "polyps": n_polyps,
            "box_fraction": 0.0 if box is None else float((box[2] - box[0]) * (box[3] - box[1])) / (h * w),
            "red": rgb[0].item(), "green": rgb[1].item(), "blue": rgb[2].item(),
            "brightness": grey.mean().item(), "contrast": inside - outside,
            "sharpness": float(torch.diff(grey, dim=1).abs().mean()),
        })
    return pd.DataFrame(rows)


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
    """GMSRF-Net ablations (Sec. II-B): CMSA, MSFS, number of modules, deep supervision, loss bugs, variant."""
    specs = {
        "GMSRF-Net": {"model": "gmsrf"},
        "no CMSA": {"model": "gmsrf", "options": {"cmsa": False}},
        "no MSFS": {"model": "gmsrf", "options": {"msfs": False}},
        "1 GMSRF module": {"model": "gmsrf", "options": {"num_modules": 1}},
        "no deep supervision": {"model": "gmsrf", "options": {"deep_supervision": False}},
        "official loss bugs": {"model": "gmsrf", "loss_options": {"legacy_bugs": True}},
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


PAPER_NAMES = {"kvasir-seg": "Kvasir-SEG", "cvc-clinicdb": "CVC-ClinicDB", "cvc-colondb": "CVC-ColonDB",
               "etis": "ETIS", "cvc-300": "CVC-300"}
PAPER_COLUMNS = {"dice": "dsc", "iou": "miou"}


def paper_comparison(results: str, table: str, on: tuple[str, ...] = ("method", "train", "test"),
                     metrics: tuple[str, ...] = ("dsc", "miou"), results_dir: Path | None = None) -> pd.DataFrame:
    """A published table beside our committed `full` results (mean over seeds; empty where none are committed)."""
    from polyplib.paper_results import paper_table

    paper = paper_table(table)
    on = tuple(c for c in on if c in paper.columns)
    ours = load_results(results, results_dir)
    if ours is not None and not set(on) <= set(ours.rename(columns={"model": "method"}).columns):
        raise DataError(f"results/{results}.json lacks the columns {sorted(on)} needed to join {table}; re-run its chapter")
    if ours is None:
        ours = pd.DataFrame(columns=[*on, *metrics], dtype=float)
    else:
        ours = ours.rename(columns={"model": "method", **PAPER_COLUMNS}).replace(PAPER_NAMES)
        if "test" in on and "Kvasir" in set(paper["test"]):  # Polyp-SAM names Kvasir-SEG "Kvasir"
            ours = ours.replace({"Kvasir-SEG": "Kvasir"})
        ours = ours.groupby(list(on), as_index=False)[list(metrics)].mean()
    return viz.paper_vs_ours(paper, ours, on, metrics)


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


def results_index(results_dir: Path | None = None) -> pd.DataFrame:
    """Every committed `full` result: name, rows and provenance (empty table when there are none)."""
    rows = []
    for path in sorted(Path(results_dir or RESULTS_DIR).glob("*.json")):
        frame = load_results(path.stem, results_dir)
        p = frame.attrs["provenance"]
        rows.append({"result": path.stem, "rows": len(frame), "commit": p["commit"][:12], "machine": p["machine"],
                     "date": p["date"], "seeds": str(p["seeds"])})
    return pd.DataFrame(rows, columns=["result", "rows", "commit", "machine", "date", "seeds"])


@dataclasses.dataclass
class GMSRFTrace:
    """What one GMSRF-Net forward pass computed: stage shapes, feature maps, CMSA maps and MSFS gates."""

    shapes: pd.DataFrame  # stage, scale, channels, height, width
    features: dict[str, list[Any]]  # stage -> one [C, h, w] tensor per scale
    cmsa: dict[tuple[int, int, int], Any]  # (module, layer, scale) -> [h, w] gate in [1, 2] (GMSRF Eq. 1)
    msfs: dict[tuple[int, int, int], Any]  # (module, layer, scale) -> [C] channel weights in [0, 1] (Sec. II-B.2)


def trace_gmsrf(model: Any, image: Any) -> GMSRFTrace:
    """Run one image through GMSRF-Net with forward hooks on the encoder, RFBs, GMSRF modules, CMSA and MSFS."""
    import torch

    if not hasattr(model, "gmsrf") or not hasattr(model, "reducers"):
        raise ConfigError(f"trace_gmsrf needs a GMSRF-Net (create_model('gmsrf')), got {type(model).__name__}")
    stages: dict[str, list[Any]] = {}
    cmsa: dict[tuple[int, int, int], Any] = {}
    msfs: dict[tuple[int, int, int], Any] = {}
    hooks = [model.encoder.register_forward_hook(lambda m, i, o: stages.__setitem__("encoder", list(o)))]
    for s, reducer in enumerate(model.reducers):
        hooks.append(reducer.register_forward_hook(lambda m, i, o, s=s: stages.setdefault("rfb", [None] * 4).__setitem__(s, o)))
    for k, module in enumerate(model.gmsrf):
        hooks.append(module.register_forward_hook(lambda m, i, o, k=k: stages.__setitem__(f"gmsrf module {k + 1}", list(o))))
        for layer, per_scale in enumerate(module.layers, start=2):
            for s, fusion in enumerate(per_scale):
                key = (k + 1, layer, s + 1)
                if fusion.cmsa is not None:
                    hooks.append(fusion.cmsa.register_forward_hook(lambda m, i, o, key=key: cmsa.__setitem__(key, o[0, 0])))
                if hasattr(fusion.msfs, "fc"):
                    hooks.append(fusion.msfs.fc.register_forward_hook(
                        lambda m, i, o, key=key: msfs.__setitem__(key, torch.sigmoid(o[0]))))
    try:
        with torch.no_grad():
            logits = model.eval()(image[None] if image.ndim == 3 else image)
    finally:
        for hook in hooks:
            hook.remove()
    stages["output (logits)"] = [logits]
    features = {name: [t[0].detach() for t in tensors] for name, tensors in stages.items()}
    shapes = pd.DataFrame([{"stage": name, "scale": s + 1, "channels": t.shape[0], "height": t.shape[1], "width": t.shape[2]}
                           for name, tensors in features.items() for s, t in enumerate(tensors)])
    return GMSRFTrace(shapes, features, {k: v.detach() for k, v in cmsa.items()}, {k: v.detach() for k, v in msfs.items()})


def block_costs(model: Any, image_size: int) -> pd.DataFrame:
    """Parameters (millions) and GFLOPs of one batch-1 forward per top-level block (shapes only, on `meta`)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    work = copy_to_meta(model).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        work(torch.zeros(1, 3, image_size, image_size, device="meta"))
    flops = {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}
    prefix = type(work).__name__
    rows = []
    for name, child in model.named_children():
        blocks = list(child.named_children()) if isinstance(child, torch.nn.ModuleList) else [("", child)]
        for sub, block in blocks:
            label = f"{name}.{sub}" if sub else name
            rows.append({"block": label, "params (M)": sum(p.numel() for p in block.parameters()) / 1e6,
                         "GFLOPs": flops.get(f"{prefix}.{label}", 0) / 1e9})
    rows.append({"block": "total", "params (M)": sum(p.numel() for p in model.parameters()) / 1e6,
                 "GFLOPs": flops.get("Global", 0) / 1e9})
    return pd.DataFrame(rows)


def compare_variants(image_size: int = 256, variants: tuple[str, ...] = ("paper", "official")) -> pd.DataFrame:
    """GMSRF-Net `paper` vs `official`: backbone, scale resolutions, parameters and GFLOPs at `image_size`."""
    import torch

    from polyplib.models import create_model
    from polyplib.models.gmsrf import VARIANTS

    rows = []
    for variant in variants:
        with torch.device("meta"):  # shapes only: no weight initialisation cost
            model = create_model("gmsrf", variant=variant)
        trace = trace_gmsrf(model, torch.zeros(3, image_size, image_size, device="meta"))
        rfb = trace.shapes[trace.shapes.stage == "rfb"]
        costs = block_costs(model, image_size).set_index("block")
        rows.append({"variant": variant, "backbone": VARIANTS[variant]["backbone"],
                     "scales (px)": " / ".join(f"{h}" for h in rfb.height), "side outputs": VARIANTS[variant]["upsample"],
                     "params (M)": costs.loc["total", "params (M)"], f"GFLOPs @{image_size}": costs.loc["total", "GFLOPs"]})
    return pd.DataFrame(rows)


def copy_to_meta(model: Any) -> Any:
    """A shapes-only copy of a model on the `meta` device (no memory, no compute)."""
    import copy

    return copy.deepcopy(model).to("meta")


def _git_commit() -> str:
    """HEAD of the checkout this code runs from (with `+dirty` when it has local changes), or `unknown`."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def provenance(settings: BookProfile, data: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Where a result came from: commit, machine, date, data and seeds."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        "profile": settings.name,
        "commit": _git_commit(),
        "machine": f"{platform.node()} ({device}, torch {torch.__version__})",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": list(data if data is not None else settings.test_sets),
        "data_root": settings.data_root,
        "seeds": list(settings.seeds),
    }


def record_results(name: str, frame: pd.DataFrame, settings: BookProfile, *, data: list[str] | None = None,
                   results_dir: Path | None = None) -> Path | None:
    """Save a `full` run's table as `results/<name>.json` (+ `.csv`) with provenance; smoke runs are not recorded."""
    if settings.name != "full":
        return None
    out = Path(results_dir or RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "provenance": provenance(settings, data), "rows": json.loads(frame.to_json(orient="records"))}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    frame.to_csv(out / f"{name}.csv", index=False)
    return out / f"{name}.json"


def load_results(name: str, results_dir: Path | None = None) -> pd.DataFrame | None:
    """The latest committed `full` results called `name` (provenance in `frame.attrs`), or None when there are none."""
    path = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text())
        frame = pd.DataFrame.from_records(payload["rows"])
        frame.attrs["provenance"] = payload["provenance"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(f"{path} is not a polyp-book results file ({err}); delete it or re-run the full profile") from err
    return frame


def full_results_markdown(name: str, results_dir: Path | None = None) -> tuple[str, pd.DataFrame | None]:
    """A labelled heading for the committed `full` results of `name` and the table itself (None when absent)."""
    frame = load_results(name, results_dir)
    if frame is None:
        return (f"**Full profile (`{name}`): no results committed yet.** The `full` profile (GPU, real data, paper "
                "recipes) has not been run for this chapter; run `python -m polyplib book --profile full` on a GPU "
                f"machine and commit `results/{name}.json`. Only the live smoke run below is shown."), None
    p = frame.attrs["provenance"]
    return (f"**Full profile (`{name}`), committed result:** commit `{p['commit']}`, {p['machine']}, {p['date']}, "
            f"data {', '.join(p['data'])}, seeds {p['seeds']}."), frame


def show_full_results(name: str, results_dir: Path | None = None, **table_options: Any) -> pd.DataFrame | None:
    """Display the committed `full` results of `name` with their provenance, or say plainly that none exist."""
    from IPython.display import Markdown, display

    text, frame = full_results_markdown(name, results_dir)
    display(Markdown(text))
    if frame is not None:
        display(viz.styled_table(frame, caption=f"Full profile: {name}", **table_options))
    return frame


def smoke_label(settings: BookProfile) -> None:
    """Display the label that marks the following outputs as this live run (and what the profile means)."""
    from IPython.display import Markdown, display

    what = ("CPU, synthetic `synthpolyp` data, tiny models and a few optimiser steps: the numbers check that the "
            "pipeline runs end to end and say **nothing** about the methods' accuracy"
            if settings.name == "smoke" else "GPU, real data, the papers' recipes")
    display(Markdown(f"**Live run, profile `{settings.name}`** ({what})."))


def _notebook_path(name: str, notebooks_dir: Path) -> Path:
    """The notebook file for a name like `03_training` or `03_training.ipynb`."""
    path = notebooks_dir / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not path.exists():
        raise ConfigError(f"notebook {path} not found; choose from {[p.stem for p in sorted(notebooks_dir.glob('*.ipynb'))]}")
    return path


def _strip_run_metadata(path: Path) -> None:
    """Drop papermill's per-run timings from a notebook so that committed notebooks only change with their outputs."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


def execute_notebooks(profile: str = "smoke", notebooks: list[str] | None = None, *, out_dir: Path,
                      data_root: str | None = None, timeout: int = 1800, src_dir: Path | None = None) -> dict[str, float]:
    """Execute the notebooks with papermill under `profile` into `out_dir`; returns seconds per notebook."""
    import papermill as pm

    profile_settings(profile)  # validate the name before starting kernels
    src_dir = Path(src_dir or REPO_ROOT / "notebooks")
    out_dir.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile} if data_root is None else {"profile": profile, "data_root": str(data_root)}
    in_place = out_dir.resolve() == src_dir.resolve()
    timings = {}
    for name in notebooks or NOTEBOOKS:
        src = _notebook_path(name, src_dir)
        dst = out_dir / src.name
        start = time.perf_counter()
        pm.execute_notebook(src, dst, parameters=None if in_place and profile == "smoke" and data_root is None else parameters,
                            cwd=str(src_dir), kernel_name="python3", progress_bar=False, execution_timeout=timeout)
        timings[src.stem] = time.perf_counter() - start
        if in_place:
            _strip_run_metadata(dst)
    return timings


def stage_book(stage: Path, notebooks_from: Path | None = None) -> Path:
    """Copy the book sources (config, toc, pages, notebooks) into `stage`, the source root of the HTML build."""
    if stage.exists():
        shutil.rmtree(stage)
    for rel in _BOOK_FILES:
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, stage / rel)
    (stage / "notebooks").mkdir()
    for name in NOTEBOOKS:
        shutil.copy2(_notebook_path(name, notebooks_from or REPO_ROOT / "notebooks"), stage / "notebooks" / f"{name}.ipynb")
    return stage


def build_html(stage: Path, out: Path) -> Path:
    """Build the HTML with Jupyter Book (`-W --keep-going`: any warning, e.g. a broken reference, fails the build)."""
    if out.exists():
        shutil.rmtree(out / "_build" / "html", ignore_errors=True)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(stage),
           "--config", str(stage / "_config.yml"), "--toc", str(stage / "book" / "_toc.yml"),
           "--path-output", str(out), "-W", "--keep-going", "--builder", "html"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise ConfigError(f"jupyter-book build of {stage} failed (exit {proc.returncode}):\n{tail}")
    return out / "_build" / "html"


def run_book(profile: str = "smoke", execute: bool = True, notebooks: list[str] | None = None,
             out: Path | str = REPO_ROOT / "book", *, data_root: str | None = None, in_place: bool = False) -> Path:
    """Execute the notebooks under `profile` (papermill) and build the HTML book into `out/_build/html`."""
    out = Path(out)
    stage = out / "_build" / "src"
    executed = REPO_ROOT / "notebooks" if in_place else out / "_build" / "executed"
    if execute:
        timings = execute_notebooks(profile, notebooks, out_dir=executed, data_root=data_root)
        for name, seconds in timings.items():
            print(f"executed {name} ({profile}) in {seconds:.1f} s")
    # notebooks that were not executed now come from the committed copies
    if executed.exists() and not in_place:
        for name in NOTEBOOKS:
            if not (executed / f"{name}.ipynb").exists():
                shutil.copy2(_notebook_path(name, REPO_ROOT / "notebooks"), executed / f"{name}.ipynb")
    stage_book(stage, executed if execute else None)
    start = time.perf_counter()
    html = build_html(stage, out)
    print(f"built {html} in {time.perf_counter() - start:.1f} s")
    return html


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `polyplib book --profile smoke|full [--no-execute] [--notebooks ...]` to the CLI."""
    parser = subparsers.add_parser("book", help="execute the notebooks (papermill) and build the HTML book")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    parser.add_argument("--no-execute", dest="execute", action="store_false",
                        help="build from the committed, executed notebooks")
    parser.add_argument("--notebooks", nargs="+", default=None, help=f"subset of {', '.join(NOTEBOOKS)}")
    parser.add_argument("--data-root", default=None, help="real data root for the full profile")
    parser.add_argument("--in-place", action="store_true", help="write executed notebooks back into notebooks/")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "book", help="HTML goes to OUT/_build/html")
    parser.set_defaults(func=_cli_book)


def _cli_book(args: argparse.Namespace) -> int:
    """Entry point of `polyplib book`."""
    run_book(args.profile, args.execute, args.notebooks, args.out, data_root=args.data_root, in_place=args.in_place)
    return 0
