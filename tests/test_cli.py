"""Every `polyplib` command: its happy path and a one-line error (never a traceback)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from polyplib import cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def kvasir_root(tmp_path: Path) -> Path:
    """A data root holding a 3-pair Kvasir-SEG in the official layout."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / "Kvasir-SEG" / sub).mkdir(parents=True)
    for i in range(3):
        mask = np.zeros((40, 52), np.uint8)
        cv2.circle(mask, (20 + i, 18), 9, 255, -1)
        image = rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "Kvasir-SEG" / "images" / f"k{i}.jpg"), image)
        cv2.imwrite(str(root / "Kvasir-SEG" / "masks" / f"k{i}.jpg"), mask)
    return root


def run_json(capsys, *argv: str):
    assert cli.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_datasets_lists_what_is_present(capsys, kvasir_root):
    rows = {row["name"]: row for row in run_json(capsys, "datasets", "--root", str(kvasir_root))}
    assert rows["kvasir-seg"]["pairs"] == 3 and rows["cvc-colondb"]["pairs"] == 0
    assert cli.main(["datasets", "--root", str(kvasir_root)]) == 0
    assert "kvasir-seg" in capsys.readouterr().out


def test_prepare_writes_a_cache_that_is_a_data_root(capsys, kvasir_root, tmp_path):
    out = run_json(capsys, "prepare", "kvasir-seg", "--root", str(kvasir_root), "--out", str(tmp_path / "cache"),
                   "--image-size", "32")
    assert Path(out["path"]).is_dir()
    rows = {row["name"]: row for row in run_json(capsys, "datasets", "--root", str(tmp_path / "cache"))}
    assert rows["kvasir-seg"]["pairs"] == 3


def test_train_evaluate_predict(capsys, tmp_path, kvasir_root):
    trained = run_json(capsys, "train", "--preset", "cpu-tiny", "--out", str(tmp_path / "run"), "--epochs", "1",
                       "--no-progress")
    best = Path(trained["best_checkpoint"])
    assert best.is_file() and trained["epochs"] == 1 and 0 <= trained["best_metric"] <= 1
    summary = run_json(capsys, "evaluate", str(best), "--dataset", "synthpolyp", "--split", "val", "--set", "n=16",
                       "--image-size", "64", "--out", str(tmp_path / "eval"), "--no-overlays")
    assert summary["n"] == 2 and summary["split"] == "val" and summary["checkpoint"] == str(best)
    assert (tmp_path / "eval" / "per_image.csv").is_file()
    masks = run_json(capsys, "predict", str(best), str(kvasir_root / "Kvasir-SEG" / "images"), "--out",
                     str(tmp_path / "pred"))
    assert [Path(m).name for m in masks] == ["k0.png", "k1.png", "k2.png"]
    assert cv2.imread(masks[0], cv2.IMREAD_GRAYSCALE).shape == (40, 52)


def test_describe_gives_params_and_gflops(capsys):
    info = run_json(capsys, "describe", "gmsrf", "--variant", "official")
    assert info["params"] > 1_000_000 and info["gflops"] > 1


@pytest.mark.slow
def test_bench_quick(capsys, tmp_path):
    results = run_json(capsys, "bench", "--quick", "--variants", "official", "--image-size", "16", "--out",
                       str(tmp_path / "bench.json"), "--steps", "1", "--repeats", "3", "--set", "backbone=resnet10t", "num_modules=0")
    gm = results["suites"]["gmsrf"]
    assert {ln["recipe"] for ln in gm["lines"]} == {"ours", "authors"} and gm["comparisons"][0]["speedup"] > 0
    train = {ln["recipe"]: ln for ln in gm["lines"] if ln["kind"] == "train"}
    speedup = gm["comparisons"][0]
    assert speedup["speedup_min"] <= speedup["speedup"] <= speedup["speedup_max"] and speedup["repeats"] == 3
    for line in train.values():
        assert line["images_per_s_min"] <= line["images_per_s"] <= line["images_per_s_max"]
    assert 0 < train["ours"]["mfu"] == pytest.approx(3 * gm["comparisons"][0]["forward_gflops_per_image"] * 1e9
                                                     * train["ours"]["images_per_s"] / gm["peak_flops"])
    assert json.loads((tmp_path / "bench.json").read_text())["provenance"]["torch"]


