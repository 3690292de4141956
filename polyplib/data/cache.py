"""prepare_cache: a resized copy of a dataset that is itself a data root (fast loading, easy to carry to a GPU)."""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
from tqdm.auto import tqdm

from polyplib.data.dataset import BBOXES_JSON, CACHE_MARKER, ORIG_MASKS_DIR, ORIG_SIZES_JSON, load_dataset
from polyplib.data.io import Pair, read_grey, read_pair
from polyplib.data.registry import data_root, locate
from polyplib.data.splits import DEFAULT_SEEDS, get_split, split_dir
from polyplib.data.transforms import apply_transform, build_transform
from polyplib.errors import ConfigError, DataError

WRITE_FLAGS = {"png": [cv2.IMWRITE_PNG_COMPRESSION, 9], "jpg": [cv2.IMWRITE_JPEG_QUALITY, 95],
               "webp": [cv2.IMWRITE_WEBP_QUALITY, 101]}  # webp quality > 100: lossless, ~25% smaller than PNG
MASK_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 9, cv2.IMWRITE_PNG_BILEVEL, 1]  # 0/255 masks, 1 bit per pixel


def prepare_cache(name: str, out_dir: str | os.PathLike, root: str | os.PathLike | None = None, image_size: int = 256,
                  split: str | None = None, *, protocol: str = "gmsrf", split_seed: int | None = None,
                  image_format: str = "png", originals: str | None = None, overwrite: bool = False) -> Path:
    """Write <out_dir>/<same folder>/{images,masks}/<id>.png at image_size (ids, splits, boxes, original sizes kept).

    `image_format="jpg"` (quality 95) makes images ~5x smaller for carrying; masks are always lossless PNG, and the
    original-resolution masks are kept too (grey levels as decoded, PNG, in `masks_orig/`), so that evaluation at the
    original resolution on a cache scores against the original ground truth. `originals` names a split (e.g. the
    source's "train") whose image files are copied unchanged, with their masks binarised (grey > 127) at full size:
    augmentation crops at the original resolution, so a run trains on such a cache exactly as on the dataset (`webp`
    and originals of the training split: the smallest carry that changes no sample). An existing cache is replaced
    only with `overwrite`; a folder of other data never, nor is a cache written inside the dataset's own folder.
    """
    if image_format not in WRITE_FLAGS:
        raise ConfigError(f"image_format must be one of {sorted(WRITE_FLAGS)}; got {image_format!r}")
    if name == "synthpolyp":
        raise ConfigError("synthpolyp is generated in memory from its seed; there is nothing to cache")
    if image_size is None:
        raise ConfigError("prepare_cache needs an image_size (the cache is a resized copy)")
    dataset = load_dataset(name, root, split, image_size=None, protocol=protocol, split_seed=split_seed)
    folder, out_dir = locate(name, root)[0], Path(out_dir)
    target = out_dir / folder.relative_to(data_root(root))
    if target.resolve() == folder.resolve():
        raise ConfigError(f"out_dir {out_dir} is the data root itself; choose another folder")
    if out_dir.resolve().is_relative_to(folder.resolve()):
        raise ConfigError(f"--out {out_dir} is inside the dataset folder {folder}: the cache would be written among "
                          "your data; choose a folder outside it")
    if target.exists() and not (target / CACHE_MARKER).is_file():
        raise ConfigError(f"--out {out_dir}: {target} exists and is not a complete polyplib cache (data of yours, or "
                          "an old cache); delete it or choose another --out")
    if target.exists() and not overwrite:
        raise ConfigError(f"--out {out_dir} already holds a cache of {name} ({target}); pass --overwrite to replace it "
                          "or choose another --out")
    final, target = target, _partial_dir(target)
    (target / "images").mkdir(parents=True)
    (target / "masks").mkdir(parents=True)
    (target / ORIG_MASKS_DIR).mkdir(parents=True)
    transform = build_transform(image_size)
    kept = set() if originals is None else _split_ids(name, protocol, root, split_seed, originals)

    def write(pair: Pair) -> tuple[str, list[int]]:
        image, mask = read_pair(pair)
        if pair.id in kept:  # the file itself, and its mask at full size: random crops see what they see in the data
            shutil.copy2(pair.image_path, target / "images" / f"{pair.id}{pair.image_path.suffix.lower()}")
            files = ((target / "masks" / f"{pair.id}.png", mask * 255, MASK_FLAGS),
                     (target / ORIG_MASKS_DIR / f"{pair.id}.png", mask * 255, MASK_FLAGS))
        else:
            small, small_mask = apply_transform(transform, image, mask, 0)
            files = ((target / "images" / f"{pair.id}.{image_format}", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                      WRITE_FLAGS[image_format]),
                     (target / "masks" / f"{pair.id}.png", small_mask * 255, MASK_FLAGS),
                     (target / ORIG_MASKS_DIR / f"{pair.id}.png", read_grey(pair.mask_path), WRITE_FLAGS["png"]))
        for path, array, flags in files:
            if not cv2.imwrite(str(path), array, flags):
                raise DataError(f"cannot write {path}; check free space and permissions of {out_dir}")
        return pair.id, list(dataset.orig_sizes.get(pair.id, image.shape[:2]))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        sizes = dict(tqdm(pool.map(write, dataset.pairs), total=len(dataset), desc=f"cache {name}", leave=False,
                          disable=None))
    (target / ORIG_SIZES_JSON).write_text(json.dumps(sizes, indent=0, sort_keys=True))
    if (folder / BBOXES_JSON).is_file():
        shutil.copy2(folder / BBOXES_JSON, target / BBOXES_JSON)
    (target / CACHE_MARKER).write_text(json.dumps({"name": name, "image_size": image_size, "pairs": len(sizes),
                                                        "originals": originals}))
    _copy_gmsrf_splits(name, root, out_dir, set(sizes), split_seed)
    _swap_in(target, final)
    return out_dir


