"""The box prompts a Polyp-SAM run is tested with, as types: each reads its entry of `RunSpec.prompts` (the JSON is
unchanged, so run ids stay) and evaluates a fine-tuned model with its own prediction function."""
from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from polyplib.campaigns.spec import RunSpec


class BoxPrompt(abc.ABC):
    """One prompt of a Polyp-SAM run: `name` keys its test entries, `record` is stored beside their scores."""

    name: str
    record: dict[str, Any] | None = None

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The prompt's entry of `RunSpec.prompts` (part of the run id)."""

    @abc.abstractmethod
    def evaluate(self, sam: "nn.Module", dataset: str, out_dir: Path, *, device: str, **options: Any):
        """`engine.evaluate`'s result of `sam` prompted this way on a test set."""


@dataclasses.dataclass(frozen=True)
class GTBox(BoxPrompt):
    """The ground-truth box, each side moved by up to `jitter` of its length (Polyp-SAM §2.3; 0: the tight box)."""

    name: str
    jitter: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "jitter": self.jitter}

    def evaluate(self, sam, dataset, out_dir, *, device, **options):
        from polyplib.sam.cascade import evaluate_sam

        return evaluate_sam(sam, dataset, out_dir, jitter=self.jitter, device=device, **options)


@dataclasses.dataclass(frozen=True)
class BoxFill(BoxPrompt):
    """The filled ground-truth box as the prediction, no model: what the box alone scores."""

    name: str = "box-fill"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def evaluate(self, sam, dataset, out_dir, *, device, **options):
        from polyplib.engine.evaluate import evaluate
        from polyplib.engine.trainer import resolve_device
        from polyplib.sam.cascade import box_fill_predict_fn

        fn = box_fill_predict_fn(resolve_device(device))
        return evaluate(None, dataset, out_dir=out_dir, predict_fn=fn, device=device, **options)


@dataclasses.dataclass(frozen=True)
class CascadeBox(BoxPrompt):
    """A box per component of a trained detector's mask (the cascade: no ground truth at test time); `trained` binds
    the detector's model, input size and training record before it evaluates."""

    name: str
    detector: dict[str, Any]  # the detector's spec as the run nests it (`RunSpec.nested_dict`)
    detector_label: str | None = None
    model: "nn.Module | None" = dataclasses.field(default=None, compare=False, repr=False)
    record: dict[str, Any] | None = dataclasses.field(default=None, compare=False)

    @property
    def run(self) -> RunSpec:
        """The detector's run."""
        return RunSpec.from_dict(self.detector)

    def trained(self, model: "nn.Module", record: dict[str, Any]) -> "CascadeBox":
        return dataclasses.replace(self, model=model, record=record)

    def to_dict(self) -> dict[str, Any]:
        label = {} if self.detector_label is None else {"detector_label": self.detector_label}
        return {"name": self.name, "detector": self.detector, **label}

    def evaluate(self, sam, dataset, out_dir, *, device, **options):
        from polyplib.sam.cascade import evaluate_sam

        if self.model is None:
            raise RuntimeError(f"cascade prompt {self.name!r} evaluated before its detector was trained")
        return evaluate_sam(sam, dataset, out_dir, detector=self.model, detector_size=self.run.config["image_size"],
                            device=device, **options)


def box_prompt(data: dict[str, Any]) -> BoxPrompt:
    """The prompt type of one entry of `RunSpec.prompts`: a nested detector spec, `box-fill`, or a GT box's jitter."""
    if "detector" in data:
        return CascadeBox(data["name"], data["detector"], data.get("detector_label"))
    if data["name"] == BoxFill.name:
        return BoxFill()
    return GTBox(data["name"], data["jitter"])
