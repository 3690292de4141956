"""Image-embedding cache for the `decoder` strategy (Polyp-SAM Fig. 1a): the frozen encoder runs once per image."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from polyplib.engine.checkpoint import load_checkpoint, save_checkpoint
from polyplib.errors import ConfigError
from polyplib.sam.model import PolypSAM
from polyplib.sam.prompts import boxes_from_mask


def encoder_fingerprint(model: PolypSAM) -> str:
    """SHA-1 over the image encoder's weights, the preprocessing mode and the input size."""
    digest = hashlib.sha1(json.dumps(model.encoder_key(), sort_keys=True).encode())
    for name, tensor in sorted(model.sam.image_encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class EmbeddingCache:
    """Embeddings keyed by (dataset, image id, size, encoder fingerprint); memory, plus `.pt` files in `cache_dir`."""

    def __init__(self, model: PolypSAM, cache_dir: str | Path | None = None) -> None:
        if model.strategy != "decoder":
            raise ConfigError("the embedding cache needs strategy='decoder' (a trained encoder changes its embeddings)")
        self.model = model
        self.fingerprint = encoder_fingerprint(model)
        self.cache_dir = Path(cache_dir) / self.fingerprint if cache_dir is not None else None
        self.memory: dict[str, torch.Tensor] = {}

    def key(self, dataset: str, image_id: str, hw: tuple[int, int]) -> str:
        """File-system-safe key of one image's embedding."""
        return f"{dataset}__{image_id}__{hw[0]}x{hw[1]}".replace("/", "_")

    def lookup(self, key: str) -> torch.Tensor | None:
        """A cached embedding, from memory or disk."""
        if key not in self.memory and self.cache_dir is not None and (self.cache_dir / f"{key}.pt").is_file():
            self.memory[key] = load_checkpoint(self.cache_dir / f"{key}.pt")["embedding"]
        return self.memory.get(key)

    def store(self, key: str, embedding: torch.Tensor) -> None:
        """Keep an embedding in memory and, with a cache dir, on disk."""
        self.memory[key] = embedding
        if self.cache_dir is not None:
            save_checkpoint({"embedding": embedding}, self.cache_dir / f"{key}.pt")  # atomic: no partial files

    @torch.no_grad()
    def embed(self, images: torch.Tensor, keys: list[str]) -> torch.Tensor:
        """Embeddings [B,C,h,w] for a batch, running the encoder only on the images not cached yet."""
        missing = [i for i, k in enumerate(keys) if self.lookup(k) is None]
        if missing:
            device = next(self.model.parameters()).device
            fresh = self.model.encode(images[missing].to(device)).float().cpu()
            for i, emb in zip(missing, fresh):
                self.store(keys[i], emb.clone())
        return torch.stack([self.memory[k] for k in keys])


class CachedEmbeddingDataset(Dataset):
    """Items whose `image` slot holds the cached embedding [C,h,w], plus mask and boxes (no decoding, no encoder)."""

    def __init__(self, dataset: Dataset, cache: EmbeddingCache, per_component: bool = False, jitter: float = 0.0,
                 seed: int = 0, max_boxes: int = 8, batch_size: int = 8, progress: bool = True) -> None:
        self.cache = cache
        self.box_options = {"per_component": per_component, "jitter": jitter, "max_boxes": max_boxes}
        self.seed = seed
        self.epoch = 0
        self.items: list[dict] = []
        self.pairs = getattr(dataset, "pairs", [])
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
        for batch in tqdm(loader, desc="image embeddings", disable=not progress):
            hw = tuple(batch["image"].shape[-2:])
            keys = [cache.key(d, i, hw) for d, i in zip(batch["dataset"], batch["id"])]
            cache.embed(batch["image"], keys)
            for j, key in enumerate(keys):
                self.items.append({"key": key, "mask": batch["mask"][j] > 0.5, "id": batch["id"][j],
                                   "dataset": batch["dataset"][j], "hw": torch.tensor(hw)})

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """Re-draw the box jitter (image augmentation is impossible with cached embeddings)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return {"image": self.cache.lookup(item["key"]), "mask": item["mask"].float(), "id": item["id"],
                "dataset": item["dataset"], "hw": item["hw"],
                "boxes": boxes_from_mask(item["mask"], rng=rng, **self.box_options)}
