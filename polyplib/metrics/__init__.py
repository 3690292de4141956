"""Evaluation protocols: GMSRF (threshold 0.5), PraNet toolbox (256 thresholds, Sm, wFm, Em, MAE), Polyp-SAM (MONAI)."""
from polyplib.metrics.common import aggregate
from polyplib.metrics.gmsrf import gmsrf_metrics
from polyplib.metrics.pranet import pranet_metrics
from polyplib.metrics.monai import MONAI_KEYS, monai_metrics, rowwise_dice

__all__ = ["MONAI_KEYS", "aggregate", "gmsrf_metrics", "monai_metrics", "pranet_metrics", "rowwise_dice"]
