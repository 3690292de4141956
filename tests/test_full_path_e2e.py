"""One `full` run of each kind on the CPU, end to end through `polyplib campaign run full` (tiny overrides, generated
weight files in the real formats and cache locations): GMSRF-Net `paper` with its ImageNet encoder, U-Net with smp's,
Polyp-SAM vit_b decoder-only and full at SAM's native 1024 px (one step each; the memory it takes is recorded)."""
import json
from pathlib import Path

import pytest
from fullpath import make_root, sam_weights, smp_weights, timm_weights

from polyplib import cli

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "seeds=[0]", "--set", 'baselines=["unet"]', "--set", "image_size=64", "--set", "sam_jitters=[]",
        "--set", 'recipe={"epochs": 1, "max_steps_per_epoch": 1, "batch_size": 2, "workers": 0}',
        "--set", 'sam_recipe={"epochs": 1, "max_steps_per_epoch": 1, "grad_accum": 1, "warmup_epochs": 0, '
                 '"workers": 0}',
        "--set", 'sam_options={"cache_embeddings": false}']


@pytest.mark.slow
def test_one_full_run_of_each_kind_trains_evaluates_and_stores_on_the_cpu(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as constants

    from polyplib.sam import checkpoints

    hub = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    encoder = timm_weights(hub, "resnet50")
    smp_weights(hub, "resnet34")
    sam_file, md5 = sam_weights(tmp_path / "weights", "vit_b")
    monkeypatch.setenv("POLYPLIB_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setitem(checkpoints.SAM_CHECKPOINTS, "vit_b", (sam_file.name, md5))  # random values: our own md5
    root = make_root(tmp_path / "data", kvasir=8, colondb=1)
    results, before = tmp_path / "results", sorted(REPO.glob("results/**/*.json"))
    common = ["--root", str(root), "--results", str(results), "--work", str(tmp_path / "work"), "--device", "cpu",
              "--threads", "2", *TINY]
    # Polyp-SAM tested on Kvasir-SEG only: every SAM evaluation encodes each image at 1024 px per prompt (~30 s here)
    runs = [["cross-dataset", "--tests", "present"], ["polyp-sam", "--tests", "kvasir-seg"]]

    for campaign in runs:
        assert cli.main(["campaign", "run", "full", *campaign, *common]) == 0
    log = capsys.readouterr()
    assert "2 done, 2 unavailable; 2 run(s) remain" in log.out and "2 done; 0 run(s) remain" in log.out, log.err
    assert "GMSRF-Net cvc-clinicdb 0: unavailable (dataset cvc-clinicdb not found under" in log.err
    stored = {p.parent.name: [] for p in results.glob("full/*/*.json")}
    for path in sorted(results.glob("full/*/*.json")):
        stored[path.parent.name].append(json.loads(path.read_text()))
    assert sorted(stored) == ["cross-dataset", "polyp-sam"] and all(len(v) == 2 for v in stored.values())
    for result in stored["cross-dataset"]:
        assert [t["key"] for t in result["tests"]] == ["kvasir-seg", "cvc-colondb"]
    for result in stored["cross-dataset"] + stored["polyp-sam"]:
        assert all(0 <= t["means"]["dice"] <= 1 and t["n"] == 1 for t in result["tests"])
    gmsrf = next(r for r in stored["cross-dataset"] if r["spec"]["config"]["model"] == "gmsrf")
    assert gmsrf["spec"]["config"]["model_options"]["pretrained"] is True
    unet = next(r for r in stored["cross-dataset"] if r["spec"]["config"]["model"] == "unet")
    assert unet["spec"]["config"]["model_options"]["encoder_weights"] == "imagenet"
    assert encoder["conv1.weight"].shape == (64, 3, 7, 7)
    for result in stored["polyp-sam"]:
        assert [(t["key"], t["prompt"]) for t in result["tests"]] == [("kvasir-seg", p) for p in ("gt-box", "cascade",
                                                                                                  "box-fill")]
        assert result["spec"]["config"]["image_size"] == 1024 and result["spec"]["config"]["dataset"] == "kvasir-seg"
    full = next(r for r in stored["polyp-sam"] if r["spec"]["config"]["model_options"]["strategy"] == "full")
    peak_gib = full["train"]["history"][0]["peak_mem_mb"] / 1024
    with capsys.disabled():
        print(f"\nvit_b full fine-tuning at 1024 px, one step on the CPU: peak resident memory {peak_gib:.1f} GiB")
    assert 1 < peak_gib < 24  # the 24 GB development machine
    assert sorted(REPO.glob("results/**/*.json")) == before  # the repository's results are untouched

    assert cli.main(["campaign", "run", "full", *runs[1], *common]) == 0
    assert "nothing to run; 0 run(s) remain" in capsys.readouterr().out  # stored: skipped before starting


@pytest.mark.slow
def test_a_chapter_with_profile_full_runs_its_missing_runs_through_papermill(tmp_path, monkeypatch):
    import papermill as pm

    hub = tmp_path / "hf" / "hub"
    timm_weights(hub, "resnet50")
    for name, value in {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "POLYPLIB_WORK": str(tmp_path / "w"),
                        "POLYPLIB_RESULTS": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(name, value)
    root = make_root(tmp_path / "data", kvasir=10, colondb=1)
    pm.execute_notebook(str(REPO / "notebooks/03_training.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                        parameters={"profile": "full", "data_root": str(root), "run_missing": True, "epochs": 1,
                                    "image_size": 64, "seed": 0, "test_sets": "present", "device": "cpu"},
                        progress_bar=False, cwd=str(REPO / "notebooks"))
    stored = [json.loads(p.read_text()) for p in sorted((tmp_path / "results" / "full").glob("*/*.json"))]
    assert stored and all(r["spec"]["config"]["model_options"]["pretrained"] for r in stored)
    assert {r["spec"]["labels"]["model"] for r in stored} >= {"GMSRF-Net"}
    assert all([t["key"] for t in r["tests"]] == ["kvasir-seg", "cvc-colondb"] for r in stored)
