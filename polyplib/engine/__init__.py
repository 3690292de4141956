"""Training (one trainer, its run kinds, the precision policy), evaluation, checkpoints, presets, DDP, benchmark."""
from polyplib.engine.checkpoint import load_checkpoint, save_checkpoint
from polyplib.engine.config import TrainConfig, apply_overrides
from polyplib.engine.kinds import RunKind, kind_of, register_run_kind, run_kind, train
from polyplib.engine.presets import get_preset, list_presets, register_preset
from polyplib.engine.trainer import TrainResult, TrainingRun, weights_digest

__all__ = ["RunKind", "TrainConfig", "TrainResult", "TrainingRun", "apply_overrides", "get_preset", "kind_of",
           "list_presets", "load_checkpoint", "register_preset", "register_run_kind", "run_kind", "save_checkpoint",
           "train", "weights_digest"]
