"""The campaigns of the book, declared once per profile: the runs each chapter needs."""
from __future__ import annotations

import dataclasses
from typing import Any

from polyplib.campaigns.box_prompts import BoxFill, CascadeBox, GTBox
from polyplib.campaigns.profiles import BookProfile, Timing, dataset_key, profile_settings, test_split
from polyplib.data.frames import N_FOLDS
from polyplib.campaigns.spec import RunSpec, eval_set
from polyplib.errors import ConfigError

MODEL_LABELS = {"gmsrf": "GMSRF-Net", "unet-original": "U-Net (original)", "unet": "U-Net", "unetplusplus": "U-Net++",
                "deeplabv3plus": "DeepLabv3+"}
# GMSRF-Net ablations (Sec. II-B): label -> model options / loss options
ABLATIONS: dict[str, dict[str, Any]] = {
    "no CMSA": {"options": {"cmsa": False}},
    "no MSFS": {"options": {"msfs": False}},
    "1 GMSRF module": {"options": {"num_modules": 1}},
    "no deep supervision": {"options": {"deep_supervision": False}},
    "authors' loss bugs": {"loss_options": {"legacy_bugs": True}},
    "Eq. 2-3 fusion": {"options": {"fusion": "paper"}},  # the paper's literal fusion order (the code's differs)
    "Eq. 1 CMSA (no sigmoid)": {"options": {"cmsa_gate": "linear"}},  # Eq. 1 as written (the code adds sigmoid + 1)
}
COMPONENTS = ("no CMSA", "no MSFS", "1 GMSRF module", "no deep supervision")  # removals; the rest: text vs code


@dataclasses.dataclass(frozen=True)
class Campaign:
    """A named list of runs one chapter needs."""

    name: str
    profile: str
    chapter: str
    description: str
    runs: tuple[RunSpec, ...]
    timing: Timing | None = None  # measured wall time of its runs (`polyplib campaign plan` estimates from it)

    def run_ids(self) -> list[str]:
        return [spec.run_id for spec in self.runs]


def model_options(settings: BookProfile, model: str, **options: Any) -> dict[str, Any]:
    """Options of `model` under the profile (smoke: small widths/backbones), updated with `options`."""
    base = settings.gmsrf_options if model == "gmsrf" else settings.baseline_options.get(model, {})
    return {k: v for k, v in {**base, **options}.items() if v is not None}


def tests_for(settings: BookProfile, source: str, keys: tuple[str, ...] | None = None,
              protocol: str = "gmsrf") -> list[dict[str, Any]]:
    """The profile's test sets for a model trained on `source` (source: its test split; others: every image)."""
    return [eval_set(key, *dataset_key(key, settings), test_split(key, source, protocol), protocol)
            for key in keys or settings.test_sets]


def segmentation_config(settings: BookProfile, model: str = "gmsrf", source: str | None = None, seed: int | None = None,
                        options: dict[str, Any] | None = None, **overrides: Any):
    """The profile's GMSRF recipe (its preset with the profile's `recipe` overrides) for one model, source and seed."""
    from polyplib.engine import get_preset

    source = source or settings.source
    dataset, dataset_options = dataset_key(source, settings)
    return get_preset(settings.gmsrf_preset).replace(
        model=model, model_options=model_options(settings, model, **(options or {})), dataset=dataset,
        dataset_options=dataset_options, root=settings.data_root, image_size=settings.image_size,
        seed=settings.seeds[0] if seed is None else seed, device=settings.device, progress=False,
        **{**settings.recipe, **overrides})


def segmentation_run(settings: BookProfile, model: str = "gmsrf", source: str | None = None, seed: int | None = None,
                     label: str | None = None, options: dict[str, Any] | None = None, **overrides: Any) -> RunSpec:
    """A segmentation run: train on `source`, test on every test set of the profile."""
    source = source or settings.source
    seed = settings.seeds[0] if seed is None else seed
    config = segmentation_config(settings, model, source, seed, options, **overrides)
    return RunSpec.from_config("segmentation", config, tests_for(settings, source), model=label or MODEL_LABELS.get(
        model, model), train=source, seed=seed)


