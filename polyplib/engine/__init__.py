"""Training, evaluation, checkpoints, presets, DDP and the speed benchmark."""
from polyplib.engine.checkpoint import load_checkpoint, save_checkpoint
from polyplib.engine.config import TrainConfig, apply_overrides
from polyplib.engine.presets import get_preset, list_presets, register_preset
from polyplib.engine.trainer import TrainResult, train, weights_digest

__all__ = ["TrainConfig", "TrainResult", "apply_overrides", "get_preset", "list_presets", "load_checkpoint",
           "register_preset", "save_checkpoint", "train", "weights_digest"]
