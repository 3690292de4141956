"""Checkpoints: atomic writes, `weights_only` loading, and RNG states stored as plain tensors/lists."""
from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyplib.atomic import atomic_write
from polyplib.errors import WeightsError


def rng_state() -> dict:
    """Python, NumPy, torch and CUDA generator states as tensors and primitive lists."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` atomically (`polyplib.atomic.atomic_write`: temp file, fsync, `os.replace`)."""
    with atomic_write(path, "wb") as handle:
        torch.save(state, handle)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `torch.load(weights_only=True)`; anything but tensors and primitives is refused."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))
        raise WeightsError(f"checkpoint {path} is a folder, not a file; pass the best.pt or last.pt inside it"
                           + (f" (it holds {', '.join(found)})" if found else ""))
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} not found; pass the best.pt/last.pt of a training run")
    _check_file_kind(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise WeightsError(
            f"checkpoint {path} holds pickled Python objects, refused for safety (weights_only loading): "
            f"{first[:200]}; "
            "re-save it with tensors and plain containers only") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise WeightsError(f"checkpoint {path} is unreadable or truncated ({str(err)[:200]}); "
                           "use another checkpoint") from None


TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # zip archive (torch.save since 1.6) or a legacy pickle


def _check_file_kind(path: Path) -> None:
    """Refuse files that are not torch checkpoints at all (JSON, other text, empty), saying what they are."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(TORCH_MAGIC):
        return
    if not head:
        raise WeightsError(f"checkpoint {path} is an empty file; use another checkpoint")
    text = head.decode("utf-8", errors="replace").lstrip()
    if b"\0" in head or text.count("\ufffd") > 3:
        return  # binary: let torch.load report what it finds
    kind = "a JSON text file" if text[:1] in "{[" else "a text file"
    hint = " (config.json/summary.json of a run?)" if text[:1] == "{" else ""
    raise WeightsError(f"checkpoint {path} is {kind}{hint}, not a PyTorch checkpoint; "
                       "pass the best.pt/last.pt of a training run")
