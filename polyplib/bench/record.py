"""A benchmark result as stored (`polyplib bench --out`): provenance plus one record per suite, JSON byte-compatible."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyplib.atomic import write_json_atomic
from polyplib.errors import DataError


@dataclass(frozen=True)
class SuiteResult:
    """One suite's settings, timing lines and comparisons of ours against the authors' line, keys in written order."""

    fields: dict[str, Any]

    @property
    def name(self) -> str:
        return self.fields.get("suite", "")

    @property
    def skipped(self) -> str | None:
        """Why the suite did not run (None when it ran)."""
        return self.fields.get("skipped")

    @property
    def device(self) -> str:
        return self.fields["device"]

    @property
    def image_size(self) -> int:
        return self.fields["image_size"]

    @property
    def repeats(self) -> int | None:
        return self.fields.get("repeats")

    @property
    def steps_per_repeat(self) -> int | None:
        return self.fields.get("steps_per_repeat")

    @property
    def lines(self) -> list[dict[str, Any]]:
        """One row per timed line: recipe, what was timed, batch, images/s median [min-max], ms per call."""
        return self.fields.get("lines", [])

    @property
    def comparisons(self) -> list[dict[str, Any]]:
        """One row per pair of lines: speed-up of ours median [min-max], memory ratio, trust warning."""
        return self.fields.get("comparisons", [])


@dataclass(frozen=True)
class BenchResult:
    """Provenance of the machine and code that measured, and each suite's result by name."""

    provenance: dict[str, Any]
    suites: dict[str, SuiteResult] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"provenance": self.provenance, "suites": {k: v.fields for k, v in self.suites.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchResult:
        return cls(data["provenance"], {k: SuiteResult(v) for k, v in data["suites"].items()})

    @classmethod
    def load(cls, path: str | Path) -> BenchResult:
        """Read a stored result; a file that is not one is a DataError naming it."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise DataError(f"{path} is not a readable `polyplib bench` result ({err}); rerun the benchmark") from None

    def write(self, path: str | Path) -> Path:
        """Compact JSON, written atomically."""
        return write_json_atomic(Path(path), self.to_json())
