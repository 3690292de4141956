"""The benchmark suites by name (each module registers its own) and `run_bench`, which runs them with provenance."""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from polyplib.bench.record import BenchResult, SuiteResult
from polyplib.errors import ConfigError

VARIANTS = ("paper", "official")
SUITE_MODULES = {"gmsrf": "polyplib.bench.gmsrf", "sam": "polyplib.bench.sam"}  # imported on first need


@dataclass(frozen=True)
class BenchOptions:
    """What `polyplib bench` was asked; each suite reads the options it uses."""

    quick: bool = False
    device: str = "auto"
    variants: tuple[str, ...] = VARIANTS
    image_size: int | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    repeats: int | None = None


@dataclass(frozen=True)
class Suite:
    """A suite: `run` measures and returns its JSON record, `table` gives its lines of the text report."""

    name: str
    run: Callable[[BenchOptions], dict[str, Any]]
    table: Callable[[SuiteResult], list[str]]


_SUITES: dict[str, Suite] = {}


def register_suite(name: str, table: Callable[[SuiteResult], list[str]]
                   ) -> Callable[[Callable[[BenchOptions], dict[str, Any]]], Callable[[BenchOptions], dict[str, Any]]]:
    """Decorator registering `run(options) -> suite record` under `name`, with its text `table`."""
    def wrap(run: Callable[[BenchOptions], dict[str, Any]]) -> Callable[[BenchOptions], dict[str, Any]]:
        _SUITES[name] = Suite(name, run, table)
        return run
    return wrap


def get_suite(name: str) -> Suite:
    """The registered suite `name` (its module imported on first need)."""
    if name not in _SUITES and name in SUITE_MODULES:
        importlib.import_module(SUITE_MODULES[name])
    if name not in _SUITES:
        raise ConfigError(f"unknown benchmark suite {name!r}; choose one of {', '.join([*SUITE_MODULES, 'all'])}")
    return _SUITES[name]


def run_bench(suite: str = "gmsrf", out: str | Path | None = None, **options: Any) -> BenchResult:
    """Suite `suite` (or `all`) measured with `BenchOptions(**options)`; written to `out` when given."""
    from polyplib.engine.provenance import provenance

    names = list(SUITE_MODULES) if suite == "all" else [suite]
    suites = [get_suite(name) for name in names]
    opts = BenchOptions(**{k: v for k, v in options.items() if v is not None})
    result = BenchResult(provenance(), {s.name: SuiteResult(s.run(opts)) for s in suites})
    if out:
        result.write(out)
    return result


def format_table(result: BenchResult) -> str:
    """Plain-text report: each suite's lines (median [min-max]), speed-up ranges and trust warnings."""
    text = [f"{result.provenance['machine']} | torch {result.provenance['torch']}"]
    for name, suite in result.suites.items():
        if name in SUITE_MODULES and not suite.skipped:
            text.extend(get_suite(name).table(suite))
        else:
            text.append(f"{name}: {json.dumps(suite.fields)[:500]}")
    return "\n".join(text)
