"""TrainConfig validation, presets and overrides."""
import json

import pytest

from polyplib.engine import TrainConfig, apply_overrides, get_preset, list_presets
from polyplib.engine.trainer import warmup_cosine_factor
from polyplib.errors import ConfigError


def test_presets_reproduce_each_recipe():
    paper, official = get_preset("gmsrf-paper"), get_preset("gmsrf-official")
    assert (paper.image_size, paper.optimizer, paper.lr, paper.batch_size, paper.epochs, paper.augment) == \
        (256, "adam", 1e-4, 8, 50, True)
    assert (official.batch_size, official.epochs, official.schedule, official.plateau_patience, official.clip_value,
            official.augment, official.select) == (6, 130, "plateau", 5, 0.5, False, "loss")
    sam = get_preset("polyp-sam-paper")
    assert sam.batch_size * sam.grad_accum == 48 and (sam.optimizer, sam.lr, sam.weight_decay) == ("adamw", 4e-6, 1e-4)
    assert set(list_presets()) >= {"gmsrf-paper", "gmsrf-official", "cpu-tiny", "polyp-sam-paper"}
    assert get_preset("gmsrf-paper", epochs=3).epochs == 3


@pytest.mark.parametrize("overrides, match", [
    ({"optimizer": "sgd"}, "optimizer"), ({"val_split": "test"}, "never a test split"), ({"lr": "fast"}, "lr"),
    ({"batch_size": 0}, "batch_size"), ({"no_such": 1}, "unknown training option"),
    ({"model_options": {"x": object()}}, "model_options.x"),
])
def test_invalid_options_are_config_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        get_preset("cpu-tiny").replace(**overrides)
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("gmsrf-papr")


def test_overrides_and_json_round_trip(tmp_path):
    config = apply_overrides(get_preset("gmsrf-paper"), ["image_size=128", "model_options.variant=official",
                                                         "clip_value=0.5", "out_dir=x y"])
    assert (config.image_size, config.model_options, config.clip_value, config.out_dir) == \
        (128, {"variant": "official"}, 0.5, "x y")
    path = config.save(tmp_path / "config.json")
    assert json.loads(path.read_text())["image_size"] == 128
    assert TrainConfig.load(path) == config
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides(config, ["image_size"])


def test_every_key_value_option_is_read_by_one_parser(capsys):
    from polyplib import cli
    from polyplib.engine.config import parse_pairs

    assert parse_pairs(["n=8", "name=a=b", "seeds=[0, 1]", "n=9", "flag=true"]) == \
        {"n": 9, "name": "a=b", "seeds": [0, 1], "flag": True}
    with pytest.raises(ConfigError, match=r"^--dataset-option '=3': expected key=value, e.g. --dataset-option n=20$"):
        parse_pairs(["=3"], "--dataset-option", "n=20")
    for argv in (["describe", "gmsrf", "--set", "variant"], ["campaign", "plan", "smoke", "--set", "epochs"],
                 ["evaluate", "x.pt", "--dataset", "synthpolyp", "--set", "n"]):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert f"polyplib {argv[0]}: error: --set '{argv[-1]}': expected key=value, e.g. --set " in err, argv


def test_warmup_cosine_schedule_matches_polyp_sam():
    config = get_preset("polyp-sam-paper")
    lrs = [warmup_cosine_factor(e, config) * config.lr for e in range(config.epochs + 1)]
    assert lrs[0] == pytest.approx(5e-7) and lrs[15] == pytest.approx((5e-7 + 4e-6) / 2)
    assert lrs[30] == pytest.approx(4e-6) and lrs[200] == pytest.approx(1e-6)
    assert lrs[115] == pytest.approx(1e-6 + 0.5 * 3e-6)
    assert all(a >= b for a, b in zip(lrs[30:], lrs[31:]))
