"""Polyp-SAM through the engine: decoder/full training runs, CLI, evaluation labels, and the detector->SAM cascade."""
import json

import pytest
import torch

from polyplib.cli import main
from polyplib.engine import TrainConfig, load_checkpoint, train
from polyplib.engine.evaluate import load_trained_model
from polyplib.errors import ConfigError
from polyplib.sam.cascade import boxes_from_probabilities, cascade_predict_fn, evaluate_sam, gt_box_predict_fn
from polyplib.sam.model import PolypSAM

TINY = {"allow_scratch": True, "encoder_size": 64}


def tiny_config(tmp_path, strategy: str, **overrides) -> TrainConfig:
    return TrainConfig(model="polyp-sam-tiny", model_options={**TINY, "strategy": strategy}, dataset="synthpolyp",
                       dataset_options={"n": 10}, protocol="gmsrf", image_size=64, augment=False, batch_size=2,
                       epochs=2, lr=1e-3, optimizer="adamw", loss="dice", precision="fp32", device="cpu",
                       out_dir=str(tmp_path / strategy), progress=False).replace(**overrides)


def split_state(path):
    state = load_checkpoint(path)["model"]
    enc = {k: v for k, v in state.items() if k.startswith(("sam.image_encoder.", "sam.prompt_encoder."))}
    dec = {k: v for k, v in state.items() if k.startswith("sam.mask_decoder.")}
    return enc, dec


@pytest.fixture(scope="module")
def decoder_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sam-train")
    torch.manual_seed(0)
    from polyplib.models import create_model
    initial = create_model("polyp-sam-tiny", **TINY).state_dict()
    return initial, train(tiny_config(tmp, "decoder", seed=0))


def test_decoder_training_with_cached_embeddings(decoder_run):
    initial, result = decoder_run
    assert len(result.history) == 2 and result.best_checkpoint is not None
    label = json.loads((result.out_dir / "sam.json").read_text())
    assert {k: label[k] for k in ("pretrained_source", "strategy", "preprocess", "encoder_size", "recipe")} == \
        {"pretrained_source": "scratch", "strategy": "decoder", "preprocess": "sam", "encoder_size": 64, "recipe": "custom"}
    losses = [row["train_loss"] for row in result.history]
    assert all(0 < loss < 1 for loss in losses) and losses[1] < losses[0]
    enc, dec = split_state(result.last_checkpoint)
    assert all(torch.equal(v, initial[k]) for k, v in enc.items())  # frozen encoders: bit-identical
    assert any(not torch.equal(v, initial[k]) for k, v in dec.items())


def test_full_training_changes_the_encoder(tmp_path):
    torch.manual_seed(0)
    from polyplib.models import create_model
    initial = create_model("polyp-sam-tiny", **TINY).state_dict()
    result = train(tiny_config(tmp_path, "full", epochs=1, seed=0))
    enc, _ = split_state(result.last_checkpoint)
    assert any(not torch.equal(v, initial[k]) for k, v in enc.items() if k.startswith("sam.image_encoder."))


def test_augmentation_is_refused_for_polyp_sam(tmp_path):
    with pytest.raises(ConfigError, match="augment=false"):
        train(tiny_config(tmp_path, "decoder", augment=True))


def test_cli_trains_polyp_sam_from_scratch_and_evaluates_it_with_gt_boxes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POLYPLIB_WEIGHTS", str(tmp_path / "no-weights"))  # nothing official to fall back on
    out = tmp_path / "cli"
    code = main(["train", "--model", "polyp-sam-tiny", "--strategy", "decoder", "--allow-scratch", "--dataset",
                 "synthpolyp", "--image-size", "64", "--epochs", "1", "--batch-size", "2", "--out", str(out),
                 "--device", "cpu", "--no-progress", "--json", "--set", "loss=dice", "augment=false",
                 "dataset_options.n=6", "model_options.encoder_size=64", "precision=fp32"])
    assert code == 0 and (out / "best.pt").is_file() and (out / "last.pt").is_file()
    assert json.loads(capsys.readouterr().out)["epochs"] == 1
    assert json.loads((out / "sam.json").read_text())["pretrained_source"] == "scratch"
    assert load_checkpoint(out / "best.pt")["model_attrs"] == {"pretrained_source": "scratch", "recipe": "custom"}
    assert main(["evaluate", str(out / "best.pt"), "--dataset", "synthpolyp", "--set", "n=4", "--image-size", "64",
                 "--batch-size", "2", "--device", "cpu", "--no-overlays", "--json", "--out", str(tmp_path / "ev")]) == 0
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["prompt_source"] == "gt-box" and summary["pretrained_source"] == "scratch"
    assert summary["n"] == 4 and summary["checkpoint"] == str(out / "best.pt")
    sam, _ = load_trained_model(out / "best.pt")
    reference = evaluate_sam(sam, "synthpolyp", tmp_path / "ref", image_size=64, batch_size=2, device="cpu",
                             dataset_options={"n": 4}, overlays=False, progress=False).summary
    assert summary["means"]["dice"] == pytest.approx(reference["means"]["dice"], abs=1e-6)
    assert reference["prompt_source"] == "gt-box"


