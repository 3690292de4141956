"""SAM ViT blocks (SAM §3, ViTDet windows + decomposed rel-pos, MViTv2) on fused `scaled_dot_product_attention`."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, Block, get_rel_pos, window_partition, window_unpartition


def rel_pos_bias(attn: Attention, q: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Decomposed relative-position term of `add_decomposed_rel_pos` as an additive mask [B, heads, N, N]."""
    b, heads, n, dim = q.shape
    r_q = q.reshape(b * heads, hw[0], hw[1], dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, get_rel_pos(hw[0], hw[0], attn.rel_pos_h))
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, get_rel_pos(hw[1], hw[1], attn.rel_pos_w))
    return (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, heads, n, n)


def sdpa_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """`Attention.forward` with the softmax(QK^T*scale + bias)V done by one fused kernel (same weights, same maths)."""
    b, h, w, _ = x.shape
    q, k, v = attn.qkv(x).reshape(b, h * w, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    bias = rel_pos_bias(attn, q, (h, w)).to(q.dtype) if attn.use_rel_pos else None
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=attn.scale)
    return attn.proj(out.permute(0, 2, 1, 3).reshape(b, h, w, -1))


def fast_block(block: Block, x: torch.Tensor) -> torch.Tensor:
    """`Block.forward` (windowed or global attention, MLP, residuals) using `sdpa_attention`."""
    shortcut, x = x, block.norm1(x)
    if block.window_size > 0:
        hw = x.shape[1], x.shape[2]
        x, pad_hw = window_partition(x, block.window_size)
        x = window_unpartition(sdpa_attention(block.attn, x), block.window_size, pad_hw, hw)
    else:
        x = sdpa_attention(block.attn, x)
    x = shortcut + x
    return x + block.mlp(block.norm2(x))
