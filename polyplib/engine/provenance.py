"""Where a result came from: git commit, date, machine, library versions."""
from __future__ import annotations

import datetime as dt
import platform
import subprocess
from pathlib import Path

import torch

import polyplib


def git_commit() -> str | None:
    """HEAD of the checkout polyplib is imported from (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(polyplib.__file__).parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


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
    return {"git_commit": git_commit(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "torch": torch.__version__, "polyplib": polyplib.__version__,
            "python": platform.python_version()}
