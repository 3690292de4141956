"""ImageNet encoder weights as timm and smp resolve them (the Hugging Face hub cache): checked before they load."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from polyplib.errors import WeightsError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_cached(repo_id: str, revision: str | None = None) -> None:
    """The hub cache names each weight file's blob by its SHA-256 (the LFS etag): a cached file whose content differs
    (damaged or replaced) is a one-line WeightsError; a file not cached is left to the library to download."""
    from huggingface_hub import try_to_load_from_cache

    for filename in WEIGHT_FILES:
        cached = try_to_load_from_cache(repo_id, filename, revision=revision)
        if not isinstance(cached, str):
            continue
        blob = Path(cached).resolve()
        if re.fullmatch(r"[0-9a-f]{64}", blob.name) and sha256_file(blob) != blob.name:
            raise WeightsError(f"{cached} (ImageNet weights of {repo_id}) does not match its SHA-256 {blob.name}: "
                               f"the file is damaged or was replaced; delete {blob} and {cached} to download it "
                               "again, or train with --from-scratch")


def timm_repo(name: str) -> str | None:
    """The hub repository timm loads `name`'s default pretrained weights from (None: not on the hub)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    return getattr(cfg, "hf_hub_id", None) if cfg is not None else None


def smp_source(encoder: str, weights: str) -> tuple[str, str]:
    """(repository, revision) smp downloads the `weights` of `encoder` from."""
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders[encoder]["pretrained_settings"][weights]
    return settings["repo_id"], settings["revision"]
