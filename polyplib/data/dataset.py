"""PolypDataset and load_dataset: registry + split + transform -> samples in the CONTRIBUTING tensor convention."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from polyplib.data.io import Pair, binarize_mask, check_pairs, natural_key, read_grey, read_pair
from polyplib.data.registry import find_pairs, get_spec, locate, synth_options
from polyplib.data.splits import get_split
from polyplib.data.synth import synth_frame, synth_ids
from polyplib.data.transforms import apply_transform, build_transform, image_tensor, sample_seed
from polyplib.errors import ConfigError, DataError

BBOXES_JSON = "kavsir_bboxes.json"
ORIG_SIZES_JSON = "orig_sizes.json"
ORIG_MASKS_DIR = "masks_orig"  # prepare_cache: the original-resolution masks, lossless
CACHE_MARKER = ".polyplib-cache.json"  # prepare_cache writes it last into a complete cache folder


def read_cached_original(pair: Pair, masks_dir: Path, mask_threshold: int = 127) -> tuple[np.ndarray, np.ndarray]:
    """A cache pair at the original resolution: the kept original mask, the cached image resized up to it."""
    image, _ = read_pair(pair)
    mask = binarize_mask(read_grey(masks_dir / f"{pair.id}.png"), mask_threshold)
    if image.shape[:2] != mask.shape:
        image = cv2.resize(image, mask.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return image, mask


class PolypDataset(Dataset):
    """Samples {image [3,H,W] in [0,1], mask [1,H,W], id, dataset, orig_size}; augmented per (seed, epoch, index)."""

    def __init__(self, name: str, pairs: list[Pair], reader: Callable[[Pair], tuple[np.ndarray, np.ndarray]], *,
                 image_size: int | None = 256, augment: bool = False, seed: int = 0,
                 orig_sizes: dict[str, tuple[int, int]] | None = None,
                 annotated_boxes: dict[str, np.ndarray] | None = None) -> None:
        self.name, self.pairs, self.reader = name, pairs, reader
        self.image_size, self.augment, self.seed, self.epoch = image_size, augment, seed, 0
        self.transform = build_transform(image_size, augment)
        self.orig_sizes = orig_sizes or {}
        self.annotated_boxes = annotated_boxes or {}

    @property
    def ids(self) -> list[str]:
        """Sample ids (file stems) in index order."""
        return [pair.id for pair in self.pairs]

    def set_epoch(self, epoch: int) -> None:
        """Make augmentation a function of (seed, epoch, index) for this epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        index = range(len(self.pairs))[index]
        pair = self.pairs[index]
        image, mask = self.reader(pair)
        orig_size = tuple(int(v) for v in self.orig_sizes.get(pair.id, image.shape[:2]))
        image, mask = apply_transform(self.transform, image, mask, sample_seed(self.seed, self.epoch, index))
        return {
            "image": image_tensor(image),
            "mask": torch.from_numpy(np.ascontiguousarray(mask))[None].float(),
            "id": pair.id,
            "dataset": self.name,
            "orig_size": orig_size,
        }

    def __repr__(self) -> str:
        return (f"PolypDataset({self.name!r}, {len(self)} pairs, image_size={self.image_size}, "
                f"augment={self.augment}, seed={self.seed})")


