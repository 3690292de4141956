"""Splits: GMSRF 80/10/10 stored under the root, shipped PraNet / official Kvasir lists, Polyp-SAM 80/20."""
import os
import warnings

import pytest

from polyplib.data import DataWarning, get_split, load_dataset
from polyplib.data.splits import split_dir
from polyplib.errors import ConfigError, DataError
from test_data_layouts import write_pair


@pytest.fixture
def colondb(tmp_path):
    """A 50-pair CVC-ColonDB copy under tmp_path."""
    for index in range(1, 51):
        write_pair(tmp_path / "CVC-ColonDB", str(index), hw=(24, 32))
    return tmp_path


def _disjoint_cover(split: dict[str, list[str]], ids: set[str]) -> bool:
    parts = [set(part) for part in split.values()]
    return sum(map(len, parts)) == len(set().union(*parts)) and set().union(*parts) == ids


def test_gmsrf_split_sizes_disjoint_and_written_under_root(colondb):
    split = get_split("cvc-colondb", "gmsrf", root=colondb)
    assert {k: len(v) for k, v in split.items()} == {"train": 40, "val": 5, "test": 5}
    assert _disjoint_cover(split, {str(i) for i in range(1, 51)})
    folder = colondb / "polyplib-splits" / "gmsrf" / "cvc-colondb" / "seed0"
    assert (folder / "test.txt").read_text().split() == split["test"]
    assert get_split("cvc-colondb", "gmsrf", root=colondb, seed=1) != split
    dataset = load_dataset("cvc-colondb", root=colondb, split="val", image_size=32)
    assert dataset.ids == split["val"]


def test_gmsrf_split_is_read_back_from_its_files(colondb):
    first = get_split("cvc-colondb", "gmsrf", root=colondb)
    folder = split_dir("cvc-colondb", 0, colondb)
    moved = first["train"][0]
    (folder / "train.txt").write_text("".join(f"{i}\n" for i in first["train"][1:]))
    (folder / "test.txt").write_text("".join(f"{i}\n" for i in first["test"] + [moved]))
    again = get_split("cvc-colondb", "gmsrf", root=colondb)
    assert moved in again["test"] and moved not in again["train"]
    write_pair(colondb / "CVC-ColonDB", "51")
    with pytest.warns(DataWarning, match=r"1 pairs are in no split .* \['51'\]"):
        assert get_split("cvc-colondb", "gmsrf", root=colondb) == again
    (colondb / "CVC-ColonDB" / "images" / "7.png").unlink()
    with pytest.raises(DataError, match=r"list 1 ids absent from cvc-colondb \(e.g. \['7'\]\)"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            load_dataset("cvc-colondb", root=colondb, split="train")


def test_read_only_root_keeps_split_files_in_the_splits_folder(colondb, tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("splits")
    monkeypatch.setenv("POLYPLIB_SPLITS", str(elsewhere))
    os.chmod(colondb, 0o555)
    try:
        split = get_split("cvc-colondb", "gmsrf", root=colondb)
        assert not (colondb / "polyplib-splits").exists()
        assert [p.read_text().split() for p in sorted(elsewhere.rglob("test.txt"))] == [split["test"]]
        assert get_split("cvc-colondb", "gmsrf", root=colondb) == split
    finally:
        os.chmod(colondb, 0o755)


def test_shipped_lists_have_the_published_sizes():
    sizes = {name: {k: len(v) for k, v in get_split(name, "pranet").items()}
             for name in ("kvasir-seg", "cvc-clinicdb", "cvc-colondb", "etis", "cvc-300", "pranet-train")}
    assert sizes == {"kvasir-seg": {"train": 900, "test": 100}, "cvc-clinicdb": {"train": 550, "test": 62},
                     "cvc-colondb": {"test": 380}, "etis": {"test": 196}, "cvc-300": {"test": 60},
                     "pranet-train": {"train": 1450}}
    pranet, official = get_split("kvasir-seg", "pranet"), get_split("kvasir-seg", "kvasir-official")
    assert {k: len(v) for k, v in official.items()} == {"train": 880, "val": 120}
    assert not set(pranet["train"]) & set(pranet["test"]) and not set(official["train"]) & set(official["val"])
    assert set(pranet["train"]) | set(pranet["test"]) == set(official["train"]) | set(official["val"])
    clinic = get_split("cvc-clinicdb", "pranet")
    assert len(set(clinic["train"]) | set(clinic["test"])) == 612


def test_polyp_sam_split_is_80_20_seed_42_and_stable():
    ids = [str(i) for i in range(1, 551)] + [f"cju{i:05d}" for i in range(900)]
    split = get_split("pranet-train", "polyp-sam", ids=ids)
    assert {k: len(v) for k, v in split.items()} == {"train": 1160, "val": 290}
    assert _disjoint_cover(split, set(ids))
    assert get_split("pranet-train", "polyp-sam", ids=list(reversed(ids))) == split
    assert get_split("pranet-train", "polyp-sam", ids=ids, seed=42) == split
    assert get_split("pranet-train", "polyp-sam", ids=ids, seed=0) != split


def test_synthpolyp_gmsrf_split_and_bad_requests(tmp_path):
    split = get_split("synthpolyp", "gmsrf", n=20, centre="B")
    assert {k: len(v) for k, v in split.items()} == {"train": 16, "val": 2, "test": 2}
    assert _disjoint_cover(split, {f"B{i:04d}" for i in range(20)})
    assert load_dataset("synthpolyp", split="test", n=20, centre="B", image_size=32).ids == split["test"]
    with pytest.raises(ConfigError, match="unknown split protocol 'random'"):
        get_split("synthpolyp", "random")
    with pytest.raises(ConfigError, match="split 'test' does not exist .* available: train, val"):
        load_dataset("synthpolyp", split="test", protocol="polyp-sam", n=10)
    with pytest.raises(ConfigError, match="only for kvasir-seg"):
        get_split("cvc-colondb", "kvasir-official")


def test_pranet_split_on_a_partial_copy_says_what_is_missing(tmp_path):
    test_ids = get_split("kvasir-seg", "pranet")["test"]
    for stem in test_ids[:5]:
        write_pair(tmp_path / "TestDataset" / "Kvasir", stem)
    with pytest.raises(DataError, match=r"95 of 100 ids of split 'test' \(protocol 'pranet'\) are absent"):
        load_dataset("kvasir-seg", root=tmp_path, split="test", protocol="pranet")


@pytest.mark.realdata
def test_real_data_shipped_splits(shared_data):
    assert len(load_dataset("kvasir-seg", shared_data, "test", protocol="pranet", check=False)) == 100
    assert len(load_dataset("kvasir-seg", shared_data, "val", protocol="kvasir-official", check=False)) == 120
    assert len(load_dataset("cvc-colondb", shared_data, "test", protocol="pranet", check=False)) == 380
