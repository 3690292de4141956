"""The results store: one small JSON file per finished run, `results/<profile>/<campaign>/<run-id>.json`, and one per
run that diverged, `.../failed/<run-id>.json` (why, with its training log), so a missing run says why it is missing.
They are read as typed records (`campaigns.records`). A campaign folder's `errata/ERRATA.json` names metrics of
stored runs known to be wrong (`Erratum`): the files stay as written, the book leaves those metrics out and says why."""
from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyplib.campaigns.spec import RunSpec

from polyplib.atomic import write_json_atomic
from polyplib.campaigns.integrity import checksum, inconsistency
from polyplib.campaigns.records import FAILURE_FORMAT, RESULT_FORMAT, FailureRecord, RunResult
from polyplib.errors import DataError

ERRATA_FILE = "errata/ERRATA.json"  # beside failed/: never read as a run's result


@dataclasses.dataclass(frozen=True)
class Erratum:
    """Metrics of some stored runs that are known to be wrong, and why (a campaign's `errata/ERRATA.json`)."""

    runs: tuple[str, ...]
    metrics: tuple[str, ...]
    why: str


REQUIRED = ("format", "run_id", "profile", "campaign", "spec", "provenance", "train", "tests")


class StoreWarning(UserWarning):
    """A stored result that disagrees with itself: named once, then treated as missing."""


class Store:
    """The result files of one campaign of one profile under a results folder."""

    def __init__(self, results_dir: str | Path, profile: str, campaign: str) -> None:
        self.folder = Path(results_dir) / profile / campaign
        self.profile, self.campaign = profile, campaign

    def path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.json"

    def has(self, run_id: str) -> bool:
        return self.path(run_id).is_file()

    def load(self, run_id: str) -> RunResult | None:
        """The stored result of a run (None when absent, or when it disagrees with itself: `integrity`, named in a
        StoreWarning); a damaged or foreign file is a one-line DataError."""
        path = self.path(run_id)
        return checked(path, read_result(path, run_id)) if path.is_file() else None

    def find(self, spec: "RunSpec") -> RunResult | None:
        """The stored result that fulfils a declared run: its own, or that of an explicit recipe it resolves to."""
        for form in spec.equivalents():
            result = self.load(form.run_id)
            if result is not None:
                return result
        return None

    def untrusted(self, spec: "RunSpec") -> Path | None:
        """A result file of the run that `find` did not trust (it disagrees with itself): kept, never written over."""
        if self.find(spec) is not None:
            return None
        return next((self.path(f.run_id) for f in spec.equivalents() if self.has(f.run_id)), None)

    def errata(self) -> list[Erratum]:
        """The campaign's errata, from `errata/ERRATA.json`: {"errata": [{"runs", "metrics", "why"}, ...]}."""
        path = self.folder / ERRATA_FILE
        if not path.is_file():
            return []
        try:
            return [Erratum(tuple(e["runs"]), tuple(e["metrics"]), str(e["why"]))
                    for e in json.loads(path.read_text())["errata"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not an errata file ({exc}); expected {{\"errata\": [{{\"runs\": [...], "
                            f"\"metrics\": [...], \"why\": \"...\"}}]}}; fix or remove it") from exc

    def results_for(self, specs) -> list[RunResult]:
        """The stored results that fulfil `specs` (`find`), in their order."""
        return [r for r in (self.find(s) for s in specs) if r is not None]

    def save(self, result: dict[str, Any]) -> Path:
        """Store a finished run's JSON (`RunResult.to_dict`'s shape) with its checksum (and drop the failure record of
        an earlier attempt)."""
        path = write_json_atomic(self.path(result["run_id"]), {**result, "checksum": checksum(result)})
        self.failure_path(result["run_id"]).unlink(missing_ok=True)
        return path

    def failure_path(self, run_id: str) -> Path:
        return self.folder / "failed" / f"{run_id}.json"

    def save_failure(self, spec: "RunSpec", reason: str, history: list[dict[str, Any]]) -> Path:
        """Record that a run diverged: its spec, the one-line reason, the epochs it trained and where it ran."""
        from polyplib.engine.provenance import provenance

        record = {"format": FAILURE_FORMAT, "run_id": spec.run_id, "profile": self.profile, "campaign": self.campaign,
                  "spec": spec.to_dict(), "reason": reason, "history": history, "provenance": provenance()}
        return write_json_atomic(self.failure_path(spec.run_id), record)

    def failure(self, spec: "RunSpec") -> FailureRecord | None:
        """The failure record of a declared run (any recipe it resolves to); `save` drops it once the run is stored."""
        for form in spec.equivalents():
            path = self.failure_path(form.run_id)
            if path.is_file():
                record = read_result(path, form.run_id, FAILURE_FORMAT, ("format", "run_id", "spec", "reason"))
                return FailureRecord.from_dict(record, path)
        return None

    def results(self, run_ids: list[str] | None = None) -> list[RunResult]:
        """Every stored result (or those of `run_ids` that exist), in file-name or `run_ids` order."""
        if run_ids is None:
            paths = sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []
            return [r for r in (checked(p, read_result(p, p.stem)) for p in paths) if r is not None]
        return [r for r in (self.load(i) for i in run_ids) if r is not None]


def checked(path: Path, result: dict[str, Any]) -> RunResult | None:
    """The record of `result` when it agrees with itself; else None, named in one line (a StoreWarning)."""
    why = inconsistency(result)
    if why is None:
        return RunResult.from_dict(result, path)
    warnings.warn(f"result file {path} is inconsistent: {why}; it is treated as missing (delete it to train that run "
                  "again)", StoreWarning, stacklevel=2)
    return None


def read_result(path: Path, run_id: str, kind: str = RESULT_FORMAT, required: tuple[str, ...] = REQUIRED
                ) -> dict[str, Any]:
    """The JSON of one result (or failure record) file, its format, fields and run id checked (what `integrity`
    hashes: the records are built from it)."""
    fix = f"delete {path} to re-run that run"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"result file {path} cannot be read ({err}); {fix}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"result file {path} is truncated or not JSON ({err.msg} at char {err.pos}); {fix}") from None
    if not isinstance(data, dict) or data.get("format") != kind:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        what = "result" if kind == RESULT_FORMAT else "failure record"
        raise DataError(f"result file {path} is not a polyplib campaign {what} (format {found!r}, expected "
                        f"{kind!r}); move it out of the results folder")
    missing = [k for k in required if k not in data]
    if missing:
        raise DataError(f"result file {path} lacks {', '.join(missing)}; {fix}")
    if data["run_id"] != run_id:
        raise DataError(f"result file {path} holds run {data['run_id']}, not {run_id}; rename or delete it")
    return data
