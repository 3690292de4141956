"""Official SAM checkpoints (notes §2.6): cached download with MD5 check, `weights_only` loading."""
from __future__ import annotations

import os
from pathlib import Path

import pooch
import requests
import torch
from torch import nn

from polyplib.errors import WeightsError

DEFAULT_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"

# File names from segment-anything's README; MD5s are third-party values whose prefix matches the file names.
SAM_CHECKPOINTS: dict[str, tuple[str, str]] = {
    "vit_b": ("sam_vit_b_01ec64.pth", "01ec64d29a2fca3f0661936605ae66f8"),
    "vit_l": ("sam_vit_l_0b3195.pth", "0b3195507c641ddb6910d2bb5adee89c"),
    "vit_h": ("sam_vit_h_4b8939.pth", "4b8939a88964f0f4ff5f5b2642c598a6"),
}


def weights_dir(cache_dir: str | Path | None = None) -> Path:
    """Argument, else `$POLYPLIB_WEIGHTS`, else `~/.cache/polyplib/weights`."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("POLYPLIB_WEIGHTS", Path.home() / ".cache" / "polyplib" / "weights"))


def fetch_weights(filename: str, md5: str, base_url: str | None = None, cache_dir: str | Path | None = None,
                  progress: bool = True) -> Path:
    """Return the cached file, downloading `base_url + filename` once; the MD5 must match or WeightsError."""
    folder = weights_dir(cache_dir)
    url = (base_url or os.environ.get("POLYPLIB_SAM_URL") or DEFAULT_SAM_URL).rstrip("/") + "/" + filename
    cached = folder / filename
    if cached.is_file():  # checked here: pooch would silently try to download a mismatching file again
        actual = pooch.file_hash(str(cached), alg="md5")
        if actual != md5:
            raise WeightsError(f"{cached} does not match the published md5 {md5} (it has {actual}): the file is "
                               f"damaged or not the official one; delete it to download it again, or pass your own "
                               f"SAM file with --set checkpoint=FILE")
        return cached
    try:
        path = pooch.retrieve(url, known_hash=f"md5:{md5}", fname=filename, path=folder, progressbar=progress)
    except ValueError as err:  # pooch's hash mismatch; the bad download is not kept
        raise WeightsError(f"{url} does not match the published md5 {md5} ({err}); the file was discarded. "
                           f"Download it again or place a verified copy at {folder / filename}") from err
    except (requests.RequestException, OSError) as err:
        raise WeightsError(f"could not download {url} ({type(err).__name__}). Offline? Place {filename} "
                           f"(md5 {md5}) in {folder} (or set $POLYPLIB_WEIGHTS / $POLYPLIB_SAM_URL)") from err
    return Path(path)


def fetch_sam_checkpoint(size: str, base_url: str | None = None, cache_dir: str | Path | None = None) -> Path:
    """Path of the official SAM checkpoint of `size` (vit_b, vit_l, vit_h), downloaded and verified when missing."""
    if size not in SAM_CHECKPOINTS:
        raise WeightsError(f"SAM size {size!r} has no official checkpoint (only {sorted(SAM_CHECKPOINTS)}); "
                           f"pass a SAM file (--set checkpoint=FILE) or --allow-scratch (allow_scratch=True in Python)")
    filename, md5 = SAM_CHECKPOINTS[size]
    return fetch_weights(filename, md5, base_url=base_url, cache_dir=cache_dir)


def load_sam_state(sam: nn.Module, path: str | Path) -> None:
    """Load a SAM state dict (official layout, or a PolypSAM state dict with the `sam.` prefix) with weights_only."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist; pass an existing SAM .pth file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise WeightsError(f"{path} is not a readable weights-only torch file ({err})") from err
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a SAM state dict")
    if any(k.startswith("sam.") for k in state):
        state = {k.removeprefix("sam."): v for k, v in state.items()}
    try:
        sam.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsError(f"{path} does not fit this SAM size (wrong vit_b/vit_l/vit_h or image size?): "
                           f"{str(err).splitlines()[0]} ...") from err
