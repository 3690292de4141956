"""Reading images and masks with errors that name the file (notes §4: JPEG masks binarised at > 127)."""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from polyplib.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
_READ_ERRORS = (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError)


class DataWarning(UserWarning):
    """Something in a dataset is odd but usable (unpaired files, empty masks); the message gives counts."""


@dataclass(frozen=True)
class Pair:
    """One image/mask pair; paths are None for generated (synthpolyp) samples."""

    id: str
    image_path: Path | None
    mask_path: Path | None


def _open(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as handle:
            handle.load()
            return np.array(handle.convert(mode))
    except FileNotFoundError as exc:
        raise DataError(f"file not found: {path}") from exc
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: Exception) -> DataError:
    return DataError(f"cannot read {path} ({exc}); the file is truncated or not an image: re-download or remove it")


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 [H, W, 3]."""
    return _open(path, "RGB")


def binarize_mask(grey: np.ndarray, threshold: int = 127) -> np.ndarray:
    """{0, 1} uint8: > threshold for 0..255 masks (127: JPEG grey levels; 0: `gt > 0` of the Polyp-SAM notebooks),
    > 0 for masks already stored as 0/1."""
    return (grey > (threshold if grey.max(initial=0) > 1 else 0)).astype(np.uint8)


def read_grey(path: Path) -> np.ndarray:
    """A mask file's grey levels, uint8 [H, W], not binarised."""
    return _open(path, "L")


def read_mask(path: Path, threshold: int = 127) -> np.ndarray:
    """Binary {0, 1} uint8 [H, W]."""
    return binarize_mask(_open(path, "L"), threshold)


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as handle:
            return handle.height, handle.width
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def read_pair(pair: Pair, mask_threshold: int = 127) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pair (mask grey > `mask_threshold`); an image/mask size mismatch is an error naming both files."""
    image, mask = read_image(pair.image_path), read_mask(pair.mask_path, mask_threshold)
    if image.shape[:2] != mask.shape:
        raise DataError(_mismatch(pair, image.shape[:2], mask.shape))
    return image, mask


def _mismatch(pair: Pair, image_hw: tuple[int, int], mask_hw: tuple[int, int]) -> str:
    return (f"image {pair.image_path} is {image_hw[0]}x{image_hw[1]} but its mask {pair.mask_path} is "
            f"{mask_hw[0]}x{mask_hw[1]} (HxW): fix or remove this pair")


def check_pairs(pairs: list[Pair], source: str, mask_threshold: int = 127) -> None:
    """Verify every pair (readable, sizes agree) and warn with a count about empty masks, which are kept."""
    empty = []
    for pair in pairs:
        mask = read_mask(pair.mask_path, mask_threshold)
        image_hw = image_size(pair.image_path)
        if image_hw != mask.shape:
            raise DataError(_mismatch(pair, image_hw, mask.shape))
        if not mask.any():
            empty.append(pair.id)
    if empty:
        warnings.warn(f"{source}: {len(empty)} of {len(pairs)} masks are empty (no grey value above the mask threshold "
                      f"{mask_threshold}; kept), e.g. {empty[:5]}; masks drawn in 0/1 or 0/100 need mask_threshold=0",
                      DataWarning, stacklevel=3)


def pair_files(images_dir: Path, masks_dir: Path, source: str, mask_prefix: str = "") -> list[Pair]:
    """Pair image and mask files by stem (mask stems may carry `mask_prefix`), natural order; unpaired are counted."""
    images, masks = _by_stem(images_dir), _by_stem(masks_dir, mask_prefix)
    only_images, only_masks = sorted(images.keys() - masks.keys()), sorted(masks.keys() - images.keys())
    if only_images or only_masks:
        warnings.warn(
            f"{source}: {len(only_images)} images without a mask (e.g. {only_images[:3]}) and {len(only_masks)} masks "
            f"without an image (e.g. {only_masks[:3]}) are skipped; {len(images.keys() & masks.keys())} pairs kept",
            DataWarning, stacklevel=3)
    return [Pair(stem, images[stem], masks[stem]) for stem in sorted(images.keys() & masks.keys(), key=natural_key)]


def _by_stem(folder: Path, prefix: str = "") -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_EXTENSIONS or path.name.startswith("."):
            continue
        stem = path.stem[len(prefix):] if prefix and path.stem.startswith(prefix) and path.stem != prefix else path.stem
        if stem in found:
            raise DataError(f"two files share the id {stem!r}: {found[stem]} and {path}; keep one of them")
        found[stem] = path
    return found


def natural_key(text: str) -> tuple:
    """Sort key with numbers compared as numbers ('2' < '10')."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _decode(path: Path) -> None:
    """Decode every byte of an image file (JPEGs at 1/8 scale: the whole stream is still read and checked)."""
    try:
        with Image.open(path) as handle:
            if handle.format == "JPEG":
                handle.draft("RGB", (max(handle.width // 8, 1), max(handle.height // 8, 1)))
            handle.load()
    except FileNotFoundError as exc:
        raise DataError(f"file not found: {path}") from exc
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def check_decodable(pairs: list[Pair], workers: int = 4) -> None:
    """Decode every image and mask of `pairs` (truncated files fail here, naming the file, not mid-training)."""
    from concurrent.futures import ThreadPoolExecutor

    paths = [p for pair in pairs for p in (pair.image_path, pair.mask_path) if p is not None]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_decode, paths))
