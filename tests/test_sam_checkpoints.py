"""SAM checkpoints: download from a real local HTTP server, MD5 verification, weights_only loading, scratch labels."""
import functools
import hashlib
import http.server
import socket
import threading

import pytest
import torch

from polyplib.errors import WeightsError
from polyplib.sam.build import build_sam
from polyplib.sam.checkpoints import SAM_CHECKPOINTS, fetch_sam_checkpoint, fetch_weights
from polyplib.sam.model import create_polyp_sam


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server(tmp_path):
    """Serve tmp_path/served on 127.0.0.1 over HTTP; yields (folder, base_url)."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def tiny_state():
    torch.manual_seed(3)
    return build_sam("tiny", image_size=64).state_dict()


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verify_and_load(server, tiny_state, tmp_path):
    folder, url = server
    torch.save(tiny_state, folder / "sam_tiny.pth")
    cache = tmp_path / "weights"
    path = fetch_weights("sam_tiny.pth", md5(folder / "sam_tiny.pth"), base_url=url, cache_dir=cache, progress=False)
    assert path == cache / "sam_tiny.pth" and md5(path) == md5(folder / "sam_tiny.pth")
    (folder / "sam_tiny.pth").unlink()  # second call must use the cache, not the server
    assert fetch_weights("sam_tiny.pth", md5(path), base_url=url, cache_dir=cache, progress=False) == path
    model = create_polyp_sam("tiny", checkpoint=path, encoder_size=64)
    assert model.pretrained_source == "sam_tiny.pth"
    for key, value in tiny_state.items():
        torch.testing.assert_close(model.sam.state_dict()[key], value, rtol=0, atol=0)


def test_corrupted_download_is_rejected(server, tiny_state, tmp_path):
    folder, url = server
    torch.save(tiny_state, folder / "sam_tiny.pth")
    good = md5(folder / "sam_tiny.pth")
    data = bytearray((folder / "sam_tiny.pth").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "sam_tiny.pth").write_bytes(bytes(data))
    cache = tmp_path / "weights"
    with pytest.raises(WeightsError, match=f"md5 {good}"):
        fetch_weights("sam_tiny.pth", good, base_url=url, cache_dir=cache, progress=False)
    assert not (cache / "sam_tiny.pth").exists()


def test_official_names_and_md5_are_used(server, tmp_path, monkeypatch):
    folder, url = server
    filename, published = SAM_CHECKPOINTS["vit_b"]
    (folder / filename).write_bytes(b"not the real checkpoint")
    monkeypatch.setenv("POLYPLIB_SAM_URL", url)
    with pytest.raises(WeightsError, match=published):
        fetch_sam_checkpoint("vit_b", cache_dir=tmp_path / "w")
    with pytest.raises(WeightsError, match="no official checkpoint"):
        fetch_sam_checkpoint("tiny")


def test_offline_error_says_where_to_place_the_file(tmp_path):
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    filename, published = SAM_CHECKPOINTS["vit_l"]
    with pytest.raises(WeightsError) as info:
        create_polyp_sam("vit_l", sam_url=f"http://127.0.0.1:{port}/", weights_dir=tmp_path / "w")
    assert filename in str(info.value) and published in str(info.value) and str(tmp_path / "w") in str(info.value)


def test_scratch_needs_explicit_option_and_is_labelled(tmp_path, tiny_state):
    with pytest.raises(WeightsError, match="allow_scratch=True"):
        create_polyp_sam("tiny")
    assert create_polyp_sam("tiny", allow_scratch=True, encoder_size=64).pretrained_source == "scratch"
    torch.save({"model": {f"sam.{k}": v for k, v in tiny_state.items()}}, tmp_path / "trained.pt")
    assert create_polyp_sam("tiny", checkpoint=tmp_path / "trained.pt", encoder_size=64).pretrained_source == "trained.pt"
    with pytest.raises(WeightsError, match="does not fit"):
        create_polyp_sam("tiny", checkpoint=tmp_path / "trained.pt", encoder_size=128)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="junk.pth"):
        create_polyp_sam("tiny", checkpoint=tmp_path / "junk.pth")
