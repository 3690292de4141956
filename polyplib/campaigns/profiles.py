"""Profiles: the sizes, data and recipes one book profile runs every campaign with (smoke, lite, full)."""
from __future__ import annotations

import dataclasses
from typing import Any

from polyplib.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Timing:
    """Measured wall seconds of a campaign's runs on one kind of machine: per epoch (training + validation) and per
    evaluation of every test set, by model; `measured` names the machine and conditions."""

    epoch_s: dict[str, float]
    eval_s: dict[str, float]
    measured: str

    def seconds(self, config: dict[str, Any], done: int = 0) -> float | None:
        """A run's wall time after `done` epochs: the epochs left and an evaluation per test point and of the selected
        checkpoint (an upper bound: a test point at the selected epoch reuses its evaluation); None for a model not
        measured."""
        model = config["model"]
        if model not in self.epoch_s:
            return None
        evaluations = 1 + len(config.get("snapshot_epochs", []))
        return (config["epochs"] - done) * self.epoch_s[model] + evaluations * self.eval_s[model]


@dataclasses.dataclass(frozen=True)
class Convergence:
    """The `convergence` campaign of a profile: models trained on one recipe until they stop learning, tested at
    fixed epochs besides the checkpoint selected on the validation split."""

    models: tuple[str, ...]
    recipe: dict[str, Any]  # overrides of the profile's GMSRF-Net recipe: epochs, precision, schedule
    test_epochs: tuple[int, ...]  # epochs tested besides the last one (`snapshot_epochs`)
    timing: Timing | None = None


@dataclasses.dataclass(frozen=True)
class Transfer:
    """The `transfer` campaign of a profile (Polyp-SAM's question): a promptable segmenter pretrained on the source
    (or SAM's own weights when `pretrain` is None) fine-tuned on a labelled third of the unseen centre's video sequences
    by each arm, tested on the other sequences; seed k fine-tunes on fold k mod 3 (`sequences` split protocol)."""

    target: str  # dataset key of the unseen centre
    recipe: dict[str, Any]  # overrides of the profile's Polyp-SAM recipe for the fine-tuning runs
    pretrain: dict[str, Any] | None  # overrides of it for the pretraining run (None: start from SAM's weights)
    arms: tuple[str, ...] = ("decoder", "lora", "full")


@dataclasses.dataclass(frozen=True)
class BookProfile:
    """Sizes, data and recipes of one profile (datasets named by `dataset_key`s)."""

    name: str
    device: str
    source: str  # training dataset of the single-source chapters
    sources: tuple[str, ...]  # the source datasets of the cross-dataset chapter (GMSRF Tables I-II)
    test_sets: tuple[str, ...]  # every dataset a trained model is tested on
    sam_train: str  # Polyp-SAM training data
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
    sam_options: dict[str, Any]  # smoke/lite: random-initialised tiny SAM (no weights can be downloaded)
    sam_test_protocol: str  # split protocol of the Polyp-SAM test sets (and of its training set unless the next)
    n_examples: int
    recipe: dict[str, Any] = dataclasses.field(default_factory=dict)  # overrides of the GMSRF-Net preset
    sam_recipe: dict[str, Any] = dataclasses.field(default_factory=dict)  # overrides of the Polyp-SAM preset
    data_root: str | None = None
    cpu_threads: int = 1  # torch threads on a CPU device: small models run fastest (and steadiest) on one
    from_scratch: bool = True  # no pretrained weights anywhere (labelled on every table)
    ablation_seeds: int = 3  # the first seeds the ablation campaign trains (lite: what the CPU budget allows)
    precision_seeds: int = 1  # the first seeds the fp32 accuracy check trains (lite: all three, seed spread vs seed spread)
    convergence: Convergence | None = None  # the `convergence` campaign (None: the profile has none)
    transfer: Transfer | None = None  # the `transfer` campaign (None: the profile has none)
    sam_train_protocol: str | None = None  # split protocol of the Polyp-SAM training set (None: sam_test_protocol)
    sam_jitters: tuple[float, ...] = (0.05, 0.1, 0.2)  # box jitters Polyp-SAM is tested with (fraction of box size)
    description: str = ""


SMOKE_RECIPE = {"epochs": 2, "max_steps_per_epoch": 1, "batch_size": 2, "augment": False, "precision": "fp32",
                "workers": 0}
