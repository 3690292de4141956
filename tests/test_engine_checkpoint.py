"""Checkpoints: atomic writes, weights_only refusal of pickled objects, RNG state round trip."""
import random
from collections import OrderedDict

import numpy as np
import pytest
import torch

from polyplib.engine import checkpoint as ckpt
from polyplib.errors import WeightsError


class Payload:
    """An arbitrary Python object (what weights_only loading must refuse)."""

    def __init__(self):
        self.value = 3


def test_atomic_save_keeps_old_checkpoint_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint({"epoch": 1, "w": torch.arange(5.0)}, path)
    real_save = torch.save

    def crash(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04partial")  # some bytes reach the temp file, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint({"epoch": 2, "w": torch.zeros(5)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    state = ckpt.load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(5.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": OrderedDict(w=torch.ones(2)), "extra": Payload()}, path)
    with pytest.raises(WeightsError, match=r"evil\.pt.*pickled Python objects"):
        ckpt.load_checkpoint(path)


def test_truncated_and_missing_checkpoints_are_clear_errors(tmp_path):
    path = tmp_path / "cut.pt"
    ckpt.save_checkpoint({"w": torch.randn(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(WeightsError, match="cut.pt is unreadable or truncated"):
        ckpt.load_checkpoint(path)
    with pytest.raises(WeightsError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ckpt.save_checkpoint({"rng": ckpt.rng_state()}, tmp_path / "rng.pt")
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.set_rng_state(ckpt.load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
