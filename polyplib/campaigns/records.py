"""Typed records of the JSON files the results store holds: a run's result (spec, training summary, test entries,
provenance) and a failed run's record. The JSON on disk is unchanged (`to_dict` gives it back); `from_dict` is the one
place that reads older results:
- no `checksum`: results written before they carried one (`integrity` checks everything else);
- no `tests_at_epoch`: every result but those of the convergence campaign;
- a cascade entry without `detector`: written before the detector's training was recorded;
- per-image scores without the report card's columns (`hd95`, `nsd`, `area`, `pred_empty`, `segment`);
- a provenance field a result lacks reads as None;
- no `pretraining`: every run that starts from its model's own initialisation (or SAM's released weights)."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from polyplib.campaigns.spec import RunSpec
from polyplib.errors import ConfigError, DataError

RESULT_FORMAT = "polyplib-campaign-result-v1"
FAILURE_FORMAT = "polyplib-campaign-failure-v1"


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a run came from (`engine.provenance`) and, for a finished run, where and how fast it trained."""

    fields: dict[str, Any]

    @property
    def commit(self) -> str | None:
        return self.fields.get("commit")

    @property
    def date(self) -> str | None:
        return self.fields.get("date")

    @property
    def machine(self) -> str | None:
        return self.fields.get("machine")

    @property
    def device(self) -> str | None:
        return self.fields.get("device")

    @property
    def train_s(self) -> float | None:
        """Training time summed over every sitting of the run."""
        return self.fields.get("train_s")

    @property
    def images_per_s(self) -> float | None:
        return self.fields.get("images_per_s")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.fields)


@dataclasses.dataclass(frozen=True)
class DetectorRecord:
    """Which training of another run this one used: the cascade detector that drew a cascade entry's boxes, or the
    pretraining run whose selected weights a transfer run started from."""

    run_id: str
    best_epoch: int | None
    select: str
    best_metric: float | None
    train_s: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TestEntry:
    """One test set x prompt of a run: the metrics' means and (at the selected checkpoint) the per-image scores."""

    __test__ = False  # not a pytest class

    key: str
    split: str | None
    protocol: str
    prompt: str
    n: int
    means: dict[str, float]
    per_image: dict[str, list] | None = None  # `id` and one list per metric; absent at the test points
    detector: DetectorRecord | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TestEntry":
        detector = data.get("detector")
        return cls(data["key"], data["split"], data["protocol"], data["prompt"], data["n"], dict(data["means"]),
                   data.get("per_image"), None if detector is None else DetectorRecord(**detector))

    def to_dict(self) -> dict[str, Any]:
        out = {"key": self.key, "split": self.split, "protocol": self.protocol, "prompt": self.prompt, "n": self.n,
               "means": dict(self.means)}
        if self.per_image is not None:
            out["per_image"] = self.per_image
        return out if self.detector is None else {**out, "detector": self.detector.to_dict()}


@dataclasses.dataclass(frozen=True)
class TestPoint:
    """The test sets' means with the weights of one epoch (the convergence campaign's snapshots)."""

    __test__ = False

    epoch: int
    tests: tuple[TestEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "tests": [e.to_dict() for e in self.tests]}


@dataclasses.dataclass(frozen=True)
class TrainSummary:
    """The selected checkpoint (epoch, validation score, the metric selecting it) and the training log's rows."""

    best_epoch: int | None
    best_metric: float | None
    select: str
    epochs: int
    history: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_metric": self.best_metric, "select": self.select,
                "epochs": self.epochs, "history": list(self.history)}


@dataclasses.dataclass(frozen=True)
class RunResult:
    """A finished run as stored: `results/<profile>/<campaign>/<run_id>.json`."""

    run_id: str
    profile: str
    campaign: str
    spec: RunSpec
    provenance: Provenance
    train: TrainSummary
    tests: tuple[TestEntry, ...]
    tests_at_epoch: tuple[TestPoint, ...] = ()
    checksum: str | None = None
    pretraining: DetectorRecord | None = None  # the run whose selected weights it started from (`RunSpec.init`)

    @property
    def labels(self) -> dict[str, Any]:
        """How tables name the run (model, strategy, train, seed)."""
        return self.spec.labels

    def entry(self, test: str, prompt: str = "none") -> TestEntry | None:
        """The entry of one test set and prompt (None when the run has none)."""
        return next((e for e in self.tests if e.key == test and e.prompt == prompt), None)

    def relabelled(self, **labels: Any) -> "RunResult":
        """The same result named otherwise in tables (labels are not part of the run id)."""
        return dataclasses.replace(self, spec=dataclasses.replace(self.spec, labels={**self.labels, **labels}))

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | str) -> "RunResult":
        """The record of a result file's JSON (already checked by `store.read_result`)."""
        def build() -> RunResult:
            train = data["train"]
            return cls(data["run_id"], data["profile"], data["campaign"], RunSpec.from_dict(data["spec"]),
                       Provenance(dict(data["provenance"])),
                       TrainSummary(train["best_epoch"], train["best_metric"], train["select"], train["epochs"],
                                    tuple(train["history"])),
                       tuple(TestEntry.from_dict(e) for e in data["tests"]),
                       tuple(TestPoint(p["epoch"], tuple(TestEntry.from_dict(e) for e in p["tests"]))
                             for p in data.get("tests_at_epoch", ())),
                       data.get("checksum"),
                       None if data.get("pretraining") is None else DetectorRecord(**data["pretraining"]))

        return _parsed(build, path)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the result file (a copy: editing it leaves the record as it is)."""
        out = {"format": RESULT_FORMAT, "run_id": self.run_id, "profile": self.profile, "campaign": self.campaign,
               "spec": self.spec.to_dict(), "provenance": self.provenance.to_dict(), "train": self.train.to_dict(),
               "tests": [e.to_dict() for e in self.tests]}
        if self.tests_at_epoch:
            out["tests_at_epoch"] = [p.to_dict() for p in self.tests_at_epoch]
        if self.pretraining is not None:
            out["pretraining"] = self.pretraining.to_dict()
        return copy.deepcopy(out if self.checksum is None else {**out, "checksum": self.checksum})


@dataclasses.dataclass(frozen=True)
class FailureRecord:
    """A run that diverged: its spec, the one-line reason, the epochs it trained and where it ran."""

    run_id: str
    profile: str
    campaign: str
    spec: RunSpec
    reason: str
    history: tuple[dict[str, Any], ...]
    provenance: Provenance

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | str) -> "FailureRecord":
        return _parsed(lambda: cls(data["run_id"], data["profile"], data["campaign"], RunSpec.from_dict(data["spec"]),
                                   data["reason"], tuple(data["history"]), Provenance(dict(data["provenance"]))), path)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FAILURE_FORMAT, "run_id": self.run_id, "profile": self.profile, "campaign": self.campaign,
                "spec": self.spec.to_dict(), "reason": self.reason, "history": list(self.history),
                "provenance": self.provenance.to_dict()}


def _parsed(build, path: Path | str):
    """`build()`, a field missing or of the wrong shape named in one DataError with the file."""
    try:
        return build()
    except KeyError as err:
        why = f"lacks the field {err.args[0]!r}"
    except (ConfigError, TypeError, ValueError, AttributeError) as err:
        why = f"has a field of the wrong shape ({err})"
    raise DataError(f"result file {path} {why}; delete {path} to re-run that run")
