"""Polyp-SAM model: equivalence with Meta's SamPredictor, preprocessing, strategies, multi-box prompts."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor

from polyplib.errors import ConfigError
from polyplib.sam.build import build_sam, sam_config
from polyplib.sam.model import EMPTY_LOGIT, PolypSAM
from polyplib.sam.preprocess import input_size, postprocess_logits, preprocess_images, scale_boxes


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(0)
    return build_sam("tiny").eval()


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255


def test_tiny_config_and_official_sizes():
    assert sam_config("vit_b").embed_dim == 768 and sam_config("vit_h").global_attn_indexes == (7, 15, 23, 31)
    assert sam_config("tiny", image_size=64).image_size == 64
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        sam_config("tiny", image_size=100)
    with pytest.raises(ConfigError, match="unknown SAM size"):
        sam_config("vit_xl")


def test_prediction_equals_sam_predictor_at_native_size(sam):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)  # long side = encoder size: no resampling anywhere
    box = np.array([10, 5, 70, 60], np.float32)
    predictor = SamPredictor(sam)
    predictor.set_image(img)
    ref, _, _ = predictor.predict(box=box, multimask_output=False, return_logits=True)
    model = PolypSAM(sam, strategy="decoder")
    with torch.no_grad():
        ours = model(to_tensor(img), torch.from_numpy(box)[None])
    assert ours.shape == (1, 1, 96, 128)
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=1e-5, rtol=1e-4)


def test_prediction_equals_sam_predictor_after_resize_batched(sam):
    """Other sizes: SamPredictor.set_image's own resize (uint8, PIL), box scaling, decoder, postprocessing; batch of 2."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 150, 100, 3), dtype=np.uint8)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    boxes = torch.tensor([[10.0, 20.0, 60.0, 90.0], [30.0, 5.0, 95.0, 140.0]])
    model = PolypSAM(sam, strategy="decoder", fast_attention=False)
    with torch.no_grad():
        ours = model(images, boxes)
    predictor = SamPredictor(sam)
    for i in range(2):
        predictor.set_image(frames[i])
        ref, _, _ = predictor.predict(box=boxes[i].numpy(), multimask_output=False, return_logits=True)
        np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["sam", "authors"])
def test_preprocess_round_trip_and_box_scaling(mode):
    hw, size = (60, 90), 128
    mask = torch.zeros(1, 1, *hw)
    mask[..., 12:40, 30:75] = 1.0
    frame = preprocess_images(mask.expand(1, 3, *hw), size, mode, torch.zeros(3), torch.full((3,), 255.0))
    assert frame.shape == (1, 3, size, size)
    ys, xs = torch.nonzero(frame[0, 0] > 0.5, as_tuple=True)
    box = scale_boxes(torch.tensor([30.0, 12.0, 75.0, 40.0]), hw, size, mode)
    found = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
    assert (box - found).abs().max() <= 1.5, (box, found)
    if mode == "sam":  # content top-left, zero padding bottom/right
        assert input_size(hw, size, mode) == (85, 128) and frame[0, 0, 85:].abs().max() == 0
    back = postprocess_logits(frame[:, :1], hw, size, mode)
    assert back.shape == (1, 1, *hw)
    inter = ((back > 0.5) & (mask > 0.5)).sum()
    assert inter / ((back > 0.5) | (mask > 0.5)).sum() > 0.97


def test_authors_preprocess_is_the_notebooks_colondataset():
    """ricklisz/Polyp-SAM ColonDataset: cv2 BGR, ResizeLongestSide.apply_image, cv2.resize(.., (S, S), INTER_CUBIC) where
    the third argument is `dst` (so bilinear), ToTensor; no mean/std."""
    import cv2
    from segment_anything.utils.transforms import ResizeLongestSide
    from torchvision import transforms

    rgb = np.random.default_rng(2).integers(0, 256, (40, 80, 3), dtype=np.uint8)
    bgr = np.ascontiguousarray(rgb[..., ::-1])  # what cv2.imread gives
    expected = transforms.ToTensor()(cv2.resize(ResizeLongestSide(64).apply_image(bgr), (64, 64), cv2.INTER_CUBIC))
    out = preprocess_images(to_tensor(rgb), 64, "authors", torch.full((3,), 100.0), torch.full((3,), 50.0))
    torch.testing.assert_close(out[0], expected, atol=1e-6, rtol=0)
    box = scale_boxes(torch.tensor([8.0, 4.0, 40.0, 20.0]), (40, 80), 64, "authors")
    torch.testing.assert_close(box, torch.tensor([6.4, 6.4, 32.0, 32.0]))


