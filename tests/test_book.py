"""Book machinery: profiles, recorded results with provenance, the papers' numbers, the papermill runner."""
import argparse
import json
import os

import nbformat
import pandas as pd
import pytest

from polyplib import book, paper_results
from polyplib.campaigns.profiles import PROFILES
from polyplib.errors import ConfigError, DataError


def test_profiles_smoke_is_cpu_synthetic_lite_is_cpu_real_and_full_uses_real_data():
    smoke, lite, full = book.profile_settings("smoke"), book.profile_settings("lite"), book.profile_settings("full")
    assert lite.device == "cpu" and lite.image_size == 128 and lite.source == "kvasir-seg"
    assert lite.test_sets == ("kvasir-seg", "cvc-colondb") and lite.from_scratch and len(lite.seeds) == 3
    assert smoke.device == "cpu" and smoke.image_size <= 64 and smoke.epochs <= 2
    assert all(name.startswith("synthpolyp") for name in (*smoke.sources, *smoke.test_sets))
    assert full.device == "cuda" and full.epochs is None and len(full.seeds) >= 3
    assert not any(name.startswith("synthpolyp") for name in full.test_sets)


def test_profile_overrides_none_keeps_default_and_lists_become_tuples():
    s = book.profile_settings("smoke", image_size=None, epochs=1, seeds=[3, 4], data_root="/data")
    assert s.image_size == PROFILES["smoke"].image_size
    assert s.epochs == 1 and s.seeds == (3, 4) and s.data_root == "/data"
    with pytest.raises(ConfigError, match="unknown book profile 'fast'"):
        book.profile_settings("fast")
    with pytest.raises(ConfigError, match="unknown profile setting\\(s\\) \\['epoch'\\]"):
        book.profile_settings("smoke", epoch=3)


def test_setup_notebook_uses_the_profile_cpu_threads(monkeypatch):
    import torch

    monkeypatch.setenv("TQDM_DISABLE", "0")  # restored after the test
    before, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        book.setup_notebook(book.profile_settings("smoke", cpu_threads=1))
        assert torch.get_num_threads() == 1
        book.setup_notebook(book.profile_settings("smoke", cpu_threads=2))
        assert torch.get_num_threads() == min(2, os.cpu_count())
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(deterministic)


def test_smoke_gmsrf_is_narrow():
    import torch

    from polyplib.models import create_model

    smoke = book.profile_settings("smoke")
    with torch.device("meta"):
        model = create_model("gmsrf", **book.model_options(smoke, "gmsrf"))
        paper = create_model("gmsrf", variant="paper")
    assert sum(p.numel() for p in model.parameters()) < 0.3 * sum(p.numel() for p in paper.parameters())


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
    assert again.cells[-1].outputs[0]["text"] == f"smoke {PROFILES['smoke'].image_size}\n"
    with pytest.raises(ConfigError, match="notebook .*02_missing.ipynb not found"):
        book.execute_notebooks("smoke", ["02_missing"], out_dir=tmp_path / "out", src_dir=src)


def test_cli_parses_book_options():
    parser = argparse.ArgumentParser()
    book.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["book", "--profile", "lite", "--no-execute", "--notebooks", "01_data", "--run-missing"])
    assert args.profile == "lite" and args.execute is False and args.notebooks == ["01_data"] and args.run_missing
    from polyplib.book.runner import _cli_book

    assert args.func is _cli_book
    with pytest.raises(SystemExit):
        parser.parse_args(["book", "--profile", "gpu"])


def test_dataset_keys_and_split_sizes_of_synthetic_centres():
    smoke = book.profile_settings("smoke")
    assert book.dataset_key("synthpolyp-B", smoke) == ("synthpolyp", {"centre": "B", "n": smoke.synth_n})
    assert book.dataset_key("kvasir-seg", smoke) == ("kvasir-seg", {})
    sizes = book.split_sizes(smoke, keys=("synthpolyp-A",), protocols=("gmsrf", "polyp-sam")).set_index("protocol")
    n = smoke.synth_n
    assert sizes.loc["gmsrf", ["train", "val", "test"]].sum() == n and sizes.loc["gmsrf", "train"] == round(0.8 * n)
    assert sizes.loc["polyp-sam", "val"] == round(0.2 * n) and pd.isna(sizes.loc["polyp-sam", "test"])
    shipped = book.split_sizes(smoke, keys=("kvasir-seg", "etis"), protocols=("pranet", "kvasir-official"))
    assert shipped.iloc[0][["dataset", "protocol", "train", "test"]].tolist() == ["kvasir-seg", "pranet", 900, 100]
    assert shipped.set_index(["dataset", "protocol"]).loc[("etis", "pranet"), "test"] == 196
    assert len(shipped) == 3  # kvasir-official does not apply to ETIS


