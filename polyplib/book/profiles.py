"""Book profiles (smoke/full sizes, data and recipes) and the notebook setup."""
from __future__ import annotations

import dataclasses
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from polyplib import viz
from polyplib.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


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
