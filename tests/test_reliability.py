"""Issue 10: bad inputs and faults give one line naming the file or option, exit status 1, and change nothing."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from polyplib import cli
from polyplib.data import get_split, list_datasets, load_dataset, prepare_cache
from polyplib.engine import get_preset, load_checkpoint, save_checkpoint, train
from polyplib.errors import ConfigError, DataError, WeightsError
from test_data_layouts import write_pair

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and modification time (what 'nothing changed' compares)."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def fails(capsys, argv: list[str], *needles: str) -> str:
    """Run the CLI, expect exit status 1 and a one-line error holding every needle."""
    assert cli.main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error printed"
    line = err[-1]
    assert line.startswith(f"polyplib {argv[0]}: error:"), err
    assert all(n in line for n in needles), line
    assert len(line) < 700, line
    return line


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """best.pt of a one-epoch cpu-tiny run."""
    out = tmp_path_factory.mktemp("trained") / "run"
    result = train(get_preset("cpu-tiny", out_dir=str(out), progress=False, epochs=1))
    return result.best_checkpoint


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A folder of two JPEG frames."""
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        assert cv2.imwrite(str(folder / name), rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    return folder


def kvasir_root(root: Path, n: int = 10) -> Path:
    for index in range(n):
        write_pair(root / "Kvasir-SEG", f"k{index}", ".jpg", hw=(40, 48))
    return root


# -- predict ----------------------------------------------------------------------------------------------------
def test_predict_refuses_the_input_folder_and_existing_masks(capsys, checkpoint, images, tmp_path):
    before = snapshot(tmp_path)
    fails(capsys, ["predict", checkpoint, images, "--out", images], "is the input folder")
    assert snapshot(tmp_path) == before
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(b"mine")
    before = snapshot(tmp_path)
    fails(capsys, ["predict", checkpoint, images, "--out", tmp_path / "masks"], "a.png", "--overwrite")
    assert snapshot(tmp_path) == before
    assert cli.main(["predict", str(checkpoint), str(images), "--out", str(tmp_path / "masks"), "--overwrite",
                     "--json"]) == 0
    assert cv2.imread(str(tmp_path / "masks" / "a.png"), cv2.IMREAD_GRAYSCALE).shape == (30, 40)


def test_predict_names_stem_collisions(capsys, checkpoint, images, tmp_path):
    assert cv2.imwrite(str(images / "a.png"), np.zeros((8, 8, 3), np.uint8))
    before = snapshot(tmp_path)
    fails(capsys, ["predict", checkpoint, images, "--out", tmp_path / "m"], "a.jpg and a.png", "share the stem")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("flags, needle", [(["--threshold", "5"], "--threshold 5.0"),
                                           (["--image-size", "-32"], "--image-size -32")])
def test_predict_bad_numbers(capsys, checkpoint, images, tmp_path, flags, needle):
    before = snapshot(tmp_path)
    fails(capsys, ["predict", checkpoint, images, "--out", tmp_path / "m", *flags], needle)
    assert snapshot(tmp_path) == before


def test_every_mask_write_is_checked(tmp_path):
    from polyplib.engine.evaluate import write_png

    with pytest.raises(DataError, match="cannot write .*missing"):
        write_png(tmp_path / "missing" / "a.png", np.zeros((4, 4), np.uint8))


# -- outputs checked before work --------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "prepare", "bench"])
def test_out_that_is_a_file_or_unwritable_is_refused_up_front(capsys, checkpoint, images, tmp_path, command):
    file = tmp_path / "taken.txt"
    file.write_text("mine")
    locked = tmp_path / "locked"
    locked.mkdir()
    argv = {"train": ["train", "--preset", "cpu-tiny", "--no-progress"],
            "evaluate": ["evaluate", checkpoint, "--dataset", "synthpolyp", "--set", "n=16", "--image-size", "64"],
            "predict": ["predict", checkpoint, images],
            "prepare": ["prepare", "kvasir-seg", "--root", kvasir_root(tmp_path / "data", 3)],
            "bench": ["bench", "--quick"]}[command]
    before = snapshot(tmp_path)
    needle = "already exists" if command == "bench" else "existing file"
    fails(capsys, [*argv, "--out", file], str(file), needle)
    os.chmod(locked, stat.S_IRUSR | stat.S_IXUSR)
    try:
        fails(capsys, [*argv, "--out", locked / "sub" / ("b.json" if command == "bench" else "x")], "not writable")
    finally:
        os.chmod(locked, stat.S_IRWXU)
    assert snapshot(tmp_path) == before and file.read_text() == "mine"


def test_bench_out_folder_is_refused(capsys, tmp_path):
    fails(capsys, ["bench", "--quick", "--out", tmp_path], "is a folder")


# -- train ------------------------------------------------------------------------------------------------------
def tiny_args(out: Path, *more: str) -> list[str]:
    return ["train", "--preset", "cpu-tiny", "--out", str(out), "--epochs", "1", "--no-progress", "--json", *more]


def test_train_refuses_a_folder_holding_another_run(capsys, tmp_path):
    assert cli.main(tiny_args(tmp_path / "run")) == 0
    capsys.readouterr()
    before = snapshot(tmp_path)
    fails(capsys, tiny_args(tmp_path / "run", "--lr", "0.5"), "holds another run", "lr", "--overwrite")
    assert snapshot(tmp_path) == before
    assert cli.main(tiny_args(tmp_path / "run", "--lr", "0.5", "--overwrite")) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr"] == 0.5


def test_resume_reads_the_recorded_config_and_says_when_it_starts_afresh(capsys, tmp_path):
    out = tmp_path / "run"
    assert cli.main(tiny_args(out, "--lr", "0.005", "--set", "dataset_options.n=20")) == 0
    capsys.readouterr()
    (out / ".last.pt.stale123.tmp").write_bytes(b"x" * 100)  # a SIGKILL during a checkpoint write leaves this
    # the README's resume line: only the preset and the folder, not the options the run was started with
    assert cli.main(["train", "--preset", "cpu-tiny", "--out", str(out), "--resume", "--epochs", "2",
                     "--no-progress", "--json"]) == 0
    captured = capsys.readouterr()
    assert "recorded in" in captured.err and json.loads(captured.out)["epochs"] == 2
    assert not list(out.glob(".*.tmp"))
    assert load_checkpoint(out / "last.pt")["config"]["lr"] == 0.005
    fresh = tmp_path / "fresh"  # the options were recorded, no checkpoint yet: start afresh with them, and say so
    fresh.mkdir()
    (fresh / "config.json").write_text((out / "config.json").read_text().replace(str(out), str(fresh)))
    assert cli.main(tiny_args(fresh, "--resume")) == 0
    assert "starting afresh" in capsys.readouterr().err
    assert load_checkpoint(fresh / "last.pt")["config"]["lr"] == 0.005


def test_resume_without_last_pt_keeps_working_through_the_api(tmp_path):
    config = get_preset("cpu-tiny", out_dir=str(tmp_path / "work"), progress=False, epochs=1)
    first = train(config, resume=True)  # campaigns call this on their work folders, last.pt or not
    again = train(config, resume=True)
    assert first.best_metric == again.best_metric and (tmp_path / "work" / "result.json").is_file()


def test_a_truncated_validation_image_stops_training_before_the_first_step(capsys, tmp_path):
    root = kvasir_root(tmp_path / "data")
    val_id = get_split("kvasir-seg", "gmsrf", root=root)["val"][0]
    image = root / "Kvasir-SEG" / "images" / f"{val_id}.jpg"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])  # the header still reads
    out = tmp_path / "run"
    fails(capsys, tiny_args(out, "--dataset", "kvasir-seg", "--root", str(root), "--set", "dataset_options={}",
                            "--workers", "2"), str(image), "truncated")
    assert not (out / "last.pt").exists() and not (out / "log.jsonl").exists()


