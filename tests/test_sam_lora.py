"""LoRA on SAM's image encoder (the `lora` Polyp-SAM strategy): what trains, what is frozen, and merging."""
import pytest
import torch

from polyplib.errors import ConfigError
from polyplib.losses import build_loss
from polyplib.sam.build import build_sam
from polyplib.sam.lora import LoRAQKV, merge_lora
from polyplib.sam.model import PolypSAM


def step(model: PolypSAM, images, boxes, masks) -> None:
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    build_loss("dice")(model(images, boxes), masks).backward()
    optimiser.step()


@pytest.fixture
def batch():
    torch.manual_seed(0)
    images, masks = torch.rand(2, 3, 64, 64), torch.zeros(2, 1, 64, 64)
    masks[:, :, 10:40, 12:44] = 1
    return images, torch.tensor([[12.0, 10, 44, 40]] * 2), masks


def test_a_lora_step_changes_only_the_lora_updates_and_the_mask_decoder(batch):
    torch.manual_seed(0)
    model = PolypSAM(build_sam("tiny", image_size=64), strategy="lora", lora_rank=2)
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".a_q" in k or ".b_q" in k or ".a_v" in k or ".b_v" in k or k.startswith("sam.mask_decoder.")
                             for k in trainable)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step(model, *batch)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("sam.mask_decoder.") for k in changed)
    assert any(k.endswith(".b_q") for k in changed) and any(k.endswith(".b_v") for k in changed)
    assert changed <= trainable  # the pretrained encoder, prompt encoder and every frozen weight are untouched
    n_lora = sum(p.numel() for k, p in model.named_parameters() if k.endswith((".a_q", ".b_q", ".a_v", ".b_v")))
    encoder = sum(p.numel() for k, p in model.named_parameters() if k.startswith("sam.image_encoder.")) - n_lora
    assert 0 < n_lora < 0.1 * encoder


def test_lora_starts_at_the_pretrained_function_and_merging_keeps_the_trained_one(batch):
    torch.manual_seed(1)
    sam = build_sam("tiny", image_size=64)
    images, boxes, _ = batch
    plain = PolypSAM(sam, strategy="full").eval()
    with torch.no_grad():
        reference = plain(images, boxes)
    model = PolypSAM(sam, strategy="lora", lora_rank=2).eval()  # B = 0: the same function as the pretrained SAM
    with torch.no_grad():
        torch.testing.assert_close(model(images, boxes), reference)
    step(model, *batch)
    step(model, *batch)
    model.eval()
    with torch.no_grad():
        trained = model(images, boxes)
        assert (trained - reference).abs().max() > 1e-4  # the updates changed the function
        assert merge_lora(model.sam.image_encoder) == len(model.sam.image_encoder.blocks)
        assert not any(isinstance(b.attn.qkv, LoRAQKV) for b in model.sam.image_encoder.blocks)
        torch.testing.assert_close(model(images, boxes), trained, atol=1e-4, rtol=1e-4)


def test_lora_rank_must_be_positive():
    with pytest.raises(ConfigError, match="lora_rank=0"):
        PolypSAM(build_sam("tiny", image_size=64), strategy="lora", lora_rank=0)