def _split_ids(name: str, protocol: str, root, split_seed: int | None, split: str) -> set[str]:
    table = get_split(name, protocol, root, split_seed)
    if split not in table:
        raise ConfigError(f"originals={split!r}: {name} has no such split under protocol {protocol!r}; available: "
                          f"{', '.join(table)}")
    return set(table[split])


def _partial_dir(target: Path) -> Path:
    """A fresh hidden `.NAME.partial-PID` folder beside `target` (stale ones of killed runs are removed first):
    `datasets` and `load_dataset` never see an incomplete cache."""
    for stale in target.parent.glob(f".{target.name}.partial-*") if target.parent.is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)
    return target.parent / f".{target.name}.partial-{os.getpid()}"


def _swap_in(partial: Path, final: Path) -> None:
    """Rename the complete `partial` folder to `final` (a previous complete cache there is replaced)."""
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, final)


def _copy_gmsrf_splits(name: str, root: str | os.PathLike | None, out_dir: Path, kept: set[str],
                       split_seed: int | None = None) -> None:
    """Write the full dataset's GMSRF splits (stored seeds, the default seed and `split_seed`; drawn now when never
    drawn), restricted to the cached ids, so that a cache of part of a dataset never splits afresh."""
    stored = split_dir(name, 0, root).parent
    seeds = {int(p.name[4:]) for p in stored.glob("seed*") if p.name[4:].isdigit()} if stored.is_dir() else set()
    seeds |= {DEFAULT_SEEDS["gmsrf"]} | ({split_seed} if split_seed is not None else set())
    for seed in sorted(seeds):
        for key, ids in get_split(name, "gmsrf", root, seed).items():
            target = split_dir(name, seed, out_dir) / f"{key}.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_text("".join(f"{i}\n" for i in ids if i in kept))
            os.replace(tmp, target)
