"""Polyp-SAM (Li et al. 2023): SAM fine-tuned with box prompts; registers polyp-sam-{b,l,h,tiny}."""
from functools import partial

from polyplib.models import register_model, register_weight_options
from polyplib.sam.model import PolypSAM, create_polyp_sam

MODEL_SIZES = {"polyp-sam-b": "vit_b", "polyp-sam-l": "vit_l", "polyp-sam-h": "vit_h", "polyp-sam-tiny": "tiny"}

for _name, _size in MODEL_SIZES.items():
    register_model(_name)(partial(create_polyp_sam, _size))
    register_weight_options(_name, checkpoint=None, allow_scratch=True)  # loading a fine-tuned checkpoint

__all__ = ["MODEL_SIZES", "PolypSAM", "create_polyp_sam"]
