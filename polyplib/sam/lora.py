"""LoRA (Hu et al., ICLR 2022, Eq. 3: h = W0 x + B A x, B zero at start) on SAM's image-encoder attention, as SAMed
(Zhang & Liu 2023) places it: a rank-r update of the query and value projections of every block's fused `qkv` Linear,
the pretrained weights frozen. Ours, not `peft`: SAM's `qkv` is one Linear whose output rows are q, k and v, and LoRA
touches q and v only, which peft's whole-module adapters cannot express."""
from __future__ import annotations

import math

import torch
from torch import nn

DEFAULT_RANK = 4
DEFAULT_ALPHA = 4.0


class LoRAQKV(nn.Module):
    """A frozen fused qkv Linear plus low-rank updates B_q A_q and B_v A_v of its query and value rows."""

    def __init__(self, qkv: nn.Linear, rank: int = DEFAULT_RANK, alpha: float = DEFAULT_ALPHA) -> None:
        super().__init__()
        self.qkv = qkv
        dim = qkv.in_features
        self.dim, self.scale = dim, alpha / rank
        self.a_q, self.a_v = (nn.Parameter(torch.empty(rank, dim)) for _ in range(2))
        self.b_q, self.b_v = (nn.Parameter(torch.zeros(dim, rank)) for _ in range(2))
        for a in (self.a_q, self.a_v):
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # Hu et al.: A random, B zero, so training starts at W0

    def delta(self) -> torch.Tensor:
        """The [3 dim, dim] update of the fused weight: B_q A_q on the query rows, 0 on the keys, B_v A_v on the values."""
        zeros = self.a_q.new_zeros(self.dim, self.dim)
        return torch.cat([self.b_q @ self.a_q, zeros, self.b_v @ self.a_v]) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = (x @ self.a_q.t()) @ self.b_q.t()
        v = (x @ self.a_v.t()) @ self.b_v.t()
        return self.qkv(x) + torch.cat([q, torch.zeros_like(q), v], dim=-1) * self.scale


def add_lora(encoder: nn.Module, rank: int = DEFAULT_RANK, alpha: float = DEFAULT_ALPHA) -> list[nn.Parameter]:
    """Wrap every block's `attn.qkv` of a SAM image encoder in `LoRAQKV`; returns the new (trainable) parameters."""
    params = []
    for block in encoder.blocks:
        if not isinstance(block.attn.qkv, LoRAQKV):
            block.attn.qkv = LoRAQKV(block.attn.qkv, rank, alpha)
        params += [block.attn.qkv.a_q, block.attn.qkv.b_q, block.attn.qkv.a_v, block.attn.qkv.b_v]
    return params


@torch.no_grad()
def merge_lora(encoder: nn.Module) -> int:
    """Fold every LoRA update into its qkv weight (W0 + B A) and unwrap it: a plain SAM encoder that computes the same
    function with no extra cost at inference; returns the number of blocks merged."""
    merged = 0
    for block in encoder.blocks:
        lora = block.attn.qkv
        if isinstance(lora, LoRAQKV):
            lora.qkv.weight += lora.delta().to(lora.qkv.weight.dtype)
            block.attn.qkv = lora.qkv
            merged += 1
    return merged
