"""A run (one training + evaluation) as a canonical spec with a stable id: same spec, same id."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyplib.engine.config import TrainConfig

from polyplib.errors import ConfigError

SPEC_FORMAT = "polyplib-run-v1"
KINDS = ("segmentation", "polyp-sam")
# TrainConfig fields that never change the numbers, so they are not part of a run's identity
NOT_HASHED = ("root", "out_dir", "progress", "workers", "device", "save_every_steps", "recipe")  # recipe: a label
# the TrainConfig options every run id hashes; any other option is hashed only when it differs from its default, so an
# option whose default keeps the numbers as they were leaves every stored run id valid
V1_OPTIONS = ("model", "model_options", "dataset", "protocol", "train_split", "val_split", "dataset_options",
              "image_size", "augment", "batch_size", "epochs", "lr", "optimizer", "weight_decay", "schedule",
              "plateau_patience", "plateau_factor", "warmup_epochs", "warmup_start_lr", "min_lr", "grad_accum",
              "clip_value", "clip_norm", "precision", "channels_last", "compile", "loss", "loss_options", "select",
              "seed", "deterministic", "val_every", "max_steps_per_epoch")

# the options a cascade detector's config always carries when a Polyp-SAM run nests it in its prompts; that config is
# hashed whole, so any other option appears in it only when it differs from its default (`RunSpec.nested_dict`)
NESTED_OPTIONS = (*V1_OPTIONS, "val_loss")


_MISSING = object()
# the machines a precision=auto recipe resolves differently on: (device type, bf16 in hardware)
MACHINES = (("cpu", True), ("cpu", False), ("cuda", True), ("cuda", False))


def _defaults() -> dict[str, Any]:
    """TrainConfig's default value of every option."""
    from polyplib.engine.config import TrainConfig

    return TrainConfig().to_dict()


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces: the byte string a run id is the hash of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def eval_set(key: str, dataset: str, options: dict[str, Any], split: str | None, protocol: str) -> dict[str, Any]:
    """One test set of a run: book key, `load_dataset` name and options, split (None: every image), split protocol."""
    return {"key": key, "dataset": dataset, "options": dict(options), "split": split, "protocol": protocol}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Model, data, recipe, seed, test sets and (Polyp-SAM) prompts of one run; `labels` only name it in tables."""

    kind: str
    config: dict[str, Any]  # TrainConfig fields except NOT_HASHED
    tests: tuple[dict[str, Any], ...]
    prompts: tuple[dict[str, Any], ...] = ()  # Polyp-SAM: gt-box (jitter), cascade (detector spec), box-fill
    labels: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    init: dict[str, Any] | None = None  # the run whose selected weights this one starts from (`nested_dict`)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"run kind {self.kind!r} is not known; choose one of {', '.join(KINDS)}")
        from polyplib.engine.config import TrainConfig

        TrainConfig.from_dict(self.config)  # every option valid
        stray = sorted(set(self.config) & set(NOT_HASHED))
        if stray:
            raise ConfigError(f"run spec config must not hold {stray}: they are set where the run executes")

    @classmethod
    def from_config(cls, kind: str, config: "TrainConfig", tests, prompts=(), init: "RunSpec | None" = None,
                    **labels: Any) -> "RunSpec":
        """The spec of a TrainConfig (paths, device and progress dropped) with its test sets and prompts, started from
        the selected weights of the run `init` (None: the model's own initialisation)."""
        fields = {k: v for k, v in config.to_dict().items() if k not in NOT_HASHED}
        return cls(kind, fields, tuple(tests), tuple(prompts), labels, None if init is None else init.nested_dict())

    def identity(self) -> dict[str, Any]:
        """Everything that determines the numbers (the labels do not): the V1 options, and later options that differ
        from their default."""
        defaults = _defaults()
        config = {k: v for k, v in self.config.items() if k in V1_OPTIONS or v != defaults.get(k, _MISSING)}
        identity = {"format": SPEC_FORMAT, "kind": self.kind, "config": config, "tests": list(self.tests),
                    "prompts": list(self.prompts)}
        return identity if self.init is None else {**identity, "init": self.init}

    @property
    def run_id(self) -> str:
        """Short stable hash of `identity()` (12 hex digits of SHA-256)."""
        return hashlib.sha256(canonical_json(self.identity()).encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        """The whole spec (every option, defaults included) and its labels, as stored beside the result."""
        return {**self.identity(), "config": dict(self.config), "labels": dict(self.labels)}

    def nested_dict(self) -> dict[str, Any]:
        """`to_dict` as another run nests it (a cascade detector in a Polyp-SAM run's prompts), options outside
        `NESTED_OPTIONS` left out while they hold their default, so that the nesting run keeps its id."""
        defaults = _defaults()
        config = {k: v for k, v in self.config.items() if k in NESTED_OPTIONS or v != defaults.get(k, _MISSING)}
        return {**self.to_dict(), "config": config}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        if data.get("format") != SPEC_FORMAT:
            raise ConfigError(f"run spec format {data.get('format')!r} is not {SPEC_FORMAT!r}")
        return cls(data["kind"], data["config"], tuple(data["tests"]), tuple(data.get("prompts", ())),
                   data.get("labels", {}), data.get("init"))

    def resolved(self, device: str = "auto") -> "RunSpec":
        """The explicit recipe this run trains with on `device` (precision=auto and channels_last=None as the trainer
        resolves them there; its cascade detectors too): what is stored, so a result says how it was trained."""
        from polyplib.engine.precision import bf16_native
        from polyplib.engine.trainer import resolve_device

        dev = resolve_device(device)
        return self.resolved_on(dev.type, bf16_native(dev))

    def resolved_on(self, device_type: str, native_bf16: bool) -> "RunSpec":
        """`resolved` on a machine described by its device type and whether bf16 is native there."""
        from polyplib.engine.precision import channels_last_for, precision_name

        config = dict(self.config)
        if config["precision"] == "auto":
            config["precision"] = precision_name("auto", device_type, native_bf16)
            config["channels_last"] = channels_last_for(config["channels_last"], device_type, config["precision"])
        prompts = tuple({**p, "detector": RunSpec.from_dict(p["detector"]).resolved_on(device_type, native_bf16)
                         .nested_dict()} if "detector" in p else p for p in self.prompts)
        init = None if self.init is None else self.pretrained().resolved_on(device_type, native_bf16).nested_dict()
        return dataclasses.replace(self, config=config, prompts=prompts, init=init)

    def equivalents(self) -> list["RunSpec"]:
        """This spec and every explicit recipe it resolves to on some machine (`MACHINES`): a stored result of any of
        them fulfils this run. With channels_last=None, also each precision with channels-last left to the trainer
        (a stored result may name its precision alone)."""
        forms = [self]
        for machine in MACHINES:
            explicit = self.resolved_on(*machine)
            forms.append(explicit)
            if self.config["precision"] == "auto" and self.config["channels_last"] is None:
                forms.append(dataclasses.replace(explicit, config={**explicit.config, "channels_last": None}))
        return list({form.run_id: form for form in forms}.values())

    def train_config(self, *, root: str | None, out_dir: str, device: str = "auto", workers: int | None = None,
                     progress: bool = False) -> "TrainConfig":
        """The TrainConfig that executes this run on this machine."""
        from polyplib.engine.config import TrainConfig

        extra = {} if workers is None else {"workers": workers}
        return TrainConfig.from_dict({**self.config, "root": root, "out_dir": out_dir, "device": device,
                                      "progress": progress, **extra})

    def datasets(self) -> list[str]:
        """Every on-disk dataset this run reads (training, tests, a cascade detector's)."""
        names = [self.config["dataset"], *(t["dataset"] for t in self.tests)]
        for run in (*self.detectors(), *([self.pretrained()] if self.init is not None else [])):
            names += run.datasets()
        return [n for n in dict.fromkeys(names) if n != "synthpolyp"]

    def detectors(self) -> list["RunSpec"]:
        """The runs whose checkpoints this run's cascade prompts need."""
        from polyplib.campaigns.box_prompts import CascadeBox, box_prompt

        return [p.run for p in map(box_prompt, self.prompts) if isinstance(p, CascadeBox)]

    def pretrained(self) -> "RunSpec":
        """The run whose selected weights this one starts from (a ConfigError when it starts from none)."""
        if self.init is None:
            raise ConfigError(f"run {self.run_id} starts from no other run's weights")
        return RunSpec.from_dict(self.init)
