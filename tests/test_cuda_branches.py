"""The trainer's CUDA-only branches where a CPU can run them: GradScaler's order (scale, unscale before clipping,
step, update) with the scaler enabled on the CPU; cudnn.benchmark; a validation output that is not finite."""
import os

import torch

from polyplib.engine import get_preset, load_checkpoint, train
from polyplib.engine import trainer


def weights(tmp_path, name: str, **overrides) -> dict:
    config = get_preset("cpu-tiny", out_dir=str(tmp_path / name), progress=False, epochs=1, workers=0, **overrides)
    return load_checkpoint(train(config).last_checkpoint)


def test_an_enabled_grad_scaler_unscales_before_clipping_and_steps_like_no_scaler(tmp_path, monkeypatch):
    plain = weights(tmp_path, "plain", clip_value=1e-3)
    monkeypatch.setattr(trainer, "resolve_precision", lambda precision, device: (None, True))  # scaler, fp32
    scaled = weights(tmp_path, "scaled", clip_value=1e-3)
    assert scaled["scaler"]["scale"] == 65536.0 and scaled["scaler"]["_growth_tracker"] == scaled["global_step"]
    assert plain["scaler"] == {}  # disabled: nothing to save
    for key, value in plain["model"].items():  # 2^16 scaling is exact: clipped unscaled gradients, the same steps
        torch.testing.assert_close(scaled["model"][key], value, rtol=0, atol=0)
    monkeypatch.setattr(torch.amp.GradScaler, "unscale_", lambda self, optimizer: None)  # clipping scaled gradients
    wrong = weights(tmp_path, "wrong", clip_value=1e-3)
    assert any(not torch.equal(wrong["model"][k], v) for k, v in plain["model"].items() if v.is_floating_point())


def test_seeding_sets_cudnn_benchmark_only_when_not_deterministic(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    trainer.seed_everything(0, deterministic=True)
    assert torch.backends.cudnn.benchmark is False and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    trainer.seed_everything(0, deterministic=False)
    assert torch.backends.cudnn.benchmark is True
    trainer.seed_everything(0, deterministic=True)


def test_a_model_whose_validation_output_is_nan_diverges_in_one_line(tmp_path, monkeypatch):
    """Found by the full-path test: eval-mode BatchNorm with broken statistics gave NaN maps only at validation, and
    the metrics' DataError ended the whole campaign instead of recording that run as failed."""
    import pytest

    from polyplib.errors import DivergenceError

    real = trainer.forward
    monkeypatch.setattr(trainer, "forward", lambda model, batch: real(model, batch) * (float("nan") if not
                                                                                       model.training else 1.0))
    with pytest.raises(DivergenceError, match=r"^validation output is not finite on image\(s\) "):
        weights(tmp_path, "nan")
