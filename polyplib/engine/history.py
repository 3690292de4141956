"""A run's per-epoch history as the trainer writes it: one JSON object per line of `log.jsonl`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a training log, in order (none when the file does not exist)."""
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
