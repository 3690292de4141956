"""Issue 23: probes of a hostile file system and bad input; each is one line, exit status 1, and changes nothing."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from polyplib import cli
from polyplib.data import DataWarning
from test_reliability import checkpoint, fails, images  # noqa: F401  (fixtures)


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
    with pytest.warns(DataWarning, match=r"skipped 1 file\(s\) that are not images .*: notes.txt$"):
        line = fails(capsys, ["predict", checkpoint, frames, "--out", out, "--no-progress"], "wrote 2 masks", "b.jpg")
    assert ".hidden" not in line and "._a2" not in line
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert cv2.imread(str(out / "c.png"), cv2.IMREAD_GRAYSCALE).shape == (12, 16)


def test_a_failed_predict_leaves_no_empty_folder(capsys, checkpoint, images, tmp_path):
    (images / "b.jpg").write_bytes(b"broken")
    (images / "a.jpg").write_bytes(b"broken too")
    fails(capsys, ["predict", checkpoint, images, "--out", tmp_path / "new"], "wrote 0 masks", "a.jpg, b.jpg")
    assert not (tmp_path / "new").exists()
