"""The research book: profiles, recorded `full` results with provenance, papermill runner and Jupyter Book build."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyplib.errors import ConfigError, DataError

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "results"
NOTEBOOKS = (
    "01_data", "02_gmsrf_architecture", "03_training", "04_cross_dataset", "05_ablations",
    "06_sam_strategies", "07_multicentre", "08_performance", "09_summary",
)
# Files the Jupyter Book build needs besides the notebooks (relative to the repository root).
_BOOK_FILES = ("_config.yml", "book/_toc.yml", "book/intro.md", "book/references.md", "book/references.bib")


@dataclasses.dataclass(frozen=True)
class BookProfile:
    """Sizes, data and recipes one profile runs every chapter with."""

    name: str
    device: str
    source: str  # training dataset of the single-source chapters (GMSRF Tables I-II use two sources)
    sources: tuple[str, ...]  # the source datasets of the cross-dataset chapter
    test_sets: tuple[str, ...]  # every dataset a trained model is tested on
    sam_train: tuple[str, ...]  # Polyp-SAM training data (PraNet train set: Kvasir + ClinicDB)
    data_options: dict[str, Any]  # extra keyword arguments of `load_dataset`
    image_size: int
    sam_image_size: int
    epochs: int | None  # None: the preset's own (paper) number of epochs
    max_steps: int | None  # optimiser steps per epoch cap (None: whole epoch)
    eval_limit: int | None  # images evaluated per test set (None: all)
    seeds: tuple[int, ...]
    gmsrf_preset: str
    baseline_preset: str
    baselines: tuple[str, ...]
    sam_model: str
    model_options: dict[str, Any]
    n_examples: int
    data_root: str | None = None


PROFILES: dict[str, BookProfile] = {
    "smoke": BookProfile(
        name="smoke", device="cpu", source="synthpolyp-a", sources=("synthpolyp-a",),
        test_sets=("synthpolyp-a", "synthpolyp-b"), sam_train=("synthpolyp-a",),
        data_options={"num_images": 24}, image_size=64, sam_image_size=64, epochs=2, max_steps=4, eval_limit=8,
        seeds=(0, 1), gmsrf_preset="cpu-tiny", baseline_preset="cpu-tiny", baselines=("unet-original",),
        sam_model="polyp-sam-tiny", model_options={"width": 8}, n_examples=4,
    ),
    "full": BookProfile(
        name="full", device="cuda", source="kvasir-seg", sources=("kvasir-seg", "cvc-clinicdb"),
        test_sets=("kvasir-seg", "cvc-clinicdb", "cvc-colondb", "etis", "cvc-300"), sam_train=("kvasir-seg", "cvc-clinicdb"),
        data_options={}, image_size=256, sam_image_size=1024, epochs=None, max_steps=None, eval_limit=None,
        seeds=(0, 1, 2), gmsrf_preset="gmsrf-paper", baseline_preset="gmsrf-paper",
        baselines=("unet", "unetplusplus", "deeplabv3plus"), sam_model="polyp-sam-b", model_options={}, n_examples=8,
    ),
}


def profile_settings(profile: str = "smoke", **overrides: Any) -> BookProfile:
    """The settings of `profile`; keyword overrides that are `None` keep the profile's value."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown book profile {profile!r}; choose one of {sorted(PROFILES)}")
    fields = {f.name for f in dataclasses.fields(BookProfile)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown profile setting(s) {unknown}; valid names: {sorted(fields)}")
    changes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    return dataclasses.replace(PROFILES[profile], **changes)


def setup_notebook(settings: BookProfile) -> None:
    """Make a chapter deterministic and quiet: seeds, deterministic kernels, no progress bars, plot style."""
    import torch

    from polyplib import viz

    os.environ["TQDM_DISABLE"] = "1"
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    seed = settings.seeds[0]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if settings.device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    elif not torch.cuda.is_available():
        raise ConfigError(f"profile {settings.name!r} needs a CUDA GPU; run with profile='smoke' on a CPU machine")
    viz.set_style()


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

    from polyplib import viz

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


def _notebook_path(name: str, notebooks_dir: Path) -> Path:
    """The notebook file for a name like `03_training` or `03_training.ipynb`."""
    path = notebooks_dir / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not path.exists():
        raise ConfigError(f"notebook {path} not found; choose from {[p.stem for p in sorted(notebooks_dir.glob('*.ipynb'))]}")
    return path


def _strip_run_metadata(path: Path) -> None:
    """Drop papermill's per-run timings from a notebook so that committed notebooks only change with their outputs."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


def execute_notebooks(profile: str = "smoke", notebooks: list[str] | None = None, *, out_dir: Path,
                      data_root: str | None = None, timeout: int = 1800, src_dir: Path | None = None) -> dict[str, float]:
    """Execute the notebooks with papermill under `profile` into `out_dir`; returns seconds per notebook."""
    import papermill as pm

    profile_settings(profile)  # validate the name before starting kernels
    src_dir = Path(src_dir or REPO_ROOT / "notebooks")
    out_dir.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile} if data_root is None else {"profile": profile, "data_root": str(data_root)}
    in_place = out_dir.resolve() == src_dir.resolve()
    timings = {}
    for name in notebooks or NOTEBOOKS:
        src = _notebook_path(name, src_dir)
        dst = out_dir / src.name
        start = time.perf_counter()
        pm.execute_notebook(src, dst, parameters=None if in_place and profile == "smoke" and data_root is None else parameters,
                            cwd=str(src_dir), kernel_name="python3", progress_bar=False, execution_timeout=timeout)
        timings[src.stem] = time.perf_counter() - start
        if in_place:
            _strip_run_metadata(dst)
    return timings


def stage_book(stage: Path, notebooks_from: Path | None = None) -> Path:
    """Copy the book sources (config, toc, pages, notebooks) into `stage`, the source root of the HTML build."""
    if stage.exists():
        shutil.rmtree(stage)
    for rel in _BOOK_FILES:
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, stage / rel)
    (stage / "notebooks").mkdir()
    for name in NOTEBOOKS:
        shutil.copy2(_notebook_path(name, notebooks_from or REPO_ROOT / "notebooks"), stage / "notebooks" / f"{name}.ipynb")
    return stage


def build_html(stage: Path, out: Path) -> Path:
    """Build the HTML with Jupyter Book (`-W --keep-going`: any warning, e.g. a broken reference, fails the build)."""
    if out.exists():
        shutil.rmtree(out / "_build" / "html", ignore_errors=True)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(stage),
           "--config", str(stage / "_config.yml"), "--toc", str(stage / "book" / "_toc.yml"),
           "--path-output", str(out), "-W", "--keep-going", "--builder", "html"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise ConfigError(f"jupyter-book build of {stage} failed (exit {proc.returncode}):\n{tail}")
    return out / "_build" / "html"


def run_book(profile: str = "smoke", execute: bool = True, notebooks: list[str] | None = None,
             out: Path | str = REPO_ROOT / "book", *, data_root: str | None = None, in_place: bool = False) -> Path:
    """Execute the notebooks under `profile` (papermill) and build the HTML book into `out/_build/html`."""
    out = Path(out)
    stage = out / "_build" / "src"
    executed = REPO_ROOT / "notebooks" if in_place else out / "_build" / "executed"
    if execute:
        timings = execute_notebooks(profile, notebooks, out_dir=executed, data_root=data_root)
        for name, seconds in timings.items():
            print(f"executed {name} ({profile}) in {seconds:.1f} s")
    # notebooks that were not executed now come from the committed copies
    if executed.exists() and not in_place:
        for name in NOTEBOOKS:
            if not (executed / f"{name}.ipynb").exists():
                shutil.copy2(_notebook_path(name, REPO_ROOT / "notebooks"), executed / f"{name}.ipynb")
    stage_book(stage, executed if execute else None)
    start = time.perf_counter()
    html = build_html(stage, out)
    print(f"built {html} in {time.perf_counter() - start:.1f} s")
    return html


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add `polyplib book --profile smoke|full [--no-execute] [--notebooks ...]` to the CLI."""
    parser = subparsers.add_parser("book", help="execute the notebooks (papermill) and build the HTML book")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    parser.add_argument("--no-execute", dest="execute", action="store_false",
                        help="build from the committed, executed notebooks")
    parser.add_argument("--notebooks", nargs="+", default=None, help=f"subset of {', '.join(NOTEBOOKS)}")
    parser.add_argument("--data-root", default=None, help="real data root for the full profile")
    parser.add_argument("--in-place", action="store_true", help="write executed notebooks back into notebooks/")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "book", help="HTML goes to OUT/_build/html")
    parser.set_defaults(func=_cli_book)


def _cli_book(args: argparse.Namespace) -> int:
    """Entry point of `polyplib book`."""
    run_book(args.profile, args.execute, args.notebooks, args.out, data_root=args.data_root, in_place=args.in_place)
    return 0
