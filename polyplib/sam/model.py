"""Polyp-SAM (Li et al. 2023, §2): SAM with box prompts, `decoder` or `full` fine-tuning (Fig. 1 a/b), and `lora`
(beyond the paper: LoRA on the image encoder's attention plus the mask decoder, `polyplib.sam.lora`)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import Sam
from torch import nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from polyplib.errors import ConfigError
from polyplib.sam.attention import fast_block
from polyplib.sam.build import build_sam
from polyplib.sam.checkpoints import fetch_sam_checkpoint, load_sam_state
from polyplib.sam.lora import DEFAULT_RANK, add_lora
from polyplib.sam.preprocess import check_mode, postprocess_logits, preprocess_images, scale_boxes

STRATEGIES = ("decoder", "lora", "full")
ENCODER_TRAINS = ("lora", "full")  # strategies whose image-encoder forward needs gradients
EMPTY_LOGIT = -20.0  # logit of images that have no box prompt (sigmoid ~ 2e-9)


@dataclass(frozen=True)
class PromptOptions:
    """How training builds box prompts from ground truth and whether `decoder` training caches embeddings."""

    box_jitter: float = 0.0
    per_component: bool = False
    max_boxes: int = 8
    cache_embeddings: bool = True
    cache_dir: str | None = None


class PolypSAM(nn.Module):
    """SAM prompted by one or more boxes per image; returns mask logits at the input resolution."""

    extra_inputs = ("boxes",)
    native_resolution = True  # evaluated on original-resolution images: preprocessing resizes as SamPredictor does
    # saved in training checkpoints: scratch or the SAM file it started from, and the training recipe (preset name)
    checkpoint_attrs = ("pretrained_source", "recipe")

    def __init__(self, sam: Sam, strategy: str = "decoder", preprocess: str = "sam",
                 grad_checkpointing: bool = False, pretrained_source: str = "scratch",
                 prompts: PromptOptions | None = None, fast_attention: bool = True,
                 lora_rank: int = DEFAULT_RANK) -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy={strategy!r} is not known; use 'decoder' (Polyp-SAM Fig. 1a), 'full' (1b) "
                              "or 'lora' (LoRA on the image encoder + mask decoder)")
        if strategy == "lora" and lora_rank < 1:
            raise ConfigError(f"lora_rank={lora_rank}: the rank of the LoRA update must be at least 1")
        self.sam = sam
        self.strategy = strategy
        self.preprocess = check_mode(preprocess)
        self.grad_checkpointing = grad_checkpointing
        self.fast_attention = fast_attention
        self.pretrained_source = pretrained_source
        self.recipe: str | None = None  # set by the trainer: which recipe fine-tuned these weights (None: not trained)
        self.prompts = prompts or PromptOptions()
        self.lora_rank = lora_rank if strategy == "lora" else None
        self.sam.requires_grad_(True)
        for module in self.frozen_modules():
            module.requires_grad_(False)
        if strategy == "lora":  # the pretrained encoder frozen, its LoRA updates trained
            self.sam.image_encoder.requires_grad_(False)
            for param in add_lora(self.sam.image_encoder, lora_rank):
                param.requires_grad_(True)
        self.train(False)

    @property
    def image_size(self) -> int:
        """Side of SAM's square encoder input."""
        return self.sam.image_encoder.img_size

    def frozen_modules(self) -> list[nn.Module]:
        """Image and prompt encoders under `decoder`, the prompt encoder under `lora` (the image encoder's own weights
        are frozen there too, its LoRA updates train), nothing under `full`."""
        return {"decoder": [self.sam.image_encoder, self.sam.prompt_encoder], "lora": [self.sam.prompt_encoder],
                "full": []}[self.strategy]

    def train(self, mode: bool = True) -> PolypSAM:
        """Frozen encoders stay in eval mode while the rest trains."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def encoder_key(self) -> dict:
        """What an image embedding depends on besides the image (used by the embedding cache)."""
        return {"preprocess": self.preprocess, "image_size": self.image_size}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] RGB in [0,1] -> embeddings [B,C,S/16,S/16] (batched ViT, fused attention, opt. checkpointing)."""
        enc = self.sam.image_encoder
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.strategy in ENCODER_TRAINS):
            x = preprocess_images(images, self.image_size, self.preprocess, self.sam.pixel_mean, self.sam.pixel_std)
            x = enc.patch_embed(x)
            if enc.pos_embed is not None:
                x = x + enc.pos_embed
            use_ckpt = self.grad_checkpointing and self.training and torch.is_grad_enabled()
            for block in enc.blocks:
                run = partial(fast_block, block) if self.fast_attention else block
                x = activation_checkpoint(run, x, use_reentrant=False) if use_ckpt else run(x)
            return enc.neck(x.permute(0, 3, 1, 2))

    def decode(self, embeddings: torch.Tensor, boxes: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Embeddings [B,C,h,w] + boxes [B,4] or [B,K,4] (NaN rows = no box) -> logits [B,1,H,W], union over boxes."""
        batch = embeddings.shape[0]
        if boxes.shape[-1] != 4 or boxes.shape[0] != batch or boxes.dim() not in (2, 3):
            raise ConfigError(f"boxes must be [B,4] or [B,K,4] with B={batch}; got {tuple(boxes.shape)}")
        boxes = boxes.reshape(batch, -1, 4).to(embeddings.device, torch.float32)
        valid = ~boxes.isnan().any(-1)
        image_idx = valid.nonzero(as_tuple=True)[0]
        out = embeddings.new_full((batch, 1, *hw), EMPTY_LOGIT, dtype=torch.float32)
        if image_idx.numel() == 0:  # constant; a leaf needing grad keeps a step on box-less images valid
            return out.requires_grad_(torch.is_grad_enabled())
        scaled = scale_boxes(boxes[valid], hw, self.image_size, self.preprocess)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.strategy == "full"):
            sparse, dense = self.sam.prompt_encoder(points=None, boxes=scaled, masks=None)
            image_pe = self.sam.prompt_encoder.get_dense_pe()
        low_res = self.decode_masks(embeddings[image_idx], image_pe, sparse, dense)
        logits = postprocess_logits(low_res, hw, self.image_size, self.preprocess).float()
        if image_idx.numel() == batch and bool((image_idx == torch.arange(batch, device=image_idx.device)).all()):
            return logits
        index = image_idx.view(-1, 1, 1, 1).expand_as(logits)
        return out.scatter_reduce(0, index, logits, "amax", include_self=False)

    def decode_masks(self, embeddings: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                     dense: torch.Tensor) -> torch.Tensor:
        """MaskDecoder.predict_masks for one prompt per embedding row, single-mask output (multimask_output=False)."""
        dec = self.sam.mask_decoder
        n = sparse.shape[0]
        tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0).unsqueeze(0).expand(n, -1, -1)
        tokens = torch.cat([tokens, sparse], dim=1)
        src = embeddings + dense
        b, c, h, w = src.shape
        hs, src = dec.transformer(src, image_pe.expand(n, -1, -1, -1), tokens)
        upscaled = dec.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper = dec.output_hypernetworks_mlps[0](hs[:, 1, :])
        return (hyper.unsqueeze(1) @ upscaled.flatten(2)).view(n, 1, *upscaled.shape[-2:])

    def forward(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Polyp-SAM forward (§2.2): encode the batch, prompt with boxes in image pixels, logits at input size."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ConfigError(f"image must be [B,3,H,W] RGB in [0,1]; got {tuple(image.shape)}")
        return self.decode(self.encode(image), boxes, tuple(image.shape[-2:]))


def create_polyp_sam(size: str, strategy: str = "decoder", checkpoint: str | Path | None = None,
                     allow_scratch: bool = False, preprocess: str = "sam", encoder_size: int | None = None,
                     grad_checkpointing: bool = False, sam_url: str | None = None,
                     weights_dir: str | Path | None = None, box_jitter: float = 0.0, per_component: bool = False,
                     max_boxes: int = 8, cache_embeddings: bool = True, cache_dir: str | None = None,
                     fast_attention: bool = True, lora_rank: int = DEFAULT_RANK) -> PolypSAM:
    """Polyp-SAM of a SAM size: `checkpoint` file, else official weights (cached download), else scratch if allowed."""
    prompts = PromptOptions(box_jitter, per_component, max_boxes, cache_embeddings, cache_dir)
    path = None
    if checkpoint is not None or not allow_scratch:
        path = Path(checkpoint) if checkpoint is not None else fetch_sam_checkpoint(size, sam_url, weights_dir)
    sam = build_sam(size, image_size=encoder_size)
    if path is not None:
        load_sam_state(sam, path)
    source = "scratch" if path is None else path.name
    return PolypSAM(sam, strategy=strategy, preprocess=preprocess, grad_checkpointing=grad_checkpointing,
                    pretrained_source=source, prompts=prompts, fast_attention=fast_attention, lora_rank=lora_rank)
