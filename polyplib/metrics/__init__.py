"""Evaluation protocols: GMSRF (threshold 0.5), PraNet toolbox (256 thresholds, Sm, wFm, Em, MAE), Polyp-SAM (MONAI)."""
from polyplib.metrics.boundary import REPORT_KEYS, boundary_metrics, size_class
from polyplib.metrics.common import aggregate
from polyplib.metrics.gmsrf import gmsrf_metrics
from polyplib.metrics.pranet import pranet_metrics
from polyplib.metrics.monai import MONAI_KEYS, monai_metrics, rowwise_dice

__all__ = ["MONAI_KEYS", "REPORT_KEYS", "boundary_metrics", "size_class", "aggregate", "gmsrf_metrics", "monai_metrics", "pranet_metrics", "rowwise_dice"]
