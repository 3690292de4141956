"""Run kinds: a trainer variant is a subclass that overrides named hooks, found by the registry the CLI, the
campaigns and `evaluate` ask (Polyp-SAM is one such plugin)."""
import pytest
import torch

from polyplib.engine import RunKind, TrainingRun, get_preset, kind_of, register_run_kind, run_kind, train
from polyplib.engine import kinds
from polyplib.engine.evaluate import evaluate
from polyplib.errors import ConfigError
from polyplib.models import create_model, register_model, registry

HOOKS = ["check_config", "build_datasets", "build_model", "build_optimizer", "restore_state", "save_config",
         "wrap_datasets", "train_module"]


class Flipped(torch.utils.data.Dataset):
    """Each item mirrored left-right (a dataset wrapper as a run kind adds one)."""

    def __init__(self, dataset):
        self.dataset, self.pairs = dataset, dataset.pairs

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        item = self.dataset[i]
        return {**item, "image": item["image"].flip(-1), "mask": item["mask"].flip(-1)}

    def set_epoch(self, epoch):
        self.dataset.set_epoch(epoch)


class FlipRun(TrainingRun):
    """A run kind in a few lines: every hook recorded, flipped datasets, the model as the train module."""

    calls: list[str] = []

    def __getattribute__(self, name):
        if name in HOOKS:
            type(self).calls.append(name)
        return super().__getattribute__(name)

    def wrap_datasets(self, train_ds, val_ds):
        return Flipped(train_ds), Flipped(val_ds)


@pytest.fixture
def flip_kind():
    register_model("flip-net")(lambda: create_model("unet-original", base_channels=4, depth=2))
    kind = register_run_kind(RunKind("flip", FlipRun, models=("flip-net",)))
    FlipRun.calls.clear()
    yield kind
    kinds._KINDS.pop("flip")
    registry._REGISTRY.pop("flip-net")


def test_a_new_run_kind_is_a_subclass_and_one_registration_and_train_uses_it(tmp_path, flip_kind):
    config = get_preset("cpu-tiny", model="flip-net", model_options={}, out_dir=str(tmp_path / "run"), epochs=1,
                        progress=False)
    assert kind_of("flip-net") is flip_kind and run_kind("flip") is flip_kind
    result = train(config)
    assert result.complete and (tmp_path / "run" / "last.pt").is_file()
    assert FlipRun.calls == HOOKS  # each hook once, in the documented order
    run = FlipRun(config.replace(out_dir=str(tmp_path / "again")), resume=False)
    assert isinstance(run.train_ds, Flipped) and run.net is run.model  # no DDP, no compile: the train module itself
    with pytest.raises(ConfigError, match="already registered"):
        register_run_kind(RunKind("flip", TrainingRun))


def test_kinds_answer_which_trainer_and_which_evaluation():
    from polyplib.sam.cascade import gt_box_evaluation
    from polyplib.sam.model import PolypSAM
    from polyplib.sam.training import SamRun

    assert kind_of("gmsrf").name == "segmentation" and kind_of("gmsrf").run is TrainingRun
    sam = kind_of("polyp-sam-tiny")
    assert sam is run_kind("polyp-sam") and sam.run is SamRun and sam.evaluation is gt_box_evaluation
    assert sam.module is PolypSAM and kind_of(torch.nn.Conv2d(3, 1, 1)).evaluation is None
    with pytest.raises(ConfigError, match=r"run kind 'nope' is not available .*polyplib.sam") as err:
        run_kind("nope")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown model 'nope-net'"):
        train(get_preset("cpu-tiny", model="nope-net"))


def test_evaluate_runs_a_model_with_extra_inputs_through_its_kinds_evaluation(tmp_path):
    class NeedsDepth(torch.nn.Module):
        extra_inputs = ("depth",)

        def forward(self, image, depth):
            return image[:, :1] * depth

    def with_unit_depth(model, device):
        return (lambda batch: torch.sigmoid(model(batch["image"], torch.ones(()))), {"prompt_source": "unit-depth"})

    register_run_kind(RunKind("depth", TrainingRun, module=NeedsDepth, evaluation=with_unit_depth))
    try:
        result = evaluate(NeedsDepth(), "synthpolyp", out_dir=tmp_path / "eval", image_size=32, device="cpu",
                          dataset_options={"n": 2}, overlays=False, progress=False)
    finally:
        kinds._KINDS.pop("depth")
    assert result.summary["prompt_source"] == "unit-depth" and result.summary["n"] == 2
