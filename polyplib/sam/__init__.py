"""Polyp-SAM (Li et al. 2023): SAM fine-tuned with box prompts; registers its run kind, polyp-sam-{b,l,h,tiny} and
the `monai-dice` loss (a plugin: `polyplib.plugins`)."""
from functools import partial

from polyplib.engine.kinds import RunKind, register_run_kind
from polyplib.losses import register_loss
from polyplib.models import register_model, register_weight_options
from polyplib.sam.cascade import gt_box_evaluation
from polyplib.sam.losses import monai_dice_loss
from polyplib.sam.model import PolypSAM, create_polyp_sam
from polyplib.sam.training import SamRun

MODEL_SIZES = {"polyp-sam-b": "vit_b", "polyp-sam-l": "vit_l", "polyp-sam-h": "vit_h", "polyp-sam-tiny": "tiny"}

for _name, _size in MODEL_SIZES.items():
    register_model(_name)(partial(create_polyp_sam, _size))
    register_weight_options(_name, checkpoint=None, allow_scratch=True)  # loading a fine-tuned checkpoint
register_loss("monai-dice", monai_dice_loss)
register_run_kind(RunKind("polyp-sam", SamRun, models=tuple(MODEL_SIZES), module=PolypSAM,
                          evaluation=gt_box_evaluation))

__all__ = ["MODEL_SIZES", "PolypSAM", "create_polyp_sam"]