def test_fine_tuned_checkpoint_loads_without_the_sam_weights_and_keeps_its_label(tmp_path, monkeypatch):
    from polyplib.sam.build import build_sam
    monkeypatch.setenv("POLYPLIB_WEIGHTS", str(tmp_path / "no-weights"))
    torch.manual_seed(1)
    weights = tmp_path / "sam_tiny_start.pth"
    torch.save(build_sam("tiny", 64).state_dict(), weights)
    options = {"encoder_size": 64, "strategy": "decoder", "checkpoint": str(weights)}
    result = train(tiny_config(tmp_path, "decoder", epochs=1, model_options=options, dataset_options={"n": 6}))
    weights.unlink()  # a fine-tuned checkpoint holds every weight: the starting file is no longer needed
    model, config = load_trained_model(result.best_checkpoint)
    assert model.pretrained_source == "sam_tiny_start.pth" and config.model_options["checkpoint"] == str(weights)
    saved = load_checkpoint(result.best_checkpoint)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    older = {k: v for k, v in load_checkpoint(result.best_checkpoint).items() if k != "model_attrs"}
    torch.save(older, tmp_path / "older.pt")  # written before checkpoints recorded the label: say so, not "scratch"
    assert load_trained_model(tmp_path / "older.pt")[0].pretrained_source.startswith("unknown")


def test_evaluate_routes_models_with_extra_inputs(decoder_run, tmp_path):
    from polyplib.engine.evaluate import evaluate, predict_folder
    _, result = decoder_run
    sam, _ = load_trained_model(result.best_checkpoint)
    res = evaluate(sam, "synthpolyp", out_dir=tmp_path / "obj", image_size=64, batch_size=2, device="cpu",
                   dataset_options={"n": 4}, overlays=False, progress=False)
    assert res.summary["prompt_source"] == "gt-box" and res.summary["pretrained_source"] == "scratch"
    with pytest.raises(ConfigError, match="cascade"):  # a folder of images has no boxes
        predict_folder(result.best_checkpoint, tmp_path, tmp_path / "pred", progress=False)

    class NeedsDepth(torch.nn.Module):
        extra_inputs = ("depth",)

        def forward(self, image, depth):
            return image[:, :1] * depth

    with pytest.raises(ConfigError, match="depth.*predict_fn"):
        evaluate(NeedsDepth(), "synthpolyp", out_dir=tmp_path / "bad", dataset_options={"n": 2}, progress=False)


def test_boxes_from_a_prediction_one_per_component():
    probs = torch.zeros(2, 1, 32, 32)
    probs[0, 0, 2:8, 3:10] = 0.9
    probs[0, 0, 20:30, 15:25] = 0.7
    probs[0, 0, 12, 12] = 0.4  # below the threshold
    boxes = boxes_from_probabilities(probs, threshold=0.5, max_boxes=4)
    assert boxes.shape == (2, 4, 4)
    assert boxes[0, :2].tolist() == [[15.0, 20.0, 25.0, 30.0], [3.0, 2.0, 10.0, 8.0]]
    assert boxes[0, 2:].isnan().all() and boxes[1].isnan().all()


def test_cascade_uses_detector_boxes_and_evaluation_is_labelled(decoder_run, tmp_path):
    _, result = decoder_run
    sam, _ = load_trained_model(result.best_checkpoint)
    assert isinstance(sam, PolypSAM) and sam.pretrained_source == "scratch"
    from polyplib.data import load_dataset
    batch = torch.utils.data.default_collate([load_dataset("synthpolyp", image_size=64, n=4)[i] for i in range(2)])
    oracle = cascade_predict_fn(lambda b: b["mask"], sam, torch.device("cpu"))  # a perfect detector
    per_component = gt_box_predict_fn(sam, torch.device("cpu"), per_component=True)
    torch.testing.assert_close(oracle(batch), per_component(batch))
    empty = cascade_predict_fn(lambda b: torch.zeros_like(b["mask"]), sam, torch.device("cpu"))(batch)
    assert float(empty.max()) < 1e-6
    res = evaluate_sam(sam, "synthpolyp", tmp_path / "eval", image_size=64, batch_size=2, device="cpu",
                       dataset_options={"n": 4}, overlays=False, progress=False)
    summary = json.loads(res.files["summary"].read_text())
    assert summary["pretrained_source"] == "scratch" and "ground-truth" in summary["prompts"]
    assert 0 <= summary["means"]["dice"] <= 1 and "meanDice" in summary["means"]


