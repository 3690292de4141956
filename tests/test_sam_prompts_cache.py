"""Box prompts from masks, the embedding cache, and cached-vs-uncached `decoder` training equivalence."""
import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from polyplib.errors import ConfigError
from polyplib.sam.build import build_sam
from polyplib.sam.embeddings import CachedEmbeddingDataset, EmbeddingCache, encoder_fingerprint
from polyplib.sam.model import PolypSAM
from polyplib.sam.prompts import BoxPromptDataset, boxes_from_mask
from polyplib.sam.training import EmbeddingDecoder


def blobs_mask(hw=(64, 64), blobs=((10, 20, 12, 30), (40, 50, 45, 60))) -> torch.Tensor:
    mask = torch.zeros(1, *hw)
    for y0, y1, x0, x1 in blobs:
        mask[0, y0:y1, x0:x1] = 1
    return mask


def test_boxes_one_blob_two_blobs_empty():
    one = boxes_from_mask(blobs_mask(blobs=((10, 20, 12, 30),)))
    assert one.tolist() == [[12.0, 10.0, 30.0, 20.0]]
    two = blobs_mask()
    assert boxes_from_mask(two).tolist() == [[12.0, 10.0, 60.0, 50.0]]  # tight box of all foreground (paper)
    per = boxes_from_mask(two, per_component=True, max_boxes=3)
    assert per.shape == (3, 4) and per[:2].tolist() == [[12.0, 10.0, 30.0, 20.0], [45.0, 40.0, 60.0, 50.0]]
    assert per[2].isnan().all()
    assert boxes_from_mask(torch.zeros(1, 32, 32)).isnan().all()
    with pytest.raises(ConfigError, match="jitter"):
        boxes_from_mask(two, jitter=-0.1)


def test_jitter_moves_boxes_but_stays_inside_the_image():
    mask = blobs_mask(hw=(40, 50), blobs=((0, 30, 5, 50),))  # touches the top and right borders
    rng = np.random.default_rng(0)
    boxes = torch.cat([boxes_from_mask(mask, jitter=0.2, rng=rng) for _ in range(200)])
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= 50).all() and (boxes[:, 3] <= 40).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    spread = (boxes - torch.tensor([5.0, 0.0, 50.0, 30.0])).abs().amax(0)
    assert 3.0 < spread[0] <= 9.0 + 1e-4 and 2.0 < spread[3] <= 6.0 + 1e-4  # up to 20 % of the 45 x 30 box


def toy_dataset(n=6, hw=(64, 64)) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        y, x = 5 + 4 * i, 8 + 3 * i
        items.append({"image": torch.rand(3, *hw, generator=gen), "mask": blobs_mask(hw, ((y, y + 20, x, x + 25),)),
                      "id": f"img{i}", "dataset": "toy", "orig_size": hw})
    return items


def test_prompt_dataset_jitter_is_a_function_of_seed_epoch_index():
    ds = BoxPromptDataset(toy_dataset(), jitter=0.1, seed=3)
    first = ds[2]["boxes"].clone()
    assert torch.equal(first, ds[2]["boxes"])
    ds.set_epoch(1)
    assert not torch.equal(first, ds[2]["boxes"])
    ds.set_epoch(0)
    assert torch.equal(first, ds[2]["boxes"])


def dice_loss(logits, target):
    prob = logits.sigmoid()
    return 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)


def test_cached_embeddings_give_the_same_loss_and_gradients(tmp_path):
    torch.manual_seed(0)
    model = PolypSAM(build_sam("tiny", image_size=64), strategy="decoder").train()
    data = toy_dataset()
    plain = default_collate([BoxPromptDataset(data, jitter=0.1, seed=1)[i] for i in range(4)])
    cache = EmbeddingCache(model, tmp_path)
    cached_ds = CachedEmbeddingDataset(data, cache, jitter=0.1, seed=1, batch_size=4, progress=False)
    cached = default_collate([cached_ds[i] for i in range(4)])
    assert torch.equal(plain["boxes"], cached["boxes"]) and cached["image"].shape == (4, 32, 4, 4)
    losses, grads = [], []
    for net, batch in ((model, plain), (EmbeddingDecoder(model, (64, 64)), cached)):
        model.zero_grad()
        loss = dice_loss(net(batch["image"], batch["boxes"]), batch["mask"])
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(model.sam.mask_decoder.output_hypernetworks_mlps[0].layers[0].weight.grad.clone())
    assert 0 < losses[0] < 1 and math.isclose(losses[0], losses[1], rel_tol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_cache_is_reused_from_disk_and_keyed_by_encoder_weights(tmp_path):
    torch.manual_seed(0)
    model = PolypSAM(build_sam("tiny", image_size=64), strategy="decoder")
    data = toy_dataset(n=3)
    calls = []
    model.sam.image_encoder.neck.register_forward_hook(lambda *a: calls.append(1))
    CachedEmbeddingDataset(data, EmbeddingCache(model, tmp_path), batch_size=2, progress=False)
    assert len(calls) == 2 and len(list(tmp_path.rglob("*.pt"))) == 3
    again = CachedEmbeddingDataset(data, EmbeddingCache(model, tmp_path), batch_size=2, progress=False)
    assert len(calls) == 2  # all three read back from disk
    with torch.no_grad():
        torch.testing.assert_close(again[1]["image"], model.encode(data[1]["image"][None])[0])
    before = encoder_fingerprint(model)
    with torch.no_grad():
        model.sam.image_encoder.neck[0].weight.mul_(1.01)
    changed = encoder_fingerprint(model)
    assert changed != before
    model.to(memory_format=torch.channels_last)  # the CPU bf16 default: same weights, another memory layout
    assert model.sam.image_encoder.neck[0].weight.stride()[-1] != 1 and encoder_fingerprint(model) == changed
    with pytest.raises(ConfigError, match="decoder"):
        EmbeddingCache(PolypSAM(model.sam, strategy="full"))