def test_an_error_in_a_dataloader_worker_is_one_short_line_naming_the_file(tmp_path):
    root = kvasir_root(tmp_path / "data", 4)
    bad = root / "Kvasir-SEG" / "images" / "k2.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    ds = load_dataset("kvasir-seg", root, image_size=32, check=False)
    with pytest.raises(DataError) as caught:
        list(torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2))
    assert "Original Traceback" in str(caught.value)
    line = cli.one_line(caught.value)
    assert line.startswith("cannot read") and str(bad) in line and len(line) < 300


def test_a_diverging_run_is_one_line(capsys, tmp_path):
    fails(capsys, tiny_args(tmp_path / "run", "--lr", "1e12", "--epochs", "2"), "training loss became", "--lr")


# -- evaluate ---------------------------------------------------------------------------------------------------
def eval_args(checkpoint: Path, *more) -> list[str]:
    return ["evaluate", str(checkpoint), "--dataset", "synthpolyp", "--split", "val", "--set", "n=16", "--image-size",
            "64", "--json", *map(str, more)]


def test_evaluate_defaults_to_a_folder_per_checkpoint_and_dataset(capsys, checkpoint):
    assert cli.main(eval_args(checkpoint, "--no-overlays")) == 0
    out = Path(json.loads(capsys.readouterr().out)["out"])
    assert out == checkpoint.parent / "eval-best-synthpolyp-val" and (out / "summary.json").is_file()


