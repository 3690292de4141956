"""Segmentation models by name: GMSRF-Net variants and the baselines (Polyp-SAM registers from polyplib.sam)."""
from polyplib.models import baselines, gmsrf, unet_original  # noqa: F401  (register the builders)
from polyplib.models.gmsrf_authors import authors_outputs, load_authors_state_dict
from polyplib.models.registry import (create_architecture, create_model, describe, list_models, parameter_counts,
                                      register_model, register_weight_options)

register_weight_options("gmsrf", pretrained=False, pretrained_file=None)
for _name in ("unet", "unetplusplus", "deeplabv3plus"):
    register_weight_options(_name, encoder_weights=None)

__all__ = ["authors_outputs", "create_architecture", "create_model", "describe", "list_models", "parameter_counts",
           "load_authors_state_dict", "register_model", "register_weight_options"]
