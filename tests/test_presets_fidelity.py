"""The authors' recipes as presets: GMSRF validation loss, Polyp-SAM MONAI loss and schedule, recipe labels."""
import math

import numpy as np
import pytest
import torch

from polyplib.engine import get_preset, load_checkpoint, train
from polyplib.engine.trainer import authors_warmup_cosine_factor, build_optimizer, build_scheduler
from polyplib.errors import ConfigError
from polyplib.losses import build_loss, dice_loss


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_gmsrf_official_preset_trains_as_the_authors_script():
    """Their gmsrf_train.py: Adam at 1e-4, the LR divided by 10 once 5 epochs in a row fail to lower the validation
    loss, and their structure loss with both bugs (the benchmark's independent copy of it)."""
    from polyplib.bench.gmsrf import authors_loss

    cfg = get_preset("gmsrf-official")
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    scheduler = build_scheduler(optimizer, cfg)
    lrs = []
    for val_loss in (1.0, 0.9, *[0.95] * 7):
        scheduler.step(val_loss)
        lrs.append(optimizer.param_groups[0]["lr"])
    assert isinstance(optimizer, torch.optim.Adam) and not isinstance(optimizer, torch.optim.AdamW)
    assert lrs[:7] == [pytest.approx(1e-4)] * 7 and lrs[7:] == [pytest.approx(1e-5)] * 2
    torch.manual_seed(0)
    mask = (torch.rand(2, 1, 40, 40) > 0.6).float()
    outs = tuple(torch.randn(2, 1, 40, 40) * 2 for _ in range(4))
    ours = build_loss(cfg.loss, **cfg.loss_options)(outs, mask)
    assert float(ours) == pytest.approx(float(authors_loss()(outs, mask)), rel=1e-5)


def test_authors_validation_loss_by_hand_pooled_over_the_batch():
    z = [[0.0, 2.0], [-1.0, 0.5]], [[3.0, -2.0], [0.0, 0.0]]
    g = [[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]
    p = [sigmoid(sigmoid(v)) for img in z for row in img for v in row]  # their model's sigmoid, then DiceBCELoss's
    t = [v for img in g for row in img for v in row]
    dice = 1 - (2 * sum(a * b for a, b in zip(p, t)) + 1) / (sum(p) + sum(t) + 1)
    bce = -sum(b * math.log(a) + (1 - b) * math.log(1 - a) for a, b in zip(p, t)) / len(p)
    loss = build_loss(get_preset("gmsrf-official").val_loss)
    logits, target = torch.tensor(z)[:, None], torch.tensor(g)[:, None]
    assert float(loss(logits, target)) == pytest.approx(dice + bce, rel=1e-6)
    side = torch.full_like(logits, 5.0)
    assert float(loss((logits, side, side, side), target)) == pytest.approx(dice + bce, rel=1e-6)  # D1 only
    per_image = (float(loss(logits[:1], target[:1])) + float(loss(logits[1:], target[1:]))) / 2
    assert per_image != pytest.approx(dice + bce, rel=1e-4)  # pooled over the batch, not a mean of images


def test_selection_and_plateau_use_the_authors_validation_loss(tmp_path):
    cfg = get_preset("cpu-tiny", out_dir=str(tmp_path / "run"), progress=False, epochs=1, val_loss="dice-bce-authors",
                     select="loss", schedule="plateau")
    result = train(cfg)
    from polyplib.data import load_dataset
    from polyplib.models import create_model

    last = load_checkpoint(result.last_checkpoint)
    model = create_model(cfg.model, **cfg.model_options)
    model.load_state_dict(last["model"])
    model.eval()
    val = load_dataset(cfg.dataset, split="val", image_size=cfg.image_size, protocol=cfg.protocol,
                       **cfg.dataset_options)
    loss, total, n = build_loss("dice-bce-authors"), 0.0, 0
    with torch.no_grad():
        for start in range(0, len(val), cfg.batch_size):
            items = [val[i] for i in range(start, min(start + cfg.batch_size, len(val)))]
            images, masks = torch.stack([i["image"] for i in items]), torch.stack([i["mask"] for i in items])
            total += float(loss(model(images), masks)) * len(items)
            n += len(items)
    assert result.history[0]["val_loss"] == pytest.approx(total / n, rel=1e-5)
    assert last["scheduler"]["best"] == pytest.approx(total / n, rel=1e-5) and result.best_metric == last["best"]["metric"]


def test_monai_dice_loss_equals_monai_called_as_the_notebooks():
    from monai.losses import DiceLoss

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 12, 9, generator=gen) * 3
    gt = (torch.rand(2, 12, 9, generator=gen) > 0.6).float()
    gt[1, :4] = 0  # rows without foreground: pushed to exactly 0
    theirs = DiceLoss(to_onehot_y=False)
    per_image = [theirs(torch.sigmoid(logits[i : i + 1])[0], gt[i].unsqueeze(0)) for i in range(2)]
    expected = sum(float(v) for v in per_image) / 2  # each image's loss divided by the number of images
    ours = build_loss("monai-dice", rowwise=True)(logits, gt[:, None])
    assert float(ours) == pytest.approx(expected, rel=1e-6)
    assert float(ours) == pytest.approx(float(dice_loss(logits, gt[:, None], smooth=1e-5, rowwise=True)), rel=1e-5)
    whole = build_loss("monai-dice", rowwise=False)(logits, gt[:, None])
    assert float(whole) == pytest.approx(float(dice_loss(logits, gt[:, None], smooth=1e-5)), rel=1e-5)
    assert abs(float(whole) - float(ours)) > 1e-3
    with pytest.raises(ConfigError, match="monai-dice"):
        build_loss("monai-dice", squared=True)


