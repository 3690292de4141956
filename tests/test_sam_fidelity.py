"""Polyp-SAM training sees what SamPredictor sees: original-size frames, longest side + pad, loss at original size."""
import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from polyplib.engine import TrainConfig
from polyplib.sam.preprocess import preprocess_images
from polyplib.sam.training import SamRun


def sam_run(tmp_path, **overrides) -> SamRun:
    config = TrainConfig(model="polyp-sam-tiny", model_options={"allow_scratch": True, "encoder_size": 64,
                                                                 "strategy": "full", "fast_attention": False},
                         dataset="synthpolyp", dataset_options={"n": 6, "centre": "A"}, protocol="gmsrf",
                         image_size=64, augment=False, batch_size=2, epochs=1, lr=1e-4, optimizer="adamw",
                         loss="monai-dice", precision="fp32", device="cpu", out_dir=str(tmp_path / "run"),
                         progress=False).replace(**overrides)
    return SamRun(config, resume=False)


def test_training_input_equals_sam_predictor_for_an_original_size_frame(tmp_path):
    torch.manual_seed(0)
    run = sam_run(tmp_path)
    item = run.train_ds[0]
    frame, mask = run.train_ds.dataset.reader(run.train_ds.dataset.pairs[0])  # the decoded file: uint8 RGB
    assert item["image"].shape == (3, 240, 320) and item["mask"].shape == (1, 240, 320)  # no stretch to 64x64
    assert torch.equal(item["mask"][0], torch.from_numpy(mask).float())
    model = run.model.eval()
    seen = []
    predictor = SamPredictor(model.sam)
    hook = model.sam.image_encoder.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    predictor.set_image(frame)
    hook.remove()
    ours = preprocess_images(item["image"][None], model.image_size, "sam", model.sam.pixel_mean, model.sam.pixel_std)
    assert ours.shape == seen[0].shape == (1, 3, 64, 64)
    torch.testing.assert_close(ours, seen[0], atol=1e-5, rtol=0)
    assert ours[0, :, 48:].abs().max() == 0  # 240x320 -> 48x64, zero padding below
    with torch.no_grad():
        torch.testing.assert_close(model.encode(item["image"][None]), predictor.features, atol=1e-4, rtol=1e-4)
    box = item["boxes"][0].numpy()
    ref, _, _ = predictor.predict(box=box, multimask_output=False, return_logits=True)
    with torch.no_grad():
        logits = model(item["image"][None], item["boxes"][None])
    assert logits.shape == (1, 1, 240, 320)  # the loss compares original-size logits with the original mask
    np.testing.assert_allclose(logits[0].numpy(), ref, atol=1e-4, rtol=1e-4)


def test_run_records_its_recipe_and_refuses_mixed_sizes_in_a_batch(tmp_path, monkeypatch):
    import json

    run = sam_run(tmp_path, recipe="polyp-sam-authors")
    label = json.loads((tmp_path / "run" / "sam.json").read_text())
    assert label["recipe"] == "polyp-sam-authors" and label["loss"] == "monai-dice"
    assert run.model.recipe == "polyp-sam-authors" and "recipe" in run.model.checkpoint_attrs
    from polyplib.data import io
    from polyplib.errors import ConfigError
    from polyplib.sam import training

    pairs = run.train_ds.dataset.pairs
    fake = [type(p)(p.id, f"/img/{i}.png", None) for i, p in enumerate(pairs)]
    monkeypatch.setattr(io, "image_size", lambda path: (240, 320) if path.endswith("0.png") else (288, 288))

    class Frames:
        def __init__(self, pairs):
            self.pairs = pairs

    with pytest.raises(ConfigError, match="batch_size=1"):
        training.check_one_size(Frames(fake), run.config)