@pytest.mark.parametrize("argv, message", [
    (["datasets", "download"], "name the dataset"),
    (["datasets", "download", "NoSuchSet"], "unknown dataset"),
    (["train", "--preset", "cpu-tiny", "--set", "optimizer=sgd"], "optimizer"),
    (["train", "--preset", "gmsrf-paper", "--root", "{tmp}/nowhere", "--epochs", "1"], "does not exist"),
    (["evaluate", "{tmp}/missing.pt", "--dataset", "synthpolyp"], "missing.pt not found"),
    (["predict", "{tmp}/missing.pt", "{tmp}", "--out", "{tmp}/p"], "not found"),
    (["describe", "no-such-model"], "no-such-model"),
    (["prepare", "NoSuchSet", "--out", "{tmp}/c"], "unknown dataset"),
    (["bench", "--device", "cuda:0"], "CUDA"),
])
def test_errors_are_one_line_and_nonzero(capsys, tmp_path, argv, message):
    assert cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"polyplib {argv[0]}: error:") and message in err and err.count("\n") == 1


def test_console_entry_point_error_is_one_line():
    bad = subprocess.run([sys.executable, "-m", "polyplib", "train", "--preset", "nope"], cwd=REPO,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "unknown preset 'nope'" in bad.stderr


def test_external_command_hooks(tmp_path, monkeypatch, capsys):
    (tmp_path / "okhook.py").write_text(
        "def add_cli(sub):\n    p = sub.add_parser('hello')\n    p.set_defaults(func=lambda args: print('hi') or 0)\n")
    (tmp_path / "brokenhook.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "EXTERNAL_COMMANDS", ("okhook", "polyplib.not_written_yet"))
    assert cli.main(["hello"]) == 0 and capsys.readouterr().out == "hi\n"
    monkeypatch.setattr(cli, "EXTERNAL_COMMANDS", ("brokenhook",))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        cli.build_parser()


def test_datasets_duplicates_finds_a_copied_frame_and_says_whether_it_crosses_the_split(capsys, kvasir_root, tmp_path):
    images = kvasir_root / "Kvasir-SEG" / "images"
    cv2.imwrite(str(images / "k3.jpg"), cv2.imread(str(images / "k0.jpg")))  # a near copy (JPEG re-encoded)
    cv2.imwrite(str(kvasir_root / "Kvasir-SEG" / "masks" / "k3.jpg"), cv2.imread(str(kvasir_root / "Kvasir-SEG" / "masks" / "k0.jpg")))
    found = run_json(capsys, "datasets", "duplicates", "kvasir-seg", "--root", str(kvasir_root))
    assert [tuple(p[:2]) for p in found["pairs"]] == [("k0", "k3")]
    crossing = {row["parts"] for row in found["leaks"]}
    assert len(found["leaks"]) <= 1 and crossing <= {"train/test", "test/train", "train/val", "val/train",
                                                     "val/test", "test/val"}
    out = tmp_path / "dups.csv"
    assert cli.main(["datasets", "duplicates", "kvasir-seg", "--root", str(kvasir_root), "--out", str(out)]) == 0
    assert out.read_text().splitlines()[1].startswith("k0,k3,")
    assert cli.main(["datasets", "duplicates", "kvasir-seg", "--root", str(kvasir_root), "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert cli.main(["datasets", "segments", "kvasir-seg", "--root", str(kvasir_root)]) == 1
    assert "no sequence count is known" in capsys.readouterr().err