def convergence_run(settings: BookProfile, model: str, seed: int) -> RunSpec:
    """A run of the `convergence` campaign: the profile's recipe with its convergence overrides, tested at its
    `test_epochs` and its last epoch (`snapshot_epochs`) besides the checkpoint selected on the validation split."""
    conv = settings.convergence
    epochs = segmentation_config(settings, model, seed=seed, **conv.recipe).epochs
    points = [e for e in conv.test_epochs if e < epochs] + [epochs]
    return segmentation_run(settings, model, seed=seed, **conv.recipe, snapshot_epochs=points)


def sam_config(settings: BookProfile, strategy: str = "decoder", seed: int | None = None, **overrides: Any):
    """The Polyp-SAM recipe (Sec. 2.4, `polyp-sam-paper`) with the profile's `sam_recipe` overrides."""
    from polyplib.engine import get_preset

    dataset, dataset_options = dataset_key(settings.sam_train, settings)
    options = {**settings.sam_options, "strategy": strategy}
    base = dict(model=settings.sam_model, model_options=options, dataset=dataset, dataset_options=dataset_options,
                protocol=settings.sam_train_protocol or settings.sam_test_protocol, root=settings.data_root,
                image_size=settings.sam_image_size, seed=settings.seeds[0] if seed is None else seed,
                device=settings.device, progress=False)
    return get_preset("polyp-sam-paper").replace(**{**base, **settings.sam_recipe, **overrides})


def sam_prompts(settings: BookProfile) -> list[dict[str, Any]]:
    """Prompts every Polyp-SAM run is tested with: GT boxes, jittered GT boxes, the cascade, the filled box alone."""
    detector = segmentation_run(settings, "gmsrf", settings.sam_train, settings.seeds[0])
    prompts = [GTBox("gt-box", 0.0), *(GTBox(f"jitter-{j:g}", j) for j in settings.sam_jitters),
               CascadeBox("cascade", detector.nested_dict(), f"GMSRF-Net seed {settings.seeds[0]}"), BoxFill()]
    return [p.to_dict() for p in prompts]


def sam_run(settings: BookProfile, strategy: str, seed: int, **overrides: Any) -> RunSpec:
    """A Polyp-SAM run: fine-tune (`decoder` or `full`), test with every prompt on every test set."""
    config = sam_config(settings, strategy, seed, **overrides)
    tests = tests_for(settings, settings.sam_train, protocol=settings.sam_test_protocol)
    return RunSpec.from_config("polyp-sam", config, tests, sam_prompts(settings), model=settings.sam_model,
                               strategy=strategy, train=settings.sam_train, seed=seed)


def pretraining_run(settings: BookProfile) -> RunSpec | None:
    """The `transfer` campaign's pretrained model: Polyp-SAM `full` on the source, first seed (None: SAM's weights).
    Its test on every image of the unseen centre is the zero-shot row of each fold (a fold's test images are a subset)."""
    transfer = settings.transfer
    if transfer is None or transfer.pretrain is None:
        return None
    return sam_run(settings, "full", settings.seeds[0], **transfer.pretrain)


def transfer_run(settings: BookProfile, arm: str, seed: int, fold: int) -> RunSpec:
    """One arm of the `transfer` campaign: from the pretrained weights, fine-tune `arm` on the labelled sequences of
    `fold` of the unseen centre (validated on its last quarter) and test with every prompt on the fold's other
    sequences."""
    transfer = settings.transfer
    dataset, options = dataset_key(transfer.target, settings)
    options = {**options, "split_seed": fold}
    config = sam_config(settings, arm, seed, dataset=dataset, dataset_options=options, protocol="sequences",
                        **transfer.recipe)
    tests = [eval_set(transfer.target, dataset, options, "test", "sequences")]
    return RunSpec.from_config("polyp-sam", config, tests, sam_prompts(settings), pretraining_run(settings),
                               model=settings.sam_model, strategy=arm, train=f"{transfer.target} fold {fold}", seed=seed)


