"""The notebook setup of a chapter for its profile (the profiles are declared in `polyplib.campaigns.profiles`)."""
from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import numpy as np

from polyplib import viz
from polyplib.campaigns.profiles import BookProfile
from polyplib.errors import ConfigError

__all__ = ["REPO_ROOT", "setup_notebook"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def setup_notebook(settings: BookProfile, run_missing: bool = False) -> None:
    """Make a chapter deterministic and quiet: seeds, deterministic kernels, no progress bars, plot style
    (a GPU profile needs its GPU only when the chapter is to run the missing runs of its campaign)."""
    import torch

    os.environ["TQDM_DISABLE"] = "1"
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    seed = settings.seeds[0]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if settings.device == "cpu":
        torch.set_num_threads(min(settings.cpu_threads, os.cpu_count() or 1))
    elif run_missing and not torch.cuda.is_available():
        raise ConfigError(f"profile {settings.name!r} needs a CUDA GPU; run with profile='smoke' or 'lite' on a CPU "
                          "machine")
    viz.set_style()
