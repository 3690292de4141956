"""Trainer: a tiny synthpolyp run learns, logs and checkpoints; resume is exact after an interruption or a SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from polyplib.engine import get_preset, load_checkpoint, train
from polyplib.engine.history import read_log
from polyplib.engine.trainer import TrainingRun
from polyplib.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def tiny(tmp_path: Path, name: str = "run", **overrides):
    """The cpu-tiny preset writing under tmp_path."""
    return get_preset("cpu-tiny", out_dir=str(tmp_path / name), progress=False, **overrides)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_tiny_run_lowers_the_loss_and_writes_log_and_checkpoints(tmp_path):
    result = train(tiny(tmp_path, epochs=4))
    rows = read_log(tmp_path / "run" / "log.jsonl")
    losses = [row["train_loss"] for row in rows]
    assert [row["epoch"] for row in rows] == [0, 1, 2, 3] and rows == result.history
    assert losses[-1] < 0.9 * losses[0], losses
    assert {"train_loss", "val_loss", "val_dice", "lr", "images_per_s", "peak_mem_mb", "step"} <= rows[-1].keys()
    best, last = load_checkpoint(result.best_checkpoint), load_checkpoint(result.last_checkpoint)
    assert best["metrics"]["val_dice"] == max(row["val_dice"] for row in rows) == result.best_metric
    assert best["epoch"] == result.best_epoch
    assert (last["epoch"], last["batches_done"], last["global_step"]) == (4, 0, rows[-1]["step"])
    assert len(last["split"]["val"]) > 0 and set(last["split"]["val"]).isdisjoint(last["split"]["train"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 4
    from polyplib import viz

    fig = viz.curves(rows, groups={"loss": ["train_loss", "val_loss"], "dice": ["val_dice"]})
    assert list(fig.axes[0].lines[0].get_ydata()) == losses


def test_plateau_schedule_follows_validation_loss_and_accumulation_counts_steps(tmp_path):
    result = train(tiny(tmp_path, epochs=2, schedule="plateau", grad_accum=2, clip_value=0.5))
    last = load_checkpoint(result.last_checkpoint)
    val_losses = [row["val_loss"] for row in result.history]
    assert last["scheduler"]["best"] == pytest.approx(min(val_losses))
    batches = len(last["split"]["train"]) // 4
    assert last["global_step"] == 2 * (batches // 2) and batches >= 2


def test_interrupted_run_resumes_bit_identically_mid_epoch(tmp_path, monkeypatch):
    config = tiny(tmp_path, epochs=3, save_every_steps=1, augment=True)
    reference = train(config.replace(out_dir=str(tmp_path / "reference")))
    original = TrainingRun._optimizer_step

    def crash_at_step_6(self):
        original(self)
        if self.global_step == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(TrainingRun, "_optimizer_step", crash_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    monkeypatch.setattr(TrainingRun, "_optimizer_step", original)
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["global_step"] == 5 and saved["batches_done"] > 0  # the last save was mid-epoch
    resumed = train(config, resume=True)
    assert resumed.rank_digests == reference.rank_digests
    assert [r["val_dice"] for r in resumed.history] == [r["val_dice"] for r in reference.history]
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in reference.history]
    with pytest.raises(ConfigError, match="different lr"):
        train(config.replace(lr=0.5), resume=True)


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _train_args(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "polyplib", "train", "--preset", "cpu-tiny", "--out", str(out), "--no-progress",
            *extra, "--set", "epochs=2", "save_every_steps=1", "augment=true"]


def _cli_train(out: Path) -> subprocess.Popen:
    return subprocess.Popen(_train_args(out), cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_sigkilled_training_process_resumes_to_the_same_weights(tmp_path):
    reference = _cli_train(tmp_path / "reference")
    killed = _cli_train(tmp_path / "killed")
    last = tmp_path / "killed" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "killed" / "result.json").exists()
    resumed = subprocess.run(_train_args(tmp_path / "killed", "--resume"), cwd=REPO, capture_output=True, text=True,
                             env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait() == 0, reference.stderr.read()
    a = load_checkpoint(tmp_path / "reference" / "last.pt")
    b = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert_same_weights(a["model"], b["model"])
    assert a["best"] == b["best"] and a["global_step"] == b["global_step"]
    log = [read_log(tmp_path / name / "log.jsonl") for name in ("reference", "killed")]
    assert [r["val_dice"] for r in log[0]] == [r["val_dice"] for r in log[1]] and len(log[1]) == 2


def test_non_finite_loss_stops_with_the_epoch_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from polyplib.engine import trainer

    out = tmp_path / "run"
    real = trainer.build_loss

    def nan_from_epoch_2(name, **options):
        fn = real(name, **options)

        def loss(outputs, target):  # NaN once log.jsonl has a row, i.e. from the first step of epoch 2
            return fn(outputs, target) * (float("nan") if (out / "log.jsonl").read_text().strip() else 1.0)
        return loss

    monkeypatch.setattr(trainer, "build_loss", nan_from_epoch_2)
    with pytest.raises(FloatingPointError, match=r"epoch 2 \(by step"):
        train(tiny(tmp_path, epochs=3, save_every_steps=1))
    last, best = load_checkpoint(out / "last.pt"), load_checkpoint(out / "best.pt")
    assert (last["epoch"], last["batches_done"]) == (1, 0)  # the end of epoch 1, not a diverged mid-epoch step
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert_same_weights(last["model"], best["model"])


def test_cpu_defaults_follow_the_hardware_and_explicit_settings_win():
    from polyplib.engine.precision import native_bf16_cpu, resolve_channels_last, resolve_precision
    from polyplib.engine.trainer import build_optimizer

    cpu = torch.device("cpu")
    native = native_bf16_cpu()  # auto: bf16 where the CPU computes it (chapter 3 checks the accuracy), fp32 elsewhere
    assert isinstance(native, bool) and resolve_precision("auto", cpu) == ((torch.bfloat16 if native else None), False)
    assert resolve_precision("fp32", cpu) == (None, False) and resolve_precision("bf16", cpu) == (torch.bfloat16, False)
    assert resolve_channels_last(None, cpu, torch.bfloat16) and not resolve_channels_last(None, cpu, None)
    assert not resolve_channels_last(False, cpu, torch.bfloat16) and resolve_channels_last(True, cpu, None)
    assert not resolve_channels_last(None, torch.device("cuda"), torch.bfloat16)
    model = torch.nn.Linear(3, 1)
    assert build_optimizer(model.parameters(), get_preset("cpu-tiny")).defaults["fused"] is True


def test_fp32_on_a_gpu_turns_tf32_off_and_mixed_precision_leaves_it_as_set(monkeypatch):
    from polyplib.engine.precision import keep_fp32_exact

    before = torch.get_float32_matmul_precision()
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    try:
        torch.set_float32_matmul_precision("high")  # TF32 allowed in matrix products
        keep_fp32_exact(torch.device("cuda"), torch.bfloat16)
        keep_fp32_exact(torch.device("cpu"), None)
        assert torch.backends.cudnn.allow_tf32 and torch.get_float32_matmul_precision() == "high"
        keep_fp32_exact(torch.device("cuda"), None)
        assert not torch.backends.cudnn.allow_tf32 and torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision(before)


def test_auto_settings_put_the_model_in_the_memory_format_they_report(tmp_path, monkeypatch):
    from polyplib.engine import precision

    bf16 = TrainingRun(tiny(tmp_path, "bf16", precision="bf16", channels_last=None, device="cpu"), resume=False)
    fp32 = TrainingRun(tiny(tmp_path, "fp32", precision="fp32", channels_last=None, device="cpu"), resume=False)
    convs = [m.weight for m in bf16.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and bf16.channels_last and not fp32.channels_last  # channels-last follows bf16 on the CPU
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in fp32.model.modules()
                   if isinstance(m, torch.nn.Conv2d))
    assert bf16.amp_dtype == torch.bfloat16 and fp32.amp_dtype is None
    for native in (True, False):  # auto: bf16 + channels-last where the CPU computes bf16, fp32 NCHW where it emulates
        monkeypatch.setattr(precision, "native_bf16_cpu", lambda: native)
        auto = TrainingRun(tiny(tmp_path, f"auto-{native}", precision="auto", channels_last=None, device="cpu"),
                           resume=False)
        assert (auto.amp_dtype == torch.bfloat16) is native and auto.channels_last is native


def test_bf16_on_a_cpu_that_emulates_it_warns_once_in_one_line(tmp_path, monkeypatch):
    import warnings

    from polyplib.engine import precision

    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    with pytest.warns(UserWarning, match=r"precision=bf16: this CPU has no native bf16") as caught:
        TrainingRun(tiny(tmp_path, "emulated", precision="bf16", device="cpu"), resume=False)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # where the CPU computes bf16, or in fp32, nothing to say
        TrainingRun(tiny(tmp_path, "native", precision="bf16", device="cpu"), resume=False)
        TrainingRun(tiny(tmp_path, "fp32", precision="fp32", device="cpu"), resume=False)


def test_snapshot_epochs_keep_the_weights_of_those_epochs_and_a_resumed_run_writes_the_same(tmp_path, monkeypatch):
    from polyplib.engine.evaluate import load_trained_model
    from polyplib.engine.trainer import snapshot_path, weights_digest

    config = tiny(tmp_path, epochs=3, snapshot_epochs=[1, 3], schedule="warmup-cosine", warmup_epochs=1)
    result = train(config)
    out = tmp_path / "run"
    assert sorted(p.name for p in out.glob("epoch-*.pt")) == ["epoch-1.pt", "epoch-3.pt"]
    first, last = load_checkpoint(snapshot_path(out, 1)), load_checkpoint(snapshot_path(out, 3))
    assert (first["epoch"], last["epoch"]) == (1, 3) and "optimizer" not in first  # weights only, as best.pt
    assert first["metrics"]["val_dice"] == result.history[0]["val_dice"]
    assert_same_weights(last["model"], load_checkpoint(result.last_checkpoint)["model"])
    assert any(not torch.equal(first["model"][k], last["model"][k]) for k in first["model"])
    model, _ = load_trained_model(snapshot_path(out, 1))
    assert weights_digest(model) != weights_digest(load_trained_model(snapshot_path(out, 3))[0])
    original, stop_at = TrainingRun.save_last, []

    def crash_after(self):  # killed between the snapshot hook and last.pt of epoch `stop_at[0]`
        if self.epoch == stop_at[0]:
            raise KeyboardInterrupt
        original(self)

    resumed_cfg = config.replace(out_dir=str(tmp_path / "resumed"))
    resumed = tmp_path / "resumed"
    monkeypatch.setattr(TrainingRun, "save_last", crash_after)
    stop_at.append(3)
    with pytest.raises(KeyboardInterrupt):
        train(resumed_cfg)
    assert load_checkpoint(resumed / "last.pt")["epoch"] == 2 and snapshot_path(resumed, 3).is_file()
    monkeypatch.setattr(TrainingRun, "save_last", original)
    train(resumed_cfg, resume=True)  # epoch 3 again, and its snapshot: the same weights as the uninterrupted run
    for epoch in (1, 3):
        assert_same_weights(load_checkpoint(snapshot_path(resumed, epoch))["model"],
                            load_checkpoint(snapshot_path(out, epoch))["model"])
    monkeypatch.setattr(TrainingRun, "save_last", crash_after)
    stop_at[0] = 1
    with pytest.raises(KeyboardInterrupt):
        train(resumed_cfg)  # a fresh start in the same folder drops the snapshots it has not reached again
    assert [p.name for p in resumed.glob("epoch-*.pt")] == ["epoch-1.pt"]
    with pytest.raises(ConfigError, match=r"snapshot_epochs=\[2, 4\] must list increasing epochs from 1 to epochs=3"):
        config.replace(snapshot_epochs=[2, 4])
    with pytest.raises(ConfigError, match="snapshot_epochs"):
        config.replace(snapshot_epochs=[2, 1])


def test_a_copy_outside_git_records_the_commit_it_was_copied_from(tmp_path, monkeypatch):
    import polyplib
    from polyplib.engine.provenance import git_commit

    monkeypatch.delenv("POLYPLIB_COMMIT", raising=False)
    assert git_commit() and "(copy)" not in git_commit()  # this checkout is a git repository
    monkeypatch.setenv("POLYPLIB_COMMIT", "0123abc")  # named by the pack: wins over the git it was laid over
    assert git_commit() == "0123abc (copy)"
    (tmp_path / "polyplib").mkdir()
    monkeypatch.setattr(polyplib, "__file__", str(tmp_path / "polyplib" / "__init__.py"))
    monkeypatch.delenv("POLYPLIB_COMMIT", raising=False)
    assert git_commit() is None
    monkeypatch.setenv("POLYPLIB_COMMIT", "0123abc")
    assert git_commit() == "0123abc (copy)"