# `convergence`, lite: GMSRF-Net `paper` and U-Net from scratch with the paper's optimiser and batch (Adam 1e-4, batch
# 8) and a decaying learning rate (linear warm-up from 1e-5 over 2 epochs, cosine to 1e-6 at the last epoch), in fp32
# NCHW on every CPU (never `auto`: one recipe whatever CPU trains it); 20 epochs, tested after epochs 5, 10, 15, 20 and
# at the checkpoint selected on the Kvasir-SEG validation split. Plateau: the best validation Dice of the last 5 epochs
# beats the best before them by less than 0.005 (`polyplib.book.convergence.plateau_table`).
# Sizing on the 2-core AMD EPYC (AVX512), fp32, 128 px, batch 8, one thread per run, two runs at once: GMSRF-Net
# trained 343-360 s per epoch in the stored fp32 runs (`precision`, ablations: two runs at once, other work beside
# them) plus 12-17 s of validation. `benchmarks/bench_epoch_time.py`, twice with other sessions' work on both cores
# (load average 5-7): GMSRF-Net 2.0 and 4.2 s per step at one thread (201 and 417 s per 100-step epoch), U-Net 0.93
# and 2.4 s (U-Net's epoch 0.46-0.58 of GMSRF-Net's); two threads per run were 4-11x slower than one beside that work.
# One evaluation of both test sets (480 images, every metric and the report card) took 102 s (GMSRF-Net, load 4.5) to
# 185 s (U-Net, load 6). Upper bounds per run: GMSRF-Net 20 x 370 s + 5 x 200 s = 2.3 h (2.6 h at the slower
# benchmark's speed), U-Net 20 x 220 s + 5 x 200 s = 1.5 h. U-Net++ (475 s per fp32 epoch here) would need 2.9 h, too
# close to 3 h: not declared.
LITE_CONVERGENCE_TIMING = Timing(epoch_s={"gmsrf": 370.0, "unet": 220.0}, eval_s={"gmsrf": 200.0, "unet": 200.0},
                                 measured="AMD EPYC (AVX512), fp32, 1 thread per run, 2 runs at once")
CONVERGENCE_SCHEDULE = {"schedule": "warmup-cosine", "warmup_epochs": 2, "warmup_start_lr": 1e-5, "min_lr": 1e-6}
FP32 = {"precision": "fp32", "channels_last": False}  # one recipe on every CPU
# `transfer`: the pretraining run is the profile's Polyp-SAM `full` recipe (lite: 30 epochs, warm-up + cosine; the
# stored lite runs of that recipe plateau from epoch 21); each arm fine-tunes 20 epochs of its labelled budget (lite:
# 90-118 CVC-ColonDB frames, 11-15 optimiser steps of 8 images an epoch) with the same schedule and learning rate
TRANSFER_SCHEDULE = {"epochs": 20, "warmup_epochs": 2}
PROFILES: dict[str, BookProfile] = {
    "smoke": BookProfile(
        name="smoke", device="cpu", source="synthpolyp-A", sources=("synthpolyp-A",),
        test_sets=("synthpolyp-A", "synthpolyp-B"), sam_train="synthpolyp-A", synth_n=40, image_size=64,
        sam_image_size=64, epochs=2, max_steps=1, seeds=(0,), gmsrf_preset="gmsrf-paper",
        gmsrf_options={"variant": "paper", "backbone": "resnet10t", "width": 0.25},
        baselines=("unet-original",), baseline_options={"unet-original": {"base_channels": 4, "depth": 2}},
        sam_model="polyp-sam-tiny", sam_options={"allow_scratch": True}, sam_test_protocol="gmsrf", n_examples=4,
        recipe=SMOKE_RECIPE, sam_recipe={**SMOKE_RECIPE, "grad_accum": 1, "warmup_epochs": 1},
        convergence=Convergence(("gmsrf", "unet-original"), {**CONVERGENCE_SCHEDULE, "warmup_epochs": 1}, (1,)),
        transfer=Transfer("synthpolyp-B", {}, {"epochs": 3}),  # 3 epochs: not the polyp-sam campaign's run
        description="CPU, synthetic `synthpolyp` data, tiny models and a few optimiser steps: the numbers check "
                    "that the pipeline runs end to end and say nothing about the methods' accuracy",
    ),
    "lite": BookProfile(
        name="lite", device="cpu", source="kvasir-seg", sources=("kvasir-seg",), test_sets=("kvasir-seg", "cvc-colondb"),
        sam_train="kvasir-seg", synth_n=200, image_size=128, sam_image_size=128, epochs=10, max_steps=None,
        seeds=(0, 1, 2), gmsrf_preset="gmsrf-paper", gmsrf_options={"variant": "paper"},
        baselines=("unet", "unetplusplus", "deeplabv3plus"), baseline_options={}, sam_model="polyp-sam-tiny",
        sam_options={"allow_scratch": True}, sam_test_protocol="gmsrf", n_examples=4,
        # precision auto: bf16 + channels-last on a CPU with native bf16, fp32 NCHW elsewhere (chapter 3 tests their
        # equivalence); each stored result names the recipe it ran
        recipe={"epochs": 10, "precision": "auto", "workers": 0},
        sam_recipe={"epochs": 30, "batch_size": 1, "grad_accum": 8, "warmup_epochs": 3, "lr": 1e-4,
                    "warmup_start_lr": 1e-5, "min_lr": 1e-6, "precision": "auto", "workers": 0},
        ablation_seeds=1,  # 7 GMSRF-Net variants x 1 seed fit the 6-hour CPU budget (2 seeds: about 8.5 h)
        precision_seeds=3,  # three fp32 seeds against three bf16 ones: one seed cannot tell precision from seed noise
        convergence=Convergence(("gmsrf", "unet"), {"epochs": 20, "precision": "fp32", "channels_last": False,
                                                    **CONVERGENCE_SCHEDULE}, (5, 10, 15), LITE_CONVERGENCE_TIMING),
        transfer=Transfer("cvc-colondb", {**FP32, **TRANSFER_SCHEDULE}, FP32),
        description="CPU, real Kvasir-SEG -> CVC-ColonDB at 128x128, every model from scratch, the GMSRF paper "
                    "recipe but fewer epochs",
    ),
    "full": BookProfile(
        name="full", device="cuda", source="kvasir-seg", sources=("kvasir-seg", "cvc-clinicdb"),
        test_sets=("kvasir-seg", "cvc-clinicdb", "cvc-colondb", "etis", "cvc-300"), sam_train="pranet-train",
        synth_n=200, image_size=256, sam_image_size=1024, epochs=None, max_steps=None, seeds=(0, 1, 2),
        gmsrf_preset="gmsrf-paper", gmsrf_options={"variant": "paper", "pretrained": True},
        baselines=("unet", "unetplusplus", "deeplabv3plus"),
        baseline_options={name: {"encoder_weights": "imagenet"} for name in ("unet", "unetplusplus", "deeplabv3plus")},
        sam_model="polyp-sam-b", sam_options={}, sam_test_protocol="pranet", sam_train_protocol="polyp-sam",
        n_examples=8, from_scratch=False, transfer=Transfer("cvc-colondb", TRANSFER_SCHEDULE, None),
        description="GPU, real data, the papers' recipes from ImageNet (GMSRF-Net, baselines) and SAM weights",
    ),
}