def test_dataset_statistics_measures_area_count_box_and_contrast():
    import torch

    image = torch.full((3, 10, 20), 0.25)
    mask = torch.zeros(1, 10, 20)
    mask[0, 1:3, 1:3] = 1  # 4 px
    mask[0, 5:9, 10:14] = 1  # 16 px, a second polyp
    image[:, mask[0] > 0] = 0.75
    stats = book.dataset_statistics([{"image": image, "mask": mask, "id": "x", "dataset": "toy"}])
    row = stats.iloc[0]
    assert (row.height, row.width, row.polyps) == (10, 20, 2)
    assert row.area_fraction == pytest.approx(20 / 200)
    assert row.box_fraction == pytest.approx((14 - 1) * (9 - 1) / 200)  # tight box over both polyps
    assert row.contrast == pytest.approx(0.5) and row.brightness == pytest.approx(0.25 + 0.5 * 0.1)


def test_trace_gmsrf_hooks_every_stage_and_gate():
    import torch

    from polyplib.models import create_model

    torch.manual_seed(0)
    model = create_model("gmsrf", variant="paper", backbone="resnet18")
    trace = book.trace_gmsrf(model, torch.rand(3, 64, 64))
    rfb = trace.shapes[trace.shapes.stage == "rfb"]
    assert rfb.channels.tolist() == [32, 64, 128, 256] and rfb.height.tolist() == [16, 8, 4, 2]
    assert trace.shapes.iloc[-1][["channels", "height", "width"]].tolist() == [1, 64, 64]
    # 2 modules x 3 fusion layers (l = 2..4) x 4 scales, each with a CMSA map and an MSFS gate
    assert len(trace.cmsa) == len(trace.msfs) == 24
    gate = trace.cmsa[(2, 4, 1)]
    assert gate.shape == (16, 16) and 1.0 <= gate.min() and gate.max() <= 2.0
    assert trace.msfs[(1, 2, 3)].shape == (128,)
    with pytest.raises(ConfigError, match="needs a GMSRF-Net"):
        book.trace_gmsrf(torch.nn.Linear(2, 2), torch.rand(3, 8, 8))


def test_block_costs_add_up_to_the_total():
    import torch

    from polyplib.models import create_model

    with torch.device("meta"):
        model = create_model("gmsrf", variant="paper", backbone="resnet18", num_modules=1)
    costs = book.block_costs(model, 64).set_index("block")
    total = costs.loc["total"]
    assert costs.drop("total")["params (M)"].sum() == pytest.approx(total["params (M)"])
    assert costs.drop("total")["GFLOPs"].sum() == pytest.approx(total["GFLOPs"], rel=1e-6)
    assert list(costs.index[:3]) == ["norm", "encoder", "reducers.0"] and "gmsrf.1" not in costs.index
    # doubling the side about quadruples the module's FLOPs (convolutions; the MSFS linears stay fixed)
    bigger = book.block_costs(model, 128).set_index("block").loc["gmsrf.0", "GFLOPs"]
    assert bigger == pytest.approx(4 * costs.loc["gmsrf.0", "GFLOPs"], rel=0.01)
    assert bigger != pytest.approx(4 * costs.loc["gmsrf.0", "GFLOPs"], rel=1e-6)


def test_run_book_without_execution_builds_every_chapter(tmp_path):
    html = book.run_book(execute=False, out=tmp_path)
    assert html == tmp_path / "_build" / "html"
    for name in book.NOTEBOOKS:
        page = (html / "notebooks" / f"{name}.html").read_text()
        assert "<h1>" in page and 'data-mode' in page
    refs = (html / "book" / "references.html").read_text()
    assert "Srivastava" in refs and "Polyp-SAM" in refs
    assert not (book.REPO_ROOT / "notebooks" / "_build").exists()


def test_broken_reference_fails_the_build(tmp_path):
    stage = book.stage_book(tmp_path / "src")
    nb_path = stage / "notebooks" / "09_summary.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("See {cite}`no-such-paper-2099`."))
    nbformat.write(nb, nb_path)
    with pytest.raises(ConfigError, match="jupyter-book build .* failed"):
        book.build_html(stage, tmp_path)
