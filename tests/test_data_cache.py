"""prepare_cache: a resized PNG copy that is itself a data root with the same ids, splits, boxes and original sizes."""
import json

import cv2
import pytest
import torch

from polyplib.data import get_split, list_datasets, load_dataset, prepare_cache
from polyplib.errors import ConfigError
from test_data_layouts import write_pair


@pytest.fixture
def kvasir(tmp_path):
    """Ten Kvasir-SEG-layout JPEG pairs at 40x48 with a kavsir_bboxes.json."""
    root = tmp_path / "root"
    for index in range(10):
        write_pair(root / "Kvasir-SEG", f"cju{index:03d}", ".jpg", hw=(40, 48))
    bbox = {"label": "polyp", "xmin": 6, "ymin": 4, "xmax": 22, "ymax": 14}
    boxes = {"cju001": {"height": 40, "width": 48, "bbox": [bbox]}}
    (root / "Kvasir-SEG" / "kavsir_bboxes.json").write_text(json.dumps(boxes))
    return root


def test_cache_is_a_data_root_with_identical_ids_and_splits(kvasir, tmp_path):
    split = get_split("kvasir-seg", "gmsrf", root=kvasir)
    out = prepare_cache("kvasir-seg", tmp_path / "cache", root=kvasir, image_size=32)
    assert out == tmp_path / "cache"
    assert cv2.imread(str(out / "Kvasir-SEG" / "images" / "cju004.png")).shape == (32, 32, 3)
    cached = load_dataset("kvasir-seg", root=out, image_size=32)
    original = load_dataset("kvasir-seg", root=kvasir, image_size=32)
    assert cached.ids == original.ids
    assert get_split("kvasir-seg", "gmsrf", root=out) == split
    sample, reference = cached[3], original[3]
    assert sample["orig_size"] == (40, 48) and sample["id"] == "cju003"
    assert torch.equal(sample["mask"], reference["mask"])
    assert (sample["image"] - reference["image"]).abs().max() <= 1 / 255 + 1e-6
    assert cached.annotated_boxes["cju001"].tolist() == [[6, 4, 22, 14]]
    assert [row["pairs"] for row in list_datasets(out) if row["name"] == "kvasir-seg"] == [10]


def test_cache_of_one_split_holds_only_that_split(kvasir, tmp_path):
    test_ids = get_split("kvasir-seg", "gmsrf", root=kvasir)["test"]
    out = prepare_cache("kvasir-seg", tmp_path / "cache", root=kvasir, image_size=24, split="test")
    assert load_dataset("kvasir-seg", root=out, image_size=None).ids == test_ids
    assert load_dataset("kvasir-seg", root=out, split="test").ids == test_ids


def test_cache_refuses_generated_data():
    with pytest.raises(ConfigError, match="synthpolyp is generated in memory"):
        prepare_cache("synthpolyp", "unused")


def test_jpeg_cache_is_smaller_and_close(kvasir, tmp_path):
    png = prepare_cache("kvasir-seg", tmp_path / "png", root=kvasir, image_size=48)
    jpg = prepare_cache("kvasir-seg", tmp_path / "jpg", root=kvasir, image_size=48, image_format="jpg")
    size = {out: sum(p.stat().st_size for p in (out / "Kvasir-SEG" / "images").iterdir()) for out in (png, jpg)}
    assert size[jpg] < size[png]
    lossless, lossy = load_dataset("kvasir-seg", root=png)[0], load_dataset("kvasir-seg", root=jpg)[0]
    assert torch.equal(lossless["mask"], lossy["mask"])
    assert 0 < (lossless["image"] - lossy["image"]).abs().mean() < 0.05
    with pytest.raises(ConfigError, match="image_format must be one of"):
        prepare_cache("kvasir-seg", tmp_path / "x", root=kvasir, image_format="gif")


