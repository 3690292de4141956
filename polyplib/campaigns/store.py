"""The results store: one small JSON file per finished run, `results/<profile>/<campaign>/<run-id>.json`, and one per
run that diverged, `.../failed/<run-id>.json` (why, with its training log), so a missing run says why it is missing."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyplib.campaigns.spec import RunSpec

from polyplib.atomic import write_json_atomic
from polyplib.campaigns.integrity import checksum, inconsistency
from polyplib.errors import DataError

RESULT_FORMAT = "polyplib-campaign-result-v1"
FAILURE_FORMAT = "polyplib-campaign-failure-v1"
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

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The stored result of a run (None when absent, or when it disagrees with itself: `integrity`, named in a
        StoreWarning); a damaged or foreign file is a one-line DataError."""
        path = self.path(run_id)
        return checked(path, read_result(path, run_id)) if path.is_file() else None

    def find(self, spec: "RunSpec") -> dict[str, Any] | None:
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

    def results_for(self, specs) -> list[dict[str, Any]]:
        """The stored results that fulfil `specs` (`find`), in their order."""
        return [r for r in (self.find(s) for s in specs) if r is not None]

    def save(self, result: dict[str, Any]) -> Path:
        """Store a finished run with its checksum (and drop the failure record of an earlier attempt)."""
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

    def failure(self, spec: "RunSpec") -> dict[str, Any] | None:
        """The failure record of a declared run (any recipe it resolves to); `save` drops it once the run is stored."""
        for form in spec.equivalents():
            path = self.failure_path(form.run_id)
            if path.is_file():
                return read_result(path, form.run_id, FAILURE_FORMAT, ("format", "run_id", "spec", "reason"))
        return None

    def results(self, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Every stored result (or those of `run_ids` that exist), in file-name or `run_ids` order."""
        if run_ids is None:
            paths = sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []
            return [r for r in (checked(p, read_result(p, p.stem)) for p in paths) if r is not None]
        return [r for r in (self.load(i) for i in run_ids) if r is not None]


def checked(path: Path, result: dict[str, Any]) -> dict[str, Any] | None:
    """`result` when it agrees with itself; else None, named in one line (a StoreWarning)."""
    why = inconsistency(result)
    if why is None:
        return result
    warnings.warn(f"result file {path} is inconsistent: {why}; it is treated as missing (delete it to train that run "
                  "again)", StoreWarning, stacklevel=2)
    return None


def read_result(path: Path, run_id: str, kind: str = RESULT_FORMAT, required: tuple[str, ...] = REQUIRED
                ) -> dict[str, Any]:
    """Parse and check one result (or failure record) file."""
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
