"""Evaluation: per-image CSV and summary JSON against metrics computed by hand on outputs we control."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from polyplib.data import load_dataset
from polyplib.engine import get_preset, save_checkpoint
from polyplib.engine.evaluate import evaluate, load_trained_model, pick_examples, predict_folder
from polyplib.errors import DataError, DivergenceError, WeightsError
from polyplib.models import create_model

SYNTH = {"n": 4}
COLUMNS = ["id", "dataset", "dice", "iou", "recall", "precision", "meanDice", "meanIoU", "Sm", "wFm", "meanEm", "MAE"]


class LeftHalf(nn.Module):
    """Logits +30 on the left half of the image, -30 on the right (an output we know exactly)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        b, _, h, w = image.shape
        logits = torch.full((b, 1, h, w), -30.0)
        logits[..., : w // 2] = 30.0
        return logits


def test_both_protocols_match_hand_computed_metrics(tmp_path):
    result = evaluate(LeftHalf(), "synthpolyp", out_dir=tmp_path, image_size=64, dataset_options=SYNTH,
                      progress=False, save_predictions=True)
    table = pd.read_csv(tmp_path / "per_image.csv", dtype={"id": str})
    assert set(COLUMNS) <= set(table.columns) and len(table) == 4
    small = load_dataset("synthpolyp", image_size=64, **SYNTH)
    full = load_dataset("synthpolyp", image_size=None, **SYNTH)
    for i, row in table.iterrows():
        gt = small[i]["mask"][0].numpy() > 0.5
        pred = np.zeros_like(gt)
        pred[:, :32] = True
        tp = (gt & pred).sum()
        assert row["id"] == small[i]["id"]
        assert row["dice"] == pytest.approx(2 * tp / (gt.sum() + pred.sum()))
        assert row["iou"] == pytest.approx(tp / (gt | pred).sum())
        assert row["recall"] == pytest.approx(tp / gt.sum()) and row["precision"] == pytest.approx(tp / pred.sum())
        gt_full = full[i]["mask"][0].numpy()
        h, w = gt_full.shape
        half = np.zeros((h, w))
        half[:, : w // 2] = 1
        # bilinear upsampling blurs only the few columns around the edge of the half-plane
        assert row["MAE"] == pytest.approx(np.abs(half - gt_full).mean(), abs=3 / w)
        png = cv2.imread(str(tmp_path / "predictions" / f"{row['id']}.png"), cv2.IMREAD_GRAYSCALE)
        assert png.shape == (h, w) and png[:, 0].min() == 255 and png[:, -1].max() == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n"] == 4 and summary["dataset"] == "synthpolyp" and summary["date"]
    for key in ("dice", "MAE", "Sm"):
        assert summary["means"][key] == pytest.approx(table[key].mean())
        assert summary["std"][key] == pytest.approx(table[key].std(ddof=0))
    assert result.files["overlays"].stat().st_size > 0


def test_predict_fn_hook_with_a_constant_probability(tmp_path):
    def constant(batch):
        return torch.full((len(batch["id"]), 1, 64, 64), 0.7)

    result = evaluate(None, "synthpolyp", out_dir=tmp_path, image_size=64, predict_fn=constant, overlays=False,
                      dataset_options=SYNTH, progress=False)
    small = load_dataset("synthpolyp", image_size=64, **SYNTH)
    full = load_dataset("synthpolyp", image_size=None, **SYNTH)
    for i, row in result.per_image.iterrows():
        g = float(small[i]["mask"].sum())
        assert row["dice"] == pytest.approx(2 * g / (64 * 64 + g))
        assert row["recall"] == pytest.approx(1.0) and row["precision"] == pytest.approx(g / 4096)
        gt = full[i]["mask"].numpy()
        saved = round(0.7 * 255) / 255  # the toolbox reads maps back from 8-bit PNGs
        assert row["MAE"] == pytest.approx(np.abs(saved - gt).mean(), rel=1e-6)


def test_a_non_finite_output_names_the_image_and_writes_no_metrics(tmp_path):
    ids = load_dataset("synthpolyp", image_size=64, **SYNTH).ids

    def overflowing(batch):  # the third image's map holds one NaN (an activation that overflowed upstream)
        probs = torch.full((len(batch["id"]), 1, 64, 64), 0.5)
        for k, i in enumerate(batch["id"]):
            if i == ids[2]:
                probs[k, 0, 5, 7] = float("nan")
        return probs

    with pytest.raises(DivergenceError) as caught:
        evaluate(None, "synthpolyp", out_dir=tmp_path, image_size=64, predict_fn=overflowing, overlays=False,
                 dataset_options=SYNTH, progress=False, batch_size=2)
    assert f"image(s) {ids[2]}:" in str(caught.value) and ids[1] not in str(caught.value)
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "per_image.csv").exists()


def test_pick_examples_orders_by_dice():
    picks = pick_examples(pd.DataFrame({"dice": [0.5, 0.9, 0.1, 0.7]}))
    assert picks == {"best": 1, "median": 3, "worst": 2}
    tied = pd.DataFrame({"dice": [0.5, 0.5, 0.5], "id": ["c", "a", "b"]})
    assert pick_examples(tied) == {"best": 2, "median": 1, "worst": 0}  # ties in row order
    assert pick_examples(tied, tiebreak="id") == {"best": 0, "median": 2, "worst": 1}  # ties by id


def _checkpoint(tmp_path):
    config = get_preset("cpu-tiny")
    model = create_model(config.model, **config.model_options)
    return save_checkpoint({"model": model.state_dict(), "config": config.to_dict()}, tmp_path / "best.pt"), model


def test_predict_folder_writes_binary_masks_at_input_size(tmp_path):
    path, model = _checkpoint(tmp_path)
    loaded, config = load_trained_model(path)
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(loaded(x), model.eval()(x)) and config.model == get_preset("cpu-tiny").model
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (50, 70), "b.jpg": (33, 47)}.items():
        cv2.imwrite(str(images / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    written = predict_folder(path, images, tmp_path / "all", threshold=0.0, progress=False)
    assert [p.name for p in written] == ["a.png", "b.png"]
    masks = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in written]
    assert [m.shape for m in masks] == [(50, 70), (33, 47)] and all((m == 255).all() for m in masks)
    none = predict_folder(path, images, tmp_path / "none", threshold=1.0, progress=False)
    assert all((cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) == 0).all() for p in none)
    with pytest.raises(DataError, match="missing does not exist"):
        predict_folder(path, tmp_path / "all" / "missing", tmp_path / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        predict_folder(path, tmp_path / "empty", tmp_path / "x")


def test_unusable_checkpoints_are_weights_errors(tmp_path):
    path, _ = _checkpoint(tmp_path)
    state = torch.load(path, weights_only=True)
    state["model"] = {k: v[..., :1] if v.ndim else v for k, v in state["model"].items()}
    save_checkpoint(state, tmp_path / "wrong.pt")
    with pytest.raises(WeightsError, match="does not fit model"):
        load_trained_model(tmp_path / "wrong.pt")
    save_checkpoint({"weights": torch.ones(1)}, tmp_path / "bare.pt")
    with pytest.raises(WeightsError, match="no model weights"):
        evaluate(tmp_path / "bare.pt", "synthpolyp", out_dir=tmp_path / "e", dataset_options=SYNTH)


class Brightness(nn.Module):
    """Logits that follow each pixel's grey level: a map of many levels that any change of the input moves."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.scale * (image.mean(1, keepdim=True) - 0.5)


def test_predict_gives_the_mask_evaluate_scores_for_the_same_image(tmp_path, monkeypatch):
    """One decoding and one resize for both commands: `predict`'s mask is evaluate's map thresholded at 0.5."""
    from fullpath import make_root
    from polyplib.models import registry

    monkeypatch.setitem(registry._REGISTRY, "brightness", Brightness)
    config = get_preset("cpu-tiny").replace(model="brightness", model_options={}, image_size=32)
    path = save_checkpoint({"model": Brightness().state_dict(), "config": config.to_dict()}, tmp_path / "best.pt")
    root = make_root(tmp_path / "data", kvasir=3, colondb=0, size=(72, 88))
    evaluate(path, "kvasir-seg", root=str(root), out_dir=tmp_path / "eval", image_size=32, batch_size=1,
             save_predictions=True, overlays=False, device="cpu", progress=False)
    written = predict_folder(path, root / "Kvasir-SEG" / "images", tmp_path / "masks", device="cpu", progress=False)
    assert len(written) == 3
    for mask_path in written:
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        scored = cv2.imread(str(tmp_path / "eval" / "predictions" / mask_path.name), cv2.IMREAD_GRAYSCALE)
        assert len(np.unique(scored)) > 50 and 0 < (scored >= 128).sum() < scored.size
        assert np.array_equal(mask == 255, scored >= 128), mask_path.name  # 8-bit level >= 128: probability >= 0.5