class _SynthReader:
    """Frames of one synthpolyp centre, generated on first use and kept in memory."""

    def __init__(self, centre: str, seed: int) -> None:
        self.centre, self.seed, self.frames = centre, seed, {}

    def __call__(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        if pair.id not in self.frames:
            self.frames[pair.id] = synth_frame(self.seed, self.centre, int(pair.id[1:]))
        return self.frames[pair.id]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot parse {path} ({exc}); re-download the dataset or delete the file") from exc


def read_annotated_boxes(path: Path) -> dict[str, np.ndarray]:
    """Kvasir-SEG `kavsir_bboxes.json`: id -> float32 [K, 4] boxes (xmin, ymin, xmax, ymax as annotated)."""
    try:
        return {key: np.array([[b["xmin"], b["ymin"], b["xmax"], b["ymax"]] for b in entry["bbox"]],
                              np.float32).reshape(-1, 4)
                for key, entry in _read_json(path).items()}
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: expected {{id: {{'bbox': [{{xmin, ymin, xmax, ymax}}]}}}}; missing {exc}") from exc


def _select(pairs: list[Pair], ids: list[str], name: str, split: str, protocol: str, where: str) -> list[Pair]:
    by_id = {pair.id: pair for pair in pairs}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DataError(f"{len(missing)} of {len(ids)} ids of split {split!r} (protocol {protocol!r}) are absent from "
                        f"{name} at {where} (e.g. {missing[:3]}); this copy holds {len(pairs)} pairs: use the full "
                        f"dataset or another protocol")
    return [by_id[i] for i in sorted(ids, key=natural_key)]


def _folder_extras(folder: Path) -> dict:
    """Side files of a dataset folder: original sizes (written by prepare_cache) and Kvasir-SEG's annotated boxes."""
    sizes, boxes = folder / ORIG_SIZES_JSON, folder / BBOXES_JSON
    return {"orig_sizes": {k: tuple(v) for k, v in _read_json(sizes).items()} if sizes.is_file() else None,
            "annotated_boxes": read_annotated_boxes(boxes) if boxes.is_file() else None}


def _check_cache_at_original_size(folder: Path, mask_threshold: int) -> None:
    """A cache read at the original resolution (evaluation's second protocol) needs its original masks, with their
    grey levels where the threshold is not the one its `originals` split was binarised at."""
    if not (folder / ORIG_MASKS_DIR).is_dir():
        raise DataError(f"{folder} is a cache without {ORIG_MASKS_DIR}/: original-resolution metrics would be scored at "
                        "the cached size; rebuild it with `polyplib prepare` and keep that folder")
    originals = _read_json(folder / CACHE_MARKER).get("originals")
    if originals and mask_threshold != 127:
        raise ConfigError(f"mask_threshold={mask_threshold}: {folder} keeps the masks of its {originals!r} split "
                          "binarised at grey > 127; use the dataset itself for another threshold")


def load_dataset(name: str, root: str | os.PathLike | None = None, split: str | None = None, *,
                 image_size: int | None = 256, augment: bool = False, seed: int = 0, protocol: str = "gmsrf",
                 split_seed: int | None = None, check: bool = True, mask_threshold: int = 127,
                 **options) -> PolypDataset:
    """A registered dataset (or one split of it); synthpolyp options: n, centre ('A'|'B'), synth_seed.

    `mask_threshold`: 8-bit masks are foreground where grey > it (127; 0 is the Polyp-SAM notebooks' `gt > 0`).
    """
    if not isinstance(mask_threshold, int) or isinstance(mask_threshold, bool) or not 0 <= mask_threshold < 255:
        raise ConfigError(f"mask_threshold={mask_threshold!r} must be an integer in [0, 254] (grey > threshold)")
    get_spec(name)
    synth = synth_options(name, options)
    if name == "synthpolyp":
        pairs = [Pair(i, None, None) for i in synth_ids(synth["n"], synth["centre"])]
        tag, where, extras = f"synthpolyp-{synth['centre']}", "memory", {}
        reader = _SynthReader(synth["centre"], synth["synth_seed"])
    else:
        folder = locate(name, root)[0]
        pairs, tag, where = find_pairs(name, root), name, str(folder)
        reader = read_pair if mask_threshold == 127 else partial(read_pair, mask_threshold=mask_threshold)
        if image_size is None and (folder / CACHE_MARKER).is_file():  # a prepared cache, read at original size
            _check_cache_at_original_size(folder, mask_threshold)
            reader = partial(read_cached_original, masks_dir=folder / ORIG_MASKS_DIR, mask_threshold=mask_threshold)
        extras = _folder_extras(folder)
    if split is not None:
        table = get_split(name, protocol, root, split_seed, ids=[pair.id for pair in pairs])
        if split not in table:
            raise ConfigError(f"split {split!r} does not exist for {name!r} under protocol {protocol!r}; "
                              f"available: {', '.join(table)}")
        pairs = _select(pairs, table[split], name, split, protocol, where)
    if check and name != "synthpolyp":
        check_pairs(pairs, source=f"{name} ({where})", mask_threshold=mask_threshold)
    return PolypDataset(tag, pairs, reader, image_size=image_size, augment=augment, seed=seed, **extras)