def declare(settings: BookProfile) -> dict[str, Campaign]:
    """Every campaign of a profile."""
    name = settings.name
    # seed-major: every model's first seed lands before any second seed (comparisons early in a long campaign)
    comparison = tuple(
        segmentation_run(settings, model, source, seed)
        for seed in settings.seeds for source in settings.sources for model in ("gmsrf", *settings.baselines))
    ablation_seeds = settings.seeds[:settings.ablation_seeds]
    smoke = {"epochs": 1} if name == "smoke" else {}  # smoke: one optimiser step per variant
    variants = dict(ABLATIONS)
    if name == "full":  # the stem-bypassed Res2Net variant runs at 15x the FLOPs: GPU only
        variants["official variant"] = {"options": {"variant": "official", "backbone": None}}
    ablations = tuple(
        segmentation_run(settings, "gmsrf", settings.source, seed, label=label, options=spec.get("options"),
                         **({"loss_options": spec["loss_options"]} if "loss_options" in spec else {}), **smoke)
        for seed in ablation_seeds for label, spec in variants.items())
    sam = tuple(sam_run(settings, strategy, seed) for seed in settings.seeds for strategy in ("decoder", "full"))
    declared = {
        "cross-dataset": Campaign("cross-dataset", name, "03_training, 04_cross_dataset",
                                  "GMSRF-Net and the baselines, every source and seed, tested on every test set",
                                  comparison),
        "ablations": Campaign("ablations", name, "05_ablations",
                              "GMSRF-Net without each component (the full network is in cross-dataset)", ablations),
        "polyp-sam": Campaign("polyp-sam", name, "06_sam_strategies, 07_multicentre",
                              "Polyp-SAM decoder-only vs full fine-tuning; GT, jittered and cascade box prompts", sam),
    }
    if settings.recipe.get("precision", "auto") != "fp32":  # the profile trains in reduced precision: check it
        fp32 = tuple(segmentation_run(settings, "gmsrf", settings.source, seed, label="GMSRF-Net fp32 NCHW",
                                      precision="fp32", channels_last=False)
                     for seed in settings.seeds[:settings.precision_seeds])
        declared["precision"] = Campaign("precision", name, "03_training",
                                         "GMSRF-Net in fp32 NCHW: the same runs as cross-dataset's but without bf16 "
                                         "autocast and channels-last (accuracy check of the fast recipe)", fp32)
    if settings.convergence is not None:  # seed-major: seed 0 of every model is the pilot that lands first
        runs = tuple(convergence_run(settings, model, seed) for seed in settings.seeds
                     for model in settings.convergence.models)
        declared["convergence"] = Campaign(
            "convergence", name, "03_training, 04_cross_dataset",
            f"{' and '.join(MODEL_LABELS.get(m, m) for m in settings.convergence.models)} on one recipe with a "
            "decaying learning rate until validation Dice plateaus, tested at fixed epochs", runs,
            settings.convergence.timing)
    if settings.transfer is not None:  # seed-major: every arm of the first fold lands before the second fold
        pretrain = pretraining_run(settings)
        arms = tuple(transfer_run(settings, arm, seed, i % N_FOLDS) for i, seed in enumerate(settings.seeds)
                     for arm in settings.transfer.arms)
        declared["transfer"] = Campaign(
            "transfer", name, "06_sam_strategies",
            "Polyp-SAM's question: a pretrained promptable segmenter transferred to an unseen centre by decoder-only, "
            "LoRA and full fine-tuning on a third of its video sequences, tested on the others",
            (pretrain, *arms) if pretrain is not None else arms)
    return declared


def campaigns(profile: str | BookProfile = "smoke") -> dict[str, Campaign]:
    """The declared campaigns of a profile (by name or settings)."""
    settings = profile if isinstance(profile, BookProfile) else profile_settings(profile)
    return declare(settings)


def get_campaigns(profile: str | BookProfile, names: list[str] | tuple[str, ...] | None = None) -> list[Campaign]:
    """The named campaigns of a profile (all when `names` is empty), in declaration order."""
    declared = campaigns(profile)
    unknown = [n for n in names or () if n not in declared]
    if unknown:
        pname = profile if isinstance(profile, str) else profile.name
        raise ConfigError(f"unknown campaign(s) {', '.join(unknown)} for profile {pname!r}; "
                          f"choose from {', '.join(declared)}")
    return [declared[n] for n in names] if names else list(declared.values())