def test_cache_with_original_training_files_trains_and_tests_exactly_as_the_dataset(kvasir, tmp_path):
    """Random crops are taken at the original resolution: the training split keeps its files, the rest is lossless
    WebP at the training size, where the loader's resize changes nothing."""
    split = get_split("kvasir-seg", "gmsrf", root=kvasir)
    out = prepare_cache("kvasir-seg", tmp_path / "c", root=kvasir, image_size=24, image_format="webp",
                        originals="train")
    names = {p.name for p in (out / "Kvasir-SEG" / "images").iterdir()}
    assert names == {f"{i}.jpg" for i in split["train"]} | {f"{i}.webp" for i in split["val"] + split["test"]}
    for part, augment in (("train", True), ("val", False), ("test", False)):
        cached = load_dataset("kvasir-seg", root=out, split=part, image_size=24, augment=augment, seed=5)
        original = load_dataset("kvasir-seg", root=kvasir, split=part, image_size=24, augment=augment, seed=5)
        for i in range(len(original)):
            assert torch.equal(cached[i]["image"], original[i]["image"])
            assert torch.equal(cached[i]["mask"], original[i]["mask"])
    plain = prepare_cache("kvasir-seg", tmp_path / "p", root=kvasir, image_size=24)
    crops = load_dataset("kvasir-seg", root=plain, split="train", image_size=24, augment=True, seed=5)
    reference = load_dataset("kvasir-seg", root=kvasir, split="train", image_size=24, augment=True, seed=5)
    assert any(not torch.equal(crops[i]["image"], reference[i]["image"]) for i in range(len(reference)))
    with pytest.raises(ConfigError, match="originals='training'.*available: train, val, test"):
        prepare_cache("kvasir-seg", tmp_path / "x", root=kvasir, image_size=24, originals="training")
    native, reference = (load_dataset("kvasir-seg", root=r, image_size=None) for r in (out, kvasir))
    for i in range(len(reference)):  # evaluation's original-resolution masks: every split, the originals' binarised
        assert torch.equal(native[i]["mask"], reference[i]["mask"])
    with pytest.raises(ConfigError, match="binarised at grey > 127; use the dataset itself"):
        load_dataset("kvasir-seg", root=out, image_size=None, mask_threshold=0)


def test_a_cache_without_its_original_masks_refuses_original_resolution_reading(kvasir, tmp_path):
    import shutil

    from polyplib.errors import DataError

    out = prepare_cache("kvasir-seg", tmp_path / "c", root=kvasir, image_size=24)
    shutil.rmtree(out / "Kvasir-SEG" / "masks_orig")
    assert len(load_dataset("kvasir-seg", root=out, image_size=24)) == 10  # at the cached size it is complete
    with pytest.raises(DataError, match="without masks_orig/: original-resolution metrics would be scored at the"):
        load_dataset("kvasir-seg", root=out, image_size=None)


def test_pranet_evaluation_on_a_cache_equals_evaluation_on_the_original_data(kvasir, tmp_path):
    """The cache keeps the original-resolution masks losslessly (the JPEG masks' grey levels included)."""
    import numpy as np

    from polyplib.data.io import read_mask
    from polyplib.engine.evaluate import evaluate
    from polyplib.models import create_model

    out = prepare_cache("kvasir-seg", tmp_path / "cache", root=kvasir, image_size=32)
    original = load_dataset("kvasir-seg", root=kvasir, image_size=None)
    cached = load_dataset("kvasir-seg", root=out, image_size=None)
    for i in range(len(original)):
        assert torch.equal(cached[i]["mask"], original[i]["mask"]) and cached[i]["mask"].shape == (1, 40, 48)
    pair = original.pairs[2]
    grey = cv2.imread(str(out / "Kvasir-SEG" / "masks_orig" / f"{pair.id}.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(grey > 127, read_mask(pair.mask_path).astype(bool))
    torch.manual_seed(0)
    model = create_model("unet-original", base_channels=4, depth=2).eval()
    kw = dict(image_size=32, batch_size=4, device="cpu", overlays=False, progress=False)
    ref = evaluate(model, "kvasir-seg", out_dir=tmp_path / "ev-orig", root=kvasir, **kw).per_image
    got = evaluate(model, "kvasir-seg", out_dir=tmp_path / "ev-cache", root=out, **kw).per_image
    assert list(got["id"]) == list(ref["id"])
    for column in ("meanDice", "meanIoU", "Sm", "wFm", "meanEm", "MAE", "maxDice", "dice"):
        np.testing.assert_array_equal(got[column].to_numpy(), ref[column].to_numpy(), err_msg=column)
    assert ref["meanDice"].std() > 0
