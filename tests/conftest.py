"""Shared fixtures: the real development data when present, small seeds everywhere."""
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

SHARED_DATA = Path(os.environ.get("POLYPLIB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real Kvasir-SEG / CVC-ColonDB copies beside the checkout; skip when absent."""
    if not (SHARED_DATA / "Kvasir-SEG").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set POLYPLIB_SHARED_DATA)")
    return SHARED_DATA
