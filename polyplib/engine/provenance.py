"""Where a result came from: git commit, date, machine, library versions."""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

import torch

import polyplib


def git_commit() -> str | None:
    """HEAD of the checkout polyplib is imported from, `+dirty` when tracked files differ; None outside git. A copy
    sent elsewhere (a GPU machine's, laid over another commit or without .git) names the commit it was copied from
    in $POLYPLIB_COMMIT, recorded as `COMMIT (copy)`."""
    copied = os.environ.get("POLYPLIB_COMMIT")
    if copied:
        return f"{copied} (copy)"
    where = Path(polyplib.__file__).parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "polyplib"],
                               cwd=where.parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return out.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def machine() -> str:
    """CPU model and core count, plus the GPU name when CUDA is present."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu} ({torch.get_num_threads()} threads)"
    if torch.cuda.is_available():
        text += f"; {torch.cuda.get_device_name()}"
    return text


def provenance() -> dict:
    """A dict to store beside every result file."""
    return {"commit": git_commit(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "torch": torch.__version__, "polyplib": polyplib.__version__,
            "python": platform.python_version()}
