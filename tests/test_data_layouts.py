"""polyplib.data registry: every on-disk layout, the data root, and bad input (fixtures written here)."""
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from polyplib.data import DataWarning, data_root, list_datasets, load_dataset, locate
from polyplib.errors import ConfigError, DataError

BOX = (6, 4, 22, 14)  # x0, y0, x1, y1 of the polyp rectangle in every fixture mask


def write_pair(folder: Path, stem: str, ext: str = ".png", hw: tuple[int, int] = (24, 32), layout=("images", "masks"),
               mask_ext: str | None = None, fill: int = 255, seed: int = 0) -> None:
    """One image (noise) + mask (rectangle BOX of value `fill`) under folder/<layout>."""
    rng = np.random.default_rng([seed, len(stem), ord(stem[-1])])
    image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    mask = np.zeros(hw, np.uint8)
    mask[BOX[1]:BOX[3], BOX[0]:BOX[2]] = fill
    for sub, array, suffix in ((layout[0], image, ext), (layout[1], mask, mask_ext or ext)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(folder / sub / f"{stem}{suffix}"), array)


LAYOUTS = [
    ("cvc-clinicdb", "CVC-ClinicDB", ("Original", "Ground Truth"), ".tif"),
    ("cvc-clinicdb", "CVC-ClinicDB", ("PNG/Original", "PNG/Ground Truth"), ".png"),
    ("cvc-clinicdb", "TestDataset/CVC-ClinicDB", ("images", "masks"), ".png"),
    ("cvc-colondb", "CVC-ColonDB", ("images", "masks"), ".tiff"),
    ("cvc-colondb", "TestDataset/CVC-ColonDB", ("images", "masks"), ".png"),
    ("etis", "TestDataset/ETIS-LaribPolypDB", ("images", "masks"), ".png"),
    ("etis", "ETIS-LaribPolypDB", ("ETIS-LaribPolypDB", "gt"), ".tif"),
    ("cvc-300", "TestDataset/CVC-300", ("images", "masks"), ".png"),
    ("pranet-train", "TrainDataset", ("images", "masks"), ".png"),
    ("pranet-train", "TrainDataset", ("image", "masks"), ".png"),
    ("kvasir-seg", "TestDataset/Kvasir", ("images", "masks"), ".png"),
]


@pytest.mark.parametrize("name,folder,layout,ext", LAYOUTS)
def test_layouts_pair_by_stem_in_natural_order(tmp_path, name, folder, layout, ext):
    for stem in ("10", "2", "1"):
        write_pair(tmp_path / folder, stem, ext, layout=layout)
    dataset = load_dataset(name, root=tmp_path, image_size=None)
    assert locate(name, tmp_path)[0] == tmp_path / folder
    assert dataset.ids == ["1", "2", "10"]
    sample = dataset[2]
    assert sample["image"].shape == (3, 24, 32) and sample["orig_size"] == (24, 32)
    assert sample["mask"].shape == (1, 24, 32)
    assert sample["mask"].sum().item() == (BOX[2] - BOX[0]) * (BOX[3] - BOX[1])
    assert sample["dataset"] == name and sample["id"] == "10"


def test_original_etis_ground_truth_names_carry_a_p_prefix(tmp_path):
    folder = tmp_path / "ETIS-LaribPolypDB"
    for stem in ("1", "2"):
        write_pair(folder, stem, ".tif", layout=("ETIS-LaribPolypDB", "Ground Truth"))
        (folder / "Ground Truth" / f"{stem}.tif").rename(folder / "Ground Truth" / f"p{stem}.tif")
    dataset = load_dataset("etis", root=tmp_path, image_size=None)
    assert dataset.ids == ["1", "2"] and dataset.pairs[1].mask_path.name == "p2.tif"
    assert dataset[1]["mask"].sum().item() == 160


def test_kvasir_official_zip_layout_jpeg_masks_and_bboxes(tmp_path):
    folder = tmp_path / "Kvasir-SEG"
    stems = ["cju0qkwl35piu0993l0dewei2", "cju0qoxqj9q6s0835b43399p4"]
    for stem in stems:
        write_pair(folder, stem, ".jpg", hw=(40, 48))
    bbox = {"label": "polyp", "xmin": 6, "ymin": 4, "xmax": 22, "ymax": 14}
    boxes = {stems[0]: {"height": 40, "width": 48, "bbox": [bbox]}}
    (folder / "kavsir_bboxes.json").write_text(json.dumps(boxes))
    grey = cv2.imread(str(folder / "masks" / f"{stems[0]}.jpg"), cv2.IMREAD_GRAYSCALE)
    assert len(np.unique(grey)) > 2, "fixture must carry JPEG grey levels"
    dataset = load_dataset("kvasir-seg", root=tmp_path, image_size=None)
    mask = dataset[0]["mask"]
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert abs(mask.sum().item() - 160) <= 8  # 16x10 rectangle, JPEG ringing binarised away at > 127
    np.testing.assert_array_equal(dataset.annotated_boxes[stems[0]], [[6, 4, 22, 14]])
    resized = load_dataset("kvasir-seg", root=tmp_path, image_size=64)[1]
    assert resized["image"].shape == (3, 64, 64) and resized["orig_size"] == (40, 48)
    assert 0.0 <= resized["image"].min() and resized["image"].max() <= 1.0


def test_masks_stored_as_zero_one_are_binarised_above_zero(tmp_path):
    write_pair(tmp_path / "CVC-300", "1", fill=1)
    assert load_dataset("cvc-300", root=tmp_path, image_size=None)[0]["mask"].sum().item() == 160


