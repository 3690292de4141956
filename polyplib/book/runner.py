"""The papermill notebook runner, the Jupyter Book build and the `polyplib book` command."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from polyplib.book.profiles import REPO_ROOT
from polyplib.campaigns.profiles import PROFILES, profile_settings
from polyplib.errors import ConfigError, DataError, DivergenceError, PolypError, WeightsError

NOTEBOOKS = (
    "01_data", "02_gmsrf_architecture", "03_training", "04_cross_dataset", "05_ablations",
    "06_sam_strategies", "07_multicentre", "08_performance", "09_summary",
)
# Files the Jupyter Book build needs besides the notebooks (relative to the repository root).
_BOOK_FILES = ("_config.yml", "book/_toc.yml", "book/intro.md", "book/references.md", "book/references.bib")


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
                      data_root: str | None = None, timeout: int = 1800, src_dir: Path | None = None,
                      run_missing: bool = False) -> dict[str, float]:
    """Execute the notebooks with papermill under `profile` into `out_dir` (`run_missing`: the chapters execute the
    missing runs of their campaigns into results/ first); returns seconds per notebook."""
    import papermill as pm

    profile_settings(profile)  # validate the name before starting kernels
    src_dir = Path(src_dir or REPO_ROOT / "notebooks")
    out_dir.mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile, **({} if data_root is None else {"data_root": str(data_root)}),
                  **({"run_missing": True} if run_missing else {})}
    in_place = out_dir.resolve() == src_dir.resolve()
    timings = {}
    for name in notebooks or NOTEBOOKS:
        src = _notebook_path(name, src_dir)
        dst = out_dir / src.name
        start = time.perf_counter()
        try:
            pm.execute_notebook(src, dst, parameters=None if in_place and parameters == {"profile": "smoke"}
                                else parameters, cwd=str(src_dir), kernel_name="python3", progress_bar=False,
                                execution_timeout=timeout)
        except pm.PapermillExecutionError as err:
            raise notebook_error(src.name, profile, err, dst) from None
        timings[src.stem] = time.perf_counter() - start
        if in_place:
            _strip_run_metadata(dst)
    return timings


def notebook_error(name: str, profile: str, err, executed: Path) -> PolypError:
    """One line for a notebook that stopped: the polyplib error it raised (the data root is `--data-root` here), or
    where the executed notebook keeps the traceback of any other error."""
    cls = {c.__name__: c for c in (DataError, ConfigError, WeightsError, DivergenceError)}.get(err.ename)
    if cls is not None:
        hint = "; `polyplib book` takes the data root as --data-root DIR" if cls is DataError else ""
        return cls(f"notebook {name} (profile {profile}): {str(err.evalue).rstrip('. ')}{hint}")
    return ConfigError(f"notebook {name} (profile {profile}) failed in cell {err.exec_count}: {err.ename}: "
                       f"{str(err.evalue)[:200]}; the executed notebook {executed} shows the traceback")


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
             out: Path | str = REPO_ROOT / "book", *, data_root: str | None = None, in_place: bool = False,
             run_missing: bool = False) -> Path:
    """Execute the notebooks under `profile` (papermill) and build the HTML book into `out/_build/html`."""
    out = Path(out)
    stage = out / "_build" / "src"
    executed = REPO_ROOT / "notebooks" if in_place else out / "_build" / "executed"
    if execute:
        timings = execute_notebooks(profile, notebooks, out_dir=executed, data_root=data_root, run_missing=run_missing)
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
    """Add `polyplib book --profile smoke|lite|full [--no-execute] [--run-missing] [--notebooks ...]` to the CLI."""
    parser = subparsers.add_parser("book", help="execute the notebooks (papermill) and build the HTML book")
    parser.add_argument("--profile", choices=list(PROFILES), default="smoke",
                        help="smoke (live tiny runs, default); lite/full: render their stored campaign results")
    parser.add_argument("--no-execute", dest="execute", action="store_false",
                        help="build from the committed, executed notebooks")
    parser.add_argument("--notebooks", nargs="+", default=None, help=f"subset of {', '.join(NOTEBOOKS)}")
    parser.add_argument("--data-root", default=None, help="real data root for the lite and full profiles")
    parser.add_argument("--run-missing", action="store_true",
                        help="lite/full: the chapters first run what their campaigns still miss (into results/)")
    parser.add_argument("--figures", action="store_true",
                        help="lite/full: first render the figures that need data and checkpoints into "
                             "results/<profile>/figures/")
    parser.add_argument("--work", default=None, help="checkpoints of the campaign runs (default $POLYPLIB_WORK)")
    parser.add_argument("--in-place", action="store_true", help="write executed notebooks back into notebooks/")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "book", help="HTML goes to OUT/_build/html")
    parser.set_defaults(func=_cli_book)


def _cli_book(args: argparse.Namespace) -> int:
    """Entry point of `polyplib book`."""
    if args.figures:
        from polyplib.book.figures import render_figures

        for path in render_figures(args.profile, data_root=args.data_root, work=args.work):
            print(f"rendered {path}")
    run_book(args.profile, args.execute, args.notebooks, args.out, data_root=args.data_root, in_place=args.in_place,
             run_missing=args.run_missing)
    return 0
