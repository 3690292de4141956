"""Box prompts from masks (tight, per component, jitter) and deterministic GMSRF augmentation."""
import numpy as np
import pytest
import torch

from polyplib.data import jitter_box, load_dataset, mask_to_box, mask_to_boxes
from polyplib.data.transforms import build_transform
from polyplib.errors import ConfigError
from test_data_layouts import write_pair


@pytest.fixture
def two_blobs() -> np.ndarray:
    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 10:20] = 1    # 100 px, box (10, 5, 20, 15)
    mask[25:38, 30:47] = 1   # 221 px, box (30, 25, 47, 38)
    return mask


def test_tight_box_is_xyxy_with_exclusive_far_corner(two_blobs):
    one = np.zeros((40, 50), bool)
    one[7, 3:9] = True
    np.testing.assert_array_equal(mask_to_box(one), [3, 7, 9, 8])
    np.testing.assert_array_equal(mask_to_box(two_blobs), [10, 5, 47, 38])
    np.testing.assert_array_equal(mask_to_box(torch.from_numpy(two_blobs)[None].float()), [10, 5, 47, 38])
    assert mask_to_box(np.zeros((8, 8))) is None


def test_one_box_per_8_connected_component_largest_first(two_blobs):
    np.testing.assert_array_equal(mask_to_boxes(two_blobs), [[30, 25, 47, 38], [10, 5, 20, 15]])
    diagonal = np.eye(6, dtype=np.uint8)
    np.testing.assert_array_equal(mask_to_boxes(diagonal), [[0, 0, 6, 6]])
    empty = mask_to_boxes(np.zeros((8, 8)))
    assert empty.shape == (0, 4) and empty.dtype == np.float32
    with pytest.raises(ConfigError, match="mask must be"):
        mask_to_box(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("box", [(10, 5, 20, 15), (0, 0, 50, 40), (48, 0, 50, 2), (0, 37, 3, 40)])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 3.0])
def test_jitter_stays_inside_the_image_and_non_degenerate(box, fraction):
    rng = np.random.default_rng(0)
    boxes = np.stack([jitter_box(np.array(box, np.float32), fraction, (40, 50), rng) for _ in range(300)])
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 50).all() and (boxes[:, 3] <= 40).all()
    assert (boxes[:, 2] - boxes[:, 0] >= 1 - 1e-5).all() and (boxes[:, 3] - boxes[:, 1] >= 1 - 1e-5).all()
    assert len(np.unique(boxes, axis=0)) > 100


def test_jitter_moves_each_side_by_at_most_the_fraction():
    rng = np.random.default_rng(1)
    box = np.array([100, 100, 200, 150], np.float32)
    moves = np.stack([jitter_box(box, 0.1, (512, 512), rng) - box for _ in range(500)])
    limit = np.array([10, 5, 10, 5])
    assert (np.abs(moves) <= limit + 1e-4).all() and (np.abs(moves).max(0) > 0.8 * limit).all()
    np.testing.assert_array_equal(jitter_box(box, 0.0, (512, 512), rng), box)
    with pytest.raises(ConfigError):
        jitter_box(box, -0.1, (512, 512), rng)


def test_augmentation_is_a_function_of_seed_epoch_index():
    dataset = load_dataset("synthpolyp", n=6, image_size=64, augment=True, seed=3)
    first = [dataset[i]["image"] for i in range(6)]
    assert all(torch.equal(first[i], dataset[i]["image"]) for i in range(6))
    twin = load_dataset("synthpolyp", n=6, image_size=64, augment=True, seed=3)
    assert all(torch.equal(first[i], twin[i]["image"]) for i in range(6))
    dataset.set_epoch(1)
    assert sum(not torch.equal(first[i], dataset[i]["image"]) for i in range(6)) >= 5
    dataset.set_epoch(0)
    assert torch.equal(first[4], dataset[4]["image"])
    other = load_dataset("synthpolyp", n=6, image_size=64, augment=True, seed=4)
    assert sum(not torch.equal(first[i], other[i]["image"]) for i in range(6)) >= 5
    plain = load_dataset("synthpolyp", n=6, image_size=64)
    assert sum(not torch.equal(first[i], plain[i]["image"]) for i in range(6)) >= 5


def test_augmentation_moves_image_and_mask_together(tmp_path):
    for stem in map(str, range(8)):
        write_pair(tmp_path / "CVC-300", stem, hw=(48, 64))
    dataset = load_dataset("cvc-300", root=tmp_path, image_size=32, augment=True)
    for index in range(8):
        sample = dataset[index]
        assert set(sample["mask"].unique().tolist()) <= {0.0, 1.0}
        assert sample["image"].shape == (3, 32, 32) and sample["mask"].shape == (1, 32, 32)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    mask = np.kron(rng.random((6, 8)) > 0.5, np.ones((8, 8))).astype(np.uint8)
    image[..., 0] = mask * 255
    transform = build_transform(32, augment=True)
    for seed in range(10):
        transform.set_random_seed(seed)
        out = transform(image=image, mask=mask)
        red = out["image"][..., 0].astype(float)
        assert red[out["mask"] == 1].mean() - red[out["mask"] == 0].mean() > 80


def test_image_size_none_keeps_resolution_and_bad_sizes_are_refused():
    assert load_dataset("synthpolyp", n=1, image_size=None)[0]["image"].shape == (3, 240, 320)
    with pytest.raises(ConfigError, match="image_size must be"):
        load_dataset("synthpolyp", n=1, image_size=3)
    with pytest.raises(ConfigError, match="augment=True needs an image_size"):
        load_dataset("synthpolyp", n=1, image_size=None, augment=True)


def test_worker_processes_reproduce_the_single_process_samples():
    dataset = load_dataset("synthpolyp", n=4, image_size=32, augment=True, seed=5)
    dataset.set_epoch(2)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2)
    batches = list(loader)
    images = torch.cat([batch["image"] for batch in batches])
    assert torch.equal(images, torch.stack([dataset[i]["image"] for i in range(4)]))
    assert batches[1]["id"] == ["A0002", "A0003"] and batches[0]["orig_size"][0].tolist() == [240, 240]