def test_multiple_boxes_give_union_and_missing_box_gives_empty(sam):
    model = PolypSAM(sam)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    nan = [float("nan")] * 4
    boxes = torch.tensor([[[2, 2, 20, 20], [30, 30, 60, 60]], [nan, nan]])
    with torch.no_grad():
        both = model(images, boxes)
        first = model(images[:1], boxes[:1, 0])
        second = model(images[:1], boxes[:1, 1])
    torch.testing.assert_close(both[0], torch.maximum(first, second)[0])
    assert not torch.equal(first, second)
    assert torch.all(both[1] == EMPTY_LOGIT)
    none = model.train()(images, torch.full((2, 4), float("nan")))
    none.sigmoid().mean().backward()  # a batch without any box still makes a (no-op) training step
    assert torch.all(none == EMPTY_LOGIT) and model.sam.mask_decoder.iou_token.weight.grad is None


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    prob = logits.sigmoid()
    return 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)


def one_step(model: PolypSAM, images: torch.Tensor, boxes: torch.Tensor, masks: torch.Tensor) -> None:
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    dice_loss(model(images, boxes), masks).backward()
    optimiser.step()


@pytest.mark.parametrize("strategy", ["decoder", "full"])
def test_strategy_freezes_or_trains_the_encoders(strategy):
    torch.manual_seed(0)
    model = PolypSAM(build_sam("tiny", image_size=64), strategy=strategy)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, masks = torch.rand(2, 3, 64, 64), torch.zeros(2, 1, 64, 64)
    masks[:, :, 10:40, 10:40] = 1
    one_step(model, images, torch.tensor([[10.0, 10, 40, 40]] * 2), masks)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    encoder = {k for k in before if k.startswith("sam.image_encoder.") and "rel_pos" not in k}
    assert any(k.startswith("sam.mask_decoder.") for k in changed)
    if strategy == "decoder":
        assert not any(k.startswith(("sam.image_encoder.", "sam.prompt_encoder.")) for k in changed)
        assert not model.sam.image_encoder.training and model.sam.mask_decoder.training
    else:
        assert encoder <= changed and model.sam.image_encoder.training


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    sam = build_sam("tiny", image_size=64)
    images, boxes = torch.rand(2, 3, 64, 64), torch.tensor([[5.0, 5, 50, 40], [0, 10, 30, 60]])
    masks = (torch.rand(2, 1, 64, 64) > 0.5).float()
    grads = []
    for ckpt in (False, True):
        model = PolypSAM(sam, strategy="full", grad_checkpointing=ckpt).train()
        model.zero_grad()
        dice_loss(model(images, boxes), masks).backward()
        grads.append(model.sam.image_encoder.blocks[0].attn.qkv.weight.grad.clone())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])


def test_bad_options_are_config_errors(sam):
    with pytest.raises(ConfigError, match="strategy"):
        PolypSAM(sam, strategy="adapter")
    with pytest.raises(ConfigError, match="preprocess"):
        PolypSAM(sam, preprocess="imagenet")
    with pytest.raises(ConfigError, match="boxes must be"):
        PolypSAM(sam)(torch.rand(2, 3, 32, 32), torch.zeros(3, 4))


def test_fused_attention_matches_meta_blocks():
    torch.manual_seed(0)
    sam = build_sam("tiny", image_size=96)  # 6x6 grid, window 4: padded windows and a global block
    for block in sam.image_encoder.blocks:
        torch.nn.init.normal_(block.attn.rel_pos_h, std=0.5)
        torch.nn.init.normal_(block.attn.rel_pos_w, std=0.5)
    images, boxes = torch.rand(2, 3, 96, 80), torch.tensor([[5.0, 5, 50, 40], [0, 10, 30, 60]])
    outs, grads = [], []
    for fast in (False, True):
        model = PolypSAM(sam, strategy="full", fast_attention=fast).train()
        model.zero_grad()
        out = model(images, boxes)
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append(sam.image_encoder.blocks[1].attn.rel_pos_h.grad.clone())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-3, atol=1e-6)