def profile_settings(profile: str = "smoke", **overrides: Any) -> BookProfile:
    """The settings of `profile`; keyword overrides that are `None` keep the profile's value. `test_sets` may be a
    `--tests` string (`all`, `present`, a comma list: `present.configure`); `from_scratch=True` also drops every
    pretrained weight (`present.from_scratch`)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown book profile {profile!r}; choose one of {', '.join(PROFILES)}")
    fields = {f.name for f in dataclasses.fields(BookProfile)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown profile setting(s) {unknown}; valid names: {sorted(fields)}")
    changes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    if changes.get("epochs") is not None:  # the `epochs` parameter of a chapter changes both recipes
        changes["recipe"] = {**changes.get("recipe", PROFILES[profile].recipe), "epochs": changes["epochs"]}
        changes["sam_recipe"] = {**changes.get("sam_recipe", PROFILES[profile].sam_recipe), "epochs": changes["epochs"]}
    tests = changes.pop("test_sets") if isinstance(changes.get("test_sets"), str) else None
    scratch = changes.pop("from_scratch", False)
    settings = dataclasses.replace(PROFILES[profile], **changes)
    if tests is None and not scratch:
        return settings
    from polyplib.campaigns.present import configure

    return configure(settings, tests, scratch=scratch)


def dataset_key(key: str, settings: BookProfile) -> tuple[str, dict[str, Any]]:
    """`load_dataset` name and options of a book dataset key (`synthpolyp-A` = centre A of synthpolyp)."""
    if key.startswith("synthpolyp-"):
        return "synthpolyp", {"centre": key.rsplit("-", 1)[1], "n": settings.synth_n}
    return key, {}


PRANET_TRAIN_PARTS = ("kvasir-seg", "cvc-clinicdb")  # PraNet's training set: 900 Kvasir-SEG + 550 CVC-ClinicDB images


def test_split(key: str, source: str, protocol: str = "gmsrf") -> str | None:
    """The split a model trained on `source` is tested on: the source's test split, all of an unseen dataset (under
    the pranet protocol, Kvasir-SEG's and CVC-ClinicDB's PraNet test images after training on `pranet-train`)."""
    seen = key == source or (protocol == "pranet" and source == "pranet-train" and key in PRANET_TRAIN_PARTS)
    return "test" if seen else None
