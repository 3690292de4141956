"""DDP plumbing for `torchrun`: process group from RANK/WORLD_SIZE/LOCAL_RANK, nccl on GPU, gloo on CPU."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that torchrun's environment describes (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (identity for a single process)."""
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_gather_objects(value, info: DistInfo) -> list:
    """Collect one picklable value per rank (rank order)."""
    if not info.enabled:
        return [value]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def cleanup(info: DistInfo) -> None:
    """Leave the process group at the end of a run."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
