"""Evaluation protocols: GMSRF (threshold 0.5), PraNet toolbox (256 thresholds, Sm, wFm, Em, MAE), Polyp-SAM rows."""
from polyplib.metrics.common import aggregate
from polyplib.metrics.gmsrf import gmsrf_metrics
from polyplib.metrics.pranet import pranet_metrics
from polyplib.metrics.rowwise import rowwise_dice

__all__ = ["aggregate", "gmsrf_metrics", "pranet_metrics", "rowwise_dice"]
