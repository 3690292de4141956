"""Book machinery: profiles, recorded results with provenance, the papers' numbers, the papermill runner."""
import argparse
import json

import nbformat
import pandas as pd
import pytest

from polyplib import book, paper_results
from polyplib.errors import ConfigError, DataError


def test_profiles_smoke_is_cpu_synthetic_and_full_uses_real_data():
    smoke, full = book.profile_settings("smoke"), book.profile_settings("full")
    assert smoke.device == "cpu" and smoke.image_size <= 64 and smoke.epochs <= 2
    assert all(name.startswith("synthpolyp") for name in (*smoke.sources, *smoke.test_sets))
    assert full.device == "cuda" and full.epochs is None and len(full.seeds) >= 3
    assert not any(name.startswith("synthpolyp") for name in full.test_sets)


def test_profile_overrides_none_keeps_default_and_lists_become_tuples():
    s = book.profile_settings("smoke", image_size=None, epochs=1, seeds=[3, 4], data_root="/data")
    assert s.image_size == book.PROFILES["smoke"].image_size
    assert s.epochs == 1 and s.seeds == (3, 4) and s.data_root == "/data"
    with pytest.raises(ConfigError, match="unknown book profile 'fast'"):
        book.profile_settings("fast")
    with pytest.raises(ConfigError, match="unknown profile setting\\(s\\) \\['epoch'\\]"):
        book.profile_settings("smoke", epoch=3)


def test_record_results_only_for_full_and_round_trips_with_provenance(tmp_path):
    frame = pd.DataFrame({"model": ["gmsrf", "unet"], "seed": [0, 0], "dice": [0.8125, 0.5]})
    assert book.record_results("t", frame, book.profile_settings("smoke"), results_dir=tmp_path) is None
    assert not list(tmp_path.iterdir())
    full = book.profile_settings("full", data_root="/data/polyps")
    path = book.record_results("t", frame, full, data=["Kvasir-SEG"], results_dir=tmp_path)
    assert path == tmp_path / "t.json" and (tmp_path / "t.csv").exists()
    payload = json.loads(path.read_text())
    prov = payload["provenance"]
    assert prov["profile"] == "full" and prov["data"] == ["Kvasir-SEG"] and prov["seeds"] == [0, 1, 2]
    assert prov["data_root"] == "/data/polyps" and len(prov["commit"]) >= 7 and prov["date"].endswith("Z")
    loaded = book.load_results("t", tmp_path)
    pd.testing.assert_frame_equal(loaded, frame)
    assert loaded.attrs["provenance"] == prov
    text, table = book.full_results_markdown("t", tmp_path)
    assert prov["commit"] in text and "Kvasir-SEG" in text and table is not None


def test_missing_and_corrupt_results(tmp_path):
    assert book.load_results("absent", tmp_path) is None
    text, table = book.full_results_markdown("absent", tmp_path)
    assert "no results committed yet" in text and table is None
    (tmp_path / "bad.json").write_text('{"rows": []}')
    with pytest.raises(DataError, match="bad.json is not a polyp-book results file"):
        book.load_results("bad", tmp_path)


def test_paper_tables_match_the_papers_claims():
    t1 = paper_results.paper_table("gmsrf-table-1")
    assert t1.attrs["citation"].startswith("Srivastava") and len(t1) == 24
    unseen = t1[t1.kind == "unseen"].set_index("method")
    # abstract: +8.34% Dice over the best prior method (MSRF-Net) on unseen CVC-ClinicDB, +10.31% on unseen Kvasir-SEG
    assert unseen.loc["GMSRF-Net", "dsc"] - unseen.loc["MSRF-Net", "dsc"] == pytest.approx(0.0834)
    t2 = paper_results.paper_table("gmsrf-table-2").query("kind == 'unseen'").set_index("method")
    assert t2.loc["GMSRF-Net", "dsc"] - t2.loc["MSRF-Net", "dsc"] == pytest.approx(0.1031)
    for name in ("gmsrf-table-1", "gmsrf-table-2"):
        t = paper_results.paper_table(name)
        assert (t.miou <= t.dsc).all()  # per-image IoU never exceeds Dice
    sam1 = paper_results.paper_table("polyp-sam-table-1").pivot(index="test", columns="strategy", values="dsc")
    assert (sam1["full"] >= sam1["decoder"]).all()  # Table 1 caption: full fine-tuning is consistently better
    sam2 = paper_results.paper_table("polyp-sam-table-2").set_index(["method", "test"])
    assert sam2.loc[("Polyp-SAM-B", "CVC-ColonDB"), "dsc"] == 0.894  # Sec. 3.2 text: 89.4% DSC
    sam3 = paper_results.paper_table("polyp-sam-table-3").set_index("method")
    assert sam3.loc["Polyp-SAM-B", "dsc"] == 0.906 and sam3.loc["Polyp-SAM-L", "miou"] == 0.825
    with pytest.raises(ConfigError, match="unknown paper table"):
        paper_results.paper_table("table-9")


def _tiny_notebook(path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\ndata_root = None')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell("from polyplib import book\ns = book.profile_settings(profile)\nprint(s.name, s.image_size)")
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_execute_notebooks_injects_the_profile(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _tiny_notebook(src / "01_tiny.ipynb")
    timings = book.execute_notebooks("full", ["01_tiny"], out_dir=tmp_path / "out", src_dir=src)
    assert set(timings) == {"01_tiny"} and timings["01_tiny"] > 0
    out = nbformat.read(tmp_path / "out" / "01_tiny.ipynb", as_version=4)
    assert "injected-parameters" in out.cells[1].metadata.tags
    assert out.cells[-1].outputs[0]["text"] == "full 256\n"
    # in place under smoke: no injected cell, no papermill timings left behind
    book.execute_notebooks("smoke", ["01_tiny"], out_dir=src, src_dir=src)
    again = nbformat.read(src / "01_tiny.ipynb", as_version=4)
    assert len(again.cells) == 2 and "papermill" not in again.metadata
    assert again.cells[-1].outputs[0]["text"] == f"smoke {book.PROFILES['smoke'].image_size}\n"
    with pytest.raises(ConfigError, match="notebook .*02_missing.ipynb not found"):
        book.execute_notebooks("smoke", ["02_missing"], out_dir=tmp_path / "out", src_dir=src)


def test_cli_parses_book_options():
    parser = argparse.ArgumentParser()
    book.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["book", "--profile", "full", "--no-execute", "--notebooks", "01_data"])
    assert args.profile == "full" and args.execute is False and args.notebooks == ["01_data"]
    assert args.func is book._cli_book
    with pytest.raises(SystemExit):
        parser.parse_args(["book", "--profile", "gpu"])