def test_polyp_sam_presets_and_the_notebooks_schedule():
    authors, paper = get_preset("polyp-sam-authors"), get_preset("polyp-sam-paper")
    assert (authors.batch_size, authors.grad_accum, authors.precision) == (1, 64, "fp16")
    assert authors.model_options == {"strategy": "full", "preprocess": "authors"}
    assert (authors.loss, authors.loss_options, authors.dataset_options) == \
        ("monai-dice", {"rowwise": True}, {"mask_threshold": 0})
    assert (authors.recipe, paper.recipe) == ("polyp-sam-authors", "polyp-sam-paper")
    assert paper.batch_size * paper.grad_accum == 48 and paper.model_options.get("preprocess", "sam") == "sam"
    lrs = [authors_warmup_cosine_factor(e, authors) * authors.lr for e in range(201)]
    assert lrs[0] == pytest.approx(5e-7) and lrs[1] == pytest.approx(5e-7 + 3.5e-6 / 29)
    assert lrs[29] == pytest.approx(4e-6) and lrs[30] == pytest.approx(4e-6) and lrs[28] < 4e-6
    assert lrs[115] == pytest.approx(2.5e-6) and lrs[200] == pytest.approx(1e-6)
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], authors)
    sched = build_scheduler(opt, authors)
    seen = []
    for _ in range(31):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[29] == pytest.approx(4e-6) and seen[0] == pytest.approx(5e-7)


def test_mask_threshold_zero_is_the_notebooks_gt_above_zero(tmp_path):
    import cv2

    from polyplib.data.io import read_mask
    from polyplib.data import load_dataset

    grey = np.array([[0, 1, 100], [127, 128, 255]], np.uint8)
    cv2.imwrite(str(tmp_path / "m.png"), grey)
    assert read_mask(tmp_path / "m.png").tolist() == [[0, 0, 0], [0, 1, 1]]
    assert read_mask(tmp_path / "m.png", 0).tolist() == [[0, 1, 1], [1, 1, 1]]
    with pytest.raises(ConfigError, match="mask_threshold"):
        load_dataset("synthpolyp", mask_threshold=-1)