def test_root_from_argument_then_env_then_default(tmp_path, monkeypatch):
    write_pair(tmp_path / "CVC-ColonDB", "1")
    monkeypatch.setenv("POLYPLIB_DATA", str(tmp_path))
    assert data_root() == tmp_path and len(load_dataset("cvc-colondb")) == 1
    assert data_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("POLYPLIB_DATA")
    assert data_root() == Path("~/.cache/polyplib/data").expanduser()


def test_missing_root_and_missing_dataset_say_where_and_how(tmp_path):
    with pytest.raises(DataError) as missing_root:
        load_dataset("kvasir-seg", root=tmp_path / "nowhere")
    text = str(missing_root.value)
    assert "does not exist" in text and "POLYPLIB_DATA" in text and "polyplib datasets download kvasir-seg" in text
    with pytest.raises(DataError) as missing_dataset:
        load_dataset("etis", root=tmp_path)
    assert str(tmp_path / "TestDataset/ETIS-LaribPolypDB") in str(missing_dataset.value)


def test_list_datasets_reports_presence_and_counts(tmp_path):
    for stem in "123":
        write_pair(tmp_path / "TestDataset" / "CVC-300", stem)
    rows = {row["name"]: row for row in list_datasets(tmp_path)}
    assert rows["cvc-300"] == {"name": "cvc-300", "pairs": 3, "path": str(tmp_path / "TestDataset/CVC-300"),
                               "present": True}
    assert rows["kvasir-seg"]["present"] is False and rows["kvasir-seg"]["pairs"] == 0
    assert {"kvasir-seg", "cvc-clinicdb", "cvc-colondb", "etis", "cvc-300", "synthpolyp", "pranet-train"} <= set(rows)


def test_unpaired_files_are_counted_in_a_warning(tmp_path):
    folder = tmp_path / "CVC-ColonDB"
    for stem in ("1", "2", "3"):
        write_pair(folder, stem)
    (folder / "masks" / "3.png").unlink()
    (folder / "images" / "2.png").unlink()
    write_pair(tmp_path / "other", "9")
    (tmp_path / "other" / "masks" / "9.png").rename(folder / "masks" / "9.png")
    with pytest.warns(DataWarning, match=r"1 images without a mask \(e.g. \['3'\]\) and 2 masks without an image"):
        dataset = load_dataset("cvc-colondb", root=tmp_path)
    assert dataset.ids == ["1"]


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif"])
def test_truncated_file_is_an_error_naming_it(tmp_path, ext):
    folder = tmp_path / "CVC-ColonDB"
    write_pair(folder, "1", ext, hw=(64, 64))
    write_pair(folder, "2", ext, hw=(64, 64))
    broken = folder / "masks" / f"2{ext}"
    broken.write_bytes(broken.read_bytes()[: len(broken.read_bytes()) // 2])
    with pytest.raises(DataError, match=str(broken)):
        load_dataset("cvc-colondb", root=tmp_path)
    dataset = load_dataset("cvc-colondb", root=tmp_path, check=False)
    assert dataset[0]["mask"].sum() > 0
    with pytest.raises(DataError, match=str(broken)):
        dataset[1]


def test_size_mismatch_names_both_files(tmp_path):
    folder = tmp_path / "CVC-ColonDB"
    write_pair(folder, "1")
    cv2.imwrite(str(folder / "masks" / "1.png"), np.zeros((20, 32), np.uint8))
    with pytest.raises(DataError) as error:
        load_dataset("cvc-colondb", root=tmp_path)
    assert str(folder / "images" / "1.png") in str(error.value) and str(folder / "masks" / "1.png") in str(error.value)
    assert "24x32" in str(error.value) and "20x32" in str(error.value)


def test_empty_masks_are_kept_with_a_counted_warning(tmp_path):
    folder = tmp_path / "CVC-ColonDB"
    for stem, fill in (("1", 255), ("2", 0), ("3", 100)):  # a 0/100 mask is empty at the threshold of 127
        write_pair(folder, stem, fill=fill)
    with pytest.warns(DataWarning, match=r"2 of 3 masks are empty \(no grey value above the mask threshold 127; "
                                         r"kept\), e.g. \['2', '3'\]; .* need mask_threshold=0"):
        dataset = load_dataset("cvc-colondb", root=tmp_path)
    assert len(dataset) == 3 and dataset[1]["mask"].sum() == 0
    with pytest.warns(DataWarning, match=r"1 of 3 masks are empty \(no grey value above the mask threshold 0"):
        assert load_dataset("cvc-colondb", root=tmp_path, mask_threshold=0)[2]["mask"].sum() > 0


def test_duplicate_ids_and_unknown_names_are_errors(tmp_path):
    folder = tmp_path / "CVC-ColonDB"
    write_pair(folder, "1", ".png")
    write_pair(folder, "1", ".tif")
    with pytest.raises(DataError, match="two files share the id '1'"):
        load_dataset("cvc-colondb", root=tmp_path)
    with pytest.raises(ConfigError, match="known: kvasir-seg"):
        load_dataset("kvasir", root=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['centre'\]"):
        load_dataset("cvc-colondb", root=tmp_path, centre="A")


@pytest.mark.realdata
def test_real_kvasir_and_colondb_through_the_registry(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        kvasir = load_dataset("kvasir-seg", root=shared_data)
        colondb = load_dataset("cvc-colondb", root=shared_data)
    assert (len(kvasir), len(colondb)) == (1000, 380)
    sample = colondb[0]
    assert sample["orig_size"] == (500, 574) and sample["id"] == "1"
    assert set(kvasir[0]["mask"].unique().tolist()) == {0.0, 1.0}
