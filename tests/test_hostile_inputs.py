"""Issue 23: probes of a hostile file system and bad input; each is one line, exit status 1, and changes nothing."""
import json
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from polyplib import cli
from polyplib.data import DataWarning
from test_reliability import checkpoint, fails, images  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under `root` (links themselves, not followed) with its size, mtime and link target."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns,
                                       str(p.readlink()) if p.is_symlink() else "")
            for p in sorted(root.rglob("*"))}


# -- predict ----------------------------------------------------------------------------------------------------
def test_predict_overwrite_replaces_a_planted_link_never_its_target(capsys, checkpoint, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("my thesis")
    frames, out = tmp_path / "imgs", tmp_path / "o"
    frames.mkdir()
    out.mkdir()
    assert cv2.imwrite(str(frames / "dup.jpg"), np.full((20, 24, 3), 90, np.uint8))
    (out / "dup.png").symlink_to(precious)
    (out / "gone.png").symlink_to(tmp_path / "nowhere.txt")  # dangling: exists() is False, the link is not
    assert cv2.imwrite(str(frames / "gone.jpg"), np.full((20, 24, 3), 90, np.uint8))
    before = snapshot(tmp_path)
    fails(capsys, ["predict", checkpoint, frames, "--out", out], "already holds", "--overwrite")
    assert snapshot(tmp_path) == before and not (tmp_path / "nowhere.txt").exists()
    assert cli.main(["predict", str(checkpoint), str(frames), "--out", str(out), "--overwrite", "--json"]) == 0
    assert precious.read_text() == "my thesis" and not (tmp_path / "nowhere.txt").exists()
    for name in ("dup.png", "gone.png"):
        assert not (out / name).is_symlink()
        assert cv2.imread(str(out / name), cv2.IMREAD_GRAYSCALE).shape == (20, 24)
    assert not list(out.glob(".*.tmp"))


def test_predict_skips_unreadable_and_hidden_files_reads_webp_and_says_so(capsys, checkpoint, tmp_path):
    frames, out = tmp_path / "imgs", tmp_path / "o"
    frames.mkdir()
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(frames / "a.jpg"), rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    (frames / "b.jpg").write_bytes(b"not a jpeg")
    assert cv2.imwrite(str(frames / "c.webp"), rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    (frames / ".hidden.jpg").write_bytes(b"junk")
    (frames / "._a2.jpg").write_bytes(b"macOS resource fork")
    (frames / "notes.txt").write_text("colonoscopy 12")
    with warnings.catch_warnings():  # shown as the command line shows them, not recorded by pytest
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line))
        assert cli.main([str(a) for a in ("predict", checkpoint, frames, "--out", out, "--no-progress")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (f"polyplib predict: warning: {frames}: skipped 1 file(s) that are not images "
                      "(.jpg, .jpeg, .png, .tif, .tiff, .bmp, .webp): notes.txt")
    line = err[-1]
    assert len(err) == 2 and line.startswith("polyplib predict: error: wrote 2 masks") and "b.jpg" in line
    assert ".hidden" not in line and "._a2" not in line
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert cv2.imread(str(out / "c.png"), cv2.IMREAD_GRAYSCALE).shape == (12, 16)


def test_a_failed_predict_leaves_no_empty_folder(capsys, checkpoint, images, tmp_path):
    fails(capsys, ["predict", checkpoint, images, "--out", tmp_path / "new", "--image-size", "33"], "divisible by 4")
    assert not (tmp_path / "new").exists()
    (images / "b.jpg").write_bytes(b"broken")
    (images / "a.jpg").write_bytes(b"broken too")
    fails(capsys, ["predict", checkpoint, images, "--out", tmp_path / "new"], "wrote 0 masks", "a.jpg, b.jpg")
    assert not (tmp_path / "new").exists()


# -- evaluate ---------------------------------------------------------------------------------------------------
def evaluate_args(checkpoint: Path, out: Path, *more: str) -> list[str]:
    return ["evaluate", str(checkpoint), "--dataset", "synthpolyp", "--image-size", "64", "--out", str(out),
            "--no-overlays", "--json", *more]


def test_evaluate_identity_holds_the_dataset_options_and_data_root(capsys, checkpoint, tmp_path):
    """S2: `--set n=8` then `--set n=6` into one --out silently replaced the first evaluation."""
    out = tmp_path / "eval"
    assert cli.main(evaluate_args(checkpoint, out, "--set", "n=8")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 8 and summary["dataset_options"] == {"n": 8} and "data_root" in summary
    capsys.readouterr()
    before = snapshot(tmp_path)
    fails(capsys, evaluate_args(checkpoint, out, "--set", "n=6"), "holds another evaluation", "dataset_options",
          "--overwrite")
    assert snapshot(tmp_path) == before
    assert cli.main(evaluate_args(checkpoint, out, "--set", "n=8")) == 0  # the same evaluation again: replaced
    assert cli.main(evaluate_args(checkpoint, out, "--set", "n=6", "--overwrite")) == 0
    assert json.loads((out / "summary.json").read_text())["n"] == 6


def test_evaluate_names_images_too_small_for_the_emeasure(checkpoint, tmp_path):
    """S4: a 1x1 image gave meanEm 2.2e15, averaged into summary.json."""
    from polyplib.engine.evaluate import evaluate
    from test_data_layouts import write_pair

    root = tmp_path / "data"
    for name, hw in (("tiny", (1, 1)), ("two", (2, 2)), ("three", (3, 3)), ("big", (40, 48))):
        write_pair(root / "Kvasir-SEG", name, ".jpg", hw=hw)
    with pytest.warns(DataWarning, match=r"1 image\(s\) too small for the E-measure .*: tiny$"):
        result = evaluate(checkpoint, "kvasir-seg", out_dir=tmp_path / "e", root=str(root), image_size=32,
                          overlays=False, progress=False)
    rows = result.per_image.set_index("id")
    assert np.isnan(rows.loc["tiny", "meanEm"]) and rows[["meanEm", "maxEm"]].drop("tiny").le(1).all().all()
    assert 0 <= result.summary["means"]["meanEm"] <= 1 and result.summary["too_small_for_em"] == ["tiny"]
    assert result.summary["means"]["meanEm"] == pytest.approx(rows["meanEm"].drop("tiny").mean())


# -- campaign ---------------------------------------------------------------------------------------------------
@pytest.fixture
def lite_results(tmp_path: Path) -> Path:
    """A results folder holding the committed lite GMSRF-Net cross-dataset runs (three seeds)."""
    folder = tmp_path / "results" / "lite" / "cross-dataset"
    folder.mkdir(parents=True)
    for path in (REPO / "results" / "lite" / "cross-dataset").glob("*.json"):
        if json.loads(path.read_text())["spec"]["labels"]["model"] == "GMSRF-Net":
            shutil.copy(path, folder)
    return tmp_path / "results"


def collect(results: Path, *more) -> list[str]:
    return ["campaign", "collect", "lite", "cross-dataset", "--results", str(results), *map(str, more)]


def test_collect_out_never_writes_over_a_file_and_names_bad_paths(capsys, lite_results, tmp_path):
    """S3, S8, S9: an existing --out was overwritten; /proc/x.csv and a missing parent folder were tracebacks."""
    mine = tmp_path / "mine.csv"
    mine.write_text("my table")
    fails(capsys, collect(lite_results, "--out", mine), str(mine), "already exists", "--overwrite")
    assert mine.read_text() == "my table"
    fails(capsys, collect(lite_results, "--out", "/proc/x.csv"), "--out /proc/x.csv", "not writable")
    nested = tmp_path / "new" / "folder" / "t.csv"
    assert cli.main(collect(lite_results, "--out", nested)) == 0
    assert nested.read_text().splitlines()[0].startswith("model,")
    assert cli.main(collect(lite_results, "--out", mine, "--overwrite")) == 0
    assert mine.read_text() == nested.read_text()


def test_collect_only_and_metrics_are_applied_or_refused(capsys, lite_results):
    assert cli.main(collect(lite_results, "--only", "* 1", "--metrics", "dice", "Sm")) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["model", "train", "test", "kind", "dice", "dice_sd", "Sm", "Sm_sd", "seeds"]
    assert {row[-1] for row in rows[1:]} == {"1"} and len(rows) == 3  # seed 1 only, on two test sets
    fails(capsys, collect(lite_results, "--metrics", "dice", "bogus"), "--metrics bogus", "choose from", "meanEm")
    fails(capsys, collect(lite_results, "--only", "zzzzzz"), "--only 'zzzzzz' matches no run")


@pytest.mark.parametrize("pattern", ["zzzzzz", "["])
def test_run_and_plan_say_when_only_matches_nothing(capsys, tmp_path, pattern):
    for command in ("run", "plan"):
        fails(capsys, ["campaign", command, "smoke", "cross-dataset", "--results", tmp_path / "r", "--only", pattern],
              f"--only {pattern!r} matches no run of cross-dataset")
    assert not (tmp_path / "r").exists()


def test_slurm_launcher_without_slurm_is_one_line(capsys, tmp_path, monkeypatch):
    """S6: submitit's 'Could not detect srun' traceback."""
    monkeypatch.setenv("PATH", str(tmp_path))
    fails(capsys, ["campaign", "run", "smoke", "cross-dataset", "--results", tmp_path / "r", "--work", tmp_path / "w",
                   "--launcher", "slurm"], "--launcher slurm", "sbatch and srun not on PATH", "--launcher local")
    assert not (tmp_path / "r").exists() and not (tmp_path / "w").exists()


def test_plan_does_not_count_unavailable_runs_as_work_to_do(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert cli.main(["campaign", "plan", "lite", "cross-dataset", "--results", str(tmp_path / "r"), "--root",
                     str(tmp_path / "empty"), "--only", "U-Net k*"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "3 runs: 0 done, 0 partial, 0 missing, 3 unavailable; 0.0 TFLOP to do here (unavailable runs not " \
           "counted)" in lines


def test_a_run_held_by_a_process_with_another_work_folder_is_busy(tmp_path):
    """Two `campaign run` on one store with different --work trained the same run twice."""
    from polyplib.campaigns import Store, execute
    from polyplib.campaigns.execute import run_lock
    from test_campaigns import tiny_spec

    spec = tiny_spec(epochs=1)
    store = Store(tmp_path / "results", "test", "tiny")
    resolved = spec.resolved("cpu")
    with run_lock(store.folder / ".locks" / resolved.run_id) as held:
        assert held
        outcome = execute(spec, store, work=tmp_path / "other-work", device="cpu")
    assert outcome.status == "busy" and not (tmp_path / "other-work" / resolved.run_id / "train").exists()
    assert execute(spec, store, work=tmp_path / "w", device="cpu").status == "done"


# -- book and help ----------------------------------------------------------------------------------------------
def test_book_without_data_is_one_line_naming_the_notebook_and_data_root(capsys, tmp_path, monkeypatch):
    """S10: a 58-line papermill traceback ending in the useful DataError."""
    monkeypatch.setenv("POLYPLIB_DATA", str(tmp_path / "nodata"))
    fails(capsys, ["book", "--profile", "lite", "--notebooks", "01_data", "--out", tmp_path / "book"],
          "notebook 01_data.ipynb (profile lite): dataset 'kvasir-seg'", "--data-root DIR")


def test_help_states_each_default_once_and_never_a_flag_s(capsys):
    for argv in (["book", "--help"], ["campaign", "collect", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: True)" not in text and "(default: False)" not in text
        assert text.count("(default: results") <= 1 and "(default: results/) (default" not in text


# -- train ------------------------------------------------------------------------------------------------------
def train_args(out: Path, *more) -> list[str]:
    return ["train", "--preset", "cpu-tiny", "--out", str(out), "--epochs", "1", "--no-progress", *map(str, more)]


def test_a_failed_start_does_not_block_the_retry_its_message_suggests(capsys, tmp_path):
    out = tmp_path / "run"
    fails(capsys, train_args(out, "--image-size", "31"), "divisible by 4", "--image-size")
    assert cli.main(train_args(out, "--image-size", "32")) == 0  # not "holds another run (differs in image_size)"
    assert "best dice " in capsys.readouterr().out
    diverged = tmp_path / "diverged"
    line = fails(capsys, train_args(diverged, "--lr", "1e12"), "training loss became", "lower the learning rate")
    assert "--precision fp32" not in line and "--overwrite" not in line  # fp32 already; nothing kept to replace
    assert cli.main(train_args(diverged, "--lr", "0.01", "--json")) == 0
    assert json.loads((diverged / "config.json").read_text())["lr"] == 0.01


def test_train_prints_rounded_scores(capsys, tmp_path):
    assert cli.main(train_args(tmp_path / "run")) == 0
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"done: best dice \d\.\d{4} at epoch \d+; checkpoints in .*", line), line


def test_resume_of_nothing_or_of_a_truncated_checkpoint_says_how_to_go_on(capsys, tmp_path):
    never = tmp_path / "never"
    fails(capsys, ["train", "--out", never, "--resume"], f"{never} holds no run to resume", "drop --resume")
    assert not never.exists()
    out = tmp_path / "run"
    assert cli.main(train_args(out, "--json")) == 0
    last = out / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    fails(capsys, ["train", "--out", out, "--resume", "--epochs", "2", "--no-progress"], "cannot resume",
          "truncated", f"Delete {last}", "best.pt")


def test_a_preset_s_synthetic_options_stay_with_its_dataset(capsys, tmp_path):
    from test_data_layouts import write_pair

    for index in range(10):
        write_pair(tmp_path / "data" / "CVC-ColonDB", f"c{index}", ".png", hw=(32, 32))
    assert cli.main(train_args(tmp_path / "run", "--dataset", "cvc-colondb", "--root", tmp_path / "data",
                               "--image-size", "32", "--json")) == 0  # was: unknown option(s) ['n']
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset_options"] == {}


# -- prepare, cascade, bench ------------------------------------------------------------------------------------
def test_prepare_keeps_an_existing_cache_and_the_dataset_folder_clean(capsys, tmp_path):
    from test_reliability import kvasir_root

    root = kvasir_root(tmp_path / "data", 3)
    prepare = ["prepare", "kvasir-seg", "--root", root, "--image-size", "16", "--json"]
    assert cli.main([*map(str, prepare), "--out", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    before = snapshot(tmp_path)
    fails(capsys, [*prepare, "--out", tmp_path / "cache"], "already holds a cache of kvasir-seg", "--overwrite")
    fails(capsys, [*prepare, "--out", root / "Kvasir-SEG" / "small"], "inside the dataset folder", "outside it")
    assert snapshot(tmp_path) == before
    assert cli.main([*map(str, prepare), "--out", str(tmp_path / "cache"), "--overwrite"]) == 0


def test_cascade_without_a_detector_says_it_used_ground_truth_boxes_only(capsys, tmp_path):
    assert cli.main(["cascade", "--sam", "polyp-sam-tiny", "--allow-scratch", "--dataset", "synthpolyp",
                     "--dataset-option", "n=2", "--image-size", "64", "--no-overlays", "--device", "cpu",
                     "--out", str(tmp_path / "c"), "--json"]) == 0
    assert "no --detector given, so SAM is prompted with ground-truth boxes only" in capsys.readouterr().err


def test_bench_out_under_a_file_names_the_file_that_is_in_the_way(capsys, tmp_path):
    (tmp_path / "afile.txt").write_text("mine")
    fails(capsys, ["bench", "--quick", "--out", tmp_path / "afile.txt" / "b.json"],
          f"its folder {tmp_path / 'afile.txt'} is an existing file")


def test_two_runs_needing_one_trained_run_wait_for_each_other_but_never_for_its_training(tmp_path):
    """Two transfer arms of `--jobs 2` reopened their pretraining run at once: one found it locked and gave up."""
    import threading

    from polyplib.campaigns.execute import run_lock, train_dependency, work_dir
    from test_campaigns import tiny_spec

    spec = tiny_spec(epochs=1).resolved("cpu")
    work = tmp_path / "work"
    first = train_dependency(spec, None, work, "cpu", None)
    assert first is not None and first.complete

    def hold(seconds: float) -> None:
        with run_lock(work_dir(work, spec.run_id)) as held:
            assert held
            time.sleep(seconds)

    holder = threading.Thread(target=hold, args=(1.0,))
    holder.start()
    time.sleep(0.2)
    start = time.monotonic()
    again = train_dependency(spec, None, work, "cpu", None)  # trained: waits for the other holder, then reopens
    waited = time.monotonic() - start
    holder.join()
    assert again is not None and again.best_metric == first.best_metric and waited >= 0.5

    untrained = tiny_spec(epochs=2).resolved("cpu")
    with run_lock(work_dir(work, untrained.run_id)) as held:  # another process is training it: do not wait
        assert held
        start = time.monotonic()
        assert train_dependency(untrained, None, work, "cpu", None) is None
        assert time.monotonic() - start < 1.0
