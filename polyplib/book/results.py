"""Recorded `full` results with provenance, their display and comparison with the papers."""
from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from polyplib import viz
from polyplib.book.profiles import REPO_ROOT, BookProfile
from polyplib.errors import DataError

RESULTS_DIR = REPO_ROOT / "results"


def _git_commit() -> str:
    """HEAD of the checkout this code runs from (with `+dirty` when it has local changes), or `unknown`."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def provenance(settings: BookProfile, data: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Where a result came from: commit, machine, date, data and seeds."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        "profile": settings.name,
        "commit": _git_commit(),
        "machine": f"{platform.node()} ({device}, torch {torch.__version__})",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": list(data if data is not None else settings.test_sets),
        "data_root": settings.data_root,
        "seeds": list(settings.seeds),
    }


def record_results(name: str, frame: pd.DataFrame, settings: BookProfile, *, data: list[str] | None = None,
                   results_dir: Path | None = None) -> Path | None:
    """Save a `full` run's table as `results/<name>.json` (+ `.csv`) with provenance; smoke runs are not recorded."""
    if settings.name != "full":
        return None
    out = Path(results_dir or RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "provenance": provenance(settings, data), "rows": json.loads(frame.to_json(orient="records"))}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    frame.to_csv(out / f"{name}.csv", index=False)
    return out / f"{name}.json"


def load_results(name: str, results_dir: Path | None = None) -> pd.DataFrame | None:
    """The latest committed `full` results called `name` (provenance in `frame.attrs`), or None when there are none."""
    path = Path(results_dir or RESULTS_DIR) / f"{name}.json"
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text())
        frame = pd.DataFrame.from_records(payload["rows"])
        frame.attrs["provenance"] = payload["provenance"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(f"{path} is not a polyp-book results file ({err}); delete it or re-run the full profile") from err
    return frame


def full_results_markdown(name: str, results_dir: Path | None = None) -> tuple[str, pd.DataFrame | None]:
    """A labelled heading for the committed `full` results of `name` and the table itself (None when absent)."""
    frame = load_results(name, results_dir)
    if frame is None:
        return (f"**Full profile (`{name}`): no results committed yet.** The `full` profile (GPU, real data, paper "
                "recipes) has not been run for this chapter; run `python -m polyplib book --profile full` on a GPU "
                f"machine and commit `results/{name}.json`. Only the live smoke run below is shown."), None
    p = frame.attrs["provenance"]
    return (f"**Full profile (`{name}`), committed result:** commit `{p['commit']}`, {p['machine']}, {p['date']}, "
            f"data {', '.join(p['data'])}, seeds {p['seeds']}."), frame


def show_full_results(name: str, results_dir: Path | None = None, **table_options: Any) -> pd.DataFrame | None:
    """Display the committed `full` results of `name` with their provenance, or say plainly that none exist."""
    from IPython.display import Markdown, display

    text, frame = full_results_markdown(name, results_dir)
    display(Markdown(text))
    if frame is not None:
        display(viz.styled_table(frame, caption=f"Full profile: {name}", **table_options))
    return frame


def smoke_label(settings: BookProfile) -> None:
    """Display the label that marks the following outputs as this live run (and what the profile means)."""
    from IPython.display import Markdown, display

    what = ("CPU, synthetic `synthpolyp` data, tiny models and a few optimiser steps: the numbers check that the "
            "pipeline runs end to end and say **nothing** about the methods' accuracy"
            if settings.name == "smoke" else "GPU, real data, the papers' recipes")
    display(Markdown(f"**Live run, profile `{settings.name}`** ({what})."))


def results_index(results_dir: Path | None = None) -> pd.DataFrame:
    """Every committed `full` result: name, rows and provenance (empty table when there are none)."""
    rows = []
    for path in sorted(Path(results_dir or RESULTS_DIR).glob("*.json")):
        frame = load_results(path.stem, results_dir)
        p = frame.attrs["provenance"]
        rows.append({"result": path.stem, "rows": len(frame), "commit": p["commit"][:12], "machine": p["machine"],
                     "date": p["date"], "seeds": str(p["seeds"])})
    return pd.DataFrame(rows, columns=["result", "rows", "commit", "machine", "date", "seeds"])


PAPER_NAMES = {"kvasir-seg": "Kvasir-SEG", "cvc-clinicdb": "CVC-ClinicDB", "cvc-colondb": "CVC-ColonDB",
               "etis": "ETIS", "cvc-300": "CVC-300"}
PAPER_COLUMNS = {"dice": "dsc", "iou": "miou"}
SAM_PAPER_COLUMNS = {"monaiDice": "dsc", "monaiIoU": "miou"}  # Polyp-SAM's tables: MONAI on [1,H,W] (notes §2.4)


def paper_comparison(results: str, table: str, on: tuple[str, ...] = ("method", "train", "test"),
                     metrics: tuple[str, ...] = ("dsc", "miou"), results_dir: Path | None = None) -> pd.DataFrame:
    """A published table beside our committed `full` results (mean over seeds; empty where none are committed).

    Polyp-SAM tables are compared with our `monaiDice` / `monaiIoU` (their protocol) when the results have them, else
    with the per-image Dice / IoU; `attrs["ours_protocol"]` says which."""
    from polyplib.paper_results import paper_table

    paper = paper_table(table)
    on = tuple(c for c in on if c in paper.columns)
    ours, protocol = load_results(results, results_dir), None
    if ours is not None and not set(on) <= set(ours.rename(columns={"model": "method"}).columns):
        raise DataError(f"results/{results}.json lacks the columns {sorted(on)} needed to join {table}; re-run its chapter")
    if ours is None:
        ours = pd.DataFrame(columns=[*on, *metrics], dtype=float)
    else:
        monai = table.startswith("polyp-sam") and set(SAM_PAPER_COLUMNS) <= set(ours.columns)
        columns = SAM_PAPER_COLUMNS if monai else PAPER_COLUMNS
        protocol = "monai" if monai else "per-image"
        ours = ours.drop(columns=[c for c in columns.values() if c in ours.columns])
        ours = ours.rename(columns={"model": "method", **columns}).replace(PAPER_NAMES)
        if "test" in on and "Kvasir" in set(paper["test"]):  # Polyp-SAM names Kvasir-SEG "Kvasir"
            ours = ours.replace({"Kvasir-SEG": "Kvasir"})
        ours = ours.groupby(list(on), as_index=False)[list(metrics)].mean()
    out = viz.paper_vs_ours(paper, ours, on, metrics)
    out.attrs["ours_protocol"] = protocol
    return out
