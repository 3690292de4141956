"""SAM architectures (Kirillov et al. 2023, §3) from Meta's `segment_anything` classes, plus a tiny CPU variant."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from polyplib.errors import ConfigError


@dataclass(frozen=True)
class SamConfig:
    """Hyper-parameters of one SAM size (segment_anything/build_sam.py for the official three)."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    mask_in_chans: int = 16


SAM_CONFIGS: dict[str, SamConfig] = {
    "vit_b": SamConfig(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamConfig(1280, 32, 16, (7, 15, 23, 31)),
    # Same architecture, shrunk for CPU tests and the CPU profile of the book (no official weights).
    "tiny": SamConfig(64, 2, 2, (1,), image_size=128, window_size=4, prompt_embed_dim=32,
                      decoder_mlp_dim=64, decoder_heads=2, mask_in_chans=8),
}


def sam_config(name: str, image_size: int | None = None) -> SamConfig:
    """Look up a SAM size by name; `image_size` overrides the encoder input side (a multiple of the patch size)."""
    if name not in SAM_CONFIGS:
        raise ConfigError(f"unknown SAM size {name!r}; choose one of {sorted(SAM_CONFIGS)}")
    cfg = SAM_CONFIGS[name]
    if image_size is None:
        return cfg
    if image_size <= 0 or image_size % cfg.patch_size:
        raise ConfigError(f"image_size={image_size} for SAM {name!r} must be a positive multiple of "
                          f"the patch size {cfg.patch_size}")
    return replace(cfg, image_size=image_size)


def build_sam(name: str, image_size: int | None = None) -> Sam:
    """An untrained `segment_anything.modeling.Sam` of the named size (SAM §3: encoders and mask decoder)."""
    cfg = sam_config(name, image_size)
    grid = cfg.image_size // cfg.patch_size
    encoder = ImageEncoderViT(
        img_size=cfg.image_size, patch_size=cfg.patch_size, embed_dim=cfg.embed_dim, depth=cfg.depth,
        num_heads=cfg.num_heads, mlp_ratio=4, out_chans=cfg.prompt_embed_dim, qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True, window_size=cfg.window_size,
        global_attn_indexes=cfg.global_attn_indexes,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=cfg.prompt_embed_dim, image_embedding_size=(grid, grid),
        input_image_size=(cfg.image_size, cfg.image_size), mask_in_chans=cfg.mask_in_chans,
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=cfg.prompt_embed_dim, mlp_dim=cfg.decoder_mlp_dim,
                                      num_heads=cfg.decoder_heads),
        transformer_dim=cfg.prompt_embed_dim, iou_head_depth=3, iou_head_hidden_dim=cfg.prompt_embed_dim,
    )
    return Sam(image_encoder=encoder, prompt_encoder=prompt_encoder, mask_decoder=decoder,
               pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
