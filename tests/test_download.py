"""download: the whole path against a real HTTP server on 127.0.0.1 (fetch, SHA-256 record/verify, extract, load)."""
import hashlib
import http.server
import json
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from polyplib.data import download, load_dataset
from polyplib.data.download import ARCHIVES
from polyplib.errors import ConfigError, DataError
from test_data_layouts import write_pair


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path):
    """(base URL, served folder, request log) of a real HTTP server on an ephemeral port."""
    served = tmp_path / "served"
    served.mkdir()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/mirror", served, _Handler.requests
    httpd.shutdown()
    httpd.server_close()


def build_zip(path: Path, staging: Path, folders: dict[str, int], ext: str = ".png") -> Path:
    """Zip staging/<folder> trees of tiny pairs, e.g. {'Kvasir-SEG': 3}; returns the zip path."""
    for folder, count in folders.items():
        for index in range(1, count + 1):
            write_pair(staging / folder, str(index), ext, seed=len(folder))
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as handle:
        for file in sorted(staging.rglob("*")):
            handle.write(file, file.relative_to(staging).as_posix())
    return path


def test_download_hash_extract_load_and_reuse(tmp_path, server):
    url, served, requests = server
    archive = build_zip(served / "mirror" / "kvasir-seg.zip", tmp_path / "stage", {"Kvasir-SEG": 4}, ".jpg")
    root = tmp_path / "root"
    folder = download("kvasir-seg", root=root, base_url=url)
    assert folder == root / "Kvasir-SEG" and requests == ["/mirror/kvasir-seg.zip"]
    assert len(load_dataset("kvasir-seg", root=root)) == 4
    record = json.loads((root / "downloads" / "registry.json").read_text())["kvasir-seg.zip"]
    assert record["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert record["source"] == f"{url}/kvasir-seg.zip" and record["bytes"] == archive.stat().st_size
    assert download("kvasir-seg", root=root, base_url=url) == folder
    assert download("kvasir-seg", root=root, base_url=url, force=True) == folder
    assert len(requests) == 1, "a verified local archive is reused, not fetched again"


def test_env_var_mirror_and_one_archive_for_several_datasets(tmp_path, server, monkeypatch):
    url, served, _ = server
    build_zip(served / "mirror" / "TestDataset.zip", tmp_path / "stage",
              {"TestDataset/CVC-ColonDB": 3, "TestDataset/CVC-300": 2})
    monkeypatch.setenv("POLYPLIB_DOWNLOAD_URL", url)
    monkeypatch.setenv("POLYPLIB_DATA", str(tmp_path / "root"))
    assert download("cvc-colondb") == tmp_path / "root" / "TestDataset" / "CVC-ColonDB"
    assert (len(load_dataset("cvc-colondb")), len(load_dataset("cvc-300"))) == (3, 2)


def test_corrupted_local_archive_is_rejected(tmp_path, server):
    url, served, _ = server
    build_zip(served / "mirror" / "kvasir-seg.zip", tmp_path / "stage", {"Kvasir-SEG": 2})
    root = tmp_path / "root"
    download("kvasir-seg", root=root, base_url=url)
    local = root / "downloads" / "kvasir-seg.zip"
    local.write_bytes(local.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataError, match=r"kvasir-seg.zip has SHA-256 [0-9a-f]{64}, but [0-9a-f]{64} was recorded"):
        download("kvasir-seg", root=root, base_url=url, force=True)


def test_changed_upstream_archive_fails_verification(tmp_path, server):
    url, served, _ = server
    archive = build_zip(served / "mirror" / "kvasir-seg.zip", tmp_path / "stage", {"Kvasir-SEG": 2})
    root = tmp_path / "root"
    download("kvasir-seg", root=root, base_url=url)
    (root / "downloads" / "kvasir-seg.zip").unlink()
    build_zip(archive, tmp_path / "stage2", {"Kvasir-SEG": 3})
    with pytest.raises(DataError, match="failed verification"):
        download("kvasir-seg", root=root, base_url=url, force=True)
    assert not (root / "downloads" / "kvasir-seg.zip").exists()


def test_broken_or_missing_archives_give_clear_errors(tmp_path, server):
    url, served, _ = server
    (served / "mirror").mkdir()
    (served / "mirror" / "kvasir-seg.zip").write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(DataError, match=r"cannot extract .*kvasir-seg.zip .*delete it and run download again"):
        download("kvasir-seg", root=tmp_path / "a", base_url=url)
    with pytest.raises(DataError, match=r"cannot download .*/mirror/TrainDataset.zip.*POLYPLIB_DOWNLOAD_URL"):
        download("pranet-train", root=tmp_path / "b", base_url=url)
    build_zip(served / "mirror" / "TrainDataset.zip", tmp_path / "stage", {"Other": 1})
    with pytest.raises(DataError, match="has no folder 'TrainDataset'"):
        download("pranet-train", root=tmp_path / "c", base_url=url)
    with pytest.raises(ConfigError, match="no public archive"):
        download("synthpolyp", root=tmp_path / "d", base_url=url)


def test_google_drive_archives_go_through_gdown_with_the_published_id(tmp_path, monkeypatch):
    monkeypatch.delenv("POLYPLIB_DOWNLOAD_URL", raising=False)
    archive = build_zip(tmp_path / "drive" / "TrainDataset.zip", tmp_path / "stage", {"TrainDataset": 3})
    calls = []

    def fake_download(id: str, output: str, quiet: bool) -> str:
        calls.append(id)
        Path(output).write_bytes(archive.read_bytes())
        return output

    monkeypatch.setattr("gdown.download", fake_download)
    assert download("pranet-train", root=tmp_path / "root") == tmp_path / "root" / "TrainDataset"
    assert calls == [ARCHIVES["pranet-train"].gdrive_id] == ["1YiGHLw4iTvKdvbT6MgwO9zcCv8zJ_Bnb"]
    assert len(load_dataset("pranet-train", root=tmp_path / "root")) == 3
    monkeypatch.setattr("gdown.download", lambda id, output, quiet: None)
    with pytest.raises(DataError, match="Google Drive id 1Y2z7FD5p5y31vkZwQQomXFRB0HutHyao"):
        download("etis", root=tmp_path / "other")
