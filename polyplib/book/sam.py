"""Polyp-SAM in the book: the paper's name of a profile's model and its sizes per strategy."""
from __future__ import annotations

from typing import Any

from polyplib.campaigns.profiles import BookProfile


def sam_label(settings: BookProfile) -> str:
    """The paper's name of the profile's Polyp-SAM (`Polyp-SAM-B` for `polyp-sam-b`)."""
    head, _, size = settings.sam_model.rpartition("-")
    return f"Polyp-SAM-{size.upper()}" if head == "polyp-sam" and len(size) == 1 else settings.sam_model


def describe_sam(settings: BookProfile, strategy: str) -> dict[str, Any]:
    """Parameters and trainable parameters of the profile's Polyp-SAM under a strategy."""
    import polyplib.sam  # noqa: F401  (registers the polyp-sam models)
    from polyplib.models import create_model, parameter_counts

    return parameter_counts(create_model(settings.sam_model, strategy=strategy, **settings.sam_options))
