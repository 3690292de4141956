"""Fixtures of the `full` path tests: a data root of small real-layout datasets, and pretrained weight files in the
exact formats and cache locations timm, smp and polyplib's SAM loader read (random values, real key names and
shapes, generated from the model definitions)."""
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def polyp_pair(rng: np.random.Generator, size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    """A reddish frame with a brighter ellipse, and its 0/255 mask."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w, rng.uniform(0.15, 0.25) * min(h, w)
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
    image = rng.integers(60, 120, (h, w, 3)).astype(np.uint8)
    image[mask] = np.clip(image[mask].astype(int) + 90, 0, 255).astype(np.uint8)
    return Image.fromarray(image), Image.fromarray((mask * 255).astype(np.uint8))


def make_root(root: Path, kvasir: int = 10, colondb: int = 2, size: tuple[int, int] = (72, 88)) -> Path:
    """Kvasir-SEG (official zip layout, JPEG) and CVC-ColonDB (PraNet layout, PNG) with a few frames each."""
    rng = np.random.default_rng(0)
    for folder, n, ext, names in (("Kvasir-SEG", kvasir, "jpg", lambda i: f"cju{i:04d}"),
                                  ("CVC-ColonDB", colondb, "png", lambda i: str(i + 1))):
        for sub in ("images", "masks"):
            (root / folder / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, mask = polyp_pair(rng, size)
            image.save(root / folder / "images" / f"{names(i)}.{ext}")
            mask.save(root / folder / "masks" / f"{names(i)}.{ext}", quality=100)
    return root


def hub_cache(hub: Path, repo_id: str, files: dict[str, bytes], revision: str | None = None) -> Path:
    """Files of a Hugging Face hub repository as `huggingface_hub` caches them: blobs named by SHA-256 (weights, the
    LFS etag) or git-blob SHA-1 (small files), symlinked from snapshots/<commit>/, refs/main naming the commit."""
    folder = hub / ("models--" + repo_id.replace("/", "--"))
    commit = revision or hashlib.sha1(repo_id.encode()).hexdigest()
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    for name, data in files.items():
        lfs = name.endswith((".safetensors", ".bin"))
        digest = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (folder / "blobs" / digest).write_bytes(data)
        link = folder / "snapshots" / commit / name
        link.unlink(missing_ok=True)
        link.symlink_to(Path("../../blobs") / digest)
    return folder / "snapshots" / commit


def perturbed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A model's initial state with random changes that keep it a working network (BatchNorm variances positive)."""
    torch.manual_seed(0)
    return {k: (v * (1 + 0.1 * torch.rand_like(v)) if k.endswith("running_var") else v + 0.01 * torch.randn_like(v))
            if v.is_floating_point() else v for k, v in state.items()}


def safetensors_bytes(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})


def timm_weights(hub: Path, name: str = "resnet50") -> dict[str, torch.Tensor]:
    """timm's default ImageNet weights of `name` (hub `timm/<name>.<tag>`, model.safetensors), random values."""
    import timm

    state = perturbed(timm.create_model(name, pretrained=False).state_dict())
    repo = timm.models.get_pretrained_cfg(name).hf_hub_id
    hub_cache(hub, repo, {"model.safetensors": safetensors_bytes(state), "config.json": b"{}"})
    return state


def smp_weights(hub: Path, encoder: str = "resnet34") -> dict[str, torch.Tensor]:
    """smp's ImageNet encoder weights (`smp-hub/<encoder>.imagenet` at smp's pinned revision), random values."""
    from segmentation_models_pytorch.encoders import encoders, get_encoder

    state = perturbed(get_encoder(encoder, weights=None).state_dict())
    settings = encoders[encoder]["pretrained_settings"]["imagenet"]
    config = json.dumps({"input_space": "RGB", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    hub_cache(hub, settings["repo_id"], {"model.safetensors": safetensors_bytes(state), "config.json": config.encode()},
              revision=settings["revision"])
    return state


def sam_weights(folder: Path, size: str = "vit_b") -> tuple[Path, str]:
    """Meta's SAM checkpoint file (`sam_vit_b_01ec64.pth`: a plain state dict of `Sam`), random values; its md5."""
    from polyplib.sam.build import build_sam
    from polyplib.sam.checkpoints import SAM_CHECKPOINTS

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SAM_CHECKPOINTS[size][0]
    torch.manual_seed(0)
    torch.save(build_sam(size).state_dict(), path)
    return path, hashlib.md5(path.read_bytes()).hexdigest()