def test_cli_cascade_with_a_trained_detector(decoder_run, tmp_path, capsys):
    _, result = decoder_run
    det = tmp_path / "detector"
    assert main(["train", "--preset", "cpu-tiny", "--epochs", "1", "--out", str(det), "--no-progress", "--json",
                 "--set", "dataset_options.n=8"]) == 0
    capsys.readouterr()
    out = tmp_path / "cascade"
    assert main(["cascade", "--sam", str(result.best_checkpoint), "--detector", str(det / "best.pt"),
                 "--dataset", "synthpolyp", "--dataset-option", "n=4", "--image-size", "64", "--batch-size", "2",
                 "--device", "cpu", "--jitter", "0", "0.2", "--out", str(out), "--no-overlays", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pretrained_source"] == "scratch" and {"gt_boxes", "cascade", "robustness"} <= set(report)
    assert [row["jitter"] for row in report["robustness"]] == [0.0, 0.2]
    assert report["robustness"][0]["dice"] == pytest.approx(report["gt_boxes"]["dice"])
    summary = json.loads((out / "cascade" / "summary.json").read_text())
    assert "detector boxes" in summary["prompts"]


def test_box_fill_reference_is_the_filled_gt_box():
    from polyplib.sam.cascade import box_fill_predict_fn
    mask = torch.zeros(1, 1, 20, 20)
    mask[0, 0, 5:15, 4:8] = 1
    mask[0, 0, 8:10, 8:12] = 1  # an L shape: the box covers more than the mask
    pred = box_fill_predict_fn(torch.device("cpu"))({"mask": mask})
    assert pred.sum() == 10 * 8 and pred[0, 0, 5:15, 4:12].min() == 1


def test_quick_bench_reports_both_lines():
    from polyplib.bench.sam import run_sam_bench
    res = run_sam_bench(quick=True, device="cpu", batch=2, steps=1)
    kinds = {(ln["strategy"], ln["recipe"]) for ln in res["lines"]}
    assert kinds == {(s, r) for s in ("full", "decoder") for r in ("ours", "authors")}
    assert all(ln["images_per_s"] > 0 for ln in res["lines"]) and res["latency_ms"] > 0
    assert res["full_speedup"] > 0 and res["decoder_speedup"] > 0 and res["size"] == "tiny"
    assert all(ln["images_per_s_min"] <= ln["images_per_s"] <= ln["images_per_s_max"] for ln in res["lines"])
    assert res["full_speedup_min"] <= res["full_speedup"] <= res["full_speedup_max"] and res["repeats"] == 3


def test_resume_of_a_cached_decoder_run_is_exact(decoder_run, tmp_path):
    _, full = decoder_run
    config = tiny_config(tmp_path, "decoder", seed=0)
    train(config.replace(epochs=1))
    resumed = train(config, resume=True)
    assert [round(r["train_loss"], 6) for r in resumed.history] == [round(r["train_loss"], 6) for r in full.history]
    ours, reference = load_checkpoint(resumed.last_checkpoint)["model"], load_checkpoint(full.last_checkpoint)["model"]
    assert all(torch.equal(ours[k], reference[k]) for k in reference)


@pytest.mark.parametrize("strategy", ["decoder", "full"])
def test_bf16_channels_last_cpu_default_trains_both_strategies(tmp_path, strategy):
    """The lite recipe: bf16 autocast with the automatic memory format (channels-last on a bf16 CPU)."""
    result = train(tiny_config(tmp_path, strategy, precision="bf16", channels_last=None, epochs=1, seed=0))
    row = result.history[0]
    assert 0 < row["train_loss"] < 2 and 0 <= row["val_dice"] <= 1
    state = load_checkpoint(result.last_checkpoint)["model"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_lora_training_from_a_pretrained_file_keeps_the_encoder_and_loads_back(tmp_path, monkeypatch):
    """The `lora` strategy through the trainer: the SAM weights it starts from stay bit-identical, the LoRA updates and
    the mask decoder train, and the checkpoint rebuilds the same LoRA model."""
    from polyplib.sam.build import build_sam
    monkeypatch.setenv("POLYPLIB_WEIGHTS", str(tmp_path / "no-weights"))
    torch.manual_seed(2)
    start = build_sam("tiny", 64).state_dict()
    weights = tmp_path / "sam_tiny_start.pth"
    torch.save(start, weights)
    options = {"encoder_size": 64, "strategy": "lora", "lora_rank": 2, "checkpoint": str(weights)}
    result = train(tiny_config(tmp_path, "lora", epochs=1, model_options=options, dataset_options={"n": 6}, seed=0))
    saved = load_checkpoint(result.last_checkpoint)["model"]
    base = {k.replace(".attn.qkv.qkv.", ".attn.qkv."): v for k, v in saved.items() if not k.endswith(
        (".a_q", ".b_q", ".a_v", ".b_v"))}
    for key, value in start.items():
        if key.startswith(("image_encoder.", "prompt_encoder.")):
            assert torch.equal(base[f"sam.{key}"], value), key  # frozen: the pretrained weights, bit for bit
    assert any(not torch.equal(saved[f"sam.{k}"], v) for k, v in start.items() if k.startswith("mask_decoder."))
    assert any(saved[k].abs().sum() > 0 for k in saved if k.endswith(".b_v"))  # B left zero: nothing learnt
    model, config = load_trained_model(result.last_checkpoint)
    assert model.strategy == "lora" and model.lora_rank == 2 and config.model_options["lora_rank"] == 2
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