def test_evaluate_refuses_a_folder_holding_another_evaluation(capsys, checkpoint, tmp_path):
    out = tmp_path / "eval"
    assert cli.main(eval_args(checkpoint, "--out", out)) == 0
    capsys.readouterr()
    assert (out / "overlays.png").is_file()
    other = tmp_path / "other.pt"
    other.write_bytes(checkpoint.read_bytes())
    before = snapshot(tmp_path)
    fails(capsys, eval_args(other, "--out", out), "holds another evaluation", "--overwrite")
    assert snapshot(tmp_path) == before
    assert cli.main(eval_args(other, "--out", out, "--overwrite", "--no-overlays")) == 0
    assert not (out / "overlays.png").exists()  # no stale figure of the other checkpoint
    assert json.loads((out / "summary.json").read_text())["checkpoint"] == str(other)


def test_evaluate_batch_size_zero(capsys, checkpoint, tmp_path):
    fails(capsys, eval_args(checkpoint, "--out", tmp_path / "e", "--batch-size", "0"), "--batch-size 0")
    assert not (tmp_path / "e").exists()


# -- checkpoints ------------------------------------------------------------------------------------------------
def test_checkpoint_kinds_are_named(capsys, checkpoint, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": "gmsrf"}))
    fails(capsys, eval_args(tmp_path / "config.json"), "is a JSON text file")
    fails(capsys, eval_args(checkpoint.parent), "is a folder", "best.pt")
    state = load_checkpoint(checkpoint)
    save_checkpoint({**state, "format": "polyplib-train-v99"}, tmp_path / "future.pt")
    fails(capsys, eval_args(tmp_path / "future.pt"), "format 'polyplib-train-v99'")
    wrong = {**state, "config": {**state["config"], "model": "gmsrf",
                                 "model_options": {"backbone": "resnet10t", "num_modules": 0}}}
    save_checkpoint(wrong, tmp_path / "wrong.pt")
    line = fails(capsys, eval_args(tmp_path / "wrong.pt"), "does not fit model 'gmsrf'", "missing tensors",
                 "unexpected tensors")
    assert "for GMSRFNet:" not in line


def test_empty_checkpoint_file(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty file"):
        load_checkpoint(tmp_path / "empty.pt")


# -- datasets, hints, describe ----------------------------------------------------------------------------------
def test_datasets_on_a_missing_root_fails_naming_it(capsys, tmp_path):
    fails(capsys, ["datasets", "--root", tmp_path / "nonexistent"], str(tmp_path / "nonexistent"), "--root")


def test_hints_use_the_flags_users_type(capsys, tmp_path):
    line = fails(capsys, ["train", "--preset", "gmsrf-paper", "--root", tmp_path / "nowhere", "--epochs", "1"],
                 "--root DIR", "polyplib datasets download kvasir-seg")
    assert "Pass root=" not in line
    with pytest.raises(WeightsError, match="--allow-scratch"):
        from polyplib.sam.checkpoints import fetch_sam_checkpoint
        fetch_sam_checkpoint("tiny")


def test_describe_has_an_allow_scratch_flag(capsys):
    assert cli.main(["describe", "polyp-sam-tiny", "--allow-scratch", "--image-size", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] > 0


# -- the command line starts without torch ----------------------------------------------------------------------
def test_help_lists_every_command_without_importing_torch():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "polyplib", "--help"], cwd=REPO, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 0
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in imported and "polyplib.cli" in imported
    for command in (*cli.OWN_COMMANDS, *cli.COMMAND_SUMMARIES):
        assert f"\n    {command} " in proc.stdout, command


def test_command_summaries_are_the_commands_their_modules_declare():
    """`--help` lists an external module's commands from COMMAND_SUMMARIES: they must be what its add_cli adds."""
    import argparse
    import importlib

    for module in cli.EXTERNAL_COMMANDS:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).add_cli(sub)
        summarized = {name for name, (owner, _) in cli.COMMAND_SUMMARIES.items() if owner == module}
        assert summarized in (set(), set(sub.choices)), module
    assert not set(cli.OWN_COMMANDS) & set(cli.COMMAND_SUMMARIES)


def test_train_help_defaults_are_trainconfig_defaults(capsys):
    from polyplib.engine import TrainConfig

    assert cli.TRAIN_DEFAULTS == {key: getattr(TrainConfig(), key) for key in cli.TRAIN_FLAGS}
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "(default: the preset's, else 50)" in " ".join(capsys.readouterr().out.split())


def test_command_help_shows_defaults_and_external_commands_still_run(capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert "(default: 8)" in out and "(default: gmsrf)" in out
    parser = cli.build_parser(command="book")
    assert parser.parse_args(["book", "--no-execute"]).func.__name__ == "_cli_book"


# -- prepare ----------------------------------------------------------------------------------------------------
def test_an_interrupted_prepare_leaves_no_cache_that_counts(tmp_path, monkeypatch):
    import polyplib.data.cache as cache

    root = kvasir_root(tmp_path / "data")
    real, calls = cv2.imwrite, []

    def dies(path, *args):
        calls.append(path)
        if len(calls) > 6:
            raise KeyboardInterrupt
        return real(path, *args)

    monkeypatch.setattr(cache.cv2, "imwrite", dies)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache("kvasir-seg", tmp_path / "cache", root=root, image_size=16)
    monkeypatch.setattr(cache.cv2, "imwrite", real)
    assert {r["name"]: r["pairs"] for r in list_datasets(tmp_path / "cache")}["kvasir-seg"] == 0
    prepare_cache("kvasir-seg", tmp_path / "cache", root=root, image_size=16)
    assert not list((tmp_path / "cache").glob(".Kvasir-SEG.*"))
    assert get_split("kvasir-seg", "gmsrf", root=tmp_path / "cache") == get_split("kvasir-seg", "gmsrf", root=root)
    with pytest.raises(ConfigError, match="already holds a cache of kvasir-seg .* pass --overwrite"):
        prepare_cache("kvasir-seg", tmp_path / "cache", root=root, image_size=8)
    prepare_cache("kvasir-seg", tmp_path / "cache", root=root, image_size=8, overwrite=True)  # a cache is replaced
    assert cv2.imread(str(tmp_path / "cache" / "Kvasir-SEG" / "images" / "k0.png")).shape == (8, 8, 3)


def test_cache_split_files_come_from_the_full_dataset(tmp_path):
    root = kvasir_root(tmp_path / "data")
    out = prepare_cache("kvasir-seg", tmp_path / "cache", root=root, image_size=16, split="train")
    full = get_split("kvasir-seg", "gmsrf", root=root)
    stored = out / "polyplib-splits" / "gmsrf" / "kvasir-seg" / "seed0"
    assert (stored / "train.txt").read_text().split() == full["train"]
    assert (stored / "val.txt").read_text().split() == [] and (stored / "test.txt").read_text().split() == []


def test_prepare_never_replaces_data_that_is_not_a_cache(tmp_path):
    root = kvasir_root(tmp_path / "data", 3)
    other = kvasir_root(tmp_path / "other", 3)
    before = snapshot(other)
    with pytest.raises(ConfigError, match="not a complete polyplib cache"):
        prepare_cache("kvasir-seg", other, root=root, image_size=16)
    assert snapshot(other) == before
